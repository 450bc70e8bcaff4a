//! The meeting signaling WebSocket (`/v1/rtc`, protocol in `docs/signaling.md`).
//!
//! One task per socket: it waits for `join` or `resume`, verifies the token, registers the
//! participant with its meeting's worker, then relays client messages to the worker and the
//! worker's messages to the client. When the socket ends the worker is told, and keeps the
//! participant (and its media) for the resume grace period.
//!
//! While the edge drains ([`crate::health`]), a `join` is redirected to where the meeting's
//! participants now go ([`super::drain_target`]) or refused with `overloaded` when there is
//! nowhere; a `resume` is still served (it is a participant of this edge), and every session
//! is told to `migrate` there, again if the target changes. The participant stays here, media
//! and all, until the client leaves (it sends `leave` once it has joined the other edge).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use edge_core::signal::{ClientMsg, ErrorCode, MAX_MESSAGE_BYTES, MigrateReason, ServerMsg};
use relay_proto::{DrainTarget, EdgeId, MeetingId, ParticipantId};
use tokio::sync::{oneshot, watch};

use super::{AppState, admission, drain_target, verify};
use crate::backbone::Where;
use crate::health::Drain;
use crate::media::{Command, Joined, Outgoing};

/// How long a new socket may take to send `join` or `resume`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// WebSocket close codes (RFC 6455 §7.4.1 and the private range).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_AGAIN: u16 = 1013;

/// The socket's read buffer. tungstenite zero-fills its read buffer up to this size before
/// every read from the socket; at its default (128 KiB) that memset was a sixth of the
/// edge's CPU in a join storm, for client messages of a few hundred bytes. Larger messages
/// (up to [`MAX_MESSAGE_BYTES`]) still arrive, over several reads.
const READ_BUFFER_BYTES: usize = 4096;

pub(super) async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state))
}

async fn send(ws: &mut WebSocket, msg: &ServerMsg) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => ws.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
    }
}

/// Most queued messages written before one flush.
const MAX_WRITE_BATCH: usize = 64;

enum Sent {
    Ok,
    /// A fatal error went out: the worker has removed the participant.
    Fatal,
    Failed,
}

/// Writes `first` and whatever else is already queued (up to [`MAX_WRITE_BATCH`]) with one
/// flush: a join storm queues a roster event per joiner for every participant, and a write
/// (a syscall) per event was most of a join's cost.
async fn send_queued(
    ws: &mut WebSocket,
    first: Outgoing,
    queued: &mut tokio::sync::mpsc::Receiver<Outgoing>,
) -> Sent {
    use futures_util::SinkExt as _;
    let mut next = Some(first);
    let mut written = 0;
    while let Some(msg) = next.take() {
        if ws.feed(Message::Text(msg.text)).await.is_err() {
            return Sent::Failed;
        }
        written += 1;
        if msg.fatal {
            return if ws.flush().await.is_ok() {
                Sent::Fatal
            } else {
                Sent::Failed
            };
        }
        if written < MAX_WRITE_BATCH {
            next = queued.try_recv().ok();
        }
    }
    if ws.flush().await.is_ok() {
        Sent::Ok
    } else {
        Sent::Failed
    }
}

async fn close(mut ws: WebSocket, code: u16, reason: &str) {
    close_ref(&mut ws, code, reason).await;
}

async fn close_ref(ws: &mut WebSocket, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.chars().take(120).collect::<String>().into(),
        })))
        .await;
}

async fn session(mut ws: WebSocket, state: AppState) {
    let Some((worker, joined, meeting)) = admit(&mut ws, &state).await else {
        return;
    };
    let Joined {
        participant,
        mut messages,
    } = joined;
    state.metrics.signal_connected();
    let mut drain = Migration::new(&state, meeting);
    let reason = relay(
        &mut ws,
        &state,
        worker,
        participant,
        &mut messages,
        &mut drain,
    )
    .await;
    let _ = state
        .media
        .send(worker, Command::SignalClosed { participant });
    match reason {
        End::Left => close(ws, CLOSE_NORMAL, "left").await,
        End::Removed => close(ws, CLOSE_NORMAL, "removed from the meeting").await,
        End::Gone => {}
    }
}

/// Waits for `join`/`resume`; on success returns the worker, the participant and its meeting.
async fn admit(ws: &mut WebSocket, state: &AppState) -> Option<(usize, Joined, MeetingId)> {
    loop {
        let first = tokio::time::timeout(JOIN_TIMEOUT, ws.recv()).await;
        let text = match first {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => {
                let m = ServerMsg::error(ErrorCode::BadMessage, "text frames only");
                send(ws, &m).await;
                continue;
            }
            Err(_) => {
                let m = ServerMsg::error(ErrorCode::NotJoined, "no join within 15 s");
                send(ws, &m).await;
                close_ref(ws, CLOSE_POLICY, "no join").await;
                return None;
            }
            _ => return None,
        };
        let msg = match ClientMsg::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                send(ws, &e.to_msg()).await;
                continue;
            }
        };
        let (token, resume, name) = match msg {
            ClientMsg::Join { token, name } => (token, None, name),
            ClientMsg::Resume {
                token,
                participant_id,
                resume_secret,
            } => (token, Some((participant_id, resume_secret)), None),
            ClientMsg::Ping { ts } => {
                send(ws, &ServerMsg::Pong { ts }).await;
                continue;
            }
            _ => {
                let m = ServerMsg::error(ErrorCode::NotJoined, "send join or resume first");
                send(ws, &m).await;
                continue;
            }
        };
        let grants = match verify(state, &token) {
            Ok(g) => g,
            Err(e) => {
                state.metrics.join_result("token_rejected");
                let code = ErrorCode::from_token_code(e.code());
                send(ws, &ServerMsg::error(code, e.message())).await;
                close_ref(ws, CLOSE_POLICY, e.code()).await;
                return None;
            }
        };
        if state.health.is_draining() {
            // A resume is a participant of this edge: it is served, then told to migrate.
            if resume.is_none() {
                refuse_while_draining(ws, state, &grants.meeting).await;
                return None;
            }
        } else if let Some(placements) = &state.placements
            && let Where::Elsewhere { edge, http_url } = placements.locate(&grants.meeting).await
        {
            redirect(ws, state, &edge, http_url).await;
            return None;
        }
        let worker = state.media.worker_for(&grants.meeting);
        let (reply, rx) = oneshot::channel();
        let adm = admission(&grants, name);
        let cmd = match resume {
            None => Command::Join {
                admission: adm,
                reply,
            },
            Some((participant, secret)) => Command::Resume {
                admission: adm,
                participant,
                secret,
                reply,
            },
        };
        if state.media.send(worker, cmd).is_err() {
            state.metrics.join_result("overloaded");
            send(
                ws,
                &ServerMsg::error(ErrorCode::Overloaded, "the edge is busy"),
            )
            .await;
            close_ref(ws, CLOSE_TRY_AGAIN, "overloaded").await;
            return None;
        }
        return match rx.await {
            Ok(Ok(joined)) => {
                state.metrics.join_result("accepted");
                Some((worker, joined, grants.meeting))
            }
            Ok(Err(refusal)) => {
                state.metrics.join_result(refusal.code.as_str());
                send(ws, &ServerMsg::error(refusal.code, refusal.message)).await;
                close_ref(ws, CLOSE_POLICY, refusal.code.as_str()).await;
                None
            }
            Err(_) => None,
        };
    }
}

/// Sends `redirect` to another edge instead of `joined`, and closes the socket.
async fn redirect(ws: &mut WebSocket, state: &AppState, edge: &EdgeId, http_url: String) {
    state.metrics.join_result("redirected");
    let msg = ServerMsg::Redirect {
        edge_id: edge.to_string(),
        ws_url: relay_proto::endpoints::signaling_url(&http_url),
        url: http_url,
    };
    send(ws, &msg).await;
    close_ref(ws, CLOSE_NORMAL, "redirect").await;
}

/// A `join` while draining: redirected where the meeting's participants now go, or refused
/// (`overloaded`, close 1013: try again later) when no other edge takes it.
async fn refuse_while_draining(ws: &mut WebSocket, state: &AppState, meeting: &MeetingId) {
    if let Some(to) = drain_target(state, meeting).await {
        redirect(ws, state, &to.edge, to.http_url).await;
        return;
    }
    state.metrics.join_result("draining");
    let m = ServerMsg::error(
        ErrorCode::Overloaded,
        "this edge is draining and no other edge takes new joins; retry shortly",
    );
    send(ws, &m).await;
    close_ref(ws, CLOSE_TRY_AGAIN, "draining").await;
}

/// A session's view of the drain: which edge its client was last told to move to.
struct Migration {
    meeting: MeetingId,
    watch: watch::Receiver<Drain>,
    /// The watch's sender is gone (the edge is shutting down): stop polling it.
    closed: bool,
    told: Option<EdgeId>,
}

impl Migration {
    fn new(state: &AppState, meeting: MeetingId) -> Self {
        let mut watch = state.health.watch_drain();
        if watch.borrow().draining {
            // Joined (resumed) during the drain: tell the client at once.
            watch.mark_changed();
        }
        Migration {
            meeting,
            watch,
            closed: false,
            told: None,
        }
    }

    /// Resolves when the drain starts or its target changes.
    async fn changed(&mut self) {
        if self.closed || self.watch.changed().await.is_err() {
            self.closed = true;
            std::future::pending::<()>().await;
        }
    }

    /// The `migrate` to send now: while draining, to a target this client was not yet told.
    async fn message(&mut self, state: &AppState) -> Option<ServerMsg> {
        if !self.watch.borrow_and_update().draining {
            return None;
        }
        let DrainTarget { edge, http_url } = drain_target(state, &self.meeting).await?;
        if self.told.as_ref() == Some(&edge) {
            return None;
        }
        self.told = Some(edge.clone());
        Some(ServerMsg::Migrate {
            edge_id: edge.to_string(),
            ws_url: relay_proto::endpoints::signaling_url(&http_url),
            url: http_url,
            reason: MigrateReason::Draining,
        })
    }
}

enum End {
    /// The client sent `leave`.
    Left,
    /// The worker removed the participant (replaced, timed out, kicked).
    Removed,
    /// The socket went away; the participant may resume.
    Gone,
}

async fn relay(
    ws: &mut WebSocket,
    state: &AppState,
    worker: usize,
    participant: ParticipantId,
    messages: &mut tokio::sync::mpsc::Receiver<Outgoing>,
    drain: &mut Migration,
) -> End {
    loop {
        tokio::select! {
            () = drain.changed() => {
                if let Some(msg) = drain.message(state).await {
                    tracing::debug!(%participant, "told to migrate");
                    if !send(ws, &msg).await {
                        return End::Gone;
                    }
                }
            }
            out = messages.recv() => {
                let Some(msg) = out else { return End::Removed };
                match send_queued(ws, msg, messages).await {
                    Sent::Ok => {}
                    Sent::Fatal => return End::Removed,
                    Sent::Failed => return End::Gone,
                }
            }
            inc = ws.recv() => {
                let text = match inc {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Gone,
                    Some(Ok(Message::Binary(_))) => {
                        send(ws, &ServerMsg::error(ErrorCode::BadMessage, "text frames only")).await;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let msg = match ClientMsg::parse(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        state.metrics.signal_message("malformed");
                        send(ws, &e.to_msg()).await;
                        continue;
                    }
                };
                state.metrics.signal_message("ok");
                let leaving = matches!(msg, ClientMsg::Leave {});
                if state.media.send(worker, Command::Client { participant, msg }).is_err() {
                    send(ws, &ServerMsg::error(ErrorCode::RateLimited, "the edge is busy; message dropped")).await;
                    continue;
                }
                if leaving {
                    return End::Left;
                }
            }
        }
    }
}
