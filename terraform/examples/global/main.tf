# Arbor in three regions: an origin (active + standby, RDS PostgreSQL) in Frankfurt, two
# edges each in Frankfurt, Virginia and Singapore, Global Accelerator in front of the edges,
# and the edge zone delegated to the origin's DNS.
#
#   terraform init && terraform apply
#
# Create the SSM parameters under secrets_prefix first (README.md).

provider "aws" {
  region = var.home_region
}

module "topology" {
  source = "../../modules/topology"

  name           = var.name
  regions        = var.regions
  default_region = var.default_region
  dns_zone       = var.dns_zone
}

locals {
  secrets = { region = var.origin_region, prefix = var.secrets_prefix }
}

module "origin" {
  source = "../../modules/origin"

  topology     = module.topology
  aws_region   = var.origin_region
  api_hostname = var.api_hostname
  binary       = var.origin_binary
  secrets      = local.secrets
  db           = { sslmode = var.db_sslmode }
  geoip        = var.geoip
}

module "edge" {
  source = "../../modules/edge"

  topology  = module.topology
  origin_ip = module.origin.public_ip
  binary    = var.edge_binary
  secrets   = local.secrets
}

module "anycast" {
  source = "../../modules/anycast"

  topology = module.topology
  edges    = module.edge.edges
}

module "dns" {
  source = "../../modules/dns"

  parent_zone_id = var.parent_zone_id
  zone           = module.topology.dns.zone
  nameservers    = { for ns in module.topology.dns.nameservers : ns => module.origin.public_ip }
  api            = { name = var.api_hostname, ipv4 = module.origin.public_ip }
  anycast = var.anycast_hostname == null ? null : {
    name     = var.anycast_hostname
    dns_name = module.anycast.dns_name
    zone_id  = module.anycast.hosted_zone_id
  }
}
