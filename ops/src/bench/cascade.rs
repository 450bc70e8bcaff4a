//! The cascade scenarios, on a three-edge cluster whose backbone links run over loopback
//! (no impairment: the figures are the edges' own).
//!
//! - broadcast: one publisher on the first edge, viewers spread over all three; the relay
//!   edges get the stream over one QUIC hop each. Reports loss, latency per edge and each
//!   edge's CPU.
//! - hop: the same viewers twice: all on the publisher's edge, then half of them on a second
//!   edge. The hop's latency is what the second edge's viewers see beyond the first's; its
//!   CPU is what the two edges together spend beyond one edge serving everyone, per packet
//!   relayed.

use std::time::Duration;

use arbor_bench::load::{Camera, Report};
use serde::Serialize;

use super::fleet;
use super::probe::WindowCpu;
use super::spread::{Spread, Table, pair, show};
use crate::up::Running;

/// Most viewers per edge in the hop scenario: enough for steady percentiles, few enough that
/// the load generator is never the bottleneck.
pub const HOP_VIEWERS_PER_EDGE: usize = 20;

/// One broadcast run.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastRun {
    pub report: Report,
    /// Each edge's CPU over the window, in cores.
    pub edge_cores: Vec<f64>,
    /// Latency the relay edges' viewers saw beyond the publisher's edge's, in µs.
    pub hop_latency_p50_us: f64,
    pub hop_latency_p99_us: f64,
}

/// The broadcast scenario over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    pub viewers: usize,
    pub loss_pct: Option<Spread>,
    pub latency_p50_ms: Option<Spread>,
    pub latency_p99_ms: Option<Spread>,
    pub first_frame_p50_ms: Option<Spread>,
    pub first_frame_p99_ms: Option<Spread>,
    pub failed_joins: Option<Spread>,
    pub hop_latency_p50_us: Option<Spread>,
    pub hop_latency_p99_us: Option<Spread>,
    pub runs: Vec<BroadcastRun>,
}

/// The layer a broadcast's viewers watch: the publisher sends browser-like simulcast and the
/// audience takes 320x180 (~150 kbit/s), video only. A thousand viewers of the 360p stream
/// with audio would be ~140k packets/s for the load generator to decrypt, beyond this
/// 2-core machine with three edges beside it; the forwarding scenario measures full-rate
/// subscribers.
pub const BROADCAST_VIEWER_HEIGHT: u32 = 180;

/// 1 → `viewers` over the three edges of `running`, `runs` times.
pub async fn broadcast(
    running: &Running,
    viewers: usize,
    window: Duration,
    runs: u32,
) -> anyhow::Result<Broadcast> {
    let mut all = Vec::new();
    for run in 0..runs {
        let mut spec = fleet::spec(&format!("broadcast-{viewers}-{run}"), 1, viewers)?;
        spec.camera = Camera::Simulcast;
        spec.max_height = BROADCAST_VIEWER_HEIGHT;
        spec.audio_slots = 0;
        spec.subscriber_edges = (0..running.cluster.edges.len()).collect();
        spec.duration = window;
        let (report, cpu) = fleet::run(running, &spec, false).await?;
        let (hop_latency_p50_us, hop_latency_p99_us) = hop_latency_us(&report);
        all.push(BroadcastRun {
            edge_cores: cores(&cpu, &report),
            hop_latency_p50_us,
            hop_latency_p99_us,
            report,
        });
    }
    let of = |f: fn(&BroadcastRun) -> f64| Spread::of(all.iter().map(f));
    Ok(Broadcast {
        viewers,
        loss_pct: of(|r| r.report.loss_pct),
        latency_p50_ms: of(|r| r.report.latency.p50_ms),
        latency_p99_ms: of(|r| r.report.latency.p99_ms),
        first_frame_p50_ms: of(|r| r.report.first_frame.p50_ms),
        first_frame_p99_ms: of(|r| r.report.first_frame.p99_ms),
        failed_joins: of(|r| r.report.failed as f64),
        hop_latency_p50_us: of(|r| r.hop_latency_p50_us),
        hop_latency_p99_us: of(|r| r.hop_latency_p99_us),
        runs: all,
    })
}

/// The relay edges' viewers' latency percentiles beyond the publisher's edge's (edge 0), in
/// µs, averaged over the relay edges. A difference of percentiles, not a percentile of
/// differences: each viewer is measured once, on one edge.
fn hop_latency_us(r: &Report) -> (f64, f64) {
    let Some((first, relays)) = r.by_edge.split_first() else {
        return (f64::NAN, f64::NAN);
    };
    let relays: Vec<_> = relays.iter().filter(|e| e.latency.samples > 0).collect();
    if relays.is_empty() || first.latency.samples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let n = relays.len() as f64;
    let p50 = relays.iter().map(|e| e.latency.p50_ms).sum::<f64>() / n;
    let p99 = relays.iter().map(|e| e.latency.p99_ms).sum::<f64>() / n;
    (
        (p50 - first.latency.p50_ms) * 1000.0,
        (p99 - first.latency.p99_ms) * 1000.0,
    )
}

fn cores(cpu: &WindowCpu, r: &Report) -> Vec<f64> {
    let secs = r.measured_s.max(1e-9);
    cpu.sfu_s.iter().map(|s| s / secs).collect()
}

/// One hop run: the CPU and latency with every viewer on edge 0, then split over edges 0
/// and 1.
#[derive(Debug, Clone, Serialize)]
pub struct HopRun {
    pub one_edge: Report,
    pub one_edge_cpu_s: f64,
    pub two_edges: Report,
    pub two_edges_cpu_s: f64,
    pub hop_latency_p50_us: f64,
    pub hop_latency_p99_us: f64,
    /// CPU the two edges spent beyond one edge, per packet relayed over the hop, in µs.
    pub hop_cpu_us_per_packet: f64,
}

/// The hop scenario over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub viewers_per_edge: usize,
    pub hop_latency_p50_us: Option<Spread>,
    pub hop_latency_p99_us: Option<Spread>,
    pub hop_cpu_us_per_packet: Option<Spread>,
    pub runs: Vec<HopRun>,
}

/// The hop scenario on the first two edges of `running`, with `per_edge` viewers on each
/// (at most [`HOP_VIEWERS_PER_EDGE`]).
pub async fn hop(
    running: &Running,
    per_edge: usize,
    window: Duration,
    runs: u32,
) -> anyhow::Result<Hop> {
    let per_edge = per_edge.clamp(1, HOP_VIEWERS_PER_EDGE);
    let viewers = 2 * per_edge;
    let mut all = Vec::new();
    for run in 0..runs {
        let mut spec = fleet::spec(&format!("hop-one-{run}"), 1, viewers)?;
        spec.duration = window;
        let (one_edge, one_cpu) = fleet::run(running, &spec, false).await?;
        spec.meeting = format!("hop-two-{run}").parse()?;
        spec.subscriber_edges = vec![0, 1];
        let (two_edges, two_cpu) = fleet::run(running, &spec, false).await?;
        let (hop_latency_p50_us, hop_latency_p99_us) = hop_latency_us(&two_edges);
        // Per second, so that windows of slightly different lengths compare.
        let one_cpu_s = one_cpu.sfu_total_s() / one_edge.measured_s.max(1e-9);
        let two_cpu_s = two_cpu.sfu_total_s() / two_edges.measured_s.max(1e-9);
        let relayed_pps = two_edges
            .by_edge
            .get(1)
            .filter(|e| e.joined > 0)
            .map_or(0.0, |e| {
                e.subscriber_packets as f64 / e.joined as f64 / two_edges.measured_s.max(1e-9)
            });
        all.push(HopRun {
            hop_latency_p50_us,
            hop_latency_p99_us,
            hop_cpu_us_per_packet: (two_cpu_s - one_cpu_s) * 1e6 / relayed_pps,
            one_edge,
            one_edge_cpu_s: one_cpu_s,
            two_edges,
            two_edges_cpu_s: two_cpu_s,
        });
    }
    let of = |f: fn(&HopRun) -> f64| Spread::of(all.iter().map(f));
    Ok(Hop {
        viewers_per_edge: per_edge,
        hop_latency_p50_us: of(|r| r.hop_latency_p50_us),
        hop_latency_p99_us: of(|r| r.hop_latency_p99_us),
        hop_cpu_us_per_packet: of(|r| r.hop_cpu_us_per_packet),
        runs: all,
    })
}

impl Broadcast {
    pub fn table(&self) -> String {
        let title = format!("broadcast: 1 → {} viewers over three edges", self.viewers);
        let mut t = Table::new(&title, 26);
        t.row("loss %", show(self.loss_pct, 3));
        t.row("failed joins", show(self.failed_joins, 0));
        t.row(
            "latency p50 / p99 ms",
            pair(self.latency_p50_ms, self.latency_p99_ms, 1),
        );
        t.row(
            "first frame p50 / p99 ms",
            pair(self.first_frame_p50_ms, self.first_frame_p99_ms, 0),
        );
        t.row(
            "hop latency p50 / p99 µs",
            pair(self.hop_latency_p50_us, self.hop_latency_p99_us, 0),
        );
        for (i, run) in self.runs.iter().enumerate() {
            let cores: Vec<String> = run.edge_cores.iter().map(|c| format!("{c:.2}")).collect();
            t.row(&format!("run {} edge cores", i + 1), cores.join(" / "));
        }
        t.finish()
    }
}

impl Hop {
    pub fn table(&self) -> String {
        let title = format!(
            "cascade hop: {} viewers on the publisher's edge and {} one hop away",
            self.viewers_per_edge, self.viewers_per_edge
        );
        let mut t = Table::new(&title, 26);
        t.row(
            "hop latency p50 / p99 µs",
            pair(self.hop_latency_p50_us, self.hop_latency_p99_us, 0),
        );
        t.row("hop CPU µs per packet", show(self.hop_cpu_us_per_packet, 1));
        t.finish()
    }
}
