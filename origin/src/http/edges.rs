//! One edge, and draining it: `GET /v1/edges/{id}`, `POST /v1/edges/{id}/drain`.
//!
//! A drain is recorded in the store ([`Store::request_drain`]) and delivered by the control
//! plane on the edge's next heartbeat (`crate::control`), so the API answers at once and a
//! restarted origin still delivers it. The edge then takes no new joins and moves its
//! clients; it is done (`"drained": true`) when it heartbeats `draining` with no participant
//! left (`docs/relay.md`, "Draining"). Both routes answer the same view of the edge:
//!
//! ```json
//! { "id": "eu-1", "status": "draining", "load": { "participants": 0, … }, …,
//!   "sessions": 0, "drain_pending": false, "drained": true }
//! ```
//!
//! [`Store::request_drain`]: crate::store::Store::request_drain

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use relay_proto::EdgeId;
use serde::Serialize;

use super::{AppState, Caller, Grant, Problem, unix_now_ms};
use crate::store::{DrainRequest, EdgeRecord, EdgeStatus};

/// An edge as the API shows it: the stored record plus its drain.
#[derive(Debug, Serialize)]
struct EdgeView {
    #[serde(flatten)]
    edge: EdgeRecord,
    /// Participants on it (meeting clients and WHIP/WHEP sessions), from its last heartbeat.
    sessions: u32,
    /// An operator's drain waits for the edge's next heartbeat.
    drain_pending: bool,
    /// When that drain was requested (unix ms), while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_requested_at_ms: Option<i64>,
    /// The edge drains and has no participant left: it can be stopped.
    drained: bool,
}

impl EdgeView {
    fn new(edge: EdgeRecord, pending: Option<i64>) -> Self {
        let sessions = edge.load.participants;
        EdgeView {
            drained: edge.status == EdgeStatus::Draining && sessions == 0 && pending.is_none(),
            sessions,
            drain_pending: pending.is_some(),
            drain_requested_at_ms: pending,
            edge,
        }
    }
}

/// `GET /v1/edges/{id}`: one edge, with its sessions and its drain. Grant: roomList.
pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    EdgePath(id): EdgePath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, None)?;
    let Some((edge, pending)) = s.store.edge_drain(&id).await? else {
        return Err(not_found(&id));
    };
    Ok(axum::Json(EdgeView::new(edge, pending)).into_response())
}

/// `POST /v1/edges/{id}/drain`: no new joins on the edge, its clients move elsewhere.
/// Idempotent; 202 with the edge's view. Grant: roomAdmin (for every meeting).
pub async fn drain(
    State(s): State<AppState>,
    caller: Caller,
    EdgePath(id): EdgePath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomAdmin, None)?;
    match s.store.request_drain(unix_now_ms(), &id).await? {
        DrainRequest::Requested(edge, pending) => {
            tracing::info!(edge = %id, pending = pending.is_some(), "drain requested");
            let view = EdgeView::new(edge, pending);
            Ok((StatusCode::ACCEPTED, axum::Json(view)).into_response())
        }
        DrainRequest::Dead(edge) => Err(Problem::new(
            StatusCode::CONFLICT,
            "edge_dead",
            "Edge is dead",
            format!(
                "edge {id} is dead (last heard at {} unix ms): there is nothing to drain",
                edge.last_heartbeat_ms
            ),
        )),
        DrainRequest::NotFound => Err(not_found(&id)),
    }
}

fn not_found(id: &EdgeId) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "edge_not_found",
        "Edge not found",
        format!("no edge {id} has registered; GET /v1/edges lists them"),
    )
}

/// The `{id}` of an edge route; one that cannot be an edge id is a 400 problem.
#[derive(Debug)]
pub struct EdgePath(pub EdgeId);

impl<S: Send + Sync> FromRequestParts<S> for EdgePath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let id = super::path_id(parts, state).await?;
        EdgeId::new(&id)
            .map(EdgePath)
            .map_err(|e| Problem::bad_request(format!("{id:?} is not an edge id: {e}")))
    }
}
