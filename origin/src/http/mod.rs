//! The origin's HTTP surface: the REST API `/v1`, health, metrics and the OpenAPI document,
//! on one axum router.
//!
//! Every route is listed once in [`routes`], which both builds the router and lets a test
//! check the committed `origin/openapi.json` against it. JSON in and out; every error is an
//! RFC 9457 problem ([`Problem`]); every `/v1` route except the OpenAPI document needs
//! credentials ([`auth`]).
//!
//! - [`meetings`]: create, list, get and end meetings; their participants and tree.
//! - [`tokens`]: mint join tokens; `/v1/join` also picks the edge ([`crate::placer`]).
//! - [`edges`]: one edge, and draining it.
//! - this file: edges, `/livez`, `/readyz`, `/metrics`, `/v1/openapi.json`, the extractors
//!   that turn malformed requests into problems.

pub mod auth;
pub mod edges;
pub mod meetings;
pub mod problem;
pub mod tokens;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use relay_proto::{MeetingId, RegionId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::placer::Placer;
use crate::store::Store;

pub use auth::{Caller, Grant};
pub use problem::Problem;

/// The committed OpenAPI 3.1 description of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// The edge registry and placement (`origin_core`).
    pub placer: Arc<Placer>,
    pub metrics: Metrics,
    /// Client locations for steering joins (`[dns] geoip_db`), if configured.
    pub geoip: Option<Arc<crate::geoip::GeoIp>>,
}

/// Every route: method, path (axum syntax, which is also OpenAPI's), handler.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/livez", get(|| async { "ok\n" })),
        ("GET", "/readyz", get(readyz)),
        ("GET", "/metrics", get(metrics)),
        ("GET", "/v1/openapi.json", get(openapi)),
        ("POST", "/v1/meetings", post(meetings::create)),
        ("GET", "/v1/meetings", get(meetings::list)),
        ("GET", "/v1/meetings/{id}", get(meetings::get_one)),
        ("DELETE", "/v1/meetings/{id}", delete(meetings::end)),
        (
            "GET",
            "/v1/meetings/{id}/participants",
            get(meetings::participants),
        ),
        ("GET", "/v1/meetings/{id}/tree", get(meetings::tree)),
        ("GET", "/v1/edges", get(edges)),
        ("GET", "/v1/edges/{id}", get(edges::get_one)),
        ("POST", "/v1/edges/{id}/drain", post(edges::drain)),
        ("POST", "/v1/tokens", post(tokens::mint)),
        ("POST", "/v1/join", post(tokens::join)),
    ]
}

/// The router with every route and layer.
pub fn router(state: AppState) -> Router {
    let limit = state.config.http.max_body_bytes;
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "No such route",
                "no such route; the API is described at /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this route does not take that method; see /v1/openapi.json",
            )
        })
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            count,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts error answers by class and problem code.
async fn count(State(s): State<AppState>, response: Response) -> Response {
    let code = response.extensions().get::<problem::Code>().map(|c| c.0);
    s.metrics.response(response.status().as_u16(), code);
    response
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!("readyz: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store does not answer\n",
            )
                .into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let meetings = s.store.count_meetings().await.ok();
    let edges = s.store.edges().await.ok();
    let body = s.metrics.render(meetings, edges.as_deref());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgesQuery {
    region: Option<RegionId>,
}

/// `GET /v1/edges[?region=…]`: every registered edge, as the registry last saw it.
async fn edges(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<EdgesQuery>,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, None)?;
    let mut edges = s.store.edges().await?;
    if let Some(region) = &q.region {
        edges.retain(|e| e.region == *region);
    }
    Ok(axum::Json(serde_json::json!({ "edges": edges })).into_response())
}

/// Milliseconds since the Unix epoch (what the store records).
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch (what tokens carry).
pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A JSON body; malformed ones become problems: 400 (syntax), 413 (too large), 415 (not
/// `application/json`), 422 (wrong fields or values).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let detail = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Request body too large",
            format!("{detail} (the limit is http.max_body_bytes)"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => Problem::invalid(detail),
        _ => Problem::bad_request(detail),
    }
}

/// A query string; a malformed one is a 400 problem.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e: QueryRejection| Problem::bad_request(e.body_text()))
    }
}

/// A route's `{id}` segment as text; a missing or undecodable one is a 400 problem. The
/// typed extractors ([`MeetingPath`], `edges::EdgePath`) parse it further.
pub(crate) async fn path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<String, Problem> {
    let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e: PathRejection| Problem::bad_request(e.body_text()))?;
    Ok(id)
}

/// The `{id}` of a meeting route; one that cannot be a meeting name is a 400 problem.
#[derive(Debug)]
pub struct MeetingPath(pub MeetingId);

impl<S: Send + Sync> FromRequestParts<S> for MeetingPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let id = path_id(parts, state).await?;
        MeetingId::new(&id)
            .map(MeetingPath)
            .map_err(|e| Problem::bad_request(format!("{id:?} is not a meeting name: {e}")))
    }
}
