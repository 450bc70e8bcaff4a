# Renders one origin node's arbor-origin.toml and the cloud-init user data that installs it.
# No provider: ops/terraform-check.sh runs this very module offline and hands the rendered
# configuration to `arbor-origin --check-config`.

locals {
  origin_toml = templatefile("${path.module}/../../templates/origin.toml.tftpl", {
    node      = var.node
    placement = var.placement
    ports     = var.ports
    store     = var.store
    log_level = var.log_level
    dns       = var.dns
    dns_entry = trimsuffix(var.dns.entry_name, ".${var.dns.zone}")
    public_ip = var.public_ip
    geoip     = var.geoip
  })

  cloud_init = templatefile("${path.module}/../../templates/cloud-init.yaml.tftpl", {
    node         = var.node
    ports        = var.ports
    origin_toml  = local.origin_toml
    api_hostname = var.api_hostname
    binary       = var.binary
    secrets      = var.secrets
    db_secret    = var.db_secret
    geoip        = var.geoip
  })
}
