//! Bad input gets a clear error and never takes the edge down: tokens, SDP, bodies,
//! resources, signaling frames and garbage datagrams, against a real edge on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use relay_proto::token::{self, Claims};
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

async fn whip(
    edge: &arbor_edge::Edge,
    meeting: &str,
    token: &str,
    body: &str,
) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/whip/{meeting}", http_base(edge)))
        .header("content-type", "application/sdp")
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_reason() {
    let edge = start_edge(1).await;
    let secret = arbor_edge::config::DEV_API_SECRET.as_bytes();
    let key = arbor_edge::config::DEV_API_KEY;
    let now = unix_now();
    let meeting = relay_proto::MeetingId::new("m").unwrap();
    let expired = token::mint(&Claims::join(&meeting, "a", now - 3600), key, secret);
    let bad_sig = token::mint(
        &Claims::join(&meeting, "a", now + 3600),
        key,
        b"another-secret-another-secret-32",
    );
    let alg_none = format!(
        "{}.",
        raw_token(
            r#"{"alg":"none","typ":"JWT"}"#,
            &format!(
                r#"{{"iss":"{key}","sub":"a","exp":{},"video":{{"room":"m","roomJoin":true}}}}"#,
                now + 60
            ),
            secret
        )
        .rsplit_once('.')
        .unwrap()
        .0
    );
    let string_exp = raw_token(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"{key}","sub":"a","exp":"never","video":{{"room":"m","roomJoin":true}}}}"#
        ),
        secret,
    );
    let other_meeting = token("other", "a");
    let cases = [
        (expired, "token_expired"),
        (bad_sig, "token_invalid_signature"),
        (alg_none, "token_alg_not_allowed"),
        (string_exp, "token_malformed_claim"),
        (other_meeting, "token_wrong_meeting"),
        ("not-a-token".to_owned(), "token_malformed"),
    ];
    for (t, code) in cases {
        let (status, body) = whip(&edge, "m", &t, OFFER).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}: {body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // No token at all.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/whip/m", http_base(&edge)))
        .header("content-type", "application/sdp")
        .body(OFFER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_bodies_get_4xx_with_a_reason() {
    let edge = start_edge(1).await;
    let t = token("m", "a");
    // Malformed SDP.
    let (status, body) = whip(&edge, "m", &t, "v=0\r\nthis is not sdp\r\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_request");
    assert!(body["message"].as_str().unwrap().contains("sdp"), "{body}");
    let (status, _) = whip(&edge, "m", &t, "hello").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Oversized body.
    let big = format!("v=0\r\n{}", "a=x\r\n".repeat(30_000));
    let (status, _) = whip(&edge, "m", &t, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Wrong content type.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/whip/m", http_base(&edge)))
        .header("content-type", "text/plain")
        .bearer_auth(&t)
        .body(OFFER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A subscribe-only token cannot publish.
    let (status, body) = whip(&edge, "m", &subscriber_token("m", "v"), OFFER).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn unknown_whip_resources_are_404() {
    let edge = start_edge(1).await;
    let t = token("m", "a");
    let url = format!(
        "{}/v1/whip/m/00000000000000000000000000000000",
        http_base(&edge)
    );
    let r = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reqwest::Client::new()
        .patch(&url)
        .bearer_auth(&t)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_preflight_exposes_whip_headers() {
    let edge = start_edge(1).await;
    let r = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/whip/m", http_base(&edge)),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = reqwest::Client::new()
        .post(format!("{}/v1/whip/m", http_base(&edge)))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["location", "link", "etag"] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

async fn ws_first_reply(edge: &arbor_edge::Edge, frames: &[&str]) -> Vec<Value> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(edge))
        .await
        .unwrap();
    for f in frames {
        ws.send(Message::Text((*f).into())).await.unwrap();
    }
    let mut out = vec![];
    while out.len() < frames.len() {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => out.push(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn signaling_rejects_bad_frames_clearly() {
    let edge = start_edge(1).await;
    let replies = ws_first_reply(
        &edge,
        &[
            r#"{"type":"chat","text":"hi"}"#,
            r#"{"type":"dance"}"#,
            "garbage",
            r#"{"type":"ping","ts":5}"#,
        ],
    )
    .await;
    assert_eq!(replies[0]["code"], "not_joined");
    assert_eq!(replies[1]["code"], "unknown_message_type");
    assert_eq!(replies[2]["code"], "bad_message");
    assert_eq!(replies[3]["type"], "pong");
    let expired = token::mint(
        &Claims::join(
            &relay_proto::MeetingId::new("m").unwrap(),
            "a",
            unix_now() - 3600,
        ),
        arbor_edge::config::DEV_API_KEY,
        arbor_edge::config::DEV_API_SECRET.as_bytes(),
    );
    let join = format!(r#"{{"type":"join","token":"{expired}"}}"#);
    let replies = ws_first_reply(&edge, &[&join]).await;
    assert_eq!(replies[0]["code"], "token_expired");
    assert_eq!(replies[0]["fatal"], true);
}

#[tokio::test]
async fn garbage_datagrams_are_counted_not_fatal() {
    let edge = start_edge(1).await;
    let udp = edge.media.udp_addrs()[0];
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seed = 1u64;
    for i in 0..500usize {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 33) as usize % 1400;
        let bytes: Vec<u8> = (0..len)
            .map(|j| (seed >> (j % 56)) as u8 ^ i as u8)
            .collect();
        sock.send_to(&bytes, udp).await.unwrap();
    }
    sock.send_to(&[0u8; 3000], udp).await.unwrap();
    // The edge keeps serving; the drops show up in /metrics.
    let mut dropped = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let text = reqwest::get(format!("{}/metrics", http_base(&edge)))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        dropped = text
            .lines()
            .filter(|l| l.starts_with("arbor_udp_datagrams_dropped_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if dropped >= 400.0 {
            break;
        }
    }
    assert!(dropped >= 400.0, "dropped {dropped}");
    let r = reqwest::get(format!("{}/readyz", http_base(&edge)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
