# The Arbor origin: two nodes (a and b) running arbor-origin against one RDS PostgreSQL
# database, and one Elastic IP on the active node. Edges dial that address, the edge zone
# is delegated to it, and the API name points at it, so failing over is moving the address
# (`active`), and nothing else changes: the standby already has the shared state.

locals {
  name  = var.topology.name
  ports = var.topology.ports
  nodes = toset(["a", "b"])

  tags = merge(var.tags, { "arbor:deployment" = local.name, "arbor:role" = "origin" })

  ingress = merge([
    for rule in var.topology.origin_ingress : {
      for i, cidr in(
        rule.name == "https" ? var.api_ingress_cidrs :
        rule.name == "relay" ? var.relay_ingress_cidrs :
        ["0.0.0.0/0"]
      ) : "${rule.name}/${i}" => merge(rule, { cidr = cidr })
    }
  ]...)

  db_major = split(".", var.db.engine_version)[0]
}

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

data "aws_availability_zones" "available" {
  region = var.aws_region
  state  = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  region      = var.aws_region
  most_recent = true
  owners      = ["136693071363"] # Debian's official cloud images

  filter {
    name   = "name"
    values = ["debian-12-${var.architecture}-*"]
  }
  filter {
    name   = "architecture"
    values = [var.architecture == "amd64" ? "x86_64" : "arm64"]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# ---------------------------------------------------------------------------------------
# Network: public subnets for the nodes (one per node, in two zones), private subnets for
# the database.

resource "aws_vpc" "this" {
  region               = var.aws_region
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = "${local.name}-origin" })
}

resource "aws_internet_gateway" "this" {
  region = var.aws_region
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${local.name}-origin" })
}

resource "aws_subnet" "public" {
  count                   = 2
  region                  = var.aws_region
  vpc_id                  = aws_vpc.this.id
  availability_zone       = data.aws_availability_zones.available.names[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = true
  tags                    = merge(local.tags, { Name = "${local.name}-origin-public-${count.index}" })
}

resource "aws_subnet" "private" {
  count             = 2
  region            = var.aws_region
  vpc_id            = aws_vpc.this.id
  availability_zone = data.aws_availability_zones.available.names[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, 8 + count.index)
  tags              = merge(local.tags, { Name = "${local.name}-origin-private-${count.index}" })
}

resource "aws_route_table" "public" {
  region = var.aws_region
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${local.name}-origin-public" })
}

resource "aws_route" "internet" {
  region                 = var.aws_region
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = 2
  region         = var.aws_region
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# ---------------------------------------------------------------------------------------
# Security groups: the topology's origin ports for the nodes; PostgreSQL from the nodes
# only for the database.

resource "aws_security_group" "origin" {
  region      = var.aws_region
  name        = "${local.name}-origin"
  description = "Arbor origin: HTTPS API, QUIC control links, authoritative DNS"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.name}-origin" })
}

resource "aws_vpc_security_group_ingress_rule" "origin" {
  for_each          = local.ingress
  region            = var.aws_region
  security_group_id = aws_security_group.origin.id
  ip_protocol       = each.value.protocol
  from_port         = each.value.from_port
  to_port           = each.value.to_port
  cidr_ipv4         = each.value.cidr
  description       = each.value.description
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(var.ssh_ingress_cidrs)
  region            = var.aws_region
  security_group_id = aws_security_group.origin.id
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
  description       = "SSH"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "origin" {
  region            = var.aws_region
  security_group_id = aws_security_group.origin.id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  description       = "Edges, the database, packages, SSM and Secrets Manager"
  tags              = local.tags
}

resource "aws_security_group" "db" {
  region      = var.aws_region
  name        = "${local.name}-origin-db"
  description = "Arbor origin database: PostgreSQL from the origin nodes only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.name}-origin-db" })
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  region                       = var.aws_region
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = aws_security_group.origin.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from the origin nodes"
  tags                         = local.tags
}

# ---------------------------------------------------------------------------------------
# The shared database. RDS keeps the master password in Secrets Manager (never in
# Terraform state); the nodes read it at boot.

resource "aws_db_subnet_group" "this" {
  region     = var.aws_region
  name       = "${local.name}-origin"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_db_parameter_group" "this" {
  region = var.aws_region
  name   = "${local.name}-origin-pg${local.db_major}"
  family = "postgres${local.db_major}"
  tags   = local.tags

  parameter {
    name  = "rds.force_ssl"
    value = var.db.sslmode == "verify-full" ? "1" : "0"
  }
}

resource "aws_db_instance" "this" {
  region                      = var.aws_region
  identifier                  = "${local.name}-origin"
  engine                      = "postgres"
  engine_version              = var.db.engine_version
  instance_class              = var.db.instance_class
  allocated_storage           = var.db.allocated_storage_gb
  max_allocated_storage       = var.db.max_allocated_storage_gb
  storage_type                = "gp3"
  storage_encrypted           = true
  db_name                     = "arbor"
  username                    = "arbor"
  manage_master_user_password = true
  db_subnet_group_name        = aws_db_subnet_group.this.name
  parameter_group_name        = aws_db_parameter_group.this.name
  vpc_security_group_ids      = [aws_security_group.db.id]
  multi_az                    = var.db.multi_az
  publicly_accessible         = false
  backup_retention_period     = var.db.backup_retention_days
  deletion_protection         = var.db.deletion_protection
  copy_tags_to_snapshot       = true
  skip_final_snapshot         = false
  final_snapshot_identifier   = "${local.name}-origin-final"
  auto_minor_version_upgrade  = true
  tags                        = local.tags
}

# ---------------------------------------------------------------------------------------
# IAM: the nodes read their own secrets and the database password, nothing else.

resource "aws_iam_role" "origin" {
  name = "${local.name}-origin"
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
  name = "read-origin-secrets"
  role = aws_iam_role.origin.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = ["ssm:GetParameter"]
        Resource = [
          for p in ["api-keys", "pki/ca.pem", "pki/origin.pem", "pki/origin.key", "tls/*"] :
          "arn:${data.aws_partition.current.partition}:ssm:${var.secrets.region}:${data.aws_caller_identity.current.account_id}:parameter${var.secrets.prefix}/${p}"
        ]
      },
      {
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [aws_db_instance.this.master_user_secret[0].secret_arn]
      },
    ]
  })
}

resource "aws_iam_instance_profile" "origin" {
  name = "${local.name}-origin"
  role = aws_iam_role.origin.name
  tags = local.tags
}

# ---------------------------------------------------------------------------------------
# Nodes.

resource "aws_launch_template" "origin" {
  region                 = var.aws_region
  name                   = "${local.name}-origin"
  description            = "Arbor origin, Debian 12"
  image_id               = coalesce(var.ami_id, try(data.aws_ami.debian[0].id, null))
  instance_type          = var.instance_type
  key_name               = var.key_name
  vpc_security_group_ids = [aws_security_group.origin.id]
  update_default_version = true

  iam_instance_profile {
    name = aws_iam_instance_profile.origin.name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda" # the root device of Debian's AMIs
    ebs {
      volume_size           = 20
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

module "config" {
  source   = "./modules/config"
  for_each = local.nodes

  node         = each.key
  placement    = var.topology.placement
  dns          = var.topology.dns
  public_ip    = aws_eip.origin.public_ip
  geoip        = var.geoip
  ports        = local.ports
  api_hostname = var.api_hostname
  binary       = var.binary
  secrets      = var.secrets
  log_level    = var.log_level
  store = {
    host            = aws_db_instance.this.address
    port            = aws_db_instance.this.port
    database        = aws_db_instance.this.db_name
    username        = aws_db_instance.this.username
    max_connections = var.db.max_connections
    sslmode         = var.db.sslmode
  }
  db_secret = {
    arn    = aws_db_instance.this.master_user_secret[0].secret_arn
    region = var.aws_region
  }
}

resource "aws_instance" "origin" {
  for_each  = local.nodes
  region    = var.aws_region
  subnet_id = aws_subnet.public[each.key == "a" ? 0 : 1].id

  launch_template {
    id      = aws_launch_template.origin.id
    version = aws_launch_template.origin.latest_version
  }

  user_data                   = module.config[each.key].cloud_init
  user_data_replace_on_change = true

  tags = merge(local.tags, { Name = "${local.name}-origin-${each.key}", "arbor:node" = each.key })

  lifecycle {
    precondition {
      condition     = length(module.config[each.key].cloud_init) <= 16384
      error_message = "The cloud-init document for node ${each.key} exceeds EC2's 16 KiB user data limit."
    }
  }
}

# The origin's one public address: edges, resolvers and API clients use it.
resource "aws_eip" "origin" {
  region = var.aws_region
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-origin" })
}

resource "aws_eip_association" "active" {
  region        = var.aws_region
  allocation_id = aws_eip.origin.allocation_id
  instance_id   = aws_instance.origin[var.active].id
}
