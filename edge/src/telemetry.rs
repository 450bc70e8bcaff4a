//! Export of the media workers' counters through the metrics recorder (`crate::metrics`).
//!
//! Workers keep plain integers on the packet path (no atomics, no map lookups); at each
//! scrape the HTTP side copies their sums into the recorder as absolute values and renders.
//! The forwarding-latency histogram is pre-bucketed by the workers, so it is rendered here
//! directly in the Prometheus text format.

use std::fmt::Write;
use std::sync::OnceLock;

use edge_core::WorkerStats;
use edge_core::worker::LATENCY_BUCKETS_US;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use relay_proto::EdgeId;

use crate::metrics as m;

/// The process-wide recorder handle (one recorder per process, shared by every edge a test
/// or `arbor up` starts in it).
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    edge: EdgeId,
}

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

impl Metrics {
    /// Installs the process-wide recorder on first use; later edges in the same process
    /// share it (its `edge` label is the first edge's id).
    pub fn install(edge: &EdgeId) -> anyhow::Result<Metrics> {
        let handle = HANDLE
            .get_or_init(|| m::install(edge).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
        Ok(Metrics {
            handle,
            edge: edge.clone(),
        })
    }

    /// Must run every [`m::UPKEEP_INTERVAL`].
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn signal_connected(&self) {
        counter!(m::SIGNAL_MESSAGES, "result" => "connected").increment(1);
    }

    pub fn join_result(&self, result: &'static str) {
        m::joins(result).increment(1);
    }

    pub fn signal_message(&self, result: &'static str) {
        m::signal_messages(result).increment(1);
    }

    pub fn resource_created(&self, kind: &'static str) {
        counter!("arbor_http_resources_created_total", "type" => kind).increment(1);
    }

    /// Copies the workers' counters into the recorder and renders everything.
    /// The Prometheus text; `sessions` is (WHIP, WHEP) sessions live now.
    pub fn render(&self, workers: &[WorkerStats], sessions: (usize, usize)) -> String {
        let sum = |f: fn(&WorkerStats) -> u64| workers.iter().map(f).sum::<u64>();
        counter!(m::RTP_PACKETS_RECEIVED).absolute(sum(|s| s.rtp_in));
        counter!(m::RTP_BYTES_RECEIVED).absolute(sum(|s| s.rtp_bytes_in));
        counter!(m::RTP_PACKETS_SENT).absolute(sum(|s| s.rtp_forwarded));
        counter!(m::RTP_BYTES_SENT).absolute(sum(|s| s.rtp_bytes_forwarded));
        counter!(m::NACKS_RECEIVED).absolute(sum(|s| s.nacks_received));
        counter!(m::KEYFRAME_REQUESTS_SENT, "type" => "pli")
            .absolute(sum(|s| s.keyframe_requests_sent));
        counter!(m::KEYFRAME_REQUESTS_RECEIVED, "type" => "pli")
            .absolute(sum(|s| s.keyframe_requests_received));
        counter!(m::KEYFRAME_REQUESTS_SUPPRESSED).absolute(sum(|s| s.keyframe_requests_merged));
        counter!(m::LAYER_SWITCHES, "direction" => "up").absolute(sum(|s| s.layer_switches_up));
        counter!(m::LAYER_SWITCHES, "direction" => "down").absolute(sum(|s| s.layer_switches_down));
        for (reason, f) in [
            (
                "unknown_source",
                (|s: &WorkerStats| s.dropped_unknown_source) as fn(&WorkerStats) -> u64,
            ),
            ("not_accepted", |s| s.dropped_not_accepted),
            ("malformed", |s| s.dropped_malformed),
            ("oversize", |s| s.dropped_oversize),
            ("send_buffer_full", |s| s.dropped_transmit_queue),
        ] {
            counter!(m::UDP_DATAGRAMS_DROPPED, "reason" => reason).absolute(sum(f));
        }
        gauge!(m::PARTICIPANTS).set(sum(|s| s.participants) as f64);
        gauge!(m::MEETINGS).set(sum(|s| s.meetings) as f64);
        gauge!(m::PUBLISHED_TRACKS).set(sum(|s| s.tracks) as f64);
        gauge!(m::SUBSCRIPTIONS).set(sum(|s| s.subscriptions) as f64);
        gauge!(m::WHIP_SESSIONS).set(sessions.0 as f64);
        gauge!(m::WHEP_SESSIONS).set(sessions.1 as f64);
        let mut out = m::render(&self.handle);
        self.render_latency(&mut out, workers);
        out
    }

    fn render_latency(&self, out: &mut String, workers: &[WorkerStats]) {
        let name = m::FORWARD_LATENCY;
        let edge = self.edge.as_str();
        let _ = writeln!(
            out,
            "# HELP {name} Time from a packet's arrival to its hand-over to a subscriber's session."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, le_us) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += workers.iter().map(|s| s.forward_latency[i]).sum::<u64>();
            let le = *le_us as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{edge=\"{edge}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let total: u64 = workers
            .iter()
            .map(|s| s.forward_latency.iter().sum::<u64>())
            .sum();
        let sum_s = workers
            .iter()
            .map(|s| s.forward_latency_sum_us)
            .sum::<u64>() as f64
            / 1e6;
        let _ = writeln!(out, "{name}_bucket{{edge=\"{edge}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum{{edge=\"{edge}\"}} {sum_s}");
        let _ = writeln!(out, "{name}_count{{edge=\"{edge}\"}} {total}");
    }
}
