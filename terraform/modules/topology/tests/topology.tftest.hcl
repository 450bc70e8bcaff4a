# Offline tests of the topology module (no provider): `terraform test` in modules/topology.
# The layout mirrors examples/global: three regions, two edges each in eu and us, one in ap.

variables {
  name           = "arbor-test"
  default_region = "eu"
  dns_zone       = "rtc.example.com"
  regions = {
    eu = { aws_region = "eu-central-1", latitude = 50.11, longitude = 8.68, edge_count = 2 }
    us = { aws_region = "us-east-1", latitude = 38.9, longitude = -77.04, edge_count = 2, capacity = 5000 }
    ap = { aws_region = "ap-southeast-1", latitude = 1.35, longitude = 103.82, edge_count = 1, dial_percent = 50 }
  }
}

run "three_regions" {
  command = plan

  assert {
    condition     = keys(output.edges) == ["ap-1", "eu-1", "eu-2", "us-1", "us-2"]
    error_message = "Edges must be named <region>-<n> from 1: ${jsonencode(keys(output.edges))}"
  }
  assert {
    condition     = output.edges["eu-2"].index == 1 && output.edges["eu-2"].aws_region == "eu-central-1" && output.edges["eu-2"].latitude == 50.11
    error_message = "eu-2 must carry its region's AWS region and coordinates and index 1."
  }
  assert {
    condition     = output.edges["us-1"].hostname == "us-1.rtc.example.com" && output.edges["us-1"].public_url == "https://us-1.rtc.example.com"
    error_message = "An edge's hostname is <id>.<zone> and its public URL https://<hostname>."
  }
  assert {
    condition     = output.edges["us-2"].capacity == 5000 && output.edges["eu-1"].capacity == 10000
    error_message = "capacity must come from the region, defaulting to 10000."
  }
  assert {
    condition     = output.regions["eu"].edge_ids == ["eu-1", "eu-2"] && output.regions["ap"].dial_percent == 50 && output.regions["eu"].dial_percent == 100
    error_message = "regions must list their edges and dial percentages (default 100)."
  }
  assert {
    condition     = output.placement.regions == tolist(["ap", "eu", "us"]) && output.placement.default_region == "eu"
    error_message = "placement must list every region, sorted, and the default region."
  }
  assert {
    condition     = output.ports.media_udp == 7900 && output.ports.media_udp_last == 7931 && output.ports.media_tcp_last == 8013 && output.ports.edge_relay == 7890
    error_message = "The default port plan is UDP 7900-7931, ICE-TCP 7982-8013 and the relay on 7890: ${jsonencode(output.ports)}"
  }
  assert {
    condition = output.accelerator_port_ranges == {
      udp = [{ from_port = 7900, to_port = 7931 }]
      tcp = [{ from_port = 443, to_port = 443 }, { from_port = 7982, to_port = 8013 }]
    }
    error_message = "The accelerator must listen on the media UDP range, HTTPS and the ICE-TCP range."
  }
  assert {
    condition     = [for r in output.edge_ingress : "${r.protocol}/${r.from_port}-${r.to_port}"] == ["tcp/443-443", "udp/7900-7931", "tcp/7982-8013", "udp/7890-7890"]
    error_message = "Edge ingress must be HTTPS, the two media ranges and the relay port: ${jsonencode(output.edge_ingress)}"
  }
  assert {
    condition     = [for r in output.origin_ingress : "${r.protocol}/${r.from_port}"] == ["tcp/443", "udp/7790", "udp/53", "tcp/53"]
    error_message = "Origin ingress must be HTTPS, the relay port and DNS over UDP and TCP."
  }
  assert {
    condition     = output.dns.entry_name == "edge.rtc.example.com" && output.dns.nameservers == ["ns1.rtc.example.com"] && output.dns.edge_names["ap-1"] == "ap-1.rtc.example.com"
    error_message = "DNS names must be edge.<zone>, ns1.<zone> and <edge-id>.<zone>."
  }
}

run "custom_ports" {
  command = plan

  variables {
    ports = { media_udp = 20000, media_tcp = 30000, media_port_span = 100 }
  }

  assert {
    condition     = output.ports.media_udp_last == 20099 && output.ports.media_tcp_last == 30099 && output.ports.https == 443
    error_message = "Ports not given keep their defaults; the ranges follow the span."
  }
}

# A rendered edge configuration, from the very module the edge module calls, fed with this
# module's outputs (which carry more attributes than it takes).
run "edge_config_renders" {
  command = plan

  module {
    source = "../edge/modules/config"
  }

  variables {
    edge      = run.three_regions.edges["eu-2"]
    ports     = run.three_regions.ports
    workers   = 4
    public_ip = "203.0.113.12"
    origin_ip = "198.51.100.10"
    binary    = { url = "https://releases.example.com/arbor-edge", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
    secrets   = { region = "eu-central-1", prefix = "/arbor/test" }
  }

  assert {
    condition     = strcontains(output.toml, "id = \"eu-2\"\nregion = \"eu\"") && strcontains(output.toml, "public_ip = \"203.0.113.12\"") && strcontains(output.toml, "origin = \"198.51.100.10:7790\"")
    error_message = "The edge TOML must carry the edge's id, region and addresses:\n${output.toml}"
  }
  assert {
    condition     = strcontains(output.toml, "latitude = 50.110000") && strcontains(output.toml, "workers = 4")
    error_message = "Coordinates are written as floats, workers as given:\n${output.toml}"
  }
  assert {
    condition     = startswith(output.cloud_init, "#cloud-config\n") && strcontains(output.cloud_init, base64encode(output.toml))
    error_message = "The cloud-init document must embed the TOML."
  }
}

run "edge_config_advertises_anycast_ip" {
  command = plan

  module {
    source = "../edge/modules/config"
  }

  variables {
    edge      = run.three_regions.edges["ap-1"]
    ports     = run.three_regions.ports
    workers   = 2
    public_ip = "203.0.113.13"
    media_ip  = "192.0.2.1"
    origin_ip = "198.51.100.10"
    binary    = { url = "https://releases.example.com/arbor-edge", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
    secrets   = { region = "eu-central-1", prefix = "/arbor/test" }
  }

  assert {
    condition     = strcontains(output.toml, "public_ip = \"192.0.2.1\"") && strcontains(output.toml, "public_addr = \"203.0.113.13:7890\"")
    error_message = "ICE candidates carry media_ip; the backbone keeps the edge's own address:\n${output.toml}"
  }
}

# The origin's configuration serves the zone with absolute nameserver names, and reads a
# location database only when one is given.
run "origin_config_renders" {
  command = plan

  module {
    source = "../origin/modules/config"
  }

  variables {
    node         = "b"
    placement    = run.three_regions.placement
    ports        = run.three_regions.ports
    dns          = run.three_regions.dns
    public_ip    = "198.51.100.10"
    api_hostname = "api.example.com"
    geoip        = { url = "https://geoip.example.com/city.mmdb", sha256 = "1111111111111111111111111111111111111111111111111111111111111111" }
    binary       = { url = "https://releases.example.com/arbor-origin", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
    secrets      = { region = "eu-central-1", prefix = "/arbor/test" }
    store        = { host = "db.example.internal", port = 5432, database = "arbor", username = "arbor" }
    db_secret    = { arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:rds!db-1-AbCdEf", region = "eu-central-1" }
  }

  assert {
    condition     = strcontains(output.toml, "zone = \"rtc.example.com\"\nentry = \"edge\"\nnameservers = [\"ns1.rtc.example.com.\"]\nnameserver_ips = [\"198.51.100.10\"]\ngeoip_db = \"/var/lib/arbor/geoip.mmdb\"\n")
    error_message = "The [dns] section must name the zone, entry, absolute nameservers, their address and the database:\n${output.toml}"
  }
  assert {
    condition     = strcontains(output.toml, "regions = [\"ap\",\"eu\",\"us\"]\ndefault_region = \"eu\"") && strcontains(output.toml, "postgres://arbor@db.example.internal:5432/arbor?sslmode=verify-full")
    error_message = "The origin TOML must carry the placement and the DSN:\n${output.toml}"
  }
  assert {
    condition     = strcontains(output.cloud_init, "https://geoip.example.com/city.mmdb") && strcontains(output.cloud_init, "Arbor origin coordinator (node b)")
    error_message = "cloud-init must download the location database."
  }
}

run "rejects_shared_aws_region" {
  command = plan

  variables {
    regions = {
      eu  = { aws_region = "eu-central-1", latitude = 50.11, longitude = 8.68, edge_count = 1 }
      eu2 = { aws_region = "eu-central-1", latitude = 48.1, longitude = 11.6, edge_count = 1 }
    }
  }

  expect_failures = [var.regions]
}

run "rejects_bad_region_values" {
  command = plan

  variables {
    regions = {
      "EU" = { aws_region = "frankfurt", latitude = 91, longitude = 8.68, edge_count = 0 }
    }
    default_region = "EU"
  }

  expect_failures = [var.regions]
}

run "rejects_unknown_default_region" {
  command = plan

  variables {
    default_region = "sa"
  }

  expect_failures = [var.default_region]
}

run "rejects_overlapping_media_ranges" {
  command = plan

  variables {
    ports = { media_udp = 7900, media_tcp = 7920, media_port_span = 32 }
  }

  expect_failures = [var.ports]
}

run "rejects_relay_inside_media_range" {
  command = plan

  variables {
    ports = { edge_relay = 7890, media_udp = 7880, media_port_span = 16 }
  }

  expect_failures = [var.ports]
}

run "rejects_bad_zone" {
  command = plan

  variables {
    dns_zone = "Not A Zone"
  }

  expect_failures = [var.dns_zone]
}

run "edge_config_rejects_too_many_workers" {
  command = plan

  module {
    source = "../edge/modules/config"
  }

  variables {
    edge      = run.three_regions.edges["eu-1"]
    ports     = run.three_regions.ports
    workers   = 33
    public_ip = "203.0.113.11"
    origin_ip = "198.51.100.10"
    binary    = { url = "https://releases.example.com/arbor-edge", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
    secrets   = { region = "eu-central-1", prefix = "/arbor/test" }
  }

  expect_failures = [var.workers]
}
