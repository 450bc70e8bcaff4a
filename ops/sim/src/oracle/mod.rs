//! The oracles: what must hold after every run, whatever the seed.
//!
//! 1. [`tree_shape`]: every tree the origin issued is a tree within the fan-out bound; the
//!    final one spans exactly the edges hosting participants plus relays that relay (degree
//!    ≥ 2), every edge agrees with it, no tree uses a link known to be cut, the scenario's
//!    expected tree is reached, and the tree changes no more often than the scenario allows.
//! 2. [`no_duplicates_or_loops`]: the wire ledger saw no packet come back to an edge (its
//!    own track, or over a second link) and no packet cross a link twice unasked; no client
//!    saw a video frame step back in time or a layer switch without a keyframe; where no
//!    partition cuts a path, no video subscriber saw a hole.
//! 3. [`every_track`]: every subscription was bound to its publisher's track, renders at
//!    least the scenario's share of the expected frames in the measurement window, and shows
//!    that publisher; nobody was closed, refused or disconnected.
//! 4. [`latency`]: the fastest frame took the shortest tree path (access links plus the
//!    tree's backbone hops, ± the links' jitter; more is a detour, less is impossible); in
//!    each judged interval of the window (impairments' settling periods excluded) the mean
//!    stays within the path plus a small slack, and every frame within the path plus jitter,
//!    the scenario's slack and the time the edge's pacer needs for the subscriber's
//!    keyframes.
//! 5. [`recovery`]: after a partition starts, every subscription renders again within
//!    `recovery_bound` (DESIGN.md §5: media back within 1 s of the cut); no other pause in the
//!    window is that long; media flows at the end; no track was unpublished under its viewers.

mod delivery;
mod latency;
mod recovery;
mod tree;

use std::fmt;
use std::time::Duration;

use edge_core::signal::Kind;

use crate::outcome::{Outcome, SubOutcome};

pub use delivery::{every_track, holes, no_duplicates_or_loops};
pub use latency::{
    DETOUR_SLACK, INITIAL_PACING_BPS, judged_intervals, keyframe_pacing, latency, path_latency,
    path_range, path_range_during,
};
pub use recovery::{back_after, longest_gap_after, recovery};
pub use tree::{DETECTION_ALLOWANCE, tree_path, tree_shape};

/// Most problems listed in one failure message (all are counted).
pub const MAX_LISTED: usize = 8;

/// Which oracle failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    TreeShape,
    NoDuplicatesOrLoops,
    EveryTrack,
    Latency,
    Recovery,
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Oracle::TreeShape => "tree shape",
            Oracle::NoDuplicatesOrLoops => "no duplicates or loops",
            Oracle::EveryTrack => "every subscriber gets every track",
            Oracle::Latency => "latency within the tree path",
            Oracle::Recovery => "media back within the bound after a partition",
        })
    }
}

/// One failed oracle and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub oracle: Oracle,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.oracle, self.message)
    }
}

/// One oracle: `Err` with a message saying what went wrong.
pub type OracleFn = fn(&Outcome) -> Result<(), String>;

/// Runs all five oracles; an empty list means the run passed.
pub fn check(o: &Outcome) -> Vec<Failure> {
    let oracles: [(Oracle, OracleFn); 5] = [
        (Oracle::TreeShape, tree_shape),
        (Oracle::NoDuplicatesOrLoops, no_duplicates_or_loops),
        (Oracle::EveryTrack, every_track),
        (Oracle::Latency, latency),
        (Oracle::Recovery, recovery),
    ];
    oracles
        .into_iter()
        .filter_map(|(oracle, f)| f(o).err().map(|message| Failure { oracle, message }))
        .collect()
}

/// Collects problems and turns them into one message.
#[derive(Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    pub(crate) fn add(&mut self, p: String) {
        self.0.push(p);
    }

    pub(crate) fn into_result(self) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n = self.0.len();
        let mut msg = self
            .0
            .into_iter()
            .take(MAX_LISTED)
            .collect::<Vec<_>>()
            .join("; ");
        if n > MAX_LISTED {
            msg.push_str(&format!("; and {} more", n - MAX_LISTED));
        }
        Err(msg)
    }
}

pub(crate) fn edge_name(o: &Outcome, i: usize) -> String {
    o.scenario
        .edges
        .get(i)
        .map_or_else(|| format!("edge {i}"), |e| e.id.clone())
}

pub(crate) fn names(o: &Outcome, v: &[usize]) -> String {
    let n: Vec<String> = v.iter().map(|i| edge_name(o, *i)).collect();
    format!("[{}]", n.join(", "))
}

/// Links as `a-b` text.
pub fn links_text(o: &Outcome, links: &[(usize, usize)]) -> String {
    let l: Vec<String> = links
        .iter()
        .map(|(a, b)| format!("{}-{}", edge_name(o, *a), edge_name(o, *b)))
        .collect();
    format!("[{}]", l.join(" "))
}

/// "viewer-euw-1 ← presenter-use-1 video".
pub fn sub_name(o: &Outcome, s: &SubOutcome) -> String {
    let p = &o.scenario.participants;
    let kind = match s.spec.kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    };
    format!(
        "{} ← {} {kind}",
        p[s.subscriber].name, p[s.spec.publisher].name
    )
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
