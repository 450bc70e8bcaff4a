//! The sans-IO relay session: one per QUIC connection, owning its control stream's bytes.
//!
//! It does the link's own work — the `Hello` handshake, keep-alive `Ping`s, RTT from
//! `Ping`/`Pong`, the idle timeout and the `Goodbye` close — and hands every other message
//! to the caller once the peer's `Hello` is in. It never reads a clock: every input carries
//! `now`, and [`Output::Timeout`] says when to call [`Session::handle_timeout`] next.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::{CloseCode, Control, FrameDecoder, Hello};
use crate::wire::{DecodeError, EncodeError};
use crate::{MAX_FRAME_LEN, MAX_REASON_LEN};

/// Most events waiting for the caller. The caller drains after every call, and one call of
/// at most 64 KiB of stream bytes yields at most a few thousand; past this the peer is
/// flooding, and the session closes with [`CloseCode::Overloaded`].
pub const MAX_EVENTS: usize = 16 * 1024;
/// Pings remembered for RTT; a Pong for an older one is ignored.
pub const MAX_PINGS_IN_FLIGHT: usize = 8;
/// How far ahead the [`Output::Timeout`] of a closed session lies (nothing is left to do).
const CLOSED_TIMEOUT: Duration = Duration::from_secs(3600);

/// How a session behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Ours, sent first. Its `version` is the one we require of the peer.
    pub hello: Hello,
    /// Interval between keep-alive Pings (which also measure RTT).
    pub keepalive: Duration,
    /// Close with [`CloseCode::IdleTimeout`] after this long without a byte from the peer.
    pub idle_timeout: Duration,
    /// Frames [`Session::send`] may queue between two [`Session::poll_output`] drains.
    pub max_queued: usize,
}

impl SessionConfig {
    /// Defaults: keep-alive 1 s, idle timeout 3 s, 4096 queued frames.
    pub fn new(hello: Hello) -> SessionConfig {
        SessionConfig {
            hello,
            keepalive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            max_queued: 4096,
        }
    }
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames that did not decode (each closed the session).
    pub malformed: u64,
    /// Pings sent.
    pub pings: u64,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the control stream, in order.
    Stream(Vec<u8>),
    Event(SessionEvent),
    /// Close the QUIC connection with application error `code.code()` and `reason`; the
    /// session is finished and returns nothing more but far-away timeouts. A `Goodbye` with
    /// the same code was queued just before (as `Stream` bytes) when we are the closing side.
    Close {
        code: CloseCode,
        reason: String,
    },
    /// Call [`Session::handle_timeout`] at this instant (or earlier, harmlessly).
    Timeout(Instant),
}

/// What happened on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The peer's valid `Hello` arrived. The shell now checks `role` against the peer's
    /// certificate (and calls [`Session::close`] with [`CloseCode::Unauthorized`] if it lies).
    Established(Hello),
    /// A message for the caller (anything but Hello, Ping, Pong and Goodbye).
    Message(Control),
    /// One RTT sample (the smoothed value is [`Session::rtt`]).
    Rtt(Duration),
}

/// Why [`Session::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("session is closed")]
    Closed,
    #[error("send queue is full")]
    QueueFull,
    #[error("message breaks a protocol bound: {0}")]
    TooLarge(EncodeError),
    /// Hello, Ping, Pong and Goodbye belong to the session (close with [`Session::close`]).
    #[error("link messages are sent by the session itself")]
    NotAllowed,
}

#[derive(Debug)]
enum State {
    Open,
    /// Decided to close; [`Output::Close`] not yet returned.
    Closing {
        code: CloseCode,
        reason: String,
    },
    Closed,
}

/// One relay link (see the module docs and the crate docs for the driving loop).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    decoder: FrameDecoder,
    peer: Option<Hello>,
    state: State,
    /// Encoded frames not yet handed out, and how many.
    tx: Vec<u8>,
    tx_frames: usize,
    events: VecDeque<SessionEvent>,
    /// The latest `now` given.
    now: Instant,
    last_recv: Instant,
    next_ping: Instant,
    pings: VecDeque<(u64, Instant)>,
    next_nonce: u64,
    srtt: Option<Duration>,
    stats: SessionStats,
}

impl Session {
    /// A session whose first output is our `Hello`.
    pub fn new(now: Instant, cfg: SessionConfig) -> Session {
        let hello = Control::Hello(cfg.hello.clone());
        let mut s = Session {
            decoder: FrameDecoder::new(),
            peer: None,
            state: State::Open,
            tx: Vec::new(),
            tx_frames: 0,
            events: VecDeque::new(),
            now,
            last_recv: now,
            next_ping: now + cfg.keepalive,
            pings: VecDeque::new(),
            next_nonce: 0,
            srtt: None,
            stats: SessionStats::default(),
            cfg,
        };
        // Ids are validated on construction, so a Hello is always within every bound.
        s.write(&hello).expect("a Hello always encodes");
        s
    }

    /// Bytes read from the control stream, split anywhere.
    pub fn handle_stream(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        if self.is_closed() {
            return;
        }
        self.stats.bytes_in += bytes.len() as u64;
        self.last_recv = now;
        // Chunks of at most one frame keep the decoder within its buffer bound.
        for chunk in bytes.chunks(MAX_FRAME_LEN + 4) {
            self.decoder.push(chunk);
            loop {
                match self.decoder.next() {
                    Ok(Some(msg)) => {
                        self.stats.frames_in += 1;
                        self.handle_message(now, msg);
                        if self.is_closed() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.stats.malformed += 1;
                        let code = self.close_code(&e);
                        self.close(code, &e.to_string());
                        return;
                    }
                }
            }
        }
    }

    /// Time passed: sends keep-alives, detects a silent peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.is_closed() {
            return;
        }
        if now >= self.last_recv + self.cfg.idle_timeout {
            let ms = self.cfg.idle_timeout.as_millis();
            self.close(
                CloseCode::IdleTimeout,
                &format!("nothing received for {ms} ms"),
            );
        } else if now >= self.next_ping {
            self.send_ping(now);
        }
    }

    /// Queues a message. Allowed before the handshake completes: it follows our `Hello` on
    /// the stream, and the peer reads it after its own.
    pub fn send(&mut self, msg: &Control) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        if matches!(
            msg,
            Control::Hello(_)
                | Control::Ping { .. }
                | Control::Pong { .. }
                | Control::Goodbye { .. }
        ) {
            return Err(SendError::NotAllowed);
        }
        if self.tx_frames >= self.cfg.max_queued {
            return Err(SendError::QueueFull);
        }
        self.write(msg).map_err(SendError::TooLarge)
    }

    /// Closes the link: queues a `Goodbye` with `code` and `reason` (cut to
    /// [`MAX_REASON_LEN`] bytes), then [`Output::Close`]. Does nothing if already closed.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.is_closed() {
            return;
        }
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = reason[..end].to_owned();
        let goodbye = Control::Goodbye {
            code,
            reason: reason.clone(),
        };
        // The reason is cut to its bound, so a Goodbye always encodes.
        self.write(&goodbye).expect("a Goodbye always encodes");
        self.state = State::Closing { code, reason };
    }

    /// The next thing to do; call until it returns [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if !self.tx.is_empty() {
            self.tx_frames = 0;
            return Output::Stream(std::mem::take(&mut self.tx));
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Open => self.state = State::Open,
            State::Closing { code, reason } => return Output::Close { code, reason },
            State::Closed => return Output::Timeout(self.now + CLOSED_TIMEOUT),
        }
        Output::Timeout(self.next_ping.min(self.last_recv + self.cfg.idle_timeout))
    }

    /// The peer's `Hello`, once received.
    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    /// Smoothed RTT (RFC 6298: srtt ← 7/8 srtt + 1/8 sample), once a Pong came back.
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// True from the moment the session decides to close (even before [`Output::Close`]
    /// is polled).
    pub fn is_closed(&self) -> bool {
        !matches!(self.state, State::Open)
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    fn handle_message(&mut self, now: Instant, msg: Control) {
        if self.peer.is_none() {
            match msg {
                Control::Hello(hello) => self.handle_hello(now, hello),
                other => {
                    let why = format!("message type {} before Hello", other.ty());
                    self.close(CloseCode::ProtocolViolation, &why);
                }
            }
            return;
        }
        match msg {
            Control::Hello(_) => self.close(CloseCode::ProtocolViolation, "second Hello"),
            Control::Ping { nonce } => {
                // A peer that pings faster than we are drained gets fewer answers.
                if self.tx_frames < self.cfg.max_queued {
                    self.write_link(&Control::Pong { nonce });
                }
            }
            Control::Pong { nonce } => self.handle_pong(now, nonce),
            Control::Goodbye { code, reason } => self.state = State::Closing { code, reason },
            other => self.push_event(SessionEvent::Message(other)),
        }
    }

    fn handle_hello(&mut self, now: Instant, hello: Hello) {
        let ours = self.cfg.hello.version;
        if hello.version != ours {
            let why = format!("peer speaks version {}, we speak {ours}", hello.version);
            self.close(CloseCode::VersionMismatch, &why);
            return;
        }
        self.peer = Some(hello.clone());
        self.push_event(SessionEvent::Established(hello));
        // A first RTT sample now rather than a keep-alive interval later.
        self.send_ping(now);
    }

    fn handle_pong(&mut self, now: Instant, nonce: u64) {
        let Some(i) = self.pings.iter().position(|&(n, _)| n == nonce) else {
            return;
        };
        let sent = self.pings[i].1;
        // Pings older than this one lost their Pong (or it is still coming, out of order:
        // a stream keeps order, so it is not).
        self.pings.drain(..=i);
        let sample = now.saturating_duration_since(sent);
        self.srtt = Some(match self.srtt {
            None => sample,
            Some(srtt) => srtt * 7 / 8 + sample / 8,
        });
        self.push_event(SessionEvent::Rtt(sample));
    }

    fn send_ping(&mut self, now: Instant) {
        self.next_ping = now + self.cfg.keepalive;
        if self.tx_frames >= self.cfg.max_queued {
            return; // the shell is not draining; a ping would only add to the pile
        }
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.write_link(&Control::Ping { nonce });
        self.pings.push_back((nonce, now));
        if self.pings.len() > MAX_PINGS_IN_FLIGHT {
            self.pings.pop_front();
        }
        self.stats.pings += 1;
    }

    fn push_event(&mut self, event: SessionEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.close(CloseCode::Overloaded, "event queue full");
            return;
        }
        self.events.push_back(event);
    }

    /// Writes a fixed-size link message (Ping, Pong), which always encodes.
    fn write_link(&mut self, msg: &Control) {
        self.write(msg).expect("Ping and Pong always encode");
    }

    fn write(&mut self, msg: &Control) -> Result<(), EncodeError> {
        let before = self.tx.len();
        msg.encode(&mut self.tx)?;
        self.stats.frames_out += 1;
        self.stats.bytes_out += (self.tx.len() - before) as u64;
        self.tx_frames += 1;
        Ok(())
    }

    fn close_code(&self, e: &DecodeError) -> CloseCode {
        match e {
            DecodeError::FrameTooLarge { .. } => CloseCode::FrameTooLarge,
            DecodeError::UnknownType(_) => CloseCode::ProtocolViolation,
            DecodeError::Version(_) if self.peer.is_none() => CloseCode::VersionMismatch,
            DecodeError::Version(_) => CloseCode::ProtocolViolation,
            _ => CloseCode::Malformed,
        }
    }
}
