//! The origin's DNS end to end: a real origin on 127.0.0.1 with its relay endpoint and DNS
//! server, edges that register and heartbeat over real QUIC control links, a synthetic
//! MaxMind database, and queries over real UDP and TCP sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbor_origin::Origin;
use arbor_origin::config::{Config, Dns, Secret};
use arbor_origin::geoip::{self, Network};
use hickory_server::proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use origin_core::GeoPoint;
use rand::{Rng as _, SeedableRng as _};
use relay_proto::{Control, EdgeId, EdgeInfo, Hello, Load, RegionId, Role};
use relay_quic::{Ca, LinkConfig, LinkEvent, LinkHandle, NodeCert, PkiDir, RelayEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const ZONE: &str = "arbor.test.";
const ENTRY: &str = "edge.arbor.test.";
const KEY: &str = "APIdns";
const SECRET: &str = "0123456789abcdef0123456789abcdef-dns";
/// How long a UDP answer may take before it counts as not sent.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// Longest wait for something that happens within a few heartbeats.
const SETTLE: Duration = Duration::from_secs(15);

/// Edge, region, city coordinates, edge address, client subnets the database maps there.
type Site = (
    &'static str,
    &'static str,
    (f64, f64),
    &'static str,
    [&'static str; 3],
);

const SITES: [Site; 3] = [
    (
        "eu-1",
        "eu-west",
        (48.86, 2.35),
        "127.0.1.1",
        ["198.51.100.0/24", "2001:db8:1::/48", "127.0.1.0/24"],
    ),
    (
        "us-1",
        "us-east",
        (39.04, -77.49),
        "127.0.2.1",
        ["203.0.113.0/24", "2001:db8:2::/48", "127.0.2.0/24"],
    ),
    (
        "ap-1",
        "ap-southeast",
        (1.35, 103.82),
        "127.0.3.1",
        ["192.0.2.0/24", "2001:db8:3::/48", "127.0.3.0/24"],
    ),
];

/// A client near each site but not in its subnet's city: London, New York, Tokyo.
const NEAR: [(&str, (f64, f64)); 3] = [
    ("100.64.1.0/24", (51.51, -0.13)),
    ("100.64.2.0/24", (40.71, -74.01)),
    ("100.64.3.0/24", (35.68, 139.69)),
];

fn region(s: &str) -> RegionId {
    RegionId::new(s).unwrap()
}

fn edge_ip(i: usize) -> Ipv4Addr {
    SITES[i].3.parse().unwrap()
}

/// The synthetic database: each site's subnets, and the NEAR clients.
fn database() -> Vec<u8> {
    let mut networks = Vec::new();
    for (_, region, (lat, lon), _, nets) in SITES {
        for net in nets {
            networks.push(Network {
                net: net.parse().unwrap(),
                location: GeoPoint::new(lat, lon).unwrap(),
                name: region.to_owned(),
            });
        }
    }
    for (net, (lat, lon)) in NEAR {
        networks.push(Network {
            net: net.parse().unwrap(),
            location: GeoPoint::new(lat, lon).unwrap(),
            name: "near".to_owned(),
        });
    }
    geoip::write(&networks, 0).unwrap()
}

/// An origin with its relay endpoint and DNS server, and what it needs on disk.
struct Setup {
    origin: Option<Origin>,
    dir: PathBuf,
    dns: SocketAddr,
}

impl Setup {
    async fn start(test: &str, rrl_responses_per_s: u32) -> Setup {
        let dir = std::env::temp_dir().join(format!("arbor-dns-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_pki(&dir.join("pki"));
        let db = dir.join("geo.mmdb");
        std::fs::write(&db, database()).unwrap();
        let mut cfg = Config::default();
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        cfg.store.url = format!("sqlite://{}", dir.join("origin.db").display());
        cfg.auth.keys = BTreeMap::from([(KEY.to_owned(), Secret::new(SECRET))]);
        cfg.placement.regions = SITES.iter().map(|s| region(s.1)).collect();
        cfg.placement.default_region = region("eu-west");
        cfg.relay.enabled = true;
        cfg.relay.listen = "127.0.0.1:0".parse().unwrap();
        cfg.relay.pki_dir = dir.join("pki");
        cfg.dns = Dns {
            enabled: true,
            listen: "127.0.0.1:0".parse().unwrap(),
            geoip_db: db,
            nameserver_ips: vec!["127.0.0.1".parse().unwrap()],
            rrl_responses_per_s,
            ..Dns::default()
        };
        let origin = Origin::start(cfg).await.unwrap();
        Setup {
            dns: origin.dns_addr.unwrap(),
            origin: Some(origin),
            dir,
        }
    }

    fn origin(&self) -> &Origin {
        self.origin.as_ref().unwrap()
    }

    /// Edge `i` of [`SITES`], registered and heartbeating.
    async fn edge(&self, i: usize) -> FakeEdge {
        FakeEdge::connect(self.origin().relay_addr.unwrap(), &self.dir.join("pki"), i).await
    }

    async fn stop(mut self) {
        self.origin.take().unwrap().stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_pki(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let pki = PkiDir::new(dir);
    let ca = Ca::generate("dns test CA").unwrap();
    ca.to_pem_files(&pki.ca_cert(), &pki.ca_key()).unwrap();
    let roles = std::iter::once(Role::Origin)
        .chain(SITES.iter().map(|s| Role::Edge(EdgeId::new(s.0).unwrap())));
    for role in roles {
        let cert = ca.issue(&role).unwrap();
        cert.to_pem_files(&pki.node_cert(&role), &pki.node_key(&role))
            .unwrap();
    }
}

/// An edge's control link, as `arbor-edge` keeps it: register once, heartbeat every second.
struct FakeEdge {
    draining: Arc<AtomicBool>,
    beating: Arc<AtomicBool>,
    last_beat: Arc<Mutex<Instant>>,
    _link: LinkHandle,
    _endpoint: RelayEndpoint,
}

impl FakeEdge {
    async fn connect(origin: SocketAddr, pki_dir: &Path, i: usize) -> FakeEdge {
        let (id, region_id, (lat, lon), ip, _) = SITES[i];
        let id = EdgeId::new(id).unwrap();
        let pki = PkiDir::new(pki_dir);
        let role = Role::Edge(id.clone());
        let cert = NodeCert::from_pem_files(&pki.node_cert(&role), &pki.node_key(&role)).unwrap();
        let ca = std::fs::read_to_string(pki.ca_cert()).unwrap();
        let endpoint = RelayEndpoint::bind("127.0.0.1:0".parse().unwrap(), &cert, &ca).unwrap();
        let conn = endpoint.connect(origin, &Role::Origin).await.unwrap();
        let hello = Hello {
            version: relay_proto::VERSION,
            role,
            region: region(region_id),
        };
        let (link, mut events) = relay_quic::link::spawn(conn, LinkConfig::new(hello));
        assert!(matches!(events.recv().await, Some(LinkEvent::Up(_))));
        // What the origin sends (peer lists) is read and ignored, so the link never stalls.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let info = EdgeInfo {
            id,
            region: region(region_id),
            lat_e6: (lat * 1e6) as i32,
            lon_e6: (lon * 1e6) as i32,
            relay_addr: SocketAddr::new(ip.parse().unwrap(), 7890),
            http_url: format!("http://{ip}:7880"),
            capacity: 1000,
        };
        link.send(Control::Register(info)).await.unwrap();
        let edge = FakeEdge {
            draining: Arc::default(),
            beating: Arc::new(AtomicBool::new(true)),
            last_beat: Arc::new(Mutex::new(Instant::now())),
            _link: link.clone(),
            _endpoint: endpoint,
        };
        let (draining, beating, last) = (
            edge.draining.clone(),
            edge.beating.clone(),
            edge.last_beat.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if !beating.load(Ordering::SeqCst) {
                    continue;
                }
                let load = Load {
                    draining: draining.load(Ordering::SeqCst),
                    ..Load::default()
                };
                if link.send(Control::Heartbeat(load)).await.is_err() {
                    return;
                }
                *last.lock().unwrap() = Instant::now();
            }
        });
        edge
    }

    /// Stops heartbeating (the link stays up, as with a hung process); returns when the last
    /// heartbeat went out.
    fn fall_silent(&self) -> Instant {
        self.beating.store(false, Ordering::SeqCst);
        *self.last_beat.lock().unwrap()
    }
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

/// `m` with an EDNS client subnet option (and so EDNS).
fn with_ecs(mut m: Message, subnet: &str) -> Message {
    let net: ipnet::IpNet = subnet.parse().unwrap();
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::from(net)));
    m.set_edns(edns);
    m
}

/// Sends `m` over UDP from `from` and waits [`ANSWER_WAIT`] for the answer.
async fn udp_from(server: SocketAddr, from: IpAddr, m: &Message) -> Option<Message> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    socket.send_to(&m.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(ANSWER_WAIT, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, m.metadata.id);
    Some(answer)
}

async fn udp(server: SocketAddr, m: &Message) -> Message {
    udp_from(server, "127.0.0.1".parse().unwrap(), m)
        .await
        .expect("an answer over UDP")
}

/// Sends `m` over TCP (two-byte length prefix) and reads the answer.
async fn tcp(server: SocketAddr, m: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = m.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).unwrap()
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    a_in(&m.answers)
}

fn a_in(records: &[Record]) -> Vec<Ipv4Addr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn ecs_of(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// The steered A answer for a client in `subnet`.
async fn steered(server: SocketAddr, subnet: &str) -> Vec<Ipv4Addr> {
    a_records(&udp(server, &with_ecs(query(ENTRY, RecordType::A), subnet)).await)
}

/// Polls `check` every 100 ms until it holds; fails after `limit` with `what`.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} (waited {limit:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// All three edges up and answered.
async fn three_edges(s: &Setup) -> Vec<FakeEdge> {
    let mut edges = Vec::new();
    for i in 0..SITES.len() {
        edges.push(s.edge(i).await);
    }
    let dns = s.dns;
    until(SETTLE, "every edge answers for its subnet", || async move {
        steered(dns, "192.0.2.0/24").await == [edge_ip(2)]
            && steered(dns, "203.0.113.0/24").await == [edge_ip(1)]
            && steered(dns, "198.51.100.0/24").await == [edge_ip(0)]
    })
    .await;
    edges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_region_s_clients_get_their_nearest_edge() {
    let s = Setup::start("nearest", 0).await;
    let _edges = three_edges(&s).await;
    for (i, (_, _, _, _, nets)) in SITES.iter().enumerate() {
        // IPv4 and IPv6 subnets, over UDP and over TCP.
        for net in &nets[..2] {
            let q = with_ecs(query(ENTRY, RecordType::A), net);
            for answer in [udp(s.dns, &q).await, tcp(s.dns, &q).await] {
                assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
                assert!(answer.metadata.authoritative);
                assert_eq!(a_records(&answer), [edge_ip(i)], "{net}");
                assert_eq!(answer.answers[0].ttl, 30);
            }
        }
    }
    // Clients elsewhere get the edge nearest to them: London → Paris, New York → Ashburn,
    // Tokyo → Singapore.
    for (i, (net, _)) in NEAR.iter().enumerate() {
        assert_eq!(steered(s.dns, net).await, [edge_ip(i)], "{net}");
    }
    // No IPv6 edge: AAAA at the entry is NODATA with the SOA for negative caching.
    let q = with_ecs(query(ENTRY, RecordType::AAAA), "198.51.100.0/24");
    let answer = udp(s.dns, &q).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_is_echoed_with_a_scope_and_the_resolver_address_stands_in() {
    let s = Setup::start("ecs", 0).await;
    let _edges = three_edges(&s).await;
    // Steered answers: scope /24 or /56, family, source and address echoed.
    let answer = udp(
        s.dns,
        &with_ecs(query(ENTRY, RecordType::A), "203.0.113.0/24"),
    )
    .await;
    let echo = ecs_of(&answer).unwrap();
    assert_eq!(echo.addr(), "203.0.113.0".parse::<IpAddr>().unwrap());
    assert_eq!((echo.source_prefix(), echo.scope_prefix()), (24, 24));
    let answer = udp(
        s.dns,
        &with_ecs(query(ENTRY, RecordType::A), "2001:db8:3::/48"),
    )
    .await;
    assert_eq!(a_records(&answer), [edge_ip(2)]);
    let echo = ecs_of(&answer).unwrap();
    assert_eq!((echo.source_prefix(), echo.scope_prefix()), (48, 56));
    // Answers that do not depend on the client: scope 0.
    let answer = udp(
        s.dns,
        &with_ecs(query(ZONE, RecordType::SOA), "203.0.113.0/24"),
    )
    .await;
    assert_eq!(ecs_of(&answer).unwrap().scope_prefix(), 0);
    // No ECS: the resolver's own address decides (127.0.2.x is "Ashburn" in the database),
    // and no ECS comes back.
    let from_us: IpAddr = "127.0.2.9".parse().unwrap();
    let answer = udp_from(s.dns, from_us, &query(ENTRY, RecordType::A))
        .await
        .unwrap();
    assert_eq!(a_records(&answer), [edge_ip(1)]);
    assert!(answer.edns.is_none());
    let from_ap: IpAddr = "127.0.3.9".parse().unwrap();
    let answer = udp_from(s.dns, from_ap, &query(ENTRY, RecordType::A))
        .await
        .unwrap();
    assert_eq!(a_records(&answer), [edge_ip(2)]);
    // Source prefix 0 (the client opted out): the resolver's address, scope 0.
    let answer = udp_from(
        s.dns,
        from_us,
        &with_ecs(query(ENTRY, RecordType::A), "0.0.0.0/0"),
    )
    .await
    .unwrap();
    assert_eq!(a_records(&answer), [edge_ip(1)]);
    assert_eq!(ecs_of(&answer).unwrap().scope_prefix(), 0);
    // A resolver the database does not know: the default region (eu-west) first.
    let answer = udp(s.dns, &query(ENTRY, RecordType::A)).await;
    assert_eq!(a_records(&answer), [edge_ip(0)]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_answers_what_it_holds_and_refuses_the_rest() {
    let s = Setup::start("zone", 0).await;
    let _edges = three_edges(&s).await;
    let dns = s.dns;
    // Outside the zone: REFUSED, not authoritative, nothing else.
    for name in ["example.com.", "test.", "arbor.test.example."] {
        let answer = udp(dns, &query(name, RecordType::A)).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::Refused,
            "{name}"
        );
        assert!(!answer.metadata.authoritative);
        assert!(answer.answers.is_empty() && answer.authorities.is_empty());
    }
    // Apex: SOA, NS with glue.
    let soa = udp(dns, &query("ARBOR.test.", RecordType::SOA)).await;
    assert_eq!(soa.answers.len(), 1);
    let RData::SOA(data) = &soa.answers[0].data else {
        panic!("{soa:?}")
    };
    assert_eq!(data.mname.to_string(), "ns1.arbor.test.");
    assert_eq!(data.minimum, 30);
    let ns = tcp(dns, &query(ZONE, RecordType::NS)).await;
    assert_eq!(
        ns.answers[0].data,
        RData::NS(hickory_server::proto::rr::rdata::NS(
            Name::from_ascii("ns1.arbor.test.").unwrap()
        ))
    );
    assert_eq!(a_in(&ns.additionals), [Ipv4Addr::LOCALHOST]);
    let glue = udp(dns, &query("ns1.arbor.test.", RecordType::A)).await;
    assert_eq!(a_records(&glue), [Ipv4Addr::LOCALHOST]);
    // Each edge at its own name, in any case; unknown names do not exist.
    let own = udp(dns, &query("US-1.arbor.test.", RecordType::A)).await;
    assert_eq!(a_records(&own), [edge_ip(1)]);
    assert_eq!(own.answers[0].name.to_string(), "US-1.arbor.test.");
    let missing = udp(dns, &query("nowhere.arbor.test.", RecordType::A)).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.metadata.authoritative);
    assert_eq!(missing.authorities[0].record_type(), RecordType::SOA);
    let below = udp(dns, &query("x.edge.arbor.test.", RecordType::A)).await;
    assert_eq!(below.metadata.response_code, ResponseCode::NXDomain);
    // Other types at existing names: NODATA.
    let txt = udp(dns, &query(ENTRY, RecordType::TXT)).await;
    assert_eq!(txt.metadata.response_code, ResponseCode::NoError);
    assert!(txt.answers.is_empty() && !txt.authorities.is_empty());
    // ANY: one HINFO "RFC8482" (RFC 8482), over UDP and TCP.
    for any in [
        udp(dns, &query(ENTRY, RecordType::ANY)).await,
        tcp(dns, &query(ZONE, RecordType::ANY)).await,
    ] {
        assert_eq!(any.metadata.response_code, ResponseCode::NoError);
        assert_eq!(any.answers.len(), 1);
        let RData::HINFO(h) = &any.answers[0].data else {
            panic!("{any:?}")
        };
        assert_eq!(&*h.cpu, b"RFC8482");
    }
    let any_missing = udp(dns, &query("nowhere.arbor.test.", RecordType::ANY)).await;
    assert_eq!(any_missing.metadata.response_code, ResponseCode::NXDomain);
    // Another class: REFUSED. Another opcode: NOTIMP. EDNS version 1: BADVERS.
    let mut chaos = query(ENTRY, RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        udp(dns, &chaos).await.metadata.response_code,
        ResponseCode::Refused
    );
    let mut status = query(ENTRY, RecordType::A);
    status.metadata.op_code = OpCode::Status;
    assert_eq!(
        udp(dns, &status).await.metadata.response_code,
        ResponseCode::NotImp
    );
    let mut v1 = with_ecs(query(ENTRY, RecordType::A), "198.51.100.0/24");
    v1.edns.as_mut().unwrap().set_version(1);
    let answer = udp(dns, &v1).await;
    // Extended code 16 (hickory's decoder names it BADSIG, TSIG's name for the same value).
    assert_eq!(u16::from(answer.metadata.response_code), 16, "BADVERS");
    assert_eq!(answer.edns.as_ref().unwrap().version(), 0);
    assert!(answer.answers.is_empty());
    // Two questions, or a subnet with bits past its prefix: FORMERR.
    let mut two = query(ENTRY, RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii(ZONE).unwrap(),
        RecordType::SOA,
    ));
    assert_eq!(
        udp(dns, &two).await.metadata.response_code,
        ResponseCode::FormErr
    );
    let mut sloppy = query(ENTRY, RecordType::A);
    let mut edns = Edns::new();
    // 198.51.100.0/20: the third byte (0x64) has bits set past bit 20.
    edns.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            "198.51.100.0".parse().unwrap(),
            20,
            0,
        )));
    sloppy.set_edns(edns);
    assert_eq!(
        udp(dns, &sloppy).await.metadata.response_code,
        ResponseCode::FormErr
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_formerr_or_nothing_and_never_stop_the_server() {
    let s = Setup::start("malformed", 0).await;
    let seed = std::env::var("MALFORMED_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        });
    println!("seed {seed} (replay with MALFORMED_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let valid = with_ecs(query(ENTRY, RecordType::A), "198.51.100.0/24")
        .to_vec()
        .unwrap();
    let mut packets: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0; 11],
        // A header claiming one question, and no question.
        vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        // A header claiming 65,535 questions.
        vec![0x12, 0x34, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0],
        // A response: dropped (no reflection of responses).
        {
            let mut r = valid.clone();
            r[2] |= 0x80;
            r
        },
        // Cut anywhere.
        valid[..valid.len() - 3].to_vec(),
        // A label pointing at itself.
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
    ];
    for _ in 0..300 {
        let mut p = valid.clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..p.len());
            p[at] = rng.random();
        }
        p.truncate(rng.random_range(0..=p.len()));
        packets.push(p);
        let len = rng.random_range(0..600);
        packets.push((0..len).map(|_| rng.random()).collect());
    }
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for p in &packets {
        socket.send_to(p, s.dns).await.unwrap();
    }
    // Whatever comes back is a well-formed response.
    let mut buf = vec![0u8; 4096];
    let mut answers = 0;
    while let Ok(r) = tokio::time::timeout(ANSWER_WAIT, socket.recv_from(&mut buf)).await {
        let (n, _) = r.unwrap();
        let m = Message::from_vec(&buf[..n]).expect("answers parse");
        assert_eq!(
            m.metadata.message_type,
            hickory_server::proto::op::MessageType::Response
        );
        answers += 1;
    }
    assert!(answers > 0 && answers < packets.len(), "{answers} answers");
    // Garbage over TCP, then a closed connection; the server still answers.
    let mut stream = TcpStream::connect(s.dns).await.unwrap();
    stream
        .write_all(&[0, 5, 1, 2, 3, 4, 5, 0xff, 0xff])
        .await
        .unwrap();
    drop(stream);
    let answer = udp(s.dns, &query(ZONE, RecordType::SOA)).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    let answer = tcp(s.dns, &query(ZONE, RecordType::SOA)).await;
    assert_eq!(answer.answers.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_slips_and_drops_udp_but_never_tcp() {
    let s = Setup::start("rrl", 5).await;
    let q = query(ZONE, RecordType::SOA);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bytes = q.to_vec().unwrap();
    for _ in 0..20 {
        socket.send_to(&bytes, s.dns).await.unwrap();
    }
    let (mut full, mut truncated) = (0u32, 0u32);
    let mut buf = vec![0u8; 4096];
    while let Ok(r) = tokio::time::timeout(ANSWER_WAIT, socket.recv_from(&mut buf)).await {
        let m = Message::from_vec(&buf[..r.unwrap().0]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty() && m.authorities.is_empty());
            truncated += 1;
        } else {
            assert_eq!(m.answers.len(), 1);
            full += 1;
        }
    }
    // Five in the bucket (plus at most one refilled while the burst went out); of the
    // limited rest, every second one slipped, the others dropped.
    assert!((5..=6).contains(&full), "{full} full answers");
    let limited = 20 - full;
    assert!(
        truncated == limited / 2 || truncated == limited.div_ceil(2),
        "{truncated} truncated of {limited} limited"
    );
    // Another /24 has its own budget; TCP is never limited.
    let other = udp_from(s.dns, "127.0.9.1".parse().unwrap(), &q)
        .await
        .unwrap();
    assert!(!other.metadata.truncation);
    for _ in 0..10 {
        assert_eq!(tcp(s.dns, &q).await.answers.len(), 1);
    }
    let metrics = reqwest::get(format!("http://{}/metrics", s.origin().http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("arbor_dns_rate_limited_total{{action=\"slipped\"}} {truncated}");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_and_silent_edges_leave_the_answers() {
    let s = Setup::start("health", 0).await;
    let edges = three_edges(&s).await;
    let dns = s.dns;
    let paris = "198.51.100.0/24";
    // eu-1 drains: Paris clients go to the next nearest edge (Ashburn) once its next
    // heartbeat says so, and come back when it stops draining.
    edges[0].draining.store(true, Ordering::SeqCst);
    until(
        SETTLE,
        "a draining edge leaves the answers",
        || async move { steered(dns, paris).await == [edge_ip(1)] },
    )
    .await;
    let own = udp(dns, &query("eu-1.arbor.test.", RecordType::A)).await;
    assert_eq!(
        a_records(&own),
        [edge_ip(0)],
        "a draining edge keeps its own name"
    );
    edges[0].draining.store(false, Ordering::SeqCst);
    until(
        SETTLE,
        "a drained edge that resumes comes back",
        || async move { steered(dns, paris).await == [edge_ip(0)] },
    )
    .await;
    // eu-1 stops heartbeating with its link up: within 3 missed heartbeats (3 s) plus one
    // heartbeat interval it is gone from the answers, and from its own name.
    let last = edges[0].fall_silent();
    until(SETTLE, "a silent edge leaves the answers", || async move {
        steered(dns, paris).await == [edge_ip(1)]
    })
    .await;
    let gone_after = last.elapsed();
    assert!(
        gone_after <= Duration::from_secs(4) + Duration::from_millis(500),
        "gone {gone_after:?} after its last heartbeat"
    );
    let own = udp(dns, &query("eu-1.arbor.test.", RecordType::A)).await;
    assert_eq!(own.metadata.response_code, ResponseCode::NXDomain);
    println!("silent edge left the answers {gone_after:?} after its last heartbeat");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_is_steered_by_the_caller_s_address() {
    let s = Setup::start("join", 0).await;
    let _edges = three_edges(&s).await;
    let base = format!("http://{}", s.origin().http_addr);
    let admin = reqwest::Client::new();
    let r = admin
        .post(format!("{base}/v1/meetings"))
        .basic_auth(KEY, Some(SECRET))
        .json(&serde_json::json!({ "name": "m" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // (caller address, region, edge): the database puts 127.0.2.x in Ashburn and 127.0.3.x
    // in Singapore; 127.0.0.1 is unknown, so the default region.
    for (from, region, edge) in [
        ("127.0.2.9", "us-east", "us-1"),
        ("127.0.3.9", "ap-southeast", "ap-1"),
        ("127.0.0.1", "eu-west", "eu-1"),
    ] {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let j: serde_json::Value = client
            .post(format!("{base}/v1/join"))
            .basic_auth(KEY, Some(SECRET))
            .json(&serde_json::json!({ "meeting": "m", "identity": from }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (j["region"].as_str(), j["edge"].as_str()),
            (Some(region), Some(edge)),
            "{j}"
        );
    }
    // A region in the body wins over the address.
    let client = reqwest::Client::builder()
        .local_address("127.0.2.9".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let j: serde_json::Value = client
        .post(format!("{base}/v1/join"))
        .basic_auth(KEY, Some(SECRET))
        .json(&serde_json::json!({ "meeting": "m", "identity": "x", "region": "ap-southeast" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["edge"], "ap-1");
    s.stop().await;
}
