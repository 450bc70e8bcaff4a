//! The worker's side of the cascade (see `crate::cascade` for the model): tree updates from
//! the origin, control messages and media datagrams from tree neighbours, and what the worker
//! sends them in return.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use relay_proto::{
    Announce, Control, EdgeId, FlowId, Hops, LayerDesc, LayerSet, MediaHeader, MeetingEvent,
    MeetingId, TrackId, TreeEpoch, TreeUpdate,
};

use super::Worker;
use super::media::Inbound;
use crate::cascade::desc::{
    apply_desc, apply_layers, layer_descs, remote_track, states_differ, track_desc,
};
use crate::cascade::{
    self, Downstream, MAX_NEIGHBOURS, MAX_REMOTE_PARTICIPANTS, MAX_REMOTE_TRACKS, ORPHAN_GRACE,
    RelayEvent, RemoteParticipant, Upstream,
};
use crate::meeting::Meeting;
use crate::router::Track;
use crate::signal::{Kind, LeaveReason, ServerMsg};

/// Most relay control messages buffered between two drains by the shell.
pub const MAX_PENDING_RELAY: usize = 1 << 14;
/// Most relay datagrams buffered between two drains by the shell.
pub const MAX_PENDING_RELAY_DATAGRAMS: usize = 1 << 16;
/// Most origin-bound reports buffered between two drains; one housekeeping round queues at
/// most one per meeting, so this only bounds a worker configured for more meetings.
pub const MAX_PENDING_ORIGIN: usize = 1 << 14;

/// What the worker has for the shell's relay links and its origin link.
#[derive(Debug, Default)]
pub(crate) struct RelayQueue {
    pub datagrams: VecDeque<(EdgeId, Bytes)>,
    pub control: VecDeque<(EdgeId, Control)>,
    pub origin: VecDeque<Control>,
}

impl RelayQueue {
    pub(super) fn control(&mut self, stats: &mut super::WorkerStats, to: &EdgeId, msg: Control) {
        if self.control.len() >= MAX_PENDING_RELAY {
            stats.relay_dropped += 1;
            return;
        }
        stats.relay_messages_out += 1;
        self.control.push_back((to.clone(), msg));
    }

    fn origin(&mut self, stats: &mut super::WorkerStats, msg: Control) {
        if self.origin.len() >= MAX_PENDING_ORIGIN {
            stats.relay_dropped += 1;
            return;
        }
        self.origin.push_back(msg);
    }
}

impl Worker {
    /// The origin changed this edge's neighbours in a meeting's tree. Stale epochs are
    /// ignored; links that appear get our announcements, links that vanish orphan what came
    /// through them (it waits [`ORPHAN_GRACE`] for another route).
    pub fn handle_tree_update(&mut self, now: Instant, update: TreeUpdate) {
        let meeting = update.meeting;
        let applied = self.meetings.get(&meeting).and_then(|m| m.links.epoch);
        if !cascade::is_newer(applied, update.epoch) {
            self.stats.relay_stale_tree_updates += 1;
            return;
        }
        let me = self.cfg.edge.clone();
        let mut neighbours = update.neighbours;
        neighbours.retain(|e| *e != me);
        neighbours.sort();
        neighbours.dedup();
        neighbours.truncate(MAX_NEIGHBOURS);
        if !self.ensure_meeting(&meeting) {
            return;
        }
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return;
        };
        m.links.epoch = Some(update.epoch);
        let old = std::mem::replace(&mut m.links.neighbours, neighbours.clone());
        self.stats.relay_tree_updates += 1;
        for peer in old.iter().filter(|p| !neighbours.contains(p)) {
            self.link_lost(now, &meeting, peer);
        }
        for peer in neighbours.iter().filter(|p| !old.contains(p)) {
            self.link_added(now, &meeting, peer);
        }
        self.prune_meeting(now, &meeting);
    }

    /// The shell's link to `peer` came (back) up: resend our state in every meeting where it
    /// is a neighbour, since what was queued while it was down may be lost. (The peer does the
    /// same, and its fresh announcements bring back our subscriptions.)
    pub fn handle_link_up(&mut self, now: Instant, peer: &EdgeId) {
        let meetings: Vec<MeetingId> = self
            .meetings
            .values()
            .filter(|m| m.links.is_neighbour(peer))
            .map(|m| m.id.clone())
            .collect();
        for meeting in meetings {
            self.link_added(now, &meeting, peer);
        }
    }

    /// This edge's neighbours in a meeting's tree and the epoch they came with, as last
    /// applied; `None` when the meeting is not on this worker.
    pub fn tree_neighbours(&self, meeting: &MeetingId) -> Option<(Option<TreeEpoch>, &[EdgeId])> {
        let m = self.meetings.get(meeting)?;
        Some((m.links.epoch, &m.links.neighbours))
    }

    /// The origin link came back (the origin may have restarted): report every meeting's
    /// presence again at the next housekeeping.
    pub fn resend_presence(&mut self) {
        for m in self.meetings.values_mut() {
            m.links.presence = None;
        }
    }

    /// The shell's link to `peer` is gone: stop sending to it and orphan what it brought.
    pub fn handle_link_down(&mut self, now: Instant, peer: &EdgeId) {
        let meetings: Vec<MeetingId> = self.meetings.keys().cloned().collect();
        for meeting in meetings {
            self.link_lost(now, &meeting, peer);
        }
    }

    /// A control message from a tree neighbour.
    pub fn handle_relay(&mut self, now: Instant, from: &EdgeId, msg: Control) {
        self.stats.relay_messages_in += 1;
        match msg {
            Control::Announce(a) => self.on_announce(now, from, &a),
            Control::Withdraw { meeting, flow } => self.on_withdraw(now, from, &meeting, flow),
            Control::RouteLost { meeting, flow } => self.on_route_lost(now, from, &meeting, flow),
            Control::TrackState {
                meeting,
                flow,
                muted,
                layers,
            } => self.on_track_state(now, from, &meeting, flow, muted, &layers),
            Control::Subscribe {
                meeting: _,
                flow,
                layers,
            } => self.on_subscribe(now, from, flow, layers),
            Control::KeyframeRequest {
                meeting: _,
                flow,
                layer,
            } => {
                if let Some((meeting, tid)) = self.relay_out.get(&flow).cloned() {
                    self.request_keyframe(now, &meeting, tid, usize::from(layer));
                }
            }
            Control::Nack { flow, layer, seqs } => self.on_nack(from, flow, layer, &seqs),
            Control::Event(e) => self.on_event(from, e),
            _ => self.stats.relay_unexpected += 1,
        }
        self.settle(now);
    }

    /// A media datagram from a tree neighbour.
    pub fn handle_relay_datagram(&mut self, now: Instant, from: &EdgeId, bytes: &[u8]) {
        self.stats.relay_datagrams_in += 1;
        let media = match relay_proto::decode_datagram(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.relay_malformed += 1;
                return;
            }
        };
        let Some((meeting, tid)) = self.relay_in.get(&(from.clone(), media.flow)).cloned() else {
            self.stats.relay_unknown_flow += 1;
            return;
        };
        let layer = usize::from(media.layer);
        let Some(l) = self
            .track_mut(&meeting, tid)
            .and_then(|t| t.layers.get_mut(layer))
        else {
            self.stats.relay_malformed += 1;
            return;
        };
        let arrival = l.relay.gaps.handle_packet(now, media.header.seq);
        if arrival.duplicate {
            self.stats.relay_duplicates += 1;
            return;
        }
        if arrival.repair {
            self.stats.relay_repaired += 1;
        }
        if !arrival.nack.is_empty() {
            self.stats.relay_nacks_sent += 1;
            let msg = Control::Nack {
                flow: media.flow,
                layer: media.layer,
                seqs: arrival.nack,
            };
            self.relay.control(&mut self.stats, from, msg);
        }
        let (level, voice) = match media.header.audio_level {
            Some((voice, level)) => (Some(-(level.min(127) as i8)), Some(voice)),
            None => (None, None),
        };
        let inbound = Inbound {
            seq: arrival.seq,
            timestamp: media.header.timestamp,
            marker: media.header.marker,
            payload_type: media.header.payload_type,
            payload: media.payload,
            header_len: bytes.len() - media.payload.len(),
            audio_level: level,
            voice_activity: voice,
            video_orientation: None,
            received: now,
        };
        self.stats.relay_rtp_in += 1;
        self.fan_out(now, &meeting, tid, layer, &inbound);
        self.settle(now);
    }

    /// Creates a meeting's state for the cascade if it is not here yet (an edge can be a
    /// relay with no participant of its own). False when the worker is full.
    fn ensure_meeting(&mut self, meeting: &MeetingId) -> bool {
        if self.meetings.contains_key(meeting) {
            return true;
        }
        if self.meetings.len() >= self.cfg.limits.max_meetings {
            self.stats.relay_refused_meetings += 1;
            return false;
        }
        self.meetings
            .insert(meeting.clone(), Meeting::new(meeting.clone()));
        true
    }

    fn track_mut(&mut self, meeting: &MeetingId, tid: TrackId) -> Option<&mut Track> {
        self.meetings.get_mut(meeting)?.tracks.get_mut(&tid)
    }

    fn new_flow(&mut self, meeting: &MeetingId) -> FlowId {
        loop {
            self.next_flow = self.next_flow.wrapping_add(1);
            let flow = FlowId::new(meeting, self.next_flow);
            if !self.relay_out.contains_key(&flow) {
                return flow;
            }
        }
    }

    /// A new tree link: announce every track and participant that did not come from `peer`.
    fn link_added(&mut self, now: Instant, meeting: &MeetingId, peer: &EdgeId) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let tids: Vec<TrackId> = m
            .tracks
            .values()
            .filter(|t| !matches!(&t.upstream, Upstream::Remote { peer: p, .. } if p == peer))
            .map(|t| t.id)
            .collect();
        for tid in tids {
            self.announce_to(now, meeting, tid, peer);
        }
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        // The roster, as `joined` events from us: idempotent at the receiver.
        let mut roster: Vec<_> = m
            .participants
            .iter()
            .filter_map(|p| self.participants.get(p))
            .filter(|p| !p.admission.hidden)
            .map(|p| p.info.clone())
            .collect();
        roster.extend(
            m.links
                .remote
                .values()
                .filter(|r| r.via != *peer && r.lost_at.is_none())
                .map(|r| r.info.clone()),
        );
        for participant in roster {
            self.emit_event_to(meeting, &RelayEvent::Joined { participant }, Some(peer));
        }
    }

    /// A tree link went away (or its QUIC link died): stop relaying to it, and every track
    /// that came through it loses its route.
    fn link_lost(&mut self, now: Instant, meeting: &MeetingId, peer: &EdgeId) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        let mut lost = Vec::new();
        for t in m.tracks.values_mut() {
            t.downstream.retain(|d| {
                if d.peer == *peer {
                    self.relay_out.remove(&d.flow);
                    return false;
                }
                true
            });
            if let Upstream::Remote {
                peer: p, standby, ..
            } = &mut t.upstream
            {
                if standby.as_ref().is_some_and(|r| r.peer == *peer) {
                    *standby = None;
                }
                if p == peer {
                    lost.push(t.id);
                }
            }
        }
        for r in m.links.remote.values_mut() {
            if r.via == *peer && r.lost_at.is_none() {
                r.lost_at = Some(now);
            }
        }
        for tid in lost {
            self.route_lost(now, meeting, tid);
        }
    }

    /// A remote track's route is gone. Take the standby route if there is one; otherwise
    /// wait for a new announcement, and tell downstream neighbours so that they can take
    /// theirs (a route lost here is lost for the whole subtree behind us).
    fn route_lost(&mut self, now: Instant, meeting: &MeetingId, tid: TrackId) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        let neighbours = m.links.neighbours.clone();
        let Some(t) = m.tracks.get_mut(&tid) else {
            return;
        };
        let Upstream::Remote {
            lost_at, standby, ..
        } = &mut t.upstream
        else {
            return;
        };
        if let Some(r) = standby.take().filter(|r| neighbours.contains(&r.peer)) {
            self.switch_route(now, meeting, tid, r);
            return;
        }
        if lost_at.is_some() {
            return;
        }
        *lost_at = Some(now);
        let msgs: Vec<(EdgeId, Control)> = t
            .downstream
            .iter()
            .map(|d| {
                let msg = Control::RouteLost {
                    meeting: meeting.clone(),
                    flow: d.flow,
                };
                (d.peer.clone(), msg)
            })
            .collect();
        for (to, msg) in msgs {
            self.relay.control(&mut self.stats, &to, msg);
        }
    }

    /// Makes `route` a remote track's upstream: the old flow is forgotten, the new one is
    /// subscribed, and downstream neighbours get a fresh announcement (which also tells them
    /// the route is back).
    fn switch_route(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        tid: TrackId,
        route: crate::cascade::Route,
    ) {
        let Some(t) = self.track_mut(meeting, tid) else {
            return;
        };
        let Upstream::Remote {
            peer,
            flow,
            lost_at,
            ..
        } = &mut t.upstream
        else {
            return;
        };
        let old = (peer.clone(), *flow);
        *peer = route.peer.clone();
        *flow = route.flow;
        *lost_at = None;
        t.hops = route.hops;
        t.demand = LayerSet::default();
        // The neighbour that now feeds us cannot also be fed by us.
        let mut gone = Vec::new();
        t.downstream.retain(|d| {
            let keep = d.peer != route.peer;
            if !keep {
                gone.push(d.flow);
            }
            keep
        });
        let downstream: Vec<EdgeId> = t.downstream.iter().map(|d| d.peer.clone()).collect();
        for f in gone {
            self.relay_out.remove(&f);
        }
        self.relay_in.remove(&old);
        self.relay_in
            .insert((route.peer, route.flow), (meeting.clone(), tid));
        self.stats.relay_reroutes += 1;
        for d in downstream {
            self.announce_to(now, meeting, tid, &d);
        }
        self.refresh_demand(meeting, tid);
        // Packets were lost across the switch: every video layer in use needs a keyframe.
        // Asking now saves the round trip of waiting for subscribers to notice and ask.
        let layers: Vec<usize> = self
            .meetings
            .get(meeting)
            .and_then(|m| m.tracks.get(&tid))
            .filter(|t| t.kind == Kind::Video)
            .map(|t| t.demand.iter().map(usize::from).collect())
            .unwrap_or_default();
        for l in layers {
            self.request_keyframe(now, meeting, tid, l);
        }
    }

    fn on_route_lost(&mut self, now: Instant, from: &EdgeId, meeting: &MeetingId, flow: FlowId) {
        let Some((m, tid)) = self.relay_in.get(&(from.clone(), flow)).cloned() else {
            return;
        };
        if m != *meeting {
            return;
        }
        let Some(t) = self.track_mut(meeting, tid) else {
            return;
        };
        let Upstream::Remote {
            peer,
            flow: f,
            standby,
            ..
        } = &mut t.upstream
        else {
            return;
        };
        if standby
            .as_ref()
            .is_some_and(|r| r.peer == *from && r.flow == flow)
        {
            *standby = None;
        } else if peer == from && *f == flow {
            self.route_lost(now, meeting, tid);
        }
    }

    /// Announces one track to one neighbour, reusing the flow if it already has one.
    pub(super) fn announce_to(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        tid: TrackId,
        peer: &EdgeId,
    ) {
        let me = self.cfg.edge.clone();
        let existing = self
            .meetings
            .get(meeting)
            .and_then(|m| m.tracks.get(&tid))
            .and_then(|t| t.downstream.iter().find(|d| d.peer == *peer))
            .map(|d| d.flow);
        let flow = match existing {
            Some(f) => f,
            None => self.new_flow(meeting),
        };
        let Some(track) = self.track_mut(meeting, tid) else {
            return;
        };
        let mut hops = match &track.upstream {
            Upstream::Local { .. } => Hops::default(),
            Upstream::Remote { .. } => track.hops.clone(),
        };
        if hops.contains(peer) || hops.push(me).is_err() {
            return;
        }
        if existing.is_none() {
            track
                .downstream
                .push(Downstream::new(peer.clone(), flow, track.layers.len()));
        }
        let desc = track_desc(track, now);
        track.announced = desc.layers.clone();
        let announce = Announce {
            meeting: meeting.clone(),
            flow,
            track: desc,
            hops,
        };
        self.relay_out.insert(flow, (meeting.clone(), tid));
        self.relay
            .control(&mut self.stats, peer, Control::Announce(announce));
    }

    fn on_announce(&mut self, now: Instant, from: &EdgeId, a: &Announce) {
        if a.hops.contains(&self.cfg.edge) {
            self.stats.relay_loops += 1;
            return;
        }
        if !self.ensure_meeting(&a.meeting) {
            return;
        }
        let meeting = a.meeting.clone();
        let tid = a.track.id;
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return;
        };
        let neighbours = m.links.neighbours.clone();
        match m.tracks.get_mut(&tid) {
            Some(t) if t.is_local() => {
                self.stats.relay_loops += 1;
                return;
            }
            Some(t) => {
                let Upstream::Remote {
                    peer,
                    flow,
                    lost_at,
                    standby,
                } = &mut t.upstream
                else {
                    return;
                };
                let route = crate::cascade::Route {
                    peer: from.clone(),
                    flow: a.flow,
                    hops: a.hops.clone(),
                };
                if peer != from {
                    if lost_at.is_none() && neighbours.contains(peer) {
                        // A second path while the tree changes: keep it in reserve.
                        *standby = Some(route);
                        self.stats.relay_duplicate_announces += 1;
                        return;
                    }
                    apply_desc(t, &a.track);
                    self.switch_route(now, &meeting, tid, route);
                    self.forward_announce(now, &meeting, tid, from, &a.hops);
                    return;
                }
                let was_lost = lost_at.take().is_some();
                if *flow != a.flow {
                    self.relay_in.remove(&(from.clone(), *flow));
                    *flow = a.flow;
                    t.demand = LayerSet::default();
                }
                t.hops = a.hops.clone();
                apply_desc(t, &a.track);
                let mute_changed = t.muted != a.track.muted;
                t.muted = a.track.muted;
                // Our downstream heard the route was lost; a fresh announcement tells them it
                // is back.
                let downstream: Vec<EdgeId> = if was_lost {
                    t.downstream.iter().map(|d| d.peer.clone()).collect()
                } else {
                    Vec::new()
                };
                if mute_changed {
                    let msg = ServerMsg::TrackMuted {
                        track_id: tid,
                        muted: a.track.muted,
                    };
                    self.broadcast(&meeting, None, &msg);
                }
                for d in downstream {
                    self.announce_to(now, &meeting, tid, &d);
                }
            }
            None => {
                let remote = m.tracks.values().filter(|t| !t.is_local()).count();
                if remote >= MAX_REMOTE_TRACKS {
                    self.stats.relay_refused_tracks += 1;
                    return;
                }
                let Some(track) = remote_track(from, a) else {
                    self.stats.relay_malformed += 1;
                    return;
                };
                let info = track.info();
                m.tracks.insert(tid, track);
                self.broadcast(&meeting, None, &ServerMsg::TrackPublished { track: info });
                self.refresh_whep(&meeting);
            }
        }
        self.relay_in
            .insert((from.clone(), a.flow), (meeting.clone(), tid));
        self.forward_announce(now, &meeting, tid, from, &a.hops);
        self.refresh_demand(&meeting, tid);
    }

    /// Passes a track's announcement on to every neighbour but the one it came from and
    /// those it already passed.
    fn forward_announce(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        tid: TrackId,
        from: &EdgeId,
        hops: &Hops,
    ) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let to: Vec<EdgeId> = m
            .links
            .neighbours
            .iter()
            .filter(|n| *n != from && !hops.contains(n))
            .cloned()
            .collect();
        for n in to {
            self.announce_to(now, meeting, tid, &n);
        }
    }

    fn on_withdraw(&mut self, now: Instant, from: &EdgeId, meeting: &MeetingId, flow: FlowId) {
        let Some((m, tid)) = self.relay_in.get(&(from.clone(), flow)).cloned() else {
            return;
        };
        if m != *meeting {
            self.stats.relay_malformed += 1;
            return;
        }
        let current = self.meetings.get(meeting).and_then(|m| m.tracks.get(&tid)).is_some_and(
            |t| matches!(&t.upstream, Upstream::Remote { peer, flow: f, .. } if peer == from && *f == flow),
        );
        if current {
            self.unpublish(now, meeting, tid);
        } else {
            self.relay_in.remove(&(from.clone(), flow));
        }
    }

    fn on_track_state(
        &mut self,
        now: Instant,
        from: &EdgeId,
        meeting: &MeetingId,
        flow: FlowId,
        muted: bool,
        layers: &[LayerDesc],
    ) {
        let Some((_, tid)) = self.relay_in.get(&(from.clone(), flow)).cloned() else {
            return;
        };
        let Some(t) = self.track_mut(meeting, tid) else {
            return;
        };
        let was_muted = t.muted;
        t.muted = muted;
        apply_layers(t, layers);
        let subs: Vec<_> = t.subscribers.iter().map(|(s, _)| *s).collect();
        for s in subs {
            if let Some(p) = self.participants.get_mut(&s) {
                p.alloc_dirty = true;
            }
        }
        if was_muted != muted {
            self.broadcast(
                meeting,
                None,
                &ServerMsg::TrackMuted {
                    track_id: tid,
                    muted,
                },
            );
        }
        self.push_track_state(now, meeting, tid);
    }

    /// Sends a track's current state to every neighbour it is relayed to.
    pub(super) fn push_track_state(&mut self, now: Instant, meeting: &MeetingId, tid: TrackId) {
        let Some(t) = self.track_mut(meeting, tid) else {
            return;
        };
        let layers = layer_descs(t, now);
        t.announced = layers.clone();
        let msgs: Vec<(EdgeId, Control)> = t
            .downstream
            .iter()
            .map(|d| {
                (
                    d.peer.clone(),
                    Control::TrackState {
                        meeting: meeting.clone(),
                        flow: d.flow,
                        muted: t.muted,
                        layers: layers.clone(),
                    },
                )
            })
            .collect();
        for (to, msg) in msgs {
            self.relay.control(&mut self.stats, &to, msg);
        }
    }

    fn on_subscribe(&mut self, now: Instant, from: &EdgeId, flow: FlowId, layers: LayerSet) {
        let Some((meeting, tid)) = self.relay_out.get(&flow).cloned() else {
            self.stats.relay_unknown_flow += 1;
            return;
        };
        let Some(t) = self.track_mut(&meeting, tid) else {
            return;
        };
        let n = t.layers.len();
        let video = t.kind == Kind::Video;
        let Some(d) = t
            .downstream
            .iter_mut()
            .find(|d| d.peer == *from && d.flow == flow)
        else {
            return;
        };
        let added: Vec<usize> = layers
            .iter()
            .map(usize::from)
            .filter(|l| *l < n && !d.layers.contains(*l as u8))
            .collect();
        d.layers = layers;
        if video {
            for l in added {
                self.request_keyframe(now, &meeting, tid, l);
            }
        }
        self.refresh_demand(&meeting, tid);
    }

    fn on_nack(&mut self, from: &EdgeId, flow: FlowId, layer: u8, seqs: &[u16]) {
        self.stats.relay_nacks_received += 1;
        let Some((meeting, tid)) = self.relay_out.get(&flow).cloned() else {
            return;
        };
        let Some(t) = self.meetings.get(&meeting).and_then(|m| m.tracks.get(&tid)) else {
            return;
        };
        let Some(rtx) = t
            .downstream
            .iter()
            .find(|d| d.peer == *from && d.flow == flow)
            .and_then(|d| d.rtx.get(usize::from(layer)))
        else {
            return;
        };
        for seq in seqs {
            match rtx.get(*seq) {
                Some(d) if self.relay.datagrams.len() < MAX_PENDING_RELAY_DATAGRAMS => {
                    self.relay.datagrams.push_back((from.clone(), d.clone()));
                    self.stats.relay_retransmits += 1;
                }
                _ => self.stats.relay_retransmit_misses += 1,
            }
        }
    }

    /// Recomputes which layers of a remote track this edge needs from upstream: those its
    /// slots are on or moving to, plus those its downstream neighbours subscribed. Sends a
    /// `Subscribe` when the set changed.
    pub(super) fn refresh_demand(&mut self, meeting: &MeetingId, tid: TrackId) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let Some(t) = m.tracks.get(&tid) else {
            return;
        };
        let Upstream::Remote { peer, flow, .. } = &t.upstream else {
            return;
        };
        let mut want = LayerSet::default();
        for (sub, mid) in &t.subscribers {
            if let Some(slot) = self.participants.get(sub).and_then(|p| {
                p.slots
                    .iter()
                    .find(|s| s.mid == *mid && s.track == Some(tid))
            }) {
                for l in [slot.want, slot.cur].into_iter().flatten() {
                    // Layer indices are below MAX_LAYERS by construction.
                    let _ = want.insert(l as u8);
                }
            }
        }
        for d in &t.downstream {
            for l in d.layers.iter() {
                let _ = want.insert(l);
            }
        }
        if t.kind == Kind::Audio && !want.is_empty() {
            want = LayerSet::single(0).unwrap_or_default();
        }
        if want == t.demand {
            return;
        }
        let (peer, flow) = (peer.clone(), *flow);
        let msg = Control::Subscribe {
            meeting: meeting.clone(),
            flow,
            layers: want,
        };
        if let Some(t) = self.track_mut(meeting, tid) {
            t.demand = want;
        }
        self.relay.control(&mut self.stats, &peer, msg);
    }

    fn on_event(&mut self, from: &EdgeId, e: MeetingEvent) {
        if e.hops.contains(&self.cfg.edge) {
            self.stats.relay_loops += 1;
            return;
        }
        if !self.ensure_meeting(&e.meeting) {
            return;
        }
        let Some(m) = self.meetings.get_mut(&e.meeting) else {
            return;
        };
        if !m.links.first_sighting(&e.origin, e.seq) {
            self.stats.relay_duplicate_events += 1;
            return;
        }
        let Ok(event) = serde_json::from_str::<RelayEvent>(&e.body) else {
            self.stats.relay_malformed += 1;
            return;
        };
        self.apply_event(from, &e.meeting, event);
        self.forward_event(from, e);
    }

    fn apply_event(&mut self, from: &EdgeId, meeting: &MeetingId, event: RelayEvent) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        match event {
            RelayEvent::Joined { participant } => {
                if self.participants.contains_key(&participant.id) {
                    return;
                }
                if let Some(r) = m.links.remote.get_mut(&participant.id) {
                    r.via = from.clone();
                    r.lost_at = None;
                    return;
                }
                if m.links.remote.len() >= MAX_REMOTE_PARTICIPANTS {
                    self.stats.relay_refused_participants += 1;
                    return;
                }
                m.links.remote.insert(
                    participant.id,
                    RemoteParticipant {
                        info: participant.clone(),
                        via: from.clone(),
                        lost_at: None,
                    },
                );
                self.broadcast(meeting, None, &ServerMsg::ParticipantJoined { participant });
            }
            RelayEvent::Left {
                participant_id,
                reason,
            } => {
                if m.links.remote.remove(&participant_id).is_some() {
                    let msg = ServerMsg::ParticipantLeft {
                        participant_id,
                        reason,
                    };
                    self.broadcast(meeting, None, &msg);
                }
            }
            RelayEvent::Chat { mut message } => {
                message.id = m.next_chat_id;
                m.next_chat_id += 1;
                if m.chat.len() >= self.cfg.limits.chat_history {
                    m.chat.pop_front();
                }
                m.chat.push_back(message.clone());
                self.broadcast(meeting, None, &ServerMsg::Chat { message });
            }
        }
    }

    fn forward_event(&mut self, from: &EdgeId, mut e: MeetingEvent) {
        let Some(m) = self.meetings.get(&e.meeting) else {
            return;
        };
        let to: Vec<EdgeId> = m
            .links
            .neighbours
            .iter()
            .filter(|n| *n != from && !e.hops.contains(n))
            .cloned()
            .collect();
        if to.is_empty() || e.hops.push(self.cfg.edge.clone()).is_err() {
            return;
        }
        for n in to {
            self.relay
                .control(&mut self.stats, &n, Control::Event(e.clone()));
        }
    }

    /// Originates a meeting event from this edge to all neighbours (or one).
    pub(super) fn emit_event_to(
        &mut self,
        meeting: &MeetingId,
        event: &RelayEvent,
        only: Option<&EdgeId>,
    ) {
        let me = self.cfg.edge.clone();
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        if !m.links.in_tree() {
            return;
        }
        let Ok(body) = serde_json::to_string(event) else {
            return;
        };
        let seq = m.links.next_event_seq;
        m.links.next_event_seq += 1;
        m.links.first_sighting(&me, seq);
        let mut hops = Hops::default();
        if hops.push(me.clone()).is_err() {
            return;
        }
        let e = MeetingEvent {
            meeting: meeting.clone(),
            origin: me,
            seq,
            hops,
            body,
        };
        let to: Vec<EdgeId> = match only {
            Some(p) => vec![p.clone()],
            None => m.links.neighbours.clone(),
        };
        for n in to {
            self.relay
                .control(&mut self.stats, &n, Control::Event(e.clone()));
        }
    }

    /// Tells every neighbour a track is gone (called when it is unpublished here, or its
    /// upstream withdrew it) and forgets its flows.
    pub(super) fn withdraw_track(&mut self, meeting: &MeetingId, track: &Track) {
        for d in &track.downstream {
            self.relay_out.remove(&d.flow);
            let msg = Control::Withdraw {
                meeting: meeting.clone(),
                flow: d.flow,
            };
            self.relay.control(&mut self.stats, &d.peer, msg);
        }
        if let Upstream::Remote { peer, flow, .. } = &track.upstream {
            self.relay_in.remove(&(peer.clone(), *flow));
            if !track.demand.is_empty() {
                let msg = Control::Subscribe {
                    meeting: meeting.clone(),
                    flow: *flow,
                    layers: LayerSet::default(),
                };
                self.relay.control(&mut self.stats, peer, msg);
            }
        }
    }

    /// Periodic cascade work: NACK retries, orphans that found no new route, demand sweeps,
    /// layer-state announcements, and presence reports to the origin.
    pub(super) fn relay_housekeeping(&mut self, now: Instant) {
        let mut nacks = Vec::new();
        let mut orphans = Vec::new();
        let mut lost_people = Vec::new();
        let mut sweep = Vec::new();
        let mut states = Vec::new();
        for m in self.meetings.values_mut() {
            for t in m.tracks.values_mut() {
                match &t.upstream {
                    Upstream::Remote {
                        peer,
                        flow,
                        lost_at,
                        ..
                    } => {
                        if lost_at
                            .is_some_and(|at| now.saturating_duration_since(at) >= ORPHAN_GRACE)
                        {
                            orphans.push((m.id.clone(), t.id));
                            continue;
                        }
                        for (i, l) in t.layers.iter_mut().enumerate() {
                            if l.relay.gaps.has_missing() {
                                let seqs = l.relay.gaps.handle_timeout(now);
                                if !seqs.is_empty() {
                                    nacks.push((peer.clone(), *flow, i as u8, seqs));
                                }
                            }
                        }
                        sweep.push((m.id.clone(), t.id));
                    }
                    Upstream::Local { .. } => {
                        if !t.downstream.is_empty()
                            && states_differ(&t.announced, &layer_descs(t, now))
                        {
                            states.push((m.id.clone(), t.id));
                        }
                    }
                }
            }
            for r in m.links.remote.values() {
                if r.lost_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= ORPHAN_GRACE)
                {
                    lost_people.push((m.id.clone(), r.info.id));
                }
            }
        }
        for (peer, flow, layer, seqs) in nacks {
            self.stats.relay_nacks_sent += 1;
            let msg = Control::Nack { flow, layer, seqs };
            self.relay.control(&mut self.stats, &peer, msg);
        }
        for (meeting, tid) in orphans {
            self.stats.relay_orphans_dropped += 1;
            self.unpublish(now, &meeting, tid);
        }
        for (meeting, pid) in lost_people {
            if let Some(m) = self.meetings.get_mut(&meeting) {
                m.links.remote.remove(&pid);
            }
            let msg = ServerMsg::ParticipantLeft {
                participant_id: pid,
                reason: LeaveReason::Timeout,
            };
            self.broadcast(&meeting, None, &msg);
        }
        for (meeting, tid) in sweep {
            self.refresh_demand(&meeting, tid);
        }
        for (meeting, tid) in states {
            self.push_track_state(now, &meeting, tid);
        }
        self.report_presence();
        let meetings: Vec<MeetingId> = self.meetings.keys().cloned().collect();
        for meeting in meetings {
            self.prune_meeting(now, &meeting);
        }
    }

    /// Tells the origin how many participants (and publishers) each meeting has here, when
    /// that changed. The origin builds trees from these.
    fn report_presence(&mut self) {
        let mut reports = Vec::new();
        for m in self.meetings.values_mut() {
            let participants = m.participants.len() as u32;
            let publishers = m
                .participants
                .iter()
                .filter(|p| {
                    self.participants
                        .get(p)
                        .is_some_and(|p| !p.published.is_empty())
                })
                .count() as u32;
            let now = (participants, publishers);
            // Unreported meetings with nobody here (pure relays) stay unreported.
            if m.links.presence != Some(now) && (m.links.presence.is_some() || now != (0, 0)) {
                m.links.presence = Some(now);
                reports.push(Control::Presence {
                    meeting: m.id.clone(),
                    participants,
                    publishers,
                });
            }
        }
        for r in reports {
            self.relay.origin(&mut self.stats, r);
        }
    }

    /// Forgets a meeting that has no participant here and no place in a tree, after telling
    /// the origin.
    pub(super) fn prune_meeting(&mut self, now: Instant, meeting: &MeetingId) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        if !m.participants.is_empty() || m.links.in_tree() {
            return;
        }
        let tids: Vec<TrackId> = m.tracks.keys().copied().collect();
        for tid in tids {
            self.unpublish(now, meeting, tid);
        }
        if let Some(m) = self.meetings.remove(meeting)
            && m.links.presence.is_some_and(|p| p != (0, 0))
        {
            let gone = Control::Presence {
                meeting: meeting.clone(),
                participants: 0,
                publishers: 0,
            };
            self.relay.origin(&mut self.stats, gone);
        }
    }
}

/// Encodes one packet once per neighbour that subscribed to its layer, keeps it for their
/// NACKs and queues it. A free function so the fan-out can hold the track borrowed.
pub(super) fn relay_media(
    queue: &mut RelayQueue,
    stats: &mut super::WorkerStats,
    track: &mut Track,
    layer: usize,
    pkt: &Inbound<'_>,
) {
    if track.downstream.is_empty() {
        return;
    }
    let header = MediaHeader {
        marker: pkt.marker,
        payload_type: pkt.payload_type,
        seq: pkt.seq as u16,
        timestamp: pkt.timestamp,
        audio_level: pkt.audio_level.map(|l| {
            (
                pkt.voice_activity.unwrap_or(false),
                l.unsigned_abs().min(127),
            )
        }),
    };
    for d in &mut track.downstream {
        if !d.layers.contains(layer as u8) {
            continue;
        }
        if queue.datagrams.len() >= MAX_PENDING_RELAY_DATAGRAMS {
            stats.relay_dropped += 1;
            continue;
        }
        let mut buf = Vec::with_capacity(pkt.payload.len() + 32);
        if relay_proto::encode_datagram(d.flow, layer as u8, &header, pkt.payload, &mut buf)
            .is_err()
        {
            stats.relay_too_large += 1;
            continue;
        }
        let bytes = Bytes::from(buf);
        if let Some(rtx) = d.rtx.get_mut(layer) {
            rtx.insert(header.seq, bytes.clone());
        }
        stats.relay_rtp_out += 1;
        stats.relay_bytes_out += bytes.len() as u64;
        queue.datagrams.push_back((d.peer.clone(), bytes));
    }
}
