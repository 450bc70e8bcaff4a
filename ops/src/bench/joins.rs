//! The join storm and memory scenarios, on one edge.
//!
//! - idle joins: `joins` participants join (ICE, DTLS, signaling) as fast as the load
//!   generator's in-flight bound allows, each with one video slot it never fills (nothing
//!   flows to it). The edge's CPU from the
//!   first join to the last, divided by the joins, is the server CPU per join; its resident
//!   memory growth over the same span, divided likewise, is the memory per idle participant.
//! - first frames (join storm only): the same number join and each watches the one publisher
//!   (its 180p simulcast layer, video only, as a broadcast's viewers do); time to first frame
//!   p50/p99 and connect time.

use std::time::Duration;

use arbor_bench::load::{Camera, Report};
use serde::Serialize;

use super::cascade::BROADCAST_VIEWER_HEIGHT;
use super::fleet;
use super::spread::{Spread, Table, pair, show};
use crate::up::Running;

/// Joins per second asked of the load generator in a storm; its in-flight bound
/// (`MAX_JOINS_IN_FLIGHT`) is what really limits them.
pub const STORM_JOIN_RATE_PER_S: f64 = 1000.0;

/// How long the idle participants are held after the last join (the steady window).
const IDLE_WINDOW: Duration = Duration::from_secs(2);

/// One run of idle joins.
#[derive(Debug, Clone, Serialize)]
pub struct IdleRun {
    pub joined: usize,
    pub failed: usize,
    pub join_cpu_ms: f64,
    pub memory_per_participant_kib: f64,
}

/// The join storm (and memory) scenario over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct JoinStorm {
    pub joins: usize,
    pub join_cpu_ms: Option<Spread>,
    pub memory_per_participant_kib: Option<Spread>,
    pub connect_p50_ms: Option<Spread>,
    pub connect_p99_ms: Option<Spread>,
    pub first_frame_p50_ms: Option<Spread>,
    pub first_frame_p99_ms: Option<Spread>,
    pub idle: Vec<IdleRun>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watching: Vec<Report>,
}

/// `joins` idle joins `runs` times, and unless `idle_only`, as many joins that watch.
pub async fn storm(
    running: &Running,
    joins: usize,
    window: Duration,
    runs: u32,
    idle_only: bool,
) -> anyhow::Result<JoinStorm> {
    let mut idle = Vec::new();
    let mut watching = Vec::new();
    for run in 0..runs {
        let mut spec = fleet::spec(&format!("idle-{joins}-{run}"), 1, joins)?;
        spec.audio_slots = 0;
        spec.subscribe = false;
        spec.join_rate_per_s = STORM_JOIN_RATE_PER_S;
        spec.duration = IDLE_WINDOW;
        let (report, cpu) = fleet::run(running, &spec, true).await?;
        let joined = report.joined.saturating_sub(report.publishers).max(1) as f64;
        let cpu_s = cpu.joining_sfu_s.as_ref().map_or(0.0, |v| v.iter().sum());
        let rss = cpu.joining_rss_bytes.as_ref().map_or(0, |v| v.iter().sum());
        idle.push(IdleRun {
            joined: report.joined,
            failed: report.failed,
            join_cpu_ms: cpu_s * 1000.0 / joined,
            memory_per_participant_kib: rss as f64 / 1024.0 / joined,
        });
        if !idle_only {
            let mut spec = fleet::spec(&format!("storm-{joins}-{run}"), 1, joins)?;
            // The broadcast's light viewers: 500 full-rate subscribers would be ~70k packets/s,
            // more than two cores forward and decrypt, and the joins would measure that.
            spec.camera = Camera::Simulcast;
            spec.max_height = BROADCAST_VIEWER_HEIGHT;
            spec.audio_slots = 0;
            spec.join_rate_per_s = STORM_JOIN_RATE_PER_S;
            spec.duration = window;
            watching.push(fleet::run(running, &spec, false).await?.0);
        }
    }
    let of_idle = |f: fn(&IdleRun) -> f64| Spread::of(idle.iter().map(f));
    let of_watch = |f: fn(&Report) -> f64| Spread::of(watching.iter().map(f));
    Ok(JoinStorm {
        joins,
        join_cpu_ms: of_idle(|r| r.join_cpu_ms),
        memory_per_participant_kib: of_idle(|r| r.memory_per_participant_kib),
        connect_p50_ms: of_watch(|r| r.connect.p50_ms),
        connect_p99_ms: of_watch(|r| r.connect.p99_ms),
        first_frame_p50_ms: of_watch(|r| r.first_frame.p50_ms),
        first_frame_p99_ms: of_watch(|r| r.first_frame.p99_ms),
        idle,
        watching,
    })
}

impl JoinStorm {
    pub fn table(&self) -> String {
        let title = format!("join storm: {} joins on one edge", self.joins);
        let mut t = Table::new(&title, 31);
        t.row("server CPU per join ms", show(self.join_cpu_ms, 3));
        t.row(
            "memory per idle participant KiB",
            show(self.memory_per_participant_kib, 1),
        );
        if !self.watching.is_empty() {
            t.row(
                "connect p50 / p99 ms",
                pair(self.connect_p50_ms, self.connect_p99_ms, 0),
            );
            t.row(
                "first frame p50 / p99 ms",
                pair(self.first_frame_p50_ms, self.first_frame_p99_ms, 0),
            );
        }
        for (i, r) in self.idle.iter().enumerate() {
            t.row(
                &format!("run {} joined / failed", i + 1),
                format!("{} / {}", r.joined, r.failed),
            );
        }
        t.finish()
    }
}
