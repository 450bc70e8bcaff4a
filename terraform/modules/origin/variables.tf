variable "topology" {
  description = "The topology module's outputs (pass `module.topology`): name, placement, ports, dns and origin_ingress."
  type = object({
    name = string
    placement = object({
      regions        = list(string)
      default_region = string
    })
    ports = object({
      https        = number
      origin_http  = number
      origin_relay = number
      dns          = number
    })
    dns = object({
      zone        = string
      entry_name  = string
      nameservers = list(string)
    })
    origin_ingress = list(object({
      name        = string
      protocol    = string
      from_port   = number
      to_port     = number
      description = string
    }))
  })
}

variable "aws_region" {
  description = "The AWS region the origin nodes and their database run in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-central-1."
  }
}

variable "api_hostname" {
  description = "The REST API's host name, such as api.example.com (the dns module points it at the origin; the HTTPS certificate must cover it)."
  type        = string
}

variable "active" {
  description = "Which node holds the origin's Elastic IP and so serves edges, DNS and the API: \"a\" or \"b\". Failing over is changing this (or re-associating the address with the AWS CLI); both nodes run arbor-origin against the shared database."
  type        = string
  default     = "a"

  validation {
    condition     = contains(["a", "b"], var.active)
    error_message = "active must be \"a\" or \"b\"."
  }
}

variable "geoip" {
  description = "A MaxMind-format location database (city level) for DNS steering: { url, sha256 } that cloud-init downloads and checks; null for none (the DNS then steers by the resolver's address only, with arbor-origin's fallback when it has no location)."
  type = object({
    url    = string
    sha256 = string
  })
  default = null
}

variable "binary" {
  description = "The arbor-origin Linux binary for the instances' architecture: an https URL cloud-init downloads, and its SHA-256 (checked before install)."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "secrets" {
  description = "Where the origin reads secrets at boot: the AWS region and path prefix of the SSM parameters (api-keys, pki/ca.pem, pki/origin.pem|.key, tls/fullchain.pem, tls/privkey.pem under the prefix)."
  type = object({
    region = string
    prefix = string
  })
}

variable "instance_type" {
  description = "EC2 instance type of both origin nodes."
  type        = string
  default     = "c7i.large"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must be an EC2 instance type such as c7i.large."
  }
}

variable "architecture" {
  description = "CPU architecture of instance_type and of the binary: amd64 or arm64. Picks the Debian 12 AMI."
  type        = string
  default     = "amd64"

  validation {
    condition     = contains(["amd64", "arm64"], var.architecture)
    error_message = "architecture must be amd64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI of both nodes, to pin the image in production; null for the newest official Debian 12 AMI (a new image replaces the nodes on the next apply)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI id (ami-...) or null."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the origin's VPC: two public subnets for the nodes, two private ones for the database."
  type        = string
  default     = "10.90.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR of /20 or larger."
  }
}

variable "db" {
  description = <<-EOT
    The PostgreSQL database (RDS) both nodes share. sslmode is how arbor-origin connects:
    verify-full (TLS, verified against the RDS CA; the database refuses plaintext) or prefer
    (the database also accepts plaintext, which stays inside the VPC: for an arbor-origin
    built without TLS support in its database driver).
  EOT
  type = object({
    instance_class           = optional(string, "db.t4g.medium")
    engine_version           = optional(string, "17")
    allocated_storage_gb     = optional(number, 20)
    max_allocated_storage_gb = optional(number, 100)
    multi_az                 = optional(bool, true)
    backup_retention_days    = optional(number, 7)
    deletion_protection      = optional(bool, true)
    max_connections          = optional(number, 16)
    sslmode                  = optional(string, "verify-full")
  })
  default = {}

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db.instance_class))
    error_message = "db.instance_class must be an RDS instance class such as db.t4g.medium."
  }
  validation {
    condition     = can(regex("^1[3-9](\\.[0-9]+)?$", var.db.engine_version))
    error_message = "db.engine_version must be PostgreSQL 13 or later, such as 17 or 16.4."
  }
  validation {
    condition     = var.db.allocated_storage_gb >= 20 && var.db.max_allocated_storage_gb >= var.db.allocated_storage_gb
    error_message = "db.allocated_storage_gb must be at least 20, and max_allocated_storage_gb at least that."
  }
  validation {
    condition     = var.db.backup_retention_days >= 1 && var.db.backup_retention_days <= 35
    error_message = "db.backup_retention_days must be 1 to 35."
  }
  validation {
    condition     = contains(["verify-full", "prefer"], var.db.sslmode)
    error_message = "db.sslmode must be verify-full or prefer."
  }
}

variable "api_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the REST API over HTTPS (the app servers that create meetings and mint tokens)."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.api_ingress_cidrs) >= 1 && alltrue([for c in var.api_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "api_ingress_cidrs must hold at least one IPv4 CIDR."
  }
}

variable "relay_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the relay port. Mutual TLS already refuses strangers; the edges' addresses (the edge module's public_ips) narrow it further."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.relay_ingress_cidrs) >= 1 && alltrue([for c in var.relay_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "relay_ingress_cidrs must hold at least one IPv4 CIDR."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH, or null for none."
  type        = string
  default     = null
}

variable "ssh_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach SSH (port 22). Empty: port 22 stays closed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_ingress_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "ssh_ingress_cidrs must be IPv4 CIDRs, and not 0.0.0.0/0."
  }
}

variable "log_level" {
  description = "arbor-origin's log filter: a level or target=level directives."
  type        = string
  default     = "info"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
