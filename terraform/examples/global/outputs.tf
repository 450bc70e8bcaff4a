output "api_url" {
  description = "The origin's REST API."
  value       = module.origin.api_url
}

output "origin_ip" {
  description = "The origin's Elastic IP (edges, DNS and API)."
  value       = module.origin.public_ip
}

output "edge_entry" {
  description = "The DNS name clients use: the origin answers it with the nearest healthy edge."
  value       = module.topology.dns.entry_name
}

output "edges" {
  description = "Every edge: region, instance, public address and URL."
  value       = module.edge.edges
}

output "anycast_ips" {
  description = "Global Accelerator's static anycast addresses."
  value       = module.anycast.static_ips
}

output "nameservers" {
  description = "The delegated zone's nameservers and their addresses."
  value       = module.dns.glue
}
