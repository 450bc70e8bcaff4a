//! `arbor load`: synthetic WebRTC publishers and subscribers (str0m clients, so DTLS-SRTP,
//! RTCP, NACK and TWCC are real) joined to a cluster from its `cluster.json`, with a progress
//! line every second and a report at the end. The fleet itself is [`arbor_bench::load`],
//! which `arbor bench` drives too.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use arbor_bench::load::{Auth, Camera, LoadSpec, Phase, Progress, Target};

use crate::cli::{CameraArg, LoadArgs};
use crate::cluster::Cluster;

/// Runs `arbor load`. Fails (exit 1) if any participant failed to join.
pub fn run(args: &LoadArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let path = args
        .cluster
        .clone()
        .unwrap_or_else(|| Cluster::path_in(data_dir));
    let cluster = Cluster::read(&path).with_context(|| {
        format!(
            "no cluster to load at {} (start one with `arbor up`, or pass --cluster)",
            path.display()
        )
    })?;
    let (targets, spec) = spec(args, &cluster)?;
    let auth = Auth {
        api_key: cluster.api_key.clone(),
        api_secret: cluster.api_secret.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(arbor_bench::load::run(
        &spec,
        &targets,
        &auth,
        print_progress,
    ))?;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The edges of `cluster` as targets, and the spec the flags describe.
pub fn spec(args: &LoadArgs, cluster: &Cluster) -> anyhow::Result<(Vec<Target>, LoadSpec)> {
    let targets: Vec<Target> = cluster
        .edges
        .iter()
        .map(|e| Target {
            id: e.id.to_string(),
            ws_url: e.ws_url.clone(),
        })
        .collect();
    if targets.is_empty() {
        bail!("the cluster has no edges");
    }
    let pick = |ids: &[String], default: Vec<usize>| -> anyhow::Result<Vec<usize>> {
        if ids.is_empty() {
            return Ok(default);
        }
        ids.iter()
            .map(|id| {
                targets.iter().position(|t| t.id == *id).with_context(|| {
                    let known: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
                    format!(
                        "no edge {id:?} in the cluster (it has {})",
                        known.join(", ")
                    )
                })
            })
            .collect()
    };
    let spec = LoadSpec {
        meeting: args.meeting.clone(),
        publishers: args.publishers,
        subscribers: args.subscribers,
        camera: match args.camera {
            CameraArg::Simulcast => Camera::Simulcast,
            CameraArg::Single => Camera::Single,
        },
        publisher_edges: pick(&args.publisher_edges, vec![0])?,
        subscriber_edges: pick(&args.subscriber_edges, (0..targets.len()).collect())?,
        video_slots: args.video_slots,
        audio_slots: args.audio_slots,
        max_height: args.max_height,
        thumbnail_height: args.thumbnail_height,
        subscribe: true,
        publishers_speak: !args.silent_publishers,
        join_rate_per_s: args.join_rate,
        duration: args.duration,
        bind_ip: args.bind,
        srtp_profile: None,
    };
    arbor_bench::load::plan(&spec, targets.len())?;
    Ok((targets, spec))
}

/// One progress line on stderr: rewritten in place on a terminal, one line each otherwise.
fn print_progress(p: &Progress) {
    let line = match p.phase {
        Phase::Joining => format!(
            "joining: {} of {} joined, {} failed",
            p.joined, p.total, p.failed
        ),
        Phase::Measuring => format!(
            "measuring: {} joined, {} failed, {:.0} frames/s rendered",
            p.joined, p.failed, p.rendered_fps
        ),
    };
    let mut err = std::io::stderr().lock();
    let elapsed = p.elapsed.as_secs_f64();
    let _ = if err.is_terminal() {
        write!(err, "\r[{elapsed:6.1}s] {line:<70}")
    } else {
        writeln!(err, "[{elapsed:6.1}s] {line}")
    };
    let _ = err.flush();
}
