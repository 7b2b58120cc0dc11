# A module repository laid out as public module repositories are: the module at the
# root, examples/* calling it with `source = "../../"`, each example a stack.
project {
  name   = "rootmod"
  engine = "terraform"
}

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
        sqs = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
        sts = "${env("SLIPWAY_SANDBOX_ENDPOINT")}"
      }
    }
  EOT
}

stage "dev" {
  variables = { env = instance.name }
}

stage "prod" {
  variables = { env = instance.name }
}
