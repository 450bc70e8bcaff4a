//! Arbor's deterministic simulator. Being built: so far, the seeded link model.
//!
//! [`link::Link`] is one direction of one link: latency, jitter, random or bursty
//! (Gilbert–Elliott) loss, a bottleneck rate with a finite buffer, duplication and partitions.
//! It is sans-IO: the caller passes `now` and the packets, and drains deliveries, so the
//! whole mesh can run in virtual time and a seed replays a run exactly. `arbor impair` (the
//! userspace UDP impairment proxy, since this kernel has no `tc netem`) runs the same model
//! on real sockets.
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
