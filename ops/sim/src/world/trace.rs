//! The trace hash: FNV-1a over every delivered message and packet, so a test can assert that a
//! seed replays exactly.
//!
//! Each delivery contributes (channel, time since the start in ns, sender, receiver, length).
//! Contents are left out: DTLS and SRTP draw their keys from the operating system (str0m
//! offers no seed for them), so ciphertext differs from run to run while sizes and times do
//! not.
//!
//! [`Trace::hash`] covers the mesh: the origin's messages, relay control and media between
//! edges, and signaling. Datagrams between clients and edges are hashed apart
//! ([`Channel::Access`]): str0m keeps some of its per-stream state in `HashMap`s seeded at
//! random, so two packets it sends in the same microsecond may swap, an RTCP compound may
//! differ by a report block, and a DTLS signature by a byte. Those never reached the mesh's
//! own channels in the runs measured (`docs/simulation.md`), but they would make a hash over
//! everything useless for replay checks. Each channel keeps its own hash and count, so a
//! divergence can be located.

use std::fmt;
use std::time::Instant;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// What a delivery travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A client's datagram to its edge, or back.
    Access = 0,
    /// A media datagram between edges.
    RelayMedia = 1,
    /// A control message between edges.
    RelayControl = 2,
    /// A control message between an edge and the origin.
    Origin = 3,
    /// A signaling message between a client and its edge.
    Signaling = 4,
}

const CHANNELS: usize = 5;

/// A node of the mesh, as the trace names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeId {
    Origin,
    Edge(usize),
    Client(usize),
}

impl NodeId {
    fn code(self) -> u32 {
        match self {
            NodeId::Origin => 0,
            NodeId::Edge(i) => 0x1000_0000 | i as u32,
            NodeId::Client(i) => 0x2000_0000 | i as u32,
        }
    }
}

/// Running hashes of a run's deliveries.
#[derive(Clone, PartialEq, Eq)]
pub struct Trace {
    start: Instant,
    total: u64,
    per_channel: [u64; CHANNELS],
    deliveries: [u64; CHANNELS],
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("total", &format_args!("{:016x}", self.total))
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

impl Trace {
    pub(crate) fn new(start: Instant) -> Self {
        Trace {
            start,
            total: FNV_OFFSET,
            per_channel: [FNV_OFFSET; CHANNELS],
            deliveries: [0; CHANNELS],
        }
    }

    /// Records one delivery at `now`.
    pub(crate) fn record(
        &mut self,
        now: Instant,
        ch: Channel,
        from: NodeId,
        to: NodeId,
        len: usize,
    ) {
        let t = now.saturating_duration_since(self.start).as_nanos() as u64;
        let mut bytes = [0u8; 21];
        bytes[0] = ch as u8;
        bytes[1..9].copy_from_slice(&t.to_be_bytes());
        bytes[9..13].copy_from_slice(&from.code().to_be_bytes());
        bytes[13..17].copy_from_slice(&to.code().to_be_bytes());
        bytes[17..21].copy_from_slice(&(len as u32).to_be_bytes());
        if ch != Channel::Access {
            self.total = fnv(self.total, &bytes);
        }
        self.per_channel[ch as usize] = fnv(self.per_channel[ch as usize], &bytes);
        self.deliveries[ch as usize] += 1;
    }

    /// The hash over every delivery but the access channel's (see the module docs).
    pub fn hash(&self) -> u64 {
        self.total
    }

    /// The hash over one channel's deliveries.
    pub fn channel_hash(&self, ch: Channel) -> u64 {
        self.per_channel[ch as usize]
    }

    /// How many deliveries a channel carried.
    pub fn deliveries(&self, ch: Channel) -> u64 {
        self.deliveries[ch as usize]
    }
}

/// FNV-1a, continued from `hash` over `bytes`.
pub(crate) fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash = (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    hash
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test picks its virtual epoch
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn order_time_and_size_matter_but_access_is_apart() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let (a, b) = (NodeId::Edge(0), NodeId::Client(1));
        let run = |first: usize, second: usize, at: Duration| {
            let mut t = Trace::new(t0);
            t.record(t0 + ms, Channel::RelayMedia, a, b, first);
            t.record(t0 + at, Channel::RelayMedia, a, b, second);
            t.hash()
        };
        assert_eq!(run(10, 20, 2 * ms), run(10, 20, 2 * ms));
        assert_ne!(run(10, 20, 2 * ms), run(20, 10, 2 * ms));
        assert_ne!(run(10, 20, 2 * ms), run(10, 20, 3 * ms));
        let mut t = Trace::new(t0);
        let before = t.hash();
        t.record(t0, Channel::Access, b, a, 100);
        assert_eq!(t.hash(), before);
        assert_ne!(t.channel_hash(Channel::Access), before);
        assert_eq!(t.deliveries(Channel::Access), 1);
    }
}
