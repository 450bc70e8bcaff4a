//! [`MediaHandle`]: the caller's side of a running media task, whoever did the signaling.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use str0m::media::Mid;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use super::DriverError;
use super::shared::{Shared, lock};
use super::task::Cmd;
use crate::client::{ClientStats, Mids};

/// A synthetic participant's media task: its UDP socket, its [`crate::Client`] and its
/// timers. [`super::MediaSession::start`] returns one for a session negotiated by someone
/// else (the Janus bench); a [`super::ClientHandle`] holds one for an Arbor participant.
/// Dropping it stops the task (and so the media).
#[derive(Debug)]
pub struct MediaHandle {
    pub(super) cmds: mpsc::Sender<Cmd>,
    pub(super) shared: Arc<Shared>,
    pub(super) task: Option<JoinHandle<()>>,
    pub(super) mids: Mutex<Mids>,
    pub(super) local: SocketAddr,
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl MediaHandle {
    /// Which m-line is what (our publications and recv slots).
    pub fn mids(&self) -> Mids {
        lock(&self.mids).clone()
    }

    /// The UDP socket's address (our ICE host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Why the task stopped, once it has (closed, the peer hung up, a refused SRTP profile).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped()
    }

    pub(super) fn stopped_error(&self) -> DriverError {
        DriverError::Stopped(self.shared.stopped().unwrap_or_else(|| "task ended".into()))
    }

    pub(super) async fn cmd(&self, cmd: Cmd) -> Result<(), DriverError> {
        self.cmds.send(cmd).await.map_err(|_| self.stopped_error())
    }

    /// A snapshot of everything measured.
    pub async fn stats(&self) -> Result<ClientStats, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Stats(tx)).await?;
        rx.await.map_err(|_| self.stopped_error())
    }

    /// Limits the received bit rate (`None` lifts the limit), to emulate a downlink drop.
    pub async fn set_downlink_limit(&self, bps: Option<u64>) -> Result<(), DriverError> {
        self.cmd(Cmd::SetDownlink(bps)).await
    }

    /// Switches the microphone between speaking (-20 dBov) and silent (-127 dBov).
    pub async fn set_speaking(&self, speaking: bool) -> Result<(), DriverError> {
        self.cmd(Cmd::SetSpeaking(speaking)).await
    }

    /// Sends a PLI for slot `mid`.
    pub async fn request_keyframe(&self, mid: Mid) -> Result<(), DriverError> {
        self.cmd(Cmd::RequestKeyframe(mid)).await
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_media_connected(&self, timeout: Duration) -> Result<(), DriverError> {
        let deadline = TokioInstant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.media_connected.load(Ordering::Acquire) {
                return Ok(());
            }
            if let Some(reason) = self.shared.stopped() {
                return Err(DriverError::Stopped(reason));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(DriverError::Timeout {
                    what: "ICE/DTLS to connect".into(),
                    after: timeout,
                });
            }
        }
    }

    /// Sends `leave` if there is a signaling socket, closes the UDP socket and stops the task.
    pub async fn close(mut self) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        Ok(())
    }
}
