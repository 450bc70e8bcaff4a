variable "topology" {
  description = "The topology module's outputs (pass `module.topology`): regions, edges, ports and edge_ingress."
  type = object({
    name = string
    regions = map(object({
      aws_region = string
      edge_ids   = list(string)
    }))
    edges = map(object({
      id         = string
      region     = string
      index      = number
      aws_region = string
      latitude   = number
      longitude  = number
      capacity   = number
      hostname   = string
      public_url = string
    }))
    ports = object({
      https           = number
      edge_http       = number
      media_udp       = number
      media_tcp       = number
      media_port_span = number
      edge_relay      = number
      origin_relay    = number
    })
    edge_ingress = list(object({
      name        = string
      protocol    = string
      from_port   = number
      to_port     = number
      description = string
    }))
  })
}

variable "origin_ip" {
  description = "The origin's public IPv4 address (the origin module's public_ip output); edges dial it on the origin relay port."
  type        = string

  validation {
    condition     = can(cidrhost("${var.origin_ip}/32", 0))
    error_message = "origin_ip must be an IPv4 address."
  }
}

variable "advertise_anycast_ip" {
  description = <<-EOT
    An accelerator address (the anycast module's static_ips[0]) for the edges to put in their ICE
    candidates, so that media also enters AWS at the nearest edge location; null (the default)
    for each edge's own Elastic IP. Only sound with one edge per region: ICE-lite state lives
    on the edge that took the signaling, and SOURCE_IP affinity keeps a client's UDP and TCP
    flows on one endpoint per listener, not across listeners.
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.advertise_anycast_ip == null || can(cidrhost("${var.advertise_anycast_ip}/32", 0))
    error_message = "advertise_anycast_ip must be an IPv4 address or null."
  }
}

variable "binary" {
  description = "The arbor-edge Linux binary for the instances' architecture: an https URL cloud-init downloads, and its SHA-256 (checked before install)."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "secrets" {
  description = "Where edges read secrets at boot: the AWS region and path prefix of the SSM parameters (api-keys, pki/ca.pem, pki/edge-<id>.pem|.key, tls/fullchain.pem, tls/privkey.pem under the prefix)."
  type = object({
    region = string
    prefix = string
  })
}

variable "instance_type" {
  description = "EC2 instance type of every edge. Media workers = its vCPUs, capped at the port plan's media_port_span."
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

variable "ami_ids" {
  description = "AMI per region id, to pin images in production. Regions not listed use the newest official Debian 12 AMI (a new image replaces that region's edges on the next apply)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for id in values(var.ami_ids) : can(regex("^ami-[0-9a-f]{8,17}$", id))])
    error_message = "ami_ids values must be AMI ids (ami-...)."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of each region's VPC. Regions do not peer (the backbone runs over public addresses), so every region may use the same one."
  type        = string
  default     = "10.80.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR of /20 or larger."
  }
}

variable "subnets_per_region" {
  description = "Public subnets per region, each in its own availability zone; a region's edges are spread over them in turn."
  type        = number
  default     = 2

  validation {
    condition     = var.subnets_per_region >= 1 && var.subnets_per_region <= 4 && floor(var.subnets_per_region) == var.subnets_per_region
    error_message = "subnets_per_region must be 1 to 4."
  }
}

variable "root_volume_gb" {
  description = "Size of each edge's encrypted gp3 root volume, in GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_gb >= 8 && var.root_volume_gb <= 1024
    error_message = "root_volume_gb must be 8 to 1024."
  }
}

variable "backbone_ingress_cidrs" {
  description = "Who may reach the QUIC backbone port. Mutual TLS from the relay CA already refuses strangers; narrow this to the edges' and origin's addresses for defence in depth."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.backbone_ingress_cidrs) >= 1 && alltrue([for c in var.backbone_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "backbone_ingress_cidrs must hold at least one IPv4 CIDR."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH, or null for none. A key pair is regional: it must exist under this name in every region."
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

variable "cors_origins" {
  description = "Origins allowed to call WHIP/WHEP from a browser: \"*\" or https://host[:port] entries."
  type        = list(string)
  default     = ["*"]
}

variable "log_level" {
  description = "arbor-edge's log filter: a level or target=level directives."
  type        = string
  default     = "info"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
