//! Arbor's deterministic whole-mesh simulator: the origin's coordinator, N edge workers and
//! synthetic WebRTC clients, all sans-IO, wired by a seeded link model and run in virtual
//! time, with oracles that judge every run.
//!
//! ```text
//! scenario (data) ──► world::run(&scenario, seed, start) ──► Outcome ──► oracle::check ──► []
//!                       coordinator ⇄ edge workers ⇄ str0m clients          report::render
//!                       over link::Link (delay, jitter, loss, rate, partitions)
//! ```
//!
//! - [`link`]: one direction of one link, seeded (also used by `arbor impair`).
//! - [`scenario`]: the meshes and meetings the issue asks for, as data.
//! - [`world`]: the event loop. Every random choice comes from the seed, so a seed replays
//!   exactly; the [`world::Trace`] hash over every delivery proves it.
//! - [`oracle`]: tree shape, no duplicates or loops, every track delivered, latency within
//!   the tree path, media back within a second after a partition.
//! - [`report`]: the numbers a run measured, as text.
//!
//! ```no_run
//! # #[allow(clippy::disallowed_methods)]
//! # fn main() -> Result<(), arbor_sim::world::SimError> {
//! use std::time::Instant;
//! let scenario = arbor_sim::scenario::partition();
//! let outcome = arbor_sim::world::run(&scenario, 7, Instant::now())?; // virtual time from here
//! for failure in arbor_sim::oracle::check(&outcome) {
//!     eprintln!("seed 7: {failure}");
//! }
//! println!("{}", arbor_sim::report::render(&outcome));
//! # Ok(()) }
//! ```
//!
//! [`link::Link`] on its own:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use arbor_sim::link::{Link, LinkConfig, Loss};
//!
//! let mut link = Link::new(LinkConfig::wan(40).with_loss(Loss::Random(0.01)), 7);
//! let t0 = Instant::now(); // a simulator starts from any instant and advances it itself
//! link.handle_packet(t0, b"hello".to_vec());
//! while let Some(at) = link.poll_timeout() {
//!     // Sleep (or advance virtual time) until `at`, then take what is due.
//!     while let Some(packet) = link.poll_deliver(at) {
//!         assert_eq!(packet, b"hello");
//!     }
//! }
//! # assert!(link.stats().delivered + link.stats().lost == 1);
//! # let _ = Duration::ZERO;
//! ```

pub mod link;
pub mod oracle;
pub mod outcome;
pub mod report;
pub mod scenario;
pub mod world;

pub use outcome::Outcome;
pub use scenario::Scenario;
