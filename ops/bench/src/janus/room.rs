//! [`JanusRoom`]: one VideoRoom room and the synthetic peers joined to it.
//!
//! All of a room's peers share one Janus session (one long-poll) and each has its own handle,
//! as a browser has one handle per PeerConnection. A publisher offers: `join` as publisher,
//! then `publish` with our offer, and Janus's answer comes back on the long-poll. A subscriber
//! answers: `join` as subscriber to a feed brings Janus's offer; the client's answer goes back
//! with `start`. Either way the client's media runs in an `arbor_loadgen` media task bound to
//! the room's client address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use arbor_loadgen::{ClientConfig, MediaHandle, MediaSession};
use serde_json::json;

use super::{ASYNC_REPLY_TIMEOUT, Admin, Handle, HandleInfo, Janus, JanusError, Jsep, Session};
use crate::netns::CLIENT_ADDR;

/// The VideoRoom plugin's package name.
const VIDEOROOM: &str = "janus.plugin.videoroom";

/// How the room is created.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// The room number.
    pub room: u64,
    /// Most publishers in the room.
    pub publishers: u32,
    /// Address the peers' UDP sockets bind (their ICE host candidate).
    pub client_ip: IpAddr,
    /// How long an asynchronous Janus reply may take.
    pub reply_timeout: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            room: 4242,
            publishers: 1,
            client_ip: IpAddr::V4(CLIENT_ADDR),
            reply_timeout: ASYNC_REPLY_TIMEOUT,
        }
    }
}

/// A VideoRoom room on one Janus.
#[derive(Debug)]
pub struct JanusRoom {
    session: Session,
    control: Handle,
    admin: Admin,
    config: RoomConfig,
}

impl JanusRoom {
    /// Creates the room: no bitrate cap (so Janus sends no REMB and the publisher's rate stays
    /// what the bench pinned), no periodic keyframe requests (Janus asks the publisher for one
    /// when a subscriber starts), VP8 and Opus only.
    pub async fn create(janus: &Janus, config: RoomConfig) -> Result<JanusRoom, JanusError> {
        let session = janus.api().create_session().await?;
        let control = session.attach(VIDEOROOM).await?;
        let body = json!({
            "request": "create",
            "room": config.room,
            "publishers": config.publishers.max(1),
            "bitrate": 0,
            "fir_freq": 0,
            "videocodec": "vp8",
            "audiocodec": "opus",
            "permanent": false,
        });
        control.request("room create", body).await?;
        Ok(JanusRoom {
            session,
            control,
            admin: janus.admin().clone(),
            config,
        })
    }

    /// The room number.
    pub fn room(&self) -> u64 {
        self.config.room
    }

    /// The session all of the room's peers use.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Joins a publisher and publishes `config`'s camera and microphone: our offer, Janus's
    /// answer. Returns once the PeerConnection is up on both sides, since Janus refuses
    /// subscribers to a feed before that (`428 No such feed`).
    pub async fn publisher(&self, config: ClientConfig) -> Result<JanusPeer, JanusError> {
        let handle = self.session.attach(VIDEOROOM).await?;
        let timeout = self.config.reply_timeout;
        let join = json!({"request": "join", "ptype": "publisher", "room": self.config.room,
            "display": config.name.clone().unwrap_or_else(|| "arbor-bench".into())});
        let joined = handle
            .message("publisher join", join, None, timeout)
            .await?;
        let feed = joined.data["id"]
            .as_u64()
            .ok_or_else(|| JanusError::BadReply {
                what: "publisher join".into(),
                reply: joined.data.to_string(),
            })?;
        let mut session = MediaSession::bind(self.bind_addr(), config).await?;
        let offer = session.create_offer()?;
        let publish = json!({"request": "publish"});
        let reply = handle
            .message("publish", publish, Some(Jsep::offer(offer.sdp)), timeout)
            .await?;
        let answer = expect_jsep("publish", reply.jsep, "answer")?;
        session.accept_answer(&answer)?;
        let peer = JanusPeer {
            media: session.start(),
            handle,
            feed: Some(feed),
        };
        peer.wait_connected(timeout).await?;
        Ok(peer)
    }

    /// Subscribes to publisher `feed`: Janus offers every stream of the feed, the client
    /// answers with a recv slot per m-line and starts its media task, then `start` lets Janus
    /// send (and ask the publisher for a keyframe). Returns before ICE and DTLS are done:
    /// [`JanusPeer::wait_connected`] waits for them, so many subscribers can connect at once.
    pub async fn subscriber(
        &self,
        feed: u64,
        config: ClientConfig,
    ) -> Result<JanusPeer, JanusError> {
        let handle = self.session.attach(VIDEOROOM).await?;
        let timeout = self.config.reply_timeout;
        let join = json!({"request": "join", "ptype": "subscriber", "room": self.config.room,
            "streams": [{"feed": feed}]});
        let attached = handle
            .message("subscriber join", join, None, timeout)
            .await?;
        let offer = expect_jsep("subscriber join", attached.jsep, "offer")?;
        let mut session = MediaSession::bind(self.bind_addr(), config).await?;
        let answer = session.accept_offer(&offer)?;
        let media = session.start();
        let start = json!({"request": "start"});
        handle
            .message("start", start, Some(Jsep::answer(answer)), timeout)
            .await?;
        Ok(JanusPeer {
            media,
            handle,
            feed: None,
        })
    }

    /// What Janus reports about `peer`'s PeerConnection.
    pub async fn handle_info(&self, peer: &JanusPeer) -> Result<HandleInfo, JanusError> {
        self.admin
            .handle_info(peer.session_id(), peer.handle_id())
            .await
    }

    /// Destroys the room and the session (Janus hangs up every peer still in it).
    pub async fn destroy(self) -> Result<(), JanusError> {
        let body = json!({"request": "destroy", "room": self.config.room});
        let destroyed = self.control.request("room destroy", body).await;
        let closed = self.session.destroy().await;
        destroyed.and(closed)
    }

    fn bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.config.client_ip, 0)
    }
}

fn expect_jsep(what: &str, jsep: Option<Jsep>, kind: &str) -> Result<String, JanusError> {
    match jsep {
        Some(j) if j.kind == kind => Ok(j.sdp),
        other => Err(JanusError::BadReply {
            what: format!("{what} (expected an SDP {kind})"),
            reply: format!("{other:?}"),
        }),
    }
}

/// One synthetic peer in a [`JanusRoom`]: its media task and its Janus handle.
#[derive(Debug)]
pub struct JanusPeer {
    media: MediaHandle,
    handle: Handle,
    feed: Option<u64>,
}

impl JanusPeer {
    /// The media task: statistics, connection state, stop.
    pub fn media(&self) -> &MediaHandle {
        &self.media
    }

    /// A publisher's feed id (what subscribers subscribe to); `None` for a subscriber.
    pub fn feed(&self) -> Option<u64> {
        self.feed
    }

    /// The Janus handle's id (for the Admin API).
    pub fn handle_id(&self) -> u64 {
        self.handle.id()
    }

    /// The Janus session's id (for the Admin API).
    pub fn session_id(&self) -> u64 {
        self.handle.session_id()
    }

    /// The Janus handle, for further requests or its events (`webrtcup`, `media`).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Waits (up to `timeout` for each) until ICE and DTLS are up on our side and Janus has
    /// announced the PeerConnection (`webrtcup`). Janus announces it once, so this succeeds
    /// once per peer (the publisher constructor already used it).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), JanusError> {
        self.media.wait_media_connected(timeout).await?;
        self.handle
            .wait_event("webrtcup", |e| e["janus"] == "webrtcup", timeout)
            .await?;
        Ok(())
    }

    /// Detaches the handle (Janus tears its PeerConnection down) and stops the media task.
    pub async fn close(self) -> Result<(), JanusError> {
        let detached = self.handle.detach().await;
        self.media.close().await?;
        detached
    }
}
