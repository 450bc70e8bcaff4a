#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `arbor edge drain` as an operator runs it against `arbor up` (issue 5 §2): the real
//! `arbor`, `arbor-origin` and `arbor-edge` processes on a loopback network of this test's
//! own (`127.<220 + pid % 30>`), synthetic clients from `arbor_loadgen`.
//!
//! A viewer on eu-1 watches a publisher on us-1. `arbor edge drain eu-1`: eu-1's `/readyz`
//! turns 503 ("draining"), new joins there are sent to us-1 (signaling `redirect`, WHIP
//! `307`), the viewer is told to `migrate` to us-1, joins there with the same identity and
//! renders again; once it leaves eu-1, the origin reports eu-1 drained and the command exits
//! 0. Conditions are waited for with deadlines, never time alone.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use arbor_loadgen::protocol::{MigrateReason, ServerMsg};
use arbor_ops::cluster::Cluster;
use futures_util::{SinkExt as _, StreamExt as _};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

mod common;

/// Longest wait for anything that should happen within seconds; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(100);

/// A running `arbor up` in a directory of its own. Dropping it stops the cluster (SIGTERM,
/// then SIGKILL to whatever is left) and removes the directory unless the test failed.
struct Up {
    child: Child,
    dir: PathBuf,
}

impl Up {
    fn start(args: &[&str]) -> Up {
        let dir = std::env::temp_dir().join(format!("arbor-drain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(common::binaries().join("arbor"));
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
        Up {
            child: command.spawn().unwrap(),
            dir,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits for `cluster.json`, which `arbor up` writes once every edge is registered.
    async fn cluster(&mut self) -> Cluster {
        let path = Cluster::path_in(&self.data());
        let deadline = Instant::now() + PATIENCE;
        while !path.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let err = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
                panic!("arbor up exited ({status}) before the cluster was up\n{err}");
            }
            assert!(Instant::now() < deadline, "no cluster.json");
            tokio::time::sleep(POLL).await;
        }
        Cluster::read(&path).unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Some(pid) = self.child.id().and_then(|id| Pid::from_raw(id as i32))
        {
            let _ = kill_process(pid, Signal::TERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline
            {
                std::thread::sleep(POLL);
            }
            let _ = self.child.start_kill();
        }
        if let Ok(cluster) = Cluster::read(&Cluster::path_in(&self.data())) {
            let origin = cluster.origin.iter().map(|o| o.pid);
            for pid in origin.chain(cluster.edges.iter().map(|e| e.pid)) {
                if let Some(pid) = Pid::from_raw(pid as i32) {
                    let _ = kill_process(pid, Signal::KILL);
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("arbor up's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `GET <url>`: status and body.
async fn get(url: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some((key, secret)) = auth {
        request = request.basic_auth(key, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `url` until `done` holds for its status and body; returns the body.
async fn until(
    url: &str,
    auth: Option<(&str, &str)>,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(url, auth).await;
        if done(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {status} {body}");
        tokio::time::sleep(POLL).await;
    }
}

/// Sends `join` on a fresh socket to `ws_url` and returns the first answer.
async fn first_answer(ws_url: &str, token: &str) -> Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let join = serde_json::json!({ "type": "join", "token": token });
    ws.send(Message::text(join.to_string())).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.unwrap();
        if let Some(Ok(Message::Text(text))) = next {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(next.is_some(), "the socket closed without an answer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_edge_sends_its_clients_elsewhere_and_reports_empty() {
    let net = format!("127.{}", 220 + std::process::id() % 30);
    let mut up = Up::start(&["--ip-base", &net, "--edges", "2", "--no-impair"]);
    let cluster = up.cluster().await;
    let edge = |id: &str| cluster.edge(&id.parse().unwrap()).unwrap().clone();
    let (eu, us) = (edge("eu-1"), edge("us-1"));
    let api = cluster.origin.clone().unwrap().api_url;
    let auth = Some((cluster.api_key.as_str(), cluster.api_secret.as_str()));
    let token = |identity: &str| {
        common::join_token("drain", identity, &cluster.api_key, &cluster.api_secret)
    };
    let readyz = format!("{}/readyz", eu.http_url);
    assert_eq!(get(&readyz, None).await, (200, "ready\n".to_owned()));

    // A publisher on us-1, watched by a viewer on eu-1 through the cascade.
    let epoch = arbor_loadgen::Epoch(Instant::now().into_std());
    let publisher = common::publisher(&us.ws_url, &token("alice"), epoch, 1).await;
    let viewer = common::viewer(&eu.ws_url, &token("bob"), epoch, 2).await;
    common::watch(&viewer, &publisher, 320, 180).await;
    common::until_rendered(&viewer, 30, "no video on eu-1 before the drain").await;

    // The operator drains eu-1 and waits for it to empty.
    let data = up.data();
    let drain = Command::new(common::binaries().join("arbor"))
        .arg("--data-dir")
        .arg(&data)
        .args(["edge", "drain", "eu-1", "--timeout", "2m"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Anycast and DNS health checks see it leave.
    let body = until(&readyz, None, "eu-1 still ready", |s, _| s == 503).await;
    assert!(body.starts_with("draining: "), "{body}");
    assert_eq!(body.lines().count(), 1, "{body}");

    // Its client is told where to go, and ends up there with media flowing again.
    let moved = viewer
        .wait_for_named(
            "migrate",
            |m| matches!(m, ServerMsg::Migrate { .. }),
            PATIENCE,
        )
        .await
        .unwrap();
    let ServerMsg::Migrate {
        edge_id,
        url,
        ws_url,
        reason,
    } = moved
    else {
        unreachable!()
    };
    assert_eq!(
        (edge_id.as_str(), url.as_str(), ws_url.as_str(), reason),
        (
            "us-1",
            us.http_url.as_str(),
            us.ws_url.as_str(),
            MigrateReason::Draining
        )
    );
    let rejoined = common::viewer(&ws_url, &token("bob"), epoch, 3).await;
    assert_eq!(rejoined.joined().participant.identity, "bob");
    common::watch(&rejoined, &publisher, 320, 180).await;
    common::until_rendered(&rejoined, 30, "no video on us-1 after the move").await;
    // Meanwhile eu-1 kept the meeting going for the client that had not left yet.
    let before = viewer.stats().await.unwrap().slots[0].frames_rendered;
    common::until_rendered(&viewer, before + 5, "eu-1 stopped serving its client").await;

    // New joins on eu-1 go to us-1: signaling redirects, WHIP answers 307.
    let answer = first_answer(&eu.ws_url, &token("carol")).await;
    assert_eq!(answer["type"], "redirect", "{answer}");
    assert_eq!(answer["edge_id"], "us-1", "{answer}");
    assert_eq!(answer["ws_url"], us.ws_url.as_str(), "{answer}");
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let whip = no_follow
        .post(format!("{}/drain", eu.whip_url))
        .bearer_auth(token("obs"))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(whip.status().as_u16(), 307);
    assert_eq!(whip.headers()["location"], format!("{}/drain", us.whip_url));

    // The client leaves eu-1: it is empty, the origin says so, the command is done.
    let _ = viewer.close().await;
    let out = tokio::time::timeout(PATIENCE, drain.wait_with_output())
        .await
        .expect("arbor edge drain did not return")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("eu-1: drain requested"), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == "eu-1: drained, no session left; it can be stopped"),
        "{stdout}"
    );
    let (status, row) = get(&format!("{api}/edges/eu-1"), auth).await;
    let row: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        (&row["status"], &row["sessions"], &row["drained"]),
        (&"draining".into(), &0.into(), &true.into()),
        "{row}"
    );
    let log = up.log("edge-eu-1");
    assert!(log.contains("draining: no new joins"), "{log}");
    assert!(log.contains("drained: no participants left"), "{log}");
    assert!(
        get(&readyz, None)
            .await
            .1
            .starts_with("draining: 0 sessions")
    );

    // Mistakes are named.
    let out = common::arbor(&data, &["edge", "drain", "mars-1", "--no-wait"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the origin knows no edge \"mars-1\" (it lists eu-1, us-1)"),
        "{stderr}"
    );

    let _ = rejoined.close().await;
    let _ = publisher.close().await;
}
