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
//! - [`cpu`]: CPU time of a process, a thread and the machine, from `/proc`.
//! - [`load`]: the fleet of synthetic clients behind `arbor load`: plan, run, report.

pub mod bare;
pub mod cpu;
pub mod janus;
pub mod load;
pub mod netns;
