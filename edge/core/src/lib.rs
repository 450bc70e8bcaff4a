//! The sans-IO heart of an Arbor edge: meetings, sessions and the router.
//!
//! One [`Worker`] per media core holds the meetings hashed to it. The shell feeds it
//! datagrams, signaling messages and time; it returns datagrams to send, messages for
//! clients, and the time it next wants to be woken. Nothing here reads a clock, opens a
//! socket or spawns a task, so a test can drive a worker and real str0m clients in virtual
//! time (see `tests/`).
//!
//! ```text
//! browser ──UDP──► shell socket ──handle_receive──► Worker ─► Session (str0m Rtc, RTP mode)
//!                                                     │             │ RtpPacket
//!                                                     │        router: layer, verdict, rewrite
//!                                                     │             ▼
//! browser ◄──UDP── shell socket ◄──poll_output──── Worker ◄─ subscriber Sessions
//! ```
//!
//! - [`router`]: tracks, layers, slots; layer choice; seq/ts/picture-id rewriting;
//!   keyframe-request merging. Pure.
//! - [`session`]: one client's str0m `Rtc`, panic-isolated.
//! - [`worker`]: the state machine tying them together, plus demultiplexing.
//! - [`signal`]: the meeting signaling messages (`docs/signaling.md`).
//! - [`cascade`]: how a meeting spans edges: announcements, demand, per-hop repair, events
//!   (`docs/relay.md`). The worker speaks it through `Output::Relay*` and `handle_relay*`.

pub mod cascade;
pub mod dtls;
pub mod hash;
pub mod meeting;
pub mod router;
pub mod session;
pub mod signal;
pub mod speaker;
pub mod worker;

pub use meeting::{Admission, Role};
pub use session::SessionConfig;
pub use worker::{ApiError, ApiErrorKind, Limits, Output, Worker, WorkerConfig, WorkerStats};
