# The deployment's shape as plain values: regions, edges, names and the port plan. No
# provider and no resource, so `terraform test` checks it offline; the cloud modules only
# consume its outputs, which keeps every naming and port decision in one place.

locals {
  # Sorted ids, so that every list derived from the map has a stable order.
  region_ids = sort(keys(var.regions))

  # Edge ids are <region>-<n>, n from 1, as `arbor up` names them (eu-1, eu-2, us-1, ...).
  # Each is a DNS label: it appears in <edge-id>.<zone> and in the edge's relay
  # certificate name <edge-id>.edge.arbor.internal.
  edge_list = flatten([
    for region in local.region_ids : [
      for i in range(var.regions[region].edge_count) : {
        id         = "${region}-${i + 1}"
        region     = region
        index      = i
        aws_region = var.regions[region].aws_region
        latitude   = var.regions[region].latitude
        longitude  = var.regions[region].longitude
        capacity   = var.regions[region].capacity
        hostname   = "${region}-${i + 1}.${var.dns_zone}"
        public_url = "https://${region}-${i + 1}.${var.dns_zone}"
      }
    ]
  ])
  edges = { for e in local.edge_list : e.id => e }

  regions = {
    for id in local.region_ids : id => merge(var.regions[id], {
      id       = id
      edge_ids = [for e in local.edge_list : e.id if e.region == id]
    })
  }

  ports = merge(var.ports, {
    media_udp_last = var.ports.media_udp + var.ports.media_port_span - 1
    media_tcp_last = var.ports.media_tcp + var.ports.media_port_span - 1
  })

  # What the Internet may reach on an edge. The backbone port is open too: mutual TLS from
  # the cluster CA is what keeps strangers off it (docs/relay-tls.md).
  edge_ingress = [
    { name = "https", protocol = "tcp", from_port = local.ports.https, to_port = local.ports.https, description = "HTTPS: web client, signaling WebSocket, WHIP/WHEP, /readyz" },
    { name = "media-udp", protocol = "udp", from_port = local.ports.media_udp, to_port = local.ports.media_udp_last, description = "WebRTC media, one UDP port per worker" },
    { name = "media-tcp", protocol = "tcp", from_port = local.ports.media_tcp, to_port = local.ports.media_tcp_last, description = "ICE-TCP media, one port per worker" },
    { name = "relay", protocol = "udp", from_port = local.ports.edge_relay, to_port = local.ports.edge_relay, description = "QUIC backbone between edges (mutual TLS)" },
  ]

  # What the Internet may reach on an origin.
  origin_ingress = [
    { name = "https", protocol = "tcp", from_port = local.ports.https, to_port = local.ports.https, description = "HTTPS: the REST API /v1" },
    { name = "relay", protocol = "udp", from_port = local.ports.origin_relay, to_port = local.ports.origin_relay, description = "QUIC control links from edges (mutual TLS)" },
    { name = "dns-udp", protocol = "udp", from_port = local.ports.dns, to_port = local.ports.dns, description = "Authoritative DNS for the edge zone" },
    { name = "dns-tcp", protocol = "tcp", from_port = local.ports.dns, to_port = local.ports.dns, description = "Authoritative DNS for the edge zone (truncated answers, zone checks)" },
  ]

  # Global Accelerator listeners: UDP carries WebRTC media, TCP carries HTTPS and ICE-TCP.
  accelerator_port_ranges = {
    udp = [{ from_port = local.ports.media_udp, to_port = local.ports.media_udp_last }]
    tcp = [
      { from_port = local.ports.https, to_port = local.ports.https },
      { from_port = local.ports.media_tcp, to_port = local.ports.media_tcp_last },
    ]
  }

  dns = {
    zone        = var.dns_zone
    entry_name  = "edge.${var.dns_zone}"
    nameservers = [for l in var.nameserver_labels : "${l}.${var.dns_zone}"]
    edge_names  = { for id, e in local.edges : id => e.hostname }
  }
}
