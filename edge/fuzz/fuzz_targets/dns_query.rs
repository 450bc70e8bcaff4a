//! DNS queries: the origin's DNS handler answers or drops any packet, over UDP or TCP,
//! without panicking, and whatever it answers encodes.
//!
//! The handler is the real one: a zone, three edges in three regions (one draining, one
//! with a dotted id so empty non-terminals exist), a synthetic MaxMind database that places
//! the documentation subnets at them, and the response rate limiter on. The first input byte
//! advances a virtual clock (0 to 2.55 s per run), so the limiter's buckets refill and both
//! its paths stay reachable.
#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arbor_origin::config::Dns;
use arbor_origin::dns::Stats;
use arbor_origin::dns::handler::Reply;
use arbor_origin::dns::handler::{Handler, Setup};
use arbor_origin::dns::rrl;
use arbor_origin::dns::snapshot::Snapshot;
use arbor_origin::dns::zone::Zone;
use arbor_origin::geoip::{self, GeoIp, Network};
use arc_swap::ArcSwap;
use hickory_server::net::xfer::Protocol;
use libfuzzer_sys::fuzz_target;
use origin_core::registry::{Config, Edge, Registry};
use origin_core::{GeoPoint, Load};
use relay_proto::{EdgeId, RegionId};

struct World {
    handler: Handler,
    start: Instant,
}

const SITES: [(&str, &str, f64, f64, &str); 3] = [
    ("eu-1", "eu-west", 48.86, 2.35, "198.51.100.0/24"),
    ("us.east.1", "us-east", 39.04, -77.49, "203.0.113.0/24"),
    ("ap-1", "ap-southeast", 1.35, 103.82, "2001:db8:3::/48"),
];

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let start = Instant::now();
        let regions: Vec<RegionId> = SITES.iter().map(|s| RegionId::new(s.1).unwrap()).collect();
        let mut registry = Registry::new(Config::default());
        let mut networks = Vec::new();
        for (i, (id, region, lat, lon, net)) in SITES.into_iter().enumerate() {
            let location = GeoPoint::new(lat, lon).unwrap();
            let edge = Edge {
                id: EdgeId::new(id).unwrap(),
                region: RegionId::new(region).unwrap(),
                location,
                relay_addr: format!("127.0.{}.1:7890", i + 1).parse().unwrap(),
                http_url: format!("http://127.0.{}.1:7880", i + 1),
                capacity: 100,
            };
            registry.handle_register(start, edge).unwrap();
            let load = Load {
                draining: i == 2,
                ..Load::default()
            };
            registry
                .handle_heartbeat(start, &EdgeId::new(id).unwrap(), load)
                .unwrap();
            networks.push(Network {
                net: net.parse().unwrap(),
                location,
                name: region.to_owned(),
            });
        }
        let stats = Arc::new(Stats::new(&regions));
        // Built at the start with a long silence bound: the edges stay alive whatever the
        // virtual clock says.
        let snapshot = Snapshot::build(
            start,
            registry.edges(),
            Duration::from_secs(1 << 32),
            &stats,
        );
        let cfg = Dns {
            nameserver_ips: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            ..Dns::default()
        };
        let handler = Handler::new(Setup {
            zone: Zone::new(&cfg, 1).unwrap(),
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            geoip: Some(Arc::new(
                GeoIp::from_bytes(geoip::write(&networks, 0).unwrap()).unwrap(),
            )),
            policy: origin_core::steer::Policy {
                home: Some(regions[0].clone()),
                ..Default::default()
            },
            answers: 2,
            rrl: rrl::Config {
                responses_per_s: 50,
                slip: 2,
            },
            stats,
        });
        World { handler, start }
    })
}

static CLOCK_MS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let w = world();
    let step = u64::from(data.first().copied().unwrap_or(0)) * 10;
    let now = w.start + Duration::from_millis(CLOCK_MS.fetch_add(step, Ordering::Relaxed));
    let src: SocketAddr = "198.51.100.9:5300".parse().unwrap();
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        if let Some(bytes) = w.handler.answer_bytes(now, data, src, protocol) {
            // A DNS header at least, flagged as a response.
            assert!(bytes.len() >= 12 && bytes[2] & 0x80 != 0);
        }
    }
    // The handler's own entry point too, on what hickory would accept.
    if let Ok(request) =
        hickory_server::server::Request::from_bytes(data.to_vec(), src, Protocol::Udp)
        && let Reply::Send(r) = w.handler.respond(now, &request)
    {
        assert!(r.answers.len() <= 8);
    }
});
