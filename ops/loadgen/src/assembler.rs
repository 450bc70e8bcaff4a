//! Reassembles VP8 frames from RTP packets, in order, like a receiver's frame buffer.
//!
//! str0m's RTP mode hands us packets as they arrive (RTX already unwrapped, duplicates
//! dropped), possibly out of order. A frame is complete when its packets run without a hole from
//! a start packet (`S=1, PID=0`) to the marker, all with one timestamp. Frames are released in
//! sequence order: if the next frame is missing a packet, later complete frames wait up to
//! [`MAX_WAIT`] for a retransmission (NACK/RTX), then the buffer skips ahead and marks the frame
//! after the hole as not contiguous. A complete keyframe beyond a hole is released at once, as a
//! decoder would jump to it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::vp8::{self, Descriptor};

/// How long complete frames wait behind a hole before the buffer gives up on it.
pub const MAX_WAIT: Duration = Duration::from_millis(300);

/// Packets buffered at most; past it the oldest is dropped (and later skipped as lost).
pub const MAX_PACKETS: usize = 1024;

#[derive(Debug)]
struct Packet {
    ts: u32,
    marker: bool,
    descriptor: Descriptor,
    payload: Vec<u8>,
}

/// A frame released by the [`Assembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Extended sequence number of the first packet.
    pub first_seq: u64,
    /// Extended sequence number of the marker packet.
    pub last_seq: u64,
    /// RTP timestamp.
    pub rtp_ts: u32,
    /// The VP8 frame, descriptors stripped.
    pub data: Vec<u8>,
    /// The first packet's payload descriptor.
    pub descriptor: Descriptor,
    /// Whether it follows the previous released frame without a hole.
    pub contiguous: bool,
    /// Sequence numbers skipped right before this frame.
    pub skipped_packets: u64,
}

/// Counters of an [`Assembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Packets older than the last released frame (late retransmissions, duplicates).
    pub late_packets: u64,
    /// Packets whose payload descriptor did not parse.
    pub bad_packets: u64,
    /// Packets dropped because the buffer was full.
    pub overflow_packets: u64,
}

/// The frame buffer of one video stream.
#[derive(Debug, Default)]
pub struct Assembler {
    packets: BTreeMap<u64, Packet>,
    /// First sequence number of the next frame to release.
    next_seq: Option<u64>,
    /// Since when the next frame has been blocked by a hole while later frames wait.
    blocked_since: Option<Instant>,
    stats: AssemblerStats,
}

impl Assembler {
    /// Counters.
    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Forgets everything (the stream changed SSRC: a new sequence number space).
    pub fn reset(&mut self) {
        self.packets.clear();
        self.next_seq = None;
        self.blocked_since = None;
    }

    /// Adds one RTP packet.
    pub fn insert(&mut self, seq: u64, ts: u32, marker: bool, payload: &[u8]) {
        if self.next_seq.is_some_and(|n| seq < n) || self.packets.contains_key(&seq) {
            self.stats.late_packets += 1;
            return;
        }
        let Some(descriptor) = vp8::parse_descriptor(payload) else {
            self.stats.bad_packets += 1;
            return;
        };
        if self.packets.len() >= MAX_PACKETS {
            self.packets.pop_first();
            self.stats.overflow_packets += 1;
        }
        let payload = payload[descriptor.len..].to_vec();
        self.packets.insert(
            seq,
            Packet {
                ts,
                marker,
                descriptor,
                payload,
            },
        );
    }

    /// When a blocked buffer gives up waiting, if it is waiting.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.blocked_since.map(|t| t + MAX_WAIT)
    }

    /// The next frame ready at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Frame> {
        let Some(next) = self.next_seq else {
            // Nothing released yet: start at the first complete frame.
            let (a, b) = self.complete_from(self.packets.keys().next().copied()?)?;
            return Some(self.release(a, b, true));
        };
        if let Some(b) = self.complete_at(next) {
            return Some(self.release(next, b, true));
        }
        let Some((a, b)) = self.complete_from(next) else {
            self.blocked_since = None;
            return None;
        };
        let keyframe = self.is_keyframe(a);
        let since = *self.blocked_since.get_or_insert(now);
        if let Some((ka, kb)) = self.first_complete_keyframe(next) {
            return Some(self.release(ka, kb, false));
        }
        if keyframe || now >= since + MAX_WAIT {
            return Some(self.release(a, b, false));
        }
        None
    }

    fn is_keyframe(&self, seq: u64) -> bool {
        self.packets
            .get(&seq)
            .and_then(|p| vp8::parse_frame_header(&p.payload))
            .is_some_and(|h| h.keyframe)
    }

    /// The marker sequence number if a complete frame starts exactly at `a`.
    fn complete_at(&self, a: u64) -> Option<u64> {
        let first = self.packets.get(&a)?;
        if !first.descriptor.start {
            return None;
        }
        let mut seq = a;
        loop {
            let p = self.packets.get(&seq)?;
            if p.ts != first.ts {
                return None;
            }
            if p.marker {
                return Some(seq);
            }
            seq += 1;
        }
    }

    /// The first complete frame starting at or after `from`.
    fn complete_from(&self, from: u64) -> Option<(u64, u64)> {
        self.packets
            .range(from..)
            .filter(|(_, p)| p.descriptor.start)
            .find_map(|(&a, _)| self.complete_at(a).map(|b| (a, b)))
    }

    fn first_complete_keyframe(&self, from: u64) -> Option<(u64, u64)> {
        self.packets
            .range(from..)
            .filter(|(a, p)| p.descriptor.start && self.is_keyframe(**a))
            .find_map(|(&a, _)| self.complete_at(a).map(|b| (a, b)))
    }

    fn release(&mut self, a: u64, b: u64, contiguous: bool) -> Frame {
        let skipped_packets = self.next_seq.map_or(0, |n| a.saturating_sub(n));
        // Everything before the frame is obsolete now.
        let mut rest = self.packets.split_off(&a);
        let after = rest.split_off(&(b + 1));
        self.packets = after;
        self.next_seq = Some(b + 1);
        self.blocked_since = None;
        let mut parts = rest.into_values();
        let first = parts.next();
        let (rtp_ts, descriptor, mut data) = match first {
            Some(p) => (p.ts, p.descriptor, p.payload),
            // complete_at() found packet `a`; a bug otherwise.
            None => unreachable!("released frame without packets"),
        };
        for p in parts {
            data.extend_from_slice(&p.payload);
        }
        Frame {
            first_seq: a,
            last_seq: b,
            rtp_ts,
            data,
            descriptor,
            contiguous: contiguous && skipped_packets == 0,
            skipped_packets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vp8::{DescriptorFields, packetize, write_frame_header};

    use crate::test_epoch as t0;

    /// Packets of one frame: (payload, marker).
    fn frame(key: bool, pid: u16, len: usize) -> Vec<(Vec<u8>, bool)> {
        let mut data = vec![0u8; len];
        write_frame_header(&mut data, key.then_some((320, 180)), 10);
        let fields = DescriptorFields {
            picture_id: pid,
            tl0_pic_idx: 0,
            tid: 0,
            layer_sync: false,
            non_reference: false,
        };
        let p = packetize(&data, 100, fields);
        let n = p.len();
        p.into_iter()
            .enumerate()
            .map(|(i, p)| (p, i + 1 == n))
            .collect()
    }

    /// Feeds frames with consecutive seqs, skipping the seqs in `drop`.
    fn feed(a: &mut Assembler, frames: &[Vec<(Vec<u8>, bool)>], drop: &[u64]) -> Vec<u64> {
        let mut seq = 100;
        let mut starts = vec![];
        for (i, f) in frames.iter().enumerate() {
            starts.push(seq);
            for (p, m) in f {
                if !drop.contains(&seq) {
                    a.insert(seq, i as u32 * 3000, *m, p);
                }
                seq += 1;
            }
        }
        starts
    }

    #[test]
    fn in_order_frames_come_out_whole_and_contiguous() {
        let now = t0();
        let mut a = Assembler::default();
        feed(&mut a, &[frame(true, 1, 250), frame(false, 2, 150)], &[]);
        let f1 = a.poll(now).unwrap();
        assert_eq!((f1.first_seq, f1.last_seq, f1.data.len()), (100, 102, 250));
        assert!(f1.contiguous && f1.descriptor.start);
        let f2 = a.poll(now).unwrap();
        assert!(f2.contiguous);
        assert_eq!(f2.descriptor.picture_id, Some(2));
        assert_eq!(a.poll(now), None);
    }

    #[test]
    fn hole_waits_then_skips() {
        let now = t0();
        let mut a = Assembler::default();
        // Frame 2 (seqs 103-104) loses 103; frame 3 is complete.
        feed(
            &mut a,
            &[
                frame(true, 1, 250),
                frame(false, 2, 150),
                frame(false, 3, 150),
            ],
            &[103],
        );
        assert!(a.poll(now).is_some());
        assert_eq!(a.poll(now), None);
        assert_eq!(a.poll_timeout(), Some(now + MAX_WAIT));
        let f = a.poll(now + MAX_WAIT).unwrap();
        assert!(!f.contiguous);
        assert_eq!((f.first_seq, f.skipped_packets), (105, 2));
        // The late retransmission is ignored.
        a.insert(103, 3000, false, &frame(false, 2, 150)[0].0);
        assert_eq!(a.stats().late_packets, 1);
    }

    #[test]
    fn retransmission_fills_the_hole_in_time() {
        let now = t0();
        let mut a = Assembler::default();
        let frames = [
            frame(true, 1, 250),
            frame(false, 2, 150),
            frame(false, 3, 150),
        ];
        feed(&mut a, &frames, &[103]);
        assert!(a.poll(now).is_some());
        assert_eq!(a.poll(now), None);
        a.insert(103, 3000, false, &frames[1][0].0);
        assert!(a.poll(now).unwrap().contiguous);
        assert!(a.poll(now).unwrap().contiguous);
    }

    #[test]
    fn keyframe_after_a_hole_is_released_at_once() {
        let now = t0();
        let mut a = Assembler::default();
        feed(
            &mut a,
            &[
                frame(true, 1, 250),
                frame(false, 2, 150),
                frame(true, 3, 250),
            ],
            &[103],
        );
        assert!(a.poll(now).is_some());
        let f = a.poll(now).unwrap();
        assert!(!f.contiguous);
        assert_eq!(f.descriptor.picture_id, Some(3));
    }
}
