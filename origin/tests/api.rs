//! The REST API end to end: a real origin on 127.0.0.1 with a SQLite file, driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use arbor_origin::Origin;
use arbor_origin::config::{Config, Secret};
use arbor_origin::store::{EdgeLoad, EdgeRecord, EdgeStatus, Presence, TreeRecord};
use relay_proto::token::{self, Claims, VideoGrant};
use relay_proto::{EdgeId, MeetingId, RegionId, TreeEpoch};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const KEY: &str = "APIadmin";
const SECRET: &str = "0123456789abcdef0123456789abcdef-admin";
const OTHER_KEY: &str = "APIother";
const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210-other";

struct Api {
    origin: Option<Origin>,
    base: String,
    client: reqwest::Client,
    db: std::path::PathBuf,
}

impl Api {
    async fn start(test: &str) -> Api {
        let db = std::env::temp_dir().join(format!("arbor-api-{test}-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let mut cfg = Config::default();
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        cfg.http.max_body_bytes = 2048;
        cfg.store.url = format!("sqlite://{}", db.display());
        cfg.auth.keys = BTreeMap::from([
            (KEY.to_owned(), Secret::new(SECRET)),
            (OTHER_KEY.to_owned(), Secret::new(OTHER_SECRET)),
        ]);
        cfg.placement.regions = vec![region("eu"), region("us")];
        cfg.placement.default_region = region("eu");
        let origin = Origin::start(cfg).await.unwrap();
        Api {
            base: format!("http://{}", origin.http_addr),
            origin: Some(origin),
            client: reqwest::Client::new(),
            db,
        }
    }

    fn origin(&self) -> &Origin {
        self.origin.as_ref().unwrap()
    }

    /// A request with Basic credentials (every grant).
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(KEY, Some(SECRET))
    }

    fn bare(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn create(&self, name: &str) -> Value {
        let r = self
            .req(Method::POST, "/v1/meetings")
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    async fn stop(mut self) {
        self.origin.take().unwrap().stop().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}

fn region(s: &str) -> RegionId {
    RegionId::new(s).unwrap()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An admin token with the given `video` grant, signed as `KEY`.
fn admin_token(video: VideoGrant, exp_s: u64) -> String {
    let claims = Claims {
        sub: "ops".into(),
        exp: exp_s,
        nbf: None,
        iat: None,
        name: None,
        metadata: None,
        jti: None,
        video,
    };
    token::mint(&claims, KEY, SECRET.as_bytes())
}

fn every_grant() -> VideoGrant {
    VideoGrant {
        room_list: Some(true),
        room_create: Some(true),
        room_admin: Some(true),
        ..VideoGrant::default()
    }
}

/// Asserts a problem answer: status, content type, RFC 9457 members and the code; returns
/// the detail.
async fn problem(r: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(r.status(), status, "expected {code}");
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/problem+json",
        "{code}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:arbor:problem:{code}"));
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    let detail = body["detail"].as_str().unwrap().to_owned();
    assert!(!detail.is_empty());
    detail
}

fn edge(id: &str, region_id: &str, status: EdgeStatus) -> EdgeRecord {
    EdgeRecord {
        id: EdgeId::new(id).unwrap(),
        region: region(region_id),
        lat: 50.1,
        lon: 8.7,
        relay_addr: "127.0.0.1:7890".parse().unwrap(),
        http_url: format!("http://{id}.test:7880"),
        capacity: 100,
        status,
        last_heartbeat_ms: 0,
        load: EdgeLoad::default(),
    }
}

#[tokio::test]
async fn meeting_lifecycle() {
    let api = Api::start("lifecycle").await;
    let body = json!({ "name": "standup-42", "max_participants": 12, "metadata": "{\"a\":1}" });
    let r = api
        .req(Method::POST, "/v1/meetings")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()[header::LOCATION], "/v1/meetings/standup-42");
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["name"], "standup-42");
    assert_eq!(created["state"], "active");
    assert_eq!(created["max_participants"], 12);
    assert_eq!(created["metadata"], "{\"a\":1}");
    assert!(created["ended_at_ms"].is_null());

    // Idempotent: the same name answers 200 with the meeting unchanged.
    let r = api
        .req(Method::POST, "/v1/meetings")
        .json(&json!({ "name": "standup-42", "max_participants": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), created);

    let got: Value = api
        .req(Method::GET, "/v1/meetings/standup-42")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);

    // Pages.
    for name in ["a-1", "a-2", "a-3"] {
        api.create(name).await;
    }
    let page: Value = api
        .req(Method::GET, "/v1/meetings?limit=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meetings"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_cursor"], "a-2");
    let page: Value = api
        .req(Method::GET, "/v1/meetings?limit=2&cursor=a-2&state=active")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = page["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-3", "standup-42"]);
    assert!(page["next_cursor"].is_null());

    // End it: 200 with the ended meeting, then 409, and it lists as ended.
    let r = api
        .req(Method::DELETE, "/v1/meetings/standup-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ended: Value = r.json().await.unwrap();
    assert_eq!(ended["state"], "ended");
    assert!(ended["ended_at_ms"].as_i64().unwrap() >= created["created_at_ms"].as_i64().unwrap());
    let r = api
        .req(Method::DELETE, "/v1/meetings/standup-42")
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::CONFLICT, "meeting_ended").await;
    assert!(detail.contains("standup-42"), "{detail}");
    let page: Value = api
        .req(Method::GET, "/v1/meetings?state=ended")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["meetings"][0]["name"], "standup-42");
    // Created again, it starts anew.
    api.create("standup-42").await;
    api.stop().await;
}

#[tokio::test]
async fn participants_tree_and_edges_come_from_the_store() {
    let api = Api::start("views").await;
    api.create("m").await;
    let store = &api.origin().store;
    let m = MeetingId::new("m").unwrap();

    let tree: Value = api
        .req(Method::GET, "/v1/meetings/m/tree")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tree,
        json!({"meeting": "m", "epoch": null, "links": [], "updated_at_ms": null})
    );

    for (edge_id, participants, publishers) in [("fra-1", 10, 2), ("sfo-1", 5, 0)] {
        let p = Presence {
            meeting: m.clone(),
            edge: EdgeId::new(edge_id).unwrap(),
            participants,
            publishers,
            updated_at_ms: 7,
        };
        store.set_presence(&p).await.unwrap();
    }
    let links = vec![(EdgeId::new("fra-1").unwrap(), EdgeId::new("sfo-1").unwrap())];
    let t = TreeRecord {
        meeting: m.clone(),
        epoch: TreeEpoch(3),
        links,
        updated_at_ms: 9,
    };
    store.put_tree(&t).await.unwrap();
    store
        .upsert_edge(&edge("fra-1", "eu", EdgeStatus::Alive))
        .await
        .unwrap();
    store
        .upsert_edge(&edge("sfo-1", "us", EdgeStatus::Dead))
        .await
        .unwrap();

    let p: Value = api
        .req(Method::GET, "/v1/meetings/m/participants")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["participants"], 15);
    assert_eq!(p["publishers"], 2);
    assert_eq!(p["edges"][0]["edge"], "fra-1");
    assert_eq!(p["edges"][1]["participants"], 5);
    let tree: Value = api
        .req(Method::GET, "/v1/meetings/m/tree")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tree,
        json!({"meeting": "m", "epoch": 3, "links": [["fra-1", "sfo-1"]], "updated_at_ms": 9})
    );

    let edges: Value = api
        .req(Method::GET, "/v1/edges")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(edges["edges"].as_array().unwrap().len(), 2);
    assert_eq!(edges["edges"][0]["relay_addr"], "127.0.0.1:7890");
    assert_eq!(edges["edges"][1]["status"], "dead");
    let us: Value = api
        .req(Method::GET, "/v1/edges?region=us")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(us["edges"][0]["id"], "sfo-1");
    assert_eq!(us["edges"].as_array().unwrap().len(), 1);

    // A meeting the API never created but edges report is visible by its presence.
    let p = Presence {
        meeting: MeetingId::new("sdk-made").unwrap(),
        edge: EdgeId::new("fra-1").unwrap(),
        participants: 1,
        publishers: 1,
        updated_at_ms: 1,
    };
    store.set_presence(&p).await.unwrap();
    let r = api
        .req(Method::GET, "/v1/meetings/sdk-made/participants")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.stop().await;
}

#[tokio::test]
async fn minted_tokens_verify_on_edges() {
    let api = Api::start("tokens").await;
    api.create("town-hall").await;
    let keys = BTreeMap::from([
        (KEY.to_owned(), SECRET.to_owned()),
        (OTHER_KEY.to_owned(), OTHER_SECRET.to_owned()),
    ]);
    let body = json!({ "meeting": "town-hall", "identity": "alice", "name": "Alice",
                       "metadata": "{\"seat\":4}", "ttl_s": 600 });
    let r = api
        .req(Method::POST, "/v1/tokens")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert!(t.get("edge_url").is_none(), "no region, no placement: {t}");
    let g = token::verify(t["token"].as_str().unwrap(), &keys, now_s()).unwrap();
    assert_eq!(g.api_key, KEY, "signed with the caller's key");
    assert_eq!(g.meeting.as_str(), "town-hall");
    assert_eq!(g.identity, "alice");
    assert_eq!(g.name.as_deref(), Some("Alice"));
    assert_eq!(g.metadata.as_deref(), Some("{\"seat\":4}"));
    assert!(g.can_publish && g.can_subscribe);
    assert_eq!(t["expires_at_s"].as_u64().unwrap(), g.expires_at_s);
    let ttl = g.expires_at_s - g.not_before_s.unwrap();
    assert_eq!(ttl, 600);

    // A subscriber, minted by a caller authenticated with the other key, as a Bearer token.
    let bearer = token::mint(
        &Claims {
            sub: "backend".into(),
            exp: now_s() + 60,
            nbf: None,
            iat: None,
            name: None,
            metadata: None,
            jti: None,
            video: VideoGrant {
                room_admin: Some(true),
                room: Some("town-hall".into()),
                ..VideoGrant::default()
            },
        },
        OTHER_KEY,
        OTHER_SECRET.as_bytes(),
    );
    let r = api
        .bare(Method::POST, "/v1/tokens")
        .bearer_auth(&bearer)
        .json(&json!({ "meeting": "town-hall", "identity": "viewer-7", "role": "subscriber" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["role"], "subscriber");
    let g = token::verify(t["token"].as_str().unwrap(), &keys, now_s()).unwrap();
    assert_eq!(g.api_key, OTHER_KEY);
    assert!(!g.can_publish && g.can_subscribe);
    // The default lifetime is six hours.
    assert_eq!(g.expires_at_s - g.not_before_s.unwrap(), 6 * 3600);

    // Tokens for an ended meeting are refused.
    api.req(Method::DELETE, "/v1/meetings/town-hall")
        .send()
        .await
        .unwrap();
    let r = api
        .req(Method::POST, "/v1/tokens")
        .json(&json!({ "meeting": "town-hall", "identity": "late" }))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT, "meeting_ended").await;
    api.stop().await;
}

#[tokio::test]
async fn join_places_on_a_healthy_edge_of_the_region() {
    let api = Api::start("join").await;
    api.create("m").await;
    let store = &api.origin().store;
    // Edges register with the coordinator as their control links would.
    let placer = &api.origin().placer;
    register(placer, "fra-1", "eu", false);
    register(placer, "sfo-1", "us", true);
    let join = |identity: &'static str, region: Option<&'static str>| {
        let mut body = json!({ "meeting": "m", "identity": identity });
        if let Some(r) = region {
            body["region"] = json!(r);
        }
        api.req(Method::POST, "/v1/join").json(&body).send()
    };
    let r = join("alice", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["region"], "eu", "the default region");
    assert_eq!(j["edge"], "fra-1");
    assert_eq!(j["edge_url"], "http://fra-1.test:7880");
    assert_eq!(j["ws_url"], "ws://fra-1.test:7880/v1/rtc");
    let keys = (KEY, SECRET);
    let g = token::verify(j["token"].as_str().unwrap(), &keys, now_s()).unwrap();
    assert_eq!((g.identity.as_str(), g.meeting.as_str()), ("alice", "m"));
    let placements = store
        .placements(&MeetingId::new("m").unwrap())
        .await
        .unwrap();
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0].edge.as_str(), "fra-1");

    // Everyone in the region meets on the same edge.
    let j: Value = join("bob", Some("eu")).await.unwrap().json().await.unwrap();
    assert_eq!(j["edge"], "fra-1");

    // /v1/tokens with a region places too.
    let r = api
        .req(Method::POST, "/v1/tokens")
        .json(&json!({ "meeting": "m", "identity": "carol", "region": "eu" }))
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["edge"], "fra-1");

    // No healthy edge in us (sfo-1 drains): 503 with Retry-After, never a made-up edge.
    let r = join("dave", Some("us")).await.unwrap();
    assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    let detail = problem(r, StatusCode::SERVICE_UNAVAILABLE, "no_healthy_edge").await;
    assert!(detail.contains("us"), "{detail}");
    let r = join("erin", Some("mars")).await.unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(detail.contains("known regions: eu, us"), "{detail}");

    // fra-1's control link closes and fra-2 comes up: the next join moves the meeting.
    placer
        .lock()
        .handle_disconnect(std::time::Instant::now(), &EdgeId::new("fra-1").unwrap());
    register(placer, "fra-2", "eu", false);
    let j: Value = join("frank", None).await.unwrap().json().await.unwrap();
    assert_eq!(j["edge"], "fra-2", "moved off the dead edge");
    let placements = store
        .placements(&MeetingId::new("m").unwrap())
        .await
        .unwrap();
    assert_eq!(placements[0].edge.as_str(), "fra-2", "and recorded");

    // Ending the meeting forgets its placements.
    api.req(Method::DELETE, "/v1/meetings/m")
        .send()
        .await
        .unwrap();
    assert!(
        store
            .placements(&MeetingId::new("m").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    api.stop().await;
}

/// Registers an edge with the origin's coordinator (what its control link does), with one
/// heartbeat (draining or not).
fn register(placer: &arbor_origin::placer::Placer, id: &str, region_id: &str, draining: bool) {
    let e = edge(id, region_id, EdgeStatus::Alive);
    let id = EdgeId::new(id).unwrap();
    let now = std::time::Instant::now();
    let mut c = placer.lock();
    c.handle_connected(now, &id);
    let info = relay_proto::EdgeInfo {
        id: id.clone(),
        region: e.region,
        lat_e6: (e.lat * 1e6) as i32,
        lon_e6: (e.lon * 1e6) as i32,
        relay_addr: e.relay_addr,
        http_url: e.http_url,
        capacity: e.capacity,
    };
    c.handle_message(now, &id, relay_proto::Control::Register(info));
    let load = relay_proto::Load {
        participants: 0,
        meetings: 0,
        cpu_permille: 0,
        draining,
    };
    c.handle_message(now, &id, relay_proto::Control::Heartbeat(load));
}

#[tokio::test]
async fn credentials_are_checked() {
    let api = Api::start("auth").await;
    api.create("a").await;
    let get = |auth: Option<String>| {
        let mut r = api.bare(Method::GET, "/v1/meetings");
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.send()
    };
    let r = get(None).await.unwrap();
    assert!(
        r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("Bearer")
    );
    problem(r, StatusCode::UNAUTHORIZED, "credentials_missing").await;
    let r = get(Some("Token abc".into())).await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "credentials_malformed").await;

    let exp = now_s() + 60;
    let ok = admin_token(every_grant(), exp);
    assert_eq!(
        get(Some(format!("Bearer {ok}"))).await.unwrap().status(),
        StatusCode::OK
    );

    let stranger = {
        let claims = Claims::join(&MeetingId::new("a").unwrap(), "x", exp);
        token::mint(&claims, "APIstranger", SECRET.as_bytes())
    };
    let r = get(Some(format!("Bearer {stranger}"))).await.unwrap();
    let detail = problem(r, StatusCode::UNAUTHORIZED, "token_unknown_key").await;
    assert!(detail.contains("APIstranger"), "{detail}");
    let bad_sig = {
        let claims = Claims {
            video: every_grant(),
            ..Claims::join(&MeetingId::new("a").unwrap(), "x", exp)
        };
        token::mint(&claims, KEY, b"not-the-secret-not-the-secret-xx")
    };
    let r = get(Some(format!("Bearer {bad_sig}"))).await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "token_invalid_signature").await;
    let expired = admin_token(every_grant(), now_s() - 3600);
    let r = get(Some(format!("Bearer {expired}"))).await.unwrap();
    let detail = problem(r, StatusCode::UNAUTHORIZED, "token_expired").await;
    assert!(detail.contains("expired"), "{detail}");
    let r = api
        .bare(Method::GET, "/v1/meetings")
        .basic_auth(KEY, Some("wrong"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "api_secret_invalid").await;

    // Authenticated without the grant: 403, naming the grant.
    let join = token::mint(
        &Claims::join(&MeetingId::new("a").unwrap(), "alice", exp),
        KEY,
        SECRET.as_bytes(),
    );
    let r = get(Some(format!("Bearer {join}"))).await.unwrap();
    let detail = problem(r, StatusCode::FORBIDDEN, "grant_missing").await;
    assert!(detail.contains("video.roomList"), "{detail}");
    let lister = admin_token(
        VideoGrant {
            room_list: Some(true),
            ..VideoGrant::default()
        },
        exp,
    );
    let r = api
        .bare(Method::POST, "/v1/meetings")
        .bearer_auth(&lister)
        .json(&json!({ "name": "b" }))
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::FORBIDDEN, "grant_missing").await;
    assert!(detail.contains("video.roomCreate"), "{detail}");
    let scoped = admin_token(
        VideoGrant {
            room_admin: Some(true),
            room: Some("other".into()),
            ..VideoGrant::default()
        },
        exp,
    );
    let r = api
        .bare(Method::POST, "/v1/tokens")
        .bearer_auth(&scoped)
        .json(&json!({ "meeting": "a", "identity": "x" }))
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::FORBIDDEN, "grant_missing").await;
    assert!(detail.contains("covers meeting other only"), "{detail}");
    // Health and the API description need no credentials.
    for path in ["/livez", "/readyz", "/metrics", "/v1/openapi.json"] {
        let r = api.bare(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    api.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_problems() {
    let api = Api::start("bad").await;
    api.create("a").await;
    let post = |path: &'static str, body: &'static str| {
        api.req(Method::POST, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let r = api
        .req(Method::GET, "/v1/meetings/nope")
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::NOT_FOUND, "meeting_not_found").await;
    assert!(detail.contains("nope"), "{detail}");
    for path in ["/v1/meetings/nope/participants", "/v1/meetings/nope/tree"] {
        let r = api.req(Method::GET, path).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND, "meeting_not_found").await;
    }
    let r = api
        .req(Method::DELETE, "/v1/meetings/nope")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "meeting_not_found").await;
    let r = post("/v1/tokens", r#"{"meeting":"nope","identity":"x"}"#)
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "meeting_not_found").await;

    let r = post("/v1/meetings", "{\"name\":").await.unwrap();
    problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let r = post("/v1/meetings", r#"{"name":"a b"}"#).await.unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(detail.contains("meeting id may only contain"), "{detail}");
    let r = post("/v1/meetings", r#"{"nmae":"x"}"#).await.unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(detail.contains("unknown field `nmae`"), "{detail}");
    let r = post("/v1/meetings", r#"{"name":"x","max_participants":0}"#)
        .await
        .unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(
        detail.contains("max_participants must be 1 to 10000"),
        "{detail}"
    );
    let r = post(
        "/v1/tokens",
        r#"{"meeting":"a","identity":"x","ttl_s":86401}"#,
    )
    .await
    .unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(detail.contains("24 hours"), "{detail}");
    let r = post("/v1/tokens", r#"{"meeting":"a","identity":""}"#)
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let r = post(
        "/v1/tokens",
        r#"{"meeting":"a","identity":"x","role":"king"}"#,
    )
    .await
    .unwrap();
    let detail = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert!(detail.contains("publisher"), "{detail}");

    let r = api
        .req(Method::POST, "/v1/meetings")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    problem(
        r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let big = format!(r#"{{"name":"x","metadata":"{}"}}"#, "m".repeat(4000));
    let r = api
        .req(Method::POST, "/v1/meetings")
        .header(header::CONTENT_TYPE, "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert!(detail.contains("max_body_bytes"), "{detail}");

    let r = api
        .req(Method::GET, "/v1/meetings/a%20b")
        .send()
        .await
        .unwrap();
    let detail = problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(detail.contains("not a meeting name"), "{detail}");
    let r = api
        .req(Method::GET, "/v1/meetings?limit=0")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let r = api
        .req(Method::GET, "/v1/meetings?limit=x")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let r = api
        .req(Method::GET, "/v1/meetings?state=gone")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let r = api.req(Method::GET, "/v1/nothing").send().await.unwrap();
    problem(r, StatusCode::NOT_FOUND, "route_not_found").await;
    let r = api.req(Method::PUT, "/v1/meetings").send().await.unwrap();
    problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;

    // Each problem is counted by code.
    let metrics = api.bare(Method::GET, "/metrics").send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("arbor_origin_problems_total{code=\"meeting_not_found\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("arbor_origin_meetings{state=\"active\"} 1"),
        "{text}"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let api = Api::start("openapi").await;
    let served: Value = api
        .bare(Method::GET, "/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(arbor_origin::http::OPENAPI).unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["openapi"], "3.1.0");

    let methods = ["get", "post", "put", "patch", "delete", "head", "options"];
    let mut documented = BTreeSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            assert!(methods.contains(&method.as_str()), "{method} {path}");
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = arbor_origin::http::routes()
        .into_iter()
        .map(|(method, path, _)| (method.to_owned(), path.to_owned()))
        .collect();
    assert_eq!(
        documented, routed,
        "openapi.json and http::routes() disagree"
    );

    // Every $ref resolves.
    let text = serde_json::to_string(&served).unwrap();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
        assert!(
            served.pointer(&pointer).is_some(),
            "dangling $ref {pointer}"
        );
    }

    // And the router answers each documented operation (not with its 404/405 fallbacks).
    api.create("a").await;
    for (method, path) in &documented {
        let path = path.replace("{id}", "a");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let r = api.req(method.clone(), &path).send().await.unwrap();
        if r.status() == StatusCode::NOT_FOUND || r.status() == StatusCode::METHOD_NOT_ALLOWED {
            let body: Value = r.json().await.unwrap_or_default();
            assert!(
                body["code"] != "route_not_found" && body["code"] != "method_not_allowed",
                "{method} {path}: {body}"
            );
        }
    }
    api.stop().await;
}
