//! What `arbor up` starts, decided before anything starts: the nodes, their addresses, the
//! backbone links and their delays, and each process's configuration.
//!
//! Everything binds a loopback address of one network `127.<n>` ([`IpBase`]): the origin
//! and the link proxies `127.<n>.0.1`, edge `i` (from 1) `127.<n>.<i>.1`, so that every edge
//! has an address of its own (DESIGN.md §4) and a second cluster on another `<n>` cannot
//! collide with the first.
//!
//! The origin also serves the zone [`DNS_ZONE`] on [`ORIGIN_DNS_PORT`] (UDP and TCP): each
//! site has documentation subnets (RFC 5737, RFC 3849) that a synthetic MaxMind database
//! ([`Plan::geoip_networks`]) places at the site, so `dig +subnet=<site's subnet>
//! edge.arbor.test` shows steering without a real database.
//!
//! Edges take their site from [`SITES`] in turn (`eu-1`, `us-1`, `ap-1`, `eu-2`, …). Each pair
//! of edges is one backbone link, dialled by the lower id (`edge/src/backbone.rs`); with
//! impairment on, the dialler's `[backbone] peer_addrs` sends it through an `arbor impair`
//! proxy that delays each direction by half the sites' round-trip time ([`one_way_delay`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use arbor_edge::config as edge_config;
use arbor_origin::config as origin_config;
use arbor_origin::geoip;
use arbor_sim::link::LinkConfig;
use origin_core::GeoPoint;
use relay_proto::{EdgeId, RegionId};

use crate::impair::ProxyConfig;

/// Most edges `arbor up` starts.
pub const MAX_EDGES: u8 = 9;
/// The origin's HTTP port (REST API, `/readyz`).
pub const ORIGIN_HTTP_PORT: u16 = 7780;
/// The origin's relay port (QUIC control links).
pub const ORIGIN_RELAY_PORT: u16 = 7790;
/// The origin's DNS port (UDP and TCP).
pub const ORIGIN_DNS_PORT: u16 = 7853;
/// The zone the origin's DNS serves; `edge.<zone>` is steered.
pub const DNS_ZONE: &str = "arbor.test";
/// Every edge's HTTP port (each on its own address).
pub const EDGE_HTTP_PORT: u16 = 7880;
/// Every edge's relay port.
pub const EDGE_RELAY_PORT: u16 = 7890;
/// Link `k`'s proxy listens on UDP `PROXY_PORT + k` of the origin's address.
pub const PROXY_PORT: u16 = 7800;
/// Link `k`'s proxy serves its control API on TCP `CONTROL_PORT + k` (the first is
/// `arbor impair set`'s default).
pub const CONTROL_PORT: u16 = 9100;
/// Jitter, as a fraction of the one-way delay.
pub const JITTER_FRACTION: f64 = 0.05;
/// Round-trip time between two edges of one site.
pub const SAME_SITE_RTT: Duration = Duration::from_millis(2);

/// Where an edge stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Site {
    /// Its edges are `<prefix>-1`, `<prefix>-2`, …
    pub prefix: &'static str,
    pub region: &'static str,
    pub city: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// An IPv4 client subnet the synthetic database places here (a documentation range).
    pub client_subnet: &'static str,
    /// An IPv6 one.
    pub client_subnet_v6: &'static str,
}

/// The sites edges take in turn.
pub const SITES: [Site; 3] = [
    Site {
        prefix: "eu",
        region: "eu-west",
        city: "Paris",
        lat: 48.86,
        lon: 2.35,
        client_subnet: "198.51.100.0/24",
        client_subnet_v6: "2001:db8:1::/48",
    },
    Site {
        prefix: "us",
        region: "us-east",
        city: "Ashburn",
        lat: 39.04,
        lon: -77.49,
        client_subnet: "203.0.113.0/24",
        client_subnet_v6: "2001:db8:2::/48",
    },
    Site {
        prefix: "ap",
        region: "ap-southeast",
        city: "Singapore",
        lat: 1.35,
        lon: 103.82,
        client_subnet: "192.0.2.0/24",
        client_subnet_v6: "2001:db8:3::/48",
    },
];

/// Round-trip times between regions, in milliseconds.
const RTT_MS: [(&str, &str, u64); 3] = [
    ("eu-west", "us-east", 40),
    ("eu-west", "ap-southeast", 80),
    ("us-east", "ap-southeast", 150),
];

/// The delay a link between these regions adds in each direction: half the round trip.
pub fn one_way_delay(a: &RegionId, b: &RegionId) -> Duration {
    let rtt = RTT_MS
        .iter()
        .find(|(x, y, _)| {
            (a.as_str(), b.as_str()) == (*x, *y) || (a.as_str(), b.as_str()) == (*y, *x)
        })
        .map_or(SAME_SITE_RTT, |(_, _, ms)| Duration::from_millis(*ms));
    rtt / 2
}

/// The loopback network `127.<n>` a cluster binds (`--ip-base 127.<n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBase(pub u8);

impl IpBase {
    /// `127.<n>.0.1`: the origin and the link proxies.
    pub fn origin_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, 0, 1))
    }

    /// `127.<n>.<number>.1`: edge `number` (from 1).
    pub fn edge_ip(self, number: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, number, 1))
    }
}

impl FromStr for IpBase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a loopback network like 127.0 or 127.11");
        let (first, second) = s.trim().split_once('.').ok_or_else(bad)?;
        if first != "127" {
            return Err(bad());
        }
        second.parse().map(IpBase).map_err(|_| bad())
    }
}

impl fmt::Display for IpBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "127.{}", self.0)
    }
}

/// The origin's addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginPlan {
    pub http: SocketAddr,
    pub relay: SocketAddr,
    /// DNS, UDP and TCP.
    pub dns: SocketAddr,
}

/// One edge.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePlan {
    pub id: EdgeId,
    pub region: RegionId,
    /// HTTP; media binds the same IP.
    pub http: SocketAddr,
    pub relay: SocketAddr,
    pub lat: f64,
    pub lon: f64,
}

/// One backbone link: `a` (the lower id) dials `b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkPlan {
    pub a: EdgeId,
    pub b: EdgeId,
    /// `b`'s relay address.
    pub upstream: SocketAddr,
    pub one_way: Duration,
    /// The proxy's UDP listen address and its control address; `None` links directly.
    pub proxy: Option<(SocketAddr, SocketAddr)>,
}

impl LinkPlan {
    /// The in-process `arbor impair` proxy of this link (`seed` makes its jitter replayable).
    pub fn proxy_config(&self, seed: u64) -> Option<ProxyConfig> {
        let (listen, control) = self.proxy?;
        let link = LinkConfig {
            delay: self.one_way,
            jitter: self.one_way.mul_f64(JITTER_FRACTION),
            ..LinkConfig::ideal()
        };
        Some(ProxyConfig {
            control: Some(control),
            up: link.clone(),
            down: link,
            seed,
            ..ProxyConfig::new(listen, self.upstream)
        })
    }
}

/// A whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub origin: OriginPlan,
    pub edges: Vec<EdgePlan>,
    pub links: Vec<LinkPlan>,
}

impl Plan {
    /// `edges` edges (clamped to 1..=[`MAX_EDGES`]) on `base`, linked through proxies if
    /// `impair`.
    pub fn new(edges: u8, base: IpBase, impair: bool) -> Plan {
        let origin_ip = base.origin_ip();
        let origin = OriginPlan {
            http: SocketAddr::new(origin_ip, ORIGIN_HTTP_PORT),
            relay: SocketAddr::new(origin_ip, ORIGIN_RELAY_PORT),
            dns: SocketAddr::new(origin_ip, ORIGIN_DNS_PORT),
        };
        let edges: Vec<EdgePlan> = (1..=edges.clamp(1, MAX_EDGES))
            .map(|number| {
                let index = usize::from(number - 1);
                let site = SITES[index % SITES.len()];
                let ip = base.edge_ip(number);
                EdgePlan {
                    id: EdgeId::new(&format!("{}-{}", site.prefix, index / SITES.len() + 1))
                        .expect("site prefixes make valid edge ids"),
                    region: RegionId::new(site.region).expect("site regions are valid ids"),
                    http: SocketAddr::new(ip, EDGE_HTTP_PORT),
                    relay: SocketAddr::new(ip, EDGE_RELAY_PORT),
                    lat: site.lat,
                    lon: site.lon,
                }
            })
            .collect();
        let mut links = Vec::new();
        for (i, x) in edges.iter().enumerate() {
            for y in &edges[i + 1..] {
                let (a, b) = if x.id < y.id { (x, y) } else { (y, x) };
                // At most 36 links: the ports stay below PROXY_PORT + 36 and CONTROL_PORT + 36.
                let k = links.len() as u16;
                links.push(LinkPlan {
                    a: a.id.clone(),
                    b: b.id.clone(),
                    upstream: b.relay,
                    one_way: one_way_delay(&a.region, &b.region),
                    proxy: impair.then(|| {
                        (
                            SocketAddr::new(origin_ip, PROXY_PORT + k),
                            SocketAddr::new(origin_ip, CONTROL_PORT + k),
                        )
                    }),
                });
            }
        }
        Plan {
            origin,
            edges,
            links,
        }
    }

    /// The regions of the edges, each once, in the edges' order.
    pub fn regions(&self) -> Vec<RegionId> {
        let mut regions: Vec<RegionId> = Vec::new();
        for e in &self.edges {
            if !regions.contains(&e.region) {
                regions.push(e.region.clone());
            }
        }
        regions
    }

    /// The sites of the edges' regions, each once, in the edges' order.
    pub fn sites(&self) -> Vec<Site> {
        self.regions()
            .iter()
            .filter_map(|r| SITES.iter().find(|s| s.region == r.as_str()).copied())
            .collect()
    }

    /// The synthetic MaxMind database's content: each site's client subnets at the site,
    /// named by region.
    pub fn geoip_networks(&self) -> Vec<geoip::Network> {
        self.sites()
            .iter()
            .flat_map(|site| {
                [site.client_subnet, site.client_subnet_v6].map(|net| geoip::Network {
                    net: net.parse().expect("site subnets are valid networks"),
                    location: GeoPoint::new(site.lat, site.lon)
                        .expect("site coordinates are valid"),
                    name: site.region.to_owned(),
                })
            })
            .collect()
    }

    /// Where `edge` dials its peers instead of their relay addresses: the proxies of the
    /// links it dials.
    pub fn peer_addrs(&self, edge: &EdgeId) -> BTreeMap<EdgeId, SocketAddr> {
        self.links
            .iter()
            .filter(|l| l.a == *edge)
            .filter_map(|l| Some((l.b.clone(), l.proxy?.0)))
            .collect()
    }

    /// `edge`'s configuration: the development defaults with `env`'s `ARBOR_*` overrides,
    /// then this plan's addresses, dev tokens on, `api_key` as the only key. Validated.
    pub fn edge_config(
        &self,
        edge: &EdgePlan,
        (api_key, api_secret): (&str, &str),
        pki_dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<edge_config::Config> {
        let mut cfg = edge_config::load(None, env.iter().cloned())
            .context("bad ARBOR_* environment variable")?;
        cfg.edge.id = edge.id.clone();
        cfg.edge.region = edge.region.clone();
        cfg.http.listen = edge.http;
        cfg.http.public_url = None;
        cfg.media.bind = edge.http.ip();
        cfg.media.public_ip = None;
        cfg.auth.dev_tokens = true;
        cfg.auth.keys =
            BTreeMap::from([(api_key.to_owned(), edge_config::Secret::new(api_secret))]);
        let b = &mut cfg.backbone;
        b.enabled = true;
        b.listen = edge.relay;
        b.public_addr = None;
        b.origin = self.origin.relay;
        b.pki_dir = pki_dir.to_owned();
        b.latitude = edge.lat;
        b.longitude = edge.lon;
        b.peer_addrs = self.peer_addrs(&edge.id);
        cfg.validate()
            .with_context(|| format!("the configuration of edge {} is not valid", edge.id))?;
        Ok(cfg)
    }

    /// The origin's configuration: its defaults with `env`'s `ARBOR_ORIGIN_*` overrides, then
    /// this plan's addresses, the relay on, DNS on for [`DNS_ZONE`] with the database at
    /// `geoip_db`, a SQLite store at `store`, `api_key` as the only key and the edges'
    /// regions. Validated (so `geoip_db` must exist).
    pub fn origin_config(
        &self,
        (api_key, api_secret): (&str, &str),
        pki_dir: &Path,
        (store, geoip_db): (&Path, &Path),
        env: &[(String, String)],
    ) -> anyhow::Result<origin_config::Config> {
        let mut cfg = origin_config::load(None, env.iter().cloned())
            .context("bad ARBOR_ORIGIN_* environment variable")?;
        cfg.http.listen = self.origin.http;
        cfg.relay.enabled = true;
        cfg.relay.listen = self.origin.relay;
        cfg.relay.pki_dir = pki_dir.to_owned();
        cfg.store.url = format!("sqlite://{}", store.display());
        cfg.auth.keys =
            BTreeMap::from([(api_key.to_owned(), origin_config::Secret::new(api_secret))]);
        cfg.dns.enabled = true;
        cfg.dns.listen = self.origin.dns;
        cfg.dns.zone = DNS_ZONE.to_owned();
        cfg.dns.nameserver_ips = vec![self.origin.dns.ip()];
        cfg.dns.geoip_db = geoip_db.to_owned();
        let regions = self.regions();
        cfg.placement.default_region = regions[0].clone();
        cfg.placement.regions = regions;
        cfg.validate()
            .context("the origin's configuration is not valid")?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> EdgeId {
        s.parse().unwrap()
    }

    const CREDS: (&str, &str) = ("APItest", "0123456789abcdef0123456789abcdef-x");

    #[test]
    fn three_edges_in_three_regions() {
        let plan = Plan::new(3, IpBase(0), true);
        let ids: Vec<&str> = plan.edges.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["eu-1", "us-1", "ap-1"]);
        let regions: Vec<String> = plan.regions().iter().map(|r| r.to_string()).collect();
        assert_eq!(regions, ["eu-west", "us-east", "ap-southeast"]);
        let http: Vec<String> = plan.edges.iter().map(|e| e.http.to_string()).collect();
        assert_eq!(http, ["127.0.1.1:7880", "127.0.2.1:7880", "127.0.3.1:7880"]);
        assert_eq!(plan.edges[2].relay, "127.0.3.1:7890".parse().unwrap());
        assert_eq!((plan.edges[1].lat, plan.edges[1].lon), (39.04, -77.49));
        assert_eq!(plan.origin.http, "127.0.0.1:7780".parse().unwrap());
        assert_eq!(plan.origin.relay, "127.0.0.1:7790".parse().unwrap());
        assert_eq!(plan.origin.dns, "127.0.0.1:7853".parse().unwrap());

        // Each pair once, the lower id dialling, at half the round trip each way.
        let links: Vec<(&str, &str, u128)> = plan
            .links
            .iter()
            .map(|l| (l.a.as_str(), l.b.as_str(), l.one_way.as_millis()))
            .collect();
        assert_eq!(
            links,
            [
                ("eu-1", "us-1", 20),
                ("ap-1", "eu-1", 40),
                ("ap-1", "us-1", 75)
            ]
        );
        let l = &plan.links[1];
        assert_eq!(l.upstream, plan.edges[0].relay, "ap-1 dials eu-1's relay");
        assert_eq!(
            l.proxy,
            Some((
                "127.0.0.1:7801".parse().unwrap(),
                "127.0.0.1:9101".parse().unwrap()
            ))
        );
        let proxy = l.proxy_config(1).unwrap();
        assert_eq!(proxy.upstream, l.upstream);
        assert_eq!(proxy.up.delay, Duration::from_millis(40));
        assert_eq!(proxy.down.jitter, Duration::from_millis(2));
        assert_eq!(proxy.up.loss, arbor_sim::link::Loss::None);

        // ap-1 dials both others through their proxies; us-1 dials nobody.
        let ap = plan.peer_addrs(&id("ap-1"));
        assert_eq!(ap.len(), 2);
        assert_eq!(ap[&id("eu-1")], "127.0.0.1:7801".parse().unwrap());
        assert_eq!(ap[&id("us-1")], "127.0.0.1:7802".parse().unwrap());
        assert!(plan.peer_addrs(&id("us-1")).is_empty());
    }

    #[test]
    fn regions_cycle_and_links_can_be_direct() {
        let plan = Plan::new(9, IpBase(11), false);
        let ids: Vec<&str> = plan.edges.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "eu-1", "us-1", "ap-1", "eu-2", "us-2", "ap-2", "eu-3", "us-3", "ap-3"
            ]
        );
        assert_eq!(plan.regions().len(), 3);
        assert_eq!(plan.edges[8].http, "127.11.9.1:7880".parse().unwrap());
        assert_eq!(plan.origin.http, "127.11.0.1:7780".parse().unwrap());
        assert_eq!(plan.links.len(), 36);
        assert!(plan.links.iter().all(|l| l.proxy.is_none()));
        assert!(plan.links[0].proxy_config(0).is_none());
        assert!(plan.peer_addrs(&id("ap-1")).is_empty());
        let same = plan
            .links
            .iter()
            .find(|l| (l.a.as_str(), l.b.as_str()) == ("eu-1", "eu-2"))
            .unwrap();
        assert_eq!(same.one_way, Duration::from_millis(1));
        assert_eq!(Plan::new(0, IpBase(0), true).edges.len(), 1);
        assert!(Plan::new(1, IpBase(0), true).links.is_empty());
    }

    #[test]
    fn ip_bases() {
        assert_eq!("127.0".parse::<IpBase>(), Ok(IpBase(0)));
        assert_eq!("127.11".parse::<IpBase>(), Ok(IpBase(11)));
        assert_eq!(IpBase(11).to_string(), "127.11");
        for bad in ["", "127", "10.1", "127.256", "127.1.1", "127.x"] {
            assert!(bad.parse::<IpBase>().is_err(), "{bad}");
        }
        assert_eq!(
            IpBase(11).edge_ip(3),
            IpAddr::V4(Ipv4Addr::new(127, 11, 3, 1))
        );
    }

    #[test]
    fn configs_are_valid_and_carry_the_plan() {
        let plan = Plan::new(3, IpBase(0), true);
        let pki = Path::new("/data/pki");
        let env = [("ARBOR_MEDIA_WORKERS".to_owned(), "1".to_owned())];
        let ap = &plan.edges[2];
        let cfg = plan.edge_config(ap, CREDS, pki, &env).unwrap();
        assert_eq!(cfg.edge.id, ap.id);
        assert_eq!(cfg.edge.region.as_str(), "ap-southeast");
        assert_eq!(cfg.http.listen, ap.http);
        assert_eq!(cfg.media.bind, ap.http.ip());
        assert_eq!(cfg.media.workers, 1, "environment overrides are kept");
        assert!(cfg.auth.dev_tokens);
        assert_eq!(cfg.auth.keys[CREDS.0].expose(), CREDS.1);
        assert!(cfg.backbone.enabled);
        assert_eq!(cfg.backbone.listen, ap.relay);
        assert_eq!(cfg.backbone.origin, plan.origin.relay);
        assert_eq!(cfg.backbone.pki_dir, pki);
        assert_eq!(cfg.backbone.latitude, 1.35);
        assert_eq!(cfg.backbone.peer_addrs, plan.peer_addrs(&ap.id));
        assert_eq!(edge_config::parse(&cfg.to_toml()).unwrap(), cfg);
        // A token minted with the cluster's key verifies against the edge's keys.
        let meeting = relay_proto::MeetingId::new("demo").unwrap();
        let claims = relay_proto::token::Claims::join(&meeting, "a", 2_000);
        let jwt = relay_proto::token::mint(&claims, CREDS.0, CREDS.1.as_bytes());
        assert!(relay_proto::token::verify(&jwt, &cfg.auth.keys, 1_000).is_ok());

        let bad = [("ARBOR_MEDIA_WORKERS".to_owned(), "lots".to_owned())];
        let e = format!("{:#}", plan.edge_config(ap, CREDS, pki, &bad).unwrap_err());
        assert!(e.contains("ARBOR_MEDIA_WORKERS"), "{e}");

        let store = Path::new("/data/origin.db");
        let dir = std::env::temp_dir().join(format!("arbor-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("geo.mmdb");
        std::fs::write(&db, geoip::write(&plan.geoip_networks(), 0).unwrap()).unwrap();
        let cfg = plan.origin_config(CREDS, pki, (store, &db), &[]).unwrap();
        assert!(cfg.dns.enabled);
        assert_eq!(cfg.dns.listen, "127.0.0.1:7853".parse().unwrap());
        assert_eq!(cfg.dns.geoip_db, db);
        assert_eq!(cfg.http.listen, plan.origin.http);
        assert!(cfg.relay.enabled);
        assert_eq!(cfg.relay.listen, plan.origin.relay);
        assert_eq!(cfg.relay.pki_dir, pki);
        assert_eq!(cfg.store.url, "sqlite:///data/origin.db");
        assert_eq!(cfg.auth.keys[CREDS.0].expose(), CREDS.1);
        assert_eq!(cfg.placement.regions, plan.regions());
        assert_eq!(cfg.placement.default_region.as_str(), "eu-west");
        assert_eq!(origin_config::parse(&cfg.to_toml()).unwrap(), cfg);
        let bad = [("ARBOR_ORIGIN_HTTP_LISTEN".to_owned(), "nowhere".to_owned())];
        let e = format!(
            "{:#}",
            plan.origin_config(CREDS, pki, (store, &db), &bad)
                .unwrap_err()
        );
        assert!(e.contains("ARBOR_ORIGIN_HTTP_LISTEN"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_region_has_client_subnets_the_database_places_there() {
        let plan = Plan::new(4, IpBase(0), false);
        let sites: Vec<&str> = plan.sites().iter().map(|s| s.region).collect();
        assert_eq!(sites, ["eu-west", "us-east", "ap-southeast"]);
        let networks = plan.geoip_networks();
        assert_eq!(networks.len(), 6);
        let db = geoip::write(&networks, 0).unwrap();
        let dir = std::env::temp_dir().join(format!("arbor-plan-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("geo.mmdb"), db).unwrap();
        let g = geoip::GeoIp::open(&dir.join("geo.mmdb")).unwrap();
        for site in SITES {
            for subnet in [site.client_subnet, site.client_subnet_v6] {
                let net: std::net::IpAddr = subnet.split('/').next().unwrap().parse().unwrap();
                let at = g.locate(net).unwrap();
                assert_eq!((at.lat(), at.lon()), (site.lat, site.lon), "{subnet}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
