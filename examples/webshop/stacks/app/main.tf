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

variable "vpc_id" {
  description = "VPC the app runs in (from the network stack)."
  type        = string
}

variable "table_arn" {
  description = "Orders table the app reads and writes (from the data stack)."
  type        = string
}

variable "queue_arn" {
  description = "Orders queue the app consumes (from the queue stack)."
  type        = string
}

locals {
  tags = {
    project = "webshop"
    stack   = "app"
    env     = var.env
  }
}

resource "aws_iam_role" "app" {
  name = "webshop-${var.env}-app"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })

  # Inline, inside the role: a separate aws_iam_role_policy would leave the role's
  # refreshed inline_policy out of step with state (drift on every plan).
  inline_policy {
    name = "orders"
    policy = jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Effect   = "Allow"
          Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
          Resource = [var.table_arn]
        },
        {
          Effect   = "Allow"
          Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
          Resource = [var.queue_arn]
        },
      ]
    })
  }

  tags = local.tags
}

resource "aws_security_group" "app" {
  name        = "webshop-${var.env}-app"
  description = "webshop app instances"
  vpc_id      = var.vpc_id

  ingress {
    description = "HTTPS from inside the VPC"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/16"]
  }

  egress {
    description = "Anywhere"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = local.tags
}

output "role_arn" {
  description = "The app's IAM role."
  value       = aws_iam_role.app.arn
}

output "security_group_id" {
  description = "Security group for app instances."
  value       = aws_security_group.app.id
}
