project {
  name   = "webshop"      # required
  engine = "terraform"    # "terraform" (default) or "tofu"

  # Optional, with their defaults:
  data_dir        = ".slipway" # state, logs, working copies; git-ignored automatically
  parallelism     = 4          # stack instances run at once (--parallelism overrides)
  step_timeout    = "1h"       # one engine step longer than this is interrupted (--step-timeout overrides)
  interrupt_grace = "30s"      # after the interrupt, how long the engine gets to save state before it is killed
  # lock_timeout  = "5m"       # how long plan/apply/destroy wait for a state lock another process
                               # holds before failing with its holder named (default: fail at once)
}

# A file written into every stack's working copy before `init`.
generate "provider" {
  path     = "slipway_provider.tf"   # relative to the stack folder; may not leave it
  contents = <<-EOT
    provider "aws" {
      region = "eu-west-1"
      endpoints { s3 = "${env("SLIPWAY_SANDBOX_ENDPOINT")}" }
    }
  EOT
}

# Stages run in the order they are written.
stage "dev" {
  variables = { env = instance.name }
}
stage "test" {
  variables = { env = "test" }
}
stage "prod" {
  variables = { env = "prod" }
  approval  = true

  # A stage's generate block of the same name replaces the project's.
  generate "provider" {
    path     = "slipway_provider.tf"
    contents = "provider \"aws\" { region = \"eu-west-1\" }\n"
  }
}
