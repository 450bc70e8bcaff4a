//! The test header every synthetic frame carries after its codec header.
//!
//! An SFU forwards payload bytes untouched, so a few bytes at a known place in each frame let
//! the receiving client learn what it is looking at without trusting anything the SFU rewrote
//! (SSRC, sequence numbers, timestamps, picture ids): which publisher ([`Stamp::source`]),
//! which simulcast layer, which frame of that layer, and when it was sent. The send time is
//! nanoseconds since an [`Epoch`] that publisher and subscriber share, which works when both run
//! in one process (loopback tests, `arbor load`); one-way latency is then `now - sent`.

use std::time::{Duration, Instant};

/// First bytes of a stamp, so a frame from a foreign publisher (a browser) is not misread.
const MAGIC: [u8; 2] = [0xA7, 0xB0];

/// Encoded length of a [`Stamp`].
pub const STAMP_LEN: usize = 2 + 1 + 4 + 4 + 8;

/// The reference instant send times are measured from.
///
/// Pass the same value to every client whose latency should be compared; it is an explicit
/// input (not a global) so virtual-time tests can use their own start instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub Instant);

impl Epoch {
    /// Nanoseconds from the epoch to `t`, saturating at zero for instants before it.
    pub fn nanos_at(self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.0).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the epoch.
    pub fn instant_at(self, nanos: u64) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// What a receiver learns from one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher sent the frame (`ClientConfig::source_id`).
    pub source: u32,
    /// Index of the simulcast layer (0 = lowest); 255 for audio.
    pub layer: u8,
    /// Frame number within this source's layer, +1 per encoded frame.
    pub frame: u32,
    /// Send time, nanoseconds since the shared [`Epoch`].
    pub sent_ns: u64,
}

/// The `layer` value audio frames carry.
pub const AUDIO_LAYER: u8 = u8::MAX;

impl Stamp {
    /// Writes the stamp into the first [`STAMP_LEN`] bytes of `out`.
    ///
    /// Panics if `out` is shorter; callers size frames to hold it (a bug otherwise).
    pub fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&MAGIC);
        out[2] = self.layer;
        out[3..7].copy_from_slice(&self.source.to_be_bytes());
        out[7..11].copy_from_slice(&self.frame.to_be_bytes());
        out[11..19].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a stamp from the start of `buf`; `None` if it is too short or not ours.
    pub fn parse(buf: &[u8]) -> Option<Stamp> {
        let b = buf.get(..STAMP_LEN)?;
        if b[..2] != MAGIC {
            return None;
        }
        Some(Stamp {
            layer: b[2],
            source: u32::from_be_bytes(b[3..7].try_into().ok()?),
            frame: u32::from_be_bytes(b[7..11].try_into().ok()?),
            sent_ns: u64::from_be_bytes(b[11..19].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Stamp {
            source: 0xdead_beef,
            layer: 2,
            frame: 77,
            sent_ns: 123_456_789_012,
        };
        let mut buf = [0u8; STAMP_LEN + 3];
        s.write(&mut buf);
        assert_eq!(Stamp::parse(&buf), Some(s));
        assert_eq!(Stamp::parse(&buf[..STAMP_LEN - 1]), None);
        buf[0] = 0;
        assert_eq!(Stamp::parse(&buf), None);
    }
}
