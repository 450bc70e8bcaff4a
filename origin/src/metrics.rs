//! The origin's metrics: names, and the Prometheus recorder behind `/metrics`.
//!
//! Names follow the edge's rules (`edge/src/metrics.rs`): an `arbor_` prefix, `_total` on
//! counters, bounded labels only (`class`, `code`, `role`, `state`, `status`, `version`),
//! never a meeting or edge id.
//!
//! Unlike the edge, the origin does not install a process-wide recorder: each [`Metrics`]
//! owns one and records into it with `metrics::with_local_recorder`, so tests, `arbor up` and
//! the simulator can run an origin and edges in one process without fighting over the global
//! recorder. Counting is a map lookup per event; the origin's events (API calls) are rare
//! enough for that.

use std::sync::Arc;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::store::{EdgeRecord, EdgeStatus, MeetingCounts};

/// The `Content-Type` of `/metrics` (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// HTTP responses with an error status, by `class` = `4xx` | `5xx` (the edge's name).
pub const HTTP_ERRORS: &str = "arbor_http_errors_total";
/// Problem answers by `code` (`meeting_not_found`, `token_expired`, `store_unavailable`…).
pub const PROBLEMS: &str = "arbor_origin_problems_total";
/// Meetings created (or started again) through the API.
pub const MEETINGS_CREATED: &str = "arbor_origin_meetings_created_total";
/// Meetings ended through the API.
pub const MEETINGS_ENDED: &str = "arbor_origin_meetings_ended_total";
/// Join tokens minted, by `role` = `publisher` | `subscriber`.
pub const TOKENS_MINTED: &str = "arbor_origin_tokens_minted_total";
/// Joins answered with an edge, by `placement` = `fresh` | `kept`.
pub const JOINS: &str = "arbor_origin_joins_total";
/// Meetings in the store, by `state` = `active` | `ended` (gauge, read at scrape).
pub const MEETINGS: &str = "arbor_origin_meetings";
/// Edges in the store, by `status` = `alive` | `draining` | `dead` (gauge, read at scrape).
pub const EDGES: &str = "arbor_origin_edges";
/// Always 1, with the build's `version` as a label.
pub const BUILD_INFO: &str = "arbor_build_info";
/// DNS queries answered, by `qtype` (`a`, `aaaa`, `soa`, `ns`, `any`, `other`), `rcode`
/// (`noerror`, `nxdomain`, `refused`, `formerr`, `notimp`, `servfail`, `badvers`) and `ecs`
/// (`present` | `absent`). Only with `[dns]` enabled; packets hickory refuses before the
/// handler (unparseable bodies) are not counted.
pub const DNS_QUERIES: &str = "arbor_dns_queries_total";
/// Steered answers (`edge.<zone>` A/AAAA), by the `region` of the first edge given, `other`
/// for a region not configured, `none` when no edge could take the client.
pub const DNS_ANSWERS: &str = "arbor_dns_answers_total";
/// UDP answers the rate limiter held back, by `action` = `slipped` (sent truncated) |
/// `dropped`.
pub const DNS_RATE_LIMITED: &str = "arbor_dns_rate_limited_total";

/// The origin's recorder. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    /// The DNS server's counters, rendered at scrape time.
    dns: Option<Arc<crate::dns::Stats>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder with every metric described and every fixed series at zero.
    pub fn new() -> Self {
        let metrics = Self {
            recorder: Arc::new(PrometheusBuilder::new().build_recorder()),
            dns: None,
        };
        metrics.record(|| {
            describe_counter!(
                HTTP_ERRORS,
                Unit::Count,
                "HTTP responses with an error status."
            );
            describe_counter!(PROBLEMS, Unit::Count, "Problem answers by code.");
            describe_counter!(
                MEETINGS_CREATED,
                Unit::Count,
                "Meetings created via the API."
            );
            describe_counter!(MEETINGS_ENDED, Unit::Count, "Meetings ended via the API.");
            describe_counter!(TOKENS_MINTED, Unit::Count, "Join tokens minted, by role.");
            describe_counter!(JOINS, Unit::Count, "Joins answered with an edge.");
            describe_gauge!(MEETINGS, Unit::Count, "Meetings in the store, by state.");
            describe_gauge!(EDGES, Unit::Count, "Edges in the store, by status.");
            describe_gauge!(
                BUILD_INFO,
                Unit::Count,
                "Always 1; the version label names the build."
            );
            for class in ["4xx", "5xx"] {
                counter!(HTTP_ERRORS, "class" => class).increment(0);
            }
            counter!(MEETINGS_CREATED).increment(0);
            counter!(MEETINGS_ENDED).increment(0);
            for role in ["publisher", "subscriber"] {
                counter!(TOKENS_MINTED, "role" => role).increment(0);
            }
            for placement in ["fresh", "kept"] {
                counter!(JOINS, "placement" => placement).increment(0);
            }
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        });
        metrics
    }

    /// Also renders the DNS server's counters.
    pub fn with_dns(mut self, stats: Arc<crate::dns::Stats>) -> Self {
        self.record(|| {
            describe_counter!(DNS_QUERIES, Unit::Count, "DNS queries answered.");
            describe_counter!(DNS_ANSWERS, Unit::Count, "Steered DNS answers, by region.");
            describe_counter!(
                DNS_RATE_LIMITED,
                Unit::Count,
                "UDP answers held back by the rate limiter."
            );
        });
        self.dns = Some(stats);
        self
    }

    fn record(&self, f: impl FnOnce()) {
        with_local_recorder(&*self.recorder, f);
    }

    /// Counts a response: its class if 4xx/5xx, and its problem code if it has one.
    pub fn response(&self, status: u16, problem: Option<&'static str>) {
        let class = match status {
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => return,
        };
        self.record(|| {
            counter!(HTTP_ERRORS, "class" => class).increment(1);
            if let Some(code) = problem {
                counter!(PROBLEMS, "code" => code).increment(1);
            }
        });
    }

    pub fn meeting_created(&self) {
        self.record(|| counter!(MEETINGS_CREATED).increment(1));
    }

    pub fn meeting_ended(&self) {
        self.record(|| counter!(MEETINGS_ENDED).increment(1));
    }

    /// `role`: `publisher` or `subscriber`.
    pub fn token_minted(&self, role: &'static str) {
        self.record(|| counter!(TOKENS_MINTED, "role" => role).increment(1));
    }

    /// `fresh`: the placement was decided now rather than read from the store.
    pub fn joined(&self, fresh: bool) {
        let placement = if fresh { "fresh" } else { "kept" };
        self.record(|| counter!(JOINS, "placement" => placement).increment(1));
    }

    /// Sets the store-derived gauges (when the store answered) and renders everything.
    pub fn render(&self, meetings: Option<MeetingCounts>, edges: Option<&[EdgeRecord]>) -> String {
        self.record(|| {
            if let Some(m) = meetings {
                gauge!(MEETINGS, "state" => "active").set(m.active as f64);
                gauge!(MEETINGS, "state" => "ended").set(m.ended as f64);
            }
            if let Some(edges) = edges {
                for status in [EdgeStatus::Alive, EdgeStatus::Draining, EdgeStatus::Dead] {
                    let n = edges.iter().filter(|e| e.status == status).count();
                    gauge!(EDGES, "status" => status.as_str()).set(n as f64);
                }
            }
            if let Some(dns) = &self.dns {
                for (qtype, rcode, ecs, n) in dns.queries() {
                    counter!(DNS_QUERIES, "qtype" => qtype, "rcode" => rcode, "ecs" => ecs)
                        .absolute(n);
                }
                for (region, n) in dns.answers() {
                    counter!(DNS_ANSWERS, "region" => region).absolute(n);
                }
                let (slipped, dropped) = dns.limited_counts();
                counter!(DNS_RATE_LIMITED, "action" => "slipped").absolute(slipped);
                counter!(DNS_RATE_LIMITED, "action" => "dropped").absolute(dropped);
            }
        });
        let handle = self.recorder.handle();
        handle.run_upkeep();
        handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_exist_from_the_start_and_count() {
        let m = Metrics::new();
        let text = m.render(None, None);
        for line in [
            "arbor_http_errors_total{class=\"4xx\"} 0",
            "arbor_origin_meetings_created_total 0",
            "arbor_origin_tokens_minted_total{role=\"subscriber\"} 0",
            "arbor_build_info{version=",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        m.response(404, Some("meeting_not_found"));
        m.response(200, None);
        m.meeting_created();
        let text = m.render(
            Some(MeetingCounts {
                active: 3,
                ended: 1,
            }),
            Some(&[]),
        );
        assert!(
            text.contains("arbor_http_errors_total{class=\"4xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("arbor_origin_problems_total{code=\"meeting_not_found\"} 1"));
        assert!(text.contains("arbor_origin_meetings_created_total 1"));
        assert!(text.contains("arbor_origin_meetings{state=\"active\"} 3"));
        assert!(text.contains("arbor_origin_edges{status=\"dead\"} 0"));
        assert!(
            !text.contains("arbor_dns_"),
            "no DNS series without a DNS server"
        );
        let regions = [relay_proto::RegionId::new("eu").unwrap()];
        let stats = Arc::new(crate::dns::Stats::new(&regions));
        let m = m.with_dns(stats.clone());
        stats.query(
            crate::dns::stats::Qtype::A,
            crate::dns::stats::Rcode::NoError,
            true,
        );
        stats.answered(Some(0));
        stats.limited(crate::dns::stats::Limited::Slipped);
        let text = m.render(None, None);
        for line in [
            "arbor_dns_queries_total{qtype=\"a\",rcode=\"noerror\",ecs=\"present\"} 1",
            "arbor_dns_queries_total{qtype=\"ns\",rcode=\"refused\",ecs=\"absent\"} 0",
            "arbor_dns_answers_total{region=\"eu\"} 1",
            "arbor_dns_answers_total{region=\"none\"} 0",
            "arbor_dns_rate_limited_total{action=\"slipped\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // A second origin in the same process counts on its own.
        assert!(
            Metrics::new()
                .render(None, None)
                .contains("meetings_created_total 0")
        );
    }
}
