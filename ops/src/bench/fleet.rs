//! Running `arbor load`'s fleet against a cluster the bench started, with the CPU (and, on
//! request, the memory growth during the joins) of every edge process.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use arbor_bench::load::{Auth, Camera, LoadSpec, Report, Target, run_with};
use arbor_loadgen::srtp::DEFAULT_PROFILE;

use super::probe::{CpuProbe, WindowCpu};
use crate::up::Running;

/// Subscriber joins per second in the scenarios (the join storm's are as fast as the
/// load generator's in-flight bound lets them).
pub const JOIN_RATE_PER_S: f64 = 200.0;

/// Every edge of the cluster, in cluster order.
pub fn targets(running: &Running) -> Vec<Target> {
    running
        .cluster
        .edges
        .iter()
        .map(|e| Target {
            id: e.id.to_string(),
            ws_url: e.ws_url.clone(),
        })
        .collect()
}

/// The cluster's API credentials.
pub fn auth(running: &Running) -> Auth {
    Auth {
        api_key: running.cluster.api_key.clone(),
        api_secret: running.cluster.api_secret.clone(),
    }
}

/// A spec with the bench's defaults: one 640x360 layer, one video and one audio slot,
/// the SRTP profile every side of the comparison negotiates.
pub fn spec(meeting: &str, publishers: usize, subscribers: usize) -> anyhow::Result<LoadSpec> {
    Ok(LoadSpec {
        meeting: meeting.parse()?,
        publishers,
        subscribers,
        camera: Camera::Single,
        publisher_edges: vec![0],
        subscriber_edges: vec![0],
        video_slots: 1,
        audio_slots: 1,
        max_height: 360,
        thumbnail_height: None,
        subscribe: true,
        publishers_speak: true,
        join_rate_per_s: JOIN_RATE_PER_S,
        duration: Duration::from_secs(10),
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        srtp_profile: Some(DEFAULT_PROFILE),
    })
}

/// Runs `spec` on `running`'s edges and reads their CPU over the window; with `mark`, also
/// from before the first join to the window (the joins' CPU and memory). Returns once the
/// edges have let everyone go, so that the next run starts on idle edges.
pub async fn run(
    running: &Running,
    spec: &LoadSpec,
    mark: bool,
) -> anyhow::Result<(Report, WindowCpu)> {
    let pids = running.cluster.edges.iter().map(|e| e.pid).collect();
    let mut probe = CpuProbe::new(pids);
    if mark {
        probe.mark();
    }
    let report = run_with(spec, &targets(running), &auth(running), |_| {}, &mut probe).await?;
    let cpu = probe.result()?;
    settle(running).await;
    Ok((report, cpu))
}

/// How long [`settle`] waits: past the edges' resume grace period (30 s), after which a
/// participant whose client vanished without `leave` is gone.
const SETTLE_LIMIT: Duration = Duration::from_secs(40);

/// Waits until every edge reports no participants (its `arbor_participants` gauge), at most
/// [`SETTLE_LIMIT`]. Clients that failed to join, or whose `leave` was lost, stay on an edge
/// for the resume grace period with their sessions served; a run started meanwhile would
/// pay for them.
pub async fn settle(running: &Running) {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    let http = reqwest::Client::new();
    for edge in &running.cluster.edges {
        while tokio::time::Instant::now() < deadline {
            if participants_on(&http, &edge.http_url).await == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The edge at `http_url`'s `arbor_participants` gauge, from its `/metrics`; `None` if it did
/// not answer within 2 s or has no such gauge.
pub async fn participants_on(http: &reqwest::Client, http_url: &str) -> Option<u64> {
    let url = format!("{http_url}/metrics");
    let response = http.get(&url).timeout(Duration::from_secs(2)).send().await;
    participants(&response.ok()?.text().await.ok()?)
}

/// The `arbor_participants` gauge in a Prometheus text exposition.
fn participants(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with("arbor_participants{") || l.starts_with("arbor_participants "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_participants_gauge() {
        let text = "# HELP arbor_participants Participants.\n\
                    arbor_participants_total 3\n\
                    arbor_participants{edge=\"eu-1\"} 12\n";
        assert_eq!(super::participants(text), Some(12));
        assert_eq!(super::participants("arbor_meetings 0\n"), None);
    }
}
