variable "parent_zone_id" {
  description = "The Route 53 hosted zone of the parent domain (example.com for the zone rtc.example.com). It gets the delegation, the glue and the optional API and anycast records."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{4,31}$", var.parent_zone_id))
    error_message = "parent_zone_id must be a Route 53 hosted zone id (Z...)."
  }
}

variable "zone" {
  description = "The zone delegated to the origin's authoritative DNS (the topology module's dns.zone), such as rtc.example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.zone))
    error_message = "zone must be a lowercase DNS name."
  }
}

variable "nameservers" {
  description = "The zone's nameservers: host name to IPv4 address (the topology module's dns.nameservers, each at the origin module's public_ip). Names inside the zone need glue, and get it: every name gets an A record in the parent zone."
  type        = map(string)

  validation {
    condition     = length(var.nameservers) >= 1 && alltrue([for ip in values(var.nameservers) : can(cidrhost("${ip}/32", 0))])
    error_message = "nameservers must map at least one host name to an IPv4 address."
  }
}

variable "ns_ttl" {
  description = "TTL of the delegation (NS) and glue (A) records, in seconds. Long is fine: failing over the origin moves its address, not the names."
  type        = number
  default     = 86400

  validation {
    condition     = var.ns_ttl >= 60 && var.ns_ttl <= 172800
    error_message = "ns_ttl must be 60 to 172800 seconds."
  }
}

variable "api" {
  description = "An A record for the origin's REST API (name and IPv4, the origin module's public_ip), or null for none."
  type = object({
    name = string
    ipv4 = string
    ttl  = optional(number, 300)
  })
  default = null

  validation {
    condition     = var.api == null || can(cidrhost("${var.api.ipv4}/32", 0))
    error_message = "api.ipv4 must be an IPv4 address."
  }
}

variable "anycast" {
  description = "An alias record for the anycast entry name (name, and the anycast module's dns_name and hosted_zone_id), or null for none. Clients that use it reach the nearest healthy edge through Global Accelerator instead of the origin's DNS steering."
  type = object({
    name     = string
    dns_name = string
    zone_id  = string
  })
  default = null
}
