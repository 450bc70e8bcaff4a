//! The Janus HTTP API: sessions, plugin handles, requests and the long-poll that answers the
//! asynchronous ones.
//!
//! Every POST carries a fresh `transaction`. Synchronous plugin requests (`create`, `list`,
//! `destroy`) are answered in the POST's reply (`"janus": "success"`); asynchronous ones
//! (`join`, `publish`, `start`) are acknowledged there (`"janus": "ack"`) and answered later
//! on the session's long-poll `GET /janus/<session>?maxev=N` as an `event` with the same
//! transaction. One task per session keeps that poll outstanding and hands each event to the
//! request waiting for its transaction; events without a waiter (`webrtcup`, `media`,
//! `hangup`, ...) are queued, bounded, for [`Session::wait_event`]. The poll also keeps the
//! session alive (and the bench runs Janus with `session_timeout = 0` besides), so its
//! `keepalive` answers are only counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::JanusError;

/// Asynchronous requests awaiting their event, per session, at most.
pub const MAX_TRANSACTIONS_IN_FLIGHT: usize = 1024;
/// Unclaimed events kept per session; past it the oldest are dropped (and counted).
pub const MAX_QUEUED_EVENTS: usize = 1024;
/// Events one long-poll may return.
const MAX_EVENTS_PER_POLL: usize = 10;
/// First wait after a failed long-poll; doubles up to [`POLL_BACKOFF_MAX`].
const POLL_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between failed long-polls.
const POLL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Janus holds a long-poll for 30 s before answering `keepalive`; give it some slack.
const POLL_HTTP_TIMEOUT: Duration = Duration::from_secs(40);
/// Timeout of every other HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an asynchronous request waits for its event.
pub const ASYNC_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Janus's "no such session" error code.
const NO_SUCH_SESSION: i64 = 458;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind the lock; a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An SDP with its type, as Janus's `jsep` field carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP.
    pub sdp: String,
}

impl Jsep {
    /// An offer.
    pub fn offer(sdp: String) -> Self {
        Jsep {
            kind: "offer".into(),
            sdp,
        }
    }

    /// An answer.
    pub fn answer(sdp: String) -> Self {
        Jsep {
            kind: "answer".into(),
            sdp,
        }
    }
}

/// A plugin's answer: its `plugindata.data` and the SDP that came with it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginReply {
    /// `plugindata.data`.
    pub data: Value,
    /// The reply's `jsep`.
    pub jsep: Option<Jsep>,
}

/// The HTTP API of one Janus instance.
#[derive(Debug, Clone)]
pub struct JanusApi {
    http: reqwest::Client,
    base: String,
    transactions: Arc<AtomicU64>,
}

impl JanusApi {
    /// The API at `base` (`http://127.0.0.1:8088/janus`).
    pub fn new(base: &str) -> Result<Self, JanusError> {
        let http = reqwest::Client::builder()
            // Everything is local to the namespace; a proxy from the environment is wrong.
            .no_proxy()
            .build()
            .map_err(|e| JanusError::http("client setup", &e))?;
        Ok(JanusApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            transactions: Arc::new(AtomicU64::new(0)),
        })
    }

    /// `GET /janus/info`: versions and settings.
    pub async fn info(&self) -> Result<Value, JanusError> {
        let url = format!("{}/info", self.base);
        let what = "GET /janus/info";
        let reply = self
            .http
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| JanusError::http(what, &e))?
            .json::<Value>()
            .await
            .map_err(|e| JanusError::http(what, &e))?;
        check_janus(what, reply)
    }

    /// Creates a session and starts its long-poll task.
    pub async fn create_session(&self) -> Result<Session, JanusError> {
        let reply = self
            .post(&self.base, "create", json!({"janus": "create"}))
            .await?;
        let id = data_id("create", &reply)?;
        let inner = Arc::new(SessionInner {
            api: self.clone(),
            id,
            url: format!("{}/{id}", self.base),
            waiters: Mutex::new(HashMap::new()),
            events: Mutex::new(Events::default()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            poller: Mutex::new(None),
        });
        let poller = tokio::spawn(poll_loop(Arc::downgrade(&inner)));
        *lock(&inner.poller) = Some(poller);
        Ok(Session { inner })
    }

    fn transaction(&self) -> String {
        format!(
            "arbor-{}",
            self.transactions.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// POSTs `msg` with a fresh transaction; `"janus": "error"` replies become errors.
    async fn post(&self, url: &str, what: &str, msg: Value) -> Result<Value, JanusError> {
        self.post_with(url, what, msg, self.transaction()).await
    }

    async fn post_with(
        &self,
        url: &str,
        what: &str,
        mut msg: Value,
        transaction: String,
    ) -> Result<Value, JanusError> {
        msg["transaction"] = Value::String(transaction);
        let reply = self
            .http
            .post(url)
            .timeout(REQUEST_TIMEOUT)
            .json(&msg)
            .send()
            .await
            .map_err(|e| JanusError::http(what, &e))?
            .json::<Value>()
            .await
            .map_err(|e| JanusError::http(what, &e))?;
        check_janus(what, reply)
    }
}

/// `data.id` of a `success` reply.
fn data_id(what: &str, reply: &Value) -> Result<u64, JanusError> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| bad_reply(what, reply))
}

fn bad_reply(what: &str, reply: &Value) -> JanusError {
    JanusError::BadReply {
        what: what.to_string(),
        reply: reply.to_string(),
    }
}

/// Turns `"janus": "error"` into [`JanusError::Janus`].
fn check_janus(what: &str, reply: Value) -> Result<Value, JanusError> {
    if reply["janus"] != "error" {
        return Ok(reply);
    }
    Err(JanusError::Janus {
        what: what.to_string(),
        code: reply["error"]["code"].as_i64().unwrap_or_default(),
        reason: reply["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Splits a plugin's `success` or `event` into its reply, or its `error_code` into an error.
fn plugin_reply(what: &str, reply: &Value) -> Result<PluginReply, JanusError> {
    let data = &reply["plugindata"]["data"];
    if data.is_null() {
        return Err(bad_reply(what, reply));
    }
    if let Some(code) = data["error_code"].as_i64() {
        return Err(JanusError::Plugin {
            what: what.to_string(),
            code,
            reason: data["error"].as_str().unwrap_or_default().to_string(),
        });
    }
    let jsep = match &reply["jsep"] {
        Value::Null => None,
        j => Some(serde_json::from_value(j.clone()).map_err(|_| bad_reply(what, reply))?),
    };
    Ok(PluginReply {
        data: data.clone(),
        jsep,
    })
}

#[derive(Debug, Default)]
struct Events {
    queue: VecDeque<Value>,
    dropped: u64,
    keepalives: u64,
}

/// What a session's handles and its long-poll task share.
#[derive(Debug)]
struct SessionInner {
    api: JanusApi,
    id: u64,
    url: String,
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    events: Mutex<Events>,
    notify: Notify,
    closed: AtomicBool,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.poller).take() {
            p.abort();
        }
    }
}

impl SessionInner {
    /// Hands an event to its waiting request, or queues it.
    fn dispatch(&self, event: Value) {
        if event["janus"] == "keepalive" {
            lock(&self.events).keepalives += 1;
            return;
        }
        if let Some(t) = event["transaction"].as_str()
            && let Some(waiter) = lock(&self.waiters).remove(t)
        {
            let _ = waiter.send(event);
            return;
        }
        {
            let mut events = lock(&self.events);
            if events.queue.len() >= MAX_QUEUED_EVENTS {
                events.queue.pop_front();
                events.dropped += 1;
            }
            events.queue.push_back(event);
        }
        self.notify.notify_waiters();
    }

    /// The session is gone: fail every waiter (dropping its sender) and wake event waiters.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        lock(&self.waiters).clear();
        self.notify.notify_waiters();
    }
}

/// Keeps one long-poll outstanding for the session until it closes or every handle is gone.
async fn poll_loop(session: Weak<SessionInner>) {
    let mut backoff = POLL_BACKOFF_MIN;
    loop {
        let (http, url) = match session.upgrade() {
            Some(s) if !s.closed.load(Ordering::Acquire) => (
                s.api.http.clone(),
                format!("{}?maxev={MAX_EVENTS_PER_POLL}", s.url),
            ),
            _ => return,
        };
        let reply = match http.get(&url).timeout(POLL_HTTP_TIMEOUT).send().await {
            Ok(r) => r.json::<Value>().await,
            Err(e) => Err(e),
        };
        let Some(s) = session.upgrade() else { return };
        match reply {
            Ok(Value::Array(events)) => {
                backoff = POLL_BACKOFF_MIN;
                for e in events {
                    s.dispatch(e);
                }
            }
            Ok(e) if e["janus"] == "error" => {
                if e["error"]["code"].as_i64() == Some(NO_SUCH_SESSION) {
                    s.close();
                    return;
                }
                tracing::warn!(session = s.id, error = %e, "janus long-poll error");
                drop(s);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(POLL_BACKOFF_MAX);
            }
            Ok(e) => {
                backoff = POLL_BACKOFF_MIN;
                s.dispatch(e);
            }
            Err(e) => {
                tracing::debug!(session = s.id, error = %e, "janus long-poll failed");
                drop(s);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(POLL_BACKOFF_MAX);
            }
        }
    }
}

/// A Janus session: its handles' requests are answered through its long-poll task. The task
/// runs while the session or any of its handles lives.
#[derive(Debug)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl Session {
    /// Janus's session id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Attaches a handle (one per PeerConnection) to `plugin` (`janus.plugin.videoroom`).
    pub async fn attach(&self, plugin: &str) -> Result<Handle, JanusError> {
        let msg = json!({"janus": "attach", "plugin": plugin});
        let reply = self.inner.api.post(&self.inner.url, "attach", msg).await?;
        Ok(Handle {
            id: data_id("attach", &reply)?,
            session: self.inner.clone(),
        })
    }

    /// The first queued event (one no request claimed) matching `pred`, removing it, waiting
    /// up to `timeout`.
    pub async fn wait_event(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, JanusError> {
        wait_event(&self.inner, what, &pred, timeout).await
    }

    /// Unclaimed events dropped because the queue was full, and keepalives seen.
    pub fn event_counters(&self) -> (u64, u64) {
        let e = lock(&self.inner.events);
        (e.dropped, e.keepalives)
    }

    /// Destroys the session (Janus hangs up its handles) and stops the long-poll.
    pub async fn destroy(self) -> Result<(), JanusError> {
        let r = self
            .inner
            .api
            .post(&self.inner.url, "destroy", json!({"janus": "destroy"}))
            .await;
        self.inner.close();
        r.map(drop)
    }
}

async fn wait_event(
    inner: &SessionInner,
    what: &str,
    pred: &dyn Fn(&Value) -> bool,
    timeout: Duration,
) -> Result<Value, JanusError> {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = inner.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut events = lock(&inner.events);
            if let Some(i) = events.queue.iter().position(pred) {
                return events
                    .queue
                    .remove(i)
                    .ok_or(JanusError::SessionClosed(inner.id));
            }
        }
        if inner.closed.load(Ordering::Acquire) {
            return Err(JanusError::SessionClosed(inner.id));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(JanusError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
    }
}

/// A plugin handle: one PeerConnection's signaling.
#[derive(Debug, Clone)]
pub struct Handle {
    id: u64,
    session: Arc<SessionInner>,
}

impl Handle {
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
        pred: impl Fn(&Value) -> bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janus_errors_keep_code_and_reason() {
        let reply = json!({"janus": "error", "transaction": "t",
            "error": {"code": 458, "reason": "No such session 12"}});
        let e = check_janus("attach", reply).unwrap_err();
        assert!(matches!(&e, JanusError::Janus { code: 458, reason, .. }
            if reason == "No such session 12"));
        assert!(e.to_string().contains("458") && e.to_string().contains("No such session"));
    }

    #[test]
    fn plugin_errors_and_replies_are_told_apart() {
        let err = json!({"janus": "success", "plugindata": {"plugin": "janus.plugin.videoroom",
            "data": {"videoroom": "event", "error_code": 427, "error": "Room 4242 already exists"}}});
        let e = plugin_reply("create", &err).unwrap_err();
        assert!(matches!(&e, JanusError::Plugin { code: 427, reason, .. }
            if reason.contains("already exists")));

        let ok = json!({"janus": "event", "plugindata": {"data": {"videoroom": "attached"}},
            "jsep": {"type": "offer", "sdp": "v=0"}});
        let r = plugin_reply("join", &ok).unwrap();
        assert_eq!(r.data["videoroom"], "attached");
        assert_eq!(r.jsep, Some(Jsep::offer("v=0".into())));

        let e = plugin_reply("join", &json!({"janus": "event"})).unwrap_err();
        assert!(matches!(e, JanusError::BadReply { .. }), "{e}");
    }
}
