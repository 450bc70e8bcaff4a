//! Arbor's wire-visible vocabulary.
//!
//! Everything that crosses a process boundary — between browsers and an edge, between edges,
//! between edges and the origin — names things with the ids in [`id`]. They are newtypes, not
//! aliases, so a track id can never be passed where a participant id is expected, and each has a
//! stable text form (`Display` / `FromStr` / serde) that logs and JSON share.
//!
//! The edge-to-edge relay codec and its sans-IO session arrive with the cascade; access tokens
//! ([`token`]) are here already because the edge, the origin and the CLI all read or mint them.
//!
//! Nothing in this crate does I/O, reads a clock or spawns a task: callers pass `now`.

pub mod id;
pub mod token;

pub use id::{EdgeId, IdError, MeetingId, ParticipantId, RegionId, TrackId, TreeEpoch};
