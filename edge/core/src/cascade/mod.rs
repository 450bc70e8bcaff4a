//! The cascade: how one meeting spans several edges.
//!
//! The origin gives every meeting a tree over the edges that host its participants (plus relay
//! edges where fan-out needs them) and tells each edge its neighbours in that tree with a
//! `TreeUpdate` carrying an epoch. An edge never learns the whole tree; it only needs its
//! neighbours, because everything travels by flooding along tree links:
//!
//! - **Announcements.** A track published here is announced to every neighbour with a hop
//!   chain `[here]`; a neighbour records where it came from (its *upstream*), tells its own
//!   clients, appends itself and passes it on to its other neighbours. A track therefore
//!   arrives at every edge exactly once, along the tree path from its publisher, and an
//!   announcement whose hop chain already names us is a loop (a transient one, while two
//!   edges hold different epochs) and is dropped.
//! - **Demand flows back.** Each edge subscribes upstream to exactly the simulcast layers that
//!   its local subscribers and its downstream neighbours want (`Subscribe` carries the whole
//!   set, so it is idempotent). Upstream sends a layer to a neighbour only while it is in that
//!   neighbour's set. A track crosses each link at most once, whatever the number of
//!   subscribers behind it, and carries only the layers that the subtree needs.
//! - **Media** rides QUIC datagrams: flow id + layer + RTP. Flow ids are chosen by the sender
//!   of a link direction; their high 32 bits are the meeting hash, so the receiving edge's
//!   shell hands a datagram to the right worker without parsing more.
//! - **Repair per hop.** The sender keeps recent datagrams per (flow, layer)
//!   ([`rtx::RetransmitBuffer`]); the receiver notices holes and NACKs them on the control
//!   stream ([`rtx::Gaps`]). Keyframe requests go upstream through the same per-layer
//!   [`crate::router::keyframe::KeyframeGate`] at every hop, so a hundred subscribers on ten
//!   edges cost the publisher one keyframe.
//! - **Meeting events** (participants joining and leaving, chat) are flooded the same way
//!   with a hop chain and an (origin edge, sequence) pair that every edge remembers, so each
//!   reaches each edge exactly once even while the tree is being rebuilt.
//!
//! When a link leaves the tree, what came through it is not torn down at once: remote tracks
//! and participants wait [`ORPHAN_GRACE`] for the new tree to bring them back along another
//! path (a partition re-route), so subscribers keep their slots and see only a short gap.
//! The worker (`crate::worker`) owns this state per meeting and does the I/O-free work; the
//! shell carries the messages over QUIC.

pub mod desc;
pub mod rtx;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use relay_proto::{EdgeId, FlowId, LayerSet, ParticipantId, TreeEpoch};
use serde::{Deserialize, Serialize};

use crate::hash::DetMap;
use crate::signal::{ChatMessage, LeaveReason, ParticipantInfo};
use rtx::{Gaps, RetransmitBuffer};

/// Most tree neighbours one edge has in one meeting.
pub const MAX_NEIGHBOURS: usize = 64;
/// Most remote tracks one meeting may bring to an edge.
pub const MAX_REMOTE_TRACKS: usize = 1024;
/// Most remote participants one meeting may bring to an edge.
pub const MAX_REMOTE_PARTICIPANTS: usize = 10_000;
/// How long what came over a vanished link waits for another route before it is dropped.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3);
/// Meeting events remembered for de-duplication.
pub const MAX_SEEN_EVENTS: usize = 4096;

/// Where a track's packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A participant on this worker, on this m-line of its session.
    Local { mid: str0m::media::Mid },
    /// A tree neighbour, on this flow. `lost_at` is set while the route is gone (our link to
    /// `peer` died, or `peer` lost its own upstream) and the track waits for another one.
    Remote {
        peer: EdgeId,
        flow: FlowId,
        lost_at: Option<Instant>,
        /// A second neighbour that announced the same track while the tree was changing:
        /// taken over at once if the current route is lost.
        standby: Option<Route>,
    },
}

/// A way a remote track can reach this edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub peer: EdgeId,
    pub flow: FlowId,
    pub hops: relay_proto::Hops,
}

/// A neighbour this edge relays a track to.
#[derive(Debug)]
pub struct Downstream {
    pub peer: EdgeId,
    /// Our flow id for the track on this link.
    pub flow: FlowId,
    /// The layers the neighbour subscribed to.
    pub layers: LayerSet,
    /// Recent datagrams per layer, for the neighbour's NACKs.
    pub rtx: Vec<RetransmitBuffer>,
}

impl Downstream {
    pub fn new(peer: EdgeId, flow: FlowId, layers: usize) -> Self {
        Downstream {
            peer,
            flow,
            layers: LayerSet::default(),
            rtx: (0..layers).map(|_| RetransmitBuffer::default()).collect(),
        }
    }
}

/// What a remote layer's receiver keeps: sequence extension and holes.
#[derive(Debug, Default)]
pub struct RelayRx {
    pub gaps: Gaps,
}

/// A participant on another edge.
#[derive(Debug, Clone)]
pub struct RemoteParticipant {
    pub info: ParticipantInfo,
    /// The neighbour it was learned from.
    pub via: EdgeId,
    /// Set while `via` is gone from the tree.
    pub lost_at: Option<Instant>,
}

/// A meeting event as it travels between edges (the JSON body of a relay `MeetingEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayEvent {
    Joined {
        participant: ParticipantInfo,
    },
    Left {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    Chat {
        message: ChatMessage,
    },
}

/// One meeting's place in the cascade on this edge.
#[derive(Debug, Default)]
pub struct Links {
    /// The newest tree epoch applied.
    pub epoch: Option<TreeEpoch>,
    /// Our neighbours in the meeting's tree.
    pub neighbours: Vec<EdgeId>,
    /// Participants on other edges.
    pub remote: DetMap<ParticipantId, RemoteParticipant>,
    /// Events already seen, by (origin edge, sequence).
    seen: HashSet<(EdgeId, u64)>,
    seen_order: VecDeque<(EdgeId, u64)>,
    /// Sequence of the next event this edge originates.
    pub next_event_seq: u64,
    /// (participants, publishers) last reported to the origin.
    pub presence: Option<(u32, u32)>,
}

impl Links {
    pub fn is_neighbour(&self, edge: &EdgeId) -> bool {
        self.neighbours.contains(edge)
    }

    /// Records an event; false if it was seen before.
    pub fn first_sighting(&mut self, origin: &EdgeId, seq: u64) -> bool {
        let key = (origin.clone(), seq);
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.seen_order.push_back(key);
        while self.seen_order.len() > MAX_SEEN_EVENTS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Whether the meeting still needs this edge's state: it is in a tree.
    pub fn in_tree(&self) -> bool {
        !self.neighbours.is_empty()
    }
}

/// Whether `epoch` is newer than what was applied.
pub fn is_newer(applied: Option<TreeEpoch>, epoch: TreeEpoch) -> bool {
    applied.is_none_or(|a| epoch > a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(s: &str) -> EdgeId {
        s.parse().unwrap()
    }

    #[test]
    fn events_are_seen_once_and_the_memory_is_bounded() {
        let mut l = Links::default();
        assert!(l.first_sighting(&edge("a"), 1));
        assert!(!l.first_sighting(&edge("a"), 1));
        assert!(l.first_sighting(&edge("b"), 1));
        for i in 0..MAX_SEEN_EVENTS as u64 * 2 {
            l.first_sighting(&edge("c"), i);
        }
        assert!(l.seen.len() <= MAX_SEEN_EVENTS);
        // The oldest were forgotten; a very late duplicate would pass, which the receiver's
        // idempotent handling (a known participant, a chat id) absorbs.
        assert!(l.first_sighting(&edge("a"), 1));
    }

    #[test]
    fn relay_events_round_trip_as_json() {
        let e = RelayEvent::Left {
            participant_id: ParticipantId(7),
            reason: LeaveReason::Left,
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains("\"type\":\"left\""), "{s}");
        assert_eq!(serde_json::from_str::<RelayEvent>(&s).unwrap(), e);
    }
}
