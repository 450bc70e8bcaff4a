//! A worker with one joined participant whose session exists (an offer was accepted), so
//! fuzzed input reaches real session code.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use edge_core::{Admission, Limits, Output, Role, SessionConfig, Worker, WorkerConfig};
use relay_proto::{MeetingId, ParticipantId};

pub const EDGE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    7882,
);

/// A browser-like offer: one sendonly VP8 video with simulcast and one recvonly audio.
const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rid:q send\r\na=rid:f send\r\na=simulcast:send q;f\r\na=candidate:1 1 udp 2113937151 10.0.0.2 5000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

pub fn admission() -> Admission {
    Admission {
        meeting: MeetingId::new("fuzz").expect("valid"),
        identity: "f".into(),
        name: "f".into(),
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
        hidden: false,
    }
}

/// Generated once: certificate generation would otherwise dominate every run.
fn session_config() -> SessionConfig {
    static CFG: OnceLock<SessionConfig> = OnceLock::new();
    CFG.get_or_init(|| SessionConfig::new(EDGE, None).expect("certificate"))
        .clone()
}

pub fn worker(now: Instant) -> Worker {
    let cfg = WorkerConfig {
        session: session_config(),
        limits: Limits::default(),
        ice_servers: vec![],
        edge: "fuzz-edge".parse().expect("a valid edge id"),
        rng_seed: 1,
        wall_ms_at_start: 0,
    };
    Worker::new(cfg, now)
}

pub fn worker_with_participant(now: Instant) -> (Worker, ParticipantId) {
    let mut w = worker(now);
    let id = w.join(now, admission(), Role::Meeting).expect("joins");
    w.handle_client_message(
        now,
        id,
        edge_core::signal::ClientMsg::Offer {
            sdp: OFFER.into(),
            publish: vec![edge_core::signal::Publication {
                mid: "0".into(),
                source: edge_core::signal::Source::Camera,
                width: None,
                height: None,
            }],
        },
    );
    // The seed offer must be accepted, or fuzzed datagrams would never reach a session.
    let mut answered = false;
    loop {
        match w.poll_output() {
            Output::Signal(_, msg) => match &*msg {
                edge_core::signal::ServerMsg::Answer { .. } => answered = true,
                edge_core::signal::ServerMsg::Error { message, .. } => {
                    panic!("the fuzz harness's offer was refused: {message}")
                }
                _ => {}
            },
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert!(answered, "the fuzz harness's offer got no answer");
    (w, id)
}

pub fn drain(w: &mut Worker) {
    while !matches!(w.poll_output(), Output::Timeout(_)) {}
}
