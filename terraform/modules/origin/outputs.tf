output "public_ip" {
  description = "The origin's Elastic IP, on the active node: edges dial it (pass it to the edge module's origin_ip), and the dns module points the nameserver and API names at it."
  value       = aws_eip.origin.public_ip
}

output "active" {
  description = "The node that holds the Elastic IP: \"a\" or \"b\"."
  value       = var.active
}

output "nodes" {
  description = "Both nodes by name (a, b): instance_id, private_ip and availability zone."
  value = {
    for n, i in aws_instance.origin : n => {
      instance_id       = i.id
      private_ip        = i.private_ip
      availability_zone = i.availability_zone
    }
  }
}

output "api_url" {
  description = "The REST API's base URL."
  value       = "https://${var.api_hostname}/v1"
}

output "database" {
  description = "The shared PostgreSQL database: endpoint address, port, name, user, and the ARN of the Secrets Manager secret that holds its password."
  value = {
    address    = aws_db_instance.this.address
    port       = aws_db_instance.this.port
    name       = aws_db_instance.this.db_name
    username   = aws_db_instance.this.username
    secret_arn = aws_db_instance.this.master_user_secret[0].secret_arn
  }
}

output "vpc_id" {
  description = "The origin's VPC."
  value       = aws_vpc.this.id
}

output "security_group_id" {
  description = "The origin nodes' security group."
  value       = aws_security_group.origin.id
}

output "iam_role_name" {
  description = "The origin nodes' IAM role, to attach more policies."
  value       = aws_iam_role.origin.name
}
