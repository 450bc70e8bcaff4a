//! Against a real edge on loopback, with synthetic str0m clients over real UDP sockets and
//! the signaling WebSocket: a 3-layer simulcast publisher, a subscriber asking three sizes
//! of it (each gets its own layer), audio levels and active speakers, chat, a downlink
//! squeeze that forces a down-switch and a recovery that switches back up — on keyframes —
//! and the 100-participant cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use arbor_loadgen::protocol::{Kind, ServerMsg, Source, TrackInfo};
use arbor_loadgen::{ClientConfig, ClientHandle, Epoch, SlotStats, connect};
use common::{start_edge, token, ws_url};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(20);

async fn camera_of(c: &ClientHandle, publisher: &ClientHandle) -> TrackInfo {
    let who = publisher.participant_id();
    let is_cam = |t: &TrackInfo| {
        t.participant_id == who && t.kind == Kind::Video && t.source == Source::Camera
    };
    if let Some(t) = c.joined().tracks.iter().find(|t| is_cam(t)) {
        return t.clone();
    }
    let msg = c
        .wait_for_named(
            "track_published",
            |m| matches!(m, ServerMsg::TrackPublished { track } if is_cam(track)),
            T,
        )
        .await
        .unwrap();
    let ServerMsg::TrackPublished { track } = msg else {
        unreachable!()
    };
    track
}

async fn slot_stats(c: &ClientHandle, i: usize) -> SlotStats {
    c.stats().await.unwrap().slots[i].clone()
}

/// Polls until `f` holds for slot `i` or `T` passes.
async fn until(
    c: &ClientHandle,
    i: usize,
    what: &str,
    f: impl Fn(&SlotStats) -> bool,
) -> SlotStats {
    let deadline = Instant::now() + T;
    loop {
        let s = slot_stats(c, i).await;
        if f(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_audio_chat_and_a_downlink_squeeze() {
    let edge = start_edge(1).await;
    let url = ws_url(&edge);
    let meeting = "loopback";
    let epoch = Epoch(Instant::now().into_std());

    let mut pc = ClientConfig::new(epoch);
    pc.name = Some("Pub".into());
    pc.source_id = 1;
    if let Some(a) = &mut pc.audio {
        a.speaking = true;
    }
    let publisher = connect(&url, &token(meeting, "pub"), pc).await.unwrap();
    publisher.wait_media_connected(T).await.unwrap();

    let mut sc = ClientConfig::subscriber(epoch, 3, 1);
    sc.name = Some("Sub".into());
    sc.seed = 2;
    let sub = connect(&url, &token(meeting, "sub"), sc).await.unwrap();
    sub.wait_media_connected(T).await.unwrap();

    let cam = camera_of(&sub, &publisher).await;
    println!("camera track: {cam:?}");
    let slots = sub.mids().video_slots;
    for (slot, (w, h)) in slots.iter().zip([(320, 180), (640, 360), (1280, 720)]) {
        sub.subscribe(cam.id, *slot, Some(w), Some(h))
            .await
            .unwrap();
    }
    for (i, (w, h)) in [(320, 180), (640, 360), (1280, 720)]
        .into_iter()
        .enumerate()
    {
        // The edge may start low and step up as its estimate of our downlink grows.
        let s = until(&sub, i, "30 frames at the wanted size", |s| {
            s.frames_rendered >= 30 && (s.width, s.height) == (Some(w), Some(h))
        })
        .await;
        println!(
            "slot {i}: {}x{} layer {:?} ttff {:?} latency mean {:?} max {:?}",
            s.width.unwrap_or(0),
            s.height.unwrap_or(0),
            s.layer,
            s.first_frame,
            s.latency.mean(),
            s.latency.max
        );
        assert_eq!((s.width, s.height), (Some(w), Some(h)), "{s:#?}");
        assert_eq!(s.source, Some(1));
        assert_eq!(
            s.switches_without_keyframe + s.picture_id_missing,
            0,
            "{s:#?}"
        );
    }

    sub.chat("hi from loadgen").await.unwrap();
    publisher
        .wait_for_named(
            "chat",
            |m| matches!(m, ServerMsg::Chat { message } if message.text == "hi from loadgen"),
            T,
        )
        .await
        .unwrap();

    // The microphone, speaking at -20 dBov.
    let who = publisher.participant_id();
    let is_mic = |t: &TrackInfo| t.participant_id == who && t.kind == Kind::Audio;
    let mic = match sub.joined().tracks.iter().find(|t| is_mic(t)) {
        Some(t) => t.clone(),
        None => {
            let m = sub
                .wait_for_named(
                    "the microphone's track_published",
                    |m| matches!(m, ServerMsg::TrackPublished { track } if is_mic(track)),
                    T,
                )
                .await
                .unwrap();
            let ServerMsg::TrackPublished { track } = m else {
                unreachable!()
            };
            track
        }
    };
    let audio_slot = sub.mids().audio_slots[0];
    sub.subscribe(mic.id, audio_slot, None, None).await.unwrap();
    let a = until(&sub, 3, "audio with a level", |s| {
        s.frames >= 50 && s.audio_level == Some(-20)
    })
    .await;
    println!(
        "audio: {} frames, level {:?}, latency mean {:?}",
        a.frames,
        a.audio_level,
        a.latency.mean()
    );
    sub.wait_for_named("active_speakers naming the publisher",
        |m| matches!(m, ServerMsg::ActiveSpeakers { speakers } if speakers.iter().any(|s| s.participant_id == who)), T)
        .await
        .unwrap();

    // Squeeze the subscriber's downlink: the edge should step the 720p slot down.
    let big = slots[2].to_string();
    sub.skip_received();
    sub.set_downlink_limit(Some(700_000)).await.unwrap();
    let lower = sub
        .wait_for_named("layer_changed to a lower layer",
            |m| matches!(m, ServerMsg::LayerChanged { mid, height, .. } if *mid == big && *height < 720), T)
        .await
        .unwrap();
    println!("downlink squeezed: {lower:?}");
    sub.set_downlink_limit(None).await.unwrap();
    let back = sub
        .wait_for_named(
            "layer_changed back to 720p",
            |m| matches!(m, ServerMsg::LayerChanged { mid, height: 720, .. } if *mid == big),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    println!("downlink restored: {back:?}");
    let stats = sub.stats().await.unwrap();
    for s in &stats.slots {
        println!(
            "{}: frames {} rendered {} kf {} freezes {} ({:?}) plis {} gaps {} nc {} layer {:?}",
            s.mid,
            s.frames,
            s.frames_rendered,
            s.keyframes,
            s.freezes,
            s.freeze_total,
            s.plis_sent,
            s.frame_gaps,
            s.non_contiguous,
            s.layer
        );
    }
    println!(
        "publisher: {:#?}",
        publisher.stats().await.unwrap().publisher
    );
    sub.close().await.unwrap();
    publisher.close().await.unwrap();
}

/// Joins over the WebSocket only (no media) and returns the first reply.
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_join(url: &str, identity: &str) -> (Ws, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = serde_json::json!({"type": "join", "token": token("full", identity)});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => return (ws, serde_json::from_str(&t).unwrap()),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hundred_and_first_participant_gets_a_clear_refusal() {
    let edge = start_edge(2).await;
    let url = ws_url(&edge);
    let mut sockets = Vec::new();
    for i in 0..100 {
        let (ws, reply) = ws_join(&url, &format!("p{i}")).await;
        assert_eq!(reply["type"], "joined", "{reply}");
        sockets.push(ws);
    }
    let (_ws, reply) = ws_join(&url, "late").await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], "meeting_full");
    assert_eq!(reply["fatal"], true);
    assert!(
        reply["message"].as_str().unwrap().contains("100"),
        "{reply}"
    );
    // Someone leaves; the next join succeeds.
    let mut leaver = sockets.pop().unwrap();
    leaver
        .send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .unwrap();
    let deadline = Instant::now() + T;
    loop {
        let (_ws, reply) = ws_join(&url, "late").await;
        if reply["type"] == "joined" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never admitted after a leave: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
