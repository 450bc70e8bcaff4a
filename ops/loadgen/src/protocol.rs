//! The meeting signaling messages (`docs/signaling.md`), as the client sees them.
//!
//! The client serializes [`ClientMsg`] and parses [`ServerMsg`]. Parsing is lenient in the
//! ways a long-lived client needs: unknown fields are ignored, and an unknown `type` parses as
//! [`ServerMsg::Unknown`] instead of failing, so a newer edge cannot break an older load test.

use relay_proto::{MeetingId, ParticipantId, TrackId};
use serde::{Deserialize, Serialize};

/// A message to the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter the meeting named by the token.
    Join {
        /// The access token.
        token: String,
        /// Display name, overriding the token's `name` claim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Re-attach a new socket to an existing participant.
    Resume {
        /// The access token.
        token: String,
        /// Who we were.
        participant_id: ParticipantId,
        /// From `joined`.
        resume_secret: String,
    },
    /// Negotiate: an SDP offer plus what we send on.
    Offer {
        /// The SDP offer.
        sdp: String,
        /// Every m-line we send on.
        publish: Vec<Publication>,
    },
    /// Show `track_id` in recv slot `mid`.
    Subscribe {
        /// The remote track.
        track_id: TrackId,
        /// Our recv slot.
        mid: String,
        /// Largest width wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_width: Option<u32>,
        /// Largest height wanted; 0 pauses video.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_height: Option<u32>,
    },
    /// The slot's tile changed size.
    UpdateSubscription {
        /// Our recv slot.
        mid: String,
        /// Largest width wanted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_width: Option<u32>,
        /// Largest height wanted; 0 pauses video.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_height: Option<u32>,
    },
    /// Free slot `mid`.
    Unsubscribe {
        /// Our recv slot.
        mid: String,
    },
    /// Our own track was muted or unmuted (UI state).
    Mute {
        /// Our published track.
        track_id: TrackId,
        /// The new state.
        muted: bool,
    },
    /// A chat message to everyone.
    Chat {
        /// At most 2,000 characters.
        text: String,
    },
    /// Keep-alive, answered by `pong`.
    Ping {
        /// Echoed back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<f64>,
    },
    /// Leave the meeting.
    Leave {},
}

/// Where a published track comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Audio.
    Microphone,
    /// Video.
    Camera,
    /// Screen share.
    Screen,
}

/// One m-line the client sends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// The m-line.
    pub mid: String,
    /// What it carries.
    pub source: Source,
    /// Capture width (a hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Capture height (a hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A message from the edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The join succeeded.
    Joined(Box<Snapshot>),
    /// The resume succeeded (a fresh snapshot).
    Resumed(Box<Snapshot>),
    /// The answer to our last offer.
    Answer {
        /// The SDP answer.
        sdp: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left.
    ParticipantLeft {
        /// Who.
        participant_id: ParticipantId,
        /// `left`, `timeout`, `kicked`, `replaced` (kept as text so new reasons parse).
        reason: String,
    },
    /// A new track we may subscribe to.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track is gone.
    TrackUnpublished {
        /// Which.
        track_id: TrackId,
    },
    /// A track was muted or unmuted.
    TrackMuted {
        /// Which.
        track_id: TrackId,
        /// The new state.
        muted: bool,
    },
    /// The loudest participants, loudest first.
    ActiveSpeakers {
        /// Speakers and levels (0..1).
        speakers: Vec<Speaker>,
    },
    /// The edge switched the layer it sends into slot `mid`.
    LayerChanged {
        /// Our recv slot.
        mid: String,
        /// The layer now sent (absent for non-simulcast tracks).
        #[serde(default)]
        rid: Option<String>,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// Our downlink quality.
    ConnectionQuality {
        /// `excellent`, `good` or `poor`.
        quality: String,
        /// The edge's downlink estimate.
        downlink_bps: u64,
    },
    /// A chat message (ours too).
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// Answer to `ping`.
    Pong {
        /// Echoed.
        #[serde(default)]
        ts: Option<f64>,
    },
    /// Something went wrong; `fatal` errors close the socket.
    Error {
        /// Stable code, e.g. `bad_subscription`.
        code: String,
        /// Human-readable detail.
        message: String,
        /// Whether the edge closes the socket.
        #[serde(default)]
        fatal: bool,
    },
    /// A message type this client does not know.
    #[serde(other)]
    Unknown,
}

impl ServerMsg {
    /// The wire `type` of this message, for logs and error texts.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMsg::Joined(_) => "joined",
            ServerMsg::Resumed(_) => "resumed",
            ServerMsg::Answer { .. } => "answer",
            ServerMsg::ParticipantJoined { .. } => "participant_joined",
            ServerMsg::ParticipantLeft { .. } => "participant_left",
            ServerMsg::TrackPublished { .. } => "track_published",
            ServerMsg::TrackUnpublished { .. } => "track_unpublished",
            ServerMsg::TrackMuted { .. } => "track_muted",
            ServerMsg::ActiveSpeakers { .. } => "active_speakers",
            ServerMsg::LayerChanged { .. } => "layer_changed",
            ServerMsg::ConnectionQuality { .. } => "connection_quality",
            ServerMsg::Chat { .. } => "chat",
            ServerMsg::Pong { .. } => "pong",
            ServerMsg::Error { .. } => "error",
            ServerMsg::Unknown => "unknown",
        }
    }
}

/// The meeting state sent with `joined`/`resumed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Us.
    pub participant: ParticipantInfo,
    /// For `resume`.
    pub resume_secret: String,
    /// The meeting.
    pub meeting: MeetingInfo,
    /// Everyone else.
    #[serde(default)]
    pub participants: Vec<ParticipantInfo>,
    /// Everyone else's tracks.
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    /// Chat history.
    #[serde(default)]
    pub chat: Vec<ChatMessage>,
    /// STUN/TURN servers.
    #[serde(default)]
    pub ice_servers: Vec<serde_json::Value>,
    /// Meeting limits.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Only in `resumed`: the slots still filled.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// The meeting object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    /// The meeting id (the token's `video.room`).
    pub id: MeetingId,
}

/// A participant object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Minted by the edge.
    pub id: ParticipantId,
    /// From the token.
    pub identity: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Join time, Unix ms.
    #[serde(default)]
    pub joined_at_ms: u64,
    /// Whether the token allows publishing.
    #[serde(default)]
    pub can_publish: bool,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// A track object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Minted by the edge.
    pub id: TrackId,
    /// The publisher.
    pub participant_id: ParticipantId,
    /// Audio or video.
    pub kind: Kind,
    /// Microphone, camera or screen.
    pub source: Source,
    /// Muted (UI state).
    #[serde(default)]
    pub muted: bool,
    /// Whether it has simulcast layers.
    #[serde(default)]
    pub simulcast: bool,
    /// Its layers, lowest first.
    #[serde(default)]
    pub layers: Vec<LayerInfo>,
    /// E.g. `VP8`, `opus`.
    #[serde(default)]
    pub codec: String,
}

/// One layer of a track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The rid (absent without simulcast).
    #[serde(default)]
    pub rid: Option<String>,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A slot the edge fills, in `resumed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// Our recv slot.
    pub mid: String,
    /// The track in it.
    pub track_id: TrackId,
}

/// One entry of `active_speakers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    /// Who.
    pub participant_id: ParticipantId,
    /// 0..1.
    pub level: f32,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Confirms delivery of our own messages.
    pub id: u64,
    /// Sender.
    pub participant_id: ParticipantId,
    /// Sender identity.
    #[serde(default)]
    pub identity: String,
    /// Sender name.
    #[serde(default)]
    pub name: String,
    /// The text.
    pub text: String,
    /// Unix ms.
    #[serde(default)]
    pub ts_ms: u64,
}

/// Meeting limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Participants per meeting.
    pub max_participants: usize,
    /// Chat characters.
    pub max_chat_len: usize,
    /// WebSocket frame bytes.
    pub max_message_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_serialize_as_documented() {
        let j = serde_json::to_string(&ClientMsg::Join {
            token: "t".into(),
            name: None,
        })
        .unwrap();
        assert_eq!(j, r#"{"type":"join","token":"t"}"#);
        let j = serde_json::to_string(&ClientMsg::Offer {
            sdp: "v=0".into(),
            publish: vec![Publication {
                mid: "1".into(),
                source: Source::Camera,
                width: Some(1280),
                height: Some(720),
            }],
        })
        .unwrap();
        assert_eq!(
            j,
            r#"{"type":"offer","sdp":"v=0","publish":[{"mid":"1","source":"camera","width":1280,"height":720}]}"#
        );
        let j = serde_json::to_string(&ClientMsg::UpdateSubscription {
            mid: "3".into(),
            max_width: None,
            max_height: Some(0),
        })
        .unwrap();
        assert_eq!(
            j,
            r#"{"type":"update_subscription","mid":"3","max_height":0}"#
        );
        assert_eq!(
            serde_json::to_string(&ClientMsg::Leave {}).unwrap(),
            r#"{"type":"leave"}"#
        );
    }

    #[test]
    fn server_messages_parse() {
        let joined = r#"{"type":"joined","participant":{"id":"p_00000000000000aa","identity":"alice",
            "name":"Alice","joined_at_ms":1,"can_publish":true},"resume_secret":"s",
            "meeting":{"id":"room-1"},"participants":[],"tracks":[{"id":"t_00000000000000bb",
            "participant_id":"p_00000000000000cc","kind":"video","source":"camera","muted":false,
            "simulcast":true,"layers":[{"rid":"q","width":320,"height":180}],"codec":"VP8"}],
            "chat":[],"ice_servers":[],"limits":{"max_participants":100,"max_chat_len":2000,
            "max_message_bytes":65536}}"#;
        let ServerMsg::Joined(s) = serde_json::from_str(joined).unwrap() else {
            panic!("not joined");
        };
        assert_eq!(s.participant.identity, "alice");
        assert_eq!(s.tracks[0].layers[0].rid.as_deref(), Some("q"));

        let m: ServerMsg = serde_json::from_str(
            r#"{"type":"layer_changed","mid":"3","rid":"f","width":1280,"height":720}"#,
        )
        .unwrap();
        assert_eq!(m.kind(), "layer_changed");
        let m: ServerMsg = serde_json::from_str(
            r#"{"type":"error","code":"bad_subscription","message":"no such track","fatal":false}"#,
        )
        .unwrap();
        assert!(matches!(m, ServerMsg::Error { fatal: false, .. }));
    }

    #[test]
    fn unknown_types_and_fields_do_not_break_parsing() {
        let m: ServerMsg = serde_json::from_str(r#"{"type":"hologram","depth":3}"#).unwrap();
        assert_eq!(m, ServerMsg::Unknown);
        let m: ServerMsg =
            serde_json::from_str(r#"{"type":"pong","ts":5.0,"extra":true}"#).unwrap();
        assert_eq!(m, ServerMsg::Pong { ts: Some(5.0) });
    }
}
