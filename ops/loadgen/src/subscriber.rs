//! The receiving role of a client: a pool of `recvonly` slots.
//!
//! The protocol is slot-based: the client offers recv m-lines up front and later binds tracks to
//! them with `subscribe`. The subscriber routes each incoming RTP packet to its [`Slot`] by SSRC
//! (str0m knows which mid an SSRC belongs to; the answer only for the first packets carries the
//! mid extension) and collects the keyframe requests the slots want sent.

use std::collections::HashMap;
use std::time::Instant;

use str0m::media::Mid;
use str0m::rtp::{RtpHeader, Ssrc};
use str0m::stats::MediaIngressStats;

use crate::protocol::Kind;
use crate::slot::{Slot, SlotStats};
use crate::stamp::Epoch;

/// Most recv slots one client may have.
pub const MAX_SLOTS: usize = 256;
/// Most SSRCs remembered (old SSRCs of re-bound slots linger until this bound).
const MAX_SSRCS: usize = 4 * MAX_SLOTS;

/// The receiving role.
#[derive(Debug)]
pub struct Subscriber {
    epoch: Epoch,
    slots: Vec<Slot>,
    by_ssrc: HashMap<Ssrc, usize>,
}

impl Subscriber {
    /// No slots yet; latency is measured against `epoch`.
    pub fn new(epoch: Epoch) -> Self {
        Subscriber {
            epoch,
            slots: vec![],
            by_ssrc: HashMap::new(),
        }
    }

    /// Adds a slot for a freshly created recv m-line. Returns false past [`MAX_SLOTS`].
    pub(crate) fn add_slot(&mut self, mid: Mid, kind: Kind) -> bool {
        if self.slots.len() >= MAX_SLOTS {
            return false;
        }
        self.slots.push(Slot::new(mid, kind, self.epoch));
        true
    }

    /// Recv slot mids of `kind`, in creation order.
    pub fn mids(&self, kind: Kind) -> Vec<Mid> {
        self.slots
            .iter()
            .filter(|s| s.kind() == kind)
            .map(|s| s.mid())
            .collect()
    }

    /// The slot for `mid`.
    pub fn slot(&self, mid: Mid) -> Option<&Slot> {
        self.slots.iter().find(|s| s.mid() == mid)
    }

    fn slot_mut(&mut self, mid: Mid) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.mid() == mid)
    }

    /// The slot index an SSRC was mapped to before.
    pub(crate) fn slot_for_ssrc(&self, ssrc: Ssrc) -> Option<usize> {
        self.by_ssrc.get(&ssrc).copied()
    }

    /// Maps `ssrc` to the slot of `mid` (learned from str0m), returning the slot index.
    pub(crate) fn map_ssrc(&mut self, ssrc: Ssrc, mid: Mid) -> Option<usize> {
        let idx = self.slots.iter().position(|s| s.mid() == mid)?;
        if self.by_ssrc.len() >= MAX_SSRCS {
            self.by_ssrc.clear();
        }
        self.by_ssrc.insert(ssrc, idx);
        Some(idx)
    }

    /// One RTP packet for slot `idx`.
    pub(crate) fn handle_rtp(
        &mut self,
        now: Instant,
        idx: usize,
        seq: u64,
        header: &RtpHeader,
        payload: &[u8],
    ) {
        if let Some(slot) = self.slots.get_mut(idx) {
            slot.handle_rtp(now, header.ssrc, seq, header, payload);
        }
    }

    /// str0m's receive statistics for one stream.
    pub(crate) fn handle_ingress_stats(&mut self, s: &MediaIngressStats) {
        if let Some(slot) = self.slot_mut(s.mid) {
            slot.handle_ingress_stats(s);
        }
    }

    /// str0m's paused/unpaused notice for one stream.
    pub(crate) fn handle_paused(&mut self, mid: Mid, paused: bool) {
        if let Some(slot) = self.slot_mut(mid) {
            slot.set_paused(paused);
        }
    }

    /// See [`Slot::set_expecting`]. Returns false for an unknown mid.
    pub fn set_expecting(&mut self, now: Instant, mid: Mid, expecting: bool) -> bool {
        match self.slot_mut(mid) {
            Some(s) => {
                s.set_expecting(now, expecting);
                true
            }
            None => false,
        }
    }

    /// Queues a keyframe request for `mid`. Returns false for an unknown mid.
    pub(crate) fn force_pli(&mut self, mid: Mid) -> bool {
        match self.slot_mut(mid) {
            Some(s) => {
                s.force_pli();
                true
            }
            None => false,
        }
    }

    /// The earliest time a slot has time-driven work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.poll_timeout()).min()
    }

    /// Time-driven work of every slot.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for s in &mut self.slots {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
    }

    /// The next slot that wants a PLI sent now.
    pub(crate) fn poll_pli(&mut self, now: Instant) -> Option<Mid> {
        self.slots
            .iter_mut()
            .find_map(|s| s.take_pli(now).then(|| s.mid()))
    }

    /// Snapshots of every slot.
    pub fn stats(&mut self, now: Instant) -> Vec<SlotStats> {
        self.slots.iter_mut().map(|s| s.stats(now)).collect()
    }
}
