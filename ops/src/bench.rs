//! `arbor bench`: Arbor's forwarding measured on this machine, with the load generator of
//! `arbor load` ([`arbor_bench::load`]) and the SFU's CPU read from `/proc`
//! ([`arbor_bench::cpu`]).
//!
//! The forwarding comparison ([`forwarding`]) runs inside a network namespace the bench
//! creates (Janus never gathers ICE candidates on loopback, so the namespace has a veth pair):
//! a one-edge Arbor cluster started as `arbor up` would, Janus's VideoRoom with a generated
//! configuration, and the bare forwarder. At each subscriber count the three take turns with
//! the same publisher stream, SRTP profile and subscribers; a side stops stepping up once its
//! subscribers lose more than 0.5% or the CPU runs out.

pub mod forwarding;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use arbor_bench::janus::{Janus, JanusConfig};
use arbor_bench::load::{Auth, Target};
use arbor_bench::netns::Namespace;
use serde::Serialize;

use crate::cli::BenchArgs;
use crate::up::plan::{IpBase, Plan};
use crate::up::{self, Bins, EDGE_BIN, ORIGIN_BIN};
use forwarding::{Sfu, Step};

/// Runs `arbor bench`: enters a network namespace of its own (before any thread starts, so
/// every thread and child process is inside it), then runs the forwarding comparison.
pub fn run(args: &BenchArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let bins = Bins {
        origin: up::process::find_bin(ORIGIN_BIN, args.origin_bin.as_deref(), "--origin-bin")?,
        edge: up::process::find_bin(EDGE_BIN, args.edge_bin.as_deref(), "--edge-bin")?,
    };
    let _namespace = Namespace::enter().context("arbor bench runs in a network namespace")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = std::path::absolute(data_dir.join("bench")).context("no working directory")?;
    let rows = runtime.block_on(side_by_side(args, &dir, &bins))?;
    if args.json {
        let out = serde_json::json!({ "forwarding": rows });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// One subscriber count, measured on each side.
#[derive(Debug, Serialize)]
pub struct Row {
    pub subscribers: usize,
    pub arbor: Option<Step>,
    pub janus: Option<Step>,
    pub bare: Option<Step>,
    /// Arbor's egress packets per CPU-second over Janus's.
    pub janus_ratio: Option<f64>,
    /// Arbor's egress packets per CPU-second over the bare forwarder's.
    pub limit_fraction: Option<f64>,
}

/// The ramp, alternating Arbor, Janus and the bare forwarder at each subscriber count so that
/// the machine's drift affects them alike. A side that hit a limit sits out the later steps.
async fn side_by_side(args: &BenchArgs, dir: &Path, bins: &Bins) -> anyhow::Result<Vec<Row>> {
    let largest = args.subscribers.iter().max().copied().unwrap_or(0);
    let settings = [(
        "ARBOR_LIMITS_MAX_PARTICIPANTS".to_owned(),
        (largest + 1).max(100).to_string(),
    )];
    let running = up::start(
        Plan::new(1, IpBase(0), false),
        &dir.join("arbor"),
        bins,
        &settings,
    )
    .await?;
    let janus_dir = dir.join("janus");
    std::fs::create_dir_all(&janus_dir)
        .with_context(|| format!("cannot create {}", janus_dir.display()))?;
    let janus = Janus::start(&janus_dir, JanusConfig::default()).await?;
    let sfu = arbor_sfu(&running);
    let mut rows = Vec::new();
    let (mut arbor_done, mut janus_done) = (false, false);
    for (i, &n) in args.subscribers.iter().enumerate() {
        if arbor_done && janus_done {
            break;
        }
        let mut row = Row {
            subscribers: n,
            arbor: None,
            janus: None,
            bare: None,
            janus_ratio: None,
            limit_fraction: None,
        };
        if !arbor_done {
            let s = forwarding::step(&sfu, &format!("fwd-{i}"), n, args.window).await?;
            report("arbor", &s, args.json);
            arbor_done = s.limit().is_some();
            row.arbor = Some(s);
        }
        if !janus_done {
            let s = forwarding::janus_step(&janus, 4242 + i as u64, n, args.window).await?;
            report("janus", &s, args.json);
            janus_done = s.limit().is_some();
            row.janus = Some(s);
        }
        // The bare forwarder gets the publisher's packet rate as Arbor's subscribers saw it.
        let pps = row
            .arbor
            .as_ref()
            .map_or(150.0, |a| a.egress_pps / n.max(1) as f64);
        let window = args.window;
        let bare = tokio::task::spawn_blocking(move || {
            forwarding::bare_step(n, pps.round() as u32, window)
        })
        .await??;
        report("bare", &bare, args.json);
        row.bare = Some(bare);
        let ratio = |a: Option<&Step>, b: Option<&Step>| match (a, b) {
            (Some(a), Some(b)) if b.pps_per_cpu_s > 0.0 => Some(a.pps_per_cpu_s / b.pps_per_cpu_s),
            _ => None,
        };
        row.janus_ratio = ratio(row.arbor.as_ref(), row.janus.as_ref());
        row.limit_fraction = ratio(row.arbor.as_ref(), row.bare.as_ref());
        rows.push(row);
    }
    let _ = janus.stop().await;
    running.stop().await;
    Ok(rows)
}

fn arbor_sfu(running: &up::Running) -> Sfu {
    let edge = &running.cluster.edges[0];
    Sfu {
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
    }
}

fn report(side: &str, s: &Step, quiet: bool) {
    if !quiet {
        eprintln!(
            "{side:>5}, {:>4} subscribers: {:>8.0} pkt/s on {:.2} cores = {:>7.0} pkt/CPU-s, loss {:.2}%",
            s.subscribers, s.egress_pps, s.sfu_cores, s.pps_per_cpu_s, s.loss_pct
        );
    }
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:>11} {:>14} {:>14} {:>14} {:>8} {:>8} {:>10} {:>10}",
        "subscribers",
        "arbor pkt/CPU-s",
        "janus pkt/CPU-s",
        "bare pkt/CPU-s",
        "×janus",
        "of bare",
        "arbor loss",
        "janus loss"
    );
    let pps = |s: &Option<Step>| {
        s.as_ref()
            .map_or("-".to_owned(), |s| format!("{:.0}", s.pps_per_cpu_s))
    };
    let loss = |s: &Option<Step>| {
        s.as_ref()
            .map_or("-".to_owned(), |s| format!("{:.2}%", s.loss_pct))
    };
    let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}"));
    for r in rows {
        let _ = writeln!(
            t,
            "{:>11} {:>14} {:>14} {:>14} {:>8} {:>8} {:>10} {:>10}",
            r.subscribers,
            pps(&r.arbor),
            pps(&r.janus),
            pps(&r.bare),
            ratio(r.janus_ratio),
            ratio(r.limit_fraction),
            loss(&r.arbor),
            loss(&r.janus)
        );
    }
    t
}
