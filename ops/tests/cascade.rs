//! The cascade on real sockets, in one process: an origin and edges started the way their
//! binaries start them, linked by QUIC with mutual TLS from a fresh CA, and synthetic str0m
//! clients over UDP and the signaling WebSocket. A publisher on one edge is seen and heard
//! on another; a meeting's participants in one region are redirected to its edge (signaling
//! message, WHIP 307).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use arbor_edge::Edge;
use arbor_loadgen::{ClientHandle, Epoch};
use arbor_ops::impair::{Proxy, ProxyConfig};
use arbor_origin::Origin;
use arbor_sim::link::LinkConfig;
use futures_util::{SinkExt, StreamExt};
use relay_proto::{EdgeId, Role};
use relay_quic::{Ca, PkiDir};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{T, camera_of, until_rendered, watch, watch_stalls};

const KEY: &str = "APIcascadetest";
const SECRET: &str = "cascade-test-secret-cascade-test-secret-0123";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Cluster {
    origin: Origin,
    edges: Vec<Edge>,
    /// `arbor impair` proxies on the backbone links, by (lower edge index, higher).
    links: Vec<((usize, usize), Proxy)>,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("arbor-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An origin and one edge per `(id, region, lat, lon)`, all on 127.0.0.1 with system-chosen
/// ports; returns once every edge is registered with the origin.
async fn cluster(test: &str, edges: &[(&str, &str, f64, f64)]) -> Cluster {
    cluster_with(test, edges, &[]).await
}

/// [`cluster`], with each listed backbone link (edge indices, one-way delay in ms) running
/// through an `arbor impair` proxy. Edge ids must sort in index order: the lower id dials.
async fn cluster_with(
    test: &str,
    edges: &[(&str, &str, f64, f64)],
    impaired: &[(usize, usize, u64)],
) -> Cluster {
    let dir = TempDir::new(test);
    let pki = PkiDir::new(dir.path().join("pki"));
    std::fs::create_dir_all(dir.path().join("pki")).unwrap();
    let ca = Ca::generate("arbor test").unwrap();
    ca.to_pem_files(&pki.ca_cert(), &pki.ca_key()).unwrap();
    let mut roles = vec![Role::Origin];
    roles.extend(edges.iter().map(|e| Role::Edge(e.0.parse().unwrap())));
    for role in &roles {
        let cert = ca.issue(role).unwrap();
        cert.to_pem_files(&pki.node_cert(role), &pki.node_key(role))
            .unwrap();
    }

    let mut ocfg = arbor_origin::config::Config::dev_default();
    ocfg.http.listen = SocketAddr::new(LOCAL, 0);
    ocfg.relay.enabled = true;
    ocfg.relay.listen = SocketAddr::new(LOCAL, 0);
    ocfg.relay.pki_dir = dir.path().join("pki");
    ocfg.store.url = format!("sqlite://{}", dir.path().join("origin.db").display());
    ocfg.auth.keys = [(KEY.to_owned(), arbor_origin::config::Secret::new(SECRET))].into();
    let mut regions: Vec<relay_proto::RegionId> =
        edges.iter().map(|e| e.1.parse().unwrap()).collect();
    regions.sort();
    regions.dedup();
    ocfg.placement.default_region = regions[0].clone();
    ocfg.placement.regions = regions;
    let origin = Origin::start(ocfg).await.unwrap();
    let origin_relay = origin.relay_addr.unwrap();

    // Each edge's relay port is fixed up front so that proxies can point at it.
    let relay_ports: Vec<u16> = edges
        .iter()
        .map(|_| {
            let s = std::net::UdpSocket::bind(SocketAddr::new(LOCAL, 0)).unwrap();
            s.local_addr().unwrap().port()
        })
        .collect();
    let mut links = Vec::new();
    for &(a, b, delay_ms) in impaired {
        let upstream = SocketAddr::new(LOCAL, relay_ports[b]);
        let mut cfg = ProxyConfig::new(SocketAddr::new(LOCAL, 0), upstream);
        cfg.up = LinkConfig::wan(delay_ms);
        cfg.down = LinkConfig::wan(delay_ms);
        links.push(((a, b), Proxy::start(cfg).await.unwrap()));
    }
    let mut started = Vec::new();
    for (i, &(id, region, lat, lon)) in edges.iter().enumerate() {
        let mut cfg = arbor_edge::config::Config::dev_default();
        cfg.edge.id = id.parse().unwrap();
        cfg.edge.region = region.parse().unwrap();
        cfg.http.listen = SocketAddr::new(LOCAL, 0);
        cfg.media.bind = LOCAL;
        cfg.media.public_ip = None;
        cfg.media.udp_port = 0;
        cfg.media.tcp_port = 0;
        cfg.media.workers = 1;
        cfg.auth.keys = [(KEY.to_owned(), arbor_edge::config::Secret::new(SECRET))].into();
        cfg.backbone.enabled = true;
        cfg.backbone.listen = SocketAddr::new(LOCAL, relay_ports[i]);
        for ((a, b), proxy) in &links {
            if *a == i {
                let peer: EdgeId = edges[*b].0.parse().unwrap();
                cfg.backbone.peer_addrs.insert(peer, proxy.listen_addr());
            }
        }
        cfg.backbone.origin = origin_relay;
        cfg.backbone.pki_dir = dir.path().join("pki");
        cfg.backbone.latitude = lat;
        cfg.backbone.longitude = lon;
        started.push(Edge::start(cfg).await.unwrap());
    }
    let c = Cluster {
        origin,
        edges: started,
        links,
        _dir: dir,
    };
    // Registered, and linked to each other (peer lists arrive with registrations).
    let deadline = Instant::now() + T;
    loop {
        let alive = c.origin.store.edges().await.unwrap();
        if alive.len() == edges.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edges did not register: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c
}

fn token(meeting: &str, identity: &str) -> String {
    common::join_token(meeting, identity, KEY, SECRET)
}

fn ws_url(edge: &Edge) -> String {
    relay_proto::endpoints::signaling_url(&format!("http://{}", edge.http_addr))
}

/// A viewer (one video and one audio slot) joining `meeting` at `edge`; `n` seeds it.
async fn viewer(edge: &Edge, meeting: &str, identity: &str, epoch: Epoch, n: u32) -> ClientHandle {
    common::viewer(&ws_url(edge), &token(meeting, identity), epoch, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_on_one_edge_is_seen_on_another_over_quic() {
    let c = cluster(
        "span",
        &[
            ("eu-1", "eu-west", 48.86, 2.35),
            ("us-1", "us-east", 39.04, -77.49),
        ],
    )
    .await;
    let epoch = Epoch(Instant::now().into_std());
    let publisher =
        common::publisher(&ws_url(&c.edges[0]), &token("span", "alice"), epoch, 1).await;
    let viewer = viewer(&c.edges[1], "span", "bob", epoch, 2).await;

    // Alice's camera reaches bob's edge through the tree the origin built.
    let cam = camera_of(&viewer, &publisher).await;
    assert!(cam.simulcast);
    let slot = viewer.mids().video_slots[0];
    viewer
        .subscribe(cam.id, slot, Some(640), Some(360))
        .await
        .unwrap();
    let s = until_rendered(&viewer, 60, "no video across the cascade").await;
    assert_eq!(s.height, Some(360), "{s:#?}");
    assert_eq!(s.non_contiguous, 0, "{s:#?}");

    // The origin recorded the tree: one link between the two edges.
    let tree = c
        .origin
        .store
        .tree(&"span".parse().unwrap())
        .await
        .unwrap()
        .expect("a tree");
    let eu: EdgeId = "eu-1".parse().unwrap();
    let us: EdgeId = "us-1".parse().unwrap();
    assert_eq!(tree.links, vec![(eu, us)]);
    let _ = publisher.close().await;
    let _ = viewer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_for_a_meeting_placed_on_another_edge_are_redirected() {
    let c = cluster(
        "placed",
        &[
            ("eu-1", "eu-west", 48.86, 2.35),
            ("eu-2", "eu-west", 50.11, 8.68),
        ],
    )
    .await;
    // Ask both edges with WHIP: exactly one of them hosts the meeting in eu-west, the other
    // answers 307 with the same path on the first (before even reading the body).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut redirects = Vec::new();
    for e in &c.edges {
        let r = http
            .post(format!("http://{}/v1/whip/placed", e.http_addr))
            .bearer_auth(token("placed", "obs"))
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::TEMPORARY_REDIRECT {
            redirects.push((
                e.http_addr,
                r.headers()["location"].to_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    let (from, location) = &redirects[0];
    let host = c.edges.iter().find(|e| e.http_addr != *from).unwrap();
    assert_eq!(
        location,
        &format!("http://{}/v1/whip/placed", host.http_addr)
    );

    // The signaling WebSocket says the same with a `redirect` message.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{from}/v1/rtc"))
        .await
        .unwrap();
    let join = serde_json::json!({ "type": "join", "token": token("placed", "carol") });
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let msg = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "redirect", "{v}");
    assert_eq!(v["url"], format!("http://{}", host.http_addr));
    assert_eq!(v["ws_url"], format!("ws://{}/v1/rtc", host.http_addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_backbone_link_reroutes_through_the_third_edge() {
    // Three regions, links through impairment proxies at one-way delays of 20, 40 and 75 ms.
    let c = cluster_with(
        "reroute",
        &[
            ("ea", "eu-west", 48.86, 2.35),
            ("eb", "us-east", 39.04, -77.49),
            ("ec", "ap-southeast", 1.35, 103.82),
        ],
        &[(0, 1, 20), (0, 2, 40), (1, 2, 75)],
    )
    .await;
    let epoch = Epoch(Instant::now().into_std());
    let publisher = common::publisher(&ws_url(&c.edges[0]), &token("cut", "alice"), epoch, 1).await;
    let mut viewers = Vec::new();
    for (i, edge) in [1, 2].into_iter().enumerate() {
        let v = viewer(
            &c.edges[edge],
            "cut",
            &format!("v{edge}"),
            epoch,
            2 + i as u32,
        )
        .await;
        watch(&v, &publisher, 320, 180).await;
        viewers.push(v);
    }
    // Media flows to both, then the link eu-west – ap-southeast (which the tree uses: ec's
    // shortest way to ea) is cut.
    for v in &viewers {
        until_rendered(v, 60, "no video before the cut").await;
    }
    let tree = c
        .origin
        .store
        .tree(&"cut".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let (ea, ec): (EdgeId, EdgeId) = ("ea".parse().unwrap(), "ec".parse().unwrap());
    assert!(
        tree.links.contains(&(ea.clone(), ec.clone())),
        "{:?}",
        tree.links
    );
    let cut_at = Instant::now();
    let proxy = &c.links.iter().find(|(k, _)| *k == (0, 2)).unwrap().1;
    let update = arbor_ops::impair::control::LinkUpdate {
        partition: Some(true),
        ..Default::default()
    };
    proxy.control().update(update).await.unwrap();

    // Watch the far viewer's rendered frames: the longest stall is the media gap.
    let stalls = watch_stalls(&viewers[1], cut_at, Duration::from_secs(5)).await;
    assert!(
        stalls.since_last < Duration::from_millis(300),
        "media flows again: {stalls:?}"
    );
    eprintln!("media gap at the far viewer after the cut: {stalls:?}");
    // DESIGN.md §5: re-route within a second, no client reconnecting (same sessions).
    assert!(stalls.longest < Duration::from_secs(1), "froze: {stalls:?}");
    let tree = c
        .origin
        .store
        .tree(&"cut".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!tree.links.contains(&(ea, ec)), "{:?}", tree.links);
    for v in viewers {
        let s = v.stats().await.unwrap();
        assert!(s.connected, "the viewer kept its session");
        let _ = v.close().await;
    }
    let _ = publisher.close().await;
}
