project {
  name = "docs"
}

stateful_resources {
  extend  = ["aws_sqs_*"]            # add patterns to the built-in list
  # replace = ["aws_dynamodb_table"] # stand instead of the built-in list
}

stage "dev" {
  policy {
    rego = ["policies/data.rego"]    # warn rules show; deny rules block
  }
}

stage "prod" {
  policy {
    max_deletes           = 0
    max_replaces          = 2
    max_score             = 60
    deny_stateful_deletes = true
    protected_addresses   = ["module.db.*"]
    protected_types       = ["aws_kms_key", "aws_route53_zone"]
    rego                  = ["policies/data.rego", "policies/prod.rego"]
    on_violation          = "block"  # or "approval"
  }
}
