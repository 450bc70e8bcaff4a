output "zone" {
  description = "The delegated zone."
  value       = var.zone
}

output "nameservers" {
  description = "The zone's nameserver names, as published in the NS record set."
  value       = aws_route53_record.delegation.records
}

output "glue" {
  description = "The nameserver A records in the parent zone: name to address."
  value       = { for name, r in aws_route53_record.glue : name => one(r.records) }
}

output "api_fqdn" {
  description = "The API record's name, or null."
  value       = try(aws_route53_record.api[0].fqdn, null)
}

output "anycast_fqdn" {
  description = "The anycast alias record's name, or null."
  value       = try(aws_route53_record.anycast[0].fqdn, null)
}
