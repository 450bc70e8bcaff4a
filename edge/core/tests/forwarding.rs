//! The router end to end, in virtual time, with real str0m clients: simulcast layer choice
//! by requested size and by downlink bandwidth, keyframe-gated switches, continuity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use arbor_loadgen::ClientConfig;
use common::{Mesh, ToCore};
use edge_core::Limits;
use edge_core::signal::{ClientMsg, Kind, ServerMsg};

/// A publisher and two subscribers with one video slot each; returns the video track id.
fn meeting() -> (Mesh, relay_proto::TrackId) {
    let mut mesh = Mesh::new(Limits::default());
    let publisher = mesh.join("alice", ClientConfig::new(mesh.epoch));
    mesh.join("bob", ClientConfig::subscriber(mesh.epoch, 1, 1));
    mesh.join("carol", ClientConfig::subscriber(mesh.epoch, 1, 1));
    mesh.run(Duration::from_millis(1500));
    assert!(
        mesh.peers[publisher].client.is_connected(),
        "publisher connects"
    );
    let track = mesh
        .tracks_seen(1)
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .expect("bob was told about alice's camera");
    assert!(track.simulcast);
    (mesh, track.id)
}

#[test]
fn subscribers_get_the_layer_their_tile_needs() {
    let (mut mesh, track) = meeting();
    mesh.subscribe(1, track, 720);
    mesh.subscribe(2, track, 180);
    mesh.run(Duration::from_secs(4));

    let big = mesh.video_slot(1);
    let small = mesh.video_slot(2);
    assert_eq!((big.width, big.height), (Some(1280), Some(720)), "{big:#?}");
    assert_eq!(
        (small.width, small.height),
        (Some(320), Some(180)),
        "{small:#?}"
    );
    for s in [&big, &small] {
        assert!(s.frames > 80, "about 30 fps for 3 s: {s:#?}");
        assert_eq!(s.switches_without_keyframe, 0);
        assert_eq!(s.non_contiguous, 0, "{s:#?}");
        assert_eq!(s.timestamp_regressions, 0);
    }
    // The layer sizes learned from keyframes reached the clients.
    let changed: Vec<_> = mesh.peers[1]
        .inbox
        .iter()
        .filter_map(|m| match m {
            ServerMsg::LayerChanged { height, .. } => Some(*height),
            _ => None,
        })
        .collect();
    assert_eq!(changed.last(), Some(&720));
}

#[test]
fn a_bandwidth_drop_steps_down_and_recovery_steps_back_up() {
    let (mut mesh, track) = meeting();
    mesh.subscribe(1, track, 720);
    mesh.subscribe(2, track, 720);
    mesh.run(Duration::from_secs(4));
    assert_eq!(mesh.video_slot(1).height, Some(720));

    // Bob's downlink falls to 600 kbit/s: 720p (1.5 Mbit/s) no longer fits.
    mesh.peers[1].downlink_bps = Some(600_000);
    let carol_before = mesh.video_slot(2);
    mesh.run(Duration::from_secs(10));
    let down = mesh.video_slot(1);
    assert!(down.height.unwrap() < 720, "stepped down: {down:#?}");
    // A slow subscriber costs only itself: Carol keeps 720p, without a glitch.
    let carol = mesh.video_slot(2);
    assert_eq!(carol.height, Some(720), "{carol:#?}");
    assert_eq!(carol.layer_switches, carol_before.layer_switches);
    assert_eq!(carol.non_contiguous, 0, "{carol:#?}");
    assert!(carol.frames - carol_before.frames >= 290, "{carol:#?}");

    // The link recovers; probing finds the capacity and the slot climbs back.
    mesh.peers[1].downlink_bps = None;
    mesh.run(Duration::from_secs(20));
    let up = mesh.video_slot(1);
    assert_eq!(up.height, Some(720), "stepped back up: {up:#?}");
    assert!(up.layer_switches >= 2);
    // Under the bottleneck the link itself drops packets (keyframes included), so only the
    // lossless recovery is attributable to the router: its switches all land on keyframes.
    assert_eq!(
        up.switches_without_keyframe, down.switches_without_keyframe,
        "every switch after recovery lands on a keyframe: {up:#?}"
    );
    assert!(
        mesh.peers[1].dropped > 0,
        "the bottleneck really dropped packets"
    );
    assert_eq!(up.timestamp_regressions, 0);
}

#[test]
fn downlink_loss_is_repaired_by_nack_and_costs_only_that_subscriber() {
    let (mut mesh, track) = meeting();
    mesh.subscribe(1, track, 720);
    mesh.subscribe(2, track, 720);
    mesh.run(Duration::from_secs(2));
    // Bob's downlink loses 3% of packets; Carol's is clean.
    mesh.peers[1].downlink_loss = 0.03;
    mesh.run(Duration::from_secs(10));
    let bob = mesh.video_slot(1);
    let carol = mesh.video_slot(2);
    assert!(mesh.peers[1].dropped > 50, "the link really lost packets");
    assert!(
        mesh.edges[0].worker.stats().nacks_received > 0,
        "Bob's NACKs reached the edge"
    );
    // Retransmissions from the edge's RTX cache fill the holes: almost every frame renders.
    let rendered = bob.frames_rendered as f64 / bob.frames as f64;
    assert!(
        rendered > 0.95,
        "Bob rendered {rendered:.3} of his frames: {bob:#?}"
    );
    assert!(bob.frames > 300, "{bob:#?}");
    // Carol never noticed.
    assert_eq!(carol.height, Some(720));
    assert_eq!(carol.non_contiguous, 0, "{carol:#?}");
    assert_eq!(carol.frames_missing, 0);
}

#[test]
fn a_rebound_slot_stays_one_continuous_stream() {
    let mut mesh = Mesh::new(Limits::default());
    mesh.join("alice", ClientConfig::new(mesh.epoch));
    mesh.join("dave", ClientConfig::new(mesh.epoch));
    let viewer = mesh.join("bob", ClientConfig::subscriber(mesh.epoch, 1, 0));
    mesh.run(Duration::from_millis(1500));
    let tracks: Vec<_> = mesh
        .tracks_seen(viewer)
        .into_iter()
        .filter(|t| t.kind == Kind::Video)
        .collect();
    assert_eq!(tracks.len(), 2);
    mesh.subscribe(viewer, tracks[0].id, 360);
    mesh.run(Duration::from_secs(2));
    mesh.subscribe(viewer, tracks[1].id, 360);
    mesh.run(Duration::from_secs(2));
    let s = mesh.video_slot(viewer);
    assert_eq!(s.source_switches, 1, "{s:#?}");
    assert_eq!(s.non_contiguous, 0, "{s:#?}");
    assert_eq!(s.switches_without_keyframe, 0);
    assert_eq!(s.height, Some(360));
}

#[test]
fn the_hundred_and_first_participant_is_refused() {
    let mut mesh = Mesh::new(Limits::default());
    for i in 0..100 {
        mesh.edges[0]
            .worker
            .join(
                mesh.now,
                common::admission("m", &format!("p{i}")),
                edge_core::Role::Meeting,
            )
            .unwrap();
    }
    let r = mesh.edges[0].worker.join(
        mesh.now,
        common::admission("m", "late"),
        edge_core::Role::Meeting,
    );
    let refusal = r.unwrap_err();
    assert_eq!(refusal.code, edge_core::signal::ErrorCode::MeetingFull);
    assert!(refusal.message.contains("100"));
    // Another meeting on the same worker is unaffected.
    assert!(
        mesh.edges[0]
            .worker
            .join(
                mesh.now,
                common::admission("other", "x"),
                edge_core::Role::Meeting
            )
            .is_ok()
    );
}

#[test]
fn keyframe_requests_from_many_subscribers_are_merged() {
    let mut mesh = Mesh::new(Limits::default());
    mesh.join("alice", ClientConfig::new(mesh.epoch));
    let subs: Vec<usize> = (0..8)
        .map(|i| mesh.join(&format!("s{i}"), ClientConfig::subscriber(mesh.epoch, 1, 0)))
        .collect();
    mesh.run(Duration::from_millis(1500));
    let track = mesh
        .tracks_seen(subs[0])
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .unwrap();
    for &s in &subs {
        mesh.subscribe(s, track.id, 720);
    }
    mesh.run(Duration::from_secs(3));
    let stats = mesh.edges[0].worker.stats();
    assert!(stats.keyframe_requests_merged > 0, "{stats:?}");
    // Eight subscribers joining at once cost the publisher a handful of keyframes, not eight
    // per layer.
    let plis: u64 = mesh.peers[0]
        .client
        .stats(mesh.now)
        .publisher
        .layers
        .iter()
        .map(|l| l.plis + l.firs)
        .sum();
    assert!(plis <= 6, "publisher saw {plis} keyframe requests");
    for &s in &subs {
        assert!(mesh.video_slot(s).frames > 30);
    }
}

#[test]
fn garbage_and_unknown_sources_are_dropped_and_counted() {
    let (mut mesh, _) = meeting();
    let before = mesh.edges[0].worker.stats().clone();
    let stranger = "10.9.9.9:1234".parse().unwrap();
    let dest = common::EDGE;
    // A DTLS ClientHello-looking datagram from an address no session validated.
    mesh.edges[0].worker.handle_receive(
        mesh.now,
        str0m::net::Protocol::Udp,
        stranger,
        dest,
        &[22, 254, 253, 0, 0],
    );
    // RTP-looking bytes from a stranger, an empty datagram, an oversize datagram.
    mesh.edges[0].worker.handle_receive(
        mesh.now,
        str0m::net::Protocol::Udp,
        stranger,
        dest,
        &[0x80; 40],
    );
    mesh.edges[0]
        .worker
        .handle_receive(mesh.now, str0m::net::Protocol::Udp, stranger, dest, &[]);
    mesh.edges[0].worker.handle_receive(
        mesh.now,
        str0m::net::Protocol::Udp,
        stranger,
        dest,
        &[0x80; 2000],
    );
    // Forged DTLS from a real participant's address is still checked by its session.
    let alice = mesh.peers[0].addr;
    mesh.edges[0].worker.handle_receive(
        mesh.now,
        str0m::net::Protocol::Udp,
        alice,
        dest,
        &[22, 254, 253, 0, 0, 0, 0],
    );
    let after = mesh.edges[0].worker.stats();
    assert_eq!(
        after.dropped_unknown_source - before.dropped_unknown_source,
        2
    );
    assert_eq!(after.dropped_oversize - before.dropped_oversize, 1);
    assert!(after.dropped_malformed > before.dropped_malformed);
    // The meeting carries on.
    mesh.run(Duration::from_secs(1));
    assert!(mesh.peers[0].client.is_connected());
}

#[test]
fn offer_round_trip_is_documented_protocol() {
    // The loadgen client's offer parses as the core's message (same JSON protocol).
    let mut mesh = Mesh::new(Limits::default());
    let p = mesh.join("alice", ClientConfig::new(mesh.epoch));
    let offer = mesh.peers[p].client.add_slots(mesh.now, 1, 0).unwrap();
    assert!(matches!(offer.to_msg_core(), ClientMsg::Offer { publish, .. } if publish.len() == 2));
}

#[test]
fn chat_is_size_limited_rate_limited_and_replayed_to_late_joiners() {
    let mut mesh = Mesh::new(Limits::default());
    let chat = |text: &str| ClientMsg::Chat { text: text.into() };
    // Eleven people send ten messages each: 110 messages, the history keeps the last 100.
    let talkers: Vec<usize> = (0..11)
        .map(|i| mesh.join(&format!("t{i}"), ClientConfig::subscriber(mesh.epoch, 0, 1)))
        .collect();
    for &t in &talkers {
        for k in 0..10 {
            mesh.send(t, chat(&format!("m{t}-{k}")));
        }
    }
    // The eleventh message within ten seconds is refused, as is an oversized one.
    mesh.send(0, chat("one too many"));
    mesh.send(1, chat(&"x".repeat(2001)));
    let code_of = |mesh: &Mesh, p: usize| {
        mesh.peers[p].inbox.iter().rev().find_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
    };
    assert_eq!(
        code_of(&mesh, 0),
        Some(edge_core::signal::ErrorCode::RateLimited)
    );
    assert_eq!(
        code_of(&mesh, 1),
        Some(edge_core::signal::ErrorCode::ChatTooLong)
    );
    // Everyone got every accepted message, their own included.
    let chats = |p: usize| {
        mesh.peers[p]
            .inbox
            .iter()
            .filter(|m| matches!(m, ServerMsg::Chat { .. }))
            .count()
    };
    assert_eq!(chats(talkers[0]), 110);
    // A late joiner finds the last 100, oldest first.
    let late = mesh.join("late", ClientConfig::subscriber(mesh.epoch, 0, 1));
    let ServerMsg::Joined(snap) = &mesh.peers[late].inbox[0] else {
        panic!("first message is joined: {:?}", mesh.peers[late].inbox[0]);
    };
    assert_eq!(snap.chat.len(), 100);
    assert_eq!(snap.chat[0].text, "m1-0");
    assert_eq!(snap.chat[99].text, "m10-9");
    assert!(snap.chat.windows(2).all(|w| w[0].id < w[1].id));
}
