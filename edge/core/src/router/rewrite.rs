//! Per-subscriber rewriting of RTP sequence numbers, timestamps and VP8 picture ids.
//!
//! A subscriber's slot is one continuous RTP stream, whatever the edge feeds into it: layer
//! `q` of Bob's camera, then layer `f` after a bandwidth recovery, then Carol's camera after
//! the slot is re-bound. Each input stream has its own random sequence-number and timestamp
//! origin and its own VP8 picture-id counter. [`Rewriter`] maps them onto one output space:
//!
//! - **Sequence numbers** stay contiguous: `out = in + offset`, with the offset re-anchored
//!   on every switch so the first packet after a switch is `last_out + 1`. A jump in the
//!   output would make the browser NACK packets that never existed.
//! - **Timestamps** advance by the wall-clock time elapsed across a switch (at least one
//!   tick), so the decoder's jitter buffer sees time pass normally.
//! - **VP8 picture ids and TL0PICIDX** continue from the last value sent, so the decoder does
//!   not drop the new stream's keyframe as a duplicate or a wrap.
//!
//! Packets of the current input that arrive late but still map *after* the switch point are
//! forwarded with their proper output number (reordering is preserved); packets that would map
//! at or before the switch point are dropped, because their slot in the output sequence
//! belongs to the previous input.
//!
//! The very first output sequence number is below 2^15, so the SRTP rollover counter starts
//! at 0 as browsers require (a "First SeqNo has non-zero ROC" stream does not decrypt).

use std::time::Instant;

/// The output of rewriting one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended output sequence number.
    pub seq: u64,
    /// Output RTP timestamp.
    pub ts: u32,
    /// Output VP8 picture id (15-bit) and TL0PICIDX, when the input carried them.
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// VP8 fields read from an input packet's payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Ids {
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// Seq/ts/picture-id mapping for one subscriber slot. Pure: time is an input.
#[derive(Debug)]
pub struct Rewriter {
    clock_rate: u32,
    /// The next output sequence number to hand out on a switch.
    next_seq: u64,
    /// Highest output sequence number emitted.
    last_seq: Option<u64>,
    last_ts: u32,
    last_wallclock: Option<Instant>,
    last_picture_id: u16,
    last_tl0: u8,
    anchor: Option<Anchor>,
}

/// The mapping of the current input onto the output.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Input extended seq of the first packet after the switch.
    first_in_seq: u64,
    /// `out = in + seq_offset` (wrapping in u64 space).
    seq_offset: u64,
    ts_offset: u32,
    picture_id_offset: u16,
    tl0_offset: u8,
}

/// VP8 picture ids are 15 bits on the wire when the M bit is set; we keep them there.
const PICTURE_ID_MASK: u16 = 0x7fff;

impl Rewriter {
    /// `initial_seq` should be random and below 2^15; `initial_ts` random.
    pub fn new(clock_rate: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Rewriter {
            clock_rate: clock_rate.max(1),
            next_seq: u64::from(initial_seq & 0x7fff),
            last_seq: None,
            last_ts: initial_ts,
            last_wallclock: None,
            last_picture_id: 0,
            last_tl0: 0,
            anchor: None,
        }
    }

    /// Whether an input is mapped at all (false before the first switch).
    pub fn is_anchored(&self) -> bool {
        self.anchor.is_some()
    }

    /// Starts mapping a new input at this packet (a keyframe start, or any audio packet).
    pub fn switch(&mut self, now: Instant, in_seq: u64, in_ts: u32, vp8: Vp8Ids) -> Rewritten {
        let out_seq = self.next_seq;
        // Advance the output clock by the wall time since the last packet we sent (at least
        // one tick), so playout timing survives the switch.
        let ticks = match self.last_wallclock {
            Some(last) => {
                let elapsed = now.saturating_duration_since(last);
                let t = elapsed.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000;
                t.clamp(1, u64::from(u32::MAX / 2)) as u32
            }
            None => 0,
        };
        let out_ts = self.last_ts.wrapping_add(ticks);
        let out_pic = self.last_picture_id.wrapping_add(1) & PICTURE_ID_MASK;
        let out_tl0 = self.last_tl0.wrapping_add(1);
        let anchor = Anchor {
            first_in_seq: in_seq,
            seq_offset: out_seq.wrapping_sub(in_seq),
            ts_offset: out_ts.wrapping_sub(in_ts),
            picture_id_offset: vp8
                .picture_id
                .map_or(0, |p| out_pic.wrapping_sub(p) & PICTURE_ID_MASK),
            tl0_offset: vp8.tl0_pic_idx.map_or(0, |t| out_tl0.wrapping_sub(t)),
        };
        self.anchor = Some(anchor);
        self.map(now, anchor, in_seq, in_ts, vp8)
    }

    /// Maps a packet of the current input. `None` when there is no current input, or the
    /// packet predates the switch point.
    pub fn rewrite(
        &mut self,
        now: Instant,
        in_seq: u64,
        in_ts: u32,
        vp8: Vp8Ids,
    ) -> Option<Rewritten> {
        let anchor = self.anchor?;
        if in_seq < anchor.first_in_seq {
            return None;
        }
        Some(self.map(now, anchor, in_seq, in_ts, vp8))
    }

    /// Forgets the current input; the next packet must come through [`Rewriter::switch`].
    pub fn unanchor(&mut self) {
        self.anchor = None;
    }

    fn map(&mut self, now: Instant, a: Anchor, in_seq: u64, in_ts: u32, vp8: Vp8Ids) -> Rewritten {
        let seq = in_seq.wrapping_add(a.seq_offset);
        let ts = in_ts.wrapping_add(a.ts_offset);
        let picture_id = vp8
            .picture_id
            .map(|p| p.wrapping_add(a.picture_id_offset) & PICTURE_ID_MASK);
        let tl0_pic_idx = vp8.tl0_pic_idx.map(|t| t.wrapping_add(a.tl0_offset));
        if self.last_seq.is_none_or(|last| seq > last) {
            self.last_seq = Some(seq);
            self.next_seq = seq + 1;
            self.last_ts = ts;
            self.last_wallclock = Some(now);
            if let Some(p) = picture_id {
                self.last_picture_id = p;
            }
            if let Some(t) = tl0_pic_idx {
                self.last_tl0 = t;
            }
        }
        Rewritten {
            seq,
            ts,
            picture_id,
            tl0_pic_idx,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn ids(p: u16, t: u8) -> Vp8Ids {
        Vp8Ids {
            picture_id: Some(p),
            tl0_pic_idx: Some(t),
        }
    }

    #[test]
    fn switch_keeps_the_output_contiguous() {
        let t0 = Instant::now();
        let mut rw = Rewriter::new(90_000, 1000, 5000);
        let a = rw.switch(t0, 70_000, 123, ids(10, 3));
        assert_eq!(a.seq, 1000);
        assert_eq!(a.ts, 5000);
        let b = rw.rewrite(t0, 70_001, 123 + 3000, ids(11, 4)).unwrap();
        assert_eq!((b.seq, b.ts, b.picture_id), (1001, 8000, Some(2)));

        // Switch to another layer 33 ms later: seq continues, ts advances ~33 ms.
        let t1 = t0 + Duration::from_millis(33);
        let c = rw.switch(t1, 9, 4_000_000_000, ids(30_000, 200));
        assert_eq!(c.seq, 1002);
        assert_eq!(c.ts, 8000 + 2970);
        assert_eq!(c.picture_id, Some(3));
        assert_eq!(c.tl0_pic_idx, Some(3));
        // A straggler from the new input from before its switch point is dropped.
        assert_eq!(rw.rewrite(t1, 8, 0, Vp8Ids::default()), None);
    }

    #[test]
    fn first_sequence_number_has_zero_roc() {
        let mut rw = Rewriter::new(48_000, u16::MAX, 0);
        let out = rw.switch(Instant::now(), 1 << 40, 0, Vp8Ids::default());
        assert!(out.seq < 1 << 15);
    }

    #[test]
    fn late_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut rw = Rewriter::new(90_000, 0, 0);
        rw.switch(t0, 100, 0, Vp8Ids::default());
        rw.rewrite(t0, 102, 0, Vp8Ids::default());
        let late = rw.rewrite(t0, 101, 0, Vp8Ids::default()).unwrap();
        assert_eq!(late.seq, 1);
        let next = rw.rewrite(t0, 103, 0, Vp8Ids::default()).unwrap();
        assert_eq!(next.seq, 3);
    }

    proptest! {
        /// Whatever the inputs and switch points, the output sequence numbers of in-order
        /// input are strictly consecutive and picture ids never repeat consecutively.
        #[test]
        fn output_is_gapless(
            starts in proptest::collection::vec((any::<u32>(), any::<u32>(), 0u16..0x7fff, 1usize..50), 1..20),
            initial_seq in any::<u16>(),
        ) {
            let mut now = Instant::now();
            let mut rw = Rewriter::new(90_000, initial_seq, 7);
            let mut expected: Option<u64> = None;
            let mut last_pic: Option<u16> = None;
            for (seq0, ts0, pic0, len) in starts {
                let seq0 = u64::from(seq0);
                for i in 0..len as u64 {
                    now += Duration::from_millis(5);
                    let v = ids(pic0.wrapping_add(i as u16) & 0x7fff, 0);
                    let out = if i == 0 {
                        rw.switch(now, seq0, ts0, v)
                    } else {
                        rw.rewrite(now, seq0 + i, ts0.wrapping_add(i as u32 * 450), v).unwrap()
                    };
                    if let Some(e) = expected {
                        prop_assert_eq!(out.seq, e);
                    }
                    expected = Some(out.seq + 1);
                    if let Some(lp) = last_pic {
                        prop_assert_ne!(out.picture_id, Some(lp));
                    }
                    last_pic = out.picture_id;
                }
            }
        }
    }
}
