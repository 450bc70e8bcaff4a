variable "name" {
  description = "Deployment name: the prefix of every resource name."
  type        = string
  default     = "arbor"
}

variable "home_region" {
  description = "The AWS provider's default region. Every regional resource names its own region; this one only serves the few lookups that need one."
  type        = string
  default     = "eu-central-1"
}

variable "regions" {
  description = "Arbor regions (see the topology module): three by default, Frankfurt, Virginia and Singapore."
  type = map(object({
    aws_region   = string
    latitude     = number
    longitude    = number
    edge_count   = number
    capacity     = optional(number, 10000)
    dial_percent = optional(number, 100)
  }))
  default = {
    eu = { aws_region = "eu-central-1", latitude = 50.11, longitude = 8.68, edge_count = 2 }
    us = { aws_region = "us-east-1", latitude = 38.9, longitude = -77.04, edge_count = 2 }
    ap = { aws_region = "ap-southeast-1", latitude = 1.35, longitude = 103.82, edge_count = 2 }
  }
}

variable "default_region" {
  description = "Where a join that names no region is placed."
  type        = string
  default     = "eu"
}

variable "origin_region" {
  description = "The AWS region of the origin nodes and their database (also where the secrets live)."
  type        = string
  default     = "eu-central-1"
}

variable "parent_zone_id" {
  description = "The Route 53 hosted zone of your domain (for example the zone of example.com)."
  type        = string
}

variable "dns_zone" {
  description = "The zone delegated to the origin's DNS, below the parent zone: for example rtc.example.com. Clients use edge.<zone>."
  type        = string
}

variable "api_hostname" {
  description = "The REST API's name in the parent zone, for example api.example.com."
  type        = string
}

variable "anycast_hostname" {
  description = "A name in the parent zone for the Global Accelerator entry (for example meet.example.com), or null for none."
  type        = string
  default     = null
}

variable "edge_binary" {
  description = "The arbor-edge release binary: https URL and SHA-256."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "origin_binary" {
  description = "The arbor-origin release binary: https URL and SHA-256."
  type = object({
    url    = string
    sha256 = string
  })
}

variable "secrets_prefix" {
  description = "The SSM Parameter Store path under which the secrets live (in origin_region); see the README for the parameter names."
  type        = string
  default     = "/arbor/global"
}

variable "db_sslmode" {
  description = "How arbor-origin connects to its database: verify-full, or prefer for a build without TLS in its database driver (see the origin module)."
  type        = string
  default     = "verify-full"
}

variable "geoip" {
  description = "A MaxMind-format location database for the origin's DNS steering ({ url, sha256 }), or null to steer by resolver address only."
  type = object({
    url    = string
    sha256 = string
  })
  default = null
}
