//! Meetings and the participants in them, as one media worker holds them.
//!
//! A meeting lives on exactly one worker of an edge (its id hashes to the worker), so
//! everything here is owned, single-threaded state: no locks on the media path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use relay_proto::{MeetingId, ParticipantId, TrackId};
use str0m::media::Mid;

use crate::hash::DetMap;
use crate::router::{Slot, Track};
use crate::session::Session;
use crate::signal::{ChatMessage, ParticipantInfo, Quality};
use crate::speaker::LevelMeter;

/// Most chat messages a participant may send in [`CHAT_WINDOW`].
pub const CHAT_BURST: usize = 10;
/// The window for [`CHAT_BURST`].
pub const CHAT_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// Most network addresses remembered per participant (ICE candidates that reached us).
pub const MAX_ADDRS: usize = 8;

/// What the shell admitted a participant as, after checking its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub meeting: MeetingId,
    pub identity: String,
    pub name: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// Hidden participants (WHEP viewers, recorders) are not announced to the meeting.
    pub hidden: bool,
}

/// How a participant talks to the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The meeting client: signaling WebSocket plus one PeerConnection.
    Meeting,
    /// A WHIP publisher (broadcast ingest).
    Whip,
    /// A WHEP viewer: two slots that follow the meeting's featured tracks.
    Whep,
}

/// One participant.
#[derive(Debug)]
pub struct Participant {
    pub id: ParticipantId,
    pub role: Role,
    pub admission: Admission,
    pub info: ParticipantInfo,
    pub resume_secret: String,
    /// When the signaling socket went away (meeting clients only); the participant is
    /// removed when this is older than the resume grace period.
    pub signal_lost_at: Option<Instant>,
    pub session: Option<Session>,
    /// When the session's ICE went down; removed after [`crate::worker::ICE_DOWN_LIMIT`].
    pub ice_down_at: Option<Instant>,
    /// The session's next str0m timeout (its entry in the worker's timer set).
    pub timeout: Option<Instant>,
    /// Addresses (with their transport) in the worker's demux table that point here.
    pub addrs: Vec<(str0m::net::Protocol, SocketAddr)>,
    /// Tracks this participant publishes, by its m-line.
    pub published: Vec<(Mid, TrackId)>,
    /// Receive slots (the client's recvonly m-lines).
    pub slots: Vec<Slot>,
    /// Downlink estimate from TWCC (or REMB), bits per second.
    pub downlink_bps: Option<u64>,
    /// A TWCC estimate has arrived (REMB is then ignored).
    pub twcc: bool,
    /// Fraction of packets the client reports lost (0..1).
    pub loss: f32,
    pub quality: Option<Quality>,
    /// Layer choice must be recomputed.
    pub alloc_dirty: bool,
    pub chat_times: VecDeque<Instant>,
}

impl Participant {
    pub fn slot_mut(&mut self, mid: Mid) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.mid == mid)
    }

    pub fn published_track(&self, mid: Mid) -> Option<TrackId> {
        self.published
            .iter()
            .find(|(m, _)| *m == mid)
            .map(|(_, t)| *t)
    }

    /// Whether a new chat message fits the rate limit; records it if so.
    pub fn allow_chat(&mut self, now: Instant) -> bool {
        while self
            .chat_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= CHAT_WINDOW)
        {
            self.chat_times.pop_front();
        }
        if self.chat_times.len() >= CHAT_BURST {
            return false;
        }
        self.chat_times.push_back(now);
        true
    }
}

/// One meeting on this worker: its local participants, and whatever the cascade brings
/// from other edges (remote tracks live in `tracks` beside local ones).
#[derive(Debug)]
pub struct Meeting {
    pub id: MeetingId,
    /// In join order.
    pub participants: Vec<ParticipantId>,
    pub tracks: DetMap<TrackId, Track>,
    /// Audio levels for active-speaker ranking, by audio track.
    pub levels: DetMap<TrackId, LevelMeter>,
    pub chat: VecDeque<ChatMessage>,
    pub next_chat_id: u64,
    /// The speaker order last announced.
    pub speakers: Vec<ParticipantId>,
    /// Its place in the cascade: tree neighbours, remote participants.
    pub links: crate::cascade::Links,
}

impl Meeting {
    pub fn new(id: MeetingId) -> Self {
        Meeting {
            id,
            participants: Vec::new(),
            tracks: DetMap::default(),
            levels: DetMap::default(),
            chat: VecDeque::new(),
            next_chat_id: 1,
            speakers: Vec::new(),
            links: Default::default(),
        }
    }
}
