#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Geo DNS on real processes: a cluster started as `arbor up` starts it (origin and three
//! edges, each its own process), its origin's DNS answering `edge.<zone>` with each region's
//! edge for that region's client subnet; then one edge process is killed (SIGKILL: no goodbye,
//! the origin only sees silence) and must leave the answers within the failure model's
//! detection bound (DESIGN.md §5: dead after 3 missed 1 s heartbeats), plus the DNS snapshot's
//! refresh.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbor_ops::up::plan::{IpBase, Plan};
use arbor_ops::up::{self, Bins};
use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// Detection (3 s) + one heartbeat (1 s) + the DNS snapshot's refresh (0.25 s), with room for a
/// loaded machine.
const WITHDRAWN_WITHIN: Duration = Duration::from_secs(6);

/// The A records `server` answers for `name` asked from `subnet` (ECS).
async fn answer(server: SocketAddr, name: &str, subnet: &str) -> Vec<Ipv4Addr> {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let net: ipnet::IpNet = subnet.parse().unwrap();
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
    m.set_edns(edns);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&m.to_vec().unwrap(), server).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .expect("the DNS server answers")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_region_gets_its_edge_and_a_killed_edge_leaves_the_answers() {
    let dir = std::env::temp_dir().join(format!("arbor-geo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bins = Bins {
        origin: common::binaries().join("arbor-origin"),
        edge: common::binaries().join("arbor-edge"),
    };
    // A loopback network of its own (up.rs takes 127.100–223, drain.rs 127.220–249).
    let base = IpBase(40 + (std::process::id() % 40) as u8);
    let running = up::start(Plan::new(3, base, false), &dir, &bins, &[])
        .await
        .unwrap();
    let cluster = running.cluster.clone();
    let dns = cluster.dns.clone().expect("arbor up serves DNS");
    let name = format!("{}.", dns.name.trim_end_matches('.'));
    let ip_of = |region: &str| -> Ipv4Addr {
        let edge = cluster
            .edges
            .iter()
            .find(|e| e.region.to_string() == region)
            .unwrap();
        let host = edge
            .http_url
            .split("//")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        host.parse().unwrap()
    };
    // up::start returns once every edge has registered; the DNS answers from a snapshot of
    // the registry refreshed every 250 ms, so give it a moment.
    for r in &dns.regions {
        let want = ip_of(&r.region.to_string());
        let asked = Instant::now();
        loop {
            let got = answer(dns.addr, &name, &r.client_subnet).await;
            if got.first() == Some(&want) {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "{} from {}: {got:?}, not {want}",
                r.region,
                r.client_subnet
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let victim = &cluster.edges[0];
    let victim_ip = ip_of(&victim.region.to_string());
    let subnet = dns
        .regions
        .iter()
        .find(|r| r.region == victim.region)
        .unwrap()
        .client_subnet
        .clone();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let killed = Instant::now();
    let gone = loop {
        let got = answer(dns.addr, &name, &subnet).await;
        if !got.is_empty() && !got.contains(&victim_ip) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < WITHDRAWN_WITHIN + Duration::from_secs(10),
            "{} still answered {got:?}",
            victim.id
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("{} left the answers {gone:?} after SIGKILL", victim.id);
    assert!(gone <= WITHDRAWN_WITHIN, "{gone:?}");
    assert!(
        gone >= Duration::from_secs(2),
        "withdrawn before detection could: {gone:?}"
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
