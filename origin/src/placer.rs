//! Where a join goes: the origin's [`Coordinator`] behind one lock.
//!
//! The coordinator is the sans-IO control plane (`origin_core::coordinator`): edge registry,
//! placement, trees. Two kinds of callers share it: the REST API asks it where a meeting's
//! participants in a region go ([`Placer::place`]), and the control plane
//! ([`crate::control`]) feeds it what edges report over their QUIC links and drains what it
//! wants sent. The lock is a `std` mutex held for microseconds, never across an `.await`;
//! placement is well under a millisecond even at 2,048 edges.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use origin_core::PlaceError;
use origin_core::coordinator::{self, Coordinator};
use relay_proto::{EdgeId, MeetingId, RegionId};

/// A placement's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub edge: EdgeId,
    /// The edge's HTTP base URL.
    pub http_url: String,
    /// The choice is new (not what the store had recorded); set by the caller that records.
    pub fresh: bool,
}

/// The coordinator behind a lock, plus a way to wake the control plane after a change.
#[derive(Debug)]
pub struct Placer {
    coordinator: Mutex<Coordinator>,
    wake: tokio::sync::Notify,
}

impl Placer {
    pub fn new(cfg: coordinator::Config, now: Instant) -> Self {
        Placer {
            coordinator: Mutex::new(Coordinator::new(cfg, now)),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The coordinator, for the control plane. Call [`Placer::changed`] after feeding it.
    pub fn lock(&self) -> MutexGuard<'_, Coordinator> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.coordinator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes the control plane to drain the coordinator's outputs.
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Placer::changed`] was called.
    pub async fn wait_changed(&self) {
        self.wake.notified().await;
    }

    /// The edge for `meeting`'s participants in `region`: sticky while it is healthy.
    pub fn place(
        &self,
        now: Instant,
        meeting: &MeetingId,
        region: &RegionId,
    ) -> Result<Placed, PlaceError> {
        let mut c = self.lock();
        let edge = c.place(now, meeting, region)?;
        let http_url = c
            .registry()
            .edge(&edge)
            .map(|s| s.edge.http_url.clone())
            .unwrap_or_default();
        Ok(Placed {
            edge,
            http_url,
            fresh: false,
        })
    }

    /// `meeting` no longer needs an edge in `region` (it ended).
    pub fn release(&self, meeting: &MeetingId, region: &RegionId) {
        self.lock().release(meeting, region);
    }
}
