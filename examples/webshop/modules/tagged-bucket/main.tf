# A private S3 bucket carrying the caller's tags. A local module, so the data stack's
# artifact has a module to bundle along with the stack folder.

terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "name" {
  description = "Bucket name; must be unique in the account."
  type        = string
}

variable "tags" {
  description = "Tags applied to the bucket."
  type        = map(string)
  default     = {}
}

resource "aws_s3_bucket" "this" {
  bucket = var.name
  acl    = "private"
  tags   = merge(var.tags, { module = "tagged-bucket" })
}

output "name" {
  description = "The bucket's name."
  value       = aws_s3_bucket.this.bucket
}

output "arn" {
  description = "The bucket's ARN."
  value       = aws_s3_bucket.this.arn
}
