//! Merging and rate limiting of keyframe requests toward a publisher.
//!
//! Every subscriber that joins, switches layer or loses a packet it cannot recover asks for a
//! keyframe. Passed through one by one, a 100-person meeting turns one join into a storm of
//! PLIs, and each keyframe is 5–10 times the size of a delta frame. So requests for one layer
//! of one track go through a [`KeyframeGate`]: the first request in a quiet period goes out
//! at once; requests within [`MIN_INTERVAL`] of the last one sent are merged into a single
//! pending request, sent when the interval ends — unless a keyframe arrived meanwhile, which
//! satisfies everyone waiting.

use std::time::{Duration, Instant};

/// Shortest time between two keyframe requests for the same layer.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// What a gate decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send a request to the publisher now.
    Send,
    /// Merged into a request already sent or pending.
    Merged,
}

#[derive(Debug, Default, Clone)]
pub struct KeyframeGate {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeGate {
    /// Someone needs a keyframe.
    pub fn request(&mut self, now: Instant) -> Decision {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < MIN_INTERVAL => {
                self.pending = true;
                Decision::Merged
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                Decision::Send
            }
        }
    }

    /// A keyframe arrived: pending requests are satisfied.
    pub fn on_keyframe(&mut self) {
        self.pending = false;
    }

    /// When a merged request is due, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .then(|| self.last_sent.map(|t| t + MIN_INTERVAL))
            .flatten()
    }

    /// Sends the merged request once due.
    pub fn handle_timeout(&mut self, now: Instant) -> Decision {
        match self.poll_timeout() {
            Some(due) if now >= due => {
                self.pending = false;
                self.last_sent = Some(now);
                Decision::Send
            }
            _ => Decision::Merged,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    #[test]
    fn a_storm_becomes_two_requests() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::default();
        assert_eq!(g.request(t0), Decision::Send);
        let mut sent = 1;
        for i in 1..100 {
            if g.request(t0 + Duration::from_millis(i)) == Decision::Send {
                sent += 1;
            }
        }
        assert_eq!(sent, 1);
        assert_eq!(g.poll_timeout(), Some(t0 + MIN_INTERVAL));
        assert_eq!(g.handle_timeout(t0 + MIN_INTERVAL), Decision::Send);
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn a_keyframe_cancels_the_pending_request() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::default();
        g.request(t0);
        g.request(t0 + Duration::from_millis(10));
        g.on_keyframe();
        assert_eq!(g.poll_timeout(), None);
        assert_eq!(g.handle_timeout(t0 + MIN_INTERVAL), Decision::Merged);
    }
}
