output "vpc_id" {
  description = "The webshop VPC."
  value       = aws_vpc.main.id
}

output "subnet_ids" {
  description = "Private subnets, one per availability zone, in zone order."
  value       = [for key in sort(keys(aws_subnet.private)) : aws_subnet.private[key].id]
}
