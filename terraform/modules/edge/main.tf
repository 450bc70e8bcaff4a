# Arbor edges in every region of the topology, from one AWS provider: each regional resource
# names its region (AWS provider v6), so regions are a for_each, not a provider per region.
#
# Per region: a VPC with public subnets, a security group with the port plan, a launch
# template (Debian 12, IMDSv2, encrypted root). Per edge: an Elastic IP, allocated before
# the instance so that its address is in the rendered config, and an instance whose user
# data is the cloud-init document from ./modules/config.

locals {
  name    = var.topology.name
  regions = var.topology.regions
  edges   = var.topology.edges
  ports   = var.topology.ports

  tags = merge(var.tags, { "arbor:deployment" = local.name, "arbor:role" = "edge" })

  # One media worker per vCPU, but never more than the port range the security group and
  # the accelerator open.
  workers = {
    for region, t in data.aws_ec2_instance_type.edge : region => min(t.default_vcpus, local.ports.media_port_span)
  }

  subnets = merge([
    for region, r in local.regions : {
      for i in range(var.subnets_per_region) : "${region}/${i}" => {
        region     = region
        aws_region = r.aws_region
        index      = i
      }
    }
  ]...)

  # (region, rule) pairs for the security group rules.
  ingress = merge([
    for region, r in local.regions : {
      for rule in var.topology.edge_ingress : "${region}/${rule.name}" => merge(rule, {
        region     = region
        aws_region = r.aws_region
        cidrs      = rule.name == "relay" ? var.backbone_ingress_cidrs : ["0.0.0.0/0"]
      })
    }
  ]...)
  ingress_rules = merge([
    for key, rule in local.ingress : {
      for i, cidr in rule.cidrs : "${key}/${i}" => merge(rule, { cidr = cidr })
    }
  ]...)
  ssh_rules = merge([
    for region, r in local.regions : {
      for i, cidr in var.ssh_ingress_cidrs : "${region}/${i}" => {
        aws_region = r.aws_region
        region     = region
        cidr       = cidr
      }
    }
  ]...)

  ami_arch = var.architecture == "amd64" ? "x86_64" : "arm64"
}

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

data "aws_ec2_instance_type" "edge" {
  for_each      = local.regions
  region        = each.value.aws_region
  instance_type = var.instance_type
}

data "aws_availability_zones" "available" {
  for_each = local.regions
  region   = each.value.aws_region
  state    = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_ami" "debian" {
  for_each    = { for region, r in local.regions : region => r if !contains(keys(var.ami_ids), region) }
  region      = each.value.aws_region
  most_recent = true
  owners      = ["136693071363"] # Debian's official cloud images

  filter {
    name   = "name"
    values = ["debian-12-${var.architecture}-*"]
  }
  filter {
    name   = "architecture"
    values = [local.ami_arch]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# ---------------------------------------------------------------------------------------
# Network: a VPC per region with public subnets. Edges need public addresses for media.

resource "aws_vpc" "this" {
  for_each             = local.regions
  region               = each.value.aws_region
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = "${local.name}-edge-${each.key}" })
}

resource "aws_internet_gateway" "this" {
  for_each = local.regions
  region   = each.value.aws_region
  vpc_id   = aws_vpc.this[each.key].id
  tags     = merge(local.tags, { Name = "${local.name}-edge-${each.key}" })
}

resource "aws_subnet" "public" {
  for_each          = local.subnets
  region            = each.value.aws_region
  vpc_id            = aws_vpc.this[each.value.region].id
  availability_zone = element(data.aws_availability_zones.available[each.value.region].names, each.value.index)
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, each.value.index)
  # Cloud-init downloads packages before the Elastic IP is associated.
  map_public_ip_on_launch = true
  tags                    = merge(local.tags, { Name = "${local.name}-edge-${each.value.region}-${each.value.index}" })
}

resource "aws_route_table" "public" {
  for_each = local.regions
  region   = each.value.aws_region
  vpc_id   = aws_vpc.this[each.key].id
  tags     = merge(local.tags, { Name = "${local.name}-edge-${each.key}" })
}

resource "aws_route" "internet" {
  for_each               = local.regions
  region                 = each.value.aws_region
  route_table_id         = aws_route_table.public[each.key].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[each.key].id
}

resource "aws_route_table_association" "public" {
  for_each       = local.subnets
  region         = each.value.aws_region
  subnet_id      = aws_subnet.public[each.key].id
  route_table_id = aws_route_table.public[each.value.region].id
}

# ---------------------------------------------------------------------------------------
# Security group: the topology's port plan, open to the Internet (clients come from
# anywhere, and Global Accelerator preserves their addresses).

resource "aws_security_group" "edge" {
  for_each    = local.regions
  region      = each.value.aws_region
  name        = "${local.name}-edge-${each.key}"
  description = "Arbor edges in ${each.key}: HTTPS, WebRTC media, QUIC backbone"
  vpc_id      = aws_vpc.this[each.key].id
  tags        = merge(local.tags, { Name = "${local.name}-edge-${each.key}" })
}

resource "aws_vpc_security_group_ingress_rule" "edge" {
  for_each          = local.ingress_rules
  region            = each.value.aws_region
  security_group_id = aws_security_group.edge[each.value.region].id
  ip_protocol       = each.value.protocol
  from_port         = each.value.from_port
  to_port           = each.value.to_port
  cidr_ipv4         = each.value.cidr
  description       = each.value.description
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = local.ssh_rules
  region            = each.value.aws_region
  security_group_id = aws_security_group.edge[each.value.region].id
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value.cidr
  description       = "SSH"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all" {
  for_each          = local.regions
  region            = each.value.aws_region
  security_group_id = aws_security_group.edge[each.key].id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  description       = "Media to clients, the backbone, packages, SSM"
  tags              = local.tags
}

# ---------------------------------------------------------------------------------------
# IAM: edges read their own secrets from SSM Parameter Store, nothing else.

resource "aws_iam_role" "edge" {
  name = "${local.name}-edge"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "secrets" {
  name = "read-edge-secrets"
  role = aws_iam_role.edge.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = ["ssm:GetParameter"]
      Resource = [
        for p in ["api-keys", "pki/ca.pem", "pki/edge-*", "tls/*"] :
        "arn:${data.aws_partition.current.partition}:ssm:${var.secrets.region}:${data.aws_caller_identity.current.account_id}:parameter${var.secrets.prefix}/${p}"
      ]
    }]
  })
}

resource "aws_iam_instance_profile" "edge" {
  name = "${local.name}-edge"
  role = aws_iam_role.edge.name
  tags = local.tags
}

# ---------------------------------------------------------------------------------------
# Instances.

resource "aws_launch_template" "edge" {
  for_each               = local.regions
  region                 = each.value.aws_region
  name                   = "${local.name}-edge-${each.key}"
  description            = "Arbor edge, Debian 12"
  image_id               = try(var.ami_ids[each.key], data.aws_ami.debian[each.key].id)
  instance_type          = var.instance_type
  key_name               = var.key_name
  vpc_security_group_ids = [aws_security_group.edge[each.key].id]
  update_default_version = true

  iam_instance_profile {
    name = aws_iam_instance_profile.edge.name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda" # the root device of Debian's AMIs
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }
  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags
}

resource "aws_eip" "edge" {
  for_each = local.edges
  region   = each.value.aws_region
  domain   = "vpc"
  tags     = merge(local.tags, { Name = "${local.name}-edge-${each.key}", "arbor:edge" = each.key })
}

module "config" {
  source   = "./modules/config"
  for_each = local.edges

  edge         = each.value
  ports        = local.ports
  workers      = local.workers[each.value.region]
  public_ip    = aws_eip.edge[each.key].public_ip
  media_ip     = var.advertise_anycast_ip
  origin_ip    = var.origin_ip
  binary       = var.binary
  secrets      = var.secrets
  cors_origins = var.cors_origins
  log_level    = var.log_level
}

resource "aws_instance" "edge" {
  for_each  = local.edges
  region    = each.value.aws_region
  subnet_id = aws_subnet.public["${each.value.region}/${each.value.index % var.subnets_per_region}"].id

  launch_template {
    id      = aws_launch_template.edge[each.value.region].id
    version = aws_launch_template.edge[each.value.region].latest_version
  }

  user_data                   = module.config[each.key].cloud_init
  user_data_replace_on_change = true

  tags = merge(local.tags, { Name = "${local.name}-edge-${each.key}", "arbor:edge" = each.key, "arbor:region" = each.value.region })

  lifecycle {
    precondition {
      condition     = length(module.config[each.key].cloud_init) <= 16384
      error_message = "The cloud-init document for ${each.key} exceeds EC2's 16 KiB user data limit."
    }
  }
}

resource "aws_eip_association" "edge" {
  for_each      = local.edges
  region        = each.value.aws_region
  allocation_id = aws_eip.edge[each.key].allocation_id
  instance_id   = aws_instance.edge[each.key].id
}
