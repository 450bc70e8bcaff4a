//! `arbor bench`: Arbor's forwarding measured side by side with Janus (Debian's `janus`
//! VideoRoom) and with a bare forwarder that stands for the machine's limit.
//!
//! Everything runs inside a network namespace the bench creates (Janus never gathers ICE
//! candidates on loopback, so the namespace gets a veth pair), with the same synthetic str0m
//! clients, packet stream and SRTP profile on every side.
//!
//! - [`netns`]: the private network namespace and its veth pair.
//! - [`janus`]: Janus started with a generated configuration and driven over its HTTP API.
//! - [`bare`]: the bare recvmmsg/sendmmsg + SRTP forwarder and its cheap sinks.

pub mod bare;
pub mod janus;
pub mod netns;
