# The webshop: four stacks delivered through dev -> test -> prod.

project {
  name   = "webshop"
  engine = "terraform"
}

# Written into every stack's working copy before `init`. slipway evaluates ${...};
# $${...} would be a literal Terraform interpolation. env("NAME") reads slipway's
# environment: `cargo xtask sandbox` prints SLIPWAY_SANDBOX_ENDPOINT, the address of the
# AWS emulator. The provider takes its credentials from its environment (AWS_ACCESS_KEY_ID,
# ...): slipway's own, or the set a stage assigns to the stack (docs/state-and-credentials.md).
generate "provider" {
  path     = "slipway_provider.tf"
  contents = <<-EOT
    provider "aws" {
      region                      = "us-east-1"
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

# `instance.name` is the stage's name for the long-lived instance, and a unique name
# (`drill-3f9a`) for ephemeral ones: drills and verification never collide with a stage.
stage "dev" {
  variables = { env = instance.name }
}

stage "test" {
  variables = { env = instance.name }
}

stage "prod" {
  variables = { env = instance.name }
  approval  = true
}
