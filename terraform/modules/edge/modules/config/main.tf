# Renders one edge's arbor-edge.toml and the cloud-init user data that installs it. No
# provider: ops/terraform-check.sh runs this very module offline and hands the rendered
# configuration to `arbor-edge --check-config`.

locals {
  edge_toml = templatefile("${path.module}/../../templates/edge.toml.tftpl", {
    edge         = var.edge
    ports        = var.ports
    workers      = var.workers
    public_ip    = var.public_ip
    media_ip     = coalesce(var.media_ip, var.public_ip)
    origin_ip    = var.origin_ip
    cors_origins = var.cors_origins
    log_level    = var.log_level
  })

  cloud_init = templatefile("${path.module}/../../templates/cloud-init.yaml.tftpl", {
    edge      = var.edge
    ports     = var.ports
    edge_toml = local.edge_toml
    binary    = var.binary
    secrets   = var.secrets
  })
}
