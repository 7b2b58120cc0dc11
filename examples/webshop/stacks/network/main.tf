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
    stack   = "network"
    env     = var.env
  }
  subnets = {
    a = { cidr = "10.0.1.0/24", zone = "us-east-1a" }
    b = { cidr = "10.0.2.0/24", zone = "us-east-1b" }
  }
}

resource "aws_vpc" "main" {
  cidr_block = "10.0.0.0/16"
  tags       = merge(local.tags, { Name = "webshop-${var.env}" })
}

resource "aws_subnet" "private" {
  for_each = local.subnets

  vpc_id            = aws_vpc.main.id
  cidr_block        = each.value.cidr
  availability_zone = each.value.zone
  tags              = merge(local.tags, { Name = "webshop-${var.env}-${each.key}" })
}
