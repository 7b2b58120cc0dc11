output "table_name" {
  description = "The orders table."
  value       = aws_dynamodb_table.orders.name
}

output "table_arn" {
  description = "ARN of the orders table, for the app's permissions."
  value       = aws_dynamodb_table.orders.arn
}

output "bucket_name" {
  description = "The bucket holding shop assets."
  value       = module.assets.name
}
