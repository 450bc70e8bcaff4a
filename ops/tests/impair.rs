#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `arbor impair` on real sockets on 127.0.0.1: an echo server behind the proxy, the link
//! model in both directions, and the control API over HTTP and the CLI. Assertions count
//! packets through `/stats` rather than time them, except the RTT floor, which the model
//! guarantees (a packet is never delivered before its time).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use arbor_ops::cli::Cli;
use arbor_ops::impair::{Proxy, ProxyConfig, ProxyStats, flow_seeds};
use arbor_sim::link::{Link, LinkConfig, Loss};
use clap::Parser as _;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longest wait for anything that should happen at once; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A UDP echo server on 127.0.0.1; it stops when dropped.
struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            socket.send_to(&buf[..n], from).await.unwrap();
        }
    });
    Echo { addr, task }
}

/// A proxy in front of an echo server, with a control API, and a client socket.
async fn setup(up: LinkConfig, down: LinkConfig, seed: u64) -> (Proxy, Echo, UdpSocket) {
    let echo = echo_server().await;
    let cfg = ProxyConfig {
        control: Some("127.0.0.1:0".parse().unwrap()),
        up,
        down,
        seed,
        ..ProxyConfig::new("127.0.0.1:0".parse().unwrap(), echo.addr)
    };
    let proxy = Proxy::start(cfg).await.unwrap();
    let client = client_of(&proxy).await;
    (proxy, echo, client)
}

async fn client_of(proxy: &Proxy) -> UdpSocket {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(proxy.listen_addr()).await.unwrap();
    client
}

async fn stats(proxy: &Proxy) -> ProxyStats {
    proxy.control().stats().await.unwrap()
}

/// Polls the proxy's counters until `done` holds, receiving on `client` meanwhile; returns
/// the datagrams received.
async fn until(
    proxy: &Proxy,
    client: &UdpSocket,
    done: impl Fn(&ProxyStats, usize) -> bool,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        while let Ok(Ok(n)) = timeout(Duration::from_millis(5), client.recv(&mut buf)).await {
            received.push(buf[..n].to_vec());
        }
        let s = stats(proxy).await;
        if done(&s, received.len()) {
            return received;
        }
        assert!(Instant::now() < deadline, "gave up waiting; stats {s:?}");
    }
}

/// Sends one datagram and waits for its echo: the round-trip time.
async fn ping(client: &UdpSocket, payload: &[u8]) -> Duration {
    let start = Instant::now();
    client.send(payload).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = timeout(PATIENCE, client.recv(&mut buf))
        .await
        .expect("no echo")
        .unwrap();
    assert_eq!(&buf[..n], payload);
    start.elapsed()
}

fn control_url(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{path}", proxy.control_addr().unwrap())
}

async fn put_link(proxy: &Proxy, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(control_url(proxy, "/link"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get(proxy: &Proxy, path: &str) -> Value {
    let response = reqwest::get(control_url(proxy, path)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// Runs `arbor <argv>` as the binary would (on a blocking thread: it starts its own runtime).
async fn arbor(argv: &[&str]) -> anyhow::Result<ExitCode> {
    let argv: Vec<String> = ["arbor"]
        .iter()
        .chain(argv)
        .map(|s| s.to_string())
        .collect();
    tokio::task::spawn_blocking(move || arbor_ops::run(Cli::try_parse_from(argv)?))
        .await
        .unwrap()
}

fn delayed(delay_ms: u64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(delay_ms),
        ..LinkConfig::ideal()
    }
}

#[tokio::test]
async fn round_trip_is_twice_the_one_way_delay() {
    let (proxy, _echo, client) = setup(delayed(30), delayed(30), 1).await;
    for i in 0..10u8 {
        let rtt = ping(&client, &[i; 64]).await;
        assert!(rtt >= Duration::from_millis(60), "{rtt:?}");
        // Generous: a loaded 2-core machine may be late to wake, never early.
        assert!(rtt < Duration::from_millis(60 + 500), "{rtt:?}");
    }
    let s = stats(&proxy).await;
    assert_eq!((s.flows, s.up.delivered, s.down.delivered), (1, 10, 10));
    proxy.stop().await.unwrap();
}

#[tokio::test]
async fn loss_matches_the_seeded_model() {
    let seed = 0x1055;
    println!("seed {seed}");
    let up = LinkConfig::ideal().with_loss(Loss::Random(0.1));
    let (proxy, echo, client) = setup(up.clone(), LinkConfig::ideal(), seed).await;
    let (total, window) = (2000u32, 100u32);
    let mut received = BTreeSet::new();
    for start in (0..total).step_by(window as usize) {
        for i in start..start + window {
            client.send(&i.to_be_bytes()).await.unwrap();
        }
        // Windows keep the socket buffers from overflowing: the proxy must see every packet.
        let sent = u64::from(start + window);
        let got = until(&proxy, &client, |s, n| {
            s.up.sent == sent
                && s.up.in_flight == 0
                && s.down.sent == s.up.delivered
                && s.down.in_flight == 0
                && s.down.delivered == (received.len() + n) as u64
        })
        .await;
        received.extend(
            got.iter()
                .map(|p| u32::from_be_bytes(p[..4].try_into().unwrap())),
        );
    }
    let s = stats(&proxy).await;
    assert_eq!(s.up.sent, u64::from(total));
    assert_eq!(s.up.lost + s.up.delivered, u64::from(total));
    assert_eq!(s.send_errors, 0);
    // Within 5 standard deviations of the binomial mean (200 ± 67).
    let sd = (f64::from(total) * 0.1 * 0.9).sqrt();
    let lost = s.up.lost as f64;
    assert!((lost - 200.0).abs() < 5.0 * sd, "lost {lost}");

    // The proxy ran the simulator's model with the first flow's seed: the same packets are lost.
    let mut model: Link<Vec<u8>> = Link::new(up, flow_seeds(seed, 0).0);
    let t0 = Instant::now();
    let mut expected = BTreeSet::new();
    for i in 0..total {
        model.handle_packet(t0, i.to_be_bytes().to_vec());
        while let Some(p) = model.poll_deliver(t0) {
            expected.insert(u32::from_be_bytes(p[..4].try_into().unwrap()));
        }
    }
    assert_eq!(received, expected);
    drop(echo);
}

#[tokio::test]
async fn partition_drops_everything_and_heal_restores() {
    let (proxy, _echo, client) = setup(delayed(2000), LinkConfig::ideal(), 3).await;
    // Five packets held by the 2 s delay...
    for i in 0..5u8 {
        client.send(&[i]).await.unwrap();
    }
    until(&proxy, &client, |s, _| s.up.in_flight == 5).await;
    // ...are dropped by the partition, and so is everything after it.
    let (status, links) = put_link(&proxy, json!({ "partition": true })).await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["up"]["partition"], true);
    assert_eq!(links["down"]["partition"], true);
    for i in 0..20u8 {
        client.send(&[i]).await.unwrap();
    }
    let got = until(&proxy, &client, |s, _| s.up.sent == 25).await;
    let s = stats(&proxy).await;
    assert_eq!((s.up.dropped_partition, s.up.in_flight), (25, 0));
    assert_eq!((s.up.delivered, s.down.sent), (0, 0));
    assert!(got.is_empty());
    let text = get(&proxy, "/stats").await;
    assert_eq!(text["up"]["dropped_partition"], 25);

    // Heal with the CLI client, and drop the delay with the HTTP API.
    let control = proxy.control_addr().unwrap().to_string();
    let code = arbor(&["impair", "set", "--control", &control, "--heal"]).await;
    assert_eq!(code.unwrap(), ExitCode::SUCCESS);
    let (status, links) = put_link(&proxy, json!({ "direction": "up", "delay_ms": 0 })).await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["up"]["partition"], false);
    let rtt = ping(&client, b"back").await;
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
}

#[tokio::test]
async fn bad_updates_are_refused_with_a_message() {
    let (proxy, _echo, _client) = setup(delayed(5), delayed(5), 4).await;
    let before = get(&proxy, "/link").await;
    let (status, body) = put_link(&proxy, json!({ "loss_pct": 150 })).await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("loss_pct must be between 0 and 100"),
        "{message}"
    );
    for bad in [
        json!({ "direction": "sideways" }),
        json!({ "delay": 5 }),
        json!({ "jitter_ms": -1 }),
        json!([1, 2]),
    ] {
        let (status, body) = put_link(&proxy, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_eq!(
        get(&proxy, "/link").await,
        before,
        "a refused update changed nothing"
    );

    let control = proxy.control_addr().unwrap().to_string();
    let e = arbor(&["impair", "set", "--control", &control, "--loss-pct", "150"])
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("400") && e.contains("loss_pct"), "{e}");
    let code = arbor(&["impair", "set", "--control", &control, "--loss-pct", "2"]).await;
    assert_eq!(code.unwrap(), ExitCode::SUCCESS);
    let links = get(&proxy, "/link").await;
    assert_eq!(
        (&links["up"]["loss_pct"], &links["down"]["loss_pct"]),
        (&json!(2.0), &json!(2.0))
    );
    assert_eq!(links["up"]["delay_ms"], 5.0, "fields not given stay");
}

#[tokio::test]
async fn each_client_gets_its_own_flow_until_idle() {
    let echo = echo_server().await;
    let cfg = ProxyConfig {
        flow_idle: Duration::from_millis(300),
        ..ProxyConfig::new("127.0.0.1:0".parse().unwrap(), echo.addr)
    };
    let proxy = Proxy::start(cfg).await.unwrap();
    let (a, b) = (client_of(&proxy).await, client_of(&proxy).await);
    ping(&a, b"from a").await;
    ping(&b, b"from b").await;
    ping(&a, b"a again").await;
    assert_eq!(
        (stats(&proxy).await.flows, stats(&proxy).await.flows_opened),
        (2, 2)
    );

    // Idle flows close; their counters stay; a returning client opens a new flow.
    until(&proxy, &a, |s, _| s.flows == 0).await;
    let s = stats(&proxy).await;
    assert_eq!((s.up.delivered, s.down.delivered), (3, 3));
    ping(&a, b"a later").await;
    let s = stats(&proxy).await;
    assert_eq!((s.flows, s.flows_opened, s.up.delivered), (1, 3, 4));
    proxy.stop().await.unwrap();
}
