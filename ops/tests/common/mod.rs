//! What the end-to-end tests of this package share: tokens, synthetic viewers, and watching
//! what a viewer renders.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use arbor_loadgen::protocol::TrackInfo;
use arbor_loadgen::{ClientConfig, ClientHandle, Epoch, SlotStats, connect};
use tokio::time::Instant;

/// Longest wait for a client-side step that should take well under a second.
pub const T: Duration = Duration::from_secs(20);

/// A join token for `identity` in `meeting`, valid for an hour, signed with `key`/`secret`.
pub fn join_token(meeting: &str, identity: &str, key: &str, secret: &str) -> String {
    let auth = arbor_bench::load::Auth {
        api_key: key.to_owned(),
        api_secret: secret.to_owned(),
    };
    auth.join_token(
        &meeting.parse().unwrap(),
        identity,
        Duration::from_secs(3600),
    )
}

/// A publisher (camera with simulcast, microphone) joining at `ws_url`; `n` seeds it.
pub async fn publisher(ws_url: &str, token: &str, epoch: Epoch, n: u32) -> ClientHandle {
    let mut pc = ClientConfig::new(epoch);
    pc.source_id = n;
    pc.seed = u64::from(n);
    connect(ws_url, token, pc).await.unwrap()
}

/// A viewer (one video and one audio slot) joining at `ws_url`; `n` seeds it.
pub async fn viewer(ws_url: &str, token: &str, epoch: Epoch, n: u32) -> ClientHandle {
    let mut sc = ClientConfig::subscriber(epoch, 1, 1);
    sc.source_id = n;
    sc.seed = u64::from(n);
    connect(ws_url, token, sc).await.unwrap()
}

/// `publisher`'s camera as `viewer` learns of it: in its snapshot, or announced later.
pub async fn camera_of(viewer: &ClientHandle, publisher: &ClientHandle) -> TrackInfo {
    match arbor_bench::load::camera_of(viewer, publisher.participant_id(), T).await {
        Ok(track) => track,
        Err(e) => panic!("the camera never reached this viewer's edge: {e}"),
    }
}

/// Subscribes `viewer`'s first video slot to `publisher`'s camera at `width`×`height`.
pub async fn watch(viewer: &ClientHandle, publisher: &ClientHandle, width: u32, height: u32) {
    let cam = camera_of(viewer, publisher).await;
    let slot = viewer.mids().video_slots[0];
    viewer
        .subscribe(cam.id, slot, Some(width), Some(height))
        .await
        .unwrap();
}

/// Waits until `viewer`'s first slot has rendered more than `frames` frames.
pub async fn until_rendered(viewer: &ClientHandle, frames: u64, what: &str) -> SlotStats {
    let deadline = Instant::now() + T;
    loop {
        let s = viewer.stats().await.unwrap().slots[0].clone();
        if s.frames_rendered > frames {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a viewer rendered while it was watched.
#[derive(Debug)]
pub struct Stalls {
    /// The longest time without a new frame, counted from the start of the watch.
    pub longest: Duration,
    /// How long ago the last new frame was, when the watch ended.
    pub since_last: Duration,
}

/// Watches `viewer`'s first slot from `from` until `from + span`: the longest stall is the
/// media gap an event at `from` caused.
pub async fn watch_stalls(viewer: &ClientHandle, from: Instant, span: Duration) -> Stalls {
    let frames = async || viewer.stats().await.unwrap().slots[0].frames_rendered;
    let mut last = frames().await;
    let mut last_change = from;
    let mut longest = Duration::ZERO;
    while from.elapsed() < span {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let f = frames().await;
        if f != last {
            longest = longest.max(last_change.elapsed());
            last = f;
            last_change = Instant::now();
        }
    }
    Stalls {
        longest: longest.max(last_change.elapsed()),
        since_last: last_change.elapsed(),
    }
}

/// The directory holding `arbor`, `arbor-edge` and `arbor-origin`, built once per process.
///
/// `cargo nextest run -p arbor-ops` builds only the `arbor` binary of this package, so this
/// first makes sure `arbor-edge` and `arbor-origin` are built into the same target directory
/// and profile. It asks cargo for exactly what `cargo nextest run --workspace` builds
/// (`cargo test --no-run --workspace`): the same units with the same unified features, so
/// after a workspace run it is a no-op, where a plain `cargo build -p arbor-edge` would
/// resolve features differently and compile a second copy of half the dependency tree.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let arbor = Path::new(env!("CARGO_BIN_EXE_arbor"));
        let profile_dir = arbor.parent().unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args(["test", "--no-run", "--workspace", "--target-dir"])
            .arg(target_dir);
        // `debug` is where the default `test` profile builds; any other directory names its
        // profile.
        match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => {}
            other => {
                cargo.args(["--profile", other]);
            }
        }
        let out = cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cannot run cargo");
        assert!(
            out.status.success(),
            "building arbor-edge and arbor-origin failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.to_owned()
    })
}

/// Runs `arbor --data-dir <data_dir> <args>` (without the developer's `RUST_LOG`).
pub async fn arbor(data_dir: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(binaries().join("arbor"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

/// The JSON an `arbor` command printed, and its stderr; fails the test if the command failed.
pub fn json_of(out: &std::process::Output, what: &str) -> (serde_json::Value, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    (serde_json::from_str(&stdout).unwrap(), stderr)
}
