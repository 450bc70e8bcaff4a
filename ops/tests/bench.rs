#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `arbor bench` end to end, small: in its own network namespace, one Arbor edge, Janus and
//! the bare forwarder each forward one publisher to a few subscribers, and the JSON says what
//! each side did. Needs root (the namespace) and Debian's `janus`, which the test command
//! installs.

mod common;

#[tokio::test]
async fn arbor_janus_and_the_bare_forwarder_side_by_side() {
    let dir = std::env::temp_dir().join(format!("arbor-bench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bench = ["bench", "--subscribers", "3,6", "--window", "2s", "--json"];
    let (report, _) = common::json_of(&common::arbor(&dir, &bench).await, "arbor bench");
    let rows = report["forwarding"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report:#}");
    for (row, n) in rows.iter().zip([3, 6]) {
        assert_eq!(row["subscribers"], n, "{row:#}");
        for side in ["arbor", "janus", "bare"] {
            let s = &row[side];
            // ~150 packets/s per subscriber (one 1 Mbit/s VP8 layer and Opus).
            let pps = s["egress_pps"].as_f64().unwrap();
            assert!(pps > 80.0 * n as f64, "{side}: {s:#}");
            assert!(s["pps_per_cpu_s"].as_f64().unwrap() > 0.0, "{side}: {s:#}");
            assert!(s["loss_pct"].as_f64().unwrap() < 1.0, "{side}: {s:#}");
        }
        assert!(row["janus_ratio"].as_f64().unwrap() > 0.0, "{row:#}");
        assert!(row["limit_fraction"].as_f64().unwrap() > 0.0, "{row:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
