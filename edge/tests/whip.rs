//! WHIP and WHEP against a real edge: the 201 and its headers, trickle and ICE-restart
//! PATCH with ETags, DELETE, HEAD discovery, and sessions forgotten when their participant
//! is replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use common::*;
use reqwest::StatusCode;
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

/// A real browser-like offer from str0m: audio and video in `dir`.
fn offer(dir: Direction) -> String {
    let mut rtc = Rtc::builder().build(std::time::Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, dir, None, None, None);
    change.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, _pending) = change.apply().unwrap();
    offer.to_sdp_string()
}

async fn post(edge: &arbor_edge::Edge, kind: &str, token: &str, sdp: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/{kind}/show", http_base(edge)))
        .header("content-type", "application/sdp")
        .bearer_auth(token)
        .body(sdp)
        .send()
        .await
        .unwrap()
}

async fn patch(
    edge: &arbor_edge::Edge,
    location: &str,
    token: &str,
    if_match: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .patch(format!("{}{location}", http_base(edge)))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .bearer_auth(token)
        .body(body.to_owned());
    if let Some(m) = if_match {
        req = req.header("if-match", m);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn whip_session_lifecycle() {
    let edge = start_edge(1).await;
    let t = token("show", "studio");
    let r = post(&edge, "whip", &t, offer(Direction::SendOnly)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/v1/whip/show/") && location.len() > 40,
        "{location}"
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    // The session shows in the edge's gauges.
    let metrics = reqwest::get(format!("http://{}/metrics", edge.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("arbor_whip_sessions") && l.ends_with(" 1")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("sessions"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let answer = r.text().await.unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    let udp = edge.media.udp_addrs()[0];
    assert!(
        answer.contains(&format!("{} {} typ host", udp.ip(), udp.port())),
        "{answer}"
    );

    // Trickle: needs the ETag.
    let cand = "a=candidate:2 1 udp 2113937151 127.0.0.1 40002 typ host\r\n";
    assert_eq!(
        patch(&edge, &location, &t, None, cand).await.status(),
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        patch(&edge, &location, &t, Some("\"stale\""), cand)
            .await
            .status(),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        patch(&edge, &location, &t, Some(&etag), cand)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // ICE restart: new credentials back, and a new ETag.
    let restart = "a=ice-ufrag:newufrag\r\na=ice-pwd:newpasswordnewpassword12\r\n";
    let r = patch(&edge, &location, &t, Some("*"), restart).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let frag = r.text().await.unwrap();
    assert!(
        frag.contains("a=ice-ufrag:") && frag.contains("a=ice-pwd:"),
        "{frag}"
    );
    assert_eq!(
        patch(&edge, &location, &t, Some(&etag), cand)
            .await
            .status(),
        StatusCode::PRECONDITION_FAILED
    );

    // DELETE ends it; a second DELETE finds nothing.
    let del = || {
        reqwest::Client::new()
            .delete(format!("{}{location}", http_base(&edge)))
            .bearer_auth(&t)
            .send()
    };
    assert_eq!(del().await.unwrap().status(), StatusCode::OK);
    assert_eq!(del().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn whep_viewers_and_discovery() {
    let edge = start_edge(1).await;
    let r = reqwest::Client::new()
        .head(format!("{}/v1/whep/show", http_base(&edge)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let r = post(
        &edge,
        "whep",
        &subscriber_token("show", "viewer"),
        offer(Direction::RecvOnly),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let answer = r.text().await.unwrap();
    assert!(answer.contains("a=sendonly"), "{answer}");
    // A WHIP offer that only receives has nothing to ingest.
    let r = post(
        &edge,
        "whip",
        &token("show", "x"),
        offer(Direction::RecvOnly),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_replaced_publisher_session_is_forgotten() {
    let edge = start_edge(1).await;
    let t = token("show", "studio");
    let first = post(&edge, "whip", &t, offer(Direction::SendOnly)).await;
    let first = first.headers()["location"].to_str().unwrap().to_owned();
    // The same identity publishes again (an encoder restart): it replaces the first.
    let second = post(&edge, "whip", &t, offer(Direction::SendOnly)).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let mut gone = false;
    for _ in 0..50 {
        if edge.media.resources.lock().unwrap().len() == 1 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the replaced session was not forgotten");
    let r = reqwest::Client::new()
        .delete(format!("{}{first}", http_base(&edge)))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
