//! Oracle 4: delivered latency against the tree path.

use std::time::Duration;

use edge_core::signal::Kind;

use super::{Problems, ms, sub_name, tree_path};
use crate::outcome::{Outcome, SubOutcome, TreeRecord};

/// The one-way latency from publisher to subscriber along a tree: both access links plus the
/// backbone hops, with the jitter those links may add. `None` if the tree does not connect
/// their edges.
pub fn path_latency(
    o: &Outcome,
    links: &[(usize, usize)],
    sub: &SubOutcome,
) -> Option<(Duration, Duration)> {
    let s = &o.scenario;
    let from = s.participants[sub.spec.publisher].edge;
    let to = s.participants[sub.subscriber].edge;
    let path = tree_path(links, from, to)?;
    let mut delay = s.access.delay * 2;
    let mut jitter = s.access.jitter * 2;
    for hop in path.windows(2) {
        let b = s.backbone(hop[0], hop[1]);
        delay += b.delay;
        jitter += b.jitter;
    }
    Some((delay, jitter))
}

/// The trees in force at some time in `[from, to]`: the last one issued at or before `from`
/// and every later one up to `to`.
fn trees_during(trees: &[TreeRecord], from: Duration, to: Duration) -> &[TreeRecord] {
    let first = trees.iter().rposition(|t| t.at <= from).unwrap_or(0);
    let last = trees.iter().rposition(|t| t.at <= to).map_or(0, |i| i + 1);
    trees.get(first..last.max(first)).unwrap_or(&[])
}

/// The range of path latencies (and the largest jitter) a subscription met over the trees in
/// force during `[from, to]` (from its binding on).
pub fn path_range_during(
    o: &Outcome,
    sub: &SubOutcome,
    from: Duration,
    to: Duration,
) -> Option<(Duration, Duration, Duration)> {
    let since = sub.since?.max(from);
    let s = &o.scenario;
    let same_edge = s.participants[sub.spec.publisher].edge == s.participants[sub.subscriber].edge;
    let paths: Vec<(Duration, Duration)> = if same_edge {
        path_latency(o, &[], sub).into_iter().collect()
    } else {
        trees_during(&o.trees, since, to)
            .iter()
            .filter_map(|t| path_latency(o, &t.links, sub))
            .collect()
    };
    let min = paths.iter().map(|p| p.0).min()?;
    let max = paths.iter().map(|p| p.0).max()?;
    let jitter = paths.iter().map(|p| p.1).max()?;
    Some((min, max, jitter))
}

/// [`path_range_during`] over the whole run.
pub fn path_range(o: &Outcome, sub: &SubOutcome) -> Option<(Duration, Duration, Duration)> {
    path_range_during(o, sub, Duration::ZERO, o.scenario.duration)
}

/// The fastest frame may exceed the shortest path it could have taken by at most this (plus
/// the links' jitter): more is a detour.
pub const DETOUR_SLACK: Duration = Duration::from_millis(10);

/// The rate at which an edge paces a subscriber's downlink before its bandwidth estimate has
/// grown: str0m's pacing factor (1.1) times the sessions' initial estimate (1 Mbit/s).
pub const INITIAL_PACING_BPS: f64 = 1_100_000.0;

/// How long the edge's pacer may take, at [`INITIAL_PACING_BPS`], to send one keyframe of
/// every video the subscriber watches (the largest layer within each slot's `max_height`):
/// periodic keyframes of different publishers can meet in one downlink, and a frame waits
/// behind them.
pub fn keyframe_pacing(s: &crate::Scenario, subscriber: usize) -> Duration {
    let v = &s.video;
    let bits: f64 = s.participants[subscriber]
        .subscribe
        .iter()
        .filter(|sub| sub.kind == Kind::Video)
        .filter_map(|sub| {
            v.layers
                .iter()
                .rfind(|l| u32::from(l.height) <= sub.max_height)
                .or(v.layers.first())
        })
        .map(|l| f64::from(l.bitrate_bps) / f64::from(v.fps.max(1)) * f64::from(v.keyframe_ratio))
        .sum();
    Duration::from_secs_f64(bits / INITIAL_PACING_BPS)
}

/// Pairs of snapshot indices whose interval the latency oracle judges: inside the
/// measurement window and outside every impairment's settling period.
pub fn judged_intervals(o: &Outcome) -> Vec<(usize, usize)> {
    let s = &o.scenario;
    let t = &o.snapshot_times;
    let settling: Vec<(Duration, Duration)> = s
        .impairments
        .iter()
        .map(|i| (i.at, i.at + crate::world::SETTLE))
        .collect();
    (1..t.len())
        .map(|j| (j - 1, j))
        .filter(|&(i, _)| t[i] >= s.measure_from)
        .filter(|&(i, j)| settling.iter().all(|&(a, b)| t[j] <= a || t[i] >= b))
        .collect()
}

/// Oracle 4. See the module docs.
pub fn latency(o: &Outcome) -> Result<(), String> {
    let mut p = Problems::default();
    let e = &o.scenario.expect;
    let times = &o.snapshot_times;
    let judged = judged_intervals(o);
    for sub in &o.subscriptions {
        let who = sub_name(o, sub);
        let Some(end) = sub.at_end() else { continue };
        if end.latency.count == 0 {
            continue;
        }
        let Some((min, _, jitter)) = path_range(o, sub) else {
            p.add(format!("{who}: no tree connects publisher and subscriber"));
            continue;
        };
        let fastest = end.latency.min;
        if fastest + jitter < min {
            p.add(format!(
                "{who}: a frame took {:.1} ms, faster than the path's {:.1} ms",
                ms(fastest),
                ms(min)
            ));
        }
        if fastest > min + jitter + DETOUR_SLACK {
            p.add(format!(
                "{who}: the fastest frame took {:.1} ms, the shortest path is {:.1} ms: a detour",
                ms(fastest),
                ms(min)
            ));
        }
        for &(i, j) in &judged {
            let (Some(Some(a)), Some(Some(b))) = (sub.snapshots.get(i), sub.snapshots.get(j))
            else {
                continue;
            };
            let Some((_, max, jitter)) = path_range_during(o, sub, times[i], times[j]) else {
                continue;
            };
            let span = format!(
                "{:.1}-{:.1} s",
                times[i].as_secs_f64(),
                times[j].as_secs_f64()
            );
            let n = b.latency.count.saturating_sub(a.latency.count);
            if n > 0 {
                let mean = b.latency.sum.saturating_sub(a.latency.sum) / n as u32;
                if mean > max + e.mean_latency_slack {
                    p.add(format!(
                        "{who}: mean latency {:.1} ms in {span}, the path {:.1} ms + {} ms slack",
                        ms(mean),
                        ms(max),
                        e.mean_latency_slack.as_millis()
                    ));
                }
            }
            let pacing = match sub.spec.kind {
                Kind::Video => keyframe_pacing(&o.scenario, sub.subscriber),
                Kind::Audio => Duration::ZERO,
            };
            let bound = max + jitter + e.latency_slack + pacing;
            if b.latency.max > a.latency.max && b.latency.max > bound {
                p.add(format!(
                    "{who}: a frame took {:.1} ms in {span}, the path {:.1} ms + {:.1} ms jitter + \
                     {} ms slack + {:.0} ms to pace keyframes",
                    ms(b.latency.max),
                    ms(max),
                    ms(jitter),
                    e.latency_slack.as_millis(),
                    ms(pacing)
                ));
            }
        }
    }
    p.into_result()
}
