//! Links between real quinn endpoints on 127.0.0.1: handshake, control both ways, datagrams,
//! RTT, identity checks, dead peers and garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use relay_proto::{
    CloseCode, Control, FlowId, LayerSet, Load, MediaHeader, MeetingId, encode_datagram,
};
use relay_quic::{Ca, DatagramSendError, Down, LinkConfig, LinkEvent};

const DATAGRAMS: usize = 1_000;
const DATAGRAM_LEN: usize = 1_200;

fn media_datagram(seq: u16) -> Bytes {
    let meeting = MeetingId::new("m1").unwrap();
    let header = MediaHeader {
        marker: false,
        payload_type: 96,
        seq,
        timestamp: u32::from(seq) * 3_000,
        audio_level: None,
    };
    let mut out = Vec::new();
    let mut payload = vec![0xAB; DATAGRAM_LEN];
    encode_datagram(FlowId::new(&meeting, 1), 0, &header, &[], &mut out).unwrap();
    payload.truncate(DATAGRAM_LEN - out.len());
    out.clear();
    encode_datagram(FlowId::new(&meeting, 1), 0, &header, &payload, &mut out).unwrap();
    assert_eq!(out.len(), DATAGRAM_LEN);
    Bytes::from(out)
}

#[tokio::test]
async fn link_carries_hello_control_datagrams_and_rtt() {
    let ca = Ca::generate("test CA").unwrap();
    let (a, b) = (edge("a"), edge("b"));
    let (ep_a, ep_b) = (bind(&ca, &a), bind(&ca, &b));
    let Pair {
        dialer,
        mut dialer_events,
        acceptor,
        mut acceptor_events,
    } = pair_with(&ep_a, &ep_b, hello(&a), hello(&b)).await;

    assert_eq!(expect_up(&mut dialer_events).await, hello(&b));
    assert_eq!(expect_up(&mut acceptor_events).await, hello(&a));
    assert_eq!(dialer.peer(), &b);
    assert_eq!(acceptor.peer(), &a);
    // initial_mtu 1452: the full datagram size from the start, no MTU discovery needed.
    assert!(dialer.max_datagram_size().unwrap() >= 1_400);

    // Control both ways.
    let load = Control::Heartbeat(Load {
        participants: 7,
        meetings: 2,
        cpu_permille: 150,
        draining: false,
    });
    let meeting = MeetingId::new("m1").unwrap();
    let subscribe = Control::Subscribe {
        meeting: meeting.clone(),
        flow: FlowId::new(&meeting, 1),
        layers: LayerSet::default(),
    };
    dialer.send(load.clone()).await.unwrap();
    acceptor.send(subscribe.clone()).await.unwrap();
    assert_eq!(
        next_event(&mut acceptor_events).await,
        LinkEvent::Message(load)
    );
    assert_eq!(
        next_event(&mut dialer_events).await,
        LinkEvent::Message(subscribe)
    );

    // Datagrams, read concurrently with sending, as an owner would.
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        let quiet = Duration::from_millis(500);
        while let Ok(Some(event)) = tokio::time::timeout(quiet, acceptor_events.recv()).await {
            match event {
                LinkEvent::Datagram(d) => {
                    assert_eq!(d.len(), DATAGRAM_LEN);
                    got += 1;
                    if got == DATAGRAMS {
                        break;
                    }
                }
                LinkEvent::Rtt(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (got, acceptor_events)
    });
    for seq in 0..DATAGRAMS {
        dialer.send_datagram(media_datagram(seq as u16)).unwrap();
        if seq % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let (got, mut acceptor_events) = receiver.await.unwrap();
    assert!(
        got * 100 >= DATAGRAMS * 99,
        "{got} of {DATAGRAMS} datagrams"
    );
    assert_eq!(dialer.counters().datagrams_out, DATAGRAMS as u64);
    assert_eq!(acceptor.counters().datagrams_in, got as u64);

    // The session pings as soon as it is up: an RTT sample arrives on the dialer too.
    let rtt = tokio::time::timeout(WAIT, async {
        loop {
            match dialer_events.recv().await {
                Some(LinkEvent::Rtt(rtt)) => return rtt,
                Some(_) => {}
                None => panic!("link ended without an RTT sample"),
            }
        }
    })
    .await
    .expect("an RTT sample");
    assert!(rtt < Duration::from_secs(1), "loopback RTT {rtt:?}");

    // A datagram over the path limit is refused and counted, never sent in pieces.
    let huge = Bytes::from(vec![0u8; 1_500]);
    assert!(matches!(
        dialer.send_datagram(huge),
        Err(DatagramSendError::TooLarge { len: 1_500, .. })
    ));
    assert_eq!(dialer.counters().dropped_too_large, 1);

    // An orderly close reaches both owners with its code.
    dialer.close(CloseCode::Shutdown, "bye");
    let down = wait_down(&mut dialer_events).await;
    assert_eq!(down.code(), Some(CloseCode::Shutdown), "{down:?}");
    let down = wait_down(&mut acceptor_events).await;
    assert_eq!(
        down,
        Down::Closed {
            code: CloseCode::Shutdown,
            reason: "bye".into()
        }
    );
}

#[tokio::test]
async fn hello_role_must_match_the_certificate() {
    let ca = Ca::generate("test CA").unwrap();
    let (b, c, origin) = (edge("b"), edge("c"), relay_proto::Role::Origin);
    // The dialer holds a certificate for edge b but says it is edge c.
    let (ep_b, ep_origin) = (bind(&ca, &b), bind(&ca, &origin));
    let mut p = pair_with(&ep_b, &ep_origin, hello(&c), hello(&origin)).await;

    let down = wait_down(&mut p.acceptor_events).await;
    assert_eq!(down.code(), Some(CloseCode::Unauthorized), "{down:?}");
    // The liar is told why (its own Up may come first: the origin's Hello was honest).
    let down = wait_down(&mut p.dialer_events).await;
    assert_eq!(down.code(), Some(CloseCode::Unauthorized), "{down:?}");
    assert!(!p.acceptor.is_up());
}

#[tokio::test]
async fn control_waits_for_up_and_datagrams_are_refused_before() {
    let ca = Ca::generate("test CA").unwrap();
    let (a, b) = (edge("a"), edge("b"));
    let (ep_a, ep_b) = (bind(&ca, &a), bind(&ca, &b));
    let addr = ep_b.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(ep_a.connect(addr, &b), accept_one(&ep_b));
    let (handle, mut events) = relay_quic::spawn(dialed.unwrap(), LinkConfig::new(hello(&a)));
    // Nobody runs a link on the accepting side yet: no Hello, so nothing may leave.
    assert_eq!(
        handle.send_datagram(media_datagram(0)),
        Err(DatagramSendError::NotUp)
    );
    let early = Control::Presence {
        meeting: MeetingId::new("m1").unwrap(),
        participants: 1,
        publishers: 1,
    };
    handle.send(early.clone()).await.unwrap();
    let (_acceptor, mut acceptor_events) =
        relay_quic::spawn(accepted.unwrap(), LinkConfig::new(hello(&b)));
    expect_up(&mut events).await;
    assert_eq!(expect_up(&mut acceptor_events).await, hello(&a));
    assert_eq!(
        next_event(&mut acceptor_events).await,
        LinkEvent::Message(early)
    );
}

#[tokio::test]
async fn a_silent_peer_is_down_within_the_idle_timeout() {
    let ca = Ca::generate("test CA").unwrap();
    let (a, b) = (edge("a"), edge("b"));
    let (ep_a, ep_b) = (bind(&ca, &a), bind(&ca, &b));
    let relay = Relay::start(ep_b.local_addr().unwrap()).await;
    let (dialed, accepted) = tokio::join!(ep_a.connect(relay.addr, &b), accept_one(&ep_b));
    let (_dialer, mut dialer_events) =
        relay_quic::spawn(dialed.unwrap(), LinkConfig::new(hello(&a)));
    let (_acceptor, mut acceptor_events) =
        relay_quic::spawn(accepted.unwrap(), LinkConfig::new(hello(&b)));
    expect_up(&mut dialer_events).await;
    expect_up(&mut acceptor_events).await;

    // Like a killed process: no close, no packets, on either side.
    relay.cut();
    let cut_at = Instant::now();
    for events in [&mut dialer_events, &mut acceptor_events] {
        let down = wait_down(events).await;
        let after = cut_at.elapsed();
        assert!(
            matches!(
                down,
                Down::Closed {
                    code: CloseCode::IdleTimeout,
                    ..
                } | Down::Lost(quinn::ConnectionError::TimedOut)
            ),
            "{down:?}"
        );
        // Idle timeout 3 s after the last packet, which came at most a keep-alive (1 s)
        // before the cut; generous bounds against a loaded machine.
        assert!(
            after >= Duration::from_millis(1_500),
            "down after {after:?}"
        );
        assert!(after <= Duration::from_secs(6), "down after {after:?}");
    }
}

#[tokio::test]
async fn a_garbage_frame_closes_both_sides_malformed() {
    let ca = Ca::generate("test CA").unwrap();
    let (a, b) = (edge("a"), edge("b"));
    let (ep_a, ep_b) = (bind(&ca, &a), bind(&ca, &b));
    let addr = ep_b.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(ep_a.connect(addr, &b), accept_one(&ep_b));
    let (_acceptor, mut acceptor_events) =
        relay_quic::spawn(accepted.unwrap(), LinkConfig::new(hello(&b)));

    // A raw peer with a valid certificate writes a Hello frame whose body is cut short.
    let raw = dialed.unwrap().conn;
    let (mut send, _recv) = raw.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 2, 0x00, 0x00]).await.unwrap();

    let down = wait_down(&mut acceptor_events).await;
    assert_eq!(down.code(), Some(CloseCode::Malformed), "{down:?}");
    let closed = tokio::time::timeout(WAIT, raw.closed()).await.unwrap();
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code.into_inner(),
                u64::from(CloseCode::Malformed.code())
            );
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}
