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

resource "aws_sqs_queue" "orders" {
  name                       = "webshop-${var.env}-orders"
  visibility_timeout_seconds = 60
  message_retention_seconds  = 345600

  tags = {
    project = "webshop"
    stack   = "queue"
    env     = var.env
  }
}

output "queue_url" {
  description = "URL the app sends order messages to."
  value       = aws_sqs_queue.orders.id
}

output "queue_arn" {
  description = "ARN of the orders queue, for the app's permissions."
  value       = aws_sqs_queue.orders.arn
}
