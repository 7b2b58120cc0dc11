project {
  name   = "broken"
  engin  = "terraform"
}

stage "dev" {}
stage "dev" {}
