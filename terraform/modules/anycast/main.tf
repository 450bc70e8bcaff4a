# AWS Global Accelerator in front of the edges: two static anycast addresses; a client enters
# AWS at the nearest edge location and reaches the nearest region whose edges pass the
# health check (/readyz), failing over to the next region when none does.
#
# Two listeners: UDP for WebRTC media, TCP for HTTPS and ICE-TCP. Both use SOURCE_IP
# affinity, so that all of a client's flows (STUN, media, signaling) land on one edge as
# long as the set of healthy edges does not change. One endpoint group per region and
# listener; every edge of the region is an endpoint.

locals {
  listeners = {
    udp = { protocol = "UDP", port_ranges = var.topology.accelerator_port_ranges.udp }
    tcp = { protocol = "TCP", port_ranges = var.topology.accelerator_port_ranges.tcp }
  }

  endpoint_groups = merge([
    for listener in keys(local.listeners) : {
      for region, r in var.topology.regions : "${listener}/${region}" => {
        listener     = listener
        region       = region
        aws_region   = r.aws_region
        dial_percent = r.dial_percent
        instance_ids = [for id in sort(keys(var.edges)) : var.edges[id].instance_id if var.edges[id].region == region]
      }
    }
  ]...)
}

resource "aws_globalaccelerator_accelerator" "this" {
  name            = var.topology.name
  ip_address_type = var.ip_address_type
  enabled         = true
  tags            = merge(var.tags, { "arbor:deployment" = var.topology.name })

  attributes {
    flow_logs_enabled   = var.flow_logs != null
    flow_logs_s3_bucket = try(var.flow_logs.bucket, null)
    flow_logs_s3_prefix = try(var.flow_logs.prefix, null)
  }
}

resource "aws_globalaccelerator_listener" "this" {
  for_each        = local.listeners
  accelerator_arn = aws_globalaccelerator_accelerator.this.arn
  protocol        = each.value.protocol
  client_affinity = "SOURCE_IP"

  dynamic "port_range" {
    for_each = each.value.port_ranges
    content {
      from_port = port_range.value.from_port
      to_port   = port_range.value.to_port
    }
  }
}

resource "aws_globalaccelerator_endpoint_group" "this" {
  for_each              = local.endpoint_groups
  listener_arn          = aws_globalaccelerator_listener.this[each.value.listener].arn
  endpoint_group_region = each.value.aws_region

  # UDP cannot be health-checked: both listeners check the edge's /readyz over HTTPS.
  health_check_protocol         = "HTTPS"
  health_check_port             = var.topology.ports.https
  health_check_path             = var.health_check.path
  health_check_interval_seconds = var.health_check.interval_seconds
  threshold_count               = var.health_check.threshold_count
  traffic_dial_percentage       = each.value.dial_percent

  dynamic "endpoint_configuration" {
    for_each = each.value.instance_ids
    content {
      endpoint_id                    = endpoint_configuration.value
      weight                         = var.endpoint_weight
      client_ip_preservation_enabled = true
    }
  }
}
