//! `/v1/tokens` and `/v1/join`: join tokens for a meeting, and the edge to use.
//!
//! Both take the same body and need `roomAdmin` for the meeting, which must exist (404) and
//! be active (409). The token is a LiveKit-layout JWT (`relay_proto::token`) signed with the
//! caller's API key, so every edge that knows the key accepts it. `/v1/join` also places the
//! meeting in a region and answers the edge; `/v1/tokens` does so only when the body names a
//! region.
//!
//! The region of a join: the one the body names; else the region of the edge
//! `origin_core::steer` finds nearest to the caller's address (located with `[dns]
//! geoip_db`, exactly as the DNS server steers `edge.<zone>`), among the configured regions;
//! else `placement.default_region`. Steering chooses the client's region, placement the
//! meeting's edge in it. The caller's address is the TCP peer's: a browser calling the API
//! directly is steered by its own address, an app server calling it for its users should name
//! the region (the header of a proxy is not trusted).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use origin_core::PlaceError;
use relay_proto::token::{self, Claims};
use relay_proto::{EdgeId, MeetingId, RegionId};
use serde::{Deserialize, Serialize};

use super::{AppState, Caller, Grant, JsonBody, Problem, unix_now_ms, unix_now_s};
use crate::config::MAX_TTL_S;
use crate::placer::Placed;
use crate::store::{MAX_METADATA_LEN, PlacementRecord};

/// Longest participant identity, in bytes (the edge's limit).
pub const MAX_IDENTITY_LEN: usize = 128;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// What the holder of the token may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Role {
    /// Publish and subscribe.
    #[default]
    Publisher,
    /// Subscribe only (chat stays allowed).
    Subscriber,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    meeting: MeetingId,
    identity: String,
    name: Option<String>,
    metadata: Option<String>,
    #[serde(default)]
    role: Role,
    ttl_s: Option<u64>,
    region: Option<RegionId>,
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    token: String,
    meeting: MeetingId,
    identity: String,
    role: Role,
    expires_at_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<RegionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edge: Option<EdgeId>,
    /// The edge's HTTP base URL (WHIP at `/v1/whip/<meeting>`, WHEP at `/v1/whep/<meeting>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    edge_url: Option<String>,
    /// The edge's signaling WebSocket.
    #[serde(skip_serializing_if = "Option::is_none")]
    ws_url: Option<String>,
}

/// `POST /v1/tokens` (roomAdmin): a join token; the edge too when `region` is given.
pub(super) async fn mint(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Response, Problem> {
    let region = req.region.clone();
    issue(&s, &caller, req, region).await
}

/// `POST /v1/join` (roomAdmin): a join token and the edge to present it to.
pub(super) async fn join(
    State(s): State<AppState>,
    ClientAddr(peer): ClientAddr,
    caller: Caller,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Response, Problem> {
    let region = match &req.region {
        Some(region) => region.clone(),
        None => peer
            .and_then(|ip| steered_region(&s, ip))
            .unwrap_or_else(|| s.config.placement.default_region.clone()),
    };
    issue(&s, &caller, req, Some(region)).await
}

/// The region of the configured edge nearest to `ip`, if the database locates it.
fn steered_region(s: &AppState, ip: IpAddr) -> Option<RegionId> {
    let location = s.geoip.as_ref()?.locate(ip)?;
    let key = crate::dns::subnet_key(ip, u8::MAX);
    let client = origin_core::steer::Client {
        location: Some(location),
        key: key.as_bytes(),
    };
    let coordinator = s.placer.lock();
    let regions = &s.config.placement.regions;
    let served = coordinator
        .registry()
        .edges()
        .filter(|e| regions.contains(&e.edge.region));
    let policy = s.config.steering();
    let nearest = origin_core::steer(&client, served, &policy, 1);
    nearest.first().map(|e| e.edge.region.clone())
}

/// The TCP peer's address, when the server records it (`into_make_service_with_connect_info`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientAddr(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientAddr(peer.map(|c| c.0.ip())))
    }
}

async fn issue(
    s: &AppState,
    caller: &Caller,
    req: TokenRequest,
    region: Option<RegionId>,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomAdmin, Some(&req.meeting))?;
    let ttl_s = check(s, &req, region.as_ref())?;
    match s.store.meeting(&req.meeting).await? {
        None => return Err(Problem::meeting_not_found(req.meeting.as_str())),
        Some(m) if !m.is_active() => {
            return Err(Problem::meeting_ended(
                req.meeting.as_str(),
                m.ended_at_ms.unwrap_or_default(),
            ));
        }
        Some(_) => {}
    }
    let placed = match &region {
        Some(region) => Some(place(s, &req.meeting, region).await?),
        None => None,
    };
    let Some(secret) = s.config.auth.keys.get(&caller.api_key) else {
        // The caller authenticated with this key a moment ago.
        return Err(Problem::unauthorized(
            "api_key_unknown",
            "the API key is no longer configured",
        ));
    };
    let now_s = unix_now_s();
    let expires_at_s = now_s + ttl_s;
    let mut claims =
        Claims::join(&req.meeting, req.identity.clone(), expires_at_s).issued_at(now_s);
    if let Some(name) = req.name {
        claims = claims.name(name);
    }
    if let Some(metadata) = req.metadata {
        claims = claims.metadata(metadata);
    }
    let role = match req.role {
        Role::Publisher => "publisher",
        Role::Subscriber => {
            claims = claims.subscriber_only();
            "subscriber"
        }
    };
    let token = token::mint(&claims, &caller.api_key, secret.as_ref());
    s.metrics.token_minted(role);
    if let Some(p) = &placed {
        s.metrics.joined(p.fresh);
    }
    Ok(Json(TokenResponse {
        token,
        meeting: req.meeting,
        identity: req.identity,
        role: req.role,
        expires_at_s,
        region: region.filter(|_| placed.is_some()),
        ws_url: placed
            .as_ref()
            .map(|p| relay_proto::endpoints::signaling_url(&p.http_url)),
        edge_url: placed.as_ref().map(|p| p.http_url.clone()),
        edge: placed.map(|p| p.edge),
    })
    .into_response())
}

/// Checks the request's fields; returns the token lifetime.
fn check(s: &AppState, req: &TokenRequest, region: Option<&RegionId>) -> Result<u64, Problem> {
    if req.identity.is_empty() || req.identity.len() > MAX_IDENTITY_LEN {
        return Err(Problem::invalid(format!(
            "identity must be 1 to {MAX_IDENTITY_LEN} bytes"
        )));
    }
    if req.identity.chars().any(char::is_control) {
        return Err(Problem::invalid(
            "identity must not contain control characters",
        ));
    }
    if req
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(Problem::invalid(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if req
        .metadata
        .as_ref()
        .is_some_and(|m| m.len() > MAX_METADATA_LEN)
    {
        return Err(Problem::invalid(format!(
            "metadata must be at most {MAX_METADATA_LEN} bytes"
        )));
    }
    let ttl_s = req.ttl_s.unwrap_or(s.config.tokens.default_ttl_s);
    if !(1..=MAX_TTL_S).contains(&ttl_s) {
        return Err(Problem::invalid(format!(
            "ttl_s must be 1 to {MAX_TTL_S} (24 hours), not {ttl_s}"
        )));
    }
    if let Some(region) = region
        && !s.config.placement.regions.contains(region)
    {
        let known: Vec<&str> = s
            .config
            .placement
            .regions
            .iter()
            .map(|r| r.as_str())
            .collect();
        return Err(Problem::invalid(format!(
            "region {region} is not served here; known regions: {}",
            known.join(", ")
        )));
    }
    Ok(ttl_s)
}

/// Places `meeting` in `region` and records a new choice in the store.
async fn place(s: &AppState, meeting: &MeetingId, region: &RegionId) -> Result<Placed, Problem> {
    let mut placed = s
        .placer
        .place(Instant::now(), meeting, region)
        .map_err(|e| place_problem(&e))?;
    let stored = s
        .store
        .placements(meeting)
        .await?
        .into_iter()
        .find(|p| p.region == *region)
        .map(|p| p.edge);
    if stored.as_ref() != Some(&placed.edge) {
        placed.fresh = true;
        let record = PlacementRecord {
            meeting: meeting.clone(),
            region: region.clone(),
            edge: placed.edge.clone(),
            placed_at_ms: unix_now_ms(),
        };
        s.store.set_placement(&record).await?;
        tracing::info!(%meeting, %region, edge = %placed.edge, "meeting placed");
    }
    Ok(placed)
}

fn place_problem(e: &PlaceError) -> Problem {
    let code = match e {
        PlaceError::NoHealthyEdge(_) => "no_healthy_edge",
        PlaceError::Overloaded(_) => "region_overloaded",
        PlaceError::Full => "placement_full",
    };
    Problem::unavailable(code, "No edge available", format!("{e}; retry shortly"))
}
