output "static_ips" {
  description = "The accelerator's static anycast addresses (IPv4, and IPv6 with DUAL_STACK)."
  value       = flatten([for set in aws_globalaccelerator_accelerator.this.ip_sets : set.ip_addresses])
}

output "dns_name" {
  description = "The accelerator's DNS name (resolves to the static addresses)."
  value       = aws_globalaccelerator_accelerator.this.dns_name
}

output "hosted_zone_id" {
  description = "The Route 53 zone id for alias records to the accelerator (the dns module's anycast alias)."
  value       = aws_globalaccelerator_accelerator.this.hosted_zone_id
}

output "listener_arns" {
  description = "Listener ARNs by protocol: udp (media) and tcp (HTTPS and ICE-TCP)."
  value       = { for k, l in aws_globalaccelerator_listener.this : k => l.arn }
}

output "endpoint_group_arns" {
  description = "Endpoint group ARNs by \"<listener>/<region>\", for example \"udp/eu\"."
  value       = { for k, g in aws_globalaccelerator_endpoint_group.this : k => g.arn }
}
