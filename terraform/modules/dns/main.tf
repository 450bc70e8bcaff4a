# Delegates the edge zone from its parent's Route 53 hosted zone to the origin's
# authoritative DNS: an NS record set for the zone, and an A record (glue) for each
# nameserver name. The origin then answers edge.<zone> with the nearest healthy edge and
# <edge-id>.<zone> with that edge. Optional: the API's name and an anycast alias.

locals {
  parent = trimsuffix(data.aws_route53_zone.parent.name, ".")
}

data "aws_route53_zone" "parent" {
  zone_id = var.parent_zone_id
}

resource "aws_route53_record" "delegation" {
  zone_id = var.parent_zone_id
  name    = var.zone
  type    = "NS"
  ttl     = var.ns_ttl
  records = sort(keys(var.nameservers))

  lifecycle {
    precondition {
      condition     = endswith(var.zone, ".${local.parent}")
      error_message = "zone ${var.zone} is not below the parent zone ${local.parent}."
    }
  }
}

resource "aws_route53_record" "glue" {
  for_each = var.nameservers
  zone_id  = var.parent_zone_id
  name     = each.key
  type     = "A"
  ttl      = var.ns_ttl
  records  = [each.value]

  lifecycle {
    precondition {
      condition     = endswith(each.key, ".${local.parent}")
      error_message = "Nameserver ${each.key} is not below the parent zone ${local.parent}, so its address cannot be published there."
    }
  }
}

resource "aws_route53_record" "api" {
  count   = var.api == null ? 0 : 1
  zone_id = var.parent_zone_id
  name    = var.api.name
  type    = "A"
  ttl     = var.api.ttl
  records = [var.api.ipv4]
}

resource "aws_route53_record" "anycast" {
  count   = var.anycast == null ? 0 : 1
  zone_id = var.parent_zone_id
  name    = var.anycast.name
  type    = "A"

  alias {
    name                   = var.anycast.dns_name
    zone_id                = var.anycast.zone_id
    evaluate_target_health = false
  }
}
