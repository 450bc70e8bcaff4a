//! Counters a worker keeps for the shell's `/metrics`.
//!
//! Plain integers, updated on the packet path without atomics (the worker is
//! single-threaded); the shell reads them between inputs and exports the deltas.

/// Upper bounds (µs) of the forwarding-latency histogram buckets: the time from a packet's
/// arrival at the edge to its hand-over to the subscriber's session. The last bucket is +Inf.
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
];

#[derive(Debug, Default, Clone)]
pub struct WorkerStats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub rtp_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_forwarded: u64,
    pub rtp_bytes_forwarded: u64,
    pub dropped_oversize: u64,
    pub dropped_malformed: u64,
    pub dropped_unknown_source: u64,
    pub dropped_not_accepted: u64,
    pub dropped_transmit_queue: u64,
    pub signals_dropped: u64,
    pub events_dropped: u64,
    pub nacks_received: u64,
    pub keyframe_requests_received: u64,
    pub keyframe_requests_sent: u64,
    pub keyframe_requests_merged: u64,
    pub layer_switches_up: u64,
    pub layer_switches_down: u64,
    pub sessions_connected: u64,
    pub joins_accepted: u64,
    pub joins_refused: u64,
    pub participants_left: u64,
    // The cascade (see `crate::cascade`).
    pub relay_messages_in: u64,
    pub relay_messages_out: u64,
    pub relay_datagrams_in: u64,
    pub relay_rtp_in: u64,
    pub relay_rtp_out: u64,
    pub relay_bytes_out: u64,
    pub relay_dropped: u64,
    pub relay_too_large: u64,
    pub relay_malformed: u64,
    pub relay_unknown_flow: u64,
    pub relay_unexpected: u64,
    pub relay_duplicates: u64,
    pub relay_repaired: u64,
    pub relay_nacks_sent: u64,
    pub relay_nacks_received: u64,
    pub relay_retransmits: u64,
    pub relay_retransmit_misses: u64,
    pub relay_loops: u64,
    pub relay_duplicate_announces: u64,
    pub relay_duplicate_events: u64,
    pub relay_reroutes: u64,
    pub relay_orphans_dropped: u64,
    pub relay_tree_updates: u64,
    pub relay_stale_tree_updates: u64,
    pub relay_refused_meetings: u64,
    pub relay_refused_tracks: u64,
    pub relay_refused_participants: u64,
    /// Histogram of forwarding latency; index `i` counts samples ≤ `LATENCY_BUCKETS_US[i]`
    /// and not in a lower bucket; the last index counts the rest.
    pub forward_latency: [u64; LATENCY_BUCKETS_US.len() + 1],
    pub forward_latency_sum_us: u64,
    // Gauges, refreshed every couple of seconds.
    pub participants: u64,
    pub meetings: u64,
    pub tracks: u64,
    pub subscriptions: u64,
}

impl WorkerStats {
    pub fn record_latency(&mut self, us: u64) {
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.forward_latency[i] += 1;
        self.forward_latency_sum_us += us;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_its_bucket() {
        let mut s = WorkerStats::default();
        s.record_latency(10);
        s.record_latency(11);
        s.record_latency(1_000_000);
        assert_eq!(s.forward_latency[0], 1);
        assert_eq!(s.forward_latency[1], 1);
        assert_eq!(s.forward_latency[LATENCY_BUCKETS_US.len()], 1);
    }
}
