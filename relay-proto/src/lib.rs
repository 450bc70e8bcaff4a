//! Arbor's wire-visible vocabulary and the relay protocol between edges and the origin.
//!
//! Everything that crosses a process boundary — between browsers and an edge, between edges,
//! between edges and the origin — names things with the ids in [`id`]. They are newtypes, not
//! aliases, so a track id can never be passed where a participant id is expected, and each has a
//! stable text form (`Display` / `FromStr` / serde) that logs and JSON share. Access tokens
//! ([`token`]) are here because the edge, the origin and the CLI all read or mint them.
//!
//! # The relay protocol
//!
//! Edges talk to each other and to the origin over QUIC (ALPN [`ALPN`], mutual TLS), one
//! connection per pair:
//!
//! - **Control** rides one bidirectional stream, as length-prefixed frames ([`control`]):
//!   `u32` BE body length (≤ [`MAX_FRAME_LEN`]) | message type varint | fields. The first
//!   frame each way is a [`Hello`] carrying [`VERSION`].
//! - **Media** rides QUIC DATAGRAM frames ([`datagram`]), one RTP packet each:
//!   flow id (`u64` BE) | layer (`u8`) | RTP header (+ audio level) | payload. A receiving
//!   shell routes a datagram to its meeting's worker from the flow id alone
//!   ([`FlowId::meeting_hash`]).
//!
//! `docs/relay.md` explains the choices; this crate is the codec and the link state machine.
//!
//! # Driving a [`Session`]
//!
//! A session owns a link's control stream and does no I/O: the shell feeds it stream bytes
//! and the time, and after every call drains [`Session::poll_output`] until it says when to
//! call again. Two sessions wired back to back:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use relay_proto::{Control, Hello, Load, Output, Role, Session, SessionConfig, SessionEvent, VERSION};
//!
//! /// What a shell does after every `handle_*` call on a session: drain it.
//! fn drain(me: &mut Session, peer: &mut Session, now: Instant, got: &mut Vec<Control>) {
//!     loop {
//!         match me.poll_output() {
//!             Output::Stream(bytes) => peer.handle_stream(now, &bytes), // stream.write_all
//!             Output::Event(SessionEvent::Message(msg)) => got.push(msg),
//!             Output::Event(_) => {}                // Established (check the cert), Rtt
//!             Output::Close { code, reason } => unreachable!("{code}: {reason}"), // conn.close
//!             Output::Timeout(at) => { assert!(at > now); return } // arm a timer
//!         }
//!     }
//! }
//!
//! let now = Instant::now();
//! let hello = |role| Hello { version: VERSION, role, region: "eu-west".parse().unwrap() };
//! let mut edge = Session::new(now, SessionConfig::new(hello(Role::Edge("e1".parse().unwrap()))));
//! let mut origin = Session::new(now, SessionConfig::new(hello(Role::Origin)));
//! edge.send(&Control::Heartbeat(Load { participants: 3, ..Load::default() })).unwrap();
//! let mut got = Vec::new();
//! for _ in 0..3 {
//!     drain(&mut edge, &mut origin, now, &mut got);
//!     drain(&mut origin, &mut edge, now, &mut got);
//! }
//! assert_eq!(got, [Control::Heartbeat(Load { participants: 3, ..Load::default() })]);
//! assert_eq!(origin.rtt(), Some(Duration::ZERO)); // each side pinged; no time passed here
//! ```
//!
//! Nothing in this crate does I/O, reads a clock or spawns a task: callers pass `now`.

pub mod control;
pub mod datagram;
pub mod endpoints;
pub mod hops;
pub mod id;
pub mod session;
pub mod token;
pub mod wire;

pub use control::{
    Announce, CloseCode, CodecDesc, Control, DrainTarget, EdgeInfo, FrameDecoder, Hello, LayerDesc,
    Load, MediaKind, MeetingEvent, PeerInfo, Role, RttSample, TrackDesc, TrackSource, TreeUpdate,
};
pub use datagram::{DatagramError, Media, MediaHeader, decode_datagram, encode_datagram};
pub use hops::{Hops, HopsFull};
pub use id::{
    EdgeId, FlowId, IdError, LayerOutOfRange, LayerSet, MeetingId, ParticipantId, RegionId,
    TrackId, TreeEpoch,
};
pub use session::{Output, SendError, Session, SessionConfig, SessionEvent, SessionStats};
pub use wire::{DecodeError, EncodeError};

/// Protocol version, sent in [`Hello`]; a peer with another one is refused with
/// [`CloseCode::VersionMismatch`].
pub const VERSION: u16 = 1;
/// The QUIC ALPN of the relay protocol (carries the major version too).
pub const ALPN: &[u8] = b"arbor-relay/1";

/// Longest control frame body.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// Longest hop chain ([`Hops`]).
pub const MAX_HOPS: usize = 16;
/// Most simulcast layers of a track.
pub const MAX_LAYERS: usize = 3;
/// Most sequence numbers in one `Nack`.
pub const MAX_NACK_SEQS: usize = 256;
/// Most entries in `Peers`, `RttReport` and a `TreeUpdate`'s neighbours.
pub const MAX_PEERS: usize = 4096;
/// Longest `MeetingEvent` body (JSON).
pub const MAX_EVENT_LEN: usize = 16 * 1024;
/// Longest media datagram.
pub const MAX_DATAGRAM: usize = 1500;
/// Longest `Goodbye` reason.
pub const MAX_REASON_LEN: usize = 256;
/// Longest codec name (`"VP8"`, `"opus"`).
pub const MAX_CODEC_NAME_LEN: usize = 32;
/// Longest codec `fmtp` line.
pub const MAX_FMTP_LEN: usize = 512;
/// Longest simulcast rid.
pub const MAX_RID_LEN: usize = 16;
/// Longest HTTP URL (`EdgeInfo::http_url`, `Placed::http_url`).
pub const MAX_URL_LEN: usize = 1024;
