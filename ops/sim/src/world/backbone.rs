//! The wires of the simulated mesh: media links (the seeded [`Link`] model), ordered control
//! channels (what a QUIC stream gives: nothing lost, in order, late through a short
//! partition), and the state of each edge-to-edge relay connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use relay_proto::Control;

use super::trace::NodeId;
use crate::link::{Link, Payload};

/// Most control messages one channel holds (in flight or held by a partition); past it they
/// are dropped and counted, as the shell's bounded queues would.
pub const MAX_CHANNEL_QUEUE: usize = 1 << 16;

/// What a media link carries.
#[derive(Debug, Clone)]
pub(crate) enum Packet {
    /// A UDP datagram between a client and its edge.
    Udp {
        source: SocketAddr,
        destination: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A QUIC datagram between edges (one relayed RTP packet).
    Relay(Bytes),
}

impl Payload for Packet {
    fn size_bytes(&self) -> usize {
        match self {
            Packet::Udp { bytes, .. } => bytes.len(),
            Packet::Relay(b) => b.len(),
        }
    }
}

/// One direction of a media path.
#[derive(Debug)]
pub(crate) struct MediaLink {
    pub from: NodeId,
    pub to: NodeId,
    pub link: Link<Packet>,
}

/// One direction of an ordered control channel.
#[derive(Debug)]
pub(crate) struct Channel {
    pub from: NodeId,
    pub to: NodeId,
    pub delay: Duration,
    /// Messages in order with their due time; `None` while a partition holds them.
    queue: VecDeque<(Option<Instant>, Control)>,
    pub sent: u64,
    pub dropped: u64,
}

impl Channel {
    pub(crate) fn new(from: NodeId, to: NodeId, delay: Duration) -> Self {
        Channel {
            from,
            to,
            delay,
            queue: VecDeque::new(),
            sent: 0,
            dropped: 0,
        }
    }

    /// Queues `msg` at `now`; `held` when the path is cut (it leaves after the heal).
    pub(crate) fn send(&mut self, now: Instant, msg: Control, held: bool) {
        if self.queue.len() >= MAX_CHANNEL_QUEUE {
            self.dropped += 1;
            return;
        }
        self.sent += 1;
        // Behind a held message everything waits: the stream is ordered.
        let blocked = held || self.queue.back().is_some_and(|(due, _)| due.is_none());
        let due = (!blocked).then_some(now + self.delay);
        self.queue.push_back((due, msg));
    }

    /// The path works again at `now`: held messages leave now.
    pub(crate) fn release(&mut self, now: Instant) {
        for (due, _) in &mut self.queue {
            if due.is_none() {
                *due = Some(now + self.delay);
            }
        }
    }

    /// The connection closed: everything queued is lost. Returns how many.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.queue.len();
        self.dropped += n as u64;
        self.queue.clear();
        n
    }

    /// When the first message is due, if it is moving.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.front().and_then(|(due, _)| *due)
    }

    /// The first message, if it is due by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Control> {
        match self.queue.front() {
            Some((Some(due), _)) if *due <= now => self.queue.pop_front().map(|(_, m)| m),
            _ => None,
        }
    }
}

/// The relay connection between edges `a` and `b` (`a < b`), both directions.
#[derive(Debug)]
pub(crate) struct Pair {
    pub a: usize,
    pub b: usize,
    pub rtt: Duration,
    /// Media links a→b and b→a (indices into the world's links).
    pub media: [usize; 2],
    /// Control channels a→b and b→a.
    pub control: [usize; 2],
    /// When the current partition began.
    pub cut_since: Option<Instant>,
    /// When the last partition healed.
    pub healed_at: Option<Instant>,
    /// Counts partitions, so a timer set for one does not act on the next.
    pub cuts: u64,
    /// The relay session closed (its partition outlived the idle timeout); it stays closed
    /// until it reconnects after the heal.
    pub down: bool,
}

impl Pair {
    /// Whether an RTT probe sent one RTT before `now` came back: the path was whole all that
    /// time and the session is open.
    pub(crate) fn probe_answered(&self, now: Instant) -> bool {
        !self.down && self.cut_since.is_none() && self.healed_at.is_none_or(|h| now >= h + self.rtt)
    }

    /// The direction index (0: a→b, 1: b→a) of traffic from `from`.
    pub(crate) fn dir(&self, from: usize) -> usize {
        usize::from(from != self.a)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test picks its virtual epoch
mod tests {
    use super::*;

    fn ping(n: u64) -> Control {
        Control::Ping { nonce: n }
    }

    #[test]
    fn a_channel_keeps_order_through_a_partition() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut c = Channel::new(NodeId::Edge(0), NodeId::Edge(1), 20 * ms);
        c.send(t0, ping(1), false);
        c.send(t0 + ms, ping(2), true);
        // Not held itself, but behind a held message.
        c.send(t0 + 2 * ms, ping(3), false);
        assert_eq!(c.next_due(), Some(t0 + 20 * ms));
        assert_eq!(c.pop_due(t0 + 20 * ms), Some(ping(1)));
        assert_eq!(c.next_due(), None);
        c.release(t0 + 100 * ms);
        assert_eq!(c.pop_due(t0 + 119 * ms), None);
        assert_eq!(c.pop_due(t0 + 120 * ms), Some(ping(2)));
        assert_eq!(c.pop_due(t0 + 120 * ms), Some(ping(3)));
        c.send(t0, ping(4), true);
        assert_eq!(c.clear(), 1);
        assert_eq!((c.sent, c.dropped), (4, 1));
    }
}
