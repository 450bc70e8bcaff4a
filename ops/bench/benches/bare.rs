//! The bare forwarder's limit at 10, 50 and 200 subscribers, without and with UDP GSO.
//!
//! `cargo bench -p arbor-bench --bench bare [-- EGRESS_PPS [SECONDS]]`
//!
//! For each subscriber count the publisher sends `EGRESS_PPS / subscribers` packets per
//! second (default 250,000 egress: DESIGN.md §6's per-core figure), measured for `SECONDS`
//! (default 5) after a second of warm-up. Prints one line per run and the runs as JSON.

use std::time::Duration;

use arbor_bench::bare::{MeasureOptions, measure_with};

const SUBSCRIBERS: [usize; 3] = [10, 50, 200];

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let egress_pps = args.first().copied().unwrap_or(250_000);
    let seconds = args.get(1).copied().unwrap_or(5);
    // Sinks that sleep 1 ms between drains instead of blocking: see `SinkConfig::poll_interval`.
    let sink_poll = std::env::var_os("BARE_SINK_POLL").map(|_| Duration::from_millis(1));
    println!("subs  gso  offered/s  ingress/s   egress/s  fwd CPU  egress/CPU-s  loss%  pkt/call");
    let mut runs = Vec::new();
    for subscribers in SUBSCRIBERS {
        for gso in [false, true] {
            let pps = u32::try_from(egress_pps / subscribers as u64)?.max(1);
            let mut options = MeasureOptions::new(subscribers, pps, Duration::from_secs(seconds));
            options.gso = gso;
            options.sink_poll = sink_poll;
            let m = measure_with(&options)?;
            println!(
                "{:>4}  {:>3}  {:>9}  {:>9.0}  {:>9.0}  {:>6.1}%  {:>12.0}  {:>5.2}  {:>8.1}",
                m.subscribers,
                if m.gso { "on" } else { "off" },
                m.offered_pps,
                m.ingress_pps,
                m.egress_pps,
                100.0 * m.cpu_s / m.window_s,
                m.egress_pps_per_cpu_s,
                m.loss_pct,
                m.forwarder.packets_out as f64 / m.forwarder.send_calls.max(1) as f64,
            );
            runs.push(m);
        }
    }
    println!("{}", serde_json::to_string(&runs)?);
    Ok(())
}
