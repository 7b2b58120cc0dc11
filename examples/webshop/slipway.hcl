# The webshop: four stacks delivered through dev -> test -> prod.

project {
  name   = "webshop"
  engine = "terraform"
}

# Written into every stack's working copy before `init`. slipway evaluates ${...};
# $${...} would be a literal Terraform interpolation. env("NAME") reads slipway's
# environment: `cargo xtask sandbox` prints SLIPWAY_SANDBOX_ENDPOINT, the address of the
# AWS emulator. Against real AWS, this block is where credentials and region would go.
generate "provider" {
  path     = "slipway_provider.tf"
  contents = <<-EOT
    provider "aws" {
      region                      = "us-east-1"
      access_key                  = "test"
      secret_key                  = "test"
      skip_credentials_validation = true
      skip_requesting_account_id  = true
      skip_metadata_api_check     = true
      s3_force_path_style         = true

      endpoints {
        dynamodb = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        ec2      = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        iam      = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        s3       = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sns      = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sqs      = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sts      = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
      }
    }
  EOT
}

stage "dev" {
  variables = { env = "dev" }
}

stage "test" {
  variables = { env = "test" }
}

stage "prod" {
  variables = { env = "prod" }
  approval  = true
}
