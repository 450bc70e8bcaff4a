output "toml" {
  description = "The edge's configuration file, as written to /etc/arbor/edge.toml (no secrets: [auth.keys] comes from the environment)."
  value       = local.edge_toml
}

output "cloud_init" {
  description = "The instance's user data: a #cloud-config document for Debian 12."
  value       = local.cloud_init
}
