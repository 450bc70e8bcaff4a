//! A Janus plugin handle: one PeerConnection's signaling, within a [`super::Session`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::JanusError;
use super::api::{check_janus, plugin_reply};
use super::session::{MAX_TRANSACTIONS_IN_FLIGHT, SessionInner, lock, wait_event};
use super::{Jsep, PluginReply};

/// How long an asynchronous request waits for its event.
pub const ASYNC_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin handle: one PeerConnection's signaling.
#[derive(Debug, Clone)]
pub struct Handle {
    id: u64,
    session: Arc<SessionInner>,
}

impl Handle {
    pub(super) fn new(id: u64, session: Arc<SessionInner>) -> Self {
        Handle { id, session }
    }

    /// Janus's handle id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The session's id.
    pub fn session_id(&self) -> u64 {
        self.session.id
    }

    fn url(&self) -> String {
        format!("{}/{}", self.session.url, self.id)
    }

    /// A plugin request answered at once (`create`, `list`, `destroy`, ...).
    pub async fn request(&self, what: &str, body: Value) -> Result<PluginReply, JanusError> {
        let msg = json!({"janus": "message", "body": body});
        let reply = self.session.api.post(&self.url(), what, msg).await?;
        plugin_reply(what, &reply)
    }

    /// A plugin request that may be answered later on the long-poll (`join`, `publish`,
    /// `start`), with an optional SDP; waits up to `timeout` for the answer.
    pub async fn message(
        &self,
        what: &str,
        body: Value,
        jsep: Option<Jsep>,
        timeout: Duration,
    ) -> Result<PluginReply, JanusError> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = serde_json::to_value(j).map_err(|e| JanusError::BadReply {
                what: what.to_string(),
                reply: e.to_string(),
            })?;
        }
        let transaction = self.session.api.transaction();
        let (tx, rx) = oneshot::channel();
        {
            // Registered before the POST: the event may beat its reply.
            let mut waiters = lock(&self.session.waiters);
            if waiters.len() >= MAX_TRANSACTIONS_IN_FLIGHT {
                return Err(JanusError::TooManyTransactions {
                    max: MAX_TRANSACTIONS_IN_FLIGHT,
                });
            }
            waiters.insert(transaction.clone(), tx);
        }
        let posted = self
            .session
            .api
            .post_with(&self.url(), what, msg, transaction.clone())
            .await;
        let reply = match posted {
            Ok(r) if r["janus"] == "ack" => self.await_event(what, &transaction, rx, timeout).await,
            other => {
                lock(&self.session.waiters).remove(&transaction);
                other
            }
        }?;
        plugin_reply(what, &reply)
    }

    async fn await_event(
        &self,
        what: &str,
        transaction: &str,
        rx: oneshot::Receiver<Value>,
        timeout: Duration,
    ) -> Result<Value, JanusError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(event)) => check_janus(what, event),
            Ok(Err(_)) => Err(JanusError::SessionClosed(self.session.id)),
            Err(_) => {
                lock(&self.session.waiters).remove(transaction);
                Err(JanusError::Timeout {
                    what: format!("the answer to {what}"),
                    after: timeout,
                })
            }
        }
    }

    /// The first unclaimed event from this handle matching `pred` (`webrtcup`, `media`,
    /// `hangup`, ...), waiting up to `timeout`.
    pub async fn wait_event(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool + Sync,
        timeout: Duration,
    ) -> Result<Value, JanusError> {
        let id = self.id;
        let mine = move |e: &Value| e["sender"].as_u64() == Some(id) && pred(e);
        wait_event(&self.session, what, &mine, timeout).await
    }

    /// Detaches the handle (Janus closes its PeerConnection).
    pub async fn detach(&self) -> Result<(), JanusError> {
        let msg = json!({"janus": "detach"});
        self.session
            .api
            .post(&self.url(), "detach", msg)
            .await
            .map(drop)
    }
}
