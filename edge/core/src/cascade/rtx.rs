//! Loss repair on one backbone hop: the sender's retransmission buffer and the receiver's
//! gap tracker.
//!
//! Media crosses a backbone link as unreliable QUIC datagrams, so a lost datagram is lost
//! for every subscriber behind that link. Repairing it on the hop where it was lost (rather
//! than end to end, from the publisher's browser) keeps the repair one backbone RTT long and
//! invisible to everyone else. The sender keeps the last [`RTX_PACKETS`] datagrams of each
//! (flow, layer); the receiver extends the 16-bit sequence numbers, notices holes and asks
//! for them with a `Nack` on the control stream, a few times, then gives up and lets the
//! subscribers' own NACK/PLI machinery take over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Datagrams kept per (flow, layer) for retransmission: ~1 s of 720p video at 30 fps.
pub const RTX_PACKETS: usize = 512;
/// Most holes tracked per layer; a larger gap is treated as a stream reset, not a loss.
pub const MAX_MISSING: usize = 256;
/// How long a hole is worth repairing: after this the packet is too late to play out.
pub const NACK_GIVE_UP: Duration = Duration::from_millis(600);
/// How often a hole is asked for again while it stays open.
pub const NACK_RETRY: Duration = Duration::from_millis(60);
/// Most times one hole is asked for.
pub const NACK_TRIES: u8 = 4;

/// The sender's ring of recent datagrams, indexed by the RTP sequence number they carry.
#[derive(Debug)]
pub struct RetransmitBuffer {
    slots: Vec<Option<(u16, Bytes)>>,
}

impl Default for RetransmitBuffer {
    fn default() -> Self {
        RetransmitBuffer {
            slots: vec![None; RTX_PACKETS],
        }
    }
}

impl RetransmitBuffer {
    /// Keeps a datagram (a cheap reference-counted clone of what was sent).
    pub fn insert(&mut self, seq: u16, datagram: Bytes) {
        self.slots[usize::from(seq) % RTX_PACKETS] = Some((seq, datagram));
    }

    /// The datagram that carried `seq`, if it is still kept.
    pub fn get(&self, seq: u16) -> Option<&Bytes> {
        match &self.slots[usize::from(seq) % RTX_PACKETS] {
            Some((s, d)) if *s == seq => Some(d),
            _ => None,
        }
    }
}

/// Extends 16-bit RTP sequence numbers to 64 bits (RFC 3550 appendix A.1, without probation).
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqExtender {
    highest: Option<u64>,
}

impl SeqExtender {
    /// The extended value of `seq`: the one closest to the highest seen so far.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start one cycle up so that packets just before the first one stay positive.
            let v = (1 << 16) | u64::from(seq);
            self.highest = Some(v);
            return v;
        };
        let base = highest & !0xffff;
        let candidates = [
            base.wrapping_sub(1 << 16) | u64::from(seq),
            base | u64::from(seq),
            (base + (1 << 16)) | u64::from(seq),
        ];
        let v = candidates
            .into_iter()
            .min_by_key(|c| c.abs_diff(highest))
            .unwrap_or(base | u64::from(seq));
        if v > highest {
            self.highest = Some(v);
        }
        v
    }

    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

/// What a receiver knows about holes in one (flow, layer).
#[derive(Debug, Default)]
pub struct Gaps {
    ext: SeqExtender,
    /// Missing extended seq → (first noticed, times asked).
    missing: BTreeMap<u64, (Instant, u8)>,
    pub repaired: u64,
    pub given_up: u64,
}

/// The outcome of one received packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The packet's extended sequence number.
    pub seq: u64,
    /// New holes to ask for at once (16-bit, as on the wire).
    pub nack: Vec<u16>,
    /// The packet filled a hole (a retransmission or a late packet).
    pub repair: bool,
    /// The packet was already received (or is too old to tell): drop it.
    pub duplicate: bool,
}

impl Gaps {
    /// Records a packet. New holes are returned for an immediate NACK.
    pub fn handle_packet(&mut self, now: Instant, seq: u16) -> Arrival {
        let before = self.ext.highest();
        let ext = self.ext.extend(seq);
        let mut arrival = Arrival {
            seq: ext,
            nack: Vec::new(),
            repair: false,
            duplicate: false,
        };
        match before {
            Some(h) if ext <= h => {
                if self.missing.remove(&ext).is_some() {
                    self.repaired += 1;
                    arrival.repair = true;
                } else {
                    arrival.duplicate = true;
                }
            }
            Some(h) => {
                let gap = ext - h - 1;
                if gap as usize > MAX_MISSING {
                    // A reset (the stream restarted, or the link was down for long):
                    // nothing in between is worth asking for.
                    self.given_up += self.missing.len() as u64;
                    self.missing.clear();
                } else {
                    for s in h + 1..ext {
                        self.missing.insert(s, (now, 1));
                        arrival.nack.push(s as u16);
                    }
                    while self.missing.len() > MAX_MISSING {
                        self.missing.pop_first();
                        self.given_up += 1;
                    }
                }
            }
            None => {}
        }
        arrival
    }

    /// Holes to ask for again now; holes too old or asked too often are given up.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<u16> {
        let mut again = Vec::new();
        let mut gone = 0;
        self.missing.retain(|seq, (first, tries)| {
            let age = now.saturating_duration_since(*first);
            if age >= NACK_GIVE_UP || *tries >= NACK_TRIES {
                gone += 1;
                return false;
            }
            if age >= NACK_RETRY * u32::from(*tries) {
                *tries += 1;
                again.push(*seq as u16);
            }
            true
        });
        self.given_up += gone;
        again
    }

    /// Whether any hole is open (the worker only services layers that have some).
    pub fn has_missing(&self) -> bool {
        !self.missing.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    #[test]
    fn extension_follows_wraps_both_ways() {
        let mut e = SeqExtender::default();
        let a = e.extend(65_534);
        assert_eq!(e.extend(65_535), a + 1);
        assert_eq!(e.extend(0), a + 2);
        assert_eq!(e.extend(1), a + 3);
        // A late packet from before the wrap maps below, not a cycle ahead.
        assert_eq!(e.extend(65_533), a - 1);
        assert_eq!(e.highest(), Some(a + 3));
    }

    #[test]
    fn holes_are_nacked_once_then_retried_then_given_up() {
        let t0 = Instant::now();
        let mut g = Gaps::default();
        g.handle_packet(t0, 10);
        let a = g.handle_packet(t0, 13);
        assert_eq!(a.nack, vec![11, 12]);
        assert!(g.handle_timeout(t0 + Duration::from_millis(10)).is_empty());
        assert_eq!(
            g.handle_timeout(t0 + NACK_RETRY + Duration::from_millis(1)),
            vec![11, 12]
        );
        let r = g.handle_packet(t0 + NACK_RETRY * 2, 11);
        assert!(r.repair && !r.duplicate);
        assert_eq!(g.repaired, 1);
        // Asked too often: given up.
        let mut t = t0 + NACK_RETRY * 2;
        for _ in 0..NACK_TRIES {
            t += NACK_RETRY * u32::from(NACK_TRIES);
            g.handle_timeout(t);
        }
        assert!(!g.has_missing());
        assert_eq!(g.given_up, 1);
        assert!(g.handle_packet(t, 12).duplicate);
    }

    #[test]
    fn a_long_outage_is_a_reset_not_a_storm() {
        let t0 = Instant::now();
        let mut g = Gaps::default();
        g.handle_packet(t0, 1);
        let a = g.handle_packet(t0, 5000);
        assert!(a.nack.is_empty());
        assert!(!g.has_missing());
    }

    #[test]
    fn buffer_returns_only_the_exact_sequence() {
        let mut b = RetransmitBuffer::default();
        b.insert(7, Bytes::from_static(b"seven"));
        assert_eq!(b.get(7).map(|d| &d[..]), Some(&b"seven"[..]));
        b.insert(7 + RTX_PACKETS as u16, Bytes::from_static(b"later"));
        assert!(b.get(7).is_none());
    }
}
