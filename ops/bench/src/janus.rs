//! Janus (Debian's `janus` VideoRoom) as the benchmark's peer SFU: started with a generated
//! configuration and driven over its HTTP API, with the same synthetic str0m clients as Arbor.
//!
//! - [`JanusConfig`] / [`Janus`]: three config files in a private folder (VideoRoom and the
//!   HTTP transport only, ICE on [`crate::netns::SFU_ADDR`], one event loop per core, no
//!   session timeout), then `janus -F <dir> -L <dir>/janus.log -N`, ready once
//!   `GET /janus/info` answers; its pid, its CPU time from `/proc`, SIGTERM to stop.
//! - [`JanusApi`] / [`Session`] / [`Handle`]: the Janus HTTP API. Asynchronous plugin requests
//!   (`join`, `publish`, `start`) are acknowledged at once and answered on the session's
//!   long-poll, which one task per session keeps outstanding and dispatches by transaction;
//!   errors keep Janus's code and reason.
//! - [`Admin`]: the Admin API's `handle_info`, for the SRTP profile and packet counters of
//!   each PeerConnection.
//! - [`JanusRoom`]: a VideoRoom room and its peers: a publisher offers
//!   ([`JanusRoom::publisher`]) and subscribers answer Janus's offer
//!   ([`JanusRoom::subscriber`]); each peer's media runs in an `arbor_loadgen` media task.
//!
//! Everything runs inside the bench's network namespace ([`crate::netns`]): Janus never
//! gathers ICE candidates on a loopback interface.
//!
//! ```no_run
//! # async fn demo() -> Result<(), arbor_bench::janus::JanusError> {
//! use arbor_bench::janus::{Janus, JanusConfig, JanusRoom, RoomConfig};
//! use arbor_loadgen::{ClientConfig, Epoch, VideoConfig};
//!
//! // Inside the namespace (`Namespace::enter()` before the runtime was built).
//! let janus = Janus::start("/tmp/janus-bench".as_ref(), JanusConfig::default()).await?;
//! let room = JanusRoom::create(&janus, RoomConfig::default()).await?;
//! let epoch = Epoch(tokio::time::Instant::now().into_std());
//! let mut camera = ClientConfig::new(epoch);
//! camera.video = Some(VideoConfig::single_layer());
//! let publisher = room.publisher(camera).await?;
//! let viewer = room
//!     .subscriber(publisher.feed().unwrap_or_default(), ClientConfig::subscriber(epoch, 0, 0))
//!     .await?;
//! let info = janus.admin().handle_info(viewer.session_id(), viewer.handle_id()).await?;
//! println!("{:?} on {:?}", viewer.media().stats().await, info.srtp_profile);
//! println!("janus used {:?} of CPU", janus.cpu_time());
//! janus.stop().await?;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod config;
mod error;
mod handle;
mod process;
mod room;
mod session;

pub use admin::{Admin, HandleInfo, MediaCounters};
pub use api::{JanusApi, Jsep, PluginReply};
pub use config::JanusConfig;
pub use error::JanusError;
pub use handle::{ASYNC_REPLY_TIMEOUT, Handle};
pub use process::Janus;
pub use room::{JanusPeer, JanusRoom, RoomConfig};
pub use session::{MAX_QUEUED_EVENTS, MAX_TRANSACTIONS_IN_FLIGHT, Session};
