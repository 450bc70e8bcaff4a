//! The task behind a [`super::ClientHandle`]: pumps UDP, the WebSocket, commands and timers
//! through the sans-IO [`Client`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use str0m::media::Mid;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::Message;

use super::shared::Shared;
use super::{DriverError, Ws, send_msg};
use crate::client::{Client, ClientEvent, ClientStats, DriverStats, Input, Mids, Output};
use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use crate::throttle::Throttle;

/// Datagrams read per wake-up before the task looks at its other inputs.
const MAX_READS_PER_WAKE: usize = 64;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;
/// How long `close` waits for the edge to close the signaling socket after `leave`.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) enum Cmd {
    Send(
        ClientMsg,
        Option<(Mid, bool)>,
        oneshot::Sender<Result<(), DriverError>>,
    ),
    AddSlots(usize, usize, oneshot::Sender<Result<Mids, DriverError>>),
    Stats(oneshot::Sender<ClientStats>),
    SetDownlink(Option<u64>),
    SetSpeaking(bool),
    RequestKeyframe(Mid),
    Close(oneshot::Sender<()>),
}

/// The task behind a [`ClientHandle`].
pub(super) struct Task {
    pub(super) client: Client,
    pub(super) socket: UdpSocket,
    pub(super) local: SocketAddr,
    pub(super) ws: Option<Ws>,
    pub(super) throttle: Throttle<(SocketAddr, Vec<u8>)>,
    pub(super) cmds: mpsc::Receiver<Cmd>,
    pub(super) shared: Arc<Shared>,
    pub(super) add_slots_reply: Option<oneshot::Sender<Result<Mids, DriverError>>>,
    pub(super) stats: DriverStats,
    /// Why the client closed the peer connection itself, if it did.
    pub(super) close_reason: Option<String>,
}

fn now_std() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl Task {
    pub(super) async fn run(mut self) {
        let reason = self.run_loop().await;
        self.shared.stop(reason);
    }

    /// Runs until the handle goes away, `close`, or the peer connection dies; returns why.
    async fn run_loop(&mut self) -> String {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = self.flush();
            if !self.client.is_alive() {
                return self
                    .close_reason
                    .take()
                    .unwrap_or_else(|| "the peer connection closed".into());
            }
            let wake = self
                .throttle
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    None => return "the handle was dropped".into(),
                    Some(Cmd::Close(reply)) => {
                        self.close_ws().await;
                        let _ = reply.send(());
                        return "closed".into();
                    }
                    Some(cmd) => self.handle_cmd(cmd).await,
                },
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = r {
                        self.receive(source, &buf[..n]);
                        for _ in 0..MAX_READS_PER_WAKE {
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, source)) => self.receive(source, &buf[..n]),
                                Err(_) => break,
                            }
                        }
                    }
                }
                msg = next_ws(&mut self.ws) => self.handle_ws(msg).await,
                _ = tokio::time::sleep_until(TokioInstant::from_std(wake)) => {}
            }
            self.advance(deadline);
        }
    }

    fn receive(&mut self, source: SocketAddr, data: &[u8]) {
        self.throttle
            .handle_packet(now_std(), data.len(), (source, data.to_vec()));
    }

    /// Feeds released datagrams to the client, and a timeout once `deadline` has passed.
    fn advance(&mut self, deadline: std::time::Instant) {
        let now = now_std();
        while let Some((source, data)) = self.throttle.poll(now) {
            let input = Input::Datagram {
                source,
                destination: self.local,
                contents: &data,
            };
            if let Err(e) = self.client.handle_input(now, input) {
                self.stats.input_errors += 1;
                tracing::debug!(error = %e, "datagram rejected");
            }
        }
        if now < deadline {
            return;
        }
        if let Err(e) = self.client.handle_input(now, Input::Timeout) {
            self.stats.input_errors += 1;
            tracing::debug!(error = %e, "timeout rejected");
        }
    }

    /// Sends everything queued; returns the client's next deadline.
    fn flush(&mut self) -> std::time::Instant {
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::Connected => {
                    self.shared.media_connected.store(true, Ordering::Release);
                    self.shared.notify.notify_waiters();
                }
                ClientEvent::SrtpRefused {
                    required,
                    negotiated,
                } => {
                    let negotiated = negotiated.map_or("a profile str0m cannot name".into(), |p| {
                        p.name().to_string()
                    });
                    self.close_reason = Some(format!(
                        "DTLS negotiated {negotiated}, but the session is pinned to {required}"
                    ));
                }
                ClientEvent::IceState(_) | ClientEvent::Closed => {}
            }
        }
        loop {
            match self.client.poll_output() {
                Output::Transmit(t) => {
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.stats.udp_send_errors += 1;
                    }
                }
                Output::Timeout(t) => return t,
            }
        }
    }

    async fn handle_cmd(&mut self, cmd: Cmd) {
        let now = now_std();
        match cmd {
            Cmd::Send(msg, expecting, reply) => {
                let r = self.send(&msg).await;
                if let (Ok(()), Some((mid, on))) = (&r, expecting)
                    && let Err(e) = self.client.set_expecting(now, mid, on)
                {
                    tracing::debug!(error = %e, "set_expecting");
                }
                let _ = reply.send(r);
            }
            Cmd::AddSlots(video, audio, reply) => match self.client.add_slots(now, video, audio) {
                Ok(offer) => match self.send(&offer.to_msg()).await {
                    Ok(()) => self.add_slots_reply = Some(reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Cmd::Stats(reply) => {
                let mut stats = self.client.stats(now);
                self.stats.downlink = self.throttle.stats();
                self.stats.downlink_limit_bps = self.throttle.rate();
                stats.driver = self.stats.clone();
                let _ = reply.send(stats);
            }
            Cmd::SetDownlink(bps) => self.throttle.set_rate(now, bps),
            Cmd::SetSpeaking(on) => self.client.set_speaking(on),
            Cmd::RequestKeyframe(mid) => {
                if let Err(e) = self.client.request_keyframe(now, mid) {
                    tracing::debug!(error = %e, "request_keyframe");
                }
            }
            // Handled by the loop.
            Cmd::Close(_) => {}
        }
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), DriverError> {
        let Some(ws) = &mut self.ws else {
            return Err(DriverError::Closed(format!("sending `{msg:?}`")));
        };
        send_msg(ws, msg)
            .await
            .map_err(|e| DriverError::Closed(format!("sending: {e}")))
    }

    async fn handle_ws(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                // Media does not depend on the socket: keep running without it.
                self.ws = None;
                self.stats.signaling_open = false;
                if let Some(reply) = self.add_slots_reply.take() {
                    let _ = reply.send(Err(DriverError::Closed("waiting for `answer`".into())));
                }
                self.shared.notify.notify_waiters();
                return;
            }
            Some(Ok(_)) => return,
        };
        let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
            self.stats.bad_server_messages += 1;
            tracing::warn!(%text, "unparsable server message");
            return;
        };
        let mut consumed = false;
        match &msg {
            ServerMsg::Answer { sdp } if self.client.has_pending_offer() => {
                consumed = true;
                let r = self.client.accept_answer(now_std(), sdp);
                if let Some(reply) = self.add_slots_reply.take() {
                    let _ = reply.send(r.map(|()| self.client.mids()).map_err(DriverError::from));
                }
            }
            ServerMsg::Error {
                code,
                message,
                fatal,
            } if *code == ErrorCode::SdpInvalid => {
                if let Some(reply) = self.add_slots_reply.take() {
                    let _ = reply.send(Err(DriverError::Server {
                        what: "`answer`".into(),
                        code: *code,
                        message: message.clone(),
                        fatal: *fatal,
                    }));
                }
            }
            _ => {}
        }
        self.shared.push(msg, consumed);
    }

    /// Sends `leave` and waits (up to [`LEAVE_TIMEOUT`]) for the edge to close the socket,
    /// reading whatever it still sends. Dropping the socket right after `leave` lets the
    /// edge's next write hit a reset connection before it has read the `leave`, and the
    /// participant would linger for the resume grace period, its session still served.
    async fn close_ws(&mut self) {
        if self.send(&ClientMsg::Leave {}).await.is_ok()
            && let Some(ws) = &mut self.ws
        {
            let closed = async {
                while let Some(Ok(msg)) = ws.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            };
            if tokio::time::timeout(LEAVE_TIMEOUT, closed).await.is_err() {
                let _ = ws.close(None).await;
            }
        }
        self.ws = None;
    }
}

/// The next WebSocket message, or never when the socket is gone.
async fn next_ws(
    ws: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}
