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

pub mod cascade;
pub mod fleet;
pub mod forwarding;
pub mod joins;
pub mod meeting;
pub mod plot;
pub mod probe;
pub mod quick;
pub mod spread;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use arbor_bench::janus::{Janus, JanusConfig};
use arbor_bench::netns::Namespace;
use serde::Serialize;

use crate::cli::{BenchArgs, Scenario};
use crate::up::plan::{IpBase, Plan};
use crate::up::{self, Bins, EDGE_BIN, ORIGIN_BIN};
use forwarding::{Sfu, Step};
use plot::Series;
use spread::{Spread, show};

/// Runs `arbor bench`: enters a network namespace of its own (before any thread starts, so
/// every thread and child process is inside it), then runs the scenario asked for.
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
    let out = if args.quick {
        let q = runtime.block_on(quick::run(args, &dir, &bins))?;
        if args.json {
            serde_json::to_value(&q)?
        } else {
            print!("{}", q.table());
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        runtime.block_on(scenarios(args, &dir, &bins))?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the scenario `args` names (every one for `all`), printing each table as it is done,
/// and returns them all as one JSON object.
async fn scenarios(args: &BenchArgs, dir: &Path, bins: &Bins) -> anyhow::Result<serde_json::Value> {
    let wants = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let show = |table: String| {
        if !args.json {
            print!("{table}");
        }
    };
    let mut out = serde_json::Map::new();
    if wants(Scenario::Forwarding) {
        let rows = side_by_side(args, &args.subscribers, args.window, dir, bins).await?;
        show(table(&rows));
        if let Some(plot_dir) = &args.plot {
            write_plots(&rows, plot_dir)?;
        }
        out.insert("forwarding".into(), serde_json::to_value(&rows)?);
    }
    if wants(Scenario::Meeting) {
        let running = one_edge(args, dir, "meeting", args.participants * 2, bins).await?;
        let m = meeting::meeting(&running, args.participants, args.window, args.runs).await;
        running.stop().await;
        let m = m?;
        show(m.table());
        out.insert("meeting".into(), serde_json::to_value(&m)?);
    }
    if wants(Scenario::Broadcast) || wants(Scenario::Hop) {
        let running = three_edges(args, dir, args.viewers, bins).await?;
        let result = cascade_scenarios(args, &running, &wants, &show, &mut out).await;
        running.stop().await;
        result?;
    }
    if wants(Scenario::JoinStorm) || wants(Scenario::Memory) {
        let running = one_edge(args, dir, "joins", args.joins + 1, bins).await?;
        let idle_only = !wants(Scenario::JoinStorm);
        let j = joins::storm(&running, args.joins, args.window, args.runs, idle_only).await;
        running.stop().await;
        let j = j?;
        show(j.table());
        out.insert("join_storm".into(), serde_json::to_value(&j)?);
    }
    Ok(serde_json::Value::Object(out))
}

async fn cascade_scenarios(
    args: &BenchArgs,
    running: &up::Running,
    wants: &impl Fn(Scenario) -> bool,
    show: &impl Fn(String),
    out: &mut serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    if wants(Scenario::Broadcast) {
        let b = cascade::broadcast(running, args.viewers, args.window, args.runs).await?;
        show(b.table());
        out.insert("broadcast".into(), serde_json::to_value(&b)?);
    }
    if wants(Scenario::Hop) {
        let h = cascade::hop(running, args.viewers / 2, args.window, args.runs).await?;
        show(h.table());
        out.insert("hop".into(), serde_json::to_value(&h)?);
    }
    Ok(())
}

/// Edge settings for the bench's clusters: room for `participants` in one meeting, then the
/// user's `--edge-set`s (which may override it).
fn edge_settings(participants: usize, args: &BenchArgs) -> Vec<(String, String)> {
    let room = (
        "ARBOR_LIMITS_MAX_PARTICIPANTS".to_owned(),
        (participants + 1).max(100).to_string(),
    );
    std::iter::once(room)
        .chain(args.edge_set.iter().map(crate::cli::EdgeSetting::env))
        .collect()
}

/// A one-edge cluster in `dir/<name>`, on its own loopback network.
async fn one_edge(
    args: &BenchArgs,
    dir: &Path,
    name: &str,
    participants: usize,
    bins: &Bins,
) -> anyhow::Result<up::Running> {
    up::start(
        Plan::new(1, IpBase(1), false),
        &dir.join(name),
        bins,
        &edge_settings(participants, args),
    )
    .await
}

/// A three-edge cascaded cluster (unimpaired links) in `dir/cascade`.
pub async fn three_edges(
    args: &BenchArgs,
    dir: &Path,
    participants: usize,
    bins: &Bins,
) -> anyhow::Result<up::Running> {
    up::start(
        Plan::new(3, IpBase(2), false),
        &dir.join("cascade"),
        bins,
        &edge_settings(participants, args),
    )
    .await
}

/// One subscriber count, measured on each side, each `runs` times.
#[derive(Debug, Serialize)]
pub struct Row {
    pub subscribers: usize,
    /// Egress packets per CPU-second of each side.
    pub arbor_pps_per_cpu_s: Option<Spread>,
    pub janus_pps_per_cpu_s: Option<Spread>,
    pub bare_pps_per_cpu_s: Option<Spread>,
    /// Arbor's egress packets per CPU-second over Janus's, run by run.
    pub janus_ratio: Option<Spread>,
    /// Arbor's figure over Janus's, run by run, for the other metrics: the SFU's CPU in
    /// cores at the same load, and the subscribers' one-way latency p50 and p99 (below 1,
    /// Arbor's is lower).
    pub janus_cpu_ratio: Option<Spread>,
    pub janus_latency_p50_ratio: Option<Spread>,
    pub janus_latency_p99_ratio: Option<Spread>,
    /// Arbor's egress packets per CPU-second over the bare forwarder's, run by run.
    pub limit_fraction: Option<Spread>,
    pub arbor: Vec<Step>,
    pub janus: Vec<Step>,
    pub bare: Vec<Step>,
}

impl Row {
    /// The median of `f` over a side's runs (a plot's point).
    fn median(steps: &[Step], f: impl Fn(&Step) -> f64) -> Option<f64> {
        Spread::of(steps.iter().map(f)).map(|s| s.median)
    }
}

/// The ramp, alternating Arbor, Janus and the bare forwarder at each subscriber count (A B C
/// A B C … for `--runs`) so that the machine's drift affects them alike. A side whose
/// median run hit a limit sits out the later steps.
pub async fn side_by_side(
    args: &BenchArgs,
    subscribers: &[usize],
    window: std::time::Duration,
    dir: &Path,
    bins: &Bins,
) -> anyhow::Result<Vec<Row>> {
    let largest = subscribers.iter().max().copied().unwrap_or(0);
    let running = up::start(
        Plan::new(1, IpBase(0), false),
        &dir.join("arbor"),
        bins,
        &edge_settings(largest, args),
    )
    .await?;
    let janus_dir = dir.join("janus");
    std::fs::create_dir_all(&janus_dir)
        .with_context(|| format!("cannot create {}", janus_dir.display()))?;
    let mut janus = match Janus::start(&janus_dir, JanusConfig::default()).await {
        Ok(j) => j,
        Err(e) => {
            running.stop().await;
            return Err(e.into());
        }
    };
    let sfu = arbor_sfu(&running)?;
    let result = ramp(args, subscribers, window, &sfu, &mut janus).await;
    let _ = janus.stop().await;
    running.stop().await;
    result
}

async fn ramp(
    args: &BenchArgs,
    subscribers: &[usize],
    window: std::time::Duration,
    sfu: &Sfu,
    janus: &mut Janus,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (mut arbor_done, mut janus_done) = (false, false);
    let mut meeting = 0u64;
    for &n in subscribers {
        if arbor_done && janus_done {
            break;
        }
        let (mut arbor, mut janus_steps, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            meeting += 1;
            if !arbor_done {
                let name = format!("fwd-{meeting}");
                let step = forwarding::step(sfu, &name, n, window);
                let s = forwarding::bounded("Arbor", n, window, step).await?;
                report("arbor", &s, args.json);
                arbor.push(s);
            }
            if !janus_done {
                if let Some(status) = janus.try_exited()? {
                    anyhow::bail!(
                        "Janus exited ({status}) during the ramp; its log is {}",
                        janus.log_path().display()
                    );
                }
                let step = forwarding::janus_step(janus, 4242 + meeting, n, window);
                let s = forwarding::bounded("Janus", n, window, step)
                    .await
                    .with_context(|| format!("Janus's log is {}", janus.log_path().display()))?;
                report("janus", &s, args.json);
                janus_steps.push(s);
            }
            // The bare forwarder gets the publisher's packet rate as Arbor's subscribers saw it.
            let pps = arbor
                .last()
                .map_or(150.0, |a: &Step| a.egress_pps / n.max(1) as f64);
            let b = tokio::task::spawn_blocking(move || {
                forwarding::bare_step(n, pps.round() as u32, window)
            })
            .await??;
            report("bare", &b, args.json);
            bare.push(b);
        }
        arbor_done |= mostly_limited(&arbor);
        janus_done |= mostly_limited(&janus_steps);
        let pps = |steps: &[Step]| Spread::of(steps.iter().map(|s| s.pps_per_cpu_s));
        let ratio = |a: &[Step], b: &[Step]| ratio_of(a, b, |s| Some(s.pps_per_cpu_s));
        let latency = |s: &Step, p99: bool| {
            let c = s.clients.as_ref()?;
            Some(if p99 {
                c.latency_p99_ms
            } else {
                c.latency_p50_ms
            })
        };
        rows.push(Row {
            subscribers: n,
            arbor_pps_per_cpu_s: pps(&arbor),
            janus_pps_per_cpu_s: pps(&janus_steps),
            bare_pps_per_cpu_s: pps(&bare),
            janus_ratio: ratio(&arbor, &janus_steps),
            janus_cpu_ratio: ratio_of(&arbor, &janus_steps, |s| Some(s.sfu_cores)),
            janus_latency_p50_ratio: ratio_of(&arbor, &janus_steps, |s| latency(s, false)),
            janus_latency_p99_ratio: ratio_of(&arbor, &janus_steps, |s| latency(s, true)),
            limit_fraction: ratio(&arbor, &bare),
            arbor,
            janus: janus_steps,
            bare,
        });
    }
    Ok(rows)
}

/// `f` of `a`'s runs over `f` of `b`'s, run by run (the runs that alternated), where both
/// have the figure and `b`'s is not zero.
fn ratio_of(a: &[Step], b: &[Step], f: impl Fn(&Step) -> Option<f64>) -> Option<Spread> {
    Spread::of(a.iter().zip(b).filter_map(|(a, b)| {
        let (x, y) = (f(a)?, f(b)?);
        (y > 0.0).then(|| x / y)
    }))
}

/// Whether most runs of a step hit a limit (loss, CPU, failed joins).
fn mostly_limited(steps: &[Step]) -> bool {
    !steps.is_empty() && steps.iter().filter(|s| s.limit().is_some()).count() * 2 > steps.len()
}

/// `forwarding-cpu.svg` and `forwarding-loss.svg` in `dir`: Arbor's and Janus's median CPU
/// (cores) and loss against subscribers.
fn write_plots(rows: &[Row], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let series = |f: fn(&Row) -> &[Step], value: fn(&Step) -> f64, name: &str, color| Series {
        name: name.to_owned(),
        color,
        points: rows
            .iter()
            .filter_map(|r| Row::median(f(r), value).map(|v| (r.subscribers as f64, v)))
            .collect(),
    };
    fn arbor(r: &Row) -> &[Step] {
        &r.arbor
    }
    fn janus(r: &Row) -> &[Step] {
        &r.janus
    }
    let charts = [
        (
            "forwarding-cpu.svg",
            "SFU CPU, 1 publisher → N subscribers",
            "cores",
            [
                series(arbor, |s| s.sfu_cores, "Arbor", "#d1495b"),
                series(janus, |s| s.sfu_cores, "Janus", "#00798c"),
            ],
        ),
        (
            "forwarding-loss.svg",
            "Subscribers' loss, 1 publisher → N subscribers",
            "loss %",
            [
                series(arbor, |s| s.loss_pct, "Arbor", "#d1495b"),
                series(janus, |s| s.loss_pct, "Janus", "#00798c"),
            ],
        ),
    ];
    for (file, title, y, lines) in charts {
        let path = dir.join(file);
        std::fs::write(&path, plot::line_chart(title, "subscribers", y, &lines))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn arbor_sfu(running: &up::Running) -> anyhow::Result<Sfu> {
    let edge = running
        .cluster
        .edges
        .first()
        .context("the cluster has no edge")?;
    let target = fleet::targets(running)
        .into_iter()
        .next()
        .context("the cluster has no edge")?;
    Ok(Sfu {
        pid: edge.pid,
        target,
        auth: fleet::auth(running),
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    })
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
    let mut t = String::from(
        "forwarding: 1 publisher → N subscribers on one SFU (egress packets per CPU-second)\n",
    );
    let _ = writeln!(
        t,
        "{:>11} {:>22} {:>22} {:>22} {:>18} {:>18}",
        "subscribers", "arbor", "janus", "bare", "×janus", "of bare"
    );
    for r in rows {
        let _ = writeln!(
            t,
            "{:>11} {:>22} {:>22} {:>22} {:>18} {:>18}",
            r.subscribers,
            show(r.arbor_pps_per_cpu_s, 0),
            show(r.janus_pps_per_cpu_s, 0),
            show(r.bare_pps_per_cpu_s, 0),
            show(r.janus_ratio, 2),
            show(r.limit_fraction, 2),
        );
    }
    let _ = writeln!(
        t,
        "Arbor ÷ Janus per metric, run by run (CPU and latency: below 1, Arbor's is lower)"
    );
    let _ = writeln!(
        t,
        "{:>11} {:>18} {:>18} {:>18} {:>18} {:>18} {:>18}",
        "subscribers",
        "pkt/CPU-s",
        "CPU",
        "latency p50",
        "latency p99",
        "loss % arbor",
        "loss % janus"
    );
    let loss = |steps: &[Step]| Spread::of(steps.iter().map(|s| s.loss_pct));
    for r in rows {
        let _ = writeln!(
            t,
            "{:>11} {:>18} {:>18} {:>18} {:>18} {:>18} {:>18}",
            r.subscribers,
            show(r.janus_ratio, 2),
            show(r.janus_cpu_ratio, 2),
            show(r.janus_latency_p50_ratio, 2),
            show(r.janus_latency_p99_ratio, 2),
            show(loss(&r.arbor), 2),
            show(loss(&r.janus), 2),
        );
    }
    t
}
