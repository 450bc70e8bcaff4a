//! Oracle 5: media back within the bound after a partition.

use std::time::Duration;

use super::{Problems, edge_name, sub_name};
use crate::outcome::{Outcome, SubOutcome};

/// How long after `cut` a subscription rendered its first frame: the end of the pause that
/// spans the cut, if one was recorded (pauses shorter than the record threshold are not,
/// and count as zero).
pub fn back_after(sub: &SubOutcome, cut: Duration) -> Duration {
    sub.gaps
        .iter()
        .find(|(a, b)| *a <= cut && cut < *b)
        .map_or(Duration::ZERO, |(_, b)| *b - cut)
}

/// Oracle 5. See the module docs.
pub fn recovery(o: &Outcome) -> Result<(), String> {
    let mut p = Problems::default();
    let s = &o.scenario;
    let bound = s.expect.recovery_bound;
    for r in &o.partitions {
        if r.reported.is_none() {
            p.add(format!(
                "the cut {}-{} at {:.3} s never reached the origin",
                edge_name(o, r.a),
                edge_name(o, r.b),
                r.cut.as_secs_f64()
            ));
        }
    }
    for sub in &o.subscriptions {
        let who = sub_name(o, sub);
        let bound_before = |t: Duration| sub.since.is_some_and(|since| since < t);
        for r in o.partitions.iter().filter(|r| bound_before(r.cut)) {
            let back = back_after(sub, r.cut);
            if back > bound {
                p.add(format!(
                    "{who}: media back {} ms after the cut at {:.3} s (at most {} ms)",
                    back.as_millis(),
                    r.cut.as_secs_f64(),
                    bound.as_millis()
                ));
            }
        }
        let spans_cut =
            |(a, b): &(Duration, Duration)| o.partitions.iter().any(|r| *a <= r.cut && r.cut < *b);
        let freeze = sub
            .gaps
            .iter()
            .filter(|g| g.1 > s.measure_from && !spans_cut(g))
            .map(|(a, b)| (*b - *a, *a))
            .max();
        if let Some((gap, at)) = freeze
            && gap >= bound
        {
            p.add(format!(
                "{who}: no frame for {} ms from {:.3} s (at most {} ms)",
                gap.as_millis(),
                at.as_secs_f64(),
                bound.as_millis()
            ));
        }
        if let Some(last) = sub.last_render
            && s.duration.saturating_sub(last) >= bound
        {
            p.add(format!(
                "{who}: media stopped at {:.3} s",
                last.as_secs_f64()
            ));
        }
    }
    for part in &o.participants {
        if part.unpublished > 0 {
            p.add(format!(
                "{}: {} watched tracks were unpublished",
                part.name, part.unpublished
            ));
        }
    }
    p.into_result()
}

/// The longest rendering gap of a subscription that ends after `from`.
pub fn longest_gap_after(sub: &SubOutcome, from: Duration) -> Duration {
    sub.gaps
        .iter()
        .filter(|(_, end)| *end > from)
        .map(|(a, b)| *b - *a)
        .max()
        .unwrap_or_default()
}
