//! The meeting client's messages: join, resume, offers, subscriptions, chat.

use std::time::Instant;

use rand::Rng;
use relay_proto::{LayerSet, ParticipantId, TrackId};
use str0m::media::{Direction, MediaKind, Mid};

use super::Worker;
use crate::cascade::{RelayEvent, Upstream};
use crate::meeting::{Admission, Meeting, Participant, Role};
use crate::router::{Layer, MAX_LAYERS, MAX_SUBSCRIBERS_PER_TRACK, Slot, Track};
use crate::signal::{
    ChatMessage, ClientMsg, ErrorCode, Kind, LeaveReason, Limits, MeetingInfo, ParticipantInfo,
    Publication, ServerMsg, Snapshot, Source, SubscriptionInfo,
};

/// Why a join or resume was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl Worker {
    /// Admits a participant whose token the shell verified. Sends `joined` to it and
    /// `participant_joined` to the others. A participant with the same identity already in
    /// the meeting is replaced (a second tab, a reload).
    pub fn join(
        &mut self,
        now: Instant,
        admission: Admission,
        role: Role,
    ) -> Result<ParticipantId, Refusal> {
        let meeting = admission.meeting.clone();
        if let Some(old) = self.find_identity(&admission) {
            self.remove(now, old, LeaveReason::Replaced);
        }
        let count = self
            .meetings
            .get(&meeting)
            .map_or(0, |m| m.participants.len());
        if count >= self.cfg.limits.max_participants {
            self.stats.joins_refused += 1;
            return Err(Refusal::new(
                ErrorCode::MeetingFull,
                format!(
                    "meeting {meeting} already has {} participants, the limit",
                    self.cfg.limits.max_participants
                ),
            ));
        }
        if count == 0 && self.meetings.len() >= self.cfg.limits.max_meetings {
            self.stats.joins_refused += 1;
            return Err(Refusal::new(
                ErrorCode::Overloaded,
                "this edge hosts as many meetings as it can; try again shortly",
            ));
        }
        let id = loop {
            let id = ParticipantId(self.rng.random());
            if !self.participants.contains_key(&id) {
                break id;
            }
        };
        let info = ParticipantInfo {
            id,
            identity: admission.identity.clone(),
            name: admission.name.clone(),
            joined_at_ms: self.wall_ms(now),
            can_publish: admission.can_publish,
        };
        let secret: [u8; 16] = self.rng.random();
        let hidden = admission.hidden;
        self.participants.insert(
            id,
            Participant {
                id,
                role,
                admission,
                info: info.clone(),
                resume_secret: secret.iter().map(|b| format!("{b:02x}")).collect(),
                signal_lost_at: None,
                session: None,
                ice_down_at: None,
                timeout: None,
                addrs: Vec::new(),
                published: Vec::new(),
                slots: Vec::new(),
                downlink_bps: None,
                twcc: false,
                loss: 0.0,
                quality: None,
                alloc_dirty: false,
                chat_times: Default::default(),
            },
        );
        self.meetings
            .entry(meeting.clone())
            .or_insert_with(|| Meeting::new(meeting.clone()))
            .participants
            .push(id);
        self.stats.joins_accepted += 1;
        if role == Role::Meeting {
            let snap = self.snapshot(id);
            self.send(id, ServerMsg::Joined(Box::new(snap)));
        }
        if !hidden {
            self.broadcast(
                &meeting,
                Some(id),
                &ServerMsg::ParticipantJoined {
                    participant: info.clone(),
                },
            );
            let joined = RelayEvent::Joined { participant: info };
            self.emit_event_to(&meeting, &joined, None);
        }
        Ok(id)
    }

    /// Re-attaches a new signaling socket to a participant after a drop.
    pub fn resume(
        &mut self,
        _now: Instant,
        admission: &Admission,
        id: ParticipantId,
        secret: &str,
    ) -> Result<(), Refusal> {
        let ok = self.participants.get(&id).is_some_and(|p| {
            p.role == Role::Meeting
                && p.admission.meeting == admission.meeting
                && p.admission.identity == admission.identity
                && constant_time_eq(p.resume_secret.as_bytes(), secret.as_bytes())
        });
        if !ok {
            return Err(Refusal::new(
                ErrorCode::ResumeFailed,
                "no such participant to resume (it may have timed out); join again",
            ));
        }
        if let Some(p) = self.participants.get_mut(&id) {
            p.signal_lost_at = None;
        }
        let mut snap = self.snapshot(id);
        snap.subscriptions = self.participants[&id]
            .slots
            .iter()
            .filter_map(|s| {
                s.track.map(|track_id| SubscriptionInfo {
                    mid: s.mid.to_string(),
                    track_id,
                })
            })
            .collect();
        self.send(id, ServerMsg::Resumed(Box::new(snap)));
        Ok(())
    }

    /// The participant's signaling socket closed. Media goes on; the participant is removed
    /// if no `resume` comes within the grace period.
    pub fn signal_closed(&mut self, now: Instant, id: ParticipantId) {
        if let Some(p) = self.participants.get_mut(&id)
            && p.role == Role::Meeting
            && p.signal_lost_at.is_none()
        {
            p.signal_lost_at = Some(now);
        }
    }

    /// One message from a joined participant's socket. Errors are answered on the socket.
    pub fn handle_client_message(&mut self, now: Instant, id: ParticipantId, msg: ClientMsg) {
        if !self.participants.contains_key(&id) {
            return;
        }
        let result = match msg {
            ClientMsg::Join { .. } | ClientMsg::Resume { .. } => Err(Refusal::new(
                ErrorCode::BadMessage,
                "already joined on this socket",
            )),
            ClientMsg::Offer { sdp, publish } => self.on_offer(now, id, &sdp, &publish),
            ClientMsg::Subscribe {
                track_id,
                mid,
                max_width,
                max_height,
            } => self.subscribe(now, id, track_id, &mid, max_width, max_height),
            ClientMsg::UpdateSubscription {
                mid,
                max_width,
                max_height,
            } => self.update_subscription(id, &mid, max_width, max_height),
            ClientMsg::Unsubscribe { mid } => self.unsubscribe(id, &mid),
            ClientMsg::Mute { track_id, muted } => self.mute(now, id, track_id, muted),
            ClientMsg::Chat { text } => self.chat(now, id, text),
            ClientMsg::Ping { ts } => {
                self.send(id, ServerMsg::Pong { ts });
                Ok(())
            }
            ClientMsg::Leave {} => {
                self.remove(now, id, LeaveReason::Left);
                Ok(())
            }
        };
        if let Err(r) = result {
            self.send(id, ServerMsg::error(r.code, r.message));
        }
        self.settle(now);
    }

    fn find_identity(&self, a: &Admission) -> Option<ParticipantId> {
        let m = self.meetings.get(&a.meeting)?;
        m.participants.iter().copied().find(|p| {
            self.participants
                .get(p)
                .is_some_and(|p| p.admission.identity == a.identity)
        })
    }

    pub(crate) fn snapshot(&self, id: ParticipantId) -> Snapshot {
        let p = &self.participants[&id];
        let meeting = &p.admission.meeting;
        let m = self.meetings.get(meeting);
        let others = m
            .map(|m| {
                m.participants
                    .iter()
                    .filter(|x| **x != id)
                    .filter_map(|x| self.participants.get(x))
                    .filter(|x| !x.admission.hidden)
                    .map(|x| x.info.clone())
                    .chain(m.links.remote.values().map(|r| r.info.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tracks: Vec<_> = m
            .map(|m| m.tracks.values().map(|t| t.info()).collect())
            .unwrap_or_default();
        tracks.sort_by_key(|t: &crate::signal::TrackInfo| t.id);
        let limits = &self.cfg.limits;
        Snapshot {
            participant: p.info.clone(),
            resume_secret: p.resume_secret.clone(),
            meeting: MeetingInfo {
                id: meeting.clone(),
            },
            participants: others,
            tracks,
            chat: m
                .map(|m| m.chat.iter().cloned().collect())
                .unwrap_or_default(),
            ice_servers: self.cfg.ice_servers.clone(),
            limits: Limits {
                max_participants: limits.max_participants,
                max_chat_len: limits.max_chat_len,
                max_message_bytes: crate::signal::MAX_MESSAGE_BYTES,
            },
            subscriptions: Vec::new(),
        }
    }

    /// Accepts an offer (creating the session on the first one) and reconciles what the
    /// client publishes and which receive slots it has.
    pub(crate) fn on_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
        publish: &[Publication],
    ) -> Result<(), Refusal> {
        let p = &self.participants[&id];
        if !publish.is_empty() && !p.admission.can_publish {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "permission_denied: the token does not allow publishing (canPublish)",
            ));
        }
        if publish.len() > self.cfg.limits.max_publications {
            return Err(Refusal::new(
                ErrorCode::SdpInvalid,
                format!(
                    "at most {} published tracks",
                    self.cfg.limits.max_publications
                ),
            ));
        }
        let answer = self.apply_offer(now, id, sdp)?;
        self.reconcile_publications(now, id, publish)?;
        self.send(id, ServerMsg::Answer { sdp: answer });
        Ok(())
    }

    /// Accepts an offer on the participant's session, creating it if needed, and
    /// reconciles its receive slots. Returns the answer.
    pub(crate) fn apply_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) -> Result<String, Refusal> {
        if self.participants[&id].session.is_none() {
            let s = self.new_session(now);
            self.attach_session(id, s);
        }
        let Some(session) = self
            .participants
            .get_mut(&id)
            .and_then(|p| p.session.as_mut())
        else {
            return Err(Refusal::new(ErrorCode::SdpInvalid, "no session"));
        };
        let answer = session
            .accept_offer(sdp)
            .map_err(|e| Refusal::new(ErrorCode::SdpInvalid, format!("sdp_invalid: {e}")))?;
        self.reconcile_slots(id)?;
        self.drain(id);
        Ok(answer)
    }

    /// Creates a slot for every m-line the edge sends on, drops slots whose m-line went away.
    fn reconcile_slots(&mut self, id: ParticipantId) -> Result<(), Refusal> {
        let max_slots = self.cfg.limits.max_slots;
        let mut fresh: Vec<(u16, u32)> = (0..max_slots).map(|_| self.rng.random()).collect();
        let p = self.participants.get_mut(&id).expect("caller checked");
        let Some(session) = p.session.as_ref() else {
            return Ok(());
        };
        let meeting = p.admission.meeting.clone();
        let mids: Vec<(Mid, Kind)> = session_send_mids(session);
        let mut removed = Vec::new();
        p.slots.retain(|s| {
            let keep = mids.iter().any(|(m, _)| *m == s.mid);
            if !keep {
                removed.push((s.mid, s.track));
            }
            keep
        });
        for (mid, kind) in mids {
            if p.slots.iter().any(|s| s.mid == mid) {
                continue;
            }
            if p.slots.len() >= max_slots {
                return Err(Refusal::new(
                    ErrorCode::SdpInvalid,
                    format!("at most {max_slots} receive slots"),
                ));
            }
            let (seq, ts) = fresh.pop().unwrap_or((0, 0));
            p.slots.push(Slot::new(mid, kind, seq, ts));
        }
        for (mid, track) in removed {
            if let Some(tid) = track {
                self.detach_subscriber(&meeting, tid, id, mid);
            }
        }
        Ok(())
    }

    /// Brings the participant's published tracks in line with the offer's `publish` list.
    pub(crate) fn reconcile_publications(
        &mut self,
        now: Instant,
        id: ParticipantId,
        publish: &[Publication],
    ) -> Result<(), Refusal> {
        let p = &self.participants[&id];
        let meeting = p.admission.meeting.clone();
        let session = p.session.as_ref().expect("offer applied");
        let mut wanted = Vec::new();
        for publication in publish {
            let mid = Mid::from(publication.mid.as_str());
            let Some((kind, dir)) = session.media(mid) else {
                return Err(Refusal::new(
                    ErrorCode::SdpInvalid,
                    format!(
                        "publish names mid {:?}, which the offer does not have",
                        publication.mid
                    ),
                ));
            };
            if !matches!(dir, Direction::RecvOnly | Direction::SendRecv) {
                continue; // inactive now: not published
            }
            let kind = match kind {
                MediaKind::Audio => Kind::Audio,
                MediaKind::Video => Kind::Video,
            };
            let codec = session.negotiated_codec(mid);
            wanted.push((
                mid,
                kind,
                publication.clone(),
                session.recv_rids(mid),
                codec,
            ));
        }
        let stale: Vec<TrackId> = p
            .published
            .iter()
            .filter(|(m, _)| !wanted.iter().any(|(w, ..)| w == m))
            .map(|(_, t)| *t)
            .collect();
        for tid in stale {
            self.unpublish(now, &meeting, tid);
        }
        for (mid, kind, publication, rids, codec) in wanted {
            if self.participants[&id].published_track(mid).is_some() {
                continue;
            }
            let mut track = self.new_track(id, mid, kind, &publication, &rids);
            track.codec = codec.as_ref().map(|p| p.spec().codec);
            track.params = codec;
            self.publish(now, &meeting, track);
        }
        Ok(())
    }

    fn new_track(
        &mut self,
        owner: ParticipantId,
        mid: Mid,
        kind: Kind,
        publication: &Publication,
        rids: &[str0m::media::Rid],
    ) -> Track {
        let (w, h) = (
            publication.width.unwrap_or(0),
            publication.height.unwrap_or(0),
        );
        let layers = if rids.is_empty() || kind == Kind::Audio {
            vec![Layer::new(None, w, h)]
        } else {
            // Until keyframes tell the real sizes, assume the browser convention: layers in
            // the declared order at 1/4, 1/2 and full size.
            let n = rids.len().min(MAX_LAYERS);
            rids.iter()
                .take(n)
                .enumerate()
                .map(|(i, rid)| {
                    let div = 1 << (n - 1 - i);
                    Layer::new(Some(*rid), w / div, h / div)
                })
                .collect()
        };
        let id = loop {
            let id = TrackId(self.rng.random());
            if !self.meetings.values().any(|m| m.tracks.contains_key(&id)) {
                break id;
            }
        };
        Track {
            id,
            owner,
            upstream: Upstream::Local { mid },
            hops: Default::default(),
            kind,
            source: publication.source,
            codec: None,
            params: None,
            muted: false,
            layers,
            subscribers: Vec::new(),
            downstream: Vec::new(),
            demand: LayerSet::default(),
            announced: Vec::new(),
        }
    }

    fn subscribe(
        &mut self,
        now: Instant,
        id: ParticipantId,
        track_id: TrackId,
        mid: &str,
        max_width: Option<u32>,
        max_height: Option<u32>,
    ) -> Result<(), Refusal> {
        let p = &self.participants[&id];
        if !p.admission.can_subscribe {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "permission_denied: the token does not allow subscribing (canSubscribe)",
            ));
        }
        let meeting = p.admission.meeting.clone();
        let bad = |m: String| Err(Refusal::new(ErrorCode::BadSubscription, m));
        let Some(track) = self
            .meetings
            .get(&meeting)
            .and_then(|m| m.tracks.get(&track_id))
        else {
            return bad(format!("no track {track_id} in this meeting"));
        };
        if track.owner == id {
            return bad("you cannot subscribe to your own track".into());
        }
        if track.subscribers.len() >= MAX_SUBSCRIBERS_PER_TRACK {
            return bad("the track has too many subscribers on this edge".into());
        }
        let mid = Mid::from(mid);
        let Some(slot) = p.slots.iter().find(|s| s.mid == mid) else {
            return bad(format!(
                "{mid} is not a receive slot of yours (recvonly m-line)"
            ));
        };
        if slot.kind != track.kind {
            return bad(format!(
                "slot {mid} is {:?}, track {track_id} is {:?}",
                slot.kind, track.kind
            ));
        }
        if let Some(params) = &track.params {
            let session = p.session.as_ref().expect("slots come from a session");
            if session.send_pt(mid, params).is_none() {
                return bad(format!(
                    "slot {mid} did not negotiate {:?}, the track's codec",
                    params.spec().codec
                ));
            }
        }
        let previous = slot.track;
        if let Some(prev) = previous
            && prev != track_id
        {
            self.detach_subscriber(&meeting, prev, id, mid);
        }
        if previous != Some(track_id) {
            let t = self
                .meetings
                .get_mut(&meeting)
                .and_then(|m| m.tracks.get_mut(&track_id))
                .expect("checked above");
            t.subscribers.push((id, mid));
        }
        let p = self.participants.get_mut(&id).expect("checked");
        let slot = p.slot_mut(mid).expect("checked");
        if previous != Some(track_id) {
            slot.bind(Some(track_id));
        }
        slot.max_width = max_width;
        slot.max_height = max_height;
        p.alloc_dirty = true;
        self.allocate(now, id);
        Ok(())
    }

    fn update_subscription(
        &mut self,
        id: ParticipantId,
        mid: &str,
        max_width: Option<u32>,
        max_height: Option<u32>,
    ) -> Result<(), Refusal> {
        let p = self.participants.get_mut(&id).expect("caller checked");
        let Some(slot) = p.slot_mut(Mid::from(mid)) else {
            return Err(Refusal::new(
                ErrorCode::BadSubscription,
                format!("{mid} is not a receive slot of yours"),
            ));
        };
        slot.max_width = max_width;
        slot.max_height = max_height;
        p.alloc_dirty = true;
        Ok(())
    }

    fn unsubscribe(&mut self, id: ParticipantId, mid: &str) -> Result<(), Refusal> {
        let mid = Mid::from(mid);
        let p = self.participants.get_mut(&id).expect("caller checked");
        let meeting = p.admission.meeting.clone();
        let Some(slot) = p.slot_mut(mid) else {
            return Err(Refusal::new(
                ErrorCode::BadSubscription,
                format!("{mid} is not a receive slot of yours"),
            ));
        };
        let track = slot.track;
        slot.bind(None);
        if let Some(tid) = track {
            self.detach_subscriber(&meeting, tid, id, mid);
        }
        Ok(())
    }

    fn mute(
        &mut self,
        now: Instant,
        id: ParticipantId,
        track_id: TrackId,
        muted: bool,
    ) -> Result<(), Refusal> {
        let meeting = self.participants[&id].admission.meeting.clone();
        let track = self
            .meetings
            .get_mut(&meeting)
            .and_then(|m| m.tracks.get_mut(&track_id))
            .filter(|t| t.owner == id);
        let Some(track) = track else {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!("you do not publish a track {track_id}"),
            ));
        };
        if track.muted != muted {
            track.muted = muted;
            self.broadcast(
                &meeting,
                Some(id),
                &ServerMsg::TrackMuted { track_id, muted },
            );
            self.push_track_state(now, &meeting, track_id);
        }
        Ok(())
    }

    fn chat(&mut self, now: Instant, id: ParticipantId, text: String) -> Result<(), Refusal> {
        let max = self.cfg.limits.max_chat_len;
        let wall = self.wall_ms(now);
        let p = self.participants.get_mut(&id).expect("caller checked");
        if !p.admission.can_publish_data {
            return Err(Refusal::new(
                ErrorCode::PermissionDenied,
                "permission_denied: the token does not allow sending data (canPublishData)",
            ));
        }
        let len = text.chars().count();
        if len > max {
            return Err(Refusal::new(
                ErrorCode::ChatTooLong,
                format!("chat message has {len} characters, the limit is {max}"),
            ));
        }
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::BadMessage, "empty chat message"));
        }
        if !p.allow_chat(now) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many chat messages; wait a few seconds",
            ));
        }
        let (identity, name, meeting) = (
            p.info.identity.clone(),
            p.info.name.clone(),
            p.admission.meeting.clone(),
        );
        let history = self.cfg.limits.chat_history;
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return Ok(());
        };
        let message = ChatMessage {
            id: m.next_chat_id,
            participant_id: id,
            identity,
            name,
            text,
            ts_ms: wall,
        };
        m.next_chat_id += 1;
        if m.chat.len() >= history {
            m.chat.pop_front();
        }
        m.chat.push_back(message.clone());
        self.broadcast(
            &meeting,
            None,
            &ServerMsg::Chat {
                message: message.clone(),
            },
        );
        self.emit_event_to(&meeting, &RelayEvent::Chat { message }, None);
        Ok(())
    }
}

/// The m-lines on which the edge sends (the client's receive slots), with their kind.
fn session_send_mids(session: &crate::session::Session) -> Vec<(Mid, Kind)> {
    session
        .mids()
        .into_iter()
        .filter_map(|mid| {
            let (kind, dir) = session.media(mid)?;
            matches!(dir, Direction::SendOnly | Direction::SendRecv).then_some((
                mid,
                match kind {
                    MediaKind::Audio => Kind::Audio,
                    MediaKind::Video => Kind::Video,
                },
            ))
        })
        .collect()
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn source_for(kind: Kind) -> Source {
    match kind {
        Kind::Audio => Source::Microphone,
        Kind::Video => Source::Camera,
    }
}
