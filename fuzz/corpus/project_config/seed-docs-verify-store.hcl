project {
  name = "docs"
}

stage "dev" {}

verify {
  from_zero       = true
  from_latest     = true
  reference_stage = "prod"   # default: the last stage
}

store {
  url = "postgres://slipway@db.internal:5432/slipway"
}

artifacts {
  url = "s3://webshop-artifacts/slipway"
}
