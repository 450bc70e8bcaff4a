output "edges" {
  description = "Edges by id: region, aws_region, instance_id, public_ip (the Elastic IP in its ICE candidates and backbone address), private_ip, hostname and public_url."
  value = {
    for id, e in local.edges : id => {
      region      = e.region
      aws_region  = e.aws_region
      instance_id = aws_instance.edge[id].id
      public_ip   = aws_eip.edge[id].public_ip
      private_ip  = aws_instance.edge[id].private_ip
      hostname    = e.hostname
      public_url  = e.public_url
    }
  }
}

output "public_ips" {
  description = "Every edge's Elastic IP as a /32, for narrowing backbone_ingress_cidrs of the origin or other deployments."
  value       = [for id in sort(keys(local.edges)) : "${aws_eip.edge[id].public_ip}/32"]
}

output "vpc_ids" {
  description = "The VPC of each region, by region id."
  value       = { for region, vpc in aws_vpc.this : region => vpc.id }
}

output "security_group_ids" {
  description = "The edges' security group in each region, by region id."
  value       = { for region, sg in aws_security_group.edge : region => sg.id }
}

output "iam_role_name" {
  description = "The edges' IAM role, to attach more policies (for example CloudWatch or SSM Session Manager)."
  value       = aws_iam_role.edge.name
}

output "workers" {
  description = "Media workers per edge, by region id (the instance type's vCPUs, capped at the port plan's media_port_span)."
  value       = local.workers
}
