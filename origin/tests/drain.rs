//! Draining an edge through the REST API (`GET /v1/edges/{id}`, `POST /v1/edges/{id}/drain`):
//! a real origin on 127.0.0.1 with a SQLite file, driven over HTTP. The edge's side of the
//! drain is played through the store, as the control plane records heartbeats
//! (`Store::heartbeat`); the control link itself is tested end to end in `ops/tests/drain.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use arbor_origin::Origin;
use arbor_origin::config::{Config, Secret};
use arbor_origin::store::{Beat, EdgeLoad, EdgeRecord, EdgeStatus, Heartbeat};
use relay_proto::token::{self, Claims, VideoGrant};
use relay_proto::{EdgeId, RegionId};
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

const KEY: &str = "APIadmin";
const SECRET: &str = "0123456789abcdef0123456789abcdef-admin";

async fn start(db: &Path) -> (Origin, String) {
    let mut cfg = Config::default();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.store.url = format!("sqlite://{}", db.display());
    cfg.auth.keys = BTreeMap::from([(KEY.to_owned(), Secret::new(SECRET))]);
    let origin = Origin::start(cfg).await.unwrap();
    let base = format!("http://{}", origin.http_addr);
    (origin, base)
}

fn db(test: &str) -> PathBuf {
    let db = std::env::temp_dir().join(format!("arbor-drain-{test}-{}.db", std::process::id()));
    remove(&db);
    db
}

fn remove(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

fn edge(id: &str, status: EdgeStatus) -> EdgeRecord {
    EdgeRecord {
        id: EdgeId::new(id).unwrap(),
        region: RegionId::new("eu").unwrap(),
        lat: 50.1,
        lon: 8.7,
        relay_addr: "127.0.0.1:7890".parse().unwrap(),
        http_url: format!("http://{id}.test:7880"),
        capacity: 100,
        status,
        last_heartbeat_ms: 1_000,
        load: EdgeLoad::default(),
    }
}

fn beat(id: &str, status: EdgeStatus, participants: u32) -> Heartbeat {
    Heartbeat {
        edge: EdgeId::new(id).unwrap(),
        at_ms: 2_000,
        status,
        load: EdgeLoad {
            participants,
            meetings: 1,
            cpu_permille: 10,
        },
    }
}

async fn call(base: &str, method: Method, path: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .basic_auth(KEY, Some(SECRET))
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Asserts a problem answer and returns its detail.
async fn problem(r: (StatusCode, Value), status: StatusCode, code: &str) -> String {
    let (got, body) = r;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:arbor:problem:{code}"));
    body["detail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn drain_requests_are_recorded_delivered_and_acknowledged() {
    let db = db("flow");
    let (origin, base) = start(&db).await;
    let store = origin.store.clone();
    store
        .upsert_edge(&edge("fra-1", EdgeStatus::Alive))
        .await
        .unwrap();

    let (status, view) = call(&base, Method::GET, "/v1/edges/fra-1").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["status"], "alive");
    assert_eq!(view["region"], "eu");
    assert_eq!(
        (&view["sessions"], &view["drain_pending"], &view["drained"]),
        (&0.into(), &false.into(), &false.into())
    );
    assert!(view.get("drain_requested_at_ms").is_none(), "{view}");

    // Recorded, not yet heard by the edge: pending, and an idle edge is not "drained" yet.
    let (status, view) = call(&base, Method::POST, "/v1/edges/fra-1/drain").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["status"], "alive");
    assert_eq!(view["drain_pending"], true);
    assert_eq!(view["drained"], false);
    let requested = view["drain_requested_at_ms"].as_i64().unwrap();
    assert!(requested > 1_700_000_000_000, "{view}");
    // Idempotent: the first request's time stays.
    let (status, again) = call(&base, Method::POST, "/v1/edges/fra-1/drain").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["drain_requested_at_ms"], requested);

    // The edge's heartbeats: until one says draining the drain waits to be delivered.
    let pending = Some(Beat {
        drain_pending: true,
    });
    assert_eq!(
        store
            .heartbeat(&beat("fra-1", EdgeStatus::Alive, 2))
            .await
            .unwrap(),
        pending
    );
    assert_eq!(
        store
            .heartbeat(&beat("fra-1", EdgeStatus::Alive, 2))
            .await
            .unwrap(),
        pending
    );
    let acked = Some(Beat {
        drain_pending: false,
    });
    let draining = beat("fra-1", EdgeStatus::Draining, 2);
    assert_eq!(store.heartbeat(&draining).await.unwrap(), acked);
    let (_, view) = call(&base, Method::GET, "/v1/edges/fra-1").await;
    assert_eq!(view["status"], "draining");
    assert_eq!(
        (&view["sessions"], &view["drain_pending"], &view["drained"]),
        (&2.into(), &false.into(), &false.into())
    );
    assert_eq!(view["load"]["participants"], 2);
    // Draining an edge that drains already changes nothing.
    let (status, view) = call(&base, Method::POST, "/v1/edges/fra-1/drain").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(view["drain_pending"], false, "{view}");
    // Empty: drained.
    store
        .heartbeat(&beat("fra-1", EdgeStatus::Draining, 0))
        .await
        .unwrap();
    let (_, view) = call(&base, Method::GET, "/v1/edges/fra-1").await;
    assert_eq!(
        (&view["sessions"], &view["drained"]),
        (&0.into(), &true.into())
    );
    // The list shows the same state.
    let (_, list) = call(&base, Method::GET, "/v1/edges").await;
    assert_eq!(list["edges"][0]["status"], "draining", "{list}");
    // A heartbeat for an edge that never registered is refused, as before.
    assert_eq!(
        store
            .heartbeat(&beat("ghost", EdgeStatus::Alive, 0))
            .await
            .unwrap(),
        None
    );
    origin.stop().await;
    remove(&db);
}

#[tokio::test]
async fn a_pending_drain_survives_an_origin_restart_and_an_edge_death() {
    let db = db("restart");
    let (origin, base) = start(&db).await;
    origin
        .store
        .upsert_edge(&edge("fra-1", EdgeStatus::Alive))
        .await
        .unwrap();
    let (status, _) = call(&base, Method::POST, "/v1/edges/fra-1/drain").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    origin.stop().await;

    let (origin, base) = start(&db).await;
    // The edge dies and registers again before it heard of the drain: still pending.
    let store = origin.store.clone();
    store
        .heartbeat(&beat("fra-1", EdgeStatus::Dead, 0))
        .await
        .unwrap();
    store
        .upsert_edge(&edge("fra-1", EdgeStatus::Alive))
        .await
        .unwrap();
    let (_, view) = call(&base, Method::GET, "/v1/edges/fra-1").await;
    assert_eq!(view["drain_pending"], true, "{view}");
    let beat = store
        .heartbeat(&beat("fra-1", EdgeStatus::Alive, 0))
        .await
        .unwrap();
    assert_eq!(
        beat,
        Some(Beat {
            drain_pending: true
        })
    );
    origin.stop().await;
    remove(&db);
}

#[tokio::test]
async fn drain_errors_are_problems() {
    let db = db("errors");
    let (origin, base) = start(&db).await;
    origin
        .store
        .upsert_edge(&edge("fra-1", EdgeStatus::Alive))
        .await
        .unwrap();
    origin
        .store
        .upsert_edge(&edge("sfo-1", EdgeStatus::Dead))
        .await
        .unwrap();

    let r = call(&base, Method::POST, "/v1/edges/mars-1/drain").await;
    let detail = problem(r, StatusCode::NOT_FOUND, "edge_not_found").await;
    assert!(detail.contains("mars-1"), "{detail}");
    let r = call(&base, Method::GET, "/v1/edges/mars-1").await;
    problem(r, StatusCode::NOT_FOUND, "edge_not_found").await;
    let r = call(&base, Method::POST, "/v1/edges/sfo-1/drain").await;
    let detail = problem(r, StatusCode::CONFLICT, "edge_dead").await;
    assert!(detail.contains("edge sfo-1 is dead"), "{detail}");
    let r = call(&base, Method::POST, "/v1/edges/no%20such/drain").await;
    let detail = problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(detail.contains("not an edge id"), "{detail}");
    let r = call(&base, Method::GET, "/v1/edges/fra-1/drain").await;
    problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // Credentials: none, and a token that may list but not administer.
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/edges/fra-1/drain");
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let lister = |video: VideoGrant| {
        let claims = Claims {
            sub: "ops".into(),
            exp,
            nbf: None,
            iat: None,
            name: None,
            metadata: None,
            jti: None,
            video,
        };
        token::mint(&claims, KEY, SECRET.as_bytes())
    };
    let list_only = lister(VideoGrant {
        room_list: Some(true),
        ..VideoGrant::default()
    });
    let r = client
        .post(&url)
        .bearer_auth(&list_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("video.roomAdmin"),
        "{body}"
    );
    let scoped_admin = lister(VideoGrant {
        room_admin: Some(true),
        room: Some("m".into()),
        ..VideoGrant::default()
    });
    let r = client
        .post(&url)
        .bearer_auth(&scoped_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a one-meeting admin drains nothing"
    );
    let r = client
        .get(format!("{base}/v1/edges/fra-1"))
        .bearer_auth(&list_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/json",
        "the view is JSON"
    );
    // None of that drained anything.
    let (_, view) = call(&base, Method::GET, "/v1/edges/fra-1").await;
    assert_eq!(view["drain_pending"], false, "{view}");
    origin.stop().await;
    remove(&db);
}
