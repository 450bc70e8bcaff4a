//! The forwarding scenario: one publisher (one 640x360 VP8 layer at 1 Mbit/s and Opus) and N
//! subscribers on one SFU, N stepped up until subscribers lose more than
//! [`MAX_LOSS_PCT`] or the machine's CPU saturates. Each step reports egress packets per
//! second and per CPU-second of the SFU process, loss and one-way latency.

use std::time::Duration;

use std::sync::Arc;

use super::probe::{CpuProbe, WindowCpu};
use anyhow::Context as _;
use arbor_bench::bare::{self, MeasureOptions};
use arbor_bench::janus::{Janus, JanusPeer, JanusRoom, RoomConfig};
use arbor_bench::load::run::JOIN_TIMEOUT;
use arbor_bench::load::{Auth, Progress, Report, Target, measure, run_with};
use arbor_loadgen::srtp::DEFAULT_PROFILE;
use arbor_loadgen::{ClientConfig, Epoch, MediaHandle, VideoConfig};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Loss above which a step ends the ramp (DESIGN.md §6's scale bound).
pub const MAX_LOSS_PCT: f64 = 0.5;
/// Share of the machine's cores the SFU and the load generator together may use before the
/// ramp ends: beyond it they compete for CPU and the figures measure the machine, not the
/// SFU. (The whole machine's CPU is reported too, but other tenants share it.)
pub const MAX_CPU_SHARE: f64 = 0.9;

/// One step of the ramp.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub subscribers: usize,
    /// Packets the subscribers received per second (the SFU's egress).
    pub egress_pps: f64,
    /// Egress media, Mbit/s.
    pub egress_mbps: f64,
    /// The SFU process's CPU, in cores (1.0 = one core busy).
    pub sfu_cores: f64,
    /// Egress packets per CPU-second of the SFU.
    pub pps_per_cpu_s: f64,
    pub loss_pct: f64,
    /// The window's figures from the synthetic clients and the machine; the bare forwarder,
    /// whose sinks only count, has none of them.
    pub clients: Option<ClientSide>,
}

/// What the load generator measured over a step's window.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSide {
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// The load generator's CPU (this process), in cores.
    pub loadgen_cores: f64,
    /// The whole machine's CPU over the window, 0 to 1 (other tenants included).
    pub machine_busy: f64,
    pub failed_joins: usize,
}

impl Step {
    /// Whether the ramp stops after this step, and why.
    pub fn limit(&self) -> Option<String> {
        let (failed, loadgen_cores) = self
            .clients
            .as_ref()
            .map_or((0, 0.0), |c| (c.failed_joins, c.loadgen_cores));
        if failed > 0 {
            return Some(format!("{failed} subscribers failed to join"));
        }
        if self.loss_pct > MAX_LOSS_PCT {
            return Some(format!("loss {:.2}% > {MAX_LOSS_PCT}%", self.loss_pct));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let used = self.sfu_cores + loadgen_cores;
        if used > MAX_CPU_SHARE * cores {
            return Some(format!(
                "the SFU and the load generator used {used:.2} of {cores} cores"
            ));
        }
        None
    }
}

/// Where the SFU under test is, and how to join it.
#[derive(Debug, Clone)]
pub struct Sfu {
    /// The process whose CPU is measured.
    pub pid: u32,
    pub target: Target,
    pub auth: Auth,
    /// Address the clients bind.
    pub client_ip: std::net::IpAddr,
}

/// One step against `sfu`: `subscribers` join meeting `meeting`, are measured for `window`
/// and leave.
pub async fn step(
    sfu: &Sfu,
    meeting: &str,
    subscribers: usize,
    window: Duration,
) -> anyhow::Result<Step> {
    let mut spec = super::fleet::spec(meeting, 1, subscribers)?;
    spec.duration = window;
    spec.bind_ip = sfu.client_ip;
    let mut probe = CpuProbe::new(vec![sfu.pid]);
    let report = run_with(
        &spec,
        std::slice::from_ref(&sfu.target),
        &sfu.auth,
        |_| {},
        &mut probe,
    )
    .await?;
    let cpu = probe.result()?;
    Ok(summarize(subscribers, &report, &cpu))
}

fn summarize(subscribers: usize, r: &Report, cpu: &WindowCpu) -> Step {
    let cpu_s = cpu.sfu_total_s();
    let secs = r.measured_s.max(1e-9);
    let egress_pps = r.subscriber_packets as f64 / secs;
    Step {
        subscribers,
        egress_pps,
        egress_mbps: r.ingress_mbps,
        sfu_cores: cpu_s / secs,
        pps_per_cpu_s: if cpu_s > 0.0 {
            r.subscriber_packets as f64 / cpu_s
        } else {
            0.0
        },
        loss_pct: r.loss_pct,
        clients: Some(ClientSide {
            latency_p50_ms: r.latency.p50_ms,
            latency_p99_ms: r.latency.p99_ms,
            loadgen_cores: cpu.loadgen_s / secs,
            machine_busy: cpu.machine_busy,
            failed_joins: r.failed,
        }),
    }
}

/// Runs one step of `sfu` with `subscribers`, failing with a message naming the step if it
/// has not finished within [`step_limit`]: a step never hangs the ramp, whatever the SFU or
/// its process does.
pub async fn bounded(
    sfu: &str,
    subscribers: usize,
    window: Duration,
    step: impl Future<Output = anyhow::Result<Step>>,
) -> anyhow::Result<Step> {
    let limit = step_limit(subscribers, window);
    tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "the {sfu} step with {subscribers} subscribers did not finish within {} s",
            limit.as_secs()
        ))
    })
}

/// The longest a step may take: its window, the joins (each bounded by [`JOIN_TIMEOUT`], at
/// most [`MAX_JANUS_JOINS_IN_FLIGHT`] at a time, which a healthy SFU finishes in a fraction
/// of that), the leaving, and room for a loaded machine.
pub fn step_limit(subscribers: usize, window: Duration) -> Duration {
    let waves = subscribers.div_ceil(MAX_JANUS_JOINS_IN_FLIGHT).max(1) as u32;
    window + JOIN_TIMEOUT * (2 + waves)
}

/// Subscriber joins to Janus in flight at once (each is a few HTTP round trips and ICE).
pub const MAX_JANUS_JOINS_IN_FLIGHT: usize = 32;

/// One step against Janus: room `room` gets the same publisher (one 640x360 layer and Opus)
/// and `subscribers` viewers, measured for `window` like Arbor's.
pub async fn janus_step(
    janus: &Janus,
    room: u64,
    subscribers: usize,
    window: Duration,
) -> anyhow::Result<Step> {
    let room = Arc::new(
        JanusRoom::create(
            janus,
            RoomConfig {
                room,
                ..RoomConfig::default()
            },
        )
        .await?,
    );
    let epoch = Epoch(Instant::now().into_std());
    let mut camera = ClientConfig::new(epoch);
    camera.video = Some(VideoConfig::single_layer());
    camera.source_id = 1;
    camera.srtp_profile = Some(DEFAULT_PROFILE);
    // Talking, as Arbor's publisher does (`fleet::spec`): Janus forwards audio either way.
    if let Some(audio) = camera.audio.as_mut() {
        audio.speaking = true;
    }
    let publisher = room.publisher(camera).await?;
    let feed = publisher
        .feed()
        .context("Janus gave the publisher no feed id")?;

    let gate = Arc::new(Semaphore::new(MAX_JANUS_JOINS_IN_FLIGHT));
    let mut joins = JoinSet::new();
    for n in 0..subscribers {
        let (room, gate) = (Arc::clone(&room), Arc::clone(&gate));
        joins.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut config = ClientConfig::subscriber(epoch, 0, 0);
            config.seed = n as u64 + 2;
            config.srtp_profile = Some(DEFAULT_PROFILE);
            let peer = room
                .subscriber(feed, config)
                .await
                .map_err(|e| e.to_string())?;
            peer.wait_connected(JOIN_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(peer)
        });
    }
    let mut peers = Vec::with_capacity(subscribers);
    while let Some(joined) = joins.join_next().await {
        peers.push(joined.unwrap_or_else(|e| Err(e.to_string())));
    }

    let mut probe = CpuProbe::new(vec![janus.pid()]);
    let media: Vec<Result<&MediaHandle, String>> = peers
        .iter()
        .map(|p| p.as_ref().map(JanusPeer::media).map_err(Clone::clone))
        .collect();
    let mut progress = Progress::default();
    let report = measure(
        &[publisher.media()],
        &media,
        window,
        (Instant::now(), &mut progress, &mut |_: &Progress| {}),
        &mut probe,
    )
    .await;
    let cpu = probe.result()?;
    for peer in peers.into_iter().flatten() {
        let _ = peer.close().await;
    }
    let _ = publisher.close().await;
    if let Ok(room) = Arc::try_unwrap(room) {
        let _ = room.destroy().await;
    }
    Ok(summarize(subscribers, &report, &cpu))
}

/// The bare forwarder with `subscribers` sinks and the publisher's packet rate `pps`, for
/// `window`: what the machine can do with no SFU logic at all.
pub fn bare_step(subscribers: usize, pps: u32, window: Duration) -> anyhow::Result<Step> {
    let m = bare::measure_with(&MeasureOptions::new(subscribers, pps, window))?;
    Ok(Step {
        subscribers,
        egress_pps: m.egress_pps,
        egress_mbps: m.egress_pps * m.mean_datagram_bytes * 8.0 / 1e6,
        sfu_cores: m.cpu_s / m.window_s.max(1e-9),
        pps_per_cpu_s: m.egress_pps_per_cpu_s,
        loss_pct: m.loss_pct,
        clients: None,
    })
}
