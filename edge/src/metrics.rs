//! The edge's metrics: their names, and the Prometheus exporter behind `/metrics`.
//!
//! Names follow Prometheus practice: an `arbor_` prefix, base units (seconds, bytes), `_total`
//! on counters, and only bounded labels (`edge`, `reason`, `direction`, `type`, `kind`,
//! `result`, `class`; never a meeting, participant or track id: those go in logs).
//!
//! Wiring, in the shell:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use arbor_edge::metrics;
//! # let edge_id = relay_proto::EdgeId::new("local-1")?;
//! let handle = metrics::install(&edge_id)?; // once, before any metric is touched
//! // Every metrics::UPKEEP_INTERVAL, on some task: drains histogram samples.
//! handle.run_upkeep();
//! // GET /metrics:
//! let body = metrics::render(&handle); // Content-Type: metrics::CONTENT_TYPE
//! # Ok(()) }
//! ```
//!
//! Recording uses the `metrics` macros with the names below, or the helpers that fix the label
//! values (`metrics::dropped(DropReason::Oversize).increment(1)`). A macro call looks the
//! series up in a map; on the forwarding path, take the `Counter`/`Histogram` handle once per
//! worker and keep it.

use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use relay_proto::EdgeId;

/// How often the shell must call [`PrometheusHandle::run_upkeep`]. Without upkeep, histogram
/// samples pile up in memory between scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The `Content-Type` of [`render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Participants connected to this edge (gauge).
pub const PARTICIPANTS: &str = "arbor_participants";
/// Meetings with at least one participant on this edge (gauge).
pub const MEETINGS: &str = "arbor_meetings";
/// Tracks published by this edge's participants, by `kind` = `audio` | `video` (gauge).
pub const PUBLISHED_TRACKS: &str = "arbor_published_tracks";
/// Subscriptions (a track bound to a subscriber's slot) served by this edge (gauge).
pub const SUBSCRIPTIONS: &str = "arbor_subscriptions";
/// WHIP ingest sessions (gauge).
pub const WHIP_SESSIONS: &str = "arbor_whip_sessions";
/// WHEP playback sessions (gauge).
pub const WHEP_SESSIONS: &str = "arbor_whep_sessions";
/// RTP packets received from clients.
pub const RTP_PACKETS_RECEIVED: &str = "arbor_rtp_packets_received_total";
/// RTP packets sent to clients.
pub const RTP_PACKETS_SENT: &str = "arbor_rtp_packets_sent_total";
/// RTP bytes received from clients (payload and headers, before SRTP).
pub const RTP_BYTES_RECEIVED: &str = "arbor_rtp_bytes_received_total";
/// RTP bytes sent to clients.
pub const RTP_BYTES_SENT: &str = "arbor_rtp_bytes_sent_total";
/// RTCP NACKs received from subscribers.
pub const NACKS_RECEIVED: &str = "arbor_rtcp_nacks_received_total";
/// Keyframe requests sent to publishers, by `type` = `pli` | `fir`.
pub const KEYFRAME_REQUESTS_SENT: &str = "arbor_keyframe_requests_sent_total";
/// Keyframe requests received from subscribers, by `type` = `pli` | `fir`.
pub const KEYFRAME_REQUESTS_RECEIVED: &str = "arbor_keyframe_requests_received_total";
/// Keyframe requests not forwarded to a publisher because of rate limiting.
pub const KEYFRAME_REQUESTS_SUPPRESSED: &str = "arbor_keyframe_requests_suppressed_total";
/// Simulcast layer switches for a subscriber, by `direction` = `up` | `down`.
pub const LAYER_SWITCHES: &str = "arbor_layer_switches_total";
/// Time from an RTP packet's arrival to its last copy's send, in seconds (histogram).
pub const FORWARD_LATENCY: &str = "arbor_forward_latency_seconds";
/// UDP datagrams dropped by the edge, by `reason` (see [`DropReason`]).
pub const UDP_DATAGRAMS_DROPPED: &str = "arbor_udp_datagrams_dropped_total";
/// Join attempts, by `result` = `ok` or the error code sent to the client.
pub const JOINS: &str = "arbor_joins_total";
/// Time from `join` to `joined`, in seconds (histogram).
pub const JOIN_DURATION: &str = "arbor_join_duration_seconds";
/// Server CPU time spent admitting one participant, in seconds (histogram).
pub const JOIN_CPU: &str = "arbor_join_cpu_seconds";
/// Signaling messages handled, by `result` = `ok` or the error code sent back.
pub const SIGNAL_MESSAGES: &str = "arbor_signal_messages_total";
/// Clients whose signaling socket was dropped because they stopped reading it (their queue
/// of server messages filled up); they may resume.
pub const SIGNAL_QUEUE_OVERFLOWS: &str = "arbor_signal_queue_overflows_total";
/// HTTP responses with an error status, by `class` = `4xx` | `5xx`.
pub const HTTP_ERRORS: &str = "arbor_http_errors_total";
/// Always 1, with the edge's `version` as a label.
pub const BUILD_INFO: &str = "arbor_build_info";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: its name, kind, unit, help text and label names.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
    /// Each label with every value it can take, pre-registered at zero so dashboards and
    /// alerts see the series before the first event.
    pub labels: &'static [(&'static str, &'static [&'static str])],
}

const fn m(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
        labels: &[],
    }
}

const fn labeled(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    help: &'static str,
    labels: &'static [(&'static str, &'static [&'static str])],
) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
        labels,
    }
}

const KEYFRAME_TYPES: &[(&str, &[&str])] = &[("type", &["pli", "fir"])];
const RESULT_OK: &[(&str, &[&str])] = &[("result", &["ok"])];

/// Every metric the edge exports.
pub const ALL: &[Metric] = {
    use Kind::{Counter as C, Gauge as G, Histogram as H};
    &[
        m(
            PARTICIPANTS,
            G,
            Unit::Count,
            "Participants connected to this edge.",
        ),
        m(
            MEETINGS,
            G,
            Unit::Count,
            "Meetings with at least one participant on this edge.",
        ),
        labeled(
            PUBLISHED_TRACKS,
            G,
            Unit::Count,
            "Tracks published by this edge's participants.",
            &[("kind", &["audio", "video"])],
        ),
        m(
            SUBSCRIPTIONS,
            G,
            Unit::Count,
            "Track subscriptions served by this edge.",
        ),
        m(WHIP_SESSIONS, G, Unit::Count, "WHIP ingest sessions."),
        m(WHEP_SESSIONS, G, Unit::Count, "WHEP playback sessions."),
        m(
            RTP_PACKETS_RECEIVED,
            C,
            Unit::Count,
            "RTP packets received from clients.",
        ),
        m(
            RTP_PACKETS_SENT,
            C,
            Unit::Count,
            "RTP packets sent to clients.",
        ),
        m(
            RTP_BYTES_RECEIVED,
            C,
            Unit::Bytes,
            "RTP bytes received from clients.",
        ),
        m(RTP_BYTES_SENT, C, Unit::Bytes, "RTP bytes sent to clients."),
        m(
            NACKS_RECEIVED,
            C,
            Unit::Count,
            "RTCP NACKs received from subscribers.",
        ),
        labeled(
            KEYFRAME_REQUESTS_SENT,
            C,
            Unit::Count,
            "Keyframe requests (PLI/FIR) sent to publishers.",
            KEYFRAME_TYPES,
        ),
        labeled(
            KEYFRAME_REQUESTS_RECEIVED,
            C,
            Unit::Count,
            "Keyframe requests (PLI/FIR) received from subscribers.",
            KEYFRAME_TYPES,
        ),
        m(
            KEYFRAME_REQUESTS_SUPPRESSED,
            C,
            Unit::Count,
            "Keyframe requests not forwarded because of rate limiting.",
        ),
        labeled(
            LAYER_SWITCHES,
            C,
            Unit::Count,
            "Simulcast layer switches for subscribers.",
            &[("direction", &["up", "down"])],
        ),
        m(
            FORWARD_LATENCY,
            H,
            Unit::Seconds,
            "Time from an RTP packet's arrival to its last forwarded copy's send.",
        ),
        labeled(
            UDP_DATAGRAMS_DROPPED,
            C,
            Unit::Count,
            "UDP datagrams dropped by the edge.",
            &[("reason", DropReason::ALL_STR)],
        ),
        labeled(JOINS, C, Unit::Count, "Join attempts by result.", RESULT_OK),
        m(
            SIGNAL_QUEUE_OVERFLOWS,
            C,
            Unit::Count,
            "Signaling sockets dropped because the client stopped reading them.",
        ),
        m(JOIN_DURATION, H, Unit::Seconds, "Time from join to joined."),
        m(
            JOIN_CPU,
            H,
            Unit::Seconds,
            "Server CPU time spent admitting one participant.",
        ),
        labeled(
            SIGNAL_MESSAGES,
            C,
            Unit::Count,
            "Signaling messages handled by result.",
            RESULT_OK,
        ),
        labeled(
            HTTP_ERRORS,
            C,
            Unit::Count,
            "HTTP responses with an error status, by status class.",
            &[("class", &["4xx", "5xx"])],
        ),
        labeled(
            BUILD_INFO,
            G,
            Unit::Count,
            "Always 1; the version label names the build.",
            &[("version", &[env!("CARGO_PKG_VERSION")])],
        ),
    ]
};

/// Buckets of [`FORWARD_LATENCY`], in seconds: 10 µs to 50 ms.
pub const FORWARD_LATENCY_BUCKETS_S: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05,
];

/// Buckets of [`JOIN_DURATION`], in seconds: 5 ms to 10 s.
pub const JOIN_DURATION_BUCKETS_S: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of [`JOIN_CPU`], in seconds: 50 µs to 25 ms (the goal is ≤ 0.3 ms).
pub const JOIN_CPU_BUCKETS_S: [f64; 9] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
];

/// Buckets of any other histogram, so none is ever rendered as a summary.
const DEFAULT_BUCKETS_S: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0];

/// Why the edge dropped a UDP datagram (the `reason` label of [`UDP_DATAGRAMS_DROPPED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// From an address no session knows, and not a STUN binding for a known ufrag.
    UnknownSource,
    /// No session's `Rtc` accepted it.
    NotAccepted,
    /// Not parsable as STUN, DTLS, RTP or RTCP.
    Malformed,
    /// Larger than the largest datagram the edge handles.
    Oversize,
    /// The socket's send buffer was full (outgoing).
    SendBufferFull,
}

impl DropReason {
    /// Every reason, in label form.
    pub const ALL_STR: &'static [&'static str] = &[
        "unknown_source",
        "not_accepted",
        "malformed",
        "oversize",
        "send_buffer_full",
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownSource => "unknown_source",
            Self::NotAccepted => "not_accepted",
            Self::Malformed => "malformed",
            Self::Oversize => "oversize",
            Self::SendBufferFull => "send_buffer_full",
        }
    }
}

/// A simulcast layer switch's direction (the label of [`LAYER_SWITCHES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Up,
    Down,
}

/// A keyframe request's RTCP message (the `type` label of the keyframe request counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyframeRequest {
    Pli,
    Fir,
}

/// A track's media kind (the `kind` label of [`PUBLISHED_TRACKS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// The [`UDP_DATAGRAMS_DROPPED`] counter for `reason`.
pub fn dropped(reason: DropReason) -> Counter {
    ::metrics::counter!(UDP_DATAGRAMS_DROPPED, "reason" => reason.as_str())
}

/// The [`LAYER_SWITCHES`] counter for `direction`.
pub fn layer_switches(direction: Direction) -> Counter {
    let direction = match direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    ::metrics::counter!(LAYER_SWITCHES, "direction" => direction)
}

fn keyframe_type(kind: KeyframeRequest) -> &'static str {
    match kind {
        KeyframeRequest::Pli => "pli",
        KeyframeRequest::Fir => "fir",
    }
}

/// The [`KEYFRAME_REQUESTS_SENT`] counter (to publishers) for `kind`.
pub fn keyframe_requests_sent(kind: KeyframeRequest) -> Counter {
    ::metrics::counter!(KEYFRAME_REQUESTS_SENT, "type" => keyframe_type(kind))
}

/// The [`KEYFRAME_REQUESTS_RECEIVED`] counter (from subscribers) for `kind`.
pub fn keyframe_requests_received(kind: KeyframeRequest) -> Counter {
    ::metrics::counter!(KEYFRAME_REQUESTS_RECEIVED, "type" => keyframe_type(kind))
}

/// The [`PUBLISHED_TRACKS`] gauge for `kind`.
pub fn published_tracks(kind: MediaKind) -> Gauge {
    let kind = match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    };
    ::metrics::gauge!(PUBLISHED_TRACKS, "kind" => kind)
}

/// The [`JOINS`] counter for `result`: `"ok"` or a stable error code (`token_expired`,
/// `meeting_full`, …). Never pass free text: each value is a series.
pub fn joins(result: &'static str) -> Counter {
    ::metrics::counter!(JOINS, "result" => result)
}

/// The [`SIGNAL_MESSAGES`] counter for `result`: `"ok"` or a stable error code.
pub fn signal_messages(result: &'static str) -> Counter {
    ::metrics::counter!(SIGNAL_MESSAGES, "result" => result)
}

/// Counts an HTTP response in [`HTTP_ERRORS`] if its status is 4xx or 5xx.
pub fn http_response(status: u16) {
    let class = match status {
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => return,
    };
    ::metrics::counter!(HTTP_ERRORS, "class" => class).increment(1);
}

/// The [`FORWARD_LATENCY`] histogram.
pub fn forward_latency() -> Histogram {
    ::metrics::histogram!(FORWARD_LATENCY)
}

/// The exporter's configuration: explicit buckets for every histogram (never summaries) and
/// the global label `edge`. [`install`] uses it; tests build a local recorder from it.
pub fn builder(edge: &EdgeId) -> PrometheusBuilder {
    let overrides: [(&str, &[f64]); 3] = [
        (FORWARD_LATENCY, &FORWARD_LATENCY_BUCKETS_S),
        (JOIN_DURATION, &JOIN_DURATION_BUCKETS_S),
        (JOIN_CPU, &JOIN_CPU_BUCKETS_S),
    ];
    let mut builder = PrometheusBuilder::new()
        .add_global_label("edge", edge.as_str())
        .set_buckets(&DEFAULT_BUCKETS_S)
        .expect("the default buckets are not empty");
    for (name, buckets) in overrides {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("the bucket lists are not empty");
    }
    builder
}

/// Installs the Prometheus recorder as the process-wide `metrics` recorder, describes and
/// registers every metric in [`ALL`], and returns the handle that renders `/metrics`.
///
/// Call once, early: metrics recorded before it are lost. The caller must call
/// [`PrometheusHandle::run_upkeep`] every [`UPKEEP_INTERVAL`]. Fails if a global recorder is
/// already installed.
pub fn install(edge: &EdgeId) -> Result<PrometheusHandle, BuildError> {
    let handle = builder(edge).install_recorder()?;
    describe();
    Ok(handle)
}

/// Describes every metric in [`ALL`] to the current recorder and registers each series at
/// zero, so a scrape shows every name from the start. [`install`] calls it.
pub fn describe() {
    for metric in ALL {
        let (name, unit, help) = (metric.name, metric.unit, metric.help);
        match metric.kind {
            Kind::Counter => ::metrics::describe_counter!(name, unit, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, unit, help),
        }
        let series: Vec<Vec<::metrics::Label>> = match metric.labels {
            [] => vec![Vec::new()],
            [(key, values)] => values
                .iter()
                .map(|v| vec![::metrics::Label::new(*key, *v)])
                .collect(),
            _ => unreachable!("no metric in ALL has two labels"),
        };
        for labels in series {
            match metric.kind {
                Kind::Counter => ::metrics::counter!(name, labels).increment(0),
                Kind::Gauge if name == BUILD_INFO => ::metrics::gauge!(name, labels).set(1.0),
                Kind::Gauge => ::metrics::gauge!(name, labels).increment(0.0),
                Kind::Histogram => drop(::metrics::histogram!(name, labels)),
            }
        }
    }
}

/// The `/metrics` response body.
pub fn render(handle: &PrometheusHandle) -> String {
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(record: impl FnOnce()) -> String {
        let recorder = builder(&EdgeId::new("test-1").unwrap()).build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            record();
        });
        render(&handle)
    }

    #[test]
    fn histograms_have_explicit_buckets() {
        let text = scrape(|| {
            forward_latency().record(0.000_03);
            forward_latency().record(0.2);
            ::metrics::histogram!(JOIN_CPU).record(0.000_2);
        });
        assert!(
            text.contains(r#"arbor_forward_latency_seconds_bucket{edge="test-1",le="0.00001"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"arbor_forward_latency_seconds_bucket{edge="test-1",le="0.00005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"arbor_forward_latency_seconds_bucket{edge="test-1",le="+Inf"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"arbor_forward_latency_seconds_count{edge="test-1"} 2"#));
        assert!(text.contains(r#"arbor_join_cpu_seconds_bucket{edge="test-1",le="0.00025"} 1"#));
        assert!(!text.contains("quantile"), "no summaries: {text}");
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("arbor_forward_latency_seconds_bucket"))
            .count();
        assert_eq!(buckets, FORWARD_LATENCY_BUCKETS_S.len() + 1);
    }

    #[test]
    fn every_metric_is_described_and_present_from_the_start() {
        let text = scrape(|| {});
        for metric in ALL {
            assert!(
                text.contains(&format!("# HELP {} {}", metric.name, metric.help)),
                "{}: {text}",
                metric.name
            );
            let series = match metric.kind {
                Kind::Histogram => format!("\n{}_bucket{{", metric.name),
                _ => format!("\n{}{{", metric.name),
            };
            assert!(text.contains(&series), "{}", metric.name);
        }
        assert!(
            text.contains(
                r#"arbor_udp_datagrams_dropped_total{edge="test-1",reason="oversize"} 0"#
            )
        );
        assert!(text.contains(&format!(
            "arbor_build_info{{edge=\"test-1\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn helpers_record_with_their_labels() {
        let text = scrape(|| {
            dropped(DropReason::SendBufferFull).increment(3);
            layer_switches(Direction::Down).increment(1);
            keyframe_requests_sent(KeyframeRequest::Fir).increment(2);
            keyframe_requests_received(KeyframeRequest::Pli).increment(5);
            published_tracks(MediaKind::Video).increment(1.0);
            joins("token_expired").increment(1);
            signal_messages("ok").increment(7);
            http_response(404);
            http_response(503);
            http_response(200);
        });
        for line in [
            r#"arbor_udp_datagrams_dropped_total{edge="test-1",reason="send_buffer_full"} 3"#,
            r#"arbor_layer_switches_total{edge="test-1",direction="down"} 1"#,
            r#"arbor_keyframe_requests_sent_total{edge="test-1",type="fir"} 2"#,
            r#"arbor_keyframe_requests_received_total{edge="test-1",type="pli"} 5"#,
            r#"arbor_published_tracks{edge="test-1",kind="video"} 1"#,
            r#"arbor_joins_total{edge="test-1",result="token_expired"} 1"#,
            r#"arbor_signal_messages_total{edge="test-1",result="ok"} 7"#,
            r#"arbor_http_errors_total{edge="test-1",class="4xx"} 1"#,
            r#"arbor_http_errors_total{edge="test-1",class="5xx"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line}: {text}");
        }
    }

    #[test]
    fn names_follow_prometheus_practice() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "duplicate names");
        for metric in ALL {
            let name = metric.name;
            assert!(name.starts_with("arbor_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(
                metric.kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}"
            );
            if metric.unit == Unit::Seconds {
                assert!(name.ends_with("_seconds"), "{name}");
            }
            if metric.unit == Unit::Bytes {
                assert!(
                    name.ends_with("_bytes_received_total") || name.ends_with("_bytes_sent_total")
                );
            }
            assert!(metric.labels.len() <= 1, "{name}");
            assert!(metric.help.ends_with('.'), "{name}");
        }
        let reasons: Vec<&str> = [
            DropReason::UnknownSource,
            DropReason::NotAccepted,
            DropReason::Malformed,
            DropReason::Oversize,
            DropReason::SendBufferFull,
        ]
        .map(DropReason::as_str)
        .to_vec();
        assert_eq!(reasons, DropReason::ALL_STR);
    }

    #[test]
    fn buckets_are_increasing() {
        for buckets in [
            &FORWARD_LATENCY_BUCKETS_S[..],
            &JOIN_DURATION_BUCKETS_S,
            &JOIN_CPU_BUCKETS_S,
            &DEFAULT_BUCKETS_S,
        ] {
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
        }
        assert_eq!(FORWARD_LATENCY_BUCKETS_S[0], 0.000_01);
        assert_eq!(FORWARD_LATENCY_BUCKETS_S[11], 0.05);
    }
}
