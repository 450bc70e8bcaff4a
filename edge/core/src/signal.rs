//! The meeting signaling messages, exactly as `docs/signaling.md` describes them.
//!
//! The shell parses [`ClientMsg`] from WebSocket text frames and serializes [`ServerMsg`]
//! back; the core never sees JSON text. Parsing is strict about types and lenient about
//! unknown fields, so newer clients can add fields without breaking older edges.

use relay_proto::{MeetingId, ParticipantId, TrackId};
use serde::{Deserialize, Serialize};

/// Largest WebSocket text frame accepted, in bytes. Larger frames close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A message from the meeting client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Join {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Resume {
        token: String,
        participant_id: ParticipantId,
        resume_secret: String,
    },
    Offer {
        sdp: String,
        #[serde(default)]
        publish: Vec<Publication>,
    },
    Subscribe {
        track_id: TrackId,
        mid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_height: Option<u32>,
    },
    UpdateSubscription {
        mid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_height: Option<u32>,
    },
    Unsubscribe {
        mid: String,
    },
    Mute {
        track_id: TrackId,
        muted: bool,
    },
    Chat {
        text: String,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<f64>,
    },
    Leave {},
}

impl ClientMsg {
    /// Parses one text frame. The error distinguishes an unknown `type` (the socket stays
    /// useful) from a malformed message.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        match serde_json::from_str::<ClientMsg>(text) {
            Ok(m) => Ok(m),
            Err(e) => {
                #[derive(Deserialize)]
                struct Tag {
                    #[serde(rename = "type")]
                    ty: String,
                }
                match serde_json::from_str::<Tag>(text) {
                    Ok(t) if !KNOWN_TYPES.contains(&t.ty.as_str()) => {
                        Err(ParseError::UnknownType(t.ty.chars().take(64).collect()))
                    }
                    _ => Err(ParseError::Malformed(e.to_string())),
                }
            }
        }
    }
}

const KNOWN_TYPES: &[&str] = &[
    "join",
    "resume",
    "offer",
    "subscribe",
    "update_subscription",
    "unsubscribe",
    "mute",
    "chat",
    "ping",
    "leave",
];

/// Why a client frame could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl ParseError {
    pub fn to_msg(&self) -> ServerMsg {
        let code = match self {
            ParseError::UnknownType(_) => ErrorCode::UnknownMessageType,
            ParseError::Malformed(_) => ErrorCode::BadMessage,
        };
        ServerMsg::error(code, self.to_string())
    }
}

/// Where a published track comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Microphone,
    Camera,
    Screen,
}

/// One m-line the client sends on, declared with each offer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Publication {
    pub mid: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A message to the meeting client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Joined(Box<Snapshot>),
    Resumed(Box<Snapshot>),
    Answer {
        sdp: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track_id: TrackId,
    },
    TrackMuted {
        track_id: TrackId,
        muted: bool,
    },
    ActiveSpeakers {
        speakers: Vec<Speaker>,
    },
    LayerChanged {
        mid: String,
        rid: Option<String>,
        width: u32,
        height: u32,
    },
    ConnectionQuality {
        quality: Quality,
        downlink_bps: u64,
    },
    Chat {
        message: ChatMessage,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        ts: Option<f64>,
    },
    /// The meeting is hosted by another edge of this region: join there, with the same token.
    /// The edge closes the socket after sending it.
    Redirect {
        edge_id: String,
        /// The edge's HTTP base URL (its web page, WHIP/WHEP).
        url: String,
        /// Its signaling WebSocket.
        ws_url: String,
    },
    /// This edge is going away (an operator drains it): join the meeting again at `ws_url`
    /// with the same token, then `leave` here. Sent mid-session, at most once per target; the
    /// socket and the media stay up meanwhile, so the client can switch without a gap.
    Migrate {
        edge_id: String,
        /// The new edge's HTTP base URL (its web page, WHIP/WHEP).
        url: String,
        /// Its signaling WebSocket.
        ws_url: String,
        reason: MigrateReason,
    },
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    /// A message type this build does not know (clients parse leniently; the edge never
    /// sends it).
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
            ServerMsg::Redirect { .. } => "redirect",
            ServerMsg::Migrate { .. } => "migrate",
            ServerMsg::Error { .. } => "error",
            ServerMsg::Unknown => "unknown",
        }
    }

    /// A non-fatal error.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            fatal: code.is_fatal(),
        }
    }
}

/// The state a client needs after `join` or `resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub participant: ParticipantInfo,
    pub resume_secret: String,
    pub meeting: MeetingInfo,
    pub participants: Vec<ParticipantInfo>,
    pub tracks: Vec<TrackInfo>,
    pub chat: Vec<ChatMessage>,
    pub ice_servers: Vec<IceServer>,
    pub limits: Limits,
    /// Only in `resumed`: the slots the edge still fills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    pub id: MeetingId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub identity: String,
    pub name: String,
    pub joined_at_ms: u64,
    pub can_publish: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub id: TrackId,
    pub participant_id: ParticipantId,
    pub kind: Kind,
    pub source: Source,
    pub muted: bool,
    pub simulcast: bool,
    pub layers: Vec<LayerInfo>,
    pub codec: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub rid: Option<String>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub mid: String,
    pub track_id: TrackId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    pub participant_id: ParticipantId,
    pub level: f32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: u64,
    pub participant_id: ParticipantId,
    pub identity: String,
    pub name: String,
    pub text: String,
    pub ts_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_participants: usize,
    pub max_chat_len: usize,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Timeout,
    Kicked,
    Replaced,
    /// A reason this build does not know.
    #[serde(other)]
    Other,
}

/// Why a client is told to `migrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrateReason {
    /// An operator drains the edge (`arbor edge drain`).
    Draining,
    /// A reason this build does not know.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Excellent,
    Good,
    Poor,
    /// A grade this build does not know.
    #[serde(other)]
    Unknown,
}

/// Stable error codes (`docs/signaling.md`, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    TokenMissing,
    TokenMalformed,
    TokenInvalidSignature,
    TokenAlgNotAllowed,
    TokenExpired,
    TokenNotYetValid,
    TokenMalformedClaim,
    TokenUnknownKey,
    TokenNoRoom,
    PermissionDenied,
    MeetingFull,
    ResumeFailed,
    BadMessage,
    UnknownMessageType,
    NotJoined,
    SdpInvalid,
    BadSubscription,
    ChatTooLong,
    RateLimited,
    Overloaded,
    /// A code this build does not know (clients treat it as the generic case).
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// Fatal errors end the signaling session: the edge closes the socket after sending.
    pub fn is_fatal(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            TokenMissing
                | TokenMalformed
                | TokenInvalidSignature
                | TokenAlgNotAllowed
                | TokenExpired
                | TokenNotYetValid
                | TokenMalformedClaim
                | TokenUnknownKey
                | TokenNoRoom
                | MeetingFull
                | ResumeFailed
                | Overloaded
        )
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            TokenMissing => "token_missing",
            TokenMalformed => "token_malformed",
            TokenInvalidSignature => "token_invalid_signature",
            TokenAlgNotAllowed => "token_alg_not_allowed",
            TokenExpired => "token_expired",
            TokenNotYetValid => "token_not_yet_valid",
            TokenMalformedClaim => "token_malformed_claim",
            TokenUnknownKey => "token_unknown_key",
            TokenNoRoom => "token_no_room",
            PermissionDenied => "permission_denied",
            MeetingFull => "meeting_full",
            ResumeFailed => "resume_failed",
            BadMessage => "bad_message",
            UnknownMessageType => "unknown_message_type",
            NotJoined => "not_joined",
            SdpInvalid => "sdp_invalid",
            BadSubscription => "bad_subscription",
            ChatTooLong => "chat_too_long",
            RateLimited => "rate_limited",
            Overloaded => "overloaded",
            Unknown => "unknown",
        }
    }

    /// Maps a token error code string (`relay_proto::token`) to the signaling code.
    pub fn from_token_code(code: &str) -> Self {
        use ErrorCode::*;
        match code {
            "token_missing" => TokenMissing,
            "token_alg_not_allowed" => TokenAlgNotAllowed,
            "token_invalid_signature" => TokenInvalidSignature,
            "token_expired" => TokenExpired,
            "token_not_yet_valid" => TokenNotYetValid,
            "token_malformed_claim" => TokenMalformedClaim,
            "token_unknown_key" => TokenUnknownKey,
            "token_no_room" => TokenNoRoom,
            _ => TokenMalformed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    #[test]
    fn parses_documented_messages() {
        let m = ClientMsg::parse(r#"{"type":"join","token":"x","name":"Ann"}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg::Join {
                token: "x".into(),
                name: Some("Ann".into())
            }
        );
        let m = ClientMsg::parse(
            r#"{"type":"offer","sdp":"v=0","publish":[{"mid":"1","source":"camera","width":1280,"height":720}]}"#,
        )
        .unwrap();
        assert!(matches!(m, ClientMsg::Offer { publish, .. } if publish.len() == 1));
        let m = ClientMsg::parse(r#"{"type":"leave"}"#).unwrap();
        assert_eq!(m, ClientMsg::Leave {});
    }

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
    fn unknown_type_is_told_apart_from_malformed() {
        assert_eq!(
            ClientMsg::parse(r#"{"type":"dance"}"#),
            Err(ParseError::UnknownType("dance".into()))
        );
        assert!(matches!(
            ClientMsg::parse(r#"{"type":"chat","text":5}"#),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            ClientMsg::parse("not json"),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn server_messages_carry_their_type_tag() {
        let json =
            serde_json::to_string(&ServerMsg::error(ErrorCode::MeetingFull, "full")).unwrap();
        assert!(json.contains(r#""type":"error""#));
        assert!(json.contains(r#""code":"meeting_full""#));
        assert!(json.contains(r#""fatal":true"#));
        let json = serde_json::to_string(&ServerMsg::Pong { ts: None }).unwrap();
        assert_eq!(json, r#"{"type":"pong"}"#);
    }

    #[test]
    fn migrate_serializes_as_documented() {
        let m = ServerMsg::Migrate {
            edge_id: "us-1".into(),
            url: "http://127.0.2.1:7880".into(),
            ws_url: "ws://127.0.2.1:7880/v1/rtc".into(),
            reason: MigrateReason::Draining,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"type":"migrate","edge_id":"us-1","url":"http://127.0.2.1:7880","ws_url":"ws://127.0.2.1:7880/v1/rtc","reason":"draining"}"#
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&json).unwrap(), m);
        assert_eq!(m.kind(), "migrate");
        let later: ServerMsg = serde_json::from_str(
            r#"{"type":"migrate","edge_id":"e","url":"u","ws_url":"w","reason":"rebalance"}"#,
        )
        .unwrap();
        assert!(matches!(
            later,
            ServerMsg::Migrate {
                reason: MigrateReason::Other,
                ..
            }
        ));
    }

    #[test]
    fn newer_server_messages_parse_leniently() {
        let m: ServerMsg = serde_json::from_str(r#"{"type":"hologram","x":1}"#).unwrap();
        assert_eq!(m, ServerMsg::Unknown);
        let m: ServerMsg = serde_json::from_str(
            r#"{"type":"error","code":"new_code","message":"m","fatal":false}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::Unknown,
                ..
            }
        ));
    }

    #[test]
    fn error_codes_serialize_as_documented() {
        for code in [
            ErrorCode::TokenExpired,
            ErrorCode::BadSubscription,
            ErrorCode::Overloaded,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
