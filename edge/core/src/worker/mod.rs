//! The media worker: everything one core of an edge does, as a sans-IO state machine.
//!
//! An edge runs one worker per core, each with its own UDP port. A meeting's id hashes to
//! one worker, so all of a meeting's sessions, tracks and routing state live here, touched
//! by one thread, without locks. The shell (`arbor-edge`'s worker thread) drives it:
//!
//! ```text
//! loop {
//!     // inputs, each followed by draining the outputs:
//!     worker.handle_receive(now, proto, source, destination, &datagram);
//!     worker.handle_client_message(now, participant, msg);   // from the WebSocket
//!     worker.handle_timeout(now);                            // when the deadline passed
//!     while let Some(out) = worker.poll_output(now) {
//!         match out {
//!             Output::Transmit(t) => socket.send_to(&t.contents, t.destination),
//!             Output::Signal(p, msg) => websocket_of(p).send(msg),
//!             Output::Closed(p) => close_socket_of(p),
//!             Output::Timeout(at) => { deadline = at; break }
//!         }
//!     }
//! }
//! ```
//!
//! Inside, each input lands in one participant's str0m session; the worker drains that
//! session, and the events it yields (RTP packets, keyframe requests, bandwidth estimates)
//! drive the router, which writes into other sessions and drains those in turn — all before
//! the call returns. See `router` for the path of a packet.

mod media;
mod relay;
mod signaling;
mod stats;
mod whip;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use relay_proto::{Control, EdgeId, FlowId, MeetingId, ParticipantId, TrackId};
use str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use str0m::{Event, Input};

use crate::cascade::RelayEvent;
use crate::hash::DetMap;
use crate::meeting::{Meeting, Participant};
use crate::session::{Session, SessionConfig, Step};
use crate::signal::{IceServer, LeaveReason, ServerMsg};

pub use relay::{MAX_PENDING_ORIGIN, MAX_PENDING_RELAY, MAX_PENDING_RELAY_DATAGRAMS};
pub use signaling::Refusal;
pub use stats::{LATENCY_BUCKETS_US, WorkerStats};
pub use whip::{ApiError, ApiErrorKind, IceRestart};

/// Largest datagram accepted; larger ones are dropped and counted (an Ethernet MTU).
pub const MAX_DATAGRAM: usize = 1500;
/// Most transmits buffered between two drains by the shell. Past it datagrams are dropped
/// and counted; the shell drains after every input, so this only bounds a burst.
pub const MAX_PENDING_TRANSMITS: usize = 1 << 16;
/// Most signaling messages buffered between two drains.
pub const MAX_PENDING_SIGNALS: usize = 1 << 14;
/// Most internal session events processed for one input (a loop guard).
pub const MAX_EVENTS_PER_INPUT: usize = 1 << 16;
/// A session whose ICE stays down this long is removed.
pub const ICE_DOWN_LIMIT: Duration = Duration::from_secs(10);
/// A session that never connects within this time is removed.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(30);
/// How often periodic work runs: speaker ranking, layer allocation, grace periods.
pub const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// How often connection quality is assessed.
pub const QUALITY_INTERVAL: Duration = Duration::from_secs(2);

/// Limits a worker enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Participants per meeting.
    pub max_participants: usize,
    /// Meetings on this worker.
    pub max_meetings: usize,
    pub max_chat_len: usize,
    pub chat_history: usize,
    /// How long a participant whose signaling socket dropped is kept for a `resume`.
    pub resume_grace: Duration,
    /// Receive slots per participant.
    pub max_slots: usize,
    /// Published tracks per participant.
    pub max_publications: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_participants: 100,
            max_meetings: 1000,
            max_chat_len: 2000,
            chat_history: 100,
            resume_grace: Duration::from_secs(30),
            max_slots: 128,
            max_publications: 8,
        }
    }
}

/// Everything a worker needs to start.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub session: SessionConfig,
    pub limits: Limits,
    pub ice_servers: Vec<IceServer>,
    /// This edge's id: it names us in hop chains and meeting events.
    pub edge: EdgeId,
    /// Seed for ids, ICE credentials and initial sequence numbers.
    pub rng_seed: u64,
    /// Wall-clock time (ms since the Unix epoch) at `now` of [`Worker::new`], for the
    /// timestamps clients see (join times, chat).
    pub wall_ms_at_start: u64,
}

/// What the worker asks the shell to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram (or an RFC 4571 frame, for ICE-TCP).
    Transmit(Transmit),
    /// Send a message on a participant's signaling socket (dropped if it has none).
    Signal(ParticipantId, Arc<ServerMsg>),
    /// The participant is gone: close its socket, forget its WHIP/WHEP resource.
    Closed(ParticipantId),
    /// Send a control message to a tree neighbour (on its relay link's control stream).
    Relay(EdgeId, Control),
    /// Send a media datagram to a tree neighbour.
    RelayDatagram(EdgeId, Bytes),
    /// Send a message to the origin (presence reports).
    Origin(Control),
    /// Nothing more until this time, or until the next input.
    Timeout(Instant),
}

/// The sans-IO media worker. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Worker {
    cfg: WorkerConfig,
    start: Instant,
    rng: StdRng,
    participants: DetMap<ParticipantId, Participant>,
    meetings: DetMap<MeetingId, Meeting>,
    by_ufrag: HashMap<String, ParticipantId>,
    /// (transport, remote address) → participant. Keyed by transport too: a UDP and a TCP
    /// peer may share an address and port behind a port-preserving NAT.
    by_addr: HashMap<(Protocol, SocketAddr), ParticipantId>,
    timers: BTreeSet<(Instant, ParticipantId)>,
    transmits: VecDeque<Transmit>,
    /// Messages for participants' sockets; a broadcast's recipients share one allocation
    /// (the shell serializes it once).
    signals: VecDeque<(ParticipantId, Arc<ServerMsg>)>,
    closed: VecDeque<ParticipantId>,
    /// What goes to tree neighbours and the origin.
    relay: relay::RelayQueue,
    /// (neighbour, its flow) → the remote track it feeds.
    relay_in: HashMap<(EdgeId, FlowId), (MeetingId, TrackId)>,
    /// Our flows (to any neighbour) → the track they carry.
    relay_out: HashMap<FlowId, (MeetingId, TrackId)>,
    next_flow: u32,
    /// Session events waiting to be handled (the work queue of one input).
    events: VecDeque<(ParticipantId, Event)>,
    /// Participants to remove once the current input is done.
    doomed: Vec<(ParticipantId, LeaveReason)>,
    next_housekeeping: Instant,
    next_quality: Instant,
    stats: WorkerStats,
}

impl Worker {
    pub fn new(cfg: WorkerConfig, now: Instant) -> Self {
        Worker {
            rng: StdRng::seed_from_u64(cfg.rng_seed),
            cfg,
            start: now,
            participants: DetMap::default(),
            meetings: DetMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            signals: VecDeque::new(),
            closed: VecDeque::new(),
            relay: Default::default(),
            relay_in: HashMap::new(),
            relay_out: HashMap::new(),
            next_flow: 0,
            events: VecDeque::new(),
            doomed: Vec::new(),
            next_housekeeping: now + HOUSEKEEPING,
            next_quality: now + QUALITY_INTERVAL,
            stats: WorkerStats::default(),
        }
    }

    /// Counters and gauges for the shell's metrics.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Number of participants (all roles) on this worker.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Whether a participant is here.
    pub fn has_participant(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }

    /// A datagram (or an ICE-TCP frame) arrived on the worker's socket.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += bytes.len() as u64;
        if bytes.len() > MAX_DATAGRAM {
            self.stats.dropped_oversize += 1;
            return;
        }
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let is_stun = bytes[0] < 4;
        let pid = if is_stun {
            stun_local_ufrag(bytes).and_then(|u| self.by_ufrag.get(&u).copied())
        } else {
            self.by_addr.get(&(proto, source)).copied()
        };
        let Some(pid) = pid else {
            self.stats.dropped_unknown_source += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let Some(session) = p.session.as_mut() else {
            self.stats.dropped_unknown_source += 1;
            return;
        };
        if !session.accepts(&input) {
            self.stats.dropped_not_accepted += 1;
            return;
        }
        if session.handle_input(input).is_err() {
            self.doom(pid, LeaveReason::Timeout);
        } else if is_stun {
            self.remember_addr(pid, proto, source);
        }
        self.drain(pid);
        self.settle(now);
    }

    /// Time passed: run due session timers and periodic work.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, pid)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(p) = self.participants.get_mut(&pid) {
                p.timeout = None;
                if let Some(s) = p.session.as_mut()
                    && s.handle_timeout(now).is_err()
                {
                    self.doom(pid, LeaveReason::Timeout);
                }
                self.drain(pid);
            }
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.housekeeping(now);
        }
        self.settle(now);
    }

    /// The next thing for the shell to do. Call after every input until it returns
    /// [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(t) = self.transmits.pop_front() {
            self.stats.datagrams_out += 1;
            self.stats.bytes_out += t.contents.len() as u64;
            return Output::Transmit(t);
        }
        if let Some((to, d)) = self.relay.datagrams.pop_front() {
            return Output::RelayDatagram(to, d);
        }
        if let Some((p, m)) = self.signals.pop_front() {
            return Output::Signal(p, m);
        }
        if let Some((to, m)) = self.relay.control.pop_front() {
            return Output::Relay(to, m);
        }
        if let Some(m) = self.relay.origin.pop_front() {
            return Output::Origin(m);
        }
        if let Some(p) = self.closed.pop_front() {
            return Output::Closed(p);
        }
        let next = self
            .timers
            .first()
            .map_or(self.next_housekeeping, |(t, _)| {
                (*t).min(self.next_housekeeping)
            });
        Output::Timeout(next)
    }

    /// Wall-clock milliseconds at `now`.
    fn wall_ms(&self, now: Instant) -> u64 {
        self.cfg.wall_ms_at_start + now.saturating_duration_since(self.start).as_millis() as u64
    }

    fn send(&mut self, to: ParticipantId, msg: ServerMsg) {
        self.send_shared(to, Arc::new(msg));
    }

    fn send_shared(&mut self, to: ParticipantId, msg: Arc<ServerMsg>) {
        if self.signals.len() >= MAX_PENDING_SIGNALS {
            self.stats.signals_dropped += 1;
            return;
        }
        self.signals.push_back((to, msg));
    }

    /// Sends to every non-hidden meeting participant except `except`.
    fn broadcast(&mut self, meeting: &MeetingId, except: Option<ParticipantId>, msg: &ServerMsg) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let to: Vec<ParticipantId> = m
            .participants
            .iter()
            .copied()
            .filter(|p| Some(*p) != except)
            .filter(|p| {
                self.participants
                    .get(p)
                    .is_some_and(|p| p.role == crate::meeting::Role::Meeting)
            })
            .collect();
        let msg = Arc::new(msg.clone());
        for p in to {
            self.send_shared(p, Arc::clone(&msg));
        }
    }

    /// Remembers that `addr` reached `pid` with a STUN request it accepted. An address that
    /// already belongs to a live participant keeps its owner: a forged STUN cannot steal it.
    fn remember_addr(&mut self, pid: ParticipantId, proto: Protocol, addr: SocketAddr) {
        let addr = (proto, addr);
        if let Some(owner) = self.by_addr.get(&addr)
            && (*owner == pid || self.participants.contains_key(owner))
        {
            return;
        }
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.addrs.len() >= crate::meeting::MAX_ADDRS {
            let old = p.addrs.remove(0);
            self.by_addr.remove(&old);
        }
        p.addrs.push(addr);
        self.by_addr.insert(addr, pid);
    }

    /// Drains one session's outputs: transmits out, events onto the work queue, the next
    /// timeout into the timer set.
    fn drain(&mut self, pid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let Some(session) = p.session.as_mut() else {
            return;
        };
        loop {
            match session.poll() {
                Ok(Step::Transmit(t)) => {
                    if self.transmits.len() >= MAX_PENDING_TRANSMITS {
                        self.stats.dropped_transmit_queue += 1;
                    } else {
                        self.transmits.push_back(t);
                    }
                }
                Ok(Step::Event(e)) => self.events.push_back((pid, e)),
                Ok(Step::Timeout(at)) => {
                    if let Some(old) = p.timeout.replace(at) {
                        self.timers.remove(&(old, pid));
                    }
                    self.timers.insert((at, pid));
                    break;
                }
                Err(_) => {
                    self.doomed.push((pid, LeaveReason::Timeout));
                    break;
                }
            }
        }
    }

    /// Handles queued session events (which may write into other sessions and queue more
    /// events), then removes participants that died on the way.
    fn settle(&mut self, now: Instant) {
        let mut budget = MAX_EVENTS_PER_INPUT;
        while let Some((pid, event)) = self.events.pop_front() {
            if budget == 0 {
                self.stats.events_dropped += self.events.len() as u64 + 1;
                self.events.clear();
                break;
            }
            budget -= 1;
            self.handle_event(now, pid, event);
        }
        while let Some((pid, reason)) = self.doomed.pop() {
            self.remove(now, pid, reason);
        }
    }

    fn doom(&mut self, pid: ParticipantId, reason: LeaveReason) {
        self.doomed.push((pid, reason));
    }

    fn handle_event(&mut self, now: Instant, pid: ParticipantId, event: Event) {
        match event {
            Event::RtpPacket(pkt) => self.route(now, pid, &pkt),
            Event::KeyframeRequest(req) => self.on_keyframe_request(now, pid, req.mid),
            Event::EgressBitrateEstimate(kind) => {
                let Some(p) = self.participants.get_mut(&pid) else {
                    return;
                };
                // Our own TWCC estimate is authoritative; a receiver's REMB only stands in
                // for clients that do not send transport-wide feedback.
                let bps = match kind {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => {
                        p.twcc = true;
                        estimate.as_u64()
                    }
                    str0m::bwe::BweKind::Remb { estimate, .. } if !p.twcc => estimate.as_u64(),
                    _ => return,
                };
                p.downlink_bps = Some(bps);
                p.alloc_dirty = true;
            }
            Event::IceConnectionStateChange(state) => {
                if let Some(p) = self.participants.get_mut(&pid) {
                    use str0m::IceConnectionState as S;
                    p.ice_down_at = match state {
                        S::Disconnected => Some(now),
                        _ => None,
                    };
                }
            }
            Event::Connected => self.stats.sessions_connected += 1,
            Event::StreamPaused(paused) => self.on_stream_paused(pid, paused.mid),
            Event::MediaEgressStats(s) => self.on_egress_stats(pid, &s),
            Event::PeerStats(s) => {
                if let Some(p) = self.participants.get_mut(&pid) {
                    p.loss = s.egress_loss_fraction.unwrap_or(0.0);
                }
            }
            _ => {}
        }
    }

    /// Removes a participant and everything it published or subscribed.
    pub(crate) fn remove(&mut self, now: Instant, pid: ParticipantId, reason: LeaveReason) {
        let Some(mut p) = self.participants.remove(&pid) else {
            return;
        };
        if let Some(t) = p.timeout.take() {
            self.timers.remove(&(t, pid));
        }
        for a in &p.addrs {
            if self.by_addr.get(a) == Some(&pid) {
                self.by_addr.remove(a);
            }
        }
        if let Some(s) = p.session.as_mut() {
            self.by_ufrag.remove(s.ufrag());
            s.close();
            // Flush the goodbye (RTCP BYE, DTLS close_notify).
            while let Ok(Step::Transmit(t)) = s.poll() {
                if self.transmits.len() < MAX_PENDING_TRANSMITS {
                    self.transmits.push_back(t);
                }
            }
        }
        let meeting = p.admission.meeting.clone();
        for slot in &p.slots {
            if let Some(tid) = slot.track {
                self.detach_subscriber(&meeting, tid, pid, slot.mid);
            }
        }
        let published: Vec<_> = p.published.iter().map(|(_, t)| *t).collect();
        let hidden = p.admission.hidden;
        drop(p);
        for tid in published {
            self.unpublish(now, &meeting, tid);
        }
        if let Some(m) = self.meetings.get_mut(&meeting) {
            m.participants.retain(|x| *x != pid);
        }
        if !hidden {
            self.broadcast(
                &meeting,
                None,
                &ServerMsg::ParticipantLeft {
                    participant_id: pid,
                    reason,
                },
            );
            let left = RelayEvent::Left {
                participant_id: pid,
                reason,
            };
            self.emit_event_to(&meeting, &left, None);
        }
        self.prune_meeting(now, &meeting);
        self.closed.push_back(pid);
        self.stats.participants_left += 1;
    }

    /// Periodic work: grace periods, dead sessions, layer allocation, speakers, quality.
    fn housekeeping(&mut self, now: Instant) {
        let grace = self.cfg.limits.resume_grace;
        let mut gone = Vec::new();
        for p in self.participants.values() {
            let signal_gone = p
                .signal_lost_at
                .is_some_and(|t| now.saturating_duration_since(t) >= grace);
            let ice_gone = p
                .ice_down_at
                .is_some_and(|t| now.saturating_duration_since(t) >= ICE_DOWN_LIMIT);
            let dead = p.session.as_ref().is_some_and(|s| !s.is_alive());
            if signal_gone || ice_gone || dead {
                gone.push(p.id);
            }
        }
        for pid in gone {
            self.remove(now, pid, LeaveReason::Timeout);
        }
        let dirty: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| p.alloc_dirty)
            .map(|p| p.id)
            .collect();
        for pid in dirty {
            self.allocate(now, pid);
        }
        self.rank_speakers(now);
        self.service_keyframe_gates(now);
        self.relay_housekeeping(now);
        if now >= self.next_quality {
            self.next_quality = now + QUALITY_INTERVAL;
            self.assess_quality();
            self.refresh_gauges();
        }
    }

    fn refresh_gauges(&mut self) {
        self.stats.participants = self.participants.len() as u64;
        self.stats.meetings = self.meetings.len() as u64;
        self.stats.tracks = self.meetings.values().map(|m| m.tracks.len() as u64).sum();
        self.stats.subscriptions = self
            .participants
            .values()
            .map(|p| p.slots.iter().filter(|s| s.track.is_some()).count() as u64)
            .sum();
    }

    /// Registers a new session in the demux table.
    fn attach_session(&mut self, pid: ParticipantId, session: Session) {
        self.by_ufrag.insert(session.ufrag().to_owned(), pid);
        if let Some(p) = self.participants.get_mut(&pid) {
            p.session = Some(session);
        }
    }

    fn new_session(&mut self, now: Instant) -> Session {
        loop {
            let creds = crate::session::ice_creds(&mut self.rng);
            if !self.by_ufrag.contains_key(&creds.ufrag) {
                return Session::new(now, &self.cfg.session, creds);
            }
        }
    }
}

/// The local (our) half of a STUN request's USERNAME, `ours:theirs`.
fn stun_local_ufrag(bytes: &[u8]) -> Option<String> {
    let msg = str0m::ice::StunMessage::parse(bytes).ok()?;
    let (local, _remote) = msg.split_username()?;
    Some(local.to_owned())
}
