//! Active-speaker detection from the RFC 6464 audio-level header extension.
//!
//! Browsers tag every Opus packet with its level in -dBov (0 loudest, 127 silence), so the
//! edge never decodes audio. Each audio track keeps a smoothed linear level (an exponential
//! moving average per packet, decaying toward silence when packets stop); every
//! [`RANK_INTERVAL`] the meeting ranks its tracks and reports the loudest speakers when
//! their order changes. Levels below [`SPEECH_THRESHOLD`] do not count as speech, so room
//! noise does not take the spotlight.

use std::time::{Duration, Instant};

/// How often a meeting re-ranks its speakers (at most 4 events per second).
pub const RANK_INTERVAL: Duration = Duration::from_millis(250);
/// How many speakers an `active_speakers` event lists.
pub const MAX_SPEAKERS: usize = 4;
/// A smoothed level under this (linear, 0..1) is silence. About -50 dBov.
pub const SPEECH_THRESHOLD: f32 = 0.003;
/// Weight of a new packet in the moving average (50 packets per second: ~0.3 s memory).
const ALPHA: f32 = 0.06;
/// A track silent for this long drops to zero.
const STALE_AFTER: Duration = Duration::from_millis(600);

/// The smoothed level of one audio track.
#[derive(Debug, Clone, Default)]
pub struct LevelMeter {
    level: f32,
    last: Option<Instant>,
}

impl LevelMeter {
    /// Feeds one packet's audio level (-dBov, 0..=127).
    pub fn handle_level(&mut self, now: Instant, dbov: i8) {
        let db = -f32::from(dbov.clamp(0, 127));
        let linear = 10f32.powf(db / 20.0);
        self.level += ALPHA * (linear - self.level);
        self.last = Some(now);
    }

    /// The smoothed level at `now`, 0..1.
    pub fn level(&self, now: Instant) -> f32 {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < STALE_AFTER => self.level,
            _ => 0.0,
        }
    }
}

/// Ranks `(key, level)` pairs loudest first, keeping only speech, at most [`MAX_SPEAKERS`].
pub fn rank<K: Copy + Ord>(levels: impl Iterator<Item = (K, f32)>) -> Vec<(K, f32)> {
    let mut v: Vec<(K, f32)> = levels.filter(|(_, l)| *l >= SPEECH_THRESHOLD).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(MAX_SPEAKERS);
    v
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    #[test]
    fn loud_beats_quiet_and_silence_is_ignored() {
        let t0 = Instant::now();
        let (mut a, mut b, mut c) = Default::default();
        for i in 0..50 {
            let t = t0 + Duration::from_millis(20 * i);
            LevelMeter::handle_level(&mut a, t, 20);
            LevelMeter::handle_level(&mut b, t, 40);
            LevelMeter::handle_level(&mut c, t, 127);
        }
        let now = t0 + Duration::from_secs(1);
        let r = rank([(1, a.level(now)), (2, b.level(now)), (3, c.level(now))].into_iter());
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2]);
        // A second later without packets, everyone is silent.
        assert_eq!(a.level(now + Duration::from_secs(1)), 0.0);
    }
}
