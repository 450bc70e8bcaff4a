//! Relayed media over quinn: Gbit/s per core on one backbone link, on 127.0.0.1.
//!
//! Two [`RelayEndpoint`]s with a dev CA and one link between them, in this process. The
//! sender pushes media datagrams (`relay_proto::encode_datagram` of 1,100–1,200-byte RTP
//! payloads, one fresh buffer each, as an edge's relay path builds them) with
//! [`LinkHandle::send_datagram`]; the receiver decodes and counts every one. Each datagram's
//! RTP timestamp is its index, so loss is exact: of the datagrams handed to quinn inside the
//! measured window, the share that never reached the receiving owner.
//!
//! CPU is the whole process's (utime + stime from `/proc/self/stat`), so it covers both ends:
//! building and sending a datagram on one edge, receiving and decoding it on the next — the
//! per-byte work of one relay hop. Gbit/s per CPU-second is Gbit/s per core.
//!
//! Modes, each on a current-thread and on a 2-worker tokio runtime, each on a fresh link:
//!
//! - `unpaced`: as fast as `send_datagram` takes them (it never blocks; quinn's congestion
//!   controller and pacer then drop the oldest queued datagrams, counted as loss in quinn);
//! - `paced`: a token bucket at a fixed media rate; a bisection finds the highest rate whose
//!   loss stays under [`LOSS_TARGET`], then that rate is measured for the full window.
//!
//! ```sh
//! cargo bench -p arbor-relay-quic --bench throughput                 # table
//! cargo bench -p arbor-relay-quic --bench throughput -- --json       # and one JSON line per row
//! cargo bench -p arbor-relay-quic --bench throughput -- --secs 10 --runtime current
//! cargo bench -p arbor-relay-quic --bench throughput -- --rate-mbps 1500   # one paced rate
//! cargo bench -p arbor-relay-quic --bench throughput -- --payload 1200     # equal sizes
//! cargo bench -p arbor-relay-quic --bench throughput -- --run-length 5     # frames of 5
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_proto::{
    EdgeId, FlowId, Hello, MAX_DATAGRAM, MediaHeader, MeetingId, RegionId, Role, VERSION,
    decode_datagram, encode_datagram,
};
use relay_quic::{Ca, LinkConfig, LinkEvent, LinkHandle, RelayEndpoint};

/// Highest loss a paced rate may show to count as sustainable.
const LOSS_TARGET: f64 = 0.005;
/// Bisection steps between the floor and the unpaced ceiling.
const SEARCH_STEPS: usize = 7;
/// Length of each bisection trial (the final measurement uses `--secs`).
const TRIAL: Duration = Duration::from_secs(2);
/// Sent before every measured window: handshake, Cubic's slow start, the pacer's first bursts.
const WARMUP: Duration = Duration::from_secs(1);
/// Wait after the window for datagrams still in flight.
const DRAIN: Duration = Duration::from_millis(300);
/// Unpaced: datagrams handed to quinn between yields to the runtime.
const BATCH: usize = 64;
/// Paced: the token bucket's refill tick, and the most it catches up after a late tick.
const TICK: Duration = Duration::from_millis(1);
const MAX_CATCH_UP: Duration = Duration::from_millis(10);
/// RTP payload sizes cycle through this many lengths in 1,100..=1,200 bytes.
const PAYLOADS: usize = 32;
/// IPv4 + UDP headers per UDP datagram, for the on-wire rate.
const IP_UDP_HEADER_BYTES: u64 = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Current,
    Multi,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Current => "current-thread",
            Flavor::Multi => "multi-thread(2)",
        }
    }

    fn runtime(self) -> tokio::runtime::Runtime {
        let mut b = match self {
            Flavor::Current => tokio::runtime::Builder::new_current_thread(),
            Flavor::Multi => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        b.enable_all().build().expect("tokio runtime")
    }
}

#[derive(Debug)]
struct Options {
    secs: f64,
    json: bool,
    flavors: Vec<Flavor>,
    /// Measure this one paced rate instead of searching.
    rate_mbps: Option<f64>,
    /// Every RTP payload this long, instead of 1,100–1,200 bytes (shows what equal sizes do
    /// for quinn's GSO batches).
    payload: Option<usize>,
    /// Consecutive datagrams of one size, as a browser's packetizer splits a video frame into
    /// equal packets (1: every datagram a different size).
    run_length: u64,
}

impl Options {
    /// `cargo bench` passes `--bench`; anything unknown is ignored.
    fn parse() -> Options {
        let mut o = Options {
            secs: 5.0,
            json: false,
            flavors: vec![Flavor::Current, Flavor::Multi],
            rate_mbps: None,
            payload: None,
            run_length: 1,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => o.json = true,
                "--secs" => {
                    o.secs = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--secs <s>");
                }
                "--rate-mbps" => o.rate_mbps = args.next().and_then(|v| v.parse().ok()),
                "--payload" => o.payload = args.next().and_then(|v| v.parse().ok()),
                "--run-length" => {
                    o.run_length = args.next().and_then(|v| v.parse().ok()).unwrap_or(1);
                }
                "--runtime" => match args.next().as_deref() {
                    Some("current") => o.flavors = vec![Flavor::Current],
                    Some("multi") => o.flavors = vec![Flavor::Multi],
                    other => panic!("--runtime current|multi, not {other:?}"),
                },
                _ => {}
            }
        }
        o
    }
}

/// How the sender offers datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    Unpaced,
    /// Media bits per second.
    Rate(f64),
}

/// What the receiving owner saw; shared with the sender, which sets the window.
#[derive(Debug, Default)]
struct Rx {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    /// Index range of the measured window: `lo` set before its first send, `hi` after its
    /// last one (both `u64::MAX` until set: nothing counts before the window).
    lo: AtomicU64,
    hi: AtomicU64,
    in_window: AtomicU64,
    malformed: AtomicU64,
}

/// Counters at one instant; a window is the difference of two.
#[derive(Debug, Clone, Copy)]
struct Snap {
    at: Instant,
    cpu_ticks: u64,
    accepted: u64,
    rx_datagrams: u64,
    rx_bytes: u64,
    tx: quinn::ConnectionStats,
    rx: quinn::ConnectionStats,
    delivered: u64,
    owner_drops: u64,
}

/// One measured window.
#[derive(Debug, Clone)]
struct Sample {
    flavor: Flavor,
    pace: Pace,
    secs: f64,
    offered: u64,
    /// Media bytes handed to `send_datagram` in the window.
    offered_bytes: u64,
    received_in_window: u64,
    a: Snap,
    b: Snap,
}

/// A link on 127.0.0.1 and the task counting what it delivers.
struct Bench {
    sender: LinkHandle,
    receiver: LinkHandle,
    rx: Arc<Rx>,
    endpoints: [RelayEndpoint; 2],
    payload: Option<usize>,
    run_length: u64,
}

fn edge(id: &str) -> Role {
    Role::Edge(EdgeId::new(id).unwrap())
}

fn hello(role: &Role) -> Hello {
    Hello {
        version: VERSION,
        role: role.clone(),
        region: RegionId::new("bench").unwrap(),
    }
}

/// Process CPU time (user + system) in clock ticks (100 Hz on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name: state is [0], utime [11], stime [12].
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

const TICKS_PER_SEC: f64 = 100.0;

async fn link(ca: &Ca, opts: &Options) -> Bench {
    let (a, b) = (edge("bench-a"), edge("bench-b"));
    let bind = |role: &Role| {
        let addr = "127.0.0.1:0".parse().unwrap();
        RelayEndpoint::bind(addr, &ca.issue(role).unwrap(), ca.cert_pem()).unwrap()
    };
    let (ep_a, ep_b) = (bind(&a), bind(&b));
    let addr = ep_b.local_addr().unwrap();
    let accept = async {
        let incoming = ep_b.accept().await.expect("endpoint open");
        incoming.establish().await
    };
    let (dialed, accepted) = tokio::join!(ep_a.connect(addr, &b), accept);
    let (sender, mut sender_events) =
        relay_quic::spawn(dialed.unwrap(), LinkConfig::new(hello(&a)));
    let (receiver, mut events) = relay_quic::spawn(accepted.unwrap(), LinkConfig::new(hello(&b)));
    for ev in [&mut sender_events, &mut events] {
        match ev.recv().await {
            Some(LinkEvent::Up(_)) => {}
            other => panic!("expected Up, got {other:?}"),
        }
    }
    // The sender's events (RTT samples) are read so its queue never fills.
    tokio::spawn(async move { while sender_events.recv().await.is_some() {} });
    let rx = Arc::new(Rx {
        lo: AtomicU64::new(u64::MAX),
        hi: AtomicU64::new(u64::MAX),
        ..Rx::default()
    });
    tokio::spawn(count(events, rx.clone()));
    Bench {
        sender,
        receiver,
        rx,
        endpoints: [ep_a, ep_b],
        payload: opts.payload,
        run_length: opts.run_length,
    }
}

/// The receiving owner: decodes every datagram, as an edge does, and counts it.
async fn count(mut events: tokio::sync::mpsc::Receiver<LinkEvent>, rx: Arc<Rx>) {
    while let Some(event) = events.recv().await {
        let LinkEvent::Datagram(bytes) = event else {
            continue;
        };
        let Ok(media) = decode_datagram(&bytes) else {
            rx.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let index = u64::from(media.header.timestamp);
        rx.datagrams.fetch_add(1, Ordering::Relaxed);
        rx.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if index >= rx.lo.load(Ordering::Relaxed) && index < rx.hi.load(Ordering::Relaxed) {
            rx.in_window.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Bench {
    fn snap(&self, accepted: u64) -> Snap {
        let c = self.receiver.counters();
        Snap {
            at: Instant::now(),
            cpu_ticks: cpu_ticks(),
            accepted,
            rx_datagrams: self.rx.datagrams.load(Ordering::Relaxed),
            rx_bytes: self.rx.bytes.load(Ordering::Relaxed),
            tx: self.sender.stats(),
            rx: self.receiver.stats(),
            delivered: c.datagrams_in,
            owner_drops: c.dropped_owner_full,
        }
    }

    async fn close(self) {
        self.sender.close(relay_proto::CloseCode::Normal, "done");
        for ep in &self.endpoints {
            ep.quinn().close(quinn::VarInt::from_u32(0), b"done");
        }
        for ep in &self.endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(1), ep.quinn().wait_idle()).await;
        }
    }
}

/// The media a publisher's top layer would carry: RTP payloads of 1,100–1,200 bytes, or
/// all of length `fixed`.
fn payloads(fixed: Option<usize>) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x5EED_0BAD_F00D_0001;
    (0..PAYLOADS)
        .map(|i| {
            let len = fixed.unwrap_or(1_100 + (i * 37) % 101);
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

/// One datagram: index `i` in the RTP timestamp (and its low bits as the sequence number);
/// the payload size changes every `run` datagrams.
fn datagram(flow: FlowId, payloads: &[Vec<u8>], run: u64, i: u64) -> Bytes {
    let payload = &payloads[(i / run.max(1)) as usize % payloads.len()];
    let header = MediaHeader {
        marker: i % 8 == 7,
        payload_type: 96,
        seq: i as u16,
        timestamp: i as u32,
        audio_level: None,
    };
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    encode_datagram(flow, 2, &header, payload, &mut buf).expect("fits");
    Bytes::from(buf)
}

/// Sends for the warm-up and then `window`, then marks the window's end and waits for
/// stragglers. Returns the sample.
async fn measure(bench: &Bench, flavor: Flavor, pace: Pace, window: Duration) -> Sample {
    let flow = FlowId::new(&MeetingId::new("bench").unwrap(), 1);
    let payloads = payloads(bench.payload);
    let start = Instant::now();
    let mut next: u64 = 0;
    let mut accepted: u64 = 0;
    let mut sent_bytes: u64 = 0;
    let mut offered_bytes: u64 = 0;
    let mut a: Option<(Snap, u64, u64)> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let elapsed = start.elapsed();
        if a.is_none() && elapsed >= WARMUP {
            bench.rx.lo.store(next, Ordering::Relaxed);
            a = Some((bench.snap(accepted), next, offered_bytes));
        }
        if elapsed >= WARMUP + window {
            break;
        }
        let budget = match pace {
            Pace::Unpaced => BATCH,
            Pace::Rate(bps) => {
                tick.tick().await;
                let due = (bps / 8.0 * start.elapsed().as_secs_f64()) as u64;
                let floor = due.saturating_sub((bps / 8.0 * MAX_CATCH_UP.as_secs_f64()) as u64);
                sent_bytes = sent_bytes.max(floor);
                let avg = 1_150 + relay_proto::datagram::BASE_OVERHEAD as u64;
                (due.saturating_sub(sent_bytes) / avg) as usize
            }
        };
        for _ in 0..budget {
            let d = datagram(flow, &payloads, bench.run_length, next);
            next += 1;
            sent_bytes += d.len() as u64;
            offered_bytes += d.len() as u64;
            if bench.sender.send_datagram(d).is_ok() {
                accepted += 1;
            }
        }
        if pace == Pace::Unpaced {
            tokio::task::yield_now().await;
        }
    }
    let b = bench.snap(accepted);
    bench.rx.hi.store(next, Ordering::Relaxed);
    tokio::time::sleep(DRAIN).await;
    let (a, lo, offered_at_start) = a.expect("window started");
    Sample {
        flavor,
        pace,
        secs: (b.at - a.at).as_secs_f64(),
        offered: next - lo,
        offered_bytes: offered_bytes - offered_at_start,
        received_in_window: bench.rx.in_window.load(Ordering::Relaxed),
        a,
        b,
    }
}

async fn run(ca: &Ca, opts: &Options, flavor: Flavor, pace: Pace, window: Duration) -> Sample {
    let bench = link(ca, opts).await;
    let s = measure(&bench, flavor, pace, window).await;
    bench.close().await;
    s
}

impl Sample {
    fn loss(&self) -> f64 {
        1.0 - self.received_in_window as f64 / self.offered.max(1) as f64
    }

    /// What the sender managed to hand to quinn; below a paced target when it lacked CPU.
    fn offered_gbps(&self) -> f64 {
        self.offered_bytes as f64 * 8.0 / self.secs / 1e9
    }

    fn media_gbps(&self) -> f64 {
        (self.b.rx_bytes - self.a.rx_bytes) as f64 * 8.0 / self.secs / 1e9
    }

    /// UDP payload (QUIC packets) plus IPv4 and UDP headers, as received.
    fn wire_gbps(&self) -> f64 {
        let udp = self.b.rx.udp_rx.bytes - self.a.rx.udp_rx.bytes;
        let n = self.b.rx.udp_rx.datagrams - self.a.rx.udp_rx.datagrams;
        (udp + n * IP_UDP_HEADER_BYTES) as f64 * 8.0 / self.secs / 1e9
    }

    fn datagrams_per_sec(&self) -> f64 {
        (self.b.rx_datagrams - self.a.rx_datagrams) as f64 / self.secs
    }

    fn cpu_secs(&self) -> f64 {
        (self.b.cpu_ticks - self.a.cpu_ticks) as f64 / TICKS_PER_SEC
    }

    fn per_core_gbps(&self) -> f64 {
        self.media_gbps() * self.secs / self.cpu_secs().max(1e-9)
    }

    /// Where datagrams went in the window: (dropped in quinn's send buffer, lost between
    /// the UDP sockets, dropped in the receiver's quinn buffer, dropped at the owner queue),
    /// as shares of those accepted.
    fn loss_split(&self) -> [f64; 4] {
        let accepted = (self.b.accepted - self.a.accepted).max(1) as f64;
        let framed = self.b.tx.frame_tx.datagram - self.a.tx.frame_tx.datagram;
        let arrived = self.b.rx.frame_rx.datagram - self.a.rx.frame_rx.datagram;
        let delivered = self.b.delivered - self.a.delivered;
        let owner = self.b.owner_drops - self.a.owner_drops;
        let accepted_n = self.b.accepted - self.a.accepted;
        [
            accepted_n.saturating_sub(framed) as f64 / accepted,
            framed.saturating_sub(arrived) as f64 / accepted,
            arrived.saturating_sub(delivered) as f64 / accepted,
            owner as f64 / accepted,
        ]
    }

    /// UDP datagrams per send call on the sending side: above 1 means GSO. (quinn counts
    /// received packets, not receive calls, so GRO does not show in its stats.)
    fn segments_per_send(&self) -> f64 {
        let (a, b) = (self.a.tx.udp_tx, self.b.tx.udp_tx);
        (b.datagrams - a.datagrams) as f64 / (b.ios - a.ios).max(1) as f64
    }

    fn mode(&self) -> String {
        match self.pace {
            Pace::Unpaced => "unpaced".into(),
            Pace::Rate(bps) => format!("paced {:.0} Mbit/s", bps / 1e6),
        }
    }

    fn row(&self) -> String {
        let [q, net, rxq, owner] = self.loss_split();
        let gso = self.segments_per_send();
        format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.0}k | {:.2}% ({:.2}/{:.2}/{:.2}/{:.2}) | {:.2} | {:.3} | {:.2} | {} µs |",
            self.flavor.name(),
            self.mode(),
            self.offered_gbps(),
            self.media_gbps(),
            self.wire_gbps(),
            self.datagrams_per_sec() / 1e3,
            self.loss() * 100.0,
            q * 100.0,
            net * 100.0,
            rxq * 100.0,
            owner * 100.0,
            self.cpu_secs() / self.secs,
            self.per_core_gbps(),
            gso,
            self.b.tx.path.rtt.as_micros(),
        )
    }

    fn json(&self) -> serde_json::Value {
        let [q, net, rxq, owner] = self.loss_split();
        let gso = self.segments_per_send();
        serde_json::json!({
            "runtime": self.flavor.name(),
            "mode": self.mode(),
            "rate_bps": match self.pace { Pace::Rate(r) => Some(r), Pace::Unpaced => None },
            "secs": self.secs,
            "offered_gbps": self.offered_gbps(),
            "media_gbps": self.media_gbps(),
            "wire_gbps": self.wire_gbps(),
            "datagrams_per_sec": self.datagrams_per_sec(),
            "loss": self.loss(),
            "loss_quinn_send": q,
            "loss_network": net,
            "loss_quinn_recv": rxq,
            "loss_owner_queue": owner,
            "cpu_cores": self.cpu_secs() / self.secs,
            "gbps_per_core": self.per_core_gbps(),
            "udp_segments_per_send": gso,
            "rtt_us": self.b.tx.path.rtt.as_micros() as u64,
            "cwnd_bytes": self.b.tx.path.cwnd,
            "congestion_events": self.b.tx.path.congestion_events - self.a.tx.path.congestion_events,
        })
    }
}

/// The highest paced rate under [`LOSS_TARGET`] loss, by bisection below `ceiling_bps`. A
/// sender short of CPU offers less than the target without loss; the table shows what it
/// offered.
async fn search(ca: &Ca, opts: &Options, flavor: Flavor, ceiling_bps: f64) -> f64 {
    let (mut good, mut bad) = (0.0_f64, ceiling_bps * 1.2);
    for _ in 0..SEARCH_STEPS {
        let rate = if good == 0.0 {
            bad / 2.0
        } else {
            (good + bad) / 2.0
        };
        let s = run(ca, opts, flavor, Pace::Rate(rate), TRIAL).await;
        eprintln!(
            "  search {}: {:.0} Mbit/s → offered {:.3}, received {:.3} Gbit/s, loss {:.3}%",
            flavor.name(),
            rate / 1e6,
            s.offered_gbps(),
            s.media_gbps(),
            s.loss() * 100.0,
        );
        if s.loss() < LOSS_TARGET {
            good = rate;
        } else {
            bad = rate;
        }
    }
    good
}

async fn flavor_rows(ca: &Ca, flavor: Flavor, opts: &Options) -> Vec<Sample> {
    let window = Duration::from_secs_f64(opts.secs);
    if let Some(mbps) = opts.rate_mbps {
        return vec![run(ca, opts, flavor, Pace::Rate(mbps * 1e6), window).await];
    }
    let unpaced = run(ca, opts, flavor, Pace::Unpaced, window).await;
    if unpaced.loss() < LOSS_TARGET {
        // Nothing to pace: quinn sent all the sender could make.
        return vec![unpaced];
    }
    let ceiling = unpaced.media_gbps() * 1e9;
    let rate = search(ca, opts, flavor, ceiling).await;
    let mut rows = vec![unpaced];
    if rate > 0.0 {
        rows.push(run(ca, opts, flavor, Pace::Rate(rate), window).await);
    }
    rows
}

fn main() {
    let opts = Options::parse();
    let ca = Ca::generate("bench CA").expect("dev CA");
    let mut rows = Vec::new();
    for &flavor in &opts.flavors {
        let rt = flavor.runtime();
        rows.extend(rt.block_on(flavor_rows(&ca, flavor, &opts)));
    }
    println!(
        "| runtime | mode | offered Gbit/s | media Gbit/s | wire Gbit/s | datagrams/s | loss (quinn send / net / quinn recv / owner) | CPU cores | media Gbit/s per core | UDP datagrams per send (GSO) | RTT |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{}", r.row());
    }
    if opts.json {
        for r in &rows {
            println!("{}", r.json());
        }
    }
}
