//! `arbor bench --quick`: the headline figures in under three minutes, for CI and for a quick
//! look after a change. Two forwarding steps side by side with Janus and the bare forwarder,
//! a 1 → 200 broadcast over three cascaded edges (loss and the relay hop's latency), and 100
//! idle joins on the cascade's first edge (CPU per join, memory per participant).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::cascade::{self, Broadcast};
use super::joins::{self, JoinStorm};
use super::spread::{Spread, Table, show};
use super::{Row, side_by_side, three_edges};
use crate::cli::BenchArgs;
use crate::up::Bins;

/// Subscriber counts of the quick forwarding ramp.
pub const SUBSCRIBERS: [usize; 2] = [25, 100];
/// Viewers of the quick broadcast.
pub const VIEWERS: usize = 200;
/// Idle joins of the quick join measurement.
pub const JOINS: usize = 100;
/// Each quick window.
pub const WINDOW: Duration = Duration::from_secs(4);

/// The quick run's figures (DESIGN.md §6's names), then the measurements behind them.
#[derive(Debug, Serialize)]
pub struct Quick {
    /// Arbor's egress packets per CPU-second at the largest forwarding step.
    pub forward_pps_per_core: Option<f64>,
    /// The same over Janus's.
    pub janus_ratio: Option<f64>,
    /// The same over the bare forwarder's.
    pub limit_fraction: Option<f64>,
    pub hop_latency_p50_us: Option<f64>,
    pub hop_latency_p99_us: Option<f64>,
    pub broadcast_loss_pct: Option<f64>,
    pub join_cpu_ms: Option<f64>,
    pub memory_per_idle_participant_kib: Option<f64>,
    pub forwarding: Vec<Row>,
    pub broadcast: Broadcast,
    pub joins: JoinStorm,
}

pub async fn run(args: &BenchArgs, dir: &Path, bins: &Bins) -> anyhow::Result<Quick> {
    let forwarding = side_by_side(args, &SUBSCRIBERS, WINDOW, dir, bins).await?;
    let running = three_edges(args, dir, VIEWERS, bins).await?;
    let measured = async {
        let broadcast = cascade::broadcast(&running, VIEWERS, WINDOW, args.runs).await?;
        let joins = joins::storm(&running, JOINS, WINDOW, args.runs, true).await?;
        anyhow::Ok((broadcast, joins))
    }
    .await;
    running.stop().await;
    let (broadcast, joins) = measured?;
    let last = forwarding.last();
    let median = |s: Option<Spread>| s.map(|s| s.median);
    Ok(Quick {
        forward_pps_per_core: median(last.and_then(|r| r.arbor_pps_per_cpu_s)),
        janus_ratio: median(last.and_then(|r| r.janus_ratio)),
        limit_fraction: median(last.and_then(|r| r.limit_fraction)),
        hop_latency_p50_us: median(broadcast.hop_latency_p50_us),
        hop_latency_p99_us: median(broadcast.hop_latency_p99_us),
        broadcast_loss_pct: median(broadcast.loss_pct),
        join_cpu_ms: median(joins.join_cpu_ms),
        memory_per_idle_participant_kib: median(joins.memory_per_participant_kib),
        forwarding,
        broadcast,
        joins,
    })
}

impl Quick {
    pub fn table(&self) -> String {
        let mut t = super::table(&self.forwarding);
        t.push_str(&self.broadcast.table());
        t.push_str(&self.joins.table());
        let f = |v: Option<f64>, d: usize| show(v.and_then(|v| Spread::of([v])), d);
        let mut headline = Table::new("headline", 32);
        for (k, v) in [
            ("forward_pps_per_core", f(self.forward_pps_per_core, 0)),
            ("janus_ratio", f(self.janus_ratio, 2)),
            ("limit_fraction", f(self.limit_fraction, 2)),
            ("hop_latency_p50_us", f(self.hop_latency_p50_us, 0)),
            ("hop_latency_p99_us", f(self.hop_latency_p99_us, 0)),
            ("broadcast_loss_pct", f(self.broadcast_loss_pct, 3)),
            ("join_cpu_ms", f(self.join_cpu_ms, 3)),
            (
                "memory_per_idle_participant_kib",
                f(self.memory_per_idle_participant_kib, 1),
            ),
        ] {
            headline.row(k, v);
        }
        t.push_str(&headline.finish());
        t
    }
}
