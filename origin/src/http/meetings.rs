//! `/v1/meetings`: create, list, get and end meetings; a meeting's participants and tree.
//!
//! A meeting's id is its name, the `video.room` of its tokens. Creating is idempotent: `POST`
//! with the name of an active meeting answers `200` with that meeting unchanged (whatever the
//! body's other fields say); a new name, or the name of an ended meeting, starts a meeting and
//! answers `201` with a `Location`. Ending an ended meeting is a `409`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_proto::{EdgeId, MeetingId, TreeEpoch};
use serde::{Deserialize, Serialize};

use super::{AppState, Caller, Grant, JsonBody, MeetingPath, Problem, QueryParams, unix_now_ms};
use crate::store::{
    Created, Ending, ListQuery, MAX_METADATA_LEN, MAX_PAGE, Meeting, NewMeeting, StateFilter,
};

/// Most participants a meeting may be created for (the edge's own ceiling).
pub const MAX_PARTICIPANTS: u32 = 10_000;
/// `max_participants` when the request names none (the edge's default).
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 100;
/// Page size when the request names none.
pub const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateRequest {
    name: MeetingId,
    max_participants: Option<u32>,
    metadata: Option<String>,
}

/// A meeting as the API shows it.
#[derive(Debug, Serialize)]
struct View<'a> {
    #[serde(flatten)]
    meeting: &'a Meeting,
    /// `active` or `ended`.
    state: &'static str,
}

fn view(meeting: &Meeting) -> View<'_> {
    View {
        meeting,
        state: if meeting.is_active() {
            "active"
        } else {
            "ended"
        },
    }
}

/// `POST /v1/meetings` (roomCreate).
pub(super) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomCreate, None)?;
    let max_participants = req.max_participants.unwrap_or(DEFAULT_MAX_PARTICIPANTS);
    if !(1..=MAX_PARTICIPANTS).contains(&max_participants) {
        return Err(Problem::invalid(format!(
            "max_participants must be 1 to {MAX_PARTICIPANTS}, not {max_participants}"
        )));
    }
    let metadata = req.metadata.unwrap_or_default();
    if metadata.len() > MAX_METADATA_LEN {
        return Err(Problem::invalid(format!(
            "metadata is {} bytes; at most {MAX_METADATA_LEN} are allowed",
            metadata.len()
        )));
    }
    let new = NewMeeting {
        id: req.name,
        max_participants,
        metadata,
    };
    match s.store.create_meeting(unix_now_ms(), &new).await? {
        Created::New(m) => {
            s.metrics.meeting_created();
            tracing::info!(meeting = %m.id, "meeting created");
            let location = format!("/v1/meetings/{}", m.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(view(&m)),
            )
                .into_response())
        }
        Created::Existing(m) => Ok(Json(view(&m)).into_response()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default)]
    state: StateFilter,
    limit: Option<u32>,
    cursor: Option<MeetingId>,
}

/// `GET /v1/meetings?state=active|ended|all&limit=&cursor=` (roomList).
pub(super) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, None)?;
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(format!(
            "limit must be 1 to {MAX_PAGE}, not {limit}"
        )));
    }
    let query = ListQuery {
        state: p.state,
        after: p.cursor,
        limit,
    };
    let page = s.store.list_meetings(&query).await?;
    let meetings: Vec<View<'_>> = page.meetings.iter().map(view).collect();
    Ok(Json(serde_json::json!({
        "meetings": meetings,
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

/// `GET /v1/meetings/{id}` (roomList, or roomAdmin for it).
pub(super) async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    MeetingPath(id): MeetingPath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, Some(&id))?;
    match s.store.meeting(&id).await? {
        Some(m) => Ok(Json(view(&m)).into_response()),
        None => Err(Problem::meeting_not_found(id.as_str())),
    }
}

/// `DELETE /v1/meetings/{id}` (roomCreate): ends the meeting and releases its placements.
pub(super) async fn end(
    State(s): State<AppState>,
    caller: Caller,
    MeetingPath(id): MeetingPath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomCreate, Some(&id))?;
    let placements = s.store.placements(&id).await?;
    match s.store.end_meeting(unix_now_ms(), &id).await? {
        Ending::Ended(m) => {
            for p in &placements {
                s.placer.release(&id, &p.region);
            }
            s.metrics.meeting_ended();
            tracing::info!(meeting = %id, "meeting ended");
            Ok(Json(view(&m)).into_response())
        }
        Ending::AlreadyEnded(m) => Err(Problem::meeting_ended(
            id.as_str(),
            m.ended_at_ms.unwrap_or_default(),
        )),
        Ending::NotFound => Err(Problem::meeting_not_found(id.as_str())),
    }
}

#[derive(Debug, Serialize)]
struct EdgeCount {
    edge: EdgeId,
    participants: u32,
    publishers: u32,
    updated_at_ms: i64,
}

/// `GET /v1/meetings/{id}/participants` (roomList, or roomAdmin for it): counts per edge, as
/// edges report them.
pub(super) async fn participants(
    State(s): State<AppState>,
    caller: Caller,
    MeetingPath(id): MeetingPath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, Some(&id))?;
    let rows = s.store.presence(&id).await?;
    if rows.is_empty() {
        known(&s, &id).await?;
    }
    let total = |f: fn(&crate::store::Presence) -> u32| -> u64 {
        rows.iter().map(|p| u64::from(f(p))).sum()
    };
    let edges: Vec<EdgeCount> = rows
        .iter()
        .map(|p| EdgeCount {
            edge: p.edge.clone(),
            participants: p.participants,
            publishers: p.publishers,
            updated_at_ms: p.updated_at_ms,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "meeting": id,
        "participants": total(|p| p.participants),
        "publishers": total(|p| p.publishers),
        "edges": edges,
    }))
    .into_response())
}

#[derive(Debug, Serialize)]
struct TreeView {
    meeting: MeetingId,
    /// `null` until a tree was assigned.
    epoch: Option<TreeEpoch>,
    links: Vec<(EdgeId, EdgeId)>,
    updated_at_ms: Option<i64>,
}

/// `GET /v1/meetings/{id}/tree` (roomList, or roomAdmin for it): the newest tree.
pub(super) async fn tree(
    State(s): State<AppState>,
    caller: Caller,
    MeetingPath(id): MeetingPath,
) -> Result<Response, Problem> {
    caller.require(Grant::RoomList, Some(&id))?;
    let view = match s.store.tree(&id).await? {
        Some(t) => TreeView {
            meeting: t.meeting,
            epoch: Some(t.epoch),
            links: t.links,
            updated_at_ms: Some(t.updated_at_ms),
        },
        None => {
            known(&s, &id).await?;
            TreeView {
                meeting: id,
                epoch: None,
                links: Vec::new(),
                updated_at_ms: None,
            }
        }
    };
    Ok(Json(view).into_response())
}

/// `Ok` if the API created `id` (meetings joined with SDK-minted tokens only are known by
/// their presence and tree rows, which the callers check first).
async fn known(s: &AppState, id: &MeetingId) -> Result<(), Problem> {
    match s.store.meeting(id).await? {
        Some(_) => Ok(()),
        None => Err(Problem::meeting_not_found(id.as_str())),
    }
}
