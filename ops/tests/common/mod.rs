//! What the end-to-end tests of this package share: tokens, synthetic viewers, and watching
//! what a viewer renders.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbor_loadgen::protocol::{Kind, ServerMsg, Source, TrackInfo};
use arbor_loadgen::{ClientConfig, ClientHandle, Epoch, SlotStats, connect};
use relay_proto::token::{Claims, mint};
use tokio::time::Instant;

/// Longest wait for a client-side step that should take well under a second.
pub const T: Duration = Duration::from_secs(20);

/// A join token for `identity` in `meeting`, valid for an hour, signed with `key`/`secret`.
pub fn join_token(meeting: &str, identity: &str, key: &str, secret: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims::join(&meeting.parse().unwrap(), identity, now + 3600);
    mint(&claims, key, secret.as_bytes())
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
    let who = publisher.participant_id();
    let is_cam = |t: &TrackInfo| {
        t.participant_id == who && t.kind == Kind::Video && t.source == Source::Camera
    };
    if let Some(t) = viewer.joined().tracks.iter().find(|t| is_cam(t)) {
        return t.clone();
    }
    let announced =
        |m: &ServerMsg| matches!(m, ServerMsg::TrackPublished { track } if is_cam(track));
    match viewer.wait_for_named("track_published", announced, T).await {
        Ok(ServerMsg::TrackPublished { track }) => track,
        other => panic!("the camera never reached this viewer's edge: {other:?}"),
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
