//! What a run observed: the plain data the oracles judge and the report prints.
//!
//! Times are offsets from the start of the run, edges and participants are indices into the
//! scenario, so an outcome can be compared, printed and kept without the world it came from.

use std::time::Duration;

use arbor_loadgen::SlotStats;
use edge_core::WorkerStats;

use crate::link::LinkStats;
use crate::scenario::{Scenario, Subscription};
use crate::world::Trace;

/// A tree the coordinator issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRecord {
    pub at: Duration,
    pub epoch: u64,
    /// Links as pairs of edge indices, each `(low, high)`, sorted.
    pub links: Vec<(usize, usize)>,
}

/// One partition and how the mesh lived through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub a: usize,
    pub b: usize,
    pub cut: Duration,
    pub healed: Option<Duration>,
    /// When the origin first heard the link was unreachable.
    pub reported: Option<Duration>,
    /// When the relay session closed on its idle timeout, if it did.
    pub down: Option<Duration>,
    /// When it reconnected after the heal.
    pub up: Option<Duration>,
}

/// One subscription from start to end.
#[derive(Debug, Clone)]
pub struct SubOutcome {
    /// Index of the subscribing participant.
    pub subscriber: usize,
    pub spec: Subscription,
    /// When the slot was first bound to the track.
    pub since: Option<Duration>,
    /// How many times it was bound.
    pub binds: u32,
    /// The slot at each of [`Outcome::snapshot_times`] (`None` where it did not exist yet).
    pub snapshots: Vec<Option<SlotStats>>,
    /// Pauses in rendering longer than 150 ms: (last frame before, first frame after).
    pub gaps: Vec<(Duration, Duration)>,
    /// When the last rendered frame was sampled.
    pub last_render: Option<Duration>,
}

impl SubOutcome {
    /// The slot's numbers at snapshot time `t`, if one was taken then.
    pub fn at(&self, times: &[Duration], t: Duration) -> Option<&SlotStats> {
        let i = times.iter().position(|x| *x == t)?;
        self.snapshots.get(i)?.as_ref()
    }

    /// The slot's numbers at the end of the run.
    pub fn at_end(&self) -> Option<&SlotStats> {
        self.snapshots.last()?.as_ref()
    }
}

/// One participant's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantOutcome {
    pub name: String,
    pub connected: bool,
    /// The edge removed it.
    pub closed: bool,
    /// Tracks it watched that were unpublished under it.
    pub unpublished: u32,
    pub errors: Vec<String>,
    /// The last `connection_quality` from its edge: quality and downlink estimate (bit/s).
    pub quality: Option<(String, u64)>,
    /// `layer_changed` messages it received.
    pub layer_changes: u32,
}

/// What the wire ledger found (see `world::ledger`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireOutcome {
    /// Relay datagrams sent per directed link (edge indices).
    pub per_link: Vec<((usize, usize), u64)>,
    pub loops: u64,
    pub duplicates: u64,
    /// Repeated crossings the receiver asked for with a NACK.
    pub retransmissions: u64,
    /// Datagrams on a flow no announcement had named.
    pub unknown_flow: u64,
    /// The ledger filled up and stopped recording.
    pub full: bool,
    pub violations: Vec<String>,
}

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: Scenario,
    pub seed: u64,
    pub trace: Trace,
    /// Every tree the coordinator issued for the meeting, in order.
    pub trees: Vec<TreeRecord>,
    /// The coordinator's tree at the end: its links and its nodes (edge indices).
    pub final_links: Vec<(usize, usize)>,
    pub final_nodes: Vec<usize>,
    /// Edges hosting participants at the end, as the coordinator's presence table says.
    pub hosting: Vec<usize>,
    /// Each edge's own view of its neighbours at the end (`None`: not in the meeting).
    pub edge_views: Vec<Option<Vec<usize>>>,
    pub edge_stats: Vec<WorkerStats>,
    pub coordinator: origin_core::coordinator::Stats,
    /// Fan-out bound the coordinator applied.
    pub max_degree: u32,
    pub wire: WireOutcome,
    /// When every slot's numbers were recorded: the start of the measurement window, each
    /// impairment, each impairment plus [`crate::world::SETTLE`], and the end, in order.
    pub snapshot_times: Vec<Duration>,
    pub subscriptions: Vec<SubOutcome>,
    pub participants: Vec<ParticipantOutcome>,
    /// Backbone media links, `(from, to)` edge indices, with what the link model did.
    pub backbone: Vec<((usize, usize), LinkStats)>,
    pub partitions: Vec<PartitionRecord>,
    /// Control messages that were lost with a relay session that closed.
    pub control_dropped: u64,
    /// Events the run processed.
    pub events: u64,
}
