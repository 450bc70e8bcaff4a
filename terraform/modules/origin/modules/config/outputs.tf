output "toml" {
  description = "The origin's configuration file, as written to /etc/arbor/origin.toml (no secrets: API keys and the database password come from the environment and a pgpass file)."
  value       = local.origin_toml
}

output "cloud_init" {
  description = "The instance's user data: a #cloud-config document for Debian 12."
  value       = local.cloud_init
}
