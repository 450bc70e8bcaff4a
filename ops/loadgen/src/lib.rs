//! Synthetic WebRTC clients for Arbor: browser-like publishers and checking subscribers built
//! on str0m.
//!
//! A [`Client`] is one meeting participant on one PeerConnection. Its [`Publisher`] sends a
//! simulcast VP8 camera (`q` 320x180, `h` 640x360, `f` 1280x720 at 30 fps, keyframes every 3 s
//! and on PLI) and an Opus-like microphone with audio levels; its [`Subscriber`] owns `recvonly`
//! slots and measures, per slot, what a browser would show: frames, keyframes, resolution, layer,
//! continuity, freezes, time to first frame, one-way latency and jitter ([`SlotStats`]). ICE,
//! DTLS-SRTP, RTCP, NACK/RTX and TWCC come from str0m.
//!
//! Two layers, like str0m and quinn:
//! - the **sans-IO core** ([`Client`] and everything below it): no sockets, no clock reads, no
//!   tasks; `now` is always an argument and randomness comes from `ClientConfig::seed`, so tests
//!   and the mesh simulator can run many clients in virtual time;
//! - the **tokio driver** ([`driver::connect`]): a WebSocket to an edge's `/v1/rtc`, a UDP
//!   socket (on loopback by default), and a task pumping both through a `Client`; or, with SDP
//!   exchanged by the caller (the Janus bench), [`driver::MediaSession`] and its task alone.
//!
//! A client either offers ([`Client::create_offer`]) or answers a peer's offer
//! ([`Client::accept_offer`]); [`srtp`] reports the SRTP profile each session negotiated.
//!
//! Driving the core:
//!
//! ```no_run
//! # use std::time::Instant;
//! # use arbor_loadgen::{Client, ClientConfig, Epoch, Input, Output};
//! # fn send(_: &[u8], _: std::net::SocketAddr) {}
//! # fn wait_for_datagram_or(_: Instant) -> Option<(std::net::SocketAddr, Vec<u8>)> { None }
//! # fn exchange(_: arbor_loadgen::Offer) -> String { String::new() }
//! # fn main() -> Result<(), arbor_loadgen::ClientError> {
//! let start = Instant::now();
//! let local = "127.0.0.1:5000".parse().unwrap();
//! let mut client = Client::new(start, ClientConfig::new(Epoch(start)));
//! client.add_local_candidate(start, local)?;
//! let offer = client.create_offer(start)?;      // send as `offer`, with `offer.publish`
//! client.accept_answer(start, &exchange(offer))?;
//! loop {
//!     // Drain everything the client wants to send; the last output says when to call again.
//!     let deadline = loop {
//!         match client.poll_output() {
//!             Output::Transmit(t) => send(&t.contents, t.destination),
//!             Output::Timeout(t) => break t,
//!         }
//!     };
//!     let now = Instant::now();
//!     match wait_for_datagram_or(deadline) {
//!         Some((source, bytes)) => client.handle_input(now, Input::Datagram {
//!             source, destination: local, contents: &bytes,
//!         })?,
//!         None => client.handle_input(now, Input::Timeout)?, // also writes due media
//!     }
//! }
//! # }
//! ```

pub mod assembler;
pub mod client;
#[cfg(feature = "driver")]
pub mod driver;
pub mod error;
pub mod histogram;
pub mod media;
pub mod protocol;
pub mod publisher;
pub mod slot;
pub mod srtp;
pub mod stamp;
pub mod subscriber;
pub mod throttle;
pub mod vp8;

pub use client::{
    Client, ClientConfig, ClientEvent, ClientStats, DriverStats, Input, Mids, Offer, Output,
};
#[cfg(feature = "driver")]
pub use driver::{
    ClientHandle, ConnectOptions, DriverError, MediaHandle, MediaSession, connect, connect_with,
};
pub use error::ClientError;
pub use histogram::Histogram;
pub use media::{AudioConfig, LayerSpec, VideoConfig};
pub use publisher::{LayerStats, Publisher, PublisherStats};
pub use slot::{LatencyStats, SlotStats};
pub use srtp::SrtpProfile;
pub use stamp::Epoch;
pub use subscriber::Subscriber;

/// An arbitrary starting instant for unit tests (the crate never reads the clock otherwise).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
