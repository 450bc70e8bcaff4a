//! `arbor bench`: Arbor's forwarding measured on this machine, with the load generator of
//! `arbor load` ([`arbor_bench::load`]) and the SFU's CPU read from `/proc`
//! ([`arbor_bench::cpu`]).
//!
//! The forwarding ramp ([`forwarding`]) starts a one-edge cluster as `arbor up` would, then
//! steps the number of subscribers up until loss or the machine's CPU ends it.

pub mod forwarding;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use arbor_bench::load::{Auth, Target};

use crate::cli::BenchArgs;
use crate::up::plan::{IpBase, Plan};
use crate::up::{self, Bins, EDGE_BIN, ORIGIN_BIN};
use forwarding::{Sfu, Step};

/// Runs `arbor bench`.
pub fn run(args: &BenchArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let bins = Bins {
        origin: up::process::find_bin(ORIGIN_BIN, args.origin_bin.as_deref(), "--origin-bin")?,
        edge: up::process::find_bin(EDGE_BIN, args.edge_bin.as_deref(), "--edge-bin")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = data_dir.join("bench");
    let (steps, limit) = runtime.block_on(arbor_ramp(args, &dir, &bins))?;
    if args.json {
        let out = serde_json::json!({ "forwarding": { "arbor": steps, "limit": limit } });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&steps, limit.as_deref()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The forwarding ramp against a one-edge cluster started in `dir`.
async fn arbor_ramp(
    args: &BenchArgs,
    dir: &Path,
    bins: &Bins,
) -> anyhow::Result<(Vec<Step>, Option<String>)> {
    let largest = args.subscribers.iter().max().copied().unwrap_or(0);
    let settings = [(
        "ARBOR_LIMITS_MAX_PARTICIPANTS".to_owned(),
        (largest + 1).max(100).to_string(),
    )];
    let running = up::start(Plan::new(1, IpBase(0), false), dir, bins, &settings).await?;
    let edge = &running.cluster.edges[0];
    let sfu = Sfu {
        pid: edge.pid,
        target: Target {
            id: edge.id.to_string(),
            ws_url: edge.ws_url.clone(),
        },
        auth: Auth {
            api_key: running.cluster.api_key.clone(),
            api_secret: running.cluster.api_secret.clone(),
        },
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let result = forwarding::ramp(&sfu, &args.subscribers, args.window, |s| {
        if !args.json {
            eprintln!(
                "arbor, {} subscribers: {:.0} pkt/s, {:.2} cores, loss {:.2}%",
                s.subscribers, s.egress_pps, s.sfu_cores, s.loss_pct
            );
        }
    })
    .await;
    running.stop().await;
    result
}

fn table(steps: &[Step], limit: Option<&str>) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:>11} {:>10} {:>9} {:>7} {:>14} {:>7} {:>17} {:>8}",
        "subscribers",
        "egress/s",
        "Mbit/s",
        "cores",
        "pkt/CPU-s",
        "loss%",
        "latency p50/p99",
        "machine"
    );
    for s in steps {
        let _ = writeln!(
            t,
            "{:>11} {:>10.0} {:>9.1} {:>7.2} {:>14.0} {:>7.2} {:>8.1}/{:<8.1} {:>8.2} {:>7.0}%",
            s.subscribers,
            s.egress_pps,
            s.egress_mbps,
            s.sfu_cores,
            s.pps_per_cpu_s,
            s.loss_pct,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.loadgen_cores,
            s.machine_busy * 100.0
        );
    }
    if let Some(limit) = limit {
        let _ = writeln!(t, "stopped: {limit}");
    }
    t
}
