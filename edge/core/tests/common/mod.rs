//! Whole edge workers and real str0m clients (`arbor-loadgen`) in virtual time.
//!
//! One or more edges (each one worker with its own [`EdgeId`]) are wired by an in-memory
//! backbone: control messages arrive in order after the link's delay (a QUIC stream),
//! media datagrams after the same delay unless the link's seeded loss drops them, and a cut
//! link drops everything and tells both workers their link is down, like the shell does.
//! The test plays the origin: it sends `TreeUpdate`s and reads presence reports.
//!
//! Datagrams travel through an in-memory link with a fixed one-way delay; a peer's downlink
//! can be limited to a bit rate with a bounded queue (a bottleneck router), which is how the
//! bandwidth tests make str0m's GCC estimate fall and recover. No sockets, no sleeps: time
//! jumps from one event to the next, so ten seconds of a meeting run in well under a second
//! of CPU and every run is the same.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a test picks its virtual epoch

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbor_loadgen::{Client, ClientConfig, Epoch, Input, Output as ClientOutput};
use bytes::Bytes;
use edge_core::signal::{ClientMsg, ServerMsg};
use edge_core::{Admission, Limits, Output, Role, SessionConfig, Worker, WorkerConfig};
use relay_proto::{Control, EdgeId, MeetingId, ParticipantId, TreeEpoch, TreeUpdate};
use str0m::net::Protocol;

pub const EDGE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7882);
/// One-way delay of a backbone link unless a test sets another.
pub const BACKBONE_DELAY: Duration = Duration::from_millis(20);
/// One-way delay of every link.
pub const DELAY: Duration = Duration::from_millis(10);
/// A limited downlink queues at most this much before dropping.
pub const QUEUE_LIMIT: Duration = Duration::from_millis(150);

pub struct Peer {
    pub client: Client,
    /// The edge (index into `Mesh::edges`) it joined.
    pub edge: usize,
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

/// One edge: a worker with its own id and address.
pub struct Edge {
    pub id: EdgeId,
    pub addr: SocketAddr,
    pub worker: Worker,
    timeout: Instant,
    /// What the worker sent the origin (presence reports).
    pub to_origin: Vec<Control>,
}

/// One direction of a backbone link.
#[derive(Debug, Clone)]
pub struct Backbone {
    pub delay: Duration,
    /// Fraction of media datagrams lost (control is a reliable stream).
    pub loss: f64,
    pub up: bool,
    pub datagrams: u64,
    pub datagrams_lost: u64,
    pub messages: u64,
}

impl Default for Backbone {
    fn default() -> Self {
        Backbone {
            delay: BACKBONE_DELAY,
            loss: 0.0,
            up: true,
            datagrams: 0,
            datagrams_lost: 0,
            messages: 0,
        }
    }
}

enum Cargo {
    /// A client's datagram to its edge.
    ToEdge { edge: usize },
    /// An edge's datagram to a client.
    ToPeer { peer: usize },
    /// A relay control message between edges.
    Control {
        from: usize,
        to: usize,
        msg: Control,
    },
    /// A relay media datagram between edges.
    Relay {
        from: usize,
        to: usize,
        bytes: Bytes,
    },
}

struct InFlight {
    at: Instant,
    seq: u64,
    cargo: Cargo,
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
    pub edges: Vec<Edge>,
    pub peers: Vec<Peer>,
    /// Backbone links by (from, to) edge index.
    pub links: HashMap<(usize, usize), Backbone>,
    wire: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    capturing: Option<usize>,
    captured: Vec<Captured>,
    /// Edge whose incoming relay datagrams [`Mesh::capture_relay_into`] holds back.
    relay_capturing: Option<usize>,
    relay_captured: Vec<CapturedRelay>,
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

/// A relay datagram that reached an edge, held back by [`Mesh::capture_relay_into`].
pub struct CapturedRelay {
    /// When it arrived (after the link's delay).
    pub at: Instant,
    pub from: EdgeId,
    pub bytes: Bytes,
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
    /// One edge.
    pub fn new(limits: Limits) -> Self {
        Self::with_edges(1, limits)
    }

    /// `n` edges, `edge-0` … at 10.0.0.1 …, all pairs linked by a [`Backbone`]; no trees yet.
    pub fn with_edges(n: usize, limits: Limits) -> Self {
        let now = Instant::now();
        let base = WorkerConfig {
            session: SessionConfig::new(EDGE, None).unwrap(),
            limits,
            ice_servers: vec![],
            edge: "edge-0".parse().unwrap(),
            rng_seed: 7,
            wall_ms_at_start: 1_763_700_000_000,
        };
        let edges = (0..n)
            .map(|i| {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), 7882);
                let id: EdgeId = format!("edge-{i}").parse().unwrap();
                let cfg = WorkerConfig {
                    session: SessionConfig::new(addr, None).unwrap(),
                    edge: id.clone(),
                    rng_seed: 7 + i as u64,
                    ..base.clone()
                };
                Edge {
                    id,
                    addr,
                    worker: Worker::new(cfg, now),
                    timeout: now,
                    to_origin: Vec::new(),
                }
            })
            .collect();
        let mut links = HashMap::new();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    links.insert((a, b), Backbone::default());
                }
            }
        }
        Mesh {
            now,
            epoch: Epoch(now),
            edges,
            peers: vec![],
            links,
            wire: BinaryHeap::new(),
            seq: 0,
            capturing: None,
            captured: Vec::new(),
            relay_capturing: None,
            relay_captured: Vec::new(),
            loss_rng: 0x9e37_79b9_7f4a_7c15,
            worker_time: Duration::ZERO,
            time_signaling: Duration::ZERO,
            time_datagrams: Duration::ZERO,
            time_timers: Duration::ZERO,
        }
    }

    /// The first edge's worker (single-edge tests).
    pub fn worker(&mut self) -> &mut Worker {
        &mut self.edges[0].worker
    }

    /// Joins a participant at the first edge, negotiates its media and returns its index.
    pub fn join(&mut self, identity: &str, cfg: ClientConfig) -> usize {
        self.join_at(0, identity, cfg)
    }

    /// Joins a participant at edge `edge`.
    pub fn join_at(&mut self, edge: usize, identity: &str, mut cfg: ClientConfig) -> usize {
        let n = self.peers.len();
        cfg.seed = n as u64 + 1;
        cfg.source_id = n as u32 + 1;
        cfg.epoch = self.epoch;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, n as u8 + 1)), 5000);
        let mut client = Client::new(self.now, cfg);
        client.add_local_candidate(self.now, addr).unwrap();
        let t = Instant::now();
        let id = self.edges[edge]
            .worker
            .join(self.now, admission("m", identity), Role::Meeting)
            .unwrap();
        self.worker_time += t.elapsed();
        self.time_signaling += t.elapsed();
        self.peers.push(Peer {
            client,
            edge,
            addr,
            id,
            inbox: vec![],
            timeout: self.now,
            downlink_bps: None,
            link_free_at: self.now,
            dropped: 0,
            downlink_loss: 0.0,
        });
        self.drain_worker(edge);
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
        let (id, edge) = (self.peers[peer].id, self.peers[peer].edge);
        let t = Instant::now();
        self.edges[edge]
            .worker
            .handle_client_message(self.now, id, msg);
        self.worker_time += t.elapsed();
        self.time_signaling += t.elapsed();
        self.drain_worker(edge);
    }

    /// Plays the origin: gives meeting `m` the tree with these links (edge index pairs) at
    /// `epoch`; edges outside the tree get an empty neighbour set.
    pub fn tree(&mut self, epoch: u64, links: &[(usize, usize)]) {
        for e in 0..self.edges.len() {
            let neighbours = links
                .iter()
                .filter_map(|&(a, b)| match (a == e, b == e) {
                    (true, _) => Some(self.edges[b].id.clone()),
                    (_, true) => Some(self.edges[a].id.clone()),
                    _ => None,
                })
                .collect();
            let update = TreeUpdate {
                meeting: MeetingId::new("m").unwrap(),
                epoch: TreeEpoch(epoch),
                neighbours,
            };
            self.tree_update(e, update);
        }
    }

    /// Delivers one tree update to one edge.
    pub fn tree_update(&mut self, edge: usize, update: TreeUpdate) {
        self.edges[edge].worker.handle_tree_update(self.now, update);
        self.drain_worker(edge);
    }

    /// Cuts the backbone link between two edges both ways: in-flight traffic is lost and both
    /// workers learn their link is down.
    pub fn cut(&mut self, a: usize, b: usize) {
        for k in [(a, b), (b, a)] {
            self.links.get_mut(&k).unwrap().up = false;
        }
        let wire = std::mem::take(&mut self.wire);
        self.wire = wire
            .into_iter()
            .filter(|Reverse(f)| match &f.cargo {
                Cargo::Control { from, to, .. } | Cargo::Relay { from, to, .. } => {
                    !((*from, *to) == (a, b) || (*from, *to) == (b, a))
                }
                _ => true,
            })
            .collect();
        let (ia, ib) = (self.edges[a].id.clone(), self.edges[b].id.clone());
        self.edges[a].worker.handle_link_down(self.now, &ib);
        self.drain_worker(a);
        self.edges[b].worker.handle_link_down(self.now, &ia);
        self.drain_worker(b);
    }

    /// Heals a cut link; both workers learn it is up again.
    pub fn heal(&mut self, a: usize, b: usize) {
        for k in [(a, b), (b, a)] {
            self.links.get_mut(&k).unwrap().up = true;
        }
        let (ia, ib) = (self.edges[a].id.clone(), self.edges[b].id.clone());
        self.edges[a].worker.handle_link_up(self.now, &ib);
        self.drain_worker(a);
        self.edges[b].worker.handle_link_up(self.now, &ia);
        self.drain_worker(b);
    }

    /// Index of the edge with this id.
    pub fn edge_index(&self, id: &EdgeId) -> Option<usize> {
        self.edges.iter().position(|e| e.id == *id)
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
            let mut next = until + Duration::from_secs(1);
            for e in &self.edges {
                next = next.min(e.timeout);
            }
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
                self.deliver(f);
            }
            for e in 0..self.edges.len() {
                if self.edges[e].timeout <= self.now {
                    let t = Instant::now();
                    self.edges[e].worker.handle_timeout(self.now);
                    self.worker_time += t.elapsed();
                    self.time_timers += t.elapsed();
                    self.drain_worker(e);
                }
            }
            for i in 0..self.peers.len() {
                if self.peers[i].timeout <= self.now {
                    let _ = self.peers[i].client.handle_input(self.now, Input::Timeout);
                    self.drain_client(i);
                }
            }
        }
    }

    fn deliver(&mut self, f: InFlight) {
        match f.cargo {
            Cargo::ToEdge { edge } => {
                let t = Instant::now();
                self.edges[edge].worker.handle_receive(
                    self.now,
                    Protocol::Udp,
                    f.source,
                    f.destination,
                    &f.bytes,
                );
                self.worker_time += t.elapsed();
                self.time_datagrams += t.elapsed();
                self.drain_worker(edge);
            }
            Cargo::ToPeer { peer } => {
                let input = Input::Datagram {
                    source: f.source,
                    destination: f.destination,
                    contents: &f.bytes,
                };
                let _ = self.peers[peer].client.handle_input(self.now, input);
                self.drain_client(peer);
            }
            Cargo::Control { from, to, msg } => {
                let id = self.edges[from].id.clone();
                let t = Instant::now();
                self.edges[to].worker.handle_relay(self.now, &id, msg);
                self.worker_time += t.elapsed();
                self.drain_worker(to);
            }
            Cargo::Relay { from, to, bytes } if self.relay_capturing == Some(to) => {
                self.relay_captured.push(CapturedRelay {
                    at: self.now,
                    from: self.edges[from].id.clone(),
                    bytes,
                });
            }
            Cargo::Relay { from, to, bytes } => {
                let id = self.edges[from].id.clone();
                let t = Instant::now();
                self.edges[to]
                    .worker
                    .handle_relay_datagram(self.now, &id, &bytes);
                self.worker_time += t.elapsed();
                self.time_datagrams += t.elapsed();
                self.drain_worker(to);
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

    fn drain_worker(&mut self, edge: usize) {
        loop {
            let t = Instant::now();
            let out = self.edges[edge].worker.poll_output();
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
                        cargo: Cargo::ToPeer { peer: i },
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    });
                }
                Output::Signal(id, msg) => {
                    if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
                        p.inbox.push(std::sync::Arc::unwrap_or_clone(msg));
                    }
                }
                Output::Closed(_) => {}
                Output::Relay(to, msg) => {
                    let Some(to) = self.edge_index(&to) else {
                        continue;
                    };
                    let link = self.links.get_mut(&(edge, to)).unwrap();
                    if !link.up {
                        continue;
                    }
                    link.messages += 1;
                    let at = self.now + link.delay;
                    self.push_relay(
                        at,
                        Cargo::Control {
                            from: edge,
                            to,
                            msg,
                        },
                    );
                }
                Output::RelayDatagram(to, bytes) => {
                    let Some(to) = self.edge_index(&to) else {
                        continue;
                    };
                    let (up, loss, delay) = {
                        let l = &self.links[&(edge, to)];
                        (l.up, l.loss, l.delay)
                    };
                    if !up {
                        continue;
                    }
                    let lost = loss > 0.0 && self.chance() < loss;
                    let link = self.links.get_mut(&(edge, to)).unwrap();
                    link.datagrams += 1;
                    if lost {
                        link.datagrams_lost += 1;
                        continue;
                    }
                    self.push_relay(
                        self.now + delay,
                        Cargo::Relay {
                            from: edge,
                            to,
                            bytes,
                        },
                    );
                }
                Output::Origin(msg) => self.edges[edge].to_origin.push(msg),
                Output::Timeout(t) => {
                    self.edges[edge].timeout = t;
                    return;
                }
            }
        }
    }

    fn push_relay(&mut self, at: Instant, cargo: Cargo) {
        let addr = EDGE;
        self.push(InFlight {
            at,
            seq: 0,
            cargo,
            source: addr,
            destination: addr,
            bytes: Vec::new(),
        });
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
                        cargo: Cargo::ToEdge {
                            edge: self.peers[i].edge,
                        },
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

    /// Runs time forward by `d` while the relay datagrams arriving at `edge` are captured
    /// instead of delivered (control messages still arrive).
    pub fn capture_relay_into(&mut self, edge: usize, d: Duration) -> Vec<CapturedRelay> {
        self.relay_capturing = Some(edge);
        self.run(d);
        self.relay_capturing = None;
        std::mem::take(&mut self.relay_captured)
    }

    /// Feeds captured datagrams to the worker in order, discarding what it sends. Returns the
    /// number of datagrams the worker sent.
    pub fn replay_to_edge(&mut self, packets: &[Captured]) -> usize {
        let mut sent = 0;
        let worker = &mut self.edges[0].worker;
        for p in packets {
            worker.handle_receive(p.at, Protocol::Udp, p.source, p.destination, &p.bytes);
            loop {
                match worker.poll_output() {
                    Output::Transmit(_) => sent += 1,
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
        }
        sent
    }

    /// Binds `peer`'s first video slot to `track` at most `max_height` tall, and tells the
    /// client to expect media there. Fails the test on an error reply.
    pub fn subscribe(&mut self, peer: usize, track: relay_proto::TrackId, max_height: u32) {
        let mid = self.peers[peer].client.mids().video_slots[0];
        self.send(
            peer,
            ClientMsg::Subscribe {
                track_id: track,
                mid: mid.to_string(),
                max_width: None,
                max_height: Some(max_height),
            },
        );
        self.peers[peer]
            .client
            .set_expecting(self.now, mid, true)
            .unwrap();
        let errors: Vec<_> = self.peers[peer]
            .inbox
            .iter()
            .filter(|m| matches!(m, ServerMsg::Error { .. }))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// What `peer`'s first video slot received so far.
    pub fn video_slot(&mut self, peer: usize) -> arbor_loadgen::SlotStats {
        let now = self.now;
        self.peers[peer]
            .client
            .stats(now)
            .slots
            .into_iter()
            .find(|s| s.kind == Some(arbor_loadgen::protocol::Kind::Video))
            .expect("a video slot")
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
