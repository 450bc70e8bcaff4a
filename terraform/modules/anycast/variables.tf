variable "topology" {
  description = "The topology module's outputs (pass `module.topology`): name, regions (aws_region, dial_percent), ports (https) and accelerator_port_ranges."
  type = object({
    name = string
    regions = map(object({
      aws_region   = string
      dial_percent = number
    }))
    ports = object({
      https = number
    })
    accelerator_port_ranges = object({
      udp = list(object({ from_port = number, to_port = number }))
      tcp = list(object({ from_port = number, to_port = number }))
    })
  })
}

variable "edges" {
  description = "The edge module's edges output: each edge's region and instance_id. Every edge becomes an endpoint of its region's endpoint groups."
  type = map(object({
    region      = string
    instance_id = string
  }))

  validation {
    condition     = length(var.edges) >= 1
    error_message = "edges must list at least one edge."
  }
}

variable "ip_address_type" {
  description = "IPV4 (two static IPv4 anycast addresses) or DUAL_STACK (also two IPv6 addresses; the edges' subnets then need IPv6)."
  type        = string
  default     = "IPV4"

  validation {
    condition     = contains(["IPV4", "DUAL_STACK"], var.ip_address_type)
    error_message = "ip_address_type must be IPV4 or DUAL_STACK."
  }
}

variable "health_check" {
  description = "Endpoint health checks: HTTPS GET of path on the HTTPS port every interval_seconds (10 or 30); threshold_count consecutive results flip an endpoint. An edge's /readyz answers 503 while it drains, is overloaded or has lost the origin."
  type = object({
    path             = optional(string, "/readyz")
    interval_seconds = optional(number, 10)
    threshold_count  = optional(number, 3)
  })
  default = {}

  validation {
    condition     = contains([10, 30], var.health_check.interval_seconds)
    error_message = "health_check.interval_seconds must be 10 or 30."
  }
  validation {
    condition     = var.health_check.threshold_count >= 1 && var.health_check.threshold_count <= 10
    error_message = "health_check.threshold_count must be 1 to 10."
  }
  validation {
    condition     = startswith(var.health_check.path, "/")
    error_message = "health_check.path must start with '/'."
  }
}

variable "endpoint_weight" {
  description = "Weight of every edge within its region (0-255); the accelerator spreads new clients over a region's healthy edges in proportion."
  type        = number
  default     = 128

  validation {
    condition     = var.endpoint_weight >= 0 && var.endpoint_weight <= 255
    error_message = "endpoint_weight must be 0 to 255."
  }
}

variable "flow_logs" {
  description = "Flow logs to an S3 bucket (which must allow Global Accelerator to write), or null for none."
  type = object({
    bucket = string
    prefix = optional(string, "arbor-accelerator/")
  })
  default = null
}

variable "tags" {
  description = "Tags added to the accelerator."
  type        = map(string)
  default     = {}
}
