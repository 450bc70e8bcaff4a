//! The numbers a run measured, as text: trees and when they changed, how the mesh lived
//! through each partition, per-subscription delivery and latency against the tree path, and
//! what the backbone did. `BENCHMARKS.md` quotes these.

use std::fmt::Write as _;
use std::time::Duration;

use edge_core::signal::Kind;

use crate::oracle::{edge_name, links_text, longest_gap_after, ms, path_range, sub_name};
use crate::outcome::Outcome;
use crate::world::TraceChannel;

/// Headline figures of a run, for tables across seeds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Tree changes the coordinator made.
    pub tree_changes: usize,
    /// Share of expected frames rendered in the window, worst subscription.
    pub worst_rendered: f64,
    /// Largest amount by which a frame's latency exceeded its tree path.
    pub worst_excess: Duration,
    /// Mean over subscriptions of (window mean latency − tree path).
    pub mean_excess: Duration,
    /// Longest rendering pause after the first cut (or in the window), worst subscription.
    pub worst_gap: Duration,
    /// From the first cut to the first frame after it, worst subscription.
    pub worst_back_after_cut: Option<Duration>,
    /// From the cut to the origin hearing of it, first partition.
    pub cut_reported_after: Option<Duration>,
    /// From the cut to the first tree without the cut link, first partition.
    pub rerouted_after: Option<Duration>,
}

/// The headline figures of `o`.
pub fn summary(o: &Outcome) -> Summary {
    let s = &o.scenario;
    let window = s.duration.saturating_sub(s.measure_from).as_secs_f64();
    let first_cut = o.partitions.first();
    let gap_from = first_cut.map_or(s.measure_from, |c| c.cut.min(s.measure_from));
    let mut out = Summary {
        tree_changes: o.trees.len(),
        worst_rendered: 1.0,
        ..Summary::default()
    };
    let mut excess_sum = Duration::ZERO;
    let mut excess_n = 0u32;
    for sub in &o.subscriptions {
        out.worst_gap = out.worst_gap.max(longest_gap_after(sub, gap_from));
        if let Some(c) = first_cut
            && sub.since.is_some_and(|t| t < c.cut)
        {
            let back = crate::oracle::back_after(sub, c.cut);
            out.worst_back_after_cut = Some(out.worst_back_after_cut.unwrap_or_default().max(back));
        }
        let (Some(a), Some(b)) = (sub.at(&o.snapshot_times, s.measure_from), sub.at_end()) else {
            continue;
        };
        let rendered = match sub.spec.kind {
            Kind::Video => b.frames_rendered - a.frames_rendered.min(b.frames_rendered),
            Kind::Audio => b.frames - a.frames.min(b.frames),
        };
        let ratio = rendered as f64 / (f64::from(s.fps(sub.spec.kind)) * window);
        out.worst_rendered = out.worst_rendered.min(ratio);
        if let Some((_, max, _)) = path_range(o, sub) {
            out.worst_excess = out.worst_excess.max(b.latency.max.saturating_sub(max));
            let n = b.latency.count.saturating_sub(a.latency.count);
            if n > 0 {
                let mean = b.latency.sum.saturating_sub(a.latency.sum) / n as u32;
                excess_sum += mean.saturating_sub(max);
                excess_n += 1;
            }
        }
    }
    if excess_n > 0 {
        out.mean_excess = excess_sum / excess_n;
    }
    if let Some(c) = first_cut {
        out.cut_reported_after = c.reported.map(|r| r.saturating_sub(c.cut));
        out.rerouted_after = o
            .trees
            .iter()
            .find(|t| t.at >= c.cut && !t.links.contains(&(c.a, c.b)))
            .map(|t| t.at - c.cut);
    }
    out
}

/// A readable account of the run.
pub fn render(o: &Outcome) -> String {
    let mut w = String::new();
    let s = &o.scenario;
    let _ = writeln!(
        w,
        "scenario {} seed {}: {} edges, {} participants, {:.1} s virtual, {} events, trace {:016x}",
        s.name,
        o.seed,
        s.edges.len(),
        s.participants.len(),
        s.duration.as_secs_f64(),
        o.events,
        o.trace.hash()
    );
    let channels = [
        ("access", TraceChannel::Access),
        ("signaling", TraceChannel::Signaling),
        ("relay control", TraceChannel::RelayControl),
        ("relay media", TraceChannel::RelayMedia),
        ("origin", TraceChannel::Origin),
    ];
    let per: Vec<String> = channels
        .iter()
        .map(|(name, ch)| {
            format!(
                "{name} {} ({:08x})",
                o.trace.deliveries(*ch),
                o.trace.channel_hash(*ch) >> 32
            )
        })
        .collect();
    let _ = writeln!(w, "  deliveries: {}", per.join(", "));
    let sum = summary(o);
    let _ = writeln!(
        w,
        "  summary: worst rendered {:.1} %, worst frame over path +{:.1} ms, mean over path \
         +{:.1} ms, longest gap {:.0} ms",
        sum.worst_rendered * 100.0,
        ms(sum.worst_excess),
        ms(sum.mean_excess),
        ms(sum.worst_gap)
    );
    for t in &o.trees {
        let _ = writeln!(
            w,
            "  tree at {:.3} s epoch {}: {}",
            t.at.as_secs_f64(),
            t.epoch,
            links_text(o, &t.links)
        );
    }
    if let Some(back) = sum.worst_back_after_cut {
        let _ = writeln!(
            w,
            "  media back {:.0} ms after the cut (worst subscription)",
            ms(back)
        );
    }
    for r in &o.partitions {
        let t = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.3} s", d.as_secs_f64()))
        };
        let _ = writeln!(
            w,
            "  cut {}-{} at {:.3} s: origin told {}, rerouted after {}, session down {}, healed {}, up {}",
            edge_name(o, r.a),
            edge_name(o, r.b),
            r.cut.as_secs_f64(),
            t(r.reported),
            sum.rerouted_after
                .map_or("-".into(), |d| format!("{:.0} ms", ms(d))),
            t(r.down),
            t(r.healed),
            t(r.up)
        );
    }
    render_subscriptions(&mut w, o);
    render_backbone(&mut w, o);
    w
}

fn render_subscriptions(w: &mut String, o: &Outcome) {
    let s = &o.scenario;
    let window = s.duration.saturating_sub(s.measure_from).as_secs_f64();
    let gap_from = o
        .partitions
        .first()
        .map_or(s.measure_from, |c| c.cut.min(s.measure_from));
    for sub in &o.subscriptions {
        let (Some(a), Some(b)) = (sub.at(&o.snapshot_times, s.measure_from), sub.at_end()) else {
            let _ = writeln!(w, "  {}: no numbers", sub_name(o, sub));
            continue;
        };
        let rendered = match sub.spec.kind {
            Kind::Video => b.frames_rendered.saturating_sub(a.frames_rendered),
            Kind::Audio => b.frames.saturating_sub(a.frames),
        };
        let expected = f64::from(s.fps(sub.spec.kind)) * window;
        let path = path_range(o, sub).map_or("-".to_string(), |(lo, hi, _)| {
            format!("{:.0}-{:.0}", ms(lo), ms(hi))
        });
        let n = b.latency.count.saturating_sub(a.latency.count).max(1);
        let mean = b.latency.sum.saturating_sub(a.latency.sum) / n as u32;
        let _ = writeln!(
            w,
            "  {}: {:.1} % rendered, {}p, latency min/mean/max {:.1}/{:.1}/{:.1} ms (before the \
             window {:.1}) (path {} ms), gap {:.0} ms, holes {}",
            sub_name(o, sub),
            rendered as f64 / expected * 100.0,
            b.height.unwrap_or(0),
            ms(b.latency.min),
            ms(mean),
            ms(b.latency.max),
            ms(a.latency.max),
            path,
            ms(longest_gap_after(sub, gap_from)),
            crate::oracle::holes(sub.spec.kind, b)
        );
    }
}

fn render_backbone(w: &mut String, o: &Outcome) {
    for ((a, b), st) in &o.backbone {
        if st.sent == 0 {
            continue;
        }
        let _ = writeln!(
            w,
            "  link {}→{}: {} datagrams, {} lost, {} cut",
            edge_name(o, *a),
            edge_name(o, *b),
            st.sent,
            st.lost,
            st.dropped_partition
        );
    }
    for (i, st) in o.edge_stats.iter().enumerate() {
        let _ = writeln!(
            w,
            "  edge {}: relay in {} out {}, nacks sent {}, retransmits {}, repaired {}, \
             duplicates {}, loops {}, reroutes {}, orphans {}, unknown flow {}",
            edge_name(o, i),
            st.relay_rtp_in,
            st.relay_rtp_out,
            st.relay_nacks_sent,
            st.relay_retransmits,
            st.relay_repaired,
            st.relay_duplicates,
            st.relay_loops,
            st.relay_reroutes,
            st.relay_orphans_dropped,
            st.relay_unknown_flow
        );
    }
    let c = &o.coordinator;
    let _ = writeln!(
        w,
        "  origin: {} recomputes, {} tree updates, {} unreachable reports; wire: {} loops, {} \
         duplicates, {} asked retransmissions, {} control messages lost with closed sessions",
        c.tree_recomputes,
        c.tree_updates_sent,
        c.unreachable_reports,
        o.wire.loops,
        o.wire.duplicates,
        o.wire.retransmissions,
        o.control_dropped
    );
}
