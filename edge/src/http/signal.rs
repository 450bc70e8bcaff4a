//! The meeting signaling WebSocket (`/v1/rtc`, protocol in `docs/signaling.md`).
//!
//! One task per socket: it waits for `join` or `resume`, verifies the token, registers the
//! participant with its meeting's worker, then relays client messages to the worker and the
//! worker's messages to the client. When the socket ends the worker is told, and keeps the
//! participant (and its media) for the resume grace period.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use edge_core::signal::{ClientMsg, ErrorCode, MAX_MESSAGE_BYTES, ServerMsg};
use relay_proto::ParticipantId;
use tokio::sync::oneshot;

use super::{AppState, admission, verify};
use crate::backbone::Where;
use crate::media::{Command, Joined};

/// How long a new socket may take to send `join` or `resume`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// WebSocket close codes (RFC 6455 §7.4.1 and the private range).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TRY_AGAIN: u16 = 1013;

pub(super) async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, state))
}

async fn send(ws: &mut WebSocket, msg: &ServerMsg) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => ws.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => false,
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
    let Some((worker, joined)) = admit(&mut ws, &state).await else {
        return;
    };
    let Joined {
        participant,
        mut messages,
    } = joined;
    state.metrics.signal_connected();
    let reason = relay(&mut ws, &state, worker, participant, &mut messages).await;
    let _ = state
        .media
        .send(worker, Command::SignalClosed { participant });
    match reason {
        End::Left => close(ws, CLOSE_NORMAL, "left").await,
        End::Removed => close(ws, CLOSE_NORMAL, "removed from the meeting").await,
        End::Gone => {}
    }
}

/// Waits for `join`/`resume`; on success returns the worker and the participant.
async fn admit(ws: &mut WebSocket, state: &AppState) -> Option<(usize, Joined)> {
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
        if let Some(placements) = &state.placements
            && let Where::Elsewhere { edge, http_url } = placements.locate(&grants.meeting).await
        {
            state.metrics.join_result("redirected");
            let msg = ServerMsg::Redirect {
                edge_id: edge.to_string(),
                ws_url: relay_proto::endpoints::signaling_url(&http_url),
                url: http_url,
            };
            send(ws, &msg).await;
            close_ref(ws, CLOSE_NORMAL, "redirect").await;
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
                Some((worker, joined))
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
    messages: &mut tokio::sync::mpsc::Receiver<ServerMsg>,
) -> End {
    loop {
        tokio::select! {
            out = messages.recv() => {
                let Some(msg) = out else { return End::Removed };
                let fatal = matches!(msg, ServerMsg::Error { fatal: true, .. });
                if !send(ws, &msg).await {
                    return End::Gone;
                }
                if fatal {
                    return End::Removed;
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
