//! Added latency of a cascade hop inside the edge, excluding the link: the CPU time of one
//! `Worker::handle_relay_datagram` call and the drain of what it produced.
//!
//! A line of edges 0 - 1 - 2 (virtual time, the test harness's in-memory backbone): a
//! simulcast publisher (VP8 180p/360p/720p + Opus) on edge 0, `local` subscribers on edge 1
//! and `remote` on edge 2, every one on 720p video and audio, all real str0m sessions with
//! DTLS-SRTP. After the meeting settles, the relay datagrams edge 0 sends edge 1 are held
//! back for [`CAPTURE`] and then replayed into edge 1, which has not seen them (its state
//! is exactly the live one). The timed part of each call is "edge in → out" for a relayed
//! packet: decode, sequence extension and gap tracking, the fan-out to each local
//! subscriber (layer verdict, rewrite, SRTP encryption by str0m) and the re-encode to the
//! downstream neighbour (edge 2) with its retransmission buffer. str0m's pacer releases each
//! written packet on a timeout it asks for at once; those immediate timeouts are run and
//! timed with the packet, up to the encrypted datagrams for the subscribers. The worker's
//! other timers fire between packets as the shell would run them, timed apart.
//!
//! Comparing configurations splits the cost: `local` 0 is a pure relay hop; the slope over
//! `local` is the cost per local subscriber; `remote` 0 removes the downstream re-encode.
//!
//! Times are wall time around each call. On a shared machine the thread is sometimes
//! descheduled in the middle of one (a few ms, another process's time slice): the thread's
//! scheduler count (`/proc/thread-self/schedstat`, read outside the timed part) tells those
//! calls apart. The quantiles are of the calls that ran undisturbed, i.e. the CPU cost; the
//! wall-time p99 of all calls and the share of preempted calls are reported next to them.
//!
//!     cargo bench -p arbor-edge-core --bench cascade [-- --runs 7] [-- --json]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use arbor_loadgen::ClientConfig;
use common::{CapturedRelay, Mesh};
use edge_core::signal::{ClientMsg, Kind};
use edge_core::{Limits, Output};

/// Relay traffic captured per run: about 450 relayed packets (720p video and Opus).
const CAPTURE: Duration = Duration::from_secs(2);
/// (subscribers on edge 1, subscribers on edge 2) per configuration.
const CONFIGS: [(usize, usize); 5] = [(0, 2), (1, 2), (5, 2), (5, 0), (20, 2)];
/// The edge whose hop is measured: the middle of the line.
const HOP: usize = 1;
/// Immediate timeouts run after one relayed packet before giving up on draining it.
const MAX_IMMEDIATE_TIMEOUTS: usize = 64;

/// A meeting on the line 0 - 1 - 2 in steady state, and the relay datagrams edge 1 would
/// have received next (held back).
fn setup(local: usize, remote: usize) -> (Mesh, Vec<CapturedRelay>) {
    let mut mesh = Mesh::with_edges(3, Limits::default());
    mesh.tree(1, &[(0, 1), (1, 2)]);
    mesh.join_at(0, "alice", ClientConfig::new(mesh.epoch));
    let at = std::iter::repeat_n(1, local).chain(std::iter::repeat_n(2, remote));
    let subs: Vec<usize> = at
        .enumerate()
        .map(|(i, e)| {
            mesh.join_at(
                e,
                &format!("v{i}"),
                ClientConfig::subscriber(mesh.epoch, 1, 1),
            )
        })
        .collect();
    mesh.run(Duration::from_millis(1500));
    let tracks = mesh.tracks_seen(subs[0]);
    assert_eq!(tracks.len(), 2, "alice's camera and microphone: {tracks:?}");
    for &s in &subs {
        for t in &tracks {
            match t.kind {
                Kind::Video => mesh.subscribe(s, t.id, 720),
                Kind::Audio => {
                    let mid = mesh.peers[s].client.mids().audio_slots[0];
                    let msg = ClientMsg::Subscribe {
                        track_id: t.id,
                        mid: mid.to_string(),
                        max_width: None,
                        max_height: None,
                    };
                    mesh.send(s, msg);
                }
            }
        }
    }
    // Layer switches up to 720p and their keyframes are over by then.
    mesh.run(Duration::from_secs(3));
    for &s in &subs {
        assert_eq!(mesh.video_slot(s).height, Some(720), "viewer {s} on 720p");
    }
    let captured = mesh.capture_relay_into(HOP, CAPTURE);
    (mesh, captured)
}

/// What one replay measured.
#[derive(Debug, Default, Clone)]
struct Replay {
    /// Wall time of each relayed packet's call and drain, in order.
    calls: Vec<Duration>,
    /// Whether the thread was descheduled during that call.
    preempted: Vec<bool>,
    /// The worker's other timers that came due during the replay.
    timers: Duration,
    audio: u64,
    /// Datagrams to subscribers that left within the relayed packets' calls.
    transmits_in_calls: u64,
    transmits_in_timers: u64,
    relay_out: u64,
    forwarded: u64,
    relayed_in: u64,
}

impl Replay {
    /// Undisturbed calls, sorted.
    fn clean(&self) -> Vec<Duration> {
        let mut v: Vec<Duration> = self
            .calls
            .iter()
            .zip(&self.preempted)
            .filter(|(_, p)| !**p)
            .map(|(d, _)| *d)
            .collect();
        v.sort();
        v
    }

    /// All calls, sorted.
    fn all(&self) -> Vec<Duration> {
        let mut v = self.calls.clone();
        v.sort();
        v
    }
}

/// This thread's count of times it was put on a CPU (third field of
/// `/proc/thread-self/schedstat`): a call during which it moved was preempted.
struct Sched(File);

impl Sched {
    fn open() -> Sched {
        Sched(File::open("/proc/thread-self/schedstat").expect("schedstat"))
    }

    fn runs(&self) -> u64 {
        let mut buf = [0u8; 128];
        let n = self.0.read_at(&mut buf, 0).expect("read schedstat");
        let text = std::str::from_utf8(&buf[..n]).expect("ascii");
        let field = text.split_whitespace().nth(2).and_then(|v| v.parse().ok());
        field.expect("schedstat run count")
    }
}

/// Drains a worker's outputs, counting (transmits, relay datagrams); returns its timeout.
fn drain(worker: &mut edge_core::Worker, counts: &mut (u64, u64)) -> Instant {
    loop {
        match worker.poll_output() {
            Output::Transmit(_) => counts.0 += 1,
            Output::RelayDatagram(..) => counts.1 += 1,
            Output::Timeout(t) => return t,
            _ => {}
        }
    }
}

/// Replays `packets` into edge [`HOP`], shifted in time to start now, timing each call.
fn replay(mesh: &mut Mesh, packets: &[CapturedRelay], sched: &Sched) -> Replay {
    let shift = mesh.now - packets[0].at;
    let worker = &mut mesh.edges[HOP].worker;
    let mut r = Replay::default();
    let mut timeout = drain(worker, &mut (0, 0));
    let before = worker.stats().clone();
    for p in packets {
        let now = p.at + shift;
        if timeout <= now {
            let mut c = (0, 0);
            let t = Instant::now();
            worker.handle_timeout(now);
            // The call below drains again and gives the next timeout.
            drain(worker, &mut c);
            r.timers += t.elapsed();
            r.transmits_in_timers += c.0;
        }
        let mut c = (0, 0);
        let runs = sched.runs();
        let t = Instant::now();
        worker.handle_relay_datagram(now, &p.from, &p.bytes);
        timeout = drain(worker, &mut c);
        // str0m's pacer releases a written packet on the next timeout, which it asks for at
        // once (`Timeout(now)`): the shell runs it right away, so it is part of in → out.
        let mut rounds = 0;
        while timeout <= now && rounds < MAX_IMMEDIATE_TIMEOUTS {
            worker.handle_timeout(now);
            timeout = drain(worker, &mut c);
            rounds += 1;
        }
        r.calls.push(t.elapsed());
        r.preempted.push(sched.runs() != runs);
        r.transmits_in_calls += c.0;
        r.relay_out += c.1;
        let media = relay_proto::decode_datagram(&p.bytes);
        r.audio += u64::from(media.is_ok_and(|m| m.header.audio_level.is_some()));
    }
    let after = worker.stats();
    r.forwarded = after.rtp_forwarded - before.rtp_forwarded;
    r.relayed_in = after.relay_rtp_in - before.relay_rtp_in;
    r
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `q` quantile (nearest rank) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(xs: &[Duration]) -> Duration {
    xs.iter().sum::<Duration>() / xs.len().max(1) as u32
}

/// Median, min and max of per-run values.
fn spread(mut xs: Vec<f64>) -> [f64; 3] {
    xs.sort_by(f64::total_cmp);
    [xs[xs.len() / 2], xs[0], xs[xs.len() - 1]]
}

fn fmt([med, lo, hi]: [f64; 3]) -> String {
    format!("{med:.1} [{lo:.1}–{hi:.1}]")
}

/// One configuration over all runs.
#[derive(Debug)]
struct Measured {
    local: usize,
    remote: usize,
    runs: Vec<Replay>,
}

impl Measured {
    /// A statistic of each run's undisturbed calls → median, min, max.
    fn clean(&self, f: impl Fn(&[Duration]) -> f64) -> [f64; 3] {
        spread(self.runs.iter().map(|r| f(&r.clean())).collect())
    }

    fn p50_us(&self) -> f64 {
        self.clean(|s| us(quantile(s, 0.5)))[0]
    }

    fn mean_us(&self) -> f64 {
        self.clean(|s| us(mean(s)))[0]
    }

    fn row(&self) -> String {
        let r0 = &self.runs[0];
        let max_clean = self.runs.iter().map(|r| us(*r.clean().last().unwrap()));
        let (calls, preempted) = self.runs.iter().fold((0, 0), |(c, p), r| {
            (
                c + r.calls.len(),
                p + r.preempted.iter().filter(|x| **x).count(),
            )
        });
        let wall_p99 = spread(
            self.runs
                .iter()
                .map(|r| us(quantile(&r.all(), 0.99)))
                .collect(),
        );
        let wall_max = self.runs.iter().map(|r| us(*r.all().last().unwrap()));
        format!(
            "| {} | {} | {} ({} audio) | {} | {} | {:.0} | {} | {:.0}k | {:.2}% | {} | {:.0} |",
            self.local,
            self.remote,
            r0.calls.len(),
            r0.audio,
            fmt(self.clean(|s| us(quantile(s, 0.5)))),
            fmt(self.clean(|s| us(quantile(s, 0.99)))),
            max_clean.fold(0.0, f64::max),
            fmt(self.clean(|s| us(mean(s)))),
            1e3 / self.mean_us(),
            preempted as f64 / calls as f64 * 100.0,
            fmt(wall_p99),
            wall_max.fold(0.0, f64::max),
        )
    }

    /// What a call does, from the first run.
    fn work(&self) -> String {
        let r = &self.runs[0];
        let n = r.calls.len() as f64;
        format!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.0} |",
            self.local,
            self.remote,
            r.forwarded as f64 / r.relayed_in.max(1) as f64,
            r.transmits_in_calls as f64 / n,
            r.transmits_in_timers,
            r.relay_out as f64 / n,
            us(r.timers),
        )
    }

    fn json(&self) -> serde_json::Value {
        let runs: Vec<serde_json::Value> = self
            .runs
            .iter()
            .map(|r| {
                let (s, all) = (r.clean(), r.all());
                serde_json::json!({
                    "packets": r.calls.len(),
                    "audio_packets": r.audio,
                    "preempted": r.preempted.iter().filter(|x| **x).count(),
                    "p50_us": us(quantile(&s, 0.5)),
                    "p99_us": us(quantile(&s, 0.99)),
                    "max_us": us(*s.last().unwrap()),
                    "mean_us": us(mean(&s)),
                    "wall_p50_us": us(quantile(&all, 0.5)),
                    "wall_p99_us": us(quantile(&all, 0.99)),
                    "wall_max_us": us(*all.last().unwrap()),
                    "timers_us": us(r.timers),
                    "forwarded": r.forwarded,
                    "relayed_in": r.relayed_in,
                    "transmits_in_calls": r.transmits_in_calls,
                    "transmits_in_timers": r.transmits_in_timers,
                    "relay_out": r.relay_out,
                })
            })
            .collect();
        serde_json::json!({
            "local_subscribers": self.local,
            "remote_subscribers": self.remote,
            "runs": runs,
        })
    }
}

fn main() {
    let mut runs = 7;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--runs <n>");
            }
            "--json" => json = true,
            _ => {} // `cargo bench` passes --bench
        }
    }
    let sched = Sched::open();
    let mut results = Vec::new();
    for (local, remote) in CONFIGS {
        let mut r = Measured {
            local,
            remote,
            runs: Vec::new(),
        };
        for _ in 0..runs {
            let (mut mesh, captured) = setup(local, remote);
            assert!(captured.len() > 100, "{} captured", captured.len());
            let replay = replay(&mut mesh, &captured, &sched);
            assert_eq!(replay.relayed_in, captured.len() as u64, "all relayed");
            r.runs.push(replay);
        }
        results.push(r);
    }
    print_tables(&results, runs);
    if json {
        for r in &results {
            println!("{}", r.json());
        }
    }
}

fn print_tables(results: &[Measured], runs: usize) {
    println!("Per relayed packet at edge {HOP}; median [min–max] over {runs} runs:");
    println!();
    println!(
        "| subs on edge 1 | subs on edge 2 | relayed packets per run | p50 µs | p99 µs | max µs | mean µs | relayed packets per CPU-s | calls preempted | wall p99 µs, all calls | wall max µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        println!("{}", r.row());
    }
    println!();
    println!(
        "| subs on edge 1 | subs on edge 2 | forwarded per relayed packet | sent within the call | sent later (pacer) | relay datagrams out per packet | other timers µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in results {
        println!("{}", r.work());
    }
    let find = |l, rem| results.iter().find(|r| (r.local, r.remote) == (l, rem));
    println!();
    if let Some(base) = find(0, 2) {
        for n in [1, 5, 20] {
            if let Some(r) = find(n, 2) {
                let per = (r.p50_us() - base.p50_us()) / n as f64;
                let per_mean = (r.mean_us() - base.mean_us()) / n as f64;
                println!(
                    "per local subscriber (0 → {n} on edge 1): {per:.2} µs (p50), {per_mean:.2} µs (mean)"
                );
            }
        }
    }
    if let (Some(with), Some(without)) = (find(5, 2), find(5, 0)) {
        println!(
            "downstream re-encode (5 on edge 1, edge 2 on vs off): {:.2} µs of {:.2} (p50), {:.2} µs of {:.2} (mean)",
            with.p50_us() - without.p50_us(),
            with.p50_us(),
            with.mean_us() - without.mean_us(),
            with.mean_us(),
        );
    }
}
