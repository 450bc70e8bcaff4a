//! A whole edge worker and real str0m clients (`arbor-loadgen`) in virtual time.
//!
//! Datagrams travel through an in-memory link with a fixed one-way delay; a peer's downlink
//! can be limited to a bit rate with a bounded queue (a bottleneck router), which is how the
//! bandwidth tests make str0m's GCC estimate fall and recover. No sockets, no sleeps: time
//! jumps from one event to the next, so ten seconds of a meeting run in well under a second
//! of CPU and every run is the same.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a test picks its virtual epoch

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbor_loadgen::{Client, ClientConfig, Epoch, Input, Output as ClientOutput};
use edge_core::signal::{ClientMsg, ServerMsg};
use edge_core::{Admission, Limits, Output, Role, SessionConfig, Worker, WorkerConfig};
use relay_proto::{MeetingId, ParticipantId};
use str0m::net::Protocol;

pub const EDGE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7882);
/// One-way delay of every link.
pub const DELAY: Duration = Duration::from_millis(10);
/// A limited downlink queues at most this much before dropping.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(150);

pub struct Peer {
    pub client: Client,
    pub addr: SocketAddr,
    pub id: ParticipantId,
    pub inbox: Vec<ServerMsg>,
    timeout: Instant,
    /// Downlink bottleneck: rate and when the link is next free.
    pub downlink_bps: Option<u64>,
    link_free_at: Instant,
    pub dropped: u64,
    /// Fraction of the edge's datagrams to this peer lost on the way (seeded, reproducible).
    pub downlink_loss: f64,
}

struct InFlight {
    at: Instant,
    seq: u64,
    to_edge: bool,
    peer: usize,
    source: SocketAddr,
    destination: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub struct Mesh {
    pub now: Instant,
    pub epoch: Epoch,
    pub worker: Worker,
    pub peers: Vec<Peer>,
    worker_timeout: Instant,
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    capturing: Option<usize>,
    captured: Vec<Captured>,
    /// Seeded generator for link loss.
    loss_rng: u64,
    /// Wall time spent inside worker calls (single thread, so CPU time of the edge).
    pub worker_time: Duration,
    /// The part of `worker_time` spent on join/offer calls, datagrams and timers.
    pub time_signaling: Duration,
    pub time_datagrams: Duration,
    pub time_timers: Duration,
}

/// A datagram a client sent, held back by [`Mesh::capture`].
pub struct Captured {
    pub at: Instant,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub bytes: Vec<u8>,
}

pub fn admission(meeting: &str, identity: &str) -> Admission {
    Admission {
        meeting: MeetingId::new(meeting).unwrap(),
        identity: identity.into(),
        name: identity.into(),
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
        hidden: false,
    }
}

impl Mesh {
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        let cfg = WorkerConfig {
            session: SessionConfig::new(EDGE, None).unwrap(),
            limits,
            ice_servers: vec![],
            rng_seed: 7,
            wall_ms_at_start: 1_763_700_000_000,
        };
        Mesh {
            now,
            epoch: Epoch(now),
            worker: Worker::new(cfg, now),
            peers: vec![],
            worker_timeout: now,
            wire: BinaryHeap::new(),
            seq: 0,
            capturing: None,
            captured: Vec::new(),
            loss_rng: 0x9e37_79b9_7f4a_7c15,
            worker_time: Duration::ZERO,
            time_signaling: Duration::ZERO,
            time_datagrams: Duration::ZERO,
            time_timers: Duration::ZERO,
        }
    }

    /// Joins a participant, negotiates its media and returns its index.
    pub fn join(&mut self, identity: &str, mut cfg: ClientConfig) -> usize {
        let n = self.peers.len();
        cfg.seed = n as u64 + 1;
        cfg.source_id = n as u32 + 1;
        cfg.epoch = self.epoch;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, n as u8 + 1)), 5000);
        let mut client = Client::new(self.now, cfg);
        client.add_local_candidate(self.now, addr).unwrap();
        let t = Instant::now();
        let id = self
            .worker
            .join(self.now, admission("m", identity), Role::Meeting)
            .unwrap();
        self.worker_time += t.elapsed();
        self.time_signaling += t.elapsed();
        self.peers.push(Peer {
            client,
            addr,
            id,
            inbox: vec![],
            timeout: self.now,
            downlink_bps: None,
            link_free_at: self.now,
            dropped: 0,
            downlink_loss: 0.0,
        });
        self.drain_worker();
        let offer = self.peers[n].client.create_offer(self.now).unwrap();
        self.send(n, offer.to_msg_core());
        let answer = self.take_answer(n);
        self.peers[n]
            .client
            .accept_answer(self.now, &answer)
            .unwrap();
        self.drain_client(n);
        n
    }

    pub fn send(&mut self, peer: usize, msg: ClientMsg) {
        let id = self.peers[peer].id;
        let t = Instant::now();
        self.worker.handle_client_message(self.now, id, msg);
        self.worker_time += t.elapsed();
        self.time_signaling += t.elapsed();
        self.drain_worker();
    }

    fn take_answer(&mut self, peer: usize) -> String {
        let inbox = &mut self.peers[peer].inbox;
        let i = inbox
            .iter()
            .position(|m| matches!(m, ServerMsg::Answer { .. }))
            .unwrap_or_else(|| panic!("no answer; inbox: {inbox:?}"));
        match inbox.remove(i) {
            ServerMsg::Answer { sdp } => sdp,
            _ => unreachable!(),
        }
    }

    /// Runs virtual time forward by `d`.
    pub fn run(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let mut next = self.worker_timeout;
            for p in &self.peers {
                next = next.min(p.timeout);
            }
            if let Some(Reverse(f)) = self.wire.peek() {
                next = next.min(f.at);
            }
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            while self.wire.peek().is_some_and(|Reverse(f)| f.at <= self.now) {
                let Reverse(f) = self.wire.pop().unwrap();
                if f.to_edge {
                    let t = Instant::now();
                    self.worker.handle_receive(
                        self.now,
                        Protocol::Udp,
                        f.source,
                        f.destination,
                        &f.bytes,
                    );
                    self.worker_time += t.elapsed();
                    self.time_datagrams += t.elapsed();
                    self.drain_worker();
                } else {
                    let input = Input::Datagram {
                        source: f.source,
                        destination: f.destination,
                        contents: &f.bytes,
                    };
                    let _ = self.peers[f.peer].client.handle_input(self.now, input);
                    self.drain_client(f.peer);
                }
            }
            if self.worker_timeout <= self.now {
                let t = Instant::now();
                self.worker.handle_timeout(self.now);
                self.worker_time += t.elapsed();
                self.time_timers += t.elapsed();
                self.drain_worker();
            }
            for i in 0..self.peers.len() {
                if self.peers[i].timeout <= self.now {
                    let _ = self.peers[i].client.handle_input(self.now, Input::Timeout);
                    self.drain_client(i);
                }
            }
        }
    }

    /// A uniform draw in [0, 1) from the seeded generator (xorshift64*).
    fn chance(&mut self) -> f64 {
        let mut x = self.loss_rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.loss_rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn push(&mut self, f: InFlight) {
        self.seq += 1;
        self.wire.push(Reverse(InFlight { seq: self.seq, ..f }));
    }

    fn drain_worker(&mut self) {
        loop {
            let t = Instant::now();
            let out = self.worker.poll_output();
            self.worker_time += t.elapsed();
            match out {
                Output::Transmit(t) => {
                    let Some(i) = self.peers.iter().position(|p| p.addr == t.destination) else {
                        continue;
                    };
                    let mut at = self.now + DELAY;
                    let lost = self.peers[i].downlink_loss > 0.0
                        && self.chance() < self.peers[i].downlink_loss;
                    let p = &mut self.peers[i];
                    if lost {
                        p.dropped += 1;
                        continue;
                    }
                    if let Some(bps) = p.downlink_bps {
                        let start = p.link_free_at.max(self.now);
                        if start.saturating_duration_since(self.now) > QUEUE_LIMIT {
                            p.dropped += 1;
                            continue;
                        }
                        let tx =
                            Duration::from_nanos(t.contents.len() as u64 * 8 * 1_000_000_000 / bps);
                        p.link_free_at = start + tx;
                        at = p.link_free_at + DELAY;
                    }
                    self.push(InFlight {
                        at,
                        seq: 0,
                        to_edge: false,
                        peer: i,
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    });
                }
                Output::Signal(id, msg) => {
                    if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
                        p.inbox.push(msg);
                    }
                }
                Output::Closed(_) => {}
                Output::Timeout(t) => {
                    self.worker_timeout = t;
                    return;
                }
            }
        }
    }

    fn drain_client(&mut self, i: usize) {
        loop {
            match self.peers[i].client.poll_output() {
                ClientOutput::Transmit(t) if self.capturing == Some(i) => {
                    self.captured.push(Captured {
                        at: self.now,
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    });
                }
                ClientOutput::Transmit(t) => {
                    let f = InFlight {
                        at: self.now + DELAY,
                        seq: 0,
                        to_edge: true,
                        peer: i,
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    };
                    self.push(f);
                }
                ClientOutput::Timeout(t) => {
                    self.peers[i].timeout = t;
                    return;
                }
            }
        }
    }

    /// Runs time forward by `d` while `peer`'s datagrams are captured instead of delivered.
    pub fn capture(&mut self, peer: usize, d: Duration) -> Vec<Captured> {
        self.capturing = Some(peer);
        self.run(d);
        self.capturing = None;
        std::mem::take(&mut self.captured)
    }

    /// Feeds captured datagrams to the worker in order, discarding what it sends. Returns the
    /// number of datagrams the worker sent.
    pub fn replay_to_edge(&mut self, packets: &[Captured]) -> usize {
        let mut sent = 0;
        for p in packets {
            self.worker
                .handle_receive(p.at, Protocol::Udp, p.source, p.destination, &p.bytes);
            loop {
                match self.worker.poll_output() {
                    Output::Transmit(_) => sent += 1,
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
        }
        sent
    }

    /// The tracks announced to `peer` so far (from `joined` and `track_published`).
    pub fn tracks_seen(&self, peer: usize) -> Vec<edge_core::signal::TrackInfo> {
        let mut out = vec![];
        for m in &self.peers[peer].inbox {
            match m {
                ServerMsg::Joined(s) => out.extend(s.tracks.iter().cloned()),
                ServerMsg::TrackPublished { track } => out.push(track.clone()),
                _ => {}
            }
        }
        out
    }
}

/// Converts the client's offer into the core's message type.
pub trait ToCore {
    fn to_msg_core(&self) -> ClientMsg;
}

impl ToCore for arbor_loadgen::Offer {
    fn to_msg_core(&self) -> ClientMsg {
        let json = serde_json::to_string(&self.to_msg()).unwrap();
        ClientMsg::parse(&json).unwrap()
    }
}
