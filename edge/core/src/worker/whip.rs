//! WHIP publishers and WHEP viewers as participants.
//!
//! A WHIP publisher is a participant whose every `recvonly` (from our side) m-line is a
//! published track: one camera, one microphone. A WHEP viewer is a hidden participant with
//! one video and one audio slot that the worker keeps bound to the meeting's featured
//! tracks (`Worker::refresh_whep`) — when the broadcaster reconnects or a screen share
//! starts, the viewer's slots are re-bound without renegotiation, which WHEP forbids.
//!
//! The HTTP details (status codes, ETags, CORS) live in the shell; errors here carry the
//! status class they map to.

use std::time::Instant;

use relay_proto::{ParticipantId, TrackId};
use str0m::IceCreds;
use str0m::media::{Direction, MediaKind};

use super::Worker;
use super::signaling::{Refusal, source_for};
use crate::meeting::{Admission, Role};
use crate::signal::{ErrorCode, Kind, LeaveReason, Publication};

/// What kind of failure an API call had; the shell maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 400: the SDP or fragment is malformed.
    BadRequest,
    /// 403: the token does not allow this.
    Forbidden,
    /// 404: no such resource.
    NotFound,
    /// 422: understood but unsupported (e.g. no media to publish).
    Unprocessable,
    /// 503: the meeting is full or the edge is out of capacity.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
}

impl ApiError {
    fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let kind = match r.code {
            ErrorCode::MeetingFull | ErrorCode::Overloaded => ApiErrorKind::Unavailable,
            ErrorCode::PermissionDenied => ApiErrorKind::Forbidden,
            ErrorCode::SdpInvalid | ErrorCode::BadMessage => ApiErrorKind::BadRequest,
            _ => ApiErrorKind::Unprocessable,
        };
        ApiError::new(kind, r.message)
    }
}

/// An ICE restart's answer: our new credentials, for the sdpfrag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceRestart {
    pub ufrag: String,
    pub pwd: String,
}

impl Worker {
    /// Accepts a WHIP offer: a new publisher participant whose m-lines are all published.
    pub fn whip_publish(
        &mut self,
        now: Instant,
        admission: Admission,
        offer: &str,
    ) -> Result<(ParticipantId, String), ApiError> {
        if !admission.can_publish {
            return Err(ApiError::new(
                ApiErrorKind::Forbidden,
                "permission_denied: the token does not allow publishing (canPublish)",
            ));
        }
        let id = self.join(now, admission, Role::Whip)?;
        let result = self.whip_accept(now, id, offer);
        if result.is_err() {
            self.remove(now, id, LeaveReason::Left);
        }
        self.settle(now);
        result.map(|answer| (id, answer))
    }

    fn whip_accept(
        &mut self,
        now: Instant,
        id: ParticipantId,
        offer: &str,
    ) -> Result<String, ApiError> {
        let answer = self.apply_offer(now, id, offer)?;
        let session = self.participants[&id].session.as_ref().expect("applied");
        let publish: Vec<Publication> = session
            .mids()
            .into_iter()
            .filter_map(|mid| {
                let (kind, dir) = session.media(mid)?;
                matches!(dir, Direction::RecvOnly | Direction::SendRecv).then(|| Publication {
                    mid: mid.to_string(),
                    source: source_for(match kind {
                        MediaKind::Audio => Kind::Audio,
                        MediaKind::Video => Kind::Video,
                    }),
                    width: None,
                    height: None,
                })
            })
            .collect();
        if publish.is_empty() {
            return Err(ApiError::new(
                ApiErrorKind::Unprocessable,
                "the offer has no sendonly audio or video to ingest",
            ));
        }
        self.reconcile_publications(now, id, &publish)?;
        Ok(answer)
    }

    /// Accepts a WHEP offer: a hidden viewer whose slots follow the featured tracks.
    pub fn whep_subscribe(
        &mut self,
        now: Instant,
        mut admission: Admission,
        offer: &str,
    ) -> Result<(ParticipantId, String), ApiError> {
        if !admission.can_subscribe {
            return Err(ApiError::new(
                ApiErrorKind::Forbidden,
                "permission_denied: the token does not allow subscribing (canSubscribe)",
            ));
        }
        admission.hidden = true;
        let meeting = admission.meeting.clone();
        let id = self.join(now, admission, Role::Whep)?;
        let result = self.apply_offer(now, id, offer).map_err(ApiError::from);
        match &result {
            Ok(_) if self.participants[&id].slots.is_empty() => {
                self.remove(now, id, LeaveReason::Left);
                return Err(ApiError::new(
                    ApiErrorKind::Unprocessable,
                    "the offer has no recvonly audio or video to play",
                ));
            }
            Ok(_) => self.refresh_whep(&meeting),
            Err(_) => self.remove(now, id, LeaveReason::Left),
        }
        self.settle(now);
        result.map(|answer| (id, answer))
    }

    /// Applies a trickle-ICE or ICE-restart PATCH body (`application/trickle-ice-sdpfrag`).
    /// Returns the new credentials on a restart (new `a=ice-ufrag`/`a=ice-pwd` lines).
    pub fn ice_patch(
        &mut self,
        now: Instant,
        id: ParticipantId,
        fragment: &str,
    ) -> Result<Option<IceRestart>, ApiError> {
        if !self.participants.contains_key(&id) {
            return Err(ApiError::new(ApiErrorKind::NotFound, "no such session"));
        }
        let value = |key: &str| {
            fragment
                .lines()
                .find_map(|l| l.trim().strip_prefix(key).map(str::to_owned))
        };
        let (ufrag, pwd) = (value("a=ice-ufrag:"), value("a=ice-pwd:"));
        let mut restart = None;
        if let (Some(ufrag), Some(pass)) = (ufrag, pwd) {
            if ufrag.is_empty() || pass.is_empty() || ufrag.len() > 256 || pass.len() > 256 {
                return Err(ApiError::new(
                    ApiErrorKind::BadRequest,
                    "empty or oversized ICE credentials",
                ));
            }
            let ours = loop {
                let c = crate::session::ice_creds(&mut self.rng);
                if !self.by_ufrag.contains_key(&c.ufrag) {
                    break c;
                }
            };
            let p = self.participants.get_mut(&id).expect("checked");
            let Some(s) = p.session.as_mut() else {
                return Err(ApiError::new(ApiErrorKind::NotFound, "no media session"));
            };
            let old = s.ufrag().to_owned();
            s.set_ice_credentials(ours.clone(), IceCreds { ufrag, pass })
                .map_err(|e| ApiError::new(ApiErrorKind::Unprocessable, e.to_string()))?;
            self.by_ufrag.remove(&old);
            self.by_ufrag.insert(ours.ufrag.clone(), id);
            restart = Some(IceRestart {
                ufrag: ours.ufrag,
                pwd: ours.pass,
            });
        }
        let p = self.participants.get_mut(&id).expect("checked");
        if let Some(s) = p.session.as_mut() {
            for line in fragment
                .lines()
                .filter(|l| l.trim().starts_with("a=candidate"))
            {
                s.add_remote_candidate(line)
                    .map_err(|e| ApiError::new(ApiErrorKind::Unprocessable, e.to_string()))?;
            }
        }
        self.drain(id);
        self.settle(now);
        Ok(restart)
    }

    /// Ends a WHIP/WHEP resource (HTTP DELETE).
    pub fn delete(&mut self, now: Instant, id: ParticipantId) -> Result<(), ApiError> {
        if !self.participants.contains_key(&id) {
            return Err(ApiError::new(ApiErrorKind::NotFound, "no such session"));
        }
        self.remove(now, id, LeaveReason::Left);
        self.settle(now);
        Ok(())
    }

    /// Binds a WHEP viewer's video and audio slots to the given tracks.
    pub(super) fn bind_whep(
        &mut self,
        viewer: ParticipantId,
        video: Option<TrackId>,
        audio: Option<TrackId>,
    ) {
        let Some(p) = self.participants.get_mut(&viewer) else {
            return;
        };
        let meeting = p.admission.meeting.clone();
        let mut changes = Vec::new();
        for kind in [Kind::Video, Kind::Audio] {
            let target = if kind == Kind::Video { video } else { audio };
            if let Some(slot) = p.slots.iter_mut().find(|s| s.kind == kind)
                && slot.track != target
            {
                changes.push((slot.mid, slot.track, target));
                slot.bind(target);
            }
        }
        p.alloc_dirty = true;
        for (mid, old, new) in changes {
            if let Some(old) = old {
                self.detach_subscriber(&meeting, old, viewer, mid);
            }
            if let Some(t) = new.and_then(|t| self.meetings.get_mut(&meeting)?.tracks.get_mut(&t)) {
                t.subscribers.push((viewer, mid));
            }
        }
    }
}
