//! [`MediaSession`]: a synthetic participant's UDP socket and [`Client`] before its media task
//! starts, for SDP exchanged by whoever the caller talks to.
//!
//! [`super::connect`] uses it with Arbor's WebSocket signaling; the Janus bench uses it with
//! Janus's HTTP API, where a publisher offers (`create_offer` → Janus's answer →
//! `accept_answer`) and a subscriber answers Janus's offer (`accept_offer`). Then
//! [`MediaSession::start`] spawns the task that pumps datagrams and timers, and returns the
//! [`MediaHandle`] that reads its statistics and stops it.
//!
//! ```no_run
//! # async fn janus_answer(_: &str) -> String { String::new() }
//! # async fn demo() -> Result<(), arbor_loadgen::DriverError> {
//! use std::time::Duration;
//! use arbor_loadgen::{ClientConfig, Epoch, MediaSession};
//!
//! let epoch = Epoch(tokio::time::Instant::now().into_std());
//! let bind = "10.77.0.2:0".parse().unwrap();
//! let mut session = MediaSession::bind(bind, ClientConfig::new(epoch)).await?;
//! let offer = session.create_offer()?;
//! session.accept_answer(&janus_answer(&offer.sdp).await)?;
//! let media = session.start();
//! media.wait_media_connected(Duration::from_secs(5)).await?;
//! println!("{:?}", media.stats().await?.publisher);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use super::media_handle::MediaHandle;
use super::shared::Shared;
use super::task::Task;
use super::{DriverError, Ws};
use crate::client::{Client, ClientConfig, DriverStats, Offer};
use crate::throttle::Throttle;

/// Commands queued from a handle to its task at most.
const MAX_QUEUED_CMDS: usize = 64;

/// A bound socket and a client whose SDP is being negotiated; nothing runs yet.
#[derive(Debug)]
pub struct MediaSession {
    client: Client,
    socket: UdpSocket,
    local: SocketAddr,
    downlink_limit_bps: Option<u64>,
}

fn now_std() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl MediaSession {
    /// Binds the UDP socket at `bind` (port 0 picks one) and makes it the client's only host
    /// candidate. Bind a non-loopback address for peers that ignore loopback (Janus).
    pub async fn bind(bind: SocketAddr, config: ClientConfig) -> Result<Self, DriverError> {
        let socket = UdpSocket::bind(bind).await?;
        let local = socket.local_addr()?;
        let now = now_std();
        let mut client = Client::new(now, config);
        client.add_local_candidate(now, local)?;
        Ok(MediaSession {
            client,
            socket,
            local,
            downlink_limit_bps: None,
        })
    }

    /// The UDP socket's address (our ICE host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The client, to read before the task takes it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Our offer: the configured publications and recv slots.
    pub fn create_offer(&mut self) -> Result<Offer, DriverError> {
        Ok(self.client.create_offer(now_std())?)
    }

    /// Applies the peer's answer to our offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), DriverError> {
        Ok(self.client.accept_answer(now_std(), sdp)?)
    }

    /// Answers the peer's offer; its m-lines become recv slots ([`Client::accept_offer`]).
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, DriverError> {
        Ok(self.client.accept_offer(now_std(), sdp)?)
    }

    /// The downlink limit the task starts with (`None`: unlimited).
    pub fn set_downlink_limit(&mut self, bps: Option<u64>) {
        self.downlink_limit_bps = bps;
    }

    /// Spawns the media task (on the current tokio runtime) without a signaling socket.
    pub fn start(self) -> MediaHandle {
        self.start_with(None, Arc::new(Shared::new()))
    }

    /// Spawns the media task; `ws`, if any, is the signaling socket the task keeps reading.
    pub(super) fn start_with(self, ws: Option<Ws>, shared: Arc<Shared>) -> MediaHandle {
        let now = now_std();
        let mids = self.client.mids();
        let (cmd_tx, cmd_rx) = mpsc::channel(MAX_QUEUED_CMDS);
        let mut throttle = Throttle::new(None);
        throttle.set_rate(now, self.downlink_limit_bps);
        let task = Task {
            client: self.client,
            socket: self.socket,
            local: self.local,
            stats: DriverStats {
                signaling_open: ws.is_some(),
                ..Default::default()
            },
            ws,
            throttle,
            cmds: cmd_rx,
            shared: shared.clone(),
            add_slots_reply: None,
            close_reason: None,
        };
        MediaHandle {
            cmds: cmd_tx,
            shared,
            task: Some(tokio::spawn(task.run())),
            mids: Mutex::new(mids),
            local: self.local,
        }
    }
}
