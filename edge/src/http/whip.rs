//! WHIP (RFC 9725) ingest and WHEP egress.
//!
//! - `POST /v1/whip/{meeting}` with an SDP offer → `201 Created`, the answer (with our UDP
//!   and passive TCP host candidates, since ffmpeg and many devices never trickle),
//!   `Location` of the session and a strong `ETag` for its ICE session.
//! - `PATCH` on the session: trickle candidates (`204`), or an ICE restart with
//!   `If-Match: "*"` and new credentials (`200` + sdpfrag + new `ETag`). A missing
//!   `If-Match` is `428`, a stale one `412`.
//! - `DELETE` ends the session (`200`). Sessions whose media stops are reaped by the worker
//!   anyway: ffmpeg's DELETE does not always arrive.
//! - `/v1/whep/{meeting}` is the same for viewers; `HEAD` answers `application/sdp` so
//!   players can recognise a WHEP URL.
//!
//! Session URLs carry 128 random bits (not the participant id), so they cannot be guessed.
//!
//! A new session for a meeting hosted by another edge, or any new session while this edge
//! drains, is redirected with `307` (RFC 9725 §4.5: the client sends its offer again there);
//! draining with nowhere to send it is `503` with `Retry-After`. Running sessions are not
//! moved: WHIP and WHEP have no way to tell a client to, so they last until the client ends
//! them (the edge reports itself drained after that).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_proto::MeetingId;
use tokio::sync::oneshot;

use super::{
    ACCEPT_POST, ApiError, AppState, admission, bearer, content_type, drain_target,
    draining_refusal, overloaded, verify,
};
use crate::backbone::Where;
use crate::media::{Command, MAX_RESOURCES, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whip,
    Whep,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

pub(super) async fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(ACCEPT_POST, HeaderValue::from_static("application/sdp"))],
    )
        .into_response()
}

pub(super) async fn get_ok() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(super) async fn whep_head() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/sdp")]).into_response()
}

pub(super) async fn whip_post(
    state: State<AppState>,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    post(state, path, headers, body, Kind::Whip).await
}

pub(super) async fn whep_post(
    state: State<AppState>,
    path: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    post(state, path, headers, body, Kind::Whep).await
}

fn meeting_of(raw: &str) -> Result<MeetingId, ApiError> {
    MeetingId::new(raw)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
}

/// Verifies the bearer token and that it is for this meeting.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    meeting: &MeetingId,
) -> Result<relay_proto::token::Grants, ApiError> {
    let grants = verify(state, bearer(headers)?)?;
    if &grants.meeting != meeting {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_wrong_meeting",
            format!(
                "the token is for meeting {:?}, not {:?}",
                grants.meeting.as_str(),
                meeting.as_str()
            ),
        ));
    }
    Ok(grants)
}

async fn post(
    State(state): State<AppState>,
    Path(meeting): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    kind: Kind,
) -> Result<Response, ApiError> {
    let meeting = meeting_of(&meeting)?;
    let grants = authorize(&state, &headers, &meeting)?;
    if state.health.is_draining() {
        return Ok(match drain_target(&state, &meeting).await {
            Some(to) => redirect(&to.http_url, kind, &meeting),
            None => draining_refusal(),
        });
    }
    if let Some(placements) = &state.placements
        && let Where::Elsewhere { http_url, .. } = placements.locate(&meeting).await
    {
        return Ok(redirect(&http_url, kind, &meeting));
    }
    if content_type(&headers) != "application/sdp" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the offer must be sent as Content-Type: application/sdp",
        ));
    }
    let offer = std::str::from_utf8(&body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "sdp_invalid",
            "the offer is not UTF-8",
        )
    })?;
    if !offer.trim_start().starts_with("v=0") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "sdp_invalid",
            "the body is not an SDP offer (it must start with v=0)",
        ));
    }
    if state.media.resources.lock().map(|r| r.len()).unwrap_or(0) >= MAX_RESOURCES {
        return Err(overloaded());
    }
    let worker = state.media.worker_for(&meeting);
    let (reply, rx) = oneshot::channel();
    let adm = admission(&grants, None);
    let cmd = match kind {
        Kind::Whip => Command::Whip {
            admission: adm,
            offer: offer.to_owned(),
            reply,
        },
        Kind::Whep => Command::Whep {
            admission: adm,
            offer: offer.to_owned(),
            reply,
        },
    };
    state.media.send(worker, cmd).map_err(|_| overloaded())?;
    let (participant, answer) = rx.await.map_err(|_| overloaded())??;
    let id = random_id();
    let etag = format!("\"{}\"", random_id());
    let location = format!("/v1/{}/{}/{}", kind.path(), meeting, id);
    let resource = Resource {
        meeting,
        worker,
        participant,
        whip: matches!(kind, Kind::Whip),
        etag: etag.clone(),
    };
    if !state
        .media
        .resources
        .lock()
        .is_ok_and(|mut r| r.insert(id.clone(), resource))
    {
        let _ = state.media.send(
            worker,
            Command::Delete {
                participant,
                reply: oneshot::channel().0,
            },
        );
        return Err(overloaded());
    }
    state.metrics.resource_created(kind.path());
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
            (header::ETAG, etag),
        ],
        answer,
    )
        .into_response())
}

/// RFC 9725 §4.5: a WHIP endpoint may redirect with 307; the client re-sends the offer.
fn redirect(http_url: &str, kind: Kind, meeting: &MeetingId) -> Response {
    let location = format!(
        "{}/v1/{}/{}",
        http_url.trim_end_matches('/'),
        kind.path(),
        meeting
    );
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

fn resource(state: &AppState, meeting: &MeetingId, id: &str) -> Result<Resource, ApiError> {
    state
        .media
        .resources
        .lock()
        .ok()
        .and_then(|r| r.get(id).cloned())
        .filter(|r| &r.meeting == meeting)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such WHIP/WHEP session",
            )
        })
}

fn forget(state: &AppState, id: &str) {
    if let Ok(mut r) = state.media.resources.lock() {
        r.remove(id);
    }
}

pub(super) async fn patch(
    State(state): State<AppState>,
    Path((meeting, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let meeting = meeting_of(&meeting)?;
    authorize(&state, &headers, &meeting)?;
    let res = resource(&state, &meeting, &id)?;
    if content_type(&headers) != "application/trickle-ice-sdpfrag" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "PATCH bodies must be application/trickle-ice-sdpfrag",
        ));
    }
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "PATCH needs If-Match with the session's ETag (or \"*\" for an ICE restart)",
            )
        })?;
    if if_match.trim() != "*" && if_match.trim() != res.etag {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the ETag does not match the current ICE session",
        ));
    }
    let fragment = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the fragment is not UTF-8",
        )
    })?;
    let (reply, rx) = oneshot::channel();
    state
        .media
        .send(
            res.worker,
            Command::Patch {
                participant: res.participant,
                fragment,
                reply,
            },
        )
        .map_err(|_| overloaded())?;
    let restart = match rx.await.map_err(|_| overloaded())? {
        Ok(r) => r,
        Err(e) => {
            if e.kind == edge_core::ApiErrorKind::NotFound {
                forget(&state, &id);
            }
            return Err(e.into());
        }
    };
    let Some(restart) = restart else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let etag = format!("\"{}\"", random_id());
    if let Ok(mut r) = state.media.resources.lock()
        && let Some(r) = r.get_mut(&id)
    {
        r.etag = etag.clone();
    }
    let body = format!(
        "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        restart.ufrag, restart.pwd
    );
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/trickle-ice-sdpfrag".to_owned(),
            ),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response())
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((meeting, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let meeting = meeting_of(&meeting)?;
    authorize(&state, &headers, &meeting)?;
    let res = resource(&state, &meeting, &id)?;
    forget(&state, &id);
    let (reply, rx) = oneshot::channel();
    state
        .media
        .send(
            res.worker,
            Command::Delete {
                participant: res.participant,
                reply,
            },
        )
        .map_err(|_| overloaded())?;
    // Already reaped by the worker is fine: the session is gone either way.
    let _ = rx.await;
    Ok(StatusCode::OK.into_response())
}

/// 128 random bits, hex.
fn random_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}
