variable "name" {
  description = "Deployment name: the prefix of every resource name and tag. Lowercase letters, digits and '-', 2-24 characters, starting with a letter."
  type        = string
  default     = "arbor"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,23}$", var.name))
    error_message = "name must be 2-24 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "regions" {
  description = <<-EOT
    Arbor regions, keyed by region id (the `[edge] region` of its edges, a DNS label). Each names
    the AWS region its edges run in (one Arbor region per AWS region: Global Accelerator takes
    one endpoint group per AWS region), where the region is (degrees; placement and DNS
    steering measure great-circle distance from here), how many edges it runs, how many
    participants each edge takes, and the share of anycast traffic it accepts (0-100).
  EOT
  type = map(object({
    aws_region   = string
    latitude     = number
    longitude    = number
    edge_count   = number
    capacity     = optional(number, 10000)
    dial_percent = optional(number, 100)
  }))

  validation {
    condition     = length(var.regions) >= 1 && length(var.regions) <= 64
    error_message = "regions must list 1 to 64 regions."
  }
  validation {
    condition     = alltrue([for id, _ in var.regions : can(regex("^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$", id))])
    error_message = "Each region id must be a DNS label of at most 24 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-'."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", r.aws_region))])
    error_message = "Each aws_region must be an AWS region name such as eu-central-1."
  }
  validation {
    condition     = length(distinct([for r in values(var.regions) : r.aws_region])) == length(var.regions)
    error_message = "Two regions share an aws_region: Global Accelerator takes one endpoint group per AWS region and listener, so give each AWS region one Arbor region."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.latitude >= -90 && r.latitude <= 90 && r.longitude >= -180 && r.longitude <= 180])
    error_message = "latitude must be within -90..90 and longitude within -180..180 degrees."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.edge_count >= 1 && r.edge_count <= 99 && floor(r.edge_count) == r.edge_count])
    error_message = "edge_count must be a whole number from 1 to 99."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.capacity >= 1 && r.capacity <= 1000000 && floor(r.capacity) == r.capacity])
    error_message = "capacity must be a whole number of participants from 1 to 1000000."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.dial_percent >= 0 && r.dial_percent <= 100])
    error_message = "dial_percent must be within 0..100."
  }
}

variable "default_region" {
  description = "The region a join that names none is placed in (the origin's `[placement] default_region`). Must be a key of regions."
  type        = string

  validation {
    condition     = contains(keys(var.regions), var.default_region)
    error_message = "default_region must be one of the keys of regions."
  }
}

variable "dns_zone" {
  description = "The zone delegated to the origin's authoritative DNS, such as rtc.example.com. Clients resolve edge.<zone> (the nearest healthy edge) and <edge-id>.<zone> (one edge)."
  type        = string

  validation {
    condition     = length(var.dns_zone) <= 200 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.dns_zone))
    error_message = "dns_zone must be a lowercase DNS name with at least two labels, such as rtc.example.com."
  }
}

variable "nameserver_labels" {
  description = "Labels of the zone's nameserver names under dns_zone (ns1 gives ns1.<zone>); the parent zone gets NS records and glue for them."
  type        = list(string)
  default     = ["ns1"]

  validation {
    condition     = length(var.nameserver_labels) >= 1 && length(var.nameserver_labels) <= 4 && alltrue([for l in var.nameserver_labels : can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", l))])
    error_message = "nameserver_labels must hold 1 to 4 DNS labels."
  }
  validation {
    condition     = length(distinct(var.nameserver_labels)) == length(var.nameserver_labels) && !contains(var.nameserver_labels, "edge")
    error_message = "nameserver_labels must be distinct and must not be \"edge\" (the steered entry name)."
  }
}

variable "ports" {
  description = <<-EOT
    The port plan. https: TLS for the web client, signaling, WHIP/WHEP and the origin API
    (terminated on each host, proxied to the loopback edge_http / origin_http listener).
    media_udp / media_tcp: the first WebRTC UDP and ICE-TCP port; media worker i uses first + i,
    and media_port_span ports are opened from each (it caps the workers per edge). The media
    UDP range starts at 7900, not arbor-edge's 7882, so that it stays clear of the relay port
    7890 on hosts with more than 8 cores. edge_relay / origin_relay: the QUIC backbone (UDP).
    dns: the origin's authoritative DNS (UDP and TCP).
  EOT
  type = object({
    https           = optional(number, 443)
    edge_http       = optional(number, 7880)
    media_udp       = optional(number, 7900)
    media_tcp       = optional(number, 7982)
    media_port_span = optional(number, 32)
    edge_relay      = optional(number, 7890)
    origin_http     = optional(number, 7870)
    origin_relay    = optional(number, 7790)
    dns             = optional(number, 53)
  })
  default = {}

  validation {
    condition = alltrue([for p in [var.ports.https, var.ports.edge_http, var.ports.media_udp, var.ports.media_tcp, var.ports.edge_relay, var.ports.origin_http, var.ports.origin_relay, var.ports.dns] :
    p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "Every port must be a whole number from 1 to 65535."
  }
  validation {
    condition     = var.ports.media_port_span >= 1 && var.ports.media_port_span <= 256 && var.ports.media_udp + var.ports.media_port_span - 1 <= 65535 && var.ports.media_tcp + var.ports.media_port_span - 1 <= 65535
    error_message = "media_port_span must be 1 to 256, and both media ranges must end at or below port 65535."
  }
  validation {
    condition     = var.ports.media_udp + var.ports.media_port_span <= var.ports.media_tcp || var.ports.media_tcp + var.ports.media_port_span <= var.ports.media_udp
    error_message = "The media UDP range (media_udp + span) and ICE-TCP range (media_tcp + span) overlap: keep them apart so that a port number names one socket (arbor-edge refuses the overlap)."
  }
  validation {
    condition = alltrue([for p in [var.ports.https, var.ports.edge_http] :
    p < var.ports.media_tcp || p >= var.ports.media_tcp + var.ports.media_port_span])
    error_message = "https and edge_http must lie outside the ICE-TCP range (media_tcp + span): they are TCP listeners on the same host."
  }
  validation {
    condition     = var.ports.edge_relay < var.ports.media_udp || var.ports.edge_relay >= var.ports.media_udp + var.ports.media_port_span
    error_message = "edge_relay must lie outside the media UDP range (media_udp + span): both are UDP sockets on the same host."
  }
  validation {
    condition     = var.ports.https != var.ports.edge_http && var.ports.https != var.ports.origin_http && var.ports.dns != var.ports.https
    error_message = "https must differ from edge_http, origin_http and dns."
  }
}
