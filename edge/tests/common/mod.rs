//! Starting a real edge on loopback for integration tests, and minting tokens for it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use arbor_edge::Edge;
use arbor_edge::config::{Config, DEV_API_KEY, DEV_API_SECRET};
use relay_proto::MeetingId;
use relay_proto::token::{self, Claims};

/// An edge on 127.0.0.1 with ephemeral ports (HTTP, one UDP port per worker, no ICE-TCP).
pub async fn start_edge(workers: usize) -> Edge {
    let mut cfg = Config::dev_default();
    cfg.http.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    cfg.http.max_body_bytes = 64 * 1024;
    cfg.media.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    cfg.media.public_ip = None;
    cfg.media.udp_port = 0;
    cfg.media.tcp_port = 0;
    cfg.media.workers = workers;
    Edge::start(cfg).await.expect("edge starts")
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A valid token for `identity` in `meeting`, signed with the dev key.
pub fn token(meeting: &str, identity: &str) -> String {
    let claims = Claims::join(
        &MeetingId::new(meeting).unwrap(),
        identity,
        unix_now() + 3600,
    );
    token::mint(&claims, DEV_API_KEY, DEV_API_SECRET.as_bytes())
}

pub fn subscriber_token(meeting: &str, identity: &str) -> String {
    let claims = Claims::join(
        &MeetingId::new(meeting).unwrap(),
        identity,
        unix_now() + 3600,
    )
    .subscriber_only();
    token::mint(&claims, DEV_API_KEY, DEV_API_SECRET.as_bytes())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with an arbitrary header and payload, HS256-signed with `secret`.
pub fn raw_token(header: &str, payload: &str, secret: &[u8]) -> String {
    let signing = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let sig = aws_lc_rs::hmac::sign(&key, signing.as_bytes());
    format!("{signing}.{}", b64(sig.as_ref()))
}

pub fn http_base(edge: &Edge) -> String {
    format!("http://{}", edge.http_addr)
}

pub fn ws_url(edge: &Edge) -> String {
    format!("ws://{}/v1/rtc", edge.http_addr)
}
