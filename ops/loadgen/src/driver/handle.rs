//! [`ClientHandle`]: the caller's side of a connected synthetic participant.

use std::net::SocketAddr;
use std::time::Duration;

use relay_proto::{ParticipantId, TrackId};
use str0m::media::Mid;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant as TokioInstant;

use super::DriverError;
use super::media_handle::MediaHandle;
use super::shared::lock;
use super::task::Cmd;
use crate::client::{ClientStats, Mids};
use crate::protocol::{ClientMsg, ServerMsg, Snapshot};

/// A connected synthetic participant: its media task plus the meeting signaling. Dropping it
/// stops the task (and so its media).
#[derive(Debug)]
pub struct ClientHandle {
    pub(super) media: MediaHandle,
    pub(super) snapshot: Snapshot,
}

impl ClientHandle {
    /// The `joined` snapshot: who we are, who else is there, their tracks.
    pub fn joined(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Our participant id.
    pub fn participant_id(&self) -> ParticipantId {
        self.snapshot.participant.id
    }

    /// Which m-line is what (our publications and recv slots).
    pub fn mids(&self) -> Mids {
        self.media.mids()
    }

    /// The UDP socket's address (our ICE host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.media.local_addr()
    }

    /// The media task alone (stats, downlink limit, keyframes), as for a session negotiated
    /// without Arbor's signaling.
    pub fn media(&self) -> &MediaHandle {
        &self.media
    }

    /// Keeps the media task (and the signaling socket it holds) and drops the meeting
    /// bookkeeping, so Arbor participants and others can be driven as one fleet.
    pub fn into_media(self) -> MediaHandle {
        self.media
    }

    async fn send_tracked(
        &self,
        msg: ClientMsg,
        expecting: Option<(Mid, bool)>,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.media.cmd(Cmd::Send(msg, expecting, tx)).await?;
        rx.await.map_err(|_| self.media.stopped_error())?
    }

    /// Sends any message (no slot bookkeeping).
    pub async fn send(&self, msg: ClientMsg) -> Result<(), DriverError> {
        self.send_tracked(msg, None).await
    }

    /// Shows `track_id` in recv slot `mid`; the slot starts measuring time to first frame.
    pub async fn subscribe(
        &self,
        track_id: TrackId,
        mid: Mid,
        max_width: Option<u32>,
        max_height: Option<u32>,
    ) -> Result<(), DriverError> {
        let msg = ClientMsg::Subscribe {
            track_id,
            mid: mid.to_string(),
            max_width,
            max_height,
        };
        self.send_tracked(msg, Some((mid, max_height != Some(0))))
            .await
    }

    /// Changes the wanted size of slot `mid`; `max_height: Some(0)` pauses it (no freezes
    /// counted while paused).
    pub async fn update_subscription(
        &self,
        mid: Mid,
        max_width: Option<u32>,
        max_height: Option<u32>,
    ) -> Result<(), DriverError> {
        let msg = ClientMsg::UpdateSubscription {
            mid: mid.to_string(),
            max_width,
            max_height,
        };
        self.send_tracked(msg, Some((mid, max_height != Some(0))))
            .await
    }

    /// Frees slot `mid`.
    pub async fn unsubscribe(&self, mid: Mid) -> Result<(), DriverError> {
        let msg = ClientMsg::Unsubscribe {
            mid: mid.to_string(),
        };
        self.send_tracked(msg, Some((mid, false))).await
    }

    /// Sends a chat message.
    pub async fn chat(&self, text: &str) -> Result<(), DriverError> {
        self.send(ClientMsg::Chat {
            text: text.to_string(),
        })
        .await
    }

    /// Marks one of our tracks muted (UI state; media continues).
    pub async fn mute(&self, track_id: TrackId, muted: bool) -> Result<(), DriverError> {
        self.send(ClientMsg::Mute { track_id, muted }).await
    }

    /// Adds recv slots with a new offer and waits for its answer; returns the new mids.
    pub async fn add_slots(&self, video: usize, audio: usize) -> Result<Mids, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.media.cmd(Cmd::AddSlots(video, audio, tx)).await?;
        let mids = rx.await.map_err(|_| self.media.stopped_error())??;
        *lock(&self.media.mids) = mids.clone();
        Ok(mids)
    }

    /// A snapshot of everything measured.
    pub async fn stats(&self) -> Result<ClientStats, DriverError> {
        self.media.stats().await
    }

    /// Limits the received bit rate (`None` lifts the limit), to emulate a downlink drop.
    pub async fn set_downlink_limit(&self, bps: Option<u64>) -> Result<(), DriverError> {
        self.media.set_downlink_limit(bps).await
    }

    /// Switches the microphone between speaking (-20 dBov) and silent (-127 dBov).
    pub async fn set_speaking(&self, speaking: bool) -> Result<(), DriverError> {
        self.media.set_speaking(speaking).await
    }

    /// Sends a PLI for slot `mid`.
    pub async fn request_keyframe(&self, mid: Mid) -> Result<(), DriverError> {
        self.media.request_keyframe(mid).await
    }

    /// Every server message from now on. Slow readers lose old messages
    /// (`RecvError::Lagged`); [`ClientHandle::wait_for`] does not.
    pub fn events(&self) -> broadcast::Receiver<ServerMsg> {
        self.media.shared.events.subscribe()
    }

    /// The first server message matching `pred` that no earlier `wait_for` returned, waiting up
    /// to `timeout` for it. Messages from before the call count.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&ServerMsg) -> bool,
        timeout: Duration,
    ) -> Result<ServerMsg, DriverError> {
        self.wait_for_named("a matching server message", pred, timeout)
            .await
    }

    /// [`ClientHandle::wait_for`] with a name for the timeout error.
    pub async fn wait_for_named(
        &self,
        what: &str,
        pred: impl Fn(&ServerMsg) -> bool,
        timeout: Duration,
    ) -> Result<ServerMsg, DriverError> {
        let shared = &self.media.shared;
        let deadline = TokioInstant::now() + timeout;
        loop {
            let notified = shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = shared.take_first(&pred) {
                return Ok(m);
            }
            if let Some(reason) = shared.stopped() {
                return Err(DriverError::Stopped(reason));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(DriverError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                });
            }
        }
    }

    /// Marks every server message received so far as returned: the next `wait_for` only
    /// sees messages that arrive after this call.
    pub fn skip_received(&self) {
        self.media.shared.skip_all();
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_media_connected(&self, timeout: Duration) -> Result<(), DriverError> {
        self.media.wait_media_connected(timeout).await
    }

    /// Sends `leave`, closes the socket and stops the task.
    pub async fn close(self) -> Result<(), DriverError> {
        self.media.close().await
    }
}
