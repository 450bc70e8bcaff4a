output "name" {
  description = "The deployment name, the prefix of resource names."
  value       = var.name
}

output "regions" {
  description = "Regions by id: aws_region, latitude, longitude, edge_count, capacity, dial_percent, and edge_ids (sorted)."
  value       = local.regions
}

output "edges" {
  description = "Edges by id (<region>-<n>): region, index within the region (from 0), aws_region, latitude, longitude, capacity, hostname (<id>.<zone>) and public_url (https://<hostname>)."
  value       = local.edges
}

output "placement" {
  description = "The origin's [placement]: every region id (sorted) and the default region."
  value = {
    regions        = local.region_ids
    default_region = var.default_region
  }
}

output "ports" {
  description = "The port plan (see the ports variable) plus media_udp_last and media_tcp_last, the last port of each media range."
  value       = local.ports
}

output "edge_ingress" {
  description = "Public ingress rules of an edge: name, protocol (tcp/udp), from_port, to_port, description."
  value       = local.edge_ingress
}

output "origin_ingress" {
  description = "Public ingress rules of an origin: name, protocol (tcp/udp), from_port, to_port, description."
  value       = local.origin_ingress
}

output "accelerator_port_ranges" {
  description = "Global Accelerator listener port ranges by protocol: udp (media) and tcp (HTTPS and ICE-TCP), each a list of {from_port, to_port}."
  value       = local.accelerator_port_ranges
}

output "dns" {
  description = "DNS names: zone (delegated to the origin), entry_name (edge.<zone>, the steered name), nameservers (names that get glue in the parent zone) and edge_names (edge id to <id>.<zone>)."
  value       = local.dns
}
