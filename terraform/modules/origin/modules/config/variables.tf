variable "node" {
  description = "Which origin node this is: \"a\" or \"b\" (one is active, the other standby)."
  type        = string

  validation {
    condition     = contains(["a", "b"], var.node)
    error_message = "node must be \"a\" or \"b\"."
  }
}

variable "placement" {
  description = "The topology module's placement output: regions (every region id) and default_region."
  type = object({
    regions        = list(string)
    default_region = string
  })

  validation {
    condition     = contains(var.placement.regions, var.placement.default_region)
    error_message = "placement.default_region must be one of placement.regions."
  }
}

variable "ports" {
  description = "The topology module's ports output (https, origin_http, origin_relay, dns)."
  type = object({
    https        = number
    origin_http  = number
    origin_relay = number
    dns          = number
  })
}

variable "dns" {
  description = "The topology module's dns output (zone, entry_name, nameservers): the zone this origin is authoritative for."
  type = object({
    zone        = string
    entry_name  = string
    nameservers = list(string)
  })

  validation {
    condition     = endswith(var.dns.entry_name, ".${var.dns.zone}") && length(var.dns.nameservers) >= 1
    error_message = "dns.entry_name must be <label>.<zone>, and dns.nameservers must list at least one name."
  }
}

variable "public_ip" {
  description = "The origin's public IPv4 address (the floating Elastic IP): the address of the zone's nameservers."
  type        = string

  validation {
    condition     = can(cidrhost("${var.public_ip}/32", 0))
    error_message = "public_ip must be an IPv4 address."
  }
}

variable "geoip" {
  description = "A MaxMind-format database (city level) for DNS steering: an https URL cloud-init downloads and its SHA-256; null for none (answers then follow the resolver's address only)."
  type = object({
    url    = string
    sha256 = string
  })
  default = null

  validation {
    condition     = var.geoip == null || (can(regex("^https://[^\\s'\"\\\\]+$", var.geoip.url)) && can(regex("^[0-9a-f]{64}$", var.geoip.sha256)))
    error_message = "geoip must be null or { url = https://..., sha256 = 64 lowercase hex digits }."
  }
}

variable "store" {
  description = "The PostgreSQL database both origin nodes share: host, port, database, username (the password is read at boot), the connection pool size per node, and sslmode (verify-full: TLS verified against the RDS CA bundle; prefer: TLS when the driver has it)."
  type = object({
    host            = string
    port            = number
    database        = string
    username        = string
    max_connections = optional(number, 16)
    sslmode         = optional(string, "verify-full")
  })

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+$", var.store.host)) && var.store.port >= 1 && var.store.port <= 65535
    error_message = "store.host must be a host name and store.port a port."
  }
  validation {
    condition     = var.store.max_connections >= 1 && var.store.max_connections <= 256
    error_message = "store.max_connections must be 1 to 256 (arbor-origin's limit)."
  }
  validation {
    condition     = contains(["verify-full", "prefer"], var.store.sslmode)
    error_message = "store.sslmode must be verify-full or prefer."
  }
}

variable "db_secret" {
  description = "The Secrets Manager secret holding the database password (RDS's managed master user secret): its ARN and region."
  type = object({
    arn    = string
    region = string
  })

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@!-]+$", var.db_secret.arn))
    error_message = "db_secret.arn must be a Secrets Manager secret ARN."
  }
}

variable "api_hostname" {
  description = "The REST API's host name (the HTTPS certificate must cover it), such as api.example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.api_hostname))
    error_message = "api_hostname must be a lowercase DNS name."
  }
}

variable "binary" {
  description = "Where cloud-init downloads arbor-origin from (an https URL to the Linux binary) and its SHA-256, checked before it is installed."
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
  description = "Where the origin reads its secrets at boot: the AWS region and path prefix of its SSM parameters."
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

variable "log_level" {
  description = "arbor-origin's log filter: a level (error, warn, info, debug, trace) or target=level directives."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be a level or comma-separated target=level directives."
  }
}
