//! The meeting scenario: `participants` people in one meeting on one edge, each publishing a
//! simulcast camera and a microphone and watching a gallery: one large tile (720p) and up to
//! 24 thumbnails (180p), plus three audio slots. Every participant is two clients of the load
//! generator (a publisher and a viewer), which costs the edge an extra session each beside
//! what one browser would; the media it forwards is the same.

use std::time::Duration;

use arbor_bench::load::plan::MAX_VIDEO_SLOTS;
use arbor_bench::load::{Camera, Report};
use serde::Serialize;

use super::fleet;
use super::spread::{Spread, Table, pair, show};
use crate::up::Running;

/// Audio slots per viewer: the loudest speakers, as the web client has.
const AUDIO_SLOTS: usize = 3;

/// One meeting run.
#[derive(Debug, Clone, Serialize)]
pub struct MeetingRun {
    pub report: Report,
    pub edge_cores: f64,
    pub egress_pps: f64,
}

/// The meeting scenario over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Meeting {
    pub participants: usize,
    pub video_slots: usize,
    pub loss_pct: Option<Spread>,
    pub latency_p50_ms: Option<Spread>,
    pub latency_p99_ms: Option<Spread>,
    pub fps_per_slot: Option<Spread>,
    pub edge_cores: Option<Spread>,
    pub egress_pps: Option<Spread>,
    pub failed_joins: Option<Spread>,
    pub runs: Vec<MeetingRun>,
}

pub async fn meeting(
    running: &Running,
    participants: usize,
    window: Duration,
    runs: u32,
) -> anyhow::Result<Meeting> {
    let video_slots = participants.min(MAX_VIDEO_SLOTS);
    let mut all = Vec::new();
    for run in 0..runs {
        let mut spec = fleet::spec(
            &format!("meeting-{participants}-{run}"),
            participants,
            participants,
        )?;
        spec.camera = Camera::Simulcast;
        spec.video_slots = video_slots;
        spec.audio_slots = AUDIO_SLOTS.min(participants);
        spec.max_height = 720;
        spec.thumbnail_height = Some(180);
        spec.duration = window;
        let (report, cpu) = fleet::run(running, &spec, false).await?;
        let secs = report.measured_s.max(1e-9);
        all.push(MeetingRun {
            edge_cores: cpu.sfu_total_s() / secs,
            egress_pps: report.subscriber_packets as f64 / secs,
            report,
        });
    }
    let of = |f: fn(&MeetingRun) -> f64| Spread::of(all.iter().map(f));
    Ok(Meeting {
        participants,
        video_slots,
        loss_pct: of(|r| r.report.loss_pct),
        latency_p50_ms: of(|r| r.report.latency.p50_ms),
        latency_p99_ms: of(|r| r.report.latency.p99_ms),
        fps_per_slot: of(|r| r.report.fps_per_slot),
        edge_cores: of(|r| r.edge_cores),
        egress_pps: of(|r| r.egress_pps),
        failed_joins: of(|r| r.report.failed as f64),
        runs: all,
    })
}

impl Meeting {
    pub fn table(&self) -> String {
        let title = format!(
            "meeting: {} participants, gallery of 1 × 720p + {} × 180p each",
            self.participants,
            self.video_slots.saturating_sub(1)
        );
        let mut t = Table::new(&title, 26);
        t.row("loss %", show(self.loss_pct, 3));
        t.row("failed joins", show(self.failed_joins, 0));
        t.row(
            "latency p50 / p99 ms",
            pair(self.latency_p50_ms, self.latency_p99_ms, 1),
        );
        t.row("frames/s per slot", show(self.fps_per_slot, 1));
        t.row("edge cores", show(self.edge_cores, 2));
        t.row("egress packets/s", show(self.egress_pps, 0));
        t.finish()
    }
}
