//! The edge's HTTP surface: meeting signaling (WebSocket), WHIP/WHEP, the web client,
//! health and metrics, on one axum router.
//!
//! Handlers never touch media state: they verify the caller, then hand a command to the
//! meeting's media worker and await its reply (`crate::media`).
//!
//! While an operator drains the edge ([`crate::health`]), new joins are sent elsewhere
//! ([`drain_target`]): signaling answers `redirect`, WHIP/WHEP `307`; with nowhere to go,
//! `503` and `Retry-After`. `/readyz` answers 503 with its one-line reason.

mod signal;
mod web;
mod whip;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use edge_core::Admission;
use relay_proto::token::{self, Grants, TokenError};
use relay_proto::{DrainTarget, MeetingId};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::media::Media;

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub media: Media,
    pub metrics: crate::telemetry::Metrics,
    /// Where meetings are placed (with the backbone on): joins for a meeting placed on
    /// another edge of the region are redirected there.
    pub placements: Option<crate::backbone::Placements>,
    /// Readiness and the operator's drain.
    pub health: crate::health::Health,
}

/// The `Retry-After` of a join refused while draining with nowhere to send it, in seconds.
pub const DRAIN_RETRY_AFTER_S: u32 = 5;

/// The router with every route and layer.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.config.http.cors_origins);
    let limit = state.config.http.max_body_bytes;
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/rtc", get(signal::upgrade))
        .route("/v1/dev/token", post(dev_token))
        .route(
            "/v1/whip/{meeting}",
            post(whip::whip_post)
                .options(whip::options)
                .get(whip::get_ok),
        )
        .route(
            "/v1/whep/{meeting}",
            post(whip::whep_post)
                .options(whip::options)
                .head(whip::whep_head)
                .get(whip::get_ok),
        )
        .route(
            "/v1/whip/{meeting}/{resource}",
            axum::routing::patch(whip::patch)
                .delete(whip::delete)
                .options(whip::options)
                .get(whip::get_ok),
        )
        .route(
            "/v1/whep/{meeting}/{resource}",
            axum::routing::patch(whip::patch)
                .delete(whip::delete)
                .options(whip::options)
                .get(whip::get_ok),
        )
        .merge(web::routes())
        .layer(axum::middleware::map_response(count_errors))
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors)
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::HEAD,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::LOCATION, header::LINK, header::ETAG])
}

/// Counts 4xx and 5xx answers by class (`arbor_http_errors_total`).
async fn count_errors(response: Response) -> Response {
    crate::metrics::http_response(response.status().as_u16());
    response
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.health.check(&s.media) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// Where a client of `meeting` goes while this edge drains: the edge the origin now places
/// the meeting on in this region (so the meeting's participants there stay together), else
/// the origin's drain target. `None`: nowhere.
pub async fn drain_target(state: &AppState, meeting: &MeetingId) -> Option<DrainTarget> {
    if let Some(placements) = &state.placements
        && let Some((edge, http_url)) = placements.relocate(meeting).await
    {
        return Some(DrainTarget { edge, http_url });
    }
    state.health.drain().target
}

/// A join refused while draining with no other edge to send it to: 503 + `Retry-After`.
pub fn draining_refusal() -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "this edge is draining and no other edge takes new joins; retry shortly",
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(DRAIN_RETRY_AFTER_S));
    r
}

async fn metrics(State(s): State<AppState>) -> Response {
    let sessions = s
        .media
        .resources
        .lock()
        .map(|r| r.counts())
        .unwrap_or_default();
    let body = s.metrics.render(&s.media.stats(), sessions);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// An API error: a status and a JSON body `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.message())
    }
}

impl From<edge_core::ApiError> for ApiError {
    fn from(e: edge_core::ApiError) -> Self {
        use edge_core::ApiErrorKind as K;
        let (status, code) = match e.kind {
            K::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            K::Forbidden => (StatusCode::FORBIDDEN, "permission_denied"),
            K::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            K::Unprocessable => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            K::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, e.message)
    }
}

pub fn overloaded() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "the edge is busy; retry shortly",
    )
}

/// Seconds since the Unix epoch (token times are in it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies a token against the configured API keys.
pub fn verify(state: &AppState, token_str: &str) -> Result<Grants, TokenError> {
    token::verify(token_str, &state.config.auth.keys, unix_now())
}

/// What a verified token admits its holder as.
pub fn admission(g: &Grants, name: Option<String>) -> Admission {
    Admission {
        meeting: g.meeting.clone(),
        identity: g.identity.clone(),
        name: name
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.chars().take(64).collect())
            .or_else(|| g.name.clone())
            .unwrap_or_else(|| g.identity.clone()),
        can_publish: g.can_publish,
        can_subscribe: g.can_subscribe,
        can_publish_data: g.can_publish_data,
        hidden: g.hidden,
    }
}

/// The bearer token of a request (`Authorization: Bearer …`).
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_missing",
                "missing Authorization: Bearer <token>",
            )
        })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_malformed",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    Ok(token.trim())
}

#[derive(Debug, Deserialize)]
struct DevTokenRequest {
    meeting: String,
    identity: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

/// Mints a token for local development (`[auth] dev_tokens = true` only: anyone who can
/// reach the edge could join any meeting).
async fn dev_token(
    State(s): State<AppState>,
    body: Result<axum::Json<DevTokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if !s.config.auth.dev_tokens {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "development tokens are disabled on this edge; ask the app for a token",
        ));
    }
    let axum::Json(req) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let meeting = MeetingId::new(&req.meeting)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    if req.identity.is_empty() || req.identity.len() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "identity must be 1 to 128 bytes",
        ));
    }
    let Some((key, secret)) = s.config.auth.keys.iter().next() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_keys",
            "no API key configured",
        ));
    };
    let mut claims = token::Claims::join(&meeting, req.identity, unix_now() + 6 * 3600);
    if let Some(n) = req.name {
        claims = claims.name(n);
    }
    match req.role.as_deref() {
        None | Some("publisher") => {}
        Some("subscriber") => claims = claims.subscriber_only(),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("role must be publisher or subscriber, not {other:?}"),
            ));
        }
    }
    let token = token::mint(&claims, key, secret.as_ref());
    Ok(axum::Json(serde_json::json!({ "token": token })))
}

/// `Content-Type` without parameters, lowercased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

pub const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");
