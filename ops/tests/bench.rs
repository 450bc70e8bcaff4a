#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `arbor bench` end to end, small: in its own network namespace, each scenario runs with a
//! few participants and the JSON says what each side did. Needs root (the namespace) and
//! Debian's `janus`, which the test command installs.

mod common;

use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arbor-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn arbor_janus_and_the_bare_forwarder_side_by_side() {
    let dir = scratch("forwarding");
    let plots = dir.join("plots");
    let plots_arg = plots.to_str().unwrap();
    let bench = [
        "bench",
        "forwarding",
        "--subscribers",
        "3,6",
        "--window",
        "2s",
        "--runs",
        "2",
        "--plot",
        plots_arg,
        "--json",
    ];
    let (report, _) = common::json_of(&common::arbor(&dir, &bench).await, "arbor bench");
    let rows = report["forwarding"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report:#}");
    for (row, n) in rows.iter().zip([3, 6]) {
        assert_eq!(row["subscribers"], n, "{row:#}");
        for side in ["arbor", "janus", "bare"] {
            let runs = row[side].as_array().unwrap();
            assert_eq!(runs.len(), 2, "{side}: {row:#}");
            for s in runs {
                // ~150 packets/s per subscriber (one 1 Mbit/s VP8 layer and Opus).
                let pps = s["egress_pps"].as_f64().unwrap();
                assert!(pps > 80.0 * n as f64, "{side}: {s:#}");
                assert!(s["pps_per_cpu_s"].as_f64().unwrap() > 0.0, "{side}: {s:#}");
                assert!(s["loss_pct"].as_f64().unwrap() < 1.0, "{side}: {s:#}");
            }
            let spread = &row[format!("{side}_pps_per_cpu_s")];
            assert_eq!(spread["runs"], 2, "{row:#}");
            assert!(
                spread["min"].as_f64() <= spread["median"].as_f64(),
                "{row:#}"
            );
            assert!(
                spread["median"].as_f64() <= spread["max"].as_f64(),
                "{row:#}"
            );
        }
        assert!(
            row["janus_ratio"]["median"].as_f64().unwrap() > 0.0,
            "{row:#}"
        );
        assert!(
            row["limit_fraction"]["median"].as_f64().unwrap() > 0.0,
            "{row:#}"
        );
        for metric in ["cpu", "latency_p50", "latency_p99"] {
            let ratio = &row[format!("janus_{metric}_ratio")];
            assert_eq!(ratio["runs"], 2, "{metric}: {row:#}");
            assert!(ratio["median"].as_f64().unwrap() > 0.0, "{metric}: {row:#}");
        }
    }
    for plot in ["forwarding-cpu.svg", "forwarding-loss.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).unwrap();
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "{plot}: Arbor and Janus"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_broadcast_and_a_hop_over_three_cascaded_edges() {
    let dir = scratch("cascade");
    // The broadcast's edges forward without the send-side estimator and its pacer
    // (`--edge-set`), the hop's with them (the default).
    for (scenario, key, setting) in [
        ("broadcast", "broadcast", "media.send_side_bwe=false"),
        ("hop", "hop", "media.send_side_bwe=true"),
    ] {
        let bench = [
            "bench",
            scenario,
            "--viewers",
            "6",
            "--window",
            "2s",
            "--edge-set",
            setting,
            "--json",
        ];
        let (report, _) = common::json_of(&common::arbor(&dir, &bench).await, "arbor bench");
        let r = &report[key];
        assert!(r["hop_latency_p50_us"]["median"].is_f64(), "{report:#}");
        if scenario == "broadcast" {
            let run = &r["runs"][0]["report"];
            assert_eq!(run["joined"], 7, "{report:#}");
            assert_eq!(run["by_edge"].as_array().unwrap().len(), 3, "{report:#}");
            assert_eq!(run["video_slots_rendering"], 6, "{report:#}");
            assert!(
                r["loss_pct"]["median"].as_f64().unwrap() < 1.0,
                "{report:#}"
            );
            assert_eq!(r["runs"][0]["edge_cores"].as_array().unwrap().len(), 3);
        } else {
            assert_eq!(r["viewers_per_edge"], 3, "{report:#}");
            assert!(r["hop_cpu_us_per_packet"]["median"].is_f64(), "{report:#}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_join_storm_and_a_small_meeting_on_one_edge() {
    let dir = scratch("one-edge");
    let bench = [
        "bench",
        "join-storm",
        "--joins",
        "12",
        "--window",
        "2s",
        "--json",
    ];
    let (report, _) = common::json_of(&common::arbor(&dir, &bench).await, "arbor bench");
    let j = &report["join_storm"];
    assert_eq!(j["idle"][0]["joined"], 13, "{report:#}");
    assert!(
        j["join_cpu_ms"]["median"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert!(
        j["memory_per_participant_kib"]["median"].is_f64(),
        "{report:#}"
    );
    assert!(
        j["first_frame_p50_ms"]["median"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );

    let bench = [
        "bench",
        "meeting",
        "--participants",
        "4",
        "--window",
        "2s",
        "--json",
    ];
    let (report, _) = common::json_of(&common::arbor(&dir, &bench).await, "arbor bench");
    let m = &report["meeting"];
    assert_eq!(m["video_slots"], 4, "{report:#}");
    let run = &m["runs"][0]["report"];
    assert_eq!(run["joined"], 8, "{report:#}");
    assert_eq!(run["video_slots_rendering"], 16, "{report:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
