terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "3.39.0"
    }
  }
}

variable "env" {
  description = "The stage this instance belongs to (dev, test, prod)."
  type        = string
}

locals {
  tags = {
    project = "webshop"
    stack   = "data"
    env     = var.env
  }
}

resource "aws_dynamodb_table" "orders" {
  name         = "webshop-${var.env}-orders"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "order_id"

  attribute {
    name = "order_id"
    type = "S"
  }

  tags = local.tags
}

module "assets" {
  source = "../../modules/tagged-bucket"

  name = "webshop-${var.env}-assets"
  tags = local.tags
}
