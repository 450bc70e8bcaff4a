//! Every scenario over the committed seeds, judged by every oracle, and a seed replayed twice.
//!
//! A failure names its seed and how to replay it alone:
//!
//! ```text
//! seed 2: tree shape: …
//!   replay: ARBOR_SIM_SEED=2 cargo test -p arbor-sim --test scenarios partition
//! ```
//!
//! `ARBOR_SIM_SEED=N` runs seed N instead of the committed ones; `--nocapture` prints each
//! run's report (the numbers in BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // virtual time starts from any instant: the wall clock's

use std::time::Instant;

use arbor_sim::world::{self, TraceChannel};
use arbor_sim::{Scenario, oracle, report, scenario};

/// The seeds CI runs.
const SEEDS: [u64; 3] = [1, 2, 3];

/// The committed seeds, or the one in `ARBOR_SIM_SEED`.
fn seeds() -> Vec<u64> {
    match std::env::var("ARBOR_SIM_SEED") {
        Ok(s) => vec![s.trim().parse().expect("ARBOR_SIM_SEED must be a number")],
        Err(_) => SEEDS.to_vec(),
    }
}

/// Runs `scenario` over the seeds; fails with every oracle failure of every seed.
fn check(test: &str, scenario: &Scenario) {
    let mut failures = Vec::new();
    for seed in seeds() {
        let replay = format!(
            "  replay: ARBOR_SIM_SEED={seed} cargo test -p arbor-sim --test scenarios {test}"
        );
        match world::run(scenario, seed, Instant::now()) {
            Err(e) => failures.push(format!("seed {seed}: the run failed: {e}\n{replay}")),
            Ok(outcome) => {
                eprint!("{}", report::render(&outcome));
                for f in oracle::check(&outcome) {
                    failures.push(format!("seed {seed}: {f}\n{replay}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn three_regions() {
    check("three_regions", &scenario::three_regions());
}

#[test]
fn meeting_30() {
    check("meeting_30", &scenario::meeting_30());
}

#[test]
fn lossy_backbone() {
    check("lossy_backbone", &scenario::lossy_backbone());
}

#[test]
fn partition() {
    check("partition", &scenario::partition());
}

#[test]
fn a_seed_replays_exactly() {
    let s = scenario::partition();
    let seed = 7;
    let run = |seed| world::run(&s, seed, Instant::now()).unwrap();
    let (a, b) = (run(seed), run(seed));
    let channels = [
        TraceChannel::Signaling,
        TraceChannel::RelayControl,
        TraceChannel::RelayMedia,
        TraceChannel::Origin,
    ];
    for ch in channels {
        assert_eq!(
            (a.trace.deliveries(ch), a.trace.channel_hash(ch)),
            (b.trace.deliveries(ch), b.trace.channel_hash(ch)),
            "seed {seed}: {ch:?} did not replay"
        );
    }
    assert_eq!(a.trace.hash(), b.trace.hash(), "seed {seed} did not replay");
    assert_eq!(a.trees, b.trees);
    assert!(a.trace.deliveries(TraceChannel::RelayMedia) > 1000);
    // And the seed matters.
    assert_ne!(run(seed + 1).trace.hash(), a.trace.hash());
}
