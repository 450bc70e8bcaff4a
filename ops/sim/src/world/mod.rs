//! The simulated mesh: one origin [`Coordinator`], one edge [`Worker`] per edge, one
//! synthetic client per participant, and the links between them, all in virtual time.
//!
//! ```text
//!  clients ══ access links (Link) ══ edge workers ══ relay media (Link) ══ edge workers
//!     │                                │  │ relay control (ordered channel) │
//!     └── signaling (ordered, delayed) ┘  └── origin channels ── Coordinator ┘
//! ```
//!
//! Every input is an event on the agenda (`queue.rs`), handled by calling into the node it
//! concerns (`handle_*`), after which that node is drained (`poll_output` until its
//! `Timeout`) and what it sent is put on the right wire (`wires.rs`). Nothing reads a clock
//! and every random choice comes from the run's seed, forked per subsystem, so a seed
//! replays (the [`Trace`] hash checks it). The rest, one file each: the wires and relay
//! sessions (`backbone.rs`), the edge shells' heartbeats, RTT reports, failure suspicion and
//! reconnections (`shell.rs`, after `edge/src/backbone.rs`), the participants
//! (`participant.rs`, `clients.rs`), the wire ledger for the loop and duplicate oracle
//! (`ledger.rs`), and the [`Outcome`] a run leaves (`observe.rs`).

mod backbone;
mod clients;
mod ledger;
mod observe;
mod participant;
mod queue;
mod shell;
mod trace;
mod wires;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbor_loadgen::{Epoch, Input as ClientInput};
use edge_core::{Limits, SessionConfig, Worker, WorkerConfig};
use origin_core::coordinator::{Config as CoordinatorConfig, Coordinator};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use relay_proto::{Control, EdgeId, MeetingId, ParticipantId, RegionId};

use crate::link::Link;
use crate::outcome::{Outcome, PartitionRecord, TreeRecord};
use crate::scenario::Scenario;
use backbone::{Channel, MediaLink, Pair};
use ledger::Ledger;
use participant::Participant;
use queue::{Event, Queue, Target};

pub use backbone::MAX_CHANNEL_QUEUE;
pub use ledger::{MAX_LEDGER_PACKETS, MAX_VIOLATIONS};
pub use participant::{GAP_RECORD, MAX_GAPS};
pub use queue::MAX_PENDING_EVENTS;
pub use shell::{BACKOFF_MAX, HEARTBEAT_TICKS, IDLE_TIMEOUT, PING_TICKS, SUSPECT_AFTER, TICK};
pub use trace::{Channel as TraceChannel, NodeId, Trace};

/// The meeting every scenario runs.
pub const MEETING: &str = "sim";
/// How often what clients render is sampled (the resolution of measured gaps).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);
/// How long after an impairment begins or ends the mesh may take to settle: snapshots are
/// taken at both ends, so that oracles can judge the steady state apart from the recovery.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Most events handled at one virtual instant before the run is declared stuck.
pub const MAX_EVENTS_PER_INSTANT: u32 = 1 << 20;
/// Wall-clock origin of the workers' timestamps (join times, chat), any fixed value.
const WALL_MS_AT_START: u64 = 1_763_700_000_000;

/// Why a run could not be carried out (as opposed to an oracle failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("setting up {what}: {why}")]
    Setup { what: String, why: String },
    #[error("more than {MAX_EVENTS_PER_INSTANT} events at {at:?} into the run: a livelock")]
    Livelock { at: Duration },
    #[error("the event queue overflowed")]
    Overflow,
}

/// Subsystems, each with its own random stream forked from the run's seed.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Links = 1,
    Clients = 2,
    Workers = 3,
    Shells = 4,
    Joins = 5,
    Str0m = 6,
}

/// The random stream of subsystem `s` for `seed`.
fn fork(seed: u64, s: Stream) -> StdRng {
    StdRng::seed_from_u64(seed ^ (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One simulated edge: its worker and the shell state around it.
#[derive(Debug)]
struct EdgeNode {
    id: EdgeId,
    region: RegionId,
    worker: Worker,
    shell: shell::Shell,
    /// Control channels to and from the origin.
    to_origin: usize,
    from_origin: usize,
}

/// The simulated mesh. See the module docs.
#[derive(Debug)]
pub struct World {
    scenario: Scenario,
    seed: u64,
    start: Instant,
    now: Instant,
    queue: Queue,
    trace: Trace,
    coordinator: Coordinator,
    edges: Vec<EdgeNode>,
    edge_index: BTreeMap<EdgeId, usize>,
    participants: Vec<Participant>,
    by_pid: BTreeMap<ParticipantId, usize>,
    by_addr: BTreeMap<SocketAddr, usize>,
    links: Vec<MediaLink>,
    channels: Vec<Channel>,
    /// Relay connections by (low, high) edge index.
    pairs: Vec<Pair>,
    ledger: Ledger,
    trees: Vec<TreeRecord>,
    partitions: Vec<PartitionRecord>,
    /// When snapshots were taken.
    snapshot_times: Vec<Instant>,
    rng_shell: StdRng,
    meeting: MeetingId,
    events_now: (Instant, u32),
    /// Edge ids as text, for the ledger's messages.
    names: Vec<String>,
}

/// Runs `scenario` with `seed` from `start` to its end and returns what it observed.
///
/// `start` is any instant (virtual time begins there). The run must happen on one thread:
/// str0m draws its ids from a thread-local generator, which the run seeds.
pub fn run(scenario: &Scenario, seed: u64, start: Instant) -> Result<Outcome, SimError> {
    World::new(scenario.clone(), seed, start)?.run()
}

impl World {
    /// Builds the mesh: edges, their links and channels, clients not yet joined, and the
    /// schedule of joins, impairments and samples.
    pub fn new(scenario: Scenario, seed: u64, start: Instant) -> Result<World, SimError> {
        fastrand::seed(fork(seed, Stream::Str0m).random());
        let meeting = MeetingId::new(MEETING).map_err(|e| setup("the meeting id", e))?;
        let coordinator = Coordinator::new(
            CoordinatorConfig {
                epoch_base: 1000,
                ..CoordinatorConfig::default()
            },
            start,
        );
        let mut w = World {
            seed,
            start,
            now: start,
            queue: Queue::default(),
            trace: Trace::new(start),
            coordinator,
            edges: Vec::new(),
            edge_index: BTreeMap::new(),
            participants: Vec::new(),
            by_pid: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            links: Vec::new(),
            channels: Vec::new(),
            pairs: Vec::new(),
            ledger: Ledger::default(),
            trees: Vec::new(),
            partitions: Vec::new(),
            snapshot_times: Vec::new(),
            rng_shell: fork(seed, Stream::Shells),
            meeting,
            events_now: (start, 0),
            names: scenario.edges.iter().map(|e| e.id.clone()).collect(),
            scenario,
        };
        w.build_edges()?;
        w.build_pairs();
        w.build_participants();
        w.schedule();
        Ok(w)
    }

    fn build_edges(&mut self) -> Result<(), SimError> {
        let mut rng = fork(self.seed, Stream::Workers);
        for (i, spec) in self.scenario.edges.iter().enumerate() {
            let id: EdgeId = spec.id.parse().map_err(|e| setup(&spec.id, e))?;
            let region_name = self.scenario.regions[spec.region].id;
            let region: RegionId = region_name.parse().map_err(|e| setup(region_name, e))?;
            let addr = edge_addr(i, 7882);
            let session = SessionConfig::new(addr, None).map_err(|e| setup(&spec.id, e))?;
            let cfg = WorkerConfig {
                session,
                limits: Limits::default(),
                ice_servers: Vec::new(),
                edge: id.clone(),
                rng_seed: rng.random(),
                wall_ms_at_start: WALL_MS_AT_START,
            };
            let delay = self
                .scenario
                .region_rtt(spec.region, self.scenario.origin_region)
                / 2;
            let to_origin = self.channels.len();
            self.channels
                .push(Channel::new(NodeId::Edge(i), NodeId::Origin, delay));
            self.channels
                .push(Channel::new(NodeId::Origin, NodeId::Edge(i), delay));
            self.edge_index.insert(id.clone(), i);
            self.edges.push(EdgeNode {
                id,
                region,
                worker: Worker::new(cfg, self.start),
                shell: shell::Shell::new(self.start, i, self.scenario.edges.len()),
                to_origin,
                from_origin: to_origin + 1,
            });
        }
        Ok(())
    }

    fn build_pairs(&mut self) {
        let mut rng = fork(self.seed, Stream::Links);
        let n = self.edges.len();
        for a in 0..n {
            for b in a + 1..n {
                let cfg = self.scenario.backbone(a, b);
                let media = [(a, b), (b, a)].map(|(x, y)| {
                    self.links.push(MediaLink {
                        from: NodeId::Edge(x),
                        to: NodeId::Edge(y),
                        link: Link::new(cfg.clone(), rng.random()),
                    });
                    self.links.len() - 1
                });
                let control = [(a, b), (b, a)].map(|(x, y)| {
                    self.channels
                        .push(Channel::new(NodeId::Edge(x), NodeId::Edge(y), cfg.delay));
                    self.channels.len() - 1
                });
                self.pairs.push(Pair {
                    a,
                    b,
                    rtt: self.scenario.edge_rtt(a, b),
                    media,
                    control,
                    cut_since: None,
                    healed_at: None,
                    cuts: 0,
                    down: false,
                });
            }
        }
    }

    fn build_participants(&mut self) {
        let mut links_rng = fork(self.seed ^ 0x5555, Stream::Links);
        let mut rng = fork(self.seed, Stream::Clients);
        let epoch = Epoch(self.start);
        for i in 0..self.scenario.participants.len() {
            let edge = self.scenario.participants[i].edge;
            let access = self.scenario.access.clone();
            let uplink = self.links.len();
            self.links.push(MediaLink {
                from: NodeId::Client(i),
                to: NodeId::Edge(edge),
                link: Link::new(access.clone(), links_rng.random()),
            });
            self.links.push(MediaLink {
                from: NodeId::Edge(edge),
                to: NodeId::Client(i),
                link: Link::new(access, links_rng.random()),
            });
            let p = Participant::new(
                self.start,
                &self.scenario,
                i,
                rng.random(),
                epoch,
                (uplink, uplink + 1),
            );
            self.by_addr.insert(p.addr, i);
            self.participants.push(p);
        }
    }

    /// Puts the run's fixed agenda on the queue.
    fn schedule(&mut self) {
        let s = &self.scenario;
        let mut events = Vec::new();
        for (i, edge) in s.edges.iter().enumerate() {
            let to_origin = s.region_rtt(edge.region, s.origin_region);
            events.push((to_origin, Event::OriginConnected(i)));
            let phase = self
                .rng_shell
                .random_range(0..shell::TICK.as_micros() as u64);
            events.push((Duration::from_micros(phase), Event::ShellTick(i)));
        }
        let mut joins = fork(self.seed, Stream::Joins);
        for i in 0..s.participants.len() {
            let jitter = Duration::from_micros(joins.random_range(0..10_000));
            events.push((
                s.first_join + s.join_spacing * i as u32 + jitter,
                Event::Join(i),
            ));
        }
        for (n, imp) in s.impairments.iter().enumerate() {
            events.push((imp.at, Event::Impair(n)));
        }
        events.push((s.first_join, Event::Sample));
        let mut snapshots = vec![s.measure_from];
        for imp in &s.impairments {
            snapshots.extend([imp.at, imp.at + SETTLE]);
        }
        snapshots.retain(|t| *t < s.duration);
        snapshots.sort_unstable();
        snapshots.dedup();
        events.extend(snapshots.into_iter().map(|t| (t, Event::Snapshot)));
        for (at, e) in events {
            self.queue.push(self.start + at, e);
        }
    }

    /// Runs to the scenario's end.
    pub fn run(mut self) -> Result<Outcome, SimError> {
        let end = self.start + self.scenario.duration;
        while let Some((at, event)) = self.queue.pop(end) {
            self.advance(at)?;
            self.dispatch(event);
            if self.queue.overflowed() {
                return Err(SimError::Overflow);
            }
        }
        self.now = end;
        self.snapshot();
        Ok(self.outcome())
    }

    fn advance(&mut self, at: Instant) -> Result<(), SimError> {
        self.now = self.now.max(at);
        if self.events_now.0 == self.now {
            self.events_now.1 += 1;
            if self.events_now.1 > MAX_EVENTS_PER_INSTANT {
                return Err(SimError::Livelock {
                    at: self.now - self.start,
                });
            }
        } else {
            self.events_now = (self.now, 1);
        }
        Ok(())
    }

    fn dispatch(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Wake(Target::Coordinator) => {
                self.coordinator.handle_timeout(now);
                self.drain_coordinator();
            }
            Event::Wake(Target::Edge(i)) => {
                self.edges[i].worker.handle_timeout(now);
                self.drain_edge(i);
            }
            Event::Wake(Target::Client(c)) => {
                let r = self.participants[c]
                    .client
                    .handle_input(now, ClientInput::Timeout);
                self.client_result(c, r);
                self.drain_client(c);
            }
            Event::Wake(Target::Media(k)) => self.deliver_media(k),
            Event::Wake(Target::Control(k)) => self.deliver_control(k),
            Event::ToEdge { client, msg } => {
                self.trace.record(
                    now,
                    TraceChannel::Signaling,
                    NodeId::Client(client),
                    NodeId::Edge(self.participants[client].spec.edge),
                    0,
                );
                let p = &self.participants[client];
                if let Some(pid) = p.pid {
                    let e = p.spec.edge;
                    self.edges[e].worker.handle_client_message(now, pid, msg);
                    self.drain_edge(e);
                }
            }
            Event::ToClient { client, msg } => self.on_server_msg(client, msg),
            Event::ShellTick(i) => self.shell_tick(i),
            Event::OriginConnected(i) => self.origin_connected(i),
            Event::Join(i) => self.join(i),
            Event::Impair(n) => self.impair(n),
            Event::IdleCheck { pair, cut } => self.idle_check(pair, cut),
            Event::Reconnect(pair) => self.reconnect(pair),
            Event::Sample => {
                for p in &mut self.participants {
                    p.sample(now);
                }
                self.queue.push(now + SAMPLE_PERIOD, Event::Sample);
            }
            Event::Snapshot => self.snapshot(),
        }
    }

    /// The edge's control link to the origin is up: the origin learns it, and the edge
    /// registers.
    fn origin_connected(&mut self, i: usize) {
        let id = self.edges[i].id.clone();
        self.coordinator.handle_connected(self.now, &id);
        self.drain_coordinator();
        let region = &self.scenario.regions[self.scenario.edges[i].region];
        let info = relay_proto::EdgeInfo {
            id,
            region: self.edges[i].region.clone(),
            lat_e6: (region.lat * 1e6) as i32,
            lon_e6: (region.lon * 1e6) as i32,
            relay_addr: edge_addr(i, 7890),
            http_url: format!("http://{}:7880", edge_addr(i, 7880).ip()),
            capacity: 100,
        };
        let ch = self.edges[i].to_origin;
        self.send_control(ch, Control::Register(info), false);
    }
}

/// Edge `i`'s address on `port`: 10.0.x.1.
fn edge_addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, i as u8 + 1, 1], port))
}

/// The encoded size of a control message (what it costs on the stream), 0 if it does not
/// encode.
fn encoded_len(msg: &Control) -> usize {
    let mut buf = Vec::new();
    match msg.encode(&mut buf) {
        Ok(()) => buf.len(),
        Err(_) => 0,
    }
}

fn setup(what: &str, why: impl std::fmt::Display) -> SimError {
    SimError::Setup {
        what: what.to_string(),
        why: why.to_string(),
    }
}
