//! The coordinator: the origin's whole control plane as one sans-IO state machine.
//!
//! It composes the [`Registry`], the [`Placement`] and the tree assigner, and speaks the relay
//! protocol's edge ↔ origin messages. The origin shell (and the simulator) drive it:
//!
//! ```text
//! edge link up, Hello(Edge(id)) ─► handle_connected(now, id)
//! Control from that edge ────────► handle_message(now, id, msg)   Register, Heartbeat,
//!                                                                  RttReport, Presence, PlaceRequest
//! edge link closed ──────────────► handle_disconnect(now, id)
//! deadline passed ───────────────► handle_timeout(now)
//! join API ──────────────────────► place(now, meeting, region)
//! loop { match poll_output() { Send(edge, msg) => …, Tree(change) => store, Timeout(t) => break } }
//! ```
//!
//! A meeting's tree is recomputed when the set of edges hosting it changes (presence), when an
//! edge of its tree dies, and when an edge reports a link of its tree unreachable; and every
//! [`REOPTIMIZE`] all trees are reconsidered against fresh RTTs, where the assigner keeps the
//! current tree unless a new one is clearly better (hysteresis: no flapping). Each change goes
//! out as `TreeUpdate`s to exactly the edges whose neighbours changed, under the meeting's next
//! epoch. Epochs start from [`Config::epoch_base`] (the shell passes wall-clock time), so a
//! restarted origin never issues epochs that edges would take for stale ones.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use relay_proto::{Control, EdgeId, MeetingId, PeerInfo, RegionId, TreeEpoch, TreeUpdate};

use crate::GeoPoint;
use crate::placement::{self, PlaceError, Placement};
use crate::registry::{self, Edge, Load, Registry, RegistryEvent};
use crate::tree::{self, Node, Policy, Problem, Tree};

/// How often every tree is reconsidered against fresh RTT measurements.
pub const REOPTIMIZE: Duration = Duration::from_secs(5);
/// Most meetings the coordinator tracks.
pub const MAX_MEETINGS: usize = 1 << 20;
/// Most messages waiting for the shell; past it the oldest are dropped (counted). Edges get
/// full state again on reconnect, so a drop costs a recompute, never correctness.
pub const MAX_PENDING: usize = 1 << 20;
/// An RTT at or above this is an unreachable link (edges report `u32::MAX`).
pub const UNREACHABLE_US: u32 = u32::MAX - 1;

/// What the coordinator needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub registry: registry::Config,
    pub placement: placement::Config,
    pub policy: Policy,
    /// Fan-out bound: most tree links at one edge.
    pub max_degree: u32,
    /// First epoch issued (pass wall-clock milliseconds × 1,000 so that restarts move on).
    pub epoch_base: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registry: registry::Config::default(),
            placement: placement::Config::default(),
            policy: Policy::default(),
            max_degree: 8,
            epoch_base: 0,
        }
    }
}

/// What the coordinator asks the shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a control message to an edge.
    Send(EdgeId, Control),
    /// A meeting's tree changed (for the store and the REST API).
    Tree {
        meeting: MeetingId,
        epoch: TreeEpoch,
        links: Vec<(EdgeId, EdgeId)>,
    },
    /// Nothing more until this time or the next input.
    Timeout(Instant),
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub tree_recomputes: u64,
    pub tree_updates_sent: u64,
    pub trees_infeasible: u64,
    pub unreachable_reports: u64,
    pub refused_registrations: u64,
    pub dropped_outputs: u64,
    pub last_recompute_us: u64,
}

/// One meeting as the origin sees it.
#[derive(Debug, Default)]
struct MeetingState {
    /// Edge → (participants, publishers) there.
    presence: BTreeMap<EdgeId, (u32, u32)>,
    tree: Tree,
    epoch: Option<TreeEpoch>,
    dirty: bool,
}

/// The origin's control plane. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Coordinator {
    cfg: Config,
    registry: Registry,
    placement: Placement,
    meetings: BTreeMap<MeetingId, MeetingState>,
    /// Edges with a live control link.
    connected: BTreeSet<EdgeId>,
    out: VecDeque<Output>,
    next_reoptimize: Instant,
    stats: Stats,
    /// Set by recompute work that is cheaper done once per input (peer lists).
    peers_dirty: bool,
}

impl Coordinator {
    pub fn new(cfg: Config, now: Instant) -> Self {
        Coordinator {
            registry: Registry::new(cfg.registry.clone()),
            placement: Placement::new(cfg.placement.clone()),
            cfg,
            meetings: BTreeMap::new(),
            connected: BTreeSet::new(),
            out: VecDeque::new(),
            next_reoptimize: now + REOPTIMIZE,
            stats: Stats::default(),
            peers_dirty: false,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A meeting's current tree and epoch.
    pub fn tree(&self, meeting: &MeetingId) -> Option<(Option<TreeEpoch>, &Tree)> {
        self.meetings.get(meeting).map(|m| (m.epoch, &m.tree))
    }

    /// Edges hosting a meeting, with (participants, publishers) there.
    pub fn presence(&self, meeting: &MeetingId) -> Option<&BTreeMap<EdgeId, (u32, u32)>> {
        self.meetings.get(meeting).map(|m| &m.presence)
    }

    /// An edge's control link is up (its certificate said who it is).
    pub fn handle_connected(&mut self, _now: Instant, edge: &EdgeId) {
        self.connected.insert(edge.clone());
    }

    /// An edge's control link closed: it is dead at once, its trees are repaired.
    pub fn handle_disconnect(&mut self, now: Instant, edge: &EdgeId) {
        self.connected.remove(edge);
        self.registry.handle_disconnect(now, edge);
        self.settle(now);
    }

    /// A message from an edge over its control link.
    pub fn handle_message(&mut self, now: Instant, from: &EdgeId, msg: Control) {
        match msg {
            Control::Register(info) => self.on_register(now, from, info),
            Control::Heartbeat(load) => {
                let load = Load {
                    participants: load.participants,
                    meetings: load.meetings,
                    cpu_permille: load.cpu_permille,
                    draining: load.draining,
                };
                let _ = self.registry.handle_heartbeat(now, from, load);
            }
            Control::RttReport(samples) => self.on_rtt(now, from, &samples),
            Control::Presence {
                meeting,
                participants,
                publishers,
            } => self.on_presence(from, meeting, participants, publishers),
            Control::PlaceRequest { id, meeting } => {
                let Some(region) = self.registry.edge(from).map(|s| s.edge.region.clone()) else {
                    return;
                };
                if let Ok(edge) = self.place(now, &meeting, &region)
                    && let Some(url) = self.registry.edge(&edge).map(|s| s.edge.http_url.clone())
                {
                    self.push(Output::Send(
                        from.clone(),
                        Control::Placed {
                            id,
                            meeting,
                            edge,
                            http_url: url,
                        },
                    ));
                }
            }
            _ => {}
        }
        self.settle(now);
    }

    /// Runs the registry's liveness checks and the periodic re-optimization.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.registry.handle_timeout(now);
        if now >= self.next_reoptimize {
            self.next_reoptimize = now + REOPTIMIZE;
            for m in self.meetings.values_mut() {
                m.dirty |= !m.presence.is_empty() || !m.tree.is_empty();
            }
        }
        self.settle(now);
    }

    /// The edge for a meeting in a region (the join API and DNS steering ask this).
    pub fn place(
        &mut self,
        _now: Instant,
        meeting: &MeetingId,
        region: &RegionId,
    ) -> Result<EdgeId, PlaceError> {
        self.placement.place(meeting, region, &self.registry)
    }

    /// A meeting no longer needs an edge in `region` (it ended).
    pub fn release(&mut self, meeting: &MeetingId, region: &RegionId) {
        self.placement.release(meeting, region);
    }

    /// The next thing for the shell to do; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = self
            .registry
            .poll_timeout()
            .map_or(self.next_reoptimize, |t| t.min(self.next_reoptimize));
        Output::Timeout(next)
    }

    fn push(&mut self, o: Output) {
        if self.out.len() >= MAX_PENDING {
            self.out.pop_front();
            self.stats.dropped_outputs += 1;
        }
        self.out.push_back(o);
    }

    fn on_register(&mut self, now: Instant, from: &EdgeId, info: relay_proto::EdgeInfo) {
        // The certificate names the edge; its registration must agree.
        if info.id != *from {
            self.stats.refused_registrations += 1;
            return;
        }
        let Ok(location) =
            GeoPoint::new(f64::from(info.lat_e6) / 1e6, f64::from(info.lon_e6) / 1e6)
        else {
            self.stats.refused_registrations += 1;
            return;
        };
        let edge = Edge {
            id: info.id,
            region: info.region,
            location,
            relay_addr: info.relay_addr,
            http_url: info.http_url,
            capacity: info.capacity,
        };
        if self.registry.handle_register(now, edge).is_err() {
            self.stats.refused_registrations += 1;
            return;
        }
        // It may have missed tree changes while away: resend its neighbours everywhere.
        let mine: Vec<(MeetingId, TreeEpoch, Vec<EdgeId>)> = self
            .meetings
            .iter()
            .filter(|(_, m)| m.tree.contains(from))
            .filter_map(|(id, m)| {
                let n = m.tree.neighbours(from).cloned().collect();
                m.epoch.map(|e| (id.clone(), e, n))
            })
            .collect();
        for (meeting, epoch, neighbours) in mine {
            self.send_tree(from, meeting, epoch, neighbours);
        }
        self.peers_dirty = true;
    }

    fn on_rtt(&mut self, now: Instant, from: &EdgeId, samples: &[relay_proto::RttSample]) {
        let pairs: Vec<(EdgeId, u32)> =
            samples.iter().map(|s| (s.peer.clone(), s.rtt_us)).collect();
        let _ = self.registry.handle_rtt(now, from, &pairs);
        // A tree link reported unreachable is repaired now, not at the next round.
        for s in samples.iter().filter(|s| s.rtt_us >= UNREACHABLE_US) {
            self.stats.unreachable_reports += 1;
            for m in self.meetings.values_mut() {
                if m.tree.neighbours(from).any(|n| *n == s.peer) {
                    m.dirty = true;
                }
            }
        }
    }

    fn on_presence(
        &mut self,
        from: &EdgeId,
        meeting: MeetingId,
        participants: u32,
        publishers: u32,
    ) {
        if !self.meetings.contains_key(&meeting) && self.meetings.len() >= MAX_MEETINGS {
            return;
        }
        let m = self.meetings.entry(meeting).or_default();
        let before = m.presence.contains_key(from);
        if participants == 0 {
            m.presence.remove(from);
        } else {
            m.presence.insert(from.clone(), (participants, publishers));
        }
        // Only a change in which edges host the meeting changes the tree.
        m.dirty |= before != m.presence.contains_key(from);
    }

    /// Applies registry events, recomputes dirty trees, sends peer lists.
    fn settle(&mut self, now: Instant) {
        while let Some(ev) = self.registry.poll_event() {
            match ev {
                RegistryEvent::Down(edge) => {
                    self.connected.remove(&edge);
                    self.placement.evict(&edge);
                    for m in self.meetings.values_mut() {
                        let hosted = m.presence.remove(&edge).is_some();
                        if hosted || m.tree.contains(&edge) {
                            m.dirty = true;
                        }
                    }
                    self.peers_dirty = true;
                }
                RegistryEvent::Draining(edge) => {
                    self.placement.evict(&edge);
                }
                RegistryEvent::Up(_) => self.peers_dirty = true,
            }
        }
        let dirty: Vec<MeetingId> = self
            .meetings
            .iter()
            .filter(|(_, m)| m.dirty)
            .map(|(id, _)| id.clone())
            .collect();
        for meeting in dirty {
            self.recompute(now, &meeting);
        }
        self.meetings
            .retain(|_, m| !m.presence.is_empty() || !m.tree.is_empty());
        if std::mem::take(&mut self.peers_dirty) {
            self.send_peers();
        }
    }

    /// Builds the meeting's tree over the edges hosting it (plus relays where fan-out needs
    /// them) and tells the edges whose neighbours changed.
    fn recompute(&mut self, _now: Instant, meeting: &MeetingId) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        m.dirty = false;
        self.stats.tree_recomputes += 1;
        let new_tree = if m.presence.len() < 2 {
            // One edge (or none) needs no links.
            Tree::new()
        } else {
            let registry = &self.registry;
            let live = |e: &EdgeId| {
                registry
                    .edge(e)
                    .is_some_and(|s| s.status != registry::Status::Dead)
            };
            let mut nodes: Vec<Node> = m
                .presence
                .iter()
                .filter(|(e, _)| live(e))
                .map(|(e, (_, publishers))| {
                    Node::terminal(e.clone(), *publishers > 0, true, self.cfg.max_degree)
                })
                .collect();
            for s in registry.edges().filter(|s| s.is_healthy()) {
                if !m.presence.contains_key(&s.edge.id) {
                    nodes.push(Node::relay(s.edge.id.clone(), self.cfg.max_degree));
                }
            }
            let one_way = |a: &EdgeId, b: &EdgeId| {
                registry.rtt_us(a, b).map_or(UNREACHABLE_US, |rtt| {
                    if rtt >= UNREACHABLE_US { rtt } else { rtt / 2 }
                })
            };
            let Ok(problem) = Problem::new(nodes, &one_way) else {
                self.stats.trees_infeasible += 1;
                return;
            };
            // A tree with an unreachable link is not worth keeping, whatever it costs
            // elsewhere (the assigner's keep-or-replace bound assumes the triangle inequality,
            // which a broken link breaks).
            let broken = m.tree.links().any(|(a, b)| one_way(a, b) >= UNREACHABLE_US);
            let previous = (!m.tree.is_empty() && !broken).then_some(&m.tree);
            match tree::assign(&problem, &self.cfg.policy, previous) {
                Ok(a) => a.tree,
                Err(_) => {
                    self.stats.trees_infeasible += 1;
                    return;
                }
            }
        };
        let changes = tree::diff(&m.tree, &new_tree);
        if changes.is_empty() {
            return;
        }
        let epoch = TreeEpoch(m.epoch.map_or(self.cfg.epoch_base.max(1), |e| e.0 + 1));
        m.epoch = Some(epoch);
        m.tree = new_tree;
        let links = m
            .tree
            .links()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        for c in changes {
            self.send_tree(&c.edge, meeting.clone(), epoch, c.neighbours);
        }
        self.push(Output::Tree {
            meeting: meeting.clone(),
            epoch,
            links,
        });
    }

    fn send_tree(&mut self, edge: &EdgeId, meeting: MeetingId, epoch: TreeEpoch, n: Vec<EdgeId>) {
        if !self.connected.contains(edge) {
            return;
        }
        self.stats.tree_updates_sent += 1;
        let update = TreeUpdate {
            meeting,
            epoch,
            neighbours: n,
        };
        self.push(Output::Send(edge.clone(), Control::TreeUpdate(update)));
    }

    /// Every live edge learns every live edge (to dial and to measure).
    fn send_peers(&mut self) {
        let peers: Vec<PeerInfo> = self
            .registry
            .edges()
            .filter(|s| s.status != registry::Status::Dead)
            .map(|s| PeerInfo {
                id: s.edge.id.clone(),
                region: s.edge.region.clone(),
                relay_addr: s.edge.relay_addr,
            })
            .collect();
        let to: Vec<EdgeId> = self.connected.iter().cloned().collect();
        for edge in to {
            self.push(Output::Send(edge, Control::Peers(peers.clone())));
        }
    }
}
