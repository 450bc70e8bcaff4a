//! Which edges exist, whether they are alive, how loaded they are and how far apart.
//!
//! The origin shell owns one [`Registry`] and feeds it what arrives on each edge's control
//! link; it drains [`Registry::poll_event`] after every call and wakes the registry at
//! [`Registry::poll_timeout`]:
//!
//! ```text
//! register ──────► handle_register(now, Edge)            ─┐
//! heartbeat+load ─► handle_heartbeat(now, &id, Load)      │   poll_event() → Up / Draining / Down
//! RTT report ─────► handle_rtt(now, &id, &[(peer, rtt)])  ├─► poll_timeout() → next deadline
//! link closed ────► handle_disconnect(now, &id)           │
//! timer fired ────► handle_timeout(now)                  ─┘
//! ```
//!
//! Liveness: an edge heartbeats every [`Config::heartbeat_interval`] (1 s); it is declared
//! dead when [`Config::missed_limit`] (3) intervals pass without one, or at once when its
//! control link closes. A dead edge must register again: its heartbeats are refused
//! ([`UnknownEdge`]), so the shell closes the link and the edge reconnects, instead of an edge
//! flapping between dead and alive on a lossy path.
//!
//! RTT: [`Registry::rtt_us`] is symmetric. It is the newest sample reported by either side;
//! samples involving an edge are forgotten when it dies. A pair never measured falls back to
//! [`estimated_rtt_us`] from the registered coordinates (15 µs per km plus 0.5 ms).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use relay_proto::{EdgeId, RegionId};

use crate::geo::{GeoPoint, estimated_rtt_us};
use crate::rtt::RttTable;

/// Most edges known at once, dead ones included (a dead edge is evicted to make room).
pub const MAX_EDGES: usize = 2048;
/// Most peers in one RTT report: one per other edge.
pub const MAX_RTT_SAMPLES: usize = MAX_EDGES;
/// Most undrained events; past it the oldest are dropped and counted.
pub const MAX_EVENTS: usize = 4 * MAX_EDGES;
/// Longest accepted `http_url`.
pub const MAX_URL_LEN: usize = 2048;

/// Liveness settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often edges heartbeat.
    pub heartbeat_interval: Duration,
    /// Intervals without a heartbeat before an edge is dead.
    pub missed_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            missed_limit: 3,
        }
    }
}

/// What an edge says about itself when it registers.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: EdgeId,
    pub region: RegionId,
    pub location: GeoPoint,
    /// Where other edges reach its QUIC relay endpoint.
    pub relay_addr: SocketAddr,
    /// Base URL of its HTTP surface (signaling, WHIP/WHEP, web page).
    pub http_url: String,
    /// Relative size, in meetings it is meant to host; placement shares load by it.
    pub capacity: u32,
}

/// What an edge reports with every heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub participants: u32,
    pub meetings: u32,
    /// CPU use in thousandths of the machine.
    pub cpu_permille: u16,
    /// The edge is shutting down gracefully: keep its meetings, place nothing new there.
    pub draining: bool,
}

/// An edge's liveness as the registry sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Heartbeating; eligible for new meetings.
    Alive,
    /// Heartbeating but leaving: serves what it has, receives nothing new.
    Draining,
    /// Missed its heartbeats or lost its control link.
    Dead,
}

/// A change of an edge's status, for the shell to act on (placement, trees, DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// Registered, re-registered, or stopped draining.
    Up(EdgeId),
    /// Started draining.
    Draining(EdgeId),
    /// Declared dead; its meetings must move and its trees be repaired.
    Down(EdgeId),
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("the registry already holds {MAX_EDGES} live edges")]
    Full,
    #[error("edge capacity must be at least 1")]
    ZeroCapacity,
    #[error("http_url is empty or longer than {MAX_URL_LEN} bytes")]
    BadUrl,
}

/// The edge is not registered, or was declared dead and must register again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edge {0} is not registered (or was declared dead): it must register again")]
pub struct UnknownEdge(pub EdgeId);

/// Why an RTT report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RttError {
    #[error(transparent)]
    Unknown(#[from] UnknownEdge),
    #[error("{got} RTT samples in one report, at most {MAX_RTT_SAMPLES} allowed")]
    TooManySamples { got: usize },
}

/// Everything the registry knows about one edge.
#[derive(Debug, Clone)]
pub struct EdgeState {
    pub edge: Edge,
    pub status: Status,
    /// The last reported load (zero until the first heartbeat).
    pub load: Load,
    /// When it last registered or heartbeated.
    pub last_heard: Instant,
    /// When it was declared dead, if it is.
    dead_since: Option<Instant>,
    slot: usize,
}

impl EdgeState {
    /// Alive and not draining: may receive new meetings.
    pub fn is_healthy(&self) -> bool {
        self.status == Status::Alive
    }
}

/// The edge registry. See the module docs for how it is driven.
#[derive(Debug)]
pub struct Registry {
    config: Config,
    edges: BTreeMap<EdgeId, EdgeState>,
    /// Every known edge by region, dead ones included.
    regions: BTreeMap<RegionId, BTreeSet<EdgeId>>,
    rtt: RttTable,
    free_slots: Vec<usize>,
    next_slot: usize,
    events: VecDeque<RegistryEvent>,
    events_dropped: u64,
}

impl Registry {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            edges: BTreeMap::new(),
            regions: BTreeMap::new(),
            rtt: RttTable::default(),
            free_slots: Vec::new(),
            next_slot: 0,
            events: VecDeque::new(),
            events_dropped: 0,
        }
    }

    /// An edge (re)connected and announced itself. Always emits [`RegistryEvent::Up`]; a
    /// consumer treats an `Up` for an edge it already considers up as a no-op.
    pub fn handle_register(&mut self, now: Instant, edge: Edge) -> Result<(), RegisterError> {
        if edge.capacity == 0 {
            return Err(RegisterError::ZeroCapacity);
        }
        if edge.http_url.is_empty() || edge.http_url.len() > MAX_URL_LEN {
            return Err(RegisterError::BadUrl);
        }
        let id = edge.id.clone();
        if let Some(state) = self.edges.get_mut(&id) {
            if state.edge.region != edge.region {
                remove_from_region(&mut self.regions, &state.edge.region, &id);
                self.regions
                    .entry(edge.region.clone())
                    .or_default()
                    .insert(id.clone());
            }
            state.edge = edge;
            state.status = Status::Alive;
            state.load = Load::default();
            state.last_heard = now;
            state.dead_since = None;
        } else {
            if self.edges.len() >= MAX_EDGES && !self.evict_oldest_dead() {
                return Err(RegisterError::Full);
            }
            let slot = self.allocate_slot();
            self.regions
                .entry(edge.region.clone())
                .or_default()
                .insert(id.clone());
            self.edges.insert(
                id.clone(),
                EdgeState {
                    edge,
                    status: Status::Alive,
                    load: Load::default(),
                    last_heard: now,
                    dead_since: None,
                    slot,
                },
            );
        }
        self.push_event(RegistryEvent::Up(id));
        Ok(())
    }

    /// A heartbeat with the edge's load. Draining follows `load.draining`.
    pub fn handle_heartbeat(
        &mut self,
        now: Instant,
        id: &EdgeId,
        load: Load,
    ) -> Result<(), UnknownEdge> {
        let state = self.live_mut(id)?;
        state.last_heard = now;
        state.load = load;
        let event = match (state.status, load.draining) {
            (Status::Alive, true) => {
                state.status = Status::Draining;
                Some(RegistryEvent::Draining(id.clone()))
            }
            (Status::Draining, false) => {
                state.status = Status::Alive;
                Some(RegistryEvent::Up(id.clone()))
            }
            _ => None,
        };
        if let Some(e) = event {
            self.push_event(e);
        }
        Ok(())
    }

    /// RTT samples measured by `from` to its peers. Samples naming unknown or dead peers, or
    /// `from` itself, are ignored (the peer may have died since the edge measured it).
    pub fn handle_rtt(
        &mut self,
        _now: Instant,
        from: &EdgeId,
        samples: &[(EdgeId, u32)],
    ) -> Result<(), RttError> {
        if samples.len() > MAX_RTT_SAMPLES {
            return Err(RttError::TooManySamples { got: samples.len() });
        }
        let a = self.live_mut(from)?.slot;
        for (peer, rtt_us) in samples {
            if let Some(b) = self.edges.get(peer).filter(|s| s.status != Status::Dead) {
                self.rtt.record(a, b.slot, *rtt_us);
            }
        }
        Ok(())
    }

    /// The edge's control link closed: it is dead at once (a clean restart registers again).
    pub fn handle_disconnect(&mut self, now: Instant, id: &EdgeId) {
        if self.edges.get(id).is_some_and(|s| s.status != Status::Dead) {
            self.declare_dead(now, id);
        }
    }

    /// Declares dead every edge silent for `missed_limit` heartbeat intervals.
    pub fn handle_timeout(&mut self, now: Instant) {
        let limit = self.silence_limit();
        let expired: Vec<EdgeId> = self
            .edges
            .iter()
            .filter(|(_, s)| s.status != Status::Dead && s.last_heard + limit <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.declare_dead(now, &id);
        }
    }

    /// The next status change, oldest first.
    pub fn poll_event(&mut self) -> Option<RegistryEvent> {
        self.events.pop_front()
    }

    /// When [`Registry::handle_timeout`] must next be called: the earliest moment a live
    /// edge becomes overdue. A linear scan: at most [`MAX_EDGES`], once per wake-up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limit = self.silence_limit();
        self.edges
            .values()
            .filter(|s| s.status != Status::Dead)
            .map(|s| s.last_heard + limit)
            .min()
    }

    /// Every known edge, dead ones included, in id order.
    pub fn edges(&self) -> impl Iterator<Item = &EdgeState> {
        self.edges.values()
    }

    /// One edge, dead or alive.
    pub fn edge(&self, id: &EdgeId) -> Option<&EdgeState> {
        self.edges.get(id)
    }

    /// The region's edges that may receive new meetings, in id order.
    pub fn healthy_in(&self, region: &RegionId) -> impl Iterator<Item = &EdgeState> {
        self.regions
            .get(region)
            .into_iter()
            .flatten()
            .filter_map(|id| self.edges.get(id))
            .filter(|s| s.is_healthy())
    }

    /// Round-trip time between two known edges, in microseconds: the newest measured sample
    /// of either direction, else the great-circle estimate. Zero from an edge to itself.
    pub fn rtt_us(&self, a: &EdgeId, b: &EdgeId) -> Option<u32> {
        let (sa, sb) = (self.edges.get(a)?, self.edges.get(b)?);
        if a == b {
            return Some(0);
        }
        Some(
            self.rtt
                .measured(sa.slot, sb.slot)
                .unwrap_or_else(|| estimated_rtt_us(sa.edge.location, sb.edge.location)),
        )
    }

    /// The measured part of [`Registry::rtt_us`] alone.
    pub fn measured_rtt_us(&self, a: &EdgeId, b: &EdgeId) -> Option<u32> {
        let (sa, sb) = (self.edges.get(a)?, self.edges.get(b)?);
        self.rtt.measured(sa.slot, sb.slot)
    }

    /// Events dropped because the shell did not drain [`Registry::poll_event`]; a bug if
    /// ever non-zero.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn silence_limit(&self) -> Duration {
        self.config.heartbeat_interval * self.config.missed_limit
    }

    fn live_mut(&mut self, id: &EdgeId) -> Result<&mut EdgeState, UnknownEdge> {
        self.edges
            .get_mut(id)
            .filter(|s| s.status != Status::Dead)
            .ok_or_else(|| UnknownEdge(id.clone()))
    }

    fn declare_dead(&mut self, now: Instant, id: &EdgeId) {
        let Some(state) = self.edges.get_mut(id) else {
            return;
        };
        state.status = Status::Dead;
        state.dead_since = Some(now);
        let slot = state.slot;
        self.rtt.clear(slot);
        self.push_event(RegistryEvent::Down(id.clone()));
    }

    fn allocate_slot(&mut self) -> usize {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.next_slot += 1;
            self.next_slot - 1
        });
        self.rtt.ensure(slot);
        self.rtt.clear(slot);
        slot
    }

    /// Forgets the edge that has been dead longest; false if none is dead.
    fn evict_oldest_dead(&mut self) -> bool {
        let oldest = self
            .edges
            .iter()
            .filter_map(|(id, s)| s.dead_since.map(|t| (t, id)))
            .min()
            .map(|(_, id)| id.clone());
        let Some(id) = oldest else {
            return false;
        };
        if let Some(state) = self.edges.remove(&id) {
            remove_from_region(&mut self.regions, &state.edge.region, &id);
            self.free_slots.push(state.slot);
        }
        true
    }

    fn push_event(&mut self, event: RegistryEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

fn remove_from_region(
    regions: &mut BTreeMap<RegionId, BTreeSet<EdgeId>>,
    region: &RegionId,
    id: &EdgeId,
) {
    if let Some(set) = regions.get_mut(region) {
        set.remove(id);
        if set.is_empty() {
            regions.remove(region);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test needs one real Instant as its time base
mod tests {
    use super::*;

    fn edge(id: &str, region: &str, lat: f64, lon: f64) -> Edge {
        Edge {
            id: EdgeId::new(id).unwrap(),
            region: RegionId::new(region).unwrap(),
            location: GeoPoint::new(lat, lon).unwrap(),
            relay_addr: "127.0.0.1:4433".parse().unwrap(),
            http_url: format!("http://{id}.test"),
            capacity: 100,
        }
    }

    fn id(s: &str) -> EdgeId {
        EdgeId::new(s).unwrap()
    }

    fn events(r: &mut Registry) -> Vec<RegistryEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    fn secs(base: Instant, s: f64) -> Instant {
        base + Duration::from_secs_f64(s)
    }

    #[test]
    fn dead_after_three_missed_heartbeats() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        r.handle_register(t0, edge("a", "eu", 50.0, 8.0)).unwrap();
        r.handle_register(t0, edge("b", "eu", 48.0, 2.0)).unwrap();
        assert_eq!(
            events(&mut r),
            [RegistryEvent::Up(id("a")), RegistryEvent::Up(id("b"))]
        );
        assert_eq!(r.poll_timeout(), Some(secs(t0, 3.0)));

        // `a` keeps heartbeating, `b` falls silent.
        for s in 1..=5 {
            let now = secs(t0, f64::from(s));
            r.handle_heartbeat(now, &id("a"), Load::default()).unwrap();
            r.handle_timeout(now);
            let expected: &[RegistryEvent] = match s {
                3 => &[RegistryEvent::Down(id("b"))],
                _ => &[],
            };
            assert_eq!(events(&mut r), expected, "at {s} s");
        }
        // Not at 2.999 s: check the exact boundary on a fresh registry.
        let mut r2 = Registry::new(Config::default());
        r2.handle_register(t0, edge("c", "eu", 0.0, 0.0)).unwrap();
        events(&mut r2);
        r2.handle_timeout(secs(t0, 2.999));
        assert!(events(&mut r2).is_empty());
        r2.handle_timeout(secs(t0, 3.0));
        assert_eq!(events(&mut r2), [RegistryEvent::Down(id("c"))]);
        assert_eq!(r2.poll_timeout(), None);

        assert_eq!(r.edge(&id("b")).unwrap().status, Status::Dead);
        assert_eq!(r.poll_timeout(), Some(secs(t0, 8.0)));
        // A dead edge's heartbeat is refused until it registers again.
        assert_eq!(
            r.handle_heartbeat(secs(t0, 6.0), &id("b"), Load::default()),
            Err(UnknownEdge(id("b")))
        );
        r.handle_register(secs(t0, 6.0), edge("b", "eu", 48.0, 2.0))
            .unwrap();
        assert_eq!(events(&mut r), [RegistryEvent::Up(id("b"))]);
        assert_eq!(r.healthy_in(&RegionId::new("eu").unwrap()).count(), 2);
    }

    #[test]
    fn disconnect_and_draining() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        r.handle_register(t0, edge("a", "eu", 50.0, 8.0)).unwrap();
        events(&mut r);
        let drain = Load {
            draining: true,
            ..Load::default()
        };
        r.handle_heartbeat(secs(t0, 1.0), &id("a"), drain).unwrap();
        r.handle_heartbeat(secs(t0, 2.0), &id("a"), drain).unwrap();
        assert_eq!(events(&mut r), [RegistryEvent::Draining(id("a"))]);
        assert_eq!(r.healthy_in(&RegionId::new("eu").unwrap()).count(), 0);
        r.handle_heartbeat(secs(t0, 3.0), &id("a"), Load::default())
            .unwrap();
        assert_eq!(events(&mut r), [RegistryEvent::Up(id("a"))]);
        r.handle_disconnect(secs(t0, 3.5), &id("a"));
        r.handle_disconnect(secs(t0, 3.6), &id("a"));
        r.handle_disconnect(secs(t0, 3.6), &id("nobody"));
        assert_eq!(events(&mut r), [RegistryEvent::Down(id("a"))]);
        assert_eq!(
            r.handle_heartbeat(secs(t0, 4.0), &id("nobody"), Load::default()),
            Err(UnknownEdge(id("nobody")))
        );
    }

    #[test]
    fn rtt_is_symmetric_newest_wins_and_falls_back_to_geography() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        r.handle_register(t0, edge("fra", "eu", 50.1, 8.7)).unwrap();
        r.handle_register(t0, edge("par", "eu", 48.9, 2.35))
            .unwrap();
        r.handle_register(t0, edge("nyc", "us", 40.7, -74.0))
            .unwrap();
        let geo = r.rtt_us(&id("fra"), &id("nyc")).unwrap();
        assert!((80_000..100_000).contains(&geo), "{geo}");
        assert_eq!(r.measured_rtt_us(&id("fra"), &id("nyc")), None);
        assert_eq!(r.rtt_us(&id("fra"), &id("fra")), Some(0));
        assert_eq!(r.rtt_us(&id("fra"), &id("nobody")), None);

        r.handle_rtt(t0, &id("fra"), &[(id("par"), 9_000), (id("ghost"), 1)])
            .unwrap();
        r.handle_rtt(t0, &id("par"), &[(id("fra"), 11_000)])
            .unwrap();
        assert_eq!(r.rtt_us(&id("fra"), &id("par")), Some(11_000));
        assert_eq!(r.rtt_us(&id("par"), &id("fra")), Some(11_000));

        let too_many = vec![(id("par"), 1); MAX_RTT_SAMPLES + 1];
        assert_eq!(
            r.handle_rtt(t0, &id("fra"), &too_many),
            Err(RttError::TooManySamples {
                got: MAX_RTT_SAMPLES + 1
            })
        );
        // Death forgets the samples; the estimate takes over again.
        r.handle_disconnect(t0, &id("par"));
        assert_eq!(r.measured_rtt_us(&id("fra"), &id("par")), None);
        assert!(r.rtt_us(&id("fra"), &id("par")).unwrap() < 11_000);
        assert!(r.handle_rtt(t0, &id("par"), &[]).is_err());
    }

    #[test]
    fn full_registry_evicts_the_longest_dead_edge() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        for i in 0..MAX_EDGES {
            r.handle_register(t0, edge(&format!("e{i}"), "eu", 0.0, 0.0))
                .unwrap();
        }
        assert_eq!(
            r.handle_register(t0, edge("late", "eu", 0.0, 0.0)),
            Err(RegisterError::Full)
        );
        r.handle_disconnect(secs(t0, 1.0), &id("e7"));
        r.handle_disconnect(secs(t0, 2.0), &id("e3"));
        r.handle_register(t0, edge("late", "eu", 0.0, 0.0)).unwrap();
        assert!(r.edge(&id("e7")).is_none(), "dead longest, evicted");
        assert!(r.edge(&id("e3")).is_some());
        assert_eq!(r.edges().count(), MAX_EDGES);
        // The reused slot starts with no samples.
        assert_eq!(r.measured_rtt_us(&id("late"), &id("e0")), None);
        assert_eq!(r.events_dropped(), 0, "{} events queued", r.events.len());
    }

    #[test]
    fn rejects_bad_registrations_and_moves_regions() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        let mut e = edge("a", "eu", 0.0, 0.0);
        e.capacity = 0;
        assert_eq!(r.handle_register(t0, e), Err(RegisterError::ZeroCapacity));
        let mut e = edge("a", "eu", 0.0, 0.0);
        e.http_url.clear();
        assert_eq!(r.handle_register(t0, e), Err(RegisterError::BadUrl));
        r.handle_register(t0, edge("a", "eu", 0.0, 0.0)).unwrap();
        r.handle_register(t0, edge("a", "us", 0.0, 0.0)).unwrap();
        assert_eq!(r.healthy_in(&RegionId::new("eu").unwrap()).count(), 0);
        assert_eq!(r.healthy_in(&RegionId::new("us").unwrap()).count(), 1);
    }
}
