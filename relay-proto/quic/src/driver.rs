//! The link task: one `select!` loop that feeds a sans-IO `Session` from one QUIC connection
//! and carries out what it says.
//!
//! Inputs: control-stream bytes → `handle_stream`; the session's timer → `handle_timeout`;
//! owner messages → `send`; a close request → `close`. Outputs, drained after every input:
//! `Stream` bytes → the control stream (buffered, written as the stream accepts them);
//! `Event`s → the owner; `Close` → `conn.close(code)`. Datagrams bypass the session: they go
//! straight from `conn.read_datagram()` to the owner, dropped (and counted) when the owner's
//! queue is full, so a slow owner never stalls the link.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, Side, VarInt, WriteError};
use relay_proto::{CloseCode, Control, Hello, Output, SendError, Session, SessionConfig};
use relay_proto::{Role, SessionEvent};
use tokio::sync::mpsc;

use crate::endpoint::{PeerConnection, connection_failure_reason, side_label, tls_alert};
use crate::link::{Down, LinkEvent, Shared};

/// Bytes read from the control stream per wake-up.
pub const READ_CHUNK: usize = 16 * 1024;
/// Control events held while the owner's queue is full. At this many the link stops reading
/// the control stream (QUIC flow control then slows the peer); one read can overshoot it by
/// the messages in [`READ_CHUNK`] bytes.
pub const MAX_PENDING_EVENTS: usize = 1024;
/// Control-stream bytes the stream has not taken yet. Above it the link stops taking owner
/// messages, so [`crate::LinkHandle::send`] waits.
pub const MAX_UNSENT_BYTES: usize = 1 << 20;

/// One link's state, owned by its task.
pub(crate) struct Driver {
    conn: quinn::Connection,
    identity: Role,
    side: Side,
    cfg: SessionConfig,
    shared: Arc<Shared>,
    events: mpsc::Sender<LinkEvent>,
    /// Control events waiting for room in `events`.
    pending: VecDeque<LinkEvent>,
    /// Session bytes not yet taken by the control stream.
    unsent: BytesMut,
    deadline: Instant,
}

/// Why the loop ended, before it is reported as [`Down`].
enum Stop {
    Down(Down),
    /// The owner dropped its receiver: nobody to tell.
    OwnerGone,
}

impl Driver {
    pub(crate) fn new(
        peer: PeerConnection,
        cfg: SessionConfig,
        shared: Arc<Shared>,
        events: mpsc::Sender<LinkEvent>,
    ) -> Driver {
        Driver {
            conn: peer.conn,
            identity: peer.identity,
            side: peer.side,
            cfg,
            shared,
            events,
            pending: VecDeque::new(),
            unsent: BytesMut::new(),
            deadline: Instant::now(),
        }
    }

    pub(crate) async fn run(
        mut self,
        commands: mpsc::Receiver<Control>,
        close: mpsc::Receiver<(CloseCode, String)>,
    ) {
        let stop = match self.open_stream().await {
            Ok((send, recv)) => self.drive(send, recv, commands, close).await,
            Err(stop) => stop,
        };
        self.shared.up.store(false, Ordering::Release);
        let Stop::Down(down) = stop else {
            return;
        };
        let remote = self.conn.remote_address();
        tracing::info!(%remote, peer = ?self.identity, ?down, "relay link down");
        // Control events are reliable: the owner gets them all, then Down.
        for event in self.pending.drain(..).chain([LinkEvent::Down(down)]) {
            if self.events.send(event).await.is_err() {
                return;
            }
        }
    }

    /// The dialer opens the control stream; the acceptor waits for it (as long as the idle
    /// timeout: a dialer that never opens it is dead to us).
    async fn open_stream(&mut self) -> Result<(SendStream, RecvStream), Stop> {
        let opened = match self.side {
            Side::Client => self.conn.open_bi().await,
            Side::Server => {
                match tokio::time::timeout(self.cfg.idle_timeout, self.conn.accept_bi()).await {
                    Ok(opened) => opened,
                    Err(_) => {
                        let reason = "no control stream";
                        return Err(Stop::Down(self.close_conn(CloseCode::IdleTimeout, reason)));
                    }
                }
            }
        };
        opened.map_err(|e| Stop::Down(self.lost(e)))
    }

    async fn drive(
        &mut self,
        mut send: SendStream,
        mut recv: RecvStream,
        mut commands: mpsc::Receiver<Control>,
        mut close: mpsc::Receiver<(CloseCode, String)>,
    ) -> Stop {
        let mut session = Session::new(Instant::now(), self.cfg.clone());
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        loop {
            if let Some(stop) = self.drain(&mut session) {
                return stop;
            }
            timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(self.deadline));
            let up = self.shared.up.load(Ordering::Acquire);
            // Unbiased: a flood on one input (datagrams, say) cannot starve the others.
            tokio::select! {
                req = close.recv() => match req {
                    Some((code, reason)) => session.close(code, &reason),
                    None => session.close(CloseCode::Normal, "link handle dropped"),
                },
                // An owned permit: a borrowed one would hold `self` across the handler.
                permit = self.events.clone().reserve_owned(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => session.close(CloseCode::Normal, "link owner gone"),
                },
                () = self.events.closed() => session.close(CloseCode::Normal, "link owner gone"),
                () = &mut timer => session.handle_timeout(Instant::now()),
                read = recv.read_chunk(READ_CHUNK, true),
                    if self.pending.len() < MAX_PENDING_EVENTS =>
                {
                    match read {
                        Ok(Some(chunk)) => session.handle_stream(Instant::now(), &chunk.bytes),
                        Ok(None) => session.close(CloseCode::ProtocolViolation, "control stream finished"),
                        Err(ReadError::ConnectionLost(e)) => {
                            return self.stream_failed(&mut session, Some(e), "");
                        }
                        Err(e) => return self.stream_failed(&mut session, None, &e.to_string()),
                    }
                }
                datagram = self.conn.read_datagram() => match datagram {
                    Ok(bytes) => {
                        if let Err(stop) = self.deliver_datagram(bytes) {
                            return stop;
                        }
                    }
                    Err(e) => return Stop::Down(self.lost(e)),
                },
                written = send.write(&self.unsent), if !self.unsent.is_empty() => match written {
                    Ok(n) => self.unsent.advance(n),
                    Err(WriteError::ConnectionLost(e)) => {
                        return self.stream_failed(&mut session, Some(e), "");
                    }
                    Err(e) => return self.stream_failed(&mut session, None, &e.to_string()),
                },
                cmd = commands.recv(), if up && self.unsent.len() < MAX_UNSENT_BYTES => match cmd {
                    Some(msg) => self.send_message(&mut session, &msg),
                    None => session.close(CloseCode::Normal, "link handle dropped"),
                },
            }
        }
    }

    /// Carries out the session's outputs until its next timeout; `Some` once it closed.
    fn drain(&mut self, session: &mut Session) -> Option<Stop> {
        loop {
            match session.poll_output() {
                Output::Stream(bytes) => self.unsent.extend_from_slice(&bytes),
                Output::Event(SessionEvent::Established(hello)) => self.established(session, hello),
                Output::Event(SessionEvent::Message(msg)) => {
                    self.pending.push_back(LinkEvent::Message(msg));
                }
                Output::Event(SessionEvent::Rtt(rtt)) => {
                    self.pending.push_back(LinkEvent::Rtt(rtt));
                }
                Output::Close { code, reason } => {
                    return Some(Stop::Down(self.close_conn(code, &reason)));
                }
                Output::Timeout(at) => {
                    self.deadline = at;
                    return None;
                }
            }
        }
    }

    /// The peer's Hello passed the session; its role must be the one its certificate names.
    fn established(&mut self, session: &mut Session, hello: Hello) {
        if hello.role != self.identity {
            let remote = self.conn.remote_address();
            let side = side_label(self.side);
            tracing::warn!(%remote, side, certificate = ?self.identity, hello = ?hello.role,
                "relay peer claims another identity than its certificate");
            metrics::counter!("arbor_relay_handshake_failures_total",
                "reason" => "role_mismatch", "side" => side)
            .increment(1);
            session.close(
                CloseCode::Unauthorized,
                "Hello role does not match the certificate",
            );
            return;
        }
        self.shared.up.store(true, Ordering::Release);
        self.pending.push_back(LinkEvent::Up(hello));
    }

    fn send_message(&mut self, session: &mut Session, msg: &Control) {
        match session.send(msg) {
            Ok(()) | Err(SendError::Closed) => {}
            Err(SendError::QueueFull) => session.close(CloseCode::Overloaded, "send queue full"),
            Err(e @ (SendError::TooLarge(_) | SendError::NotAllowed)) => {
                Shared::bump(&self.shared.dropped_invalid);
                tracing::warn!(peer = ?self.identity, error = %e, ty = msg.ty(),
                    "relay message dropped");
            }
        }
    }

    fn deliver_datagram(&mut self, bytes: bytes::Bytes) -> Result<(), Stop> {
        if !self.shared.up.load(Ordering::Acquire) {
            Shared::bump(&self.shared.dropped_early);
            count_dropped("early");
            return Ok(());
        }
        Shared::bump(&self.shared.datagrams_in);
        match self.events.try_send(LinkEvent::Datagram(bytes)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Shared::bump(&self.shared.dropped_owner_full);
                count_dropped("owner_full");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.close_conn(CloseCode::Normal, "link owner gone");
                Err(Stop::OwnerGone)
            }
        }
    }

    /// The control stream failed: a lost connection is reported as such; anything else (the
    /// peer reset or stopped its side) breaks the protocol.
    fn stream_failed(
        &mut self,
        session: &mut Session,
        lost: Option<ConnectionError>,
        why: &str,
    ) -> Stop {
        if let Some(e) = lost {
            return Stop::Down(self.lost(e));
        }
        session.close(
            CloseCode::ProtocolViolation,
            &format!("control stream: {why}"),
        );
        self.drain(session)
            .unwrap_or_else(|| Stop::Down(self.lost(ConnectionError::LocallyClosed)))
    }

    /// Closes the connection with a relay close code. QUIC discards unsent stream data, so
    /// the session's Goodbye is not awaited: the close frame carries the same code and reason.
    fn close_conn(&mut self, code: CloseCode, reason: &str) -> Down {
        self.conn
            .close(VarInt::from_u32(code.code()), reason.as_bytes());
        Down::Closed {
            code,
            reason: reason.to_owned(),
        }
    }

    /// The connection ended under us. A peer's relay close code is reported as such; a TLS
    /// failure before the Hello is counted as a refused handshake (the dialer only learns that
    /// the acceptor refused its certificate after its own side of the handshake completed).
    fn lost(&self, e: ConnectionError) -> Down {
        if let ConnectionError::ApplicationClosed(close) = &e {
            let code = u32::try_from(close.error_code.into_inner())
                .ok()
                .and_then(CloseCode::from_code);
            if let Some(code) = code {
                let reason = String::from_utf8_lossy(&close.reason).into_owned();
                return Down::Closed { code, reason };
            }
        }
        if tls_alert(&e).is_some() && !self.shared.up.load(Ordering::Acquire) {
            let reason = connection_failure_reason(&e);
            let remote = self.conn.remote_address();
            let side = side_label(self.side);
            tracing::warn!(%remote, side, reason, error = %e, "relay handshake refused by peer");
            metrics::counter!("arbor_relay_handshake_failures_total",
                "reason" => reason, "side" => side)
            .increment(1);
        }
        Down::Lost(e)
    }
}

fn count_dropped(reason: &'static str) {
    metrics::counter!("arbor_relay_datagrams_dropped_total", "reason" => reason).increment(1);
}
