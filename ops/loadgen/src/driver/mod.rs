//! The tokio driver: one synthetic participant against a real edge (or, signaled by someone
//! else, against any SFU: [`MediaSession`]).
//!
//! [`connect`] speaks the signaling protocol over a WebSocket to the edge's `/v1/rtc` (`join`,
//! `joined`, `offer`, `answer`), binds a UDP socket (on loopback by default) as the client's
//! only host candidate, and spawns a task that pumps UDP datagrams, WebSocket messages, handle
//! commands and timers through a sans-IO [`Client`]. The returned [`ClientHandle`] talks to that
//! task; dropping the handle stops it.
//!
//! Received UDP passes a [`Throttle`] first, so a test can squeeze the downlink
//! ([`ClientHandle::set_downlink_limit`]) and watch the edge's bandwidth estimate react.
//!
//! Every server message is kept (bounded) in arrival order: [`ClientHandle::wait_for`] finds the
//! first one not yet returned that matches, including messages that arrived before the call, so
//! tests do not race the edge.
//!
//! [`MediaSession`] is the same media task without Arbor's signaling: the caller exchanges SDP
//! (as offerer or answerer) and gets a [`MediaHandle`] with the same statistics;
//! [`ClientHandle::media`] is that handle for an Arbor participant.
//!
//! ```no_run
//! # async fn demo(url: &str, pub_token: &str, sub_token: &str) -> Result<(), arbor_loadgen::DriverError> {
//! use std::time::Duration;
//! use arbor_loadgen::protocol::{Kind, ServerMsg};
//! use arbor_loadgen::{ClientConfig, Epoch, connect};
//!
//! let epoch = Epoch(tokio::time::Instant::now().into_std()); // shared: latency is comparable
//! let publisher = connect(url, pub_token, ClientConfig::new(epoch)).await?;
//! let viewer = connect(url, sub_token, ClientConfig::subscriber(epoch, 1, 0)).await?;
//! let published = viewer
//!     .wait_for_named("the camera", |m| matches!(m, ServerMsg::TrackPublished { track }
//!         if track.kind == Kind::Video), Duration::from_secs(5))
//!     .await?;
//! let ServerMsg::TrackPublished { track } = published else { unreachable!() };
//! let slot = viewer.mids().video_slots[0];
//! viewer.subscribe(track.id, slot, Some(1280), Some(720)).await?;
//! // ... later: what a browser would have shown in that tile.
//! let stats = viewer.stats().await?;
//! println!("{:?} frames, {:?} freezes", stats.slots[0].frames_rendered, stats.slots[0].freezes);
//! viewer.set_downlink_limit(Some(300_000)).await?; // the edge should step the layer down
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant as TokioInstant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::ClientConfig;
use crate::error::ClientError;
use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use shared::Shared;

/// The signaling socket's read buffer (see `connect`).
const READ_BUFFER_BYTES: usize = 4096;

mod handle;
mod media_handle;
mod session;
mod shared;
mod task;

pub use handle::ClientHandle;
pub use media_handle::MediaHandle;
pub use session::MediaSession;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Server messages kept for [`ClientHandle::wait_for`]; older ones are forgotten.
pub const MAX_LOGGED_MESSAGES: usize = 4096;

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The WebSocket could not be opened or broke.
    #[error("websocket to {url}: {reason}")]
    WebSocket {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Something awaited did not come in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// The edge answered with an `error` message.
    #[error("edge error {code} while waiting for {what}: {message}{}", if *.fatal { " (fatal)" } else { "" })]
    Server {
        /// What was awaited.
        what: String,
        /// Error code.
        code: ErrorCode,
        /// Detail.
        message: String,
        /// Whether the edge closes the socket.
        fatal: bool,
    },
    /// The signaling socket closed.
    #[error("signaling socket closed while {0}")]
    Closed(String),
    /// The sans-IO client refused.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The driver task is gone (closed, or the peer connection died).
    #[error("client task has stopped: {0}")]
    Stopped(String),
}

/// Driver-level settings, next to the [`ClientConfig`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Address the UDP socket binds (port 0 picks one); it becomes the host candidate.
    pub bind: SocketAddr,
    /// How long to wait for the socket, `joined` and `answer`.
    pub signal_timeout: Duration,
    /// Initial downlink limit.
    pub downlink_limit_bps: Option<u64>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            signal_timeout: Duration::from_secs(10),
            downlink_limit_bps: None,
        }
    }
}

/// Joins the meeting named by `token` on the edge at `edge_ws_url` (`ws://host:port`, with or
/// without the `/v1/rtc` path) and starts the media task. See [`connect_with`].
pub async fn connect(
    edge_ws_url: &str,
    token: &str,
    config: ClientConfig,
) -> Result<ClientHandle, DriverError> {
    connect_with(edge_ws_url, token, config, ConnectOptions::default()).await
}

/// [`connect`] with driver options.
pub async fn connect_with(
    edge_ws_url: &str,
    token: &str,
    config: ClientConfig,
    options: ConnectOptions,
) -> Result<ClientHandle, DriverError> {
    let url = rtc_url(edge_ws_url);
    let timeout = options.signal_timeout;
    let ws_err = |reason: String| DriverError::WebSocket {
        url: url.clone(),
        reason,
    };
    // tungstenite zero-fills its read buffer before every read; the default 128 KiB made that
    // memset a large share of a thousand clients' CPU, for messages of a few hundred bytes.
    let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES);
    let connect =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), false);
    let (mut ws, _) = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| DriverError::Timeout {
            what: format!("the websocket to {url}"),
            after: timeout,
        })?
        .map_err(|e| ws_err(e.to_string()))?;
    let shared = Arc::new(Shared::new());

    let join = ClientMsg::Join {
        token: token.to_string(),
        name: config.name.clone(),
    };
    send_msg(&mut ws, &join)
        .await
        .map_err(|e| ws_err(e.to_string()))?;
    let joined = await_msg(&mut ws, &shared, "joined", timeout, |m| {
        matches!(m, ServerMsg::Joined(_))
    })
    .await?;
    let ServerMsg::Joined(snapshot) = joined else {
        unreachable!("await_msg returned a message its predicate rejected");
    };

    let mut session = MediaSession::bind(options.bind, config).await?;
    session.set_downlink_limit(options.downlink_limit_bps);
    let offer = session.create_offer()?;
    send_msg(&mut ws, &offer.to_msg())
        .await
        .map_err(|e| ws_err(e.to_string()))?;
    let answer = await_msg(&mut ws, &shared, "answer", timeout, |m| {
        matches!(m, ServerMsg::Answer { .. })
    })
    .await?;
    if let ServerMsg::Answer { sdp } = answer {
        session.accept_answer(&sdp)?;
    }
    Ok(ClientHandle {
        media: session.start_with(Some(ws), shared),
        snapshot: *snapshot,
    })
}

/// `ws://host:port` → `ws://host:port/v1/rtc`; `http(s)` becomes `ws(s)`.
fn rtc_url(base: &str) -> String {
    let url = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        base.to_string()
    };
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    if after_scheme.trim_end_matches('/').contains('/') {
        url
    } else {
        format!("{}/v1/rtc", url.trim_end_matches('/'))
    }
}

async fn send_msg(
    ws: &mut Ws,
    msg: &ClientMsg,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    // Serializing our own message types cannot fail.
    let text = serde_json::to_string(msg).unwrap_or_default();
    ws.send(Message::text(text)).await
}

/// Reads the socket until a message matching `pred` arrives; logs everything it reads.
async fn await_msg(
    ws: &mut Ws,
    shared: &Shared,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&ServerMsg) -> bool,
) -> Result<ServerMsg, DriverError> {
    let deadline = TokioInstant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| DriverError::Timeout {
                what: format!("`{what}`"),
                after: timeout,
            })?;
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                return Err(DriverError::Closed(format!("waiting for `{what}`")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(DriverError::Closed(format!("waiting for `{what}`: {e}"))),
        };
        let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
            tracing::warn!(%text, "unparsable server message");
            continue;
        };
        if let ServerMsg::Error {
            code,
            message,
            fatal,
        } = &msg
        {
            shared.push(msg.clone(), true);
            return Err(DriverError::Server {
                what: format!("`{what}`"),
                code: *code,
                message: message.clone(),
                fatal: *fatal,
            });
        }
        let hit = pred(&msg);
        shared.push(msg.clone(), hit);
        if hit {
            return Ok(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_rtc_path() {
        assert_eq!(rtc_url("ws://127.0.0.1:7880"), "ws://127.0.0.1:7880/v1/rtc");
        assert_eq!(
            rtc_url("ws://127.0.0.1:7880/"),
            "ws://127.0.0.1:7880/v1/rtc"
        );
        assert_eq!(rtc_url("http://h:1"), "ws://h:1/v1/rtc");
        assert_eq!(rtc_url("ws://h:1/v1/rtc"), "ws://h:1/v1/rtc");
        assert_eq!(rtc_url("wss://h/custom/path"), "wss://h/custom/path");
    }
}
