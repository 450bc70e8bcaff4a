//! The bare forwarder: the machine's limit that `arbor bench` reports Arbor's forwarding
//! against (DESIGN.md §6: Arbor must reach 60% of it).
//!
//! It does, per packet, the least an SFU forwarding SRTP must do and nothing else: unprotect
//! once, then per subscriber copy, rewrite SSRC and sequence number, protect with that
//! subscriber's keys, and send, with `recvmmsg`/`sendmmsg` batches of 64 (and UDP GSO if asked
//! and the kernel has it). One thread, one socket, no allocation per packet. Around it, a
//! feeder sends the load generator's packet sizes at a chosen rate, and cheap sinks count
//! what arrives without decrypting. The batched system calls are `arbor_udp`'s, the same
//! the edge's media threads send with:
//!
//! ```no_run
//! # fn main() -> Result<(), arbor_bench::bare::Error> {
//! use std::time::Duration;
//! let m = arbor_bench::bare::measure(50, 4_000, Duration::from_secs(5))?;
//! println!("{:.0} egress packets per CPU-second, {:.2}% loss", m.egress_pps_per_cpu_s, m.loss_pct);
//! # Ok(())
//! # }
//! ```
//!
//! - [`srtp`]: SRTP protect/unprotect in place (AES-GCM per RFC 7714, AES-CM + HMAC-SHA1 per
//!   RFC 3711) on aws-lc-rs.
//! - [`forwarder`]: the forwarding thread ([`Forwarder::spawn`]).
//! - [`feed`]: the publisher ([`Feeder::spawn`]) and its [`Script`] of packets.
//! - [`sink`]: the subscribers ([`Sinks::spawn`]).
//! - [`measure()`]: all three together, timed, with the forwarder thread's CPU time.
//! - [`rtp`]: the RTP header fields read and rewritten.

mod error;
pub mod feed;
pub mod forwarder;
mod measure;
pub mod rtp;
pub mod sink;
pub mod srtp;

pub use error::Error;
pub use feed::{FeedConfig, FeedHandle, FeedStats, Feeder, Script};
pub use forwarder::{Forwarder, ForwarderConfig, ForwarderHandle, ForwarderStats, Subscriber};
pub use measure::{DRAIN_TIMEOUT, MeasureOptions, Measurement, measure, measure_with};
pub use sink::{SinkConfig, SinkHandle, SinkStats, Sinks};
pub use srtp::{MasterKey, SrtpContext, SrtpError};
