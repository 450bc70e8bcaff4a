//! What a load run measured, aggregated over every client: the numbers `arbor load` prints as
//! a table or as JSON, and the ones `arbor bench` compares.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use arbor_loadgen::protocol::Kind;
use arbor_loadgen::{ClientStats, Histogram, SlotStats};
use serde::Serialize;

/// Distinct error messages kept in a report.
pub const MAX_ERROR_KINDS: usize = 8;

/// How one participant of the plan ended.
#[derive(Debug)]
pub enum Outcome {
    /// Joined; its statistics at the end of the run.
    Joined {
        publisher: bool,
        stats: Box<ClientStats>,
    },
    /// Never joined, or failed to subscribe.
    Failed { publisher: bool, error: String },
}

/// Two percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: u64,
}

/// The aggregate of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub publishers: usize,
    pub subscribers: usize,
    /// Participants that joined (and, for subscribers, subscribed).
    pub joined: usize,
    pub failed: usize,
    /// The most common failures, with their counts.
    pub errors: Vec<(String, usize)>,
    /// Signaling `join` to ICE+DTLS connected.
    pub connect: Percentiles,
    /// Subscribe to the first rendered frame, per video slot.
    pub first_frame: Percentiles,
    /// One-way latency, publisher's stamp to the subscriber's frame release, per frame.
    pub latency: Percentiles,
    /// Video slots that rendered at least one frame, of those subscribed.
    pub video_slots_rendering: usize,
    pub video_slots: usize,
    /// Frames rendered per second per video slot, on average over the run.
    pub fps_per_slot: f64,
    /// Packets lost to the subscribers (sequence gaps the frame buffer skipped), in percent
    /// of the packets they should have received, video and audio.
    pub loss_pct: f64,
    /// Freezes (more than 500 ms without a frame while subscribed) and their total time.
    pub freezes: u64,
    pub freeze_s: f64,
    /// Frames released after a hole, and frames missing in stamp-numbered gaps.
    pub non_contiguous_frames: u64,
    pub frames_missing: u64,
    /// Mean interarrival jitter over video slots.
    pub jitter_ms: f64,
    /// Media received by all subscribers over the last second, in Mbit/s.
    pub ingress_mbps: f64,
    /// Media sent by all publishers, packets (video and audio).
    pub publisher_packets: u64,
    /// Packets received by all subscribers.
    pub subscriber_packets: u64,
    /// How long subscribers were measured (from the last join to the end).
    pub measured_s: f64,
    /// What the subscribers of each edge saw, in the order of the cluster's edges (empty
    /// when the run had one edge). A cascade's hop shows as the difference between the
    /// latency at the publishers' edge and at an edge one relay hop away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_edge: Vec<EdgeReport>,
}

/// The subscribers of one edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EdgeReport {
    pub edge: String,
    pub subscribers: usize,
    pub joined: usize,
    pub first_frame: Percentiles,
    pub latency: Percentiles,
    pub loss_pct: f64,
    /// Packets this edge's subscribers received in the window.
    pub subscriber_packets: u64,
}

impl EdgeReport {
    /// The edge's part of a report aggregated over its subscribers only.
    pub fn of(edge: &str, r: &Report) -> Self {
        EdgeReport {
            edge: edge.to_owned(),
            subscribers: r.subscribers,
            joined: r.joined,
            first_frame: r.first_frame,
            latency: r.latency,
            loss_pct: r.loss_pct,
            subscriber_packets: r.subscriber_packets,
        }
    }
}

/// Aggregates `outcomes`; `measured` is the steady window after the last join.
pub fn aggregate<'a>(
    outcomes: impl IntoIterator<Item = &'a Outcome>,
    measured: Duration,
) -> Report {
    let mut r = Report {
        measured_s: measured.as_secs_f64(),
        ..Report::default()
    };
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut connect, mut first_frame) = (Vec::new(), Vec::new());
    let mut latency = Histogram::default();
    let (mut received, mut skipped) = (0u64, 0u64);
    let (mut fps_sum, mut jitter_sum) = (0.0, 0.0);
    for o in outcomes {
        let (publisher, stats) = match o {
            Outcome::Joined { publisher, stats } => (*publisher, stats),
            Outcome::Failed { publisher, error } => {
                count_role(&mut r, *publisher);
                r.failed += 1;
                *errors.entry(error.as_str()).or_default() += 1;
                continue;
            }
        };
        count_role(&mut r, publisher);
        r.joined += 1;
        connect.extend(stats.connect_time);
        if publisher {
            let p = &stats.publisher;
            r.publisher_packets += p.layers.iter().map(|l| l.packets).sum::<u64>() + p.audio_frames;
            continue;
        }
        for s in stats.slots.iter().filter(|s| s.expecting) {
            received += s.packets;
            skipped += s.packets_skipped;
            r.subscriber_packets += s.packets;
            r.ingress_mbps += s.bitrate_bps as f64 / 1e6;
            r.freezes += s.freezes;
            r.freeze_s += s.freeze_total.as_secs_f64();
            r.non_contiguous_frames += s.non_contiguous;
            r.frames_missing += s.frames_missing;
            if s.kind == Some(Kind::Video) {
                video_slot(
                    &mut r,
                    s,
                    &mut first_frame,
                    &mut latency,
                    &mut fps_sum,
                    &mut jitter_sum,
                );
            }
        }
    }
    r.connect = percentiles(&mut connect);
    r.first_frame = percentiles(&mut first_frame);
    r.latency = Percentiles {
        p50_ms: ms(latency.percentile(0.5)),
        p99_ms: ms(latency.percentile(0.99)),
        samples: latency.count(),
    };
    if r.video_slots > 0 {
        r.fps_per_slot = fps_sum / r.video_slots as f64;
        r.jitter_ms = jitter_sum / r.video_slots as f64;
    }
    if received + skipped > 0 {
        r.loss_pct = 100.0 * skipped as f64 / (received + skipped) as f64;
    }
    let mut errors: Vec<(String, usize)> =
        errors.into_iter().map(|(e, n)| (e.to_owned(), n)).collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    errors.truncate(MAX_ERROR_KINDS);
    r.errors = errors;
    r
}

fn count_role(r: &mut Report, publisher: bool) {
    if publisher {
        r.publishers += 1;
    } else {
        r.subscribers += 1;
    }
}

fn video_slot(
    r: &mut Report,
    s: &SlotStats,
    first_frame: &mut Vec<Duration>,
    latency: &mut Histogram,
    fps_sum: &mut f64,
    jitter_sum: &mut f64,
) {
    r.video_slots += 1;
    if s.frames_rendered > 0 {
        r.video_slots_rendering += 1;
    }
    first_frame.extend(s.first_frame);
    latency.merge(&s.latency.histogram);
    if r.measured_s > 0.0 {
        *fps_sum += s.frames_rendered as f64 / r.measured_s;
    }
    *jitter_sum += s.jitter_ms;
}

fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e3
    };
    if samples.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        samples: samples.len() as u64,
    }
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

impl Report {
    /// The report as an aligned two-column table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "{k:<28} {v}");
        };
        row(
            "participants",
            format!(
                "{} publishers, {} subscribers",
                self.publishers, self.subscribers
            ),
        );
        row(
            "joined / failed",
            format!("{} / {}", self.joined, self.failed),
        );
        row("connect p50 / p99", pct(&self.connect));
        row("first frame p50 / p99", pct(&self.first_frame));
        row("latency p50 / p99", pct(&self.latency));
        row(
            "video slots rendering",
            format!("{} of {}", self.video_slots_rendering, self.video_slots),
        );
        row("frames/s per slot", format!("{:.1}", self.fps_per_slot));
        row("loss", format!("{:.3} %", self.loss_pct));
        row(
            "freezes",
            format!("{} ({:.1} s frozen)", self.freezes, self.freeze_s),
        );
        row(
            "frames after a hole",
            self.non_contiguous_frames.to_string(),
        );
        row("jitter (mean)", format!("{:.2} ms", self.jitter_ms));
        row("received", format!("{:.1} Mbit/s", self.ingress_mbps));
        row("measured for", format!("{:.1} s", self.measured_s));
        for (error, n) in &self.errors {
            row("error", format!("{n} × {error}"));
        }
        for e in &self.by_edge {
            row(
                &format!("on {}", e.edge),
                format!(
                    "{} subscribers, first frame {}, latency {}, loss {:.3} %",
                    e.joined,
                    pct(&e.first_frame),
                    pct(&e.latency),
                    e.loss_pct
                ),
            );
        }
        t
    }
}

fn pct(p: &Percentiles) -> String {
    if p.samples == 0 {
        return "-".into();
    }
    format!(
        "{:.1} / {:.1} ms ({} samples)",
        p.p50_ms, p.p99_ms, p.samples
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles_of_samples() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50_ms, p.p99_ms, p.samples), (50.0, 99.0, 100));
        assert_eq!(percentiles(&mut []), Percentiles::default());
    }

    #[test]
    fn failures_are_grouped_and_counted() {
        let failed = |e: &str| Outcome::Failed {
            publisher: false,
            error: e.into(),
        };
        let outcomes = [failed("timeout"), failed("refused"), failed("timeout")];
        let r = aggregate(&outcomes, Duration::from_secs(1));
        assert_eq!((r.subscribers, r.failed, r.joined), (3, 3, 0));
        assert_eq!(r.errors, vec![("timeout".into(), 2), ("refused".into(), 1)]);
        assert!(r.table().contains("2 × timeout"));
    }
}
