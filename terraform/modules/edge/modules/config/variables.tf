variable "edge" {
  description = "The edge, as the topology module's edges output lists it: id, region, latitude, longitude, capacity, hostname and public_url."
  type = object({
    id         = string
    region     = string
    latitude   = number
    longitude  = number
    capacity   = number
    hostname   = string
    public_url = string
  })

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$", var.edge.id))
    error_message = "edge.id must be a lowercase DNS-safe name (it names the edge's relay certificate)."
  }
  validation {
    condition     = startswith(var.edge.public_url, "https://")
    error_message = "edge.public_url must be an https:// URL."
  }
}

variable "ports" {
  description = "The topology module's ports output (https, edge_http, media_udp, media_tcp, media_port_span, edge_relay, origin_relay)."
  type = object({
    https           = number
    edge_http       = number
    media_udp       = number
    media_tcp       = number
    media_port_span = number
    edge_relay      = number
    origin_relay    = number
  })
}

variable "workers" {
  description = "Media worker threads, one UDP and one ICE-TCP port each: at most ports.media_port_span, since only that many ports are open."
  type        = number

  validation {
    condition     = var.workers >= 1 && var.workers <= var.ports.media_port_span && floor(var.workers) == var.workers
    error_message = "workers must be a whole number from 1 to ports.media_port_span."
  }
}

variable "public_ip" {
  description = "The edge's public IPv4 address (its Elastic IP): put in ICE candidates and registered as its backbone address."
  type        = string

  validation {
    condition     = can(cidrhost("${var.public_ip}/32", 0))
    error_message = "public_ip must be an IPv4 address."
  }
}

variable "media_ip" {
  description = "The address put in ICE candidates instead of public_ip, or null for public_ip: an anycast address in front of this edge (see the edge module's advertise_anycast_ip)."
  type        = string
  default     = null

  validation {
    condition     = var.media_ip == null || can(cidrhost("${var.media_ip}/32", 0))
    error_message = "media_ip must be an IPv4 address or null."
  }
}

variable "origin_ip" {
  description = "The origin's public IPv4 address (its floating Elastic IP), which the edge dials on ports.origin_relay."
  type        = string

  validation {
    condition     = can(cidrhost("${var.origin_ip}/32", 0))
    error_message = "origin_ip must be an IPv4 address."
  }
}

variable "binary" {
  description = "Where cloud-init downloads arbor-edge from (an https URL to the Linux binary for the instance's architecture) and its SHA-256, checked before it is installed."
  type = object({
    url    = string
    sha256 = string
  })

  validation {
    condition     = can(regex("^https://[^\\s'\"\\\\]+$", var.binary.url))
    error_message = "binary.url must be an https:// URL without quotes, backslashes or whitespace."
  }
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.binary.sha256))
    error_message = "binary.sha256 must be 64 lowercase hex digits."
  }
}

variable "secrets" {
  description = "Where the edge reads its secrets at boot: the AWS region and path prefix of its SSM parameters (see the edge module's README for the names)."
  type = object({
    region = string
    prefix = string
  })

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.secrets.region))
    error_message = "secrets.region must be an AWS region name."
  }
  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.secrets.prefix))
    error_message = "secrets.prefix must be an SSM path such as /arbor/prod: '/'-separated letters, digits, '_', '.', '-', no trailing '/'."
  }
}

variable "cors_origins" {
  description = "Origins allowed to call WHIP/WHEP from a browser: \"*\" or https://host[:port] entries."
  type        = list(string)
  default     = ["*"]

  validation {
    condition     = alltrue([for o in var.cors_origins : o == "*" || can(regex("^https?://[^\\s/?#]+$", o))])
    error_message = "cors_origins entries must be \"*\" or an origin such as https://app.example.com."
  }
}

variable "log_level" {
  description = "arbor-edge's log filter: a level (error, warn, info, debug, trace) or target=level directives."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be a level or comma-separated target=level directives."
  }
}
