//! Oracles 2 and 3: nothing delivered twice or in a loop, and everything subscribed delivered.

use edge_core::signal::Kind;

use super::{Problems, sub_name};
use crate::outcome::Outcome;

/// Oracle 2. See the module docs.
pub fn no_duplicates_or_loops(o: &Outcome) -> Result<(), String> {
    let mut p = Problems::default();
    let w = &o.wire;
    if w.loops > 0 || w.duplicates > 0 {
        p.add(format!(
            "{} looped and {} duplicate packets on the backbone: {}",
            w.loops,
            w.duplicates,
            w.violations.join(" | ")
        ));
    }
    if w.unknown_flow > 0 {
        p.add(format!(
            "{} relay datagrams on flows never announced",
            w.unknown_flow
        ));
    }
    if w.full {
        p.add("the wire ledger filled up: the run is too long to check".to_string());
    }
    for s in &o.subscriptions {
        let Some(end) = s.at_end() else { continue };
        let who = sub_name(o, s);
        // Audio is forwarded as it comes, so a packet repaired on a hop arrives after its
        // successors; a video frame is released only once whole, in order.
        if s.spec.kind == Kind::Video && end.timestamp_regressions > 0 {
            p.add(format!(
                "{who}: {} frames went back in time",
                end.timestamp_regressions
            ));
        }
        if end.switches_without_keyframe > 0 {
            p.add(format!(
                "{who}: {} layer switches without a keyframe",
                end.switches_without_keyframe
            ));
        }
        // Audio is not judged here: a repaired packet arrives after its successors, and a
        // client counts a burst of late packets only partly (`holes`).
        let holes = holes(s.spec.kind, end);
        if o.scenario.expect.contiguous && s.spec.kind == Kind::Video && holes > 0 {
            p.add(format!("{who}: {holes} holes reached the client"));
        }
    }
    p.into_result()
}

/// Packets that never reached the client: video frames released over a hole, or audio
/// sequence numbers skipped and not filled in later (a late, repaired packet counts as both
/// a skip and a step back).
pub fn holes(kind: Kind, s: &arbor_loadgen::SlotStats) -> u64 {
    match kind {
        Kind::Video => s.non_contiguous,
        Kind::Audio => s.packets_skipped.saturating_sub(s.timestamp_regressions),
    }
}

/// Oracle 3. See the module docs.
pub fn every_track(o: &Outcome) -> Result<(), String> {
    let mut p = Problems::default();
    let s = &o.scenario;
    let window = s.duration.saturating_sub(s.measure_from);
    for part in &o.participants {
        if !part.connected || part.closed || !part.errors.is_empty() {
            p.add(format!(
                "{}: connected {}, closed {}, errors {:?}",
                part.name, part.connected, part.closed, part.errors
            ));
        }
    }
    for sub in &o.subscriptions {
        let who = sub_name(o, sub);
        let Some(since) = sub.since else {
            p.add(format!("{who}: the track never reached the subscriber"));
            continue;
        };
        if since >= s.measure_from {
            p.add(format!(
                "{who}: bound only at {:.3} s, after the window opened",
                since.as_secs_f64()
            ));
            continue;
        }
        let (Some(a), Some(b)) = (sub.at(&o.snapshot_times, s.measure_from), sub.at_end()) else {
            p.add(format!("{who}: no numbers"));
            continue;
        };
        let expected = f64::from(s.fps(sub.spec.kind)) * window.as_secs_f64();
        let rendered = rendered(sub.spec.kind, b) - rendered(sub.spec.kind, a);
        let ratio = rendered as f64 / expected;
        if ratio < s.expect.min_rendered {
            p.add(format!(
                "{who}: rendered {rendered} of {expected:.0} frames ({:.1} %, at least {:.1} % \
                 expected)",
                ratio * 100.0,
                s.expect.min_rendered * 100.0
            ));
        }
        let source = sub.spec.publisher as u32 + 1;
        if b.source != Some(source) {
            p.add(format!("{who}: shows source {:?}, not {source}", b.source));
        }
    }
    p.into_result()
}

/// Frames a subscription rendered: decodable video frames, or audio packets.
fn rendered(kind: Kind, s: &arbor_loadgen::SlotStats) -> u64 {
    match kind {
        Kind::Video => s.frames_rendered,
        Kind::Audio => s.frames,
    }
}
