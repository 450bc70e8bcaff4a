//! The edge's backbone: its QUIC links to the origin and to the other edges.
//!
//! One [`RelayEndpoint`] (one UDP socket, mutual TLS from the cluster's private CA) both
//! accepts and dials. The tasks here only move messages; every decision is in the workers
//! (`edge_core::Worker`, see `edge_core::cascade`) or at the origin:
//!
//! - **Origin link** ([`origin_link`]): registers this edge, sends a heartbeat with its load
//!   every second and an RTT report for every peer, forwards the workers' presence reports,
//!   and hands tree updates to the worker that hosts the meeting. It reconnects forever with
//!   a capped backoff; while the origin is away, running meetings go on untouched (the
//!   workers keep their trees).
//! - **Peer links** ([`peer_link`]): one per other edge, dialled by the edge with the lower id
//!   (the other accepts), so each pair has exactly one connection shared by all meetings.
//!   Control messages and datagrams go to the worker that owns the meeting: the meeting hash
//!   in the message, or the high half of a datagram's flow id. Workers send directly on a
//!   clone of the link's handle, so media never passes through these tasks on the way out.
//! - **Drain**: the origin's `Drain` goes to [`Health`] (the HTTP handlers and every
//!   signaling session follow it there); from then on the heartbeat says `draining`, and the
//!   edge logs once when its last participant has left.
//! - **Failure detection**: a link whose session has not answered a ping for
//!   [`SUSPECT_AFTER`] is reported to the origin as unreachable at once, well before QUIC's
//!   idle timeout closes it, so the origin can re-route trees within DESIGN.md §5's second.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use relay_proto::{
    Control, EdgeId, EdgeInfo, Hello, Load, MeetingId, PeerInfo, RegionId, Role, RttSample,
};
use relay_quic::{LinkConfig, LinkEvent, LinkHandle, NodeCert, PkiDir, RelayEndpoint};
use tokio::sync::mpsc;

use crate::health::Health;
use crate::media::{Command, Media};

/// How often the origin hears from us.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the link sessions ping (RTT samples; liveness).
pub const PING_INTERVAL: Duration = Duration::from_millis(150);
/// A link with no RTT sample for this long is reported unreachable.
pub const SUSPECT_AFTER: Duration = Duration::from_millis(500);
/// How often links are checked against [`SUSPECT_AFTER`].
pub const SUSPECT_CHECK: Duration = Duration::from_millis(50);
/// Reports from workers waiting for the origin link; past it they are dropped (presence is
/// re-sent in full after every reconnect anyway).
pub const ORIGIN_QUEUE: usize = 4096;
/// First and longest wait between two attempts to reach the origin or a peer.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the backbone needs to know about this edge.
#[derive(Debug, Clone)]
pub struct BackboneConfig {
    pub edge: EdgeId,
    pub region: RegionId,
    pub listen: SocketAddr,
    /// The relay address other edges dial (defaults to `listen`).
    pub public_addr: SocketAddr,
    pub origin: SocketAddr,
    pub pki: PkiDir,
    pub lat_e6: i32,
    pub lon_e6: i32,
    pub http_url: String,
    pub capacity: u32,
    /// Dial these peers here instead of at the address the origin lists (`[backbone]
    /// peer_addrs`: a proxy in between). The TLS server name is still the peer's node name.
    pub peer_addrs: BTreeMap<EdgeId, SocketAddr>,
}

/// State the backbone tasks share: live peer links and their last RTT.
#[derive(Debug, Default)]
struct Peers {
    /// Every edge the origin listed, with its relay address.
    known: BTreeMap<EdgeId, SocketAddr>,
    links: HashMap<EdgeId, PeerState>,
    dialing: std::collections::HashSet<EdgeId>,
}

#[derive(Debug)]
struct PeerState {
    rtt: Option<Duration>,
    last_sample: Instant,
    suspect: bool,
}

/// How long a meeting's placement, once learned from the origin, is trusted.
pub const PLACEMENT_TTL: Duration = Duration::from_secs(10);
/// How long a join waits for the origin's placement before it is served here anyway (the
/// origin may be away: availability first).
pub const PLACE_TIMEOUT: Duration = Duration::from_millis(500);
/// Placement questions waiting for the origin link.
const PLACE_QUEUE: usize = 1024;
/// Most placements remembered.
const MAX_PLACEMENTS: usize = 100_000;

/// A running backbone: the address it is bound to, and the placement client.
#[derive(Debug)]
pub struct Backbone {
    pub local_addr: SocketAddr,
    pub placements: Placements,
}

/// Where a meeting's participants in this edge's region go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    Here,
    /// Another edge of the region hosts it: redirect the client there.
    Elsewhere {
        edge: EdgeId,
        http_url: String,
    },
}

/// Asks the origin where meetings are placed, with a short-lived cache.
#[derive(Debug, Clone)]
pub struct Placements {
    me: EdgeId,
    queries: mpsc::Sender<PlaceQuery>,
    cache: Arc<Mutex<HashMap<MeetingId, Cached>>>,
}

/// A placement learned from the origin: the edge, its HTTP base URL, and when.
type Cached = (EdgeId, String, Instant);

#[derive(Debug)]
struct PlaceQuery {
    meeting: MeetingId,
    reply: tokio::sync::oneshot::Sender<(EdgeId, String)>,
}

impl Placements {
    /// Where `meeting` goes. Without an answer from the origin within [`PLACE_TIMEOUT`] the
    /// meeting is served here.
    pub async fn locate(&self, meeting: &MeetingId) -> Where {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(meeting)
            .filter(|(_, _, at)| at.elapsed() < PLACEMENT_TTL)
            .map(|(e, u, _)| (e.clone(), u.clone()));
        let answer = match cached {
            Some(a) => Some(a),
            None => self.ask(meeting).await,
        };
        match answer {
            Some((edge, http_url)) if edge != self.me => Where::Elsewhere { edge, http_url },
            _ => Where::Here,
        }
    }

    /// Where the origin places `meeting` now, asked afresh (a draining edge must not trust
    /// an answer from before its drain): `Some` only when that is another edge.
    pub async fn relocate(&self, meeting: &MeetingId) -> Option<(EdgeId, String)> {
        self.ask(meeting).await.filter(|(edge, _)| *edge != self.me)
    }

    async fn ask(&self, meeting: &MeetingId) -> Option<(EdgeId, String)> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let q = PlaceQuery {
            meeting: meeting.clone(),
            reply,
        };
        self.queries.try_send(q).ok()?;
        let (edge, url) = tokio::time::timeout(PLACE_TIMEOUT, rx).await.ok()?.ok()?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_PLACEMENTS {
            cache.retain(|_, (_, _, at)| at.elapsed() < PLACEMENT_TTL);
        }
        if cache.len() < MAX_PLACEMENTS {
            cache.insert(meeting.clone(), (edge.clone(), url.clone(), Instant::now()));
        }
        Some((edge, url))
    }
}

/// Binds the relay endpoint and starts the origin and accept tasks. `from_workers` carries
/// what the workers send the origin (the other end is in `MediaConfig::to_origin`);
/// `health` learns the origin link's state and the origin's drain.
pub fn start(
    mut cfg: BackboneConfig,
    media: Media,
    from_workers: mpsc::Receiver<Control>,
    health: Health,
) -> anyhow::Result<Backbone> {
    let me = Role::Edge(cfg.edge.clone());
    let cert = NodeCert::from_pem_files(&cfg.pki.node_cert(&me), &cfg.pki.node_key(&me))
        .with_context(|| format!("reading this edge's certificate from {:?}", cfg.pki))?;
    let ca = std::fs::read_to_string(cfg.pki.ca_cert())
        .with_context(|| format!("reading the CA certificate {:?}", cfg.pki.ca_cert()))?;
    let endpoint = RelayEndpoint::bind(cfg.listen, &cert, &ca)
        .with_context(|| format!("binding the relay endpoint {}", cfg.listen))?;
    let local_addr = endpoint.local_addr()?;
    if cfg.public_addr.port() == 0 {
        // Listening on a port the system chose: that is the one to advertise.
        cfg.public_addr = SocketAddr::new(cfg.public_addr.ip(), local_addr.port());
    }
    let endpoint = Arc::new(endpoint);
    let peers = Arc::new(Mutex::new(Peers::default()));
    let (queries, query_rx) = mpsc::channel(PLACE_QUEUE);
    let placements = Placements {
        me: cfg.edge.clone(),
        queries,
        cache: Arc::default(),
    };
    let ctx = Ctx {
        cfg: Arc::new(cfg),
        endpoint,
        media,
        peers,
        health,
    };
    tokio::spawn(accept_loop(ctx.clone()));
    tokio::spawn(origin_link(ctx, from_workers, query_rx));
    Ok(Backbone {
        local_addr,
        placements,
    })
}

#[derive(Clone)]
struct Ctx {
    cfg: Arc<BackboneConfig>,
    endpoint: Arc<RelayEndpoint>,
    media: Media,
    peers: Arc<Mutex<Peers>>,
    health: Health,
}

impl Ctx {
    fn hello(&self) -> LinkConfig {
        let mut link = LinkConfig::new(Hello {
            version: relay_proto::VERSION,
            role: Role::Edge(self.cfg.edge.clone()),
            region: self.cfg.region.clone(),
        });
        link.session.keepalive = PING_INTERVAL;
        link
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells every worker (a link serves all meetings).
    fn broadcast(&self, make: impl Fn() -> Command) {
        for w in 0..self.media.worker_count() {
            if self.media.send(w, make()).is_err() {
                metrics::counter!("arbor_relay_commands_dropped_total").increment(1);
            }
        }
    }
}

/// Accepts links from edges with a higher id than ours (they dial us).
async fn accept_loop(ctx: Ctx) {
    while let Some(incoming) = ctx.endpoint.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let peer = match incoming.establish().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("relay handshake refused: {e}");
                    return;
                }
            };
            let Role::Edge(id) = peer.identity.clone() else {
                tracing::warn!(peer = ?peer.identity, "refusing a relay link from a non-edge");
                return;
            };
            let (link, events) = relay_quic::link::spawn(peer, ctx.hello());
            peer_link(ctx, id, link, events).await;
        });
    }
}

/// Dials a peer edge until it answers or leaves the origin's list.
async fn dial(ctx: Ctx, id: EdgeId) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(listed) = ctx.peers().known.get(&id).copied() else {
            break;
        };
        let addr = ctx.cfg.peer_addrs.get(&id).copied().unwrap_or(listed);
        match ctx.endpoint.connect(addr, &Role::Edge(id.clone())).await {
            Ok(peer) => {
                let (link, events) = relay_quic::link::spawn(peer, ctx.hello());
                peer_link(ctx.clone(), id.clone(), link, events).await;
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                tracing::debug!(peer = %id, "dialling failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    ctx.peers().dialing.remove(&id);
}

/// Runs one peer link until it goes down: routes what arrives to the workers.
async fn peer_link(ctx: Ctx, id: EdgeId, link: LinkHandle, mut events: mpsc::Receiver<LinkEvent>) {
    while let Some(ev) = events.recv().await {
        match ev {
            LinkEvent::Up(_) => {
                tracing::info!(peer = %id, "relay link up");
                ctx.peers().links.insert(
                    id.clone(),
                    PeerState {
                        rtt: None,
                        last_sample: Instant::now(),
                        suspect: false,
                    },
                );
                let (peer, l) = (id.clone(), link.clone());
                ctx.broadcast(|| Command::LinkUp {
                    peer: peer.clone(),
                    link: l.clone(),
                });
            }
            LinkEvent::Message(msg) => match meeting_hash(&msg) {
                Some(h) => {
                    let w = ctx.media.worker_for_hash(h);
                    let cmd = Command::Relay {
                        from: id.clone(),
                        msg,
                    };
                    if ctx.media.send(w, cmd).is_err() {
                        metrics::counter!("arbor_relay_commands_dropped_total").increment(1);
                    }
                }
                None => {
                    metrics::counter!("arbor_relay_unexpected_total").increment(1);
                }
            },
            LinkEvent::Datagram(bytes) => route_datagram(&ctx, &id, bytes),
            LinkEvent::Rtt(rtt) => {
                if let Some(p) = ctx.peers().links.get_mut(&id) {
                    p.rtt = Some(rtt);
                    p.last_sample = Instant::now();
                    p.suspect = false;
                }
            }
            LinkEvent::Down(why) => {
                tracing::info!(peer = %id, ?why, "relay link down");
                break;
            }
        }
    }
    ctx.peers().links.remove(&id);
    let peer = id.clone();
    ctx.broadcast(|| Command::LinkDown { peer: peer.clone() });
}

fn route_datagram(ctx: &Ctx, from: &EdgeId, bytes: Bytes) {
    let Ok(media) = relay_proto::decode_datagram(&bytes) else {
        metrics::counter!("arbor_relay_datagrams_malformed_total").increment(1);
        return;
    };
    let w = ctx.media.worker_for_hash(media.flow.meeting_hash());
    let cmd = Command::RelayDatagram {
        from: from.clone(),
        bytes,
    };
    if ctx.media.send(w, cmd).is_err() {
        metrics::counter!("arbor_relay_datagrams_dropped_total").increment(1);
    }
}

/// The meeting hash a peer's message belongs to (it picks the worker).
fn meeting_hash(msg: &Control) -> Option<u32> {
    let m: &MeetingId = match msg {
        Control::Announce(a) => &a.meeting,
        Control::Withdraw { meeting, .. }
        | Control::RouteLost { meeting, .. }
        | Control::TrackState { meeting, .. }
        | Control::Subscribe { meeting, .. }
        | Control::KeyframeRequest { meeting, .. } => meeting,
        Control::Event(e) => &e.meeting,
        Control::Nack { flow, .. } => return Some(flow.meeting_hash()),
        _ => return None,
    };
    Some(m.hash32())
}

/// Keeps the origin link up for the life of the process.
async fn origin_link(
    ctx: Ctx,
    mut from_workers: mpsc::Receiver<Control>,
    mut queries: mpsc::Receiver<PlaceQuery>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match ctx.endpoint.connect(ctx.cfg.origin, &Role::Origin).await {
            Ok(peer) => {
                backoff = BACKOFF_MIN;
                let mut hello = ctx.hello();
                hello.session.keepalive = relay_quic::endpoint::KEEPALIVE;
                let (link, events) = relay_quic::link::spawn(peer, hello);
                serve_origin(&ctx, &link, events, &mut from_workers, &mut queries).await;
                ctx.health.handle_origin_down();
                tracing::warn!("origin link lost; meetings go on, reconnecting");
            }
            Err(e) => tracing::debug!("origin unreachable: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn serve_origin(
    ctx: &Ctx,
    link: &LinkHandle,
    mut events: mpsc::Receiver<LinkEvent>,
    from_workers: &mut mpsc::Receiver<Control>,
    queries: &mut mpsc::Receiver<PlaceQuery>,
) {
    let mut pending: HashMap<u64, tokio::sync::oneshot::Sender<(EdgeId, String)>> = HashMap::new();
    let mut next_query = 0u64;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // Checked often: this is the fast path of failure detection, and a scan is cheap.
    let mut suspicion = tokio::time::interval(SUSPECT_CHECK);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LinkEvent::Up(_)) => {
                    tracing::info!("origin link up");
                    ctx.health.handle_origin_up();
                    let _ = link.send(Control::Register(edge_info(&ctx.cfg))).await;
                    // The origin may have restarted: tell it everything again.
                    ctx.broadcast(|| Command::ResendPresence);
                }
                Some(LinkEvent::Message(Control::Placed { id, edge, http_url, .. })) => {
                    if let Some(reply) = pending.remove(&id) {
                        let _ = reply.send((edge, http_url));
                    }
                }
                Some(LinkEvent::Message(msg)) => handle_origin_message(ctx, msg),
                Some(LinkEvent::Down(_)) | None => return,
                Some(_) => {}
            },
            Some(msg) = from_workers.recv() => {
                let _ = link.try_send(msg);
            }
            Some(q) = queries.recv() => {
                next_query += 1;
                // Abandoned questions (their caller timed out) go with the next sweep.
                pending.retain(|_, r| !r.is_closed());
                let msg = Control::PlaceRequest { id: next_query, meeting: q.meeting };
                if link.try_send(msg).is_ok() && pending.len() < PLACE_QUEUE {
                    pending.insert(next_query, q.reply);
                }
            }
            _ = heartbeat.tick() => {
                let _ = link.try_send(Control::Heartbeat(load(ctx)));
                let _ = link.try_send(Control::RttReport(rtt_report(ctx, false)));
            }
            _ = suspicion.tick() => {
                let report = rtt_report(ctx, true);
                if !report.is_empty() {
                    let _ = link.try_send(Control::RttReport(report));
                }
            }
        }
    }
}

fn handle_origin_message(ctx: &Ctx, msg: Control) {
    match msg {
        Control::Peers(list) => update_peers(ctx, list),
        Control::Drain { target } => {
            let to = target.as_ref().map(|t| t.edge.to_string());
            if ctx.health.handle_drain(target) {
                tracing::info!(
                    target = to.as_deref().unwrap_or("none"),
                    "draining: no new joins; clients are told to move"
                );
            }
        }
        Control::TreeUpdate(update) => {
            let w = ctx.media.worker_for(&update.meeting);
            if ctx.media.send(w, Command::TreeUpdate(update)).is_err() {
                metrics::counter!("arbor_relay_commands_dropped_total").increment(1);
            }
        }
        _ => metrics::counter!("arbor_relay_unexpected_total").increment(1),
    }
}

/// The origin's list of live edges: dial the ones we are responsible for.
fn update_peers(ctx: &Ctx, list: Vec<PeerInfo>) {
    let mut to_dial = Vec::new();
    {
        let mut peers = ctx.peers();
        peers.known = list
            .into_iter()
            .filter(|p| p.id != ctx.cfg.edge)
            .map(|p| (p.id, p.relay_addr))
            .collect();
        let ids: Vec<EdgeId> = peers.known.keys().cloned().collect();
        for id in ids {
            if ctx.cfg.edge < id
                && !peers.links.contains_key(&id)
                && peers.dialing.insert(id.clone())
            {
                to_dial.push(id);
            }
        }
    }
    for id in to_dial {
        tokio::spawn(dial(ctx.clone(), id));
    }
}

fn edge_info(cfg: &BackboneConfig) -> EdgeInfo {
    EdgeInfo {
        id: cfg.edge.clone(),
        region: cfg.region.clone(),
        lat_e6: cfg.lat_e6,
        lon_e6: cfg.lon_e6,
        relay_addr: cfg.public_addr,
        http_url: cfg.http_url.clone(),
        capacity: cfg.capacity,
    }
}

/// RTT to every known peer; unreachable ones (no link, or silent past [`SUSPECT_AFTER`])
/// are reported as `u32::MAX`. With `only_new_suspects`, only links that just turned
/// suspect are reported (the fast path of failure detection).
fn rtt_report(ctx: &Ctx, only_new_suspects: bool) -> Vec<RttSample> {
    let mut peers = ctx.peers();
    let now = Instant::now();
    let known: Vec<EdgeId> = peers.known.keys().cloned().collect();
    let mut out = Vec::new();
    for id in known {
        let sample = match peers.links.get_mut(&id) {
            Some(p) if now.duration_since(p.last_sample) < SUSPECT_AFTER => {
                if only_new_suspects {
                    continue;
                }
                p.rtt.map_or(u32::MAX, |r| {
                    r.as_micros().min(u128::from(u32::MAX - 1)) as u32
                })
            }
            Some(p) => {
                let fresh = !p.suspect;
                p.suspect = true;
                if only_new_suspects && !fresh {
                    continue;
                }
                u32::MAX
            }
            None if only_new_suspects => continue,
            None => u32::MAX,
        };
        out.push(RttSample {
            peer: id,
            rtt_us: sample,
        });
    }
    out
}

fn load(ctx: &Ctx) -> Load {
    let stats = ctx.media.stats();
    let participants = stats.iter().map(|s| s.participants).sum::<u64>();
    if ctx.health.handle_participants(participants) {
        tracing::info!("drained: no participants left; the edge can be stopped");
    }
    Load {
        participants: u32::try_from(participants).unwrap_or(u32::MAX),
        meetings: stats.iter().map(|s| s.meetings).sum::<u64>() as u32,
        cpu_permille: ctx.health.cpu_permille(),
        draining: ctx.health.is_draining(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_messages_route_by_their_meeting() {
        let m = MeetingId::new("standup").unwrap();
        let flow = relay_proto::FlowId::new(&m, 3);
        let nack = Control::Nack {
            flow,
            layer: 0,
            seqs: vec![1],
        };
        let sub = Control::Subscribe {
            meeting: m.clone(),
            flow,
            layers: relay_proto::LayerSet::default(),
        };
        assert_eq!(meeting_hash(&nack), Some(m.hash32()));
        assert_eq!(meeting_hash(&sub), Some(m.hash32()));
        assert_eq!(meeting_hash(&Control::Ping { nonce: 1 }), None);
    }
}
