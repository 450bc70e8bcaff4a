//! A Janus session and its long-poll.
//!
//! Asynchronous plugin requests are answered on the session's long-poll
//! `GET /janus/<session>?maxev=N` as an `event` carrying the request's transaction. One task
//! per session keeps that poll outstanding and hands each event to the request waiting for its
//! transaction; events without a waiter (`webrtcup`, `media`, `hangup`, ...) are queued,
//! bounded, for [`Session::wait_event`]. The poll also keeps the session alive (and the bench
//! runs Janus with `session_timeout = 0` besides), so its `keepalive` answers are only counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::api::data_id;
use super::{Handle, JanusApi, JanusError};

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
/// Janus's "no such session" error code.
const NO_SUCH_SESSION: i64 = 458;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind the lock; a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Events {
    queue: VecDeque<Value>,
    dropped: u64,
    keepalives: u64,
}

/// What a session's handles and its long-poll task share.
#[derive(Debug)]
pub(super) struct SessionInner {
    pub(super) api: JanusApi,
    pub(super) id: u64,
    pub(super) url: String,
    pub(super) waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    events: Mutex<Events>,
    notify: Notify,
    pub(super) closed: AtomicBool,
    poller: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        if let Some(p) = lock(&self.poller).take() {
            p.abort();
        }
    }
}

impl Session {
    /// Wraps session `id` (at `url`) and starts its long-poll task.
    pub(super) fn start(api: JanusApi, id: u64, url: String) -> Session {
        let inner = Arc::new(SessionInner {
            api,
            id,
            url,
            waiters: Mutex::new(HashMap::new()),
            events: Mutex::new(Events::default()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            poller: Mutex::new(None),
        });
        let poller = tokio::spawn(poll_loop(Arc::downgrade(&inner)));
        *lock(&inner.poller) = Some(poller);
        Session { inner }
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
        Ok(Handle::new(data_id("attach", &reply)?, self.inner.clone()))
    }

    /// The first queued event (one no request claimed) matching `pred`, removing it, waiting
    /// up to `timeout`.
    pub async fn wait_event(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool + Sync,
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

pub(super) async fn wait_event(
    inner: &SessionInner,
    what: &str,
    pred: &(dyn Fn(&Value) -> bool + Sync),
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
