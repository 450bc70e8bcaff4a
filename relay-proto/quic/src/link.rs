//! A relay link as its owner sees it: a [`LinkHandle`] to send with and a bounded receiver
//! of [`LinkEvent`]s. [`spawn`] starts the task ([`crate::driver`]) that binds a sans-IO
//! [`Session`](relay_proto::Session) to one authenticated QUIC connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::SendDatagramError;
use relay_proto::{CloseCode, Control, Hello, Role, SessionConfig};
use tokio::sync::mpsc;

use crate::endpoint::PeerConnection;

/// Events waiting for the owner. Past it, datagrams are dropped (and counted) and control
/// events wait in the link, which then stops reading the control stream.
pub const EVENT_QUEUE: usize = 1024;
/// Control messages waiting for the link task; [`LinkHandle::send`] waits past it.
pub const COMMAND_QUEUE: usize = 256;

/// How a link behaves.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Our Hello, keep-alive (1 s) and idle timeout (3 s) of the relay session.
    pub session: SessionConfig,
    /// Capacity of the owner's event receiver ([`EVENT_QUEUE`]).
    pub event_capacity: usize,
    /// Capacity of the command queue ([`COMMAND_QUEUE`]).
    pub command_capacity: usize,
}

impl LinkConfig {
    /// Session defaults and the named queue capacities.
    pub fn new(hello: Hello) -> LinkConfig {
        LinkConfig {
            session: SessionConfig::new(hello),
            event_capacity: EVENT_QUEUE,
            command_capacity: COMMAND_QUEUE,
        }
    }
}

/// What happened on a link, in order (datagrams may overtake control events).
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The peer's Hello arrived and its role matches its certificate; always first.
    Up(Hello),
    /// A control message from the peer.
    Message(Control),
    /// A media datagram from the peer (decode with `relay_proto::decode_datagram`).
    Datagram(Bytes),
    /// One RTT sample from the session's Ping/Pong.
    Rtt(Duration),
    /// The link is gone; always last.
    Down(Down),
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq)]
pub enum Down {
    /// Closed with a relay close code, by either side: this session's decision (malformed
    /// input, idle timeout, identity mismatch), the owner's [`LinkHandle::close`], or the
    /// peer's close.
    Closed { code: CloseCode, reason: String },
    /// The connection failed under the relay protocol: QUIC idle timeout, reset, transport or
    /// TLS error, or the local endpoint closed.
    Lost(quinn::ConnectionError),
}

impl Down {
    /// The relay close code, if the link closed with one.
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Down::Closed { code, .. } => Some(*code),
            Down::Lost(_) => None,
        }
    }
}

/// Why [`LinkHandle::send_datagram`] dropped a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramSendError {
    #[error("the link is not up yet (or went down without closing the connection)")]
    NotUp,
    #[error("datagram of {len} bytes is over the link's limit {max:?}")]
    TooLarge { len: usize, max: Option<usize> },
    #[error("the peer does not accept datagrams")]
    Unsupported,
    #[error("the link is closed")]
    Closed,
}

/// Why a control message was not queued (it is handed back).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkSendError {
    #[error("the command queue is full")]
    Full(Box<Control>),
    #[error("the link is closed")]
    Closed(Box<Control>),
}

/// Counters of one link (also exported as metrics, without per-link labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams over the path's size limit, dropped on send.
    pub dropped_too_large: u64,
    /// Received datagrams dropped because the owner's event queue was full.
    pub dropped_owner_full: u64,
    /// Received datagrams dropped because they came before the peer's Hello was checked.
    pub dropped_early: u64,
    /// Owner messages the session refused to encode (a bound broken), dropped.
    pub dropped_invalid: u64,
}

/// State shared between the handle and the link task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) up: AtomicBool,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) dropped_too_large: AtomicU64,
    pub(crate) dropped_owner_full: AtomicU64,
    pub(crate) dropped_early: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
}

impl Shared {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The owner's side of a link: cheap to clone, usable from any task.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub(crate) commands: mpsc::Sender<Control>,
    /// Capacity 1: a close never waits behind queued control messages.
    pub(crate) close: mpsc::Sender<(CloseCode, String)>,
    pub(crate) conn: quinn::Connection,
    pub(crate) peer: Role,
    pub(crate) shared: Arc<Shared>,
}

impl LinkHandle {
    /// The node at the other end, from its certificate.
    pub fn peer(&self) -> &Role {
        &self.peer
    }

    /// Queues a control message, waiting while the queue is full. Messages leave only after
    /// [`LinkEvent::Up`]; one that breaks a protocol bound is dropped and counted.
    pub async fn send(&self, msg: Control) -> Result<(), LinkSendError> {
        self.commands
            .send(msg)
            .await
            .map_err(|e| LinkSendError::Closed(Box::new(e.0)))
    }

    /// Queues a control message without waiting.
    pub fn try_send(&self, msg: Control) -> Result<(), LinkSendError> {
        self.commands.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) => LinkSendError::Full(Box::new(m)),
            mpsc::error::TrySendError::Closed(m) => LinkSendError::Closed(Box::new(m)),
        })
    }

    /// Sends a media datagram now, never waiting: when the send buffer is full quinn drops the
    /// oldest queued datagrams instead. Too large for the path → dropped and counted.
    pub fn send_datagram(&self, datagram: Bytes) -> Result<(), DatagramSendError> {
        if !self.shared.up.load(Ordering::Acquire) {
            return Err(match self.conn.close_reason() {
                Some(_) => DatagramSendError::Closed,
                None => DatagramSendError::NotUp,
            });
        }
        let len = datagram.len();
        match self.conn.send_datagram(datagram) {
            Ok(()) => {
                Shared::bump(&self.shared.datagrams_out);
                Ok(())
            }
            Err(SendDatagramError::TooLarge) => {
                Shared::bump(&self.shared.dropped_too_large);
                metrics::counter!("arbor_relay_datagrams_dropped_total", "reason" => "too_large")
                    .increment(1);
                Err(DatagramSendError::TooLarge {
                    len,
                    max: self.conn.max_datagram_size(),
                })
            }
            Err(SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled) => {
                Err(DatagramSendError::Unsupported)
            }
            Err(SendDatagramError::ConnectionLost(_)) => Err(DatagramSendError::Closed),
        }
    }

    /// Closes the link with `code`; the owner then receives [`Down::Closed`]. Never waits.
    pub fn close(&self, code: CloseCode, reason: &str) {
        // Full: a close is already on its way.
        let _ = self.close.try_send((code, reason.to_owned()));
    }

    /// True once the peer's Hello was checked and until the link closes.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire) && self.conn.close_reason().is_none()
    }

    /// Largest datagram the path takes now (1414 bytes on a 1500-byte MTU path).
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }

    /// quinn's current RTT estimate of the path.
    pub fn rtt(&self) -> Duration {
        self.conn.rtt()
    }

    /// quinn's connection statistics (packets, losses, congestion window, path MTU).
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.conn.stats()
    }

    /// A snapshot of this link's counters.
    pub fn counters(&self) -> LinkCounters {
        let s = &*self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkCounters {
            datagrams_in: get(&s.datagrams_in),
            datagrams_out: get(&s.datagrams_out),
            dropped_too_large: get(&s.dropped_too_large),
            dropped_owner_full: get(&s.dropped_owner_full),
            dropped_early: get(&s.dropped_early),
            dropped_invalid: get(&s.dropped_invalid),
        }
    }
}

/// Starts the link task on the current tokio runtime.
///
/// The owner reads events until [`LinkEvent::Down`]; it should send nothing before
/// [`LinkEvent::Up`] (control messages wait for it, datagrams are refused). Dropping every
/// handle, or the receiver, closes the link with [`CloseCode::Normal`].
pub fn spawn(peer: PeerConnection, cfg: LinkConfig) -> (LinkHandle, mpsc::Receiver<LinkEvent>) {
    let (commands, commands_rx) = mpsc::channel(cfg.command_capacity.max(1));
    let (close, close_rx) = mpsc::channel(1);
    let (events_tx, events) = mpsc::channel(cfg.event_capacity.max(1));
    let shared = Arc::new(Shared::default());
    let handle = LinkHandle {
        commands,
        close,
        conn: peer.conn.clone(),
        peer: peer.identity.clone(),
        shared: shared.clone(),
    };
    let driver = crate::driver::Driver::new(peer, cfg.session, shared, events_tx);
    tokio::spawn(driver.run(commands_rx, close_rx));
    (handle, events)
}
