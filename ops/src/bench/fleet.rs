//! Running `arbor load`'s fleet against a cluster the bench started, with the CPU (and, on
//! request, the memory growth during the joins) of every edge process.

use std::net::{IpAddr, Ipv4Addr};

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
        join_rate_per_s: JOIN_RATE_PER_S,
        duration: std::time::Duration::from_secs(10),
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        srtp_profile: Some(DEFAULT_PROFILE),
    })
}

/// Runs `spec` on `running`'s edges and reads their CPU over the window; with `mark`, also
/// from before the first join to the window (the joins' CPU and memory).
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
    Ok((report, probe.result()?))
}
