project {
  name = "docs"
}

stage "dev" {}

state {
  backend        = "s3"
  bucket         = "webshop-terraform-state"
  region         = "eu-west-1"
  dynamodb_table = "webshop-terraform-locks"   # LockID (string) as the hash key
  # or, with Terraform 1.10+ / OpenTofu 1.8+, instead of (or beside) the table:
  # use_lockfile = true                        # a <key>.tflock object next to each state object

  # Optional:
  key_prefix                  = "platform"     # keys become platform/<project>/<instance>/<stack>.tfstate
  endpoint                    = env("S3_ENDPOINT")  # S3-compatible stores and emulators
  dynamodb_endpoint           = "..."          # defaults to endpoint
  force_path_style            = true
  skip_credentials_validation = true
}

credentials "network-deployer" {
  # Variable the provider sees = variable of slipway's environment it is copied from.
  from_env = {
    AWS_ACCESS_KEY_ID     = "NETWORK_AWS_ACCESS_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "NETWORK_AWS_SECRET_ACCESS_KEY"
  }
}

credentials "app-deployer" {
  from_file = "secrets/app.json"                          # {"AWS_ACCESS_KEY_ID": "...", ...}
}

credentials "reader" {
  from_command = ["vault", "read", "-format=json", "-field=data", "aws/creds/reader"]
}

stage "prod" {
  credentials = {
    default = "app-deployer"       # every stack without its own
    network = "network-deployer"
  }
  plan_credentials = {
    default = "reader"             # init, plan, show and output run with these
  }
}
