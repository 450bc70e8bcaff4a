//! The tokio driver against a fake edge on real loopback sockets: a WebSocket that speaks just
//! enough of `docs/signaling.md`, and an ICE-lite RTP-mode str0m `Rtc` that counts what arrives
//! per rid and loops the client's own `h` layer back into the slot it subscribes.
//!
//! Real time, but nothing sleeps: every wait is on an event with a timeout.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor_loadgen::protocol::ServerMsg;
use arbor_loadgen::{ClientConfig, Epoch, connect};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::SdpOffer;
use str0m::media::{Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite};
use str0m::{Candidate, Event, Rtc};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const ME: &str = "p_00000000000000aa";
const MY_VIDEO: &str = "t_00000000000000bb";

type Counts = Arc<Mutex<HashMap<String, u64>>>;

/// Starts the fake edge; returns its `ws://` URL and the per-rid packet counts.
async fn fake_edge() -> (String, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let counts = Counts::default();
    let c = counts.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        serve(ws, c).await;
    });
    (url, counts)
}

fn joined() -> Value {
    json!({"type": "joined",
        "participant": {"id": ME, "identity": "loadgen", "name": "L", "joined_at_ms": 0, "can_publish": true},
        "resume_secret": "s", "meeting": {"id": "room"}, "participants": [], "tracks": [], "chat": [],
        "ice_servers": [], "limits": {"max_participants": 100, "max_chat_len": 2000, "max_message_bytes": 65536},
        "future_field": 1})
}

async fn next_text(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            _ => panic!("socket closed"),
        }
    }
}

async fn serve(mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, counts: Counts) {
    let join = next_text(&mut ws).await;
    assert_eq!(join["type"], "join");
    assert_eq!(join["token"], "tok");
    ws.send(Message::text(joined().to_string())).await.unwrap();
    ws.send(Message::text(json!({"type": "hologram"}).to_string()))
        .await
        .unwrap();
    let offer = next_text(&mut ws).await;
    assert_eq!(offer["type"], "offer");
    let publish = offer["publish"].as_array().unwrap().clone();

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let mut rtc = Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .build(Instant::now().into_std());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let sdp = SdpOffer::from_sdp_string(offer["sdp"].as_str().unwrap()).unwrap();
    let answer = rtc.sdp_api().accept_offer(sdp).unwrap();
    let video_mid: Mid = publish.iter().find(|p| p["source"] == "camera").unwrap()["mid"]
        .as_str()
        .unwrap()
        .into();

    let send = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, v: Value| {
        ws.send(Message::text(v.to_string())).await.unwrap();
    };
    send(
        &mut ws,
        json!({"type": "answer", "sdp": answer.to_sdp_string()}),
    )
    .await;

    let mut slot: Option<Mid> = None;
    let mut seq = 1000u64;
    let mut buf = vec![0u8; 2048];
    loop {
        let mut events = vec![];
        let timeout = loop {
            match rtc.poll_output().unwrap() {
                str0m::Output::Timeout(t) => break t,
                str0m::Output::Transmit(t) => {
                    let _ = udp.send_to(&t.contents, t.destination).await;
                }
                str0m::Output::Event(e) => events.push(e),
            }
        };
        for e in events {
            let Event::RtpPacket(p) = e else { continue };
            let Some((mid, rid)) = rtc
                .direct_api()
                .stream_rx(&p.header.ssrc)
                .map(|s| (s.mid(), s.rid()))
            else {
                continue;
            };
            let key = rid.map_or_else(|| mid.to_string(), |r| r.to_string());
            *counts.lock().unwrap().entry(key).or_default() += 1;
            // Loop our own `h` layer back into the subscribed slot.
            if let (Some(dst), true) = (slot, mid == video_mid && rid == Some(Rid::from("h"))) {
                if let Some(tx) = rtc.direct_api().stream_tx_by_mid(dst, None) {
                    let w = RtpWrite::new(
                        p.header.payload_type,
                        seq.into(),
                        p.header.timestamp,
                        p.timestamp,
                        p.payload.clone(),
                    )
                    .marker(p.header.marker)
                    .ext_vals(ExtensionValues::default())
                    .nackable(true);
                    tx.write_rtp(w);
                    seq += 1;
                }
                // Drain after the write (single-mutation rule); a timeout stamps it.
                while !matches!(rtc.poll_output().unwrap(), str0m::Output::Timeout(_)) {}
                rtc.handle_input(str0m::Input::Timeout(Instant::now().into_std()))
                    .unwrap();
            }
        }
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                let (n, source) = r.unwrap();
                let input = str0m::Input::Receive(Instant::now().into_std(), Receive {
                    proto: Protocol::Udp, source, destination: local, contents: buf[..n].try_into().unwrap(),
                });
                rtc.handle_input(input).unwrap();
            }
            m = ws.next() => {
                let Some(Ok(Message::Text(t))) = m else { return };
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str().unwrap() {
                    "chat" => send(&mut ws, json!({"type": "chat", "message": {"id": 1, "participant_id": ME,
                        "identity": "loadgen", "name": "L", "text": v["text"], "ts_ms": 5}})).await,
                    "subscribe" => {
                        assert_eq!(v["track_id"], MY_VIDEO);
                        slot = Some(v["mid"].as_str().unwrap().into());
                        send(&mut ws, json!({"type": "layer_changed", "mid": v["mid"], "rid": "h", "width": 640, "height": 360})).await;
                    }
                    "leave" => return,
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(Instant::from_std(timeout)) => {
                rtc.handle_input(str0m::Input::Timeout(Instant::now().into_std())).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn connects_publishes_simulcast_and_receives_a_slot() {
    let (url, counts) = fake_edge().await;
    let start = Instant::now().into_std();
    let mut config = ClientConfig::new(Epoch(start));
    config.video_slots = 2;
    config.audio_slots = 1;
    config.source_id = 7;
    let client = connect(&url, "tok", config).await.unwrap();
    assert_eq!(client.participant_id().to_string(), ME);
    let mids = client.mids();
    assert_eq!((mids.video_slots.len(), mids.audio_slots.len()), (2, 1));
    client
        .wait_media_connected(Duration::from_secs(5))
        .await
        .unwrap();

    client.chat("hello").await.unwrap();
    let chat = client
        .wait_for(
            |m| matches!(m, ServerMsg::Chat { message } if message.text == "hello"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(chat.kind(), "chat");
    // The unknown message type arrived before and did not break anything.
    client
        .wait_for(|m| *m == ServerMsg::Unknown, Duration::ZERO)
        .await
        .unwrap();
    // wait_for never returns a message twice.
    let again = client
        .wait_for(
            |m| matches!(m, ServerMsg::Chat { .. }),
            Duration::from_millis(50),
        )
        .await;
    assert!(again.unwrap_err().to_string().contains("timed out"));

    let slot = mids.video_slots[0];
    client
        .subscribe(MY_VIDEO.parse().unwrap(), slot, Some(640), Some(360))
        .await
        .unwrap();
    client
        .wait_for_named(
            "layer_changed",
            |m| matches!(m, ServerMsg::LayerChanged { .. }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();

    // Wait (by polling stats) until the slot has rendered a second of video.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = client.stats().await.unwrap();
        if s.slots[0].frames_rendered >= 30 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let s = &stats.slots[0];
    assert!(s.frames_rendered >= 30, "{s:#?}");
    assert_eq!(
        (s.width, s.height, s.layer, s.source),
        (Some(640), Some(360), Some(1), Some(7)),
        "{s:#?}"
    );
    assert!(s.first_frame.is_some());
    assert!(
        s.latency.max < Duration::from_millis(200),
        "{:?}",
        s.latency
    );
    assert_eq!(s.frame_gaps + s.picture_id_jumps, 0, "{s:#?}");
    assert!(stats.connected && stats.driver.signaling_open);
    {
        let c = counts.lock().unwrap();
        for rid in ["q", "h", "f"] {
            assert!(c.get(rid).copied().unwrap_or(0) > 20, "{c:?}");
        }
    }

    // Squeeze the downlink: the throttle drops what does not fit.
    client.set_downlink_limit(Some(50_000)).await.unwrap();
    let before = client.stats().await.unwrap().driver.downlink.dropped;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = client.stats().await.unwrap().driver;
        if d.downlink.dropped > before || Instant::now() > deadline {
            assert!(d.downlink.dropped > before, "{d:?}");
            assert_eq!(d.downlink_limit_bps, Some(50_000));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.set_downlink_limit(None).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn timeouts_name_what_was_awaited() {
    // A server that accepts the WebSocket and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while ws.next().await.is_some() {}
    });
    let options = arbor_loadgen::ConnectOptions {
        signal_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let config = ClientConfig::new(Epoch(Instant::now().into_std()));
    let err = arbor_loadgen::connect_with(&url, "tok", config, options)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 200ms waiting for `joined`"
    );
}

#[tokio::test]
async fn edge_errors_are_reported_with_their_code() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _ = ws.next().await;
        let e =
            json!({"type": "error", "code": "token_expired", "message": "expired", "fatal": true});
        ws.send(Message::text(e.to_string())).await.unwrap();
    });
    let config = ClientConfig::new(Epoch(Instant::now().into_std()));
    let err = connect(&url, "tok", config).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "edge error token_expired while waiting for `joined`: expired (fatal)"
    );
}
