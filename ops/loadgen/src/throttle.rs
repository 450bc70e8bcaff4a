//! A receive-side bottleneck: emulates a downlink that drops to a given bit rate.
//!
//! Packets pass through a FIFO drained at `rate_bps`; the queue holds at most
//! [`Throttle::QUEUE_DELAY`] of data at that rate (and never less than a few packets), and a
//! packet that does not fit is dropped. Queueing adds delay before loss, as a real bottleneck
//! does, so the sender's TWCC-based estimate sees first rising delay, then loss, and falls; when
//! the limit is lifted the queue drains and the estimate can recover.
//!
//! Sans-IO: `now` is an input, and released packets are polled.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A packet waiting in the bottleneck.
#[derive(Debug)]
struct Queued<T> {
    release_at: Instant,
    len: usize,
    item: T,
}

/// Counters of a [`Throttle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThrottleStats {
    /// Packets let through.
    pub passed: u64,
    /// Packets dropped because the queue was full.
    pub dropped: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
}

/// The bottleneck; `T` is whatever the caller needs back with each packet.
#[derive(Debug)]
pub struct Throttle<T> {
    rate_bps: Option<u64>,
    queue: VecDeque<Queued<T>>,
    queued_bytes: usize,
    /// When the link finishes sending the last queued packet.
    busy_until: Option<Instant>,
    stats: ThrottleStats,
}

impl<T> Default for Throttle<T> {
    fn default() -> Self {
        Self::new(None)
    }
}

impl<T> Throttle<T> {
    /// How much data the queue holds, expressed as time at the limited rate.
    pub const QUEUE_DELAY: Duration = Duration::from_millis(60);
    /// The queue always holds at least this many bytes (a few full-size packets).
    pub const MIN_QUEUE_BYTES: usize = 6 * 1200;

    /// A throttle limited to `rate_bps`, or unlimited.
    pub fn new(rate_bps: Option<u64>) -> Self {
        Throttle {
            rate_bps,
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: None,
            stats: ThrottleStats::default(),
        }
    }

    /// Changes the limit at `now`. Queued packets keep their release times under a new limit;
    /// lifting the limit releases them at once.
    pub fn set_rate(&mut self, now: Instant, rate_bps: Option<u64>) {
        self.rate_bps = rate_bps.map(|r| r.max(1));
        if self.rate_bps.is_none() {
            for q in &mut self.queue {
                q.release_at = q.release_at.min(now);
            }
            self.busy_until = None;
        }
    }

    /// The current limit.
    pub fn rate(&self) -> Option<u64> {
        self.rate_bps
    }

    /// Counters.
    pub fn stats(&self) -> ThrottleStats {
        self.stats
    }

    fn capacity(&self, rate: u64) -> usize {
        let bytes = rate as f64 / 8.0 * Self::QUEUE_DELAY.as_secs_f64();
        (bytes as usize).max(Self::MIN_QUEUE_BYTES)
    }

    /// Offers one received packet of `len` bytes. Without a limit and with nothing queued, it
    /// is released immediately by the next [`Throttle::poll`].
    pub fn handle_packet(&mut self, now: Instant, len: usize, item: T) {
        let Some(rate) = self.rate_bps else {
            let release_at = self.queue.back().map_or(now, |q| q.release_at.max(now));
            self.push(release_at, len, item);
            return;
        };
        if self.queued_bytes + len > self.capacity(rate) {
            self.stats.dropped += 1;
            self.stats.dropped_bytes += len as u64;
            return;
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let send_time = Duration::from_nanos(len as u64 * 8 * 1_000_000_000 / rate);
        let release_at = start + send_time;
        self.busy_until = Some(release_at);
        self.push(release_at, len, item);
    }

    fn push(&mut self, release_at: Instant, len: usize, item: T) {
        self.queued_bytes += len;
        self.queue.push_back(Queued {
            release_at,
            len,
            item,
        });
    }

    /// The next packet whose time has come.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.queue.front()?.release_at > now {
            return None;
        }
        let q = self.queue.pop_front()?;
        self.queued_bytes -= q.len;
        self.stats.passed += 1;
        Some(q.item)
    }

    /// When the next packet is released, if any is queued.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.release_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_epoch as t0;

    #[test]
    fn unlimited_passes_everything_at_once() {
        let now = t0();
        let mut t = Throttle::new(None);
        for i in 0..100 {
            t.handle_packet(now, 1200, i);
        }
        assert_eq!(std::iter::from_fn(|| t.poll(now)).count(), 100);
        assert_eq!(t.stats().dropped, 0);
    }

    #[test]
    fn limit_delivers_about_the_rate_and_drops_the_rest() {
        let start = t0();
        let mut t = Throttle::new(Some(1_000_000));
        let mut delivered = 0usize;
        // Offer 4 Mbit/s for 2 s: one 1000-byte packet every 2 ms.
        for ms in (0..2000).step_by(2) {
            let now = start + Duration::from_millis(ms);
            t.handle_packet(now, 1000, ());
            while t.poll(now).is_some() {
                delivered += 1000;
            }
        }
        let bps = delivered as f64 * 8.0 / 2.0;
        assert!((bps / 1e6 - 1.0).abs() < 0.1, "{bps}");
        assert!(t.stats().dropped > 600);
        // Queueing delay is bounded by the queue size.
        let wait = t.poll_timeout().unwrap() - (start + Duration::from_millis(1998));
        assert!(wait <= Duration::from_millis(70), "{wait:?}");
    }

    #[test]
    fn lifting_the_limit_releases_the_queue() {
        let now = t0();
        let mut t = Throttle::new(Some(100_000));
        for _ in 0..5 {
            t.handle_packet(now, 1000, ());
        }
        assert_eq!(std::iter::from_fn(|| t.poll(now)).count(), 0);
        t.set_rate(now, None);
        t.handle_packet(now, 1000, ());
        assert_eq!(std::iter::from_fn(|| t.poll(now)).count(), 6);
    }
}
