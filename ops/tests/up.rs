#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `arbor up` as an operator runs it: the real `arbor`, `arbor-origin` and `arbor-edge`
//! binaries as separate processes on their own loopback addresses, the backbone links through
//! the in-process impairment proxies. Each test binds its own loopback network
//! (`--ip-base 127.<n>`, never the developer's `127.0`) and waits on conditions with a
//! deadline, never on time alone.
//! The binaries come from [`common::binaries`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use arbor_ops::cluster::{Cluster, Link};
use arbor_ops::impair::{Links, ProxyStats};
use relay_proto::EdgeId;
use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

mod common;

/// Longest wait for anything that should happen within seconds; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(60);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// A loopback network of its own for each test (`slot`) and test process.
fn ip_base(slot: u32) -> String {
    format!("127.{}", 100 + (std::process::id() % 30) * 4 + slot)
}

/// A running `arbor up`. Dropping it stops the cluster (SIGTERM, then SIGKILL to whatever is
/// left) and removes its data directory unless the test failed.
struct Up {
    child: Child,
    dir: PathBuf,
}

impl Up {
    fn start(name: &str, args: &[&str]) -> Up {
        let bins = common::binaries();
        let dir = std::env::temp_dir().join(format!("arbor-up-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(bins.join("arbor"));
        command
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("up")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
        // The developer's settings must not change what is tested.
        for (var, _) in std::env::vars_os() {
            if var.to_str().is_some_and(|v| v.starts_with("ARBOR_")) || var == "RUST_LOG" {
                command.env_remove(var);
            }
        }
        command.env("ARBOR_MEDIA_WORKERS", "1");
        let child = command.spawn().unwrap();
        Up { child, dir }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id().unwrap() as i32).unwrap()
    }

    fn output(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", read("stdout"), read("stderr"))
    }

    fn log(&self, edge: &EdgeId) -> String {
        std::fs::read_to_string(self.dir.join(format!("data/edge-{edge}.log"))).unwrap_or_default()
    }

    /// Waits for `cluster.json`, which `arbor up` writes once every edge is registered.
    async fn cluster(&mut self) -> Cluster {
        let path = Cluster::path_in(&self.dir.join("data"));
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "arbor up exited ({status}) before the cluster was up\n{}",
                    self.output()
                );
            }
            if path.exists() {
                return Cluster::read(&path).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no cluster.json\n{}",
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `arbor up` to exit.
    async fn exit(&mut self) -> std::process::ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("arbor up did not exit\n{}", self.output()),
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill_process(self.pid(), Signal::TERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(POLL);
            }
            let _ = self.child.start_kill();
        }
        if let Ok(cluster) = Cluster::read(&Cluster::path_in(&self.dir.join("data"))) {
            for pid in pids(&cluster) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        if std::thread::panicking() {
            eprintln!("arbor up's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The origin's and the edges' process ids.
fn pids(cluster: &Cluster) -> Vec<Pid> {
    let origin = cluster.origin.iter().map(|o| o.pid);
    origin
        .chain(cluster.edges.iter().map(|e| e.pid))
        .filter_map(|pid| Pid::from_raw(pid as i32))
        .collect()
}

/// Waits until none of `pids` exists any more.
async fn all_gone(pids: &[Pid]) {
    let deadline = Instant::now() + PATIENCE;
    while pids.iter().any(|&pid| test_kill_process(pid).is_ok()) {
        assert!(
            Instant::now() < deadline,
            "processes left running: {pids:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn get_json(url: &str, auth: Option<(&str, &str)>) -> Value {
    let mut request = reqwest::Client::new().get(url);
    if let Some((key, secret)) = auth {
        request = request.basic_auth(key, Some(secret));
    }
    let response = request.send().await.unwrap().error_for_status().unwrap();
    response.json().await.unwrap()
}

/// Waits until the edge's `arbor_participants` gauge reads 0; fails after 6 s (three
/// refreshes of the gauge, a fifth of the resume grace period).
async fn participants_drop_to_zero(http_url: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let http = reqwest::Client::new();
    loop {
        let count = arbor_ops::bench::fleet::participants_on(&http, http_url).await;
        if count == Some(0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{http_url} still has {count:?} participants after everyone left"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn addr_of(http_url: &str) -> SocketAddr {
    http_url.trim_start_matches("http://").parse().unwrap()
}

/// Waits until both ends of `link` have logged it up, and (when it has a proxy) datagrams
/// have crossed the proxy both ways: the link runs through it.
async fn link_is_up(up: &Up, link: &Link) {
    let deadline = Instant::now() + PATIENCE;
    let logged = |of: &EdgeId, peer: &EdgeId| {
        up.log(of)
            .lines()
            .any(|l| l.contains("relay link up") && l.contains(&format!("peer={peer}")))
    };
    loop {
        let through_proxy = match link.control {
            None => true,
            Some(control) => {
                let stats: ProxyStats = serde_json::from_value(
                    get_json(&format!("http://{control}/stats"), None).await,
                )
                .unwrap();
                stats.up.delivered > 0 && stats.down.delivered > 0
            }
        };
        if through_proxy && logged(&link.a, &link.b) && logged(&link.b, &link.a) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "link {} → {} never came up\n{}:\n{}\n{}:\n{}",
            link.a,
            link.b,
            link.a,
            up.log(&link.a),
            link.b,
            up.log(&link.b)
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn three_regions_linked_through_proxies_and_a_dead_edge_stops_the_cluster() {
    let net = ip_base(0);
    let mut up = Up::start("three", &["--ip-base", &net]);
    let cluster = up.cluster().await;

    let ids: Vec<&str> = cluster.edges.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["eu-1", "us-1", "ap-1"]);
    let regions: Vec<&str> = cluster.edges.iter().map(|e| e.region.as_str()).collect();
    assert_eq!(regions, ["eu-west", "us-east", "ap-southeast"]);
    for (i, edge) in cluster.edges.iter().enumerate() {
        assert_eq!(edge.http_url, format!("http://{net}.{}.1:7880", i + 1));
        assert_eq!(edge.whip_url, format!("{}/v1/whip", edge.http_url));
    }
    let origin = cluster.origin.clone().unwrap();
    assert_eq!(origin.api_url, format!("http://{net}.0.1:7780/v1"));

    // The origin lists the three edges alive, where they are.
    let auth = Some((cluster.api_key.as_str(), cluster.api_secret.as_str()));
    let listed = get_json(&format!("{}/edges", origin.api_url), auth).await;
    let listed = listed["edges"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    for edge in &cluster.edges {
        let row = listed.iter().find(|r| r["id"] == edge.id.as_str()).unwrap();
        assert_eq!(row["status"], "alive", "{row}");
        assert_eq!(row["region"], edge.region.as_str(), "{row}");
        assert_eq!(row["lat"], edge.lat, "{row}");
        assert_eq!(row["http_url"], edge.http_url.as_str(), "{row}");
    }
    // Every edge is ready.
    for edge in &cluster.edges {
        let status = arbor_ops::up::http_status(addr_of(&edge.http_url), "/readyz").await;
        assert_eq!(status.unwrap(), 200, "{}", edge.id);
    }

    // Each pair has one link, through a proxy with the pair's delay, and it is up.
    let pairs: Vec<(&str, &str, f64)> = cluster
        .links
        .iter()
        .map(|l| (l.a.as_str(), l.b.as_str(), l.one_way_ms))
        .collect();
    assert_eq!(
        pairs,
        [
            ("eu-1", "us-1", 20.0),
            ("ap-1", "eu-1", 40.0),
            ("ap-1", "us-1", 75.0)
        ]
    );
    for link in &cluster.links {
        let control = link.control.unwrap();
        let settings: Links =
            serde_json::from_value(get_json(&format!("http://{control}/link"), None).await)
                .unwrap();
        assert!(
            (settings.up.delay_ms - link.one_way_ms).abs() < 1e-6,
            "{settings:?}"
        );
        assert!(
            (settings.down.delay_ms - link.one_way_ms).abs() < 1e-6,
            "{settings:?}"
        );
        assert!(settings.up.jitter_ms <= link.one_way_ms * 0.05 + 1e-9);
        assert_eq!(settings.up.loss_pct, 0.0);
        link_is_up(&up, link).await;
    }

    // An edge dies: arbor up says which, stops the rest and fails.
    let us = cluster.edge(&"us-1".parse().unwrap()).unwrap();
    kill_process(Pid::from_raw(us.pid as i32).unwrap(), Signal::KILL).unwrap();
    let status = up.exit().await;
    assert!(!status.success(), "{status}\n{}", up.output());
    let output = up.output();
    assert!(
        output.contains(&format!("edge us-1 (pid {}) exited", us.pid)),
        "{output}"
    );
    assert!(
        output.contains("Stopping the rest of the cluster"),
        "{output}"
    );
    all_gone(&pids(&cluster)).await;
}

#[tokio::test]
async fn direct_links_and_sigterm_stops_everything() {
    let net = ip_base(1);
    let mut up = Up::start(
        "direct",
        &["--ip-base", &net, "--edges", "2", "--no-impair"],
    );
    let cluster = up.cluster().await;

    let ids: Vec<&str> = cluster.edges.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["eu-1", "us-1"]);
    assert_eq!(cluster.links.len(), 1);
    let link = &cluster.links[0];
    assert_eq!((link.a.as_str(), link.b.as_str()), ("eu-1", "us-1"));
    assert_eq!(
        (link.proxy, link.control, link.one_way_ms),
        (None, None, 0.0)
    );
    link_is_up(&up, link).await;
    let banner = up.output();
    for edge in &cluster.edges {
        assert!(
            banner.contains(&format!("{}/?meeting=demo", edge.http_url)),
            "{banner}"
        );
    }

    kill_process(up.pid(), Signal::TERM).unwrap();
    let status = up.exit().await;
    assert!(status.success(), "{status}\n{}", up.output());
    all_gone(&pids(&cluster)).await;
}

/// The links of `meeting`'s tree as the origin's API lists them, each as (lower id, higher).
async fn tree_links(cluster: &Cluster, meeting: &str) -> Vec<(String, String)> {
    let origin = cluster.origin.as_ref().unwrap();
    let auth = Some((cluster.api_key.as_str(), cluster.api_secret.as_str()));
    let tree = get_json(&format!("{}/meetings/{meeting}/tree", origin.api_url), auth).await;
    let mut links: Vec<(String, String)> = serde_json::from_value(tree["links"].clone()).unwrap();
    for (a, b) in &mut links {
        if a > b {
            std::mem::swap(a, b);
        }
    }
    links.sort();
    links
}

/// `arbor impair set --control <control> <args>`, as an operator types it.
async fn impair_set(control: SocketAddr, args: &[&str]) {
    let out = Command::new(common::binaries().join("arbor"))
        .args(["impair", "set", "--control", &control.to_string()])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "arbor impair set {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DESIGN.md §5 on separate processes: the origin and three edges of `arbor up`, a publisher
/// on eu-1 watched on us-1 and ap-1. The operator partitions the eu-1 – ap-1 link (the tree's
/// way to ap-1) with `arbor impair set --partition`: ap-1's viewer freezes for under a second
/// while the tree re-routes through us-1, and no client reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_link_reroutes_through_the_third_region() {
    let net = ip_base(2);
    let mut up = Up::start("partition", &["--ip-base", &net]);
    let cluster = up.cluster().await;
    for link in &cluster.links {
        link_is_up(&up, link).await;
    }
    let edge = |id: &str| cluster.edge(&id.parse().unwrap()).unwrap();
    let token = |identity: &str| {
        common::join_token("partition", identity, &cluster.api_key, &cluster.api_secret)
    };

    let epoch = arbor_loadgen::Epoch(Instant::now().into_std());
    let publisher = common::publisher(&edge("eu-1").ws_url, &token("alice"), epoch, 1).await;
    let mut viewers = Vec::new();
    for (n, id) in [(2, "us-1"), (3, "ap-1")] {
        let viewer = common::viewer(&edge(id).ws_url, &token(id), epoch, n).await;
        common::watch(&viewer, &publisher, 320, 180).await;
        common::until_rendered(&viewer, 60, &format!("no video on {id} before the cut")).await;
        viewers.push(viewer);
    }
    let before = tree_links(&cluster, "partition").await;
    let cut = ("ap-1".to_owned(), "eu-1".to_owned());
    assert!(
        before.contains(&cut),
        "the tree does not use eu-1 – ap-1: {before:?}"
    );
    let link = cluster
        .links
        .iter()
        .find(|l| l.a.as_str() == "ap-1" && l.b.as_str() == "eu-1")
        .unwrap();

    let cut_at = Instant::now();
    impair_set(link.control.unwrap(), &["--partition"]).await;
    let far = &viewers[1];
    let stalls = common::watch_stalls(far, cut_at, Duration::from_secs(5)).await;
    eprintln!("media gap on ap-1 after the partition: {stalls:?}");
    assert!(
        stalls.since_last < Duration::from_millis(300),
        "media does not flow again on ap-1: {stalls:?}\n{}",
        up.log(&"ap-1".parse().unwrap())
    );
    assert!(
        stalls.longest < Duration::from_secs(1),
        "ap-1 froze for longer than DESIGN.md §5 allows: {stalls:?}"
    );
    let after = tree_links(&cluster, "partition").await;
    assert!(!after.contains(&cut), "{after:?}");
    assert!(
        after.contains(&("ap-1".to_owned(), "us-1".to_owned())),
        "ap-1 is reached through us-1: {after:?}"
    );

    // Nobody reconnected: a synthetic client never rejoins, so its one session is still up.
    for (viewer, id) in viewers.iter().zip(["us-1", "ap-1"]) {
        let s = viewer.stats().await.unwrap();
        assert!(s.connected, "{id}'s viewer lost its session: {s:#?}");
    }

    // Healed, the link carries the backbone again and ap-1 keeps playing.
    impair_set(link.control.unwrap(), &["--heal"]).await;
    link_is_up(&up, link).await;
    let rendered = far.stats().await.unwrap().slots[0].frames_rendered;
    common::until_rendered(far, rendered + 30, "ap-1 after the heal").await;
    for viewer in viewers {
        let _ = viewer.close().await;
    }
    let _ = publisher.close().await;
}

/// `arbor load` as an operator runs it against `arbor up`: a publisher on eu-1 and subscribers
/// spread over both edges (so half of them watch through the cascade); the JSON report says
/// everyone joined and rendered, with latency and loss measured.
#[tokio::test]
async fn arbor_load_reports_what_a_fleet_saw() {
    let net = ip_base(3);
    let mut up = Up::start("load", &["--ip-base", &net, "--edges", "2"]);
    let cluster = up.cluster().await;
    for link in &cluster.links {
        link_is_up(&up, link).await;
    }
    let bind = format!("{net}.0.1");
    let load = [
        "load",
        "--subscribers",
        "16",
        "--duration",
        "3s",
        "--json",
        "--bind",
        &bind,
    ];
    let out = common::arbor(&up.dir.join("data"), &load).await;
    let (report, stderr) = common::json_of(&out, "arbor load");
    assert!(
        stderr.contains("measuring: 17 joined, 0 failed"),
        "{stderr}"
    );
    assert_eq!(report["joined"], 17, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["video_slots"], 16, "{report:#}");
    assert_eq!(report["video_slots_rendering"], 16, "{report:#}");
    assert!(
        report["fps_per_slot"].as_f64().unwrap() > 20.0,
        "{report:#}"
    );
    assert!(report["loss_pct"].as_f64().unwrap() < 1.0, "{report:#}");
    assert!(
        report["latency"]["samples"].as_u64().unwrap() > 100,
        "{report:#}"
    );
    assert!(
        report["first_frame"]["p50_ms"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    // Everyone left on the way out: no participant waits out the resume grace period (30 s)
    // with its session still served.
    for edge in &cluster.edges {
        participants_drop_to_zero(&edge.http_url).await;
    }

    // Bad input names the problem.
    let out = common::arbor(
        &up.dir.join("data"),
        &["load", "--publisher-edges", "mars-1"],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no edge \"mars-1\" in the cluster (it has eu-1, us-1)"),
        "{stderr}"
    );
}
