//! `cluster.json`: what `arbor up` started and how to reach it (DESIGN.md §4).
//!
//! ```json
//! { "origin": { "api_url": "http://127.0.0.1:7780/v1", "http_url": "http://127.0.0.1:7780",
//!               "pid": 4241, "relay_addr": "127.0.0.1:7790" },
//!   "api_key": "APIx…", "api_secret": "…",
//!   "dns": { "addr": "127.0.0.1:7853", "zone": "arbor.test", "name": "edge.arbor.test",
//!            "regions": [ { "region": "eu-west", "client_subnet": "198.51.100.0/24",
//!                           "client_subnet_v6": "2001:db8:1::/48" }, … ] },
//!   "edges": [ { "id": "eu-1", "region": "eu-west", "pid": 4242,
//!                "http_url": "http://127.0.1.1:7880",
//!                "whip_url": "http://127.0.1.1:7880/v1/whip",
//!                "whep_url": "http://127.0.1.1:7880/v1/whep",
//!                "ws_url": "ws://127.0.1.1:7880/v1/rtc",
//!                "relay_addr": "127.0.1.1:7890", "lat": 48.86, "lon": 2.35 }, … ],
//!   "links": [ { "a": "ap-1", "b": "eu-1", "one_way_ms": 40.0,
//!                "proxy": "127.0.0.1:7800", "control": "127.0.0.1:9100" }, … ] }
//! ```
//!
//! The WHIP/WHEP URLs are bases: append `/<meeting>`. Readers must ignore fields they do not
//! know, so the file can grow (the DNS field is `null` without a DNS server). Fields added
//! after the first version (an edge's `relay_addr`, `lat` and `lon`; `links`; DNS's `zone`,
//! `name` and `regions`) have defaults, so older files still read.
//!
//! Each DNS region names client subnets the cluster's synthetic MaxMind database places in
//! that region, so steering can be checked by hand:
//! `dig @127.0.0.1 -p 7853 edge.arbor.test +subnet=198.51.100.0/24` answers eu-west's edge.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use relay_proto::endpoints::{self, WHEP_PATH, WHIP_PATH};
use relay_proto::{EdgeId, RegionId};
use serde::{Deserialize, Serialize};

/// The file's name inside a data directory.
pub const FILE_NAME: &str = "cluster.json";

/// A running local cluster.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The origin coordinator, if the cluster has one.
    pub origin: Option<Origin>,
    /// The API key the origin and every edge of the cluster accept.
    pub api_key: String,
    /// Its secret.
    pub api_secret: String,
    /// The steering DNS server, once there is one.
    pub dns: Option<Dns>,
    pub edges: Vec<Edge>,
    /// The backbone links between edges, one per pair.
    #[serde(default)]
    pub links: Vec<Link>,
}

/// The origin coordinator of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Base URL of the REST API, `/v1` included: `GET <api_url>/edges`.
    pub api_url: String,
    /// Base URL of the process: `/readyz`, `/metrics`.
    pub http_url: String,
    pub pid: u32,
    /// The control plane's QUIC endpoint, which edges dial.
    pub relay_addr: SocketAddr,
}

/// The steering DNS server of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// UDP and TCP.
    pub addr: SocketAddr,
    /// The zone it serves.
    #[serde(default)]
    pub zone: String,
    /// The steered name: the nearest healthy edge for the client.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub regions: Vec<DnsRegion>,
}

/// Client subnets that steer to one region (per the cluster's synthetic database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRegion {
    pub region: RegionId,
    /// For `dig +subnet=…`: an IPv4 subnet placed in the region.
    pub client_subnet: String,
    /// An IPv6 one.
    pub client_subnet_v6: String,
}

/// One edge process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub id: EdgeId,
    pub region: RegionId,
    pub pid: u32,
    /// Base URL: the web page, `/readyz`, `/metrics`.
    pub http_url: String,
    /// WHIP base URL; append `/<meeting>`.
    pub whip_url: String,
    /// WHEP base URL; append `/<meeting>`.
    pub whep_url: String,
    /// The signaling WebSocket.
    pub ws_url: String,
    /// The backbone's QUIC endpoint, if the edge has one.
    #[serde(default)]
    pub relay_addr: Option<SocketAddr>,
    /// Where the edge is, in degrees (placement and steering use it).
    #[serde(default)]
    pub lat: f64,
    #[serde(default)]
    pub lon: f64,
}

/// One backbone link: edge `a` (the lower id) dials edge `b`, through an `arbor impair` proxy
/// unless the cluster was started with `--no-impair`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The edge that dials.
    pub a: EdgeId,
    /// The edge that accepts.
    pub b: EdgeId,
    /// The delay the proxy adds in each direction (0 without a proxy).
    pub one_way_ms: f64,
    /// The proxy's UDP address, which `a` dials instead of `b`'s relay address.
    pub proxy: Option<SocketAddr>,
    /// The proxy's control API: `arbor impair set --control <control> --partition` cuts the
    /// link, `--heal` restores it.
    pub control: Option<SocketAddr>,
}

impl Edge {
    /// An entry whose endpoint URLs derive from `http_url` (`http://host:port`, no slash),
    /// without a relay address or location (set those fields after).
    pub fn new(id: EdgeId, region: RegionId, pid: u32, http_url: &str) -> Self {
        let http_url = http_url.trim_end_matches('/').to_owned();
        Self {
            id,
            region,
            pid,
            whip_url: format!("{http_url}{WHIP_PATH}"),
            whep_url: format!("{http_url}{WHEP_PATH}"),
            ws_url: endpoints::signaling_url(&http_url),
            http_url,
            relay_addr: None,
            lat: 0.0,
            lon: 0.0,
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("origin", &self.origin)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("dns", &self.dns)
            .field("edges", &self.edges)
            .field("links", &self.links)
            .finish()
    }
}

impl Cluster {
    /// `cluster.json` inside `data_dir`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE_NAME)
    }

    /// The edge with this id.
    pub fn edge(&self, id: &EdgeId) -> Option<&Edge> {
        self.edges.iter().find(|e| e.id == *id)
    }

    /// Reads and parses a cluster file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the cluster file {} (is a cluster running? start one with \
                 `arbor up`, or pass --cluster / --api-key and --api-secret)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid cluster file", path.display()))
    }

    /// Writes the file atomically (a temporary file renamed into place), readable by the
    /// owner only since it holds the API secret.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self).context("cannot encode the cluster file")?;
        write_private(path, format!("{json}\n").as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, mode 0600 on Unix.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tempdir;

    fn sample() -> Cluster {
        let eu = Edge {
            relay_addr: Some("127.0.1.1:7890".parse().unwrap()),
            lat: 48.86,
            lon: 2.35,
            ..Edge::new(
                EdgeId::new("eu-1").unwrap(),
                RegionId::new("eu-west").unwrap(),
                4242,
                "http://127.0.1.1:7880",
            )
        };
        let us = Edge::new(
            EdgeId::new("us-1").unwrap(),
            RegionId::new("us-east").unwrap(),
            4243,
            "http://127.0.2.1:7880",
        );
        Cluster {
            origin: Some(Origin {
                api_url: "http://127.0.0.1:7780/v1".into(),
                http_url: "http://127.0.0.1:7780".into(),
                pid: 4241,
                relay_addr: "127.0.0.1:7790".parse().unwrap(),
            }),
            api_key: "APIabc".into(),
            api_secret: "s".repeat(43),
            dns: Some(Dns {
                addr: "127.0.0.1:7853".parse().unwrap(),
                zone: "arbor.test".into(),
                name: "edge.arbor.test".into(),
                regions: vec![DnsRegion {
                    region: RegionId::new("eu-west").unwrap(),
                    client_subnet: "198.51.100.0/24".into(),
                    client_subnet_v6: "2001:db8:1::/48".into(),
                }],
            }),
            links: vec![Link {
                a: eu.id.clone(),
                b: us.id.clone(),
                one_way_ms: 20.0,
                proxy: Some("127.0.0.1:7800".parse().unwrap()),
                control: Some("127.0.0.1:9100".parse().unwrap()),
            }],
            edges: vec![eu, us],
        }
    }

    #[test]
    fn urls_derive_from_the_http_url() {
        let e = &sample().edges[0];
        assert_eq!(e.http_url, "http://127.0.1.1:7880");
        assert_eq!(e.whip_url, "http://127.0.1.1:7880/v1/whip");
        assert_eq!(e.whep_url, "http://127.0.1.1:7880/v1/whep");
        assert_eq!(e.ws_url, "ws://127.0.1.1:7880/v1/rtc");
        let tls = Edge::new(e.id.clone(), e.region.clone(), 1, "https://edge.example/");
        assert_eq!(tls.ws_url, "wss://edge.example/v1/rtc");
        assert_eq!(tls.whip_url, "https://edge.example/v1/whip");
    }

    #[test]
    fn json_layout_and_round_trip() {
        let cluster = sample();
        let json: serde_json::Value = serde_json::to_value(&cluster).unwrap();
        assert_eq!(json["origin"]["api_url"], "http://127.0.0.1:7780/v1");
        assert_eq!(json["origin"]["relay_addr"], "127.0.0.1:7790");
        assert_eq!(json["origin"]["pid"], 4241);
        assert_eq!(json["dns"]["addr"], "127.0.0.1:7853");
        assert_eq!(json["dns"]["name"], "edge.arbor.test");
        assert_eq!(json["dns"]["regions"][0]["region"], "eu-west");
        assert_eq!(
            json["dns"]["regions"][0]["client_subnet"],
            "198.51.100.0/24"
        );
        assert_eq!(json["api_key"], "APIabc");
        let edge = &json["edges"][0];
        for key in [
            "id",
            "region",
            "pid",
            "http_url",
            "whip_url",
            "whep_url",
            "ws_url",
            "relay_addr",
            "lat",
            "lon",
        ] {
            assert!(!edge[key].is_null(), "{key}");
        }
        assert_eq!(edge["pid"], 4242);
        assert_eq!(edge["lat"], 48.86);
        let link = &json["links"][0];
        assert_eq!(link["a"], "eu-1");
        assert_eq!(link["b"], "us-1");
        assert_eq!(link["one_way_ms"], 20.0);
        assert_eq!(link["control"], "127.0.0.1:9100");
        assert_eq!(cluster.edge(&cluster.links[0].b), Some(&cluster.edges[1]));

        let dir = tempdir();
        let path = Cluster::path_in(&dir);
        cluster.write(&path).unwrap();
        assert_eq!(Cluster::read(&path).unwrap(), cluster);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Unknown fields from a newer arbor are ignored.
        let mut newer = json.clone();
        newer["future"] = serde_json::json!({"x": 1});
        newer["edges"][0]["quic_addr"] = serde_json::json!("127.0.1.1:7890");
        let parsed: Cluster = serde_json::from_value(newer).unwrap();
        assert_eq!(parsed, cluster);
        assert!(!format!("{cluster:?}").contains(&cluster.api_secret));

        // A file from before the cascade (no links, no relay address or location, no DNS)
        // still reads, and so does one whose DNS has only an address.
        let mut older = json;
        older["dns"] = serde_json::json!({ "addr": "127.0.0.1:53" });
        let parsed: Cluster = serde_json::from_value(older.clone()).unwrap();
        assert!(parsed.dns.unwrap().regions.is_empty());
        older["dns"] = serde_json::Value::Null;
        older["origin"] = serde_json::Value::Null;
        older.as_object_mut().unwrap().remove("links");
        for key in ["relay_addr", "lat", "lon"] {
            older["edges"][0].as_object_mut().unwrap().remove(key);
        }
        let parsed: Cluster = serde_json::from_value(older).unwrap();
        assert!(parsed.links.is_empty() && parsed.origin.is_none());
        assert_eq!(parsed.edges[0].relay_addr, None);
        assert_eq!(parsed.edges[0].lat, 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_errors_say_what_to_do() {
        let dir = tempdir();
        let e = Cluster::read(&dir.join("missing.json")).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("missing.json"), "{text}");
        assert!(text.contains("arbor up"), "{text}");
        std::fs::write(dir.join("bad.json"), "{").unwrap();
        let text = format!("{:#}", Cluster::read(&dir.join("bad.json")).unwrap_err());
        assert!(text.contains("not a valid cluster file"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
