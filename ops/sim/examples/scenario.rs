//! Runs one scenario with one seed and prints what it measured and what the oracles say:
//!
//! ```text
//! cargo run -p arbor-sim --example scenario -- partition 3
//! cargo run -p arbor-sim --example scenario -- all 1      # every scenario
//! cargo run -p arbor-sim --example scenario -- three_regions 3 verbose  # every slot's numbers
//! cargo run -p arbor-sim --example scenario -- three_regions 3 rough    # jittery, capped access
//! ```
#![allow(clippy::disallowed_methods)] // the wall clock only measures the run's CPU time

use std::process::ExitCode;
use std::time::Instant;

use arbor_sim::{oracle, report, scenario, world};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("all", String::as_str);
    let seed = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let verbose = args.iter().skip(2).any(|a| a == "verbose");
    let rough = args.iter().skip(2).any(|a| a == "rough");
    let scenarios = match name {
        "all" => scenario::all(),
        n => match scenario::Scenario::by_name(n) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = scenario::all().iter().map(|s| s.name).collect();
                eprintln!("no scenario {n}; there are: {}", names.join(", "));
                return ExitCode::FAILURE;
            }
        },
    };
    let mut failed = false;
    for mut s in scenarios {
        if rough {
            s.access = scenario::rough_access();
        }
        let t = Instant::now();
        match world::run(&s, seed, Instant::now()) {
            Ok(outcome) => {
                print!("{}", report::render(&outcome));
                if verbose {
                    for p in &outcome.participants {
                        println!("  {p:?}");
                    }
                    for sub in &outcome.subscriptions {
                        println!("  {}: {:#?}", oracle::sub_name(&outcome, sub), sub.at_end());
                        println!("  gaps: {:?}", sub.gaps);
                    }
                }
                println!("  ran in {:.1} s of CPU", t.elapsed().as_secs_f64());
                for f in oracle::check(&outcome) {
                    failed = true;
                    println!("  FAILED seed {seed}: {f}");
                }
            }
            Err(e) => {
                failed = true;
                println!("scenario {} seed {seed}: {e}", s.name);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
