//! What the handle and the task share: the server message log and the stop reason.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, broadcast};

use super::MAX_LOGGED_MESSAGES;

/// Server messages an [`super::ClientHandle::events`] receiver may fall behind before it
/// loses the oldest.
const MAX_EVENT_SUBSCRIBER_LAG: usize = 1024;
use crate::protocol::ServerMsg;

#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) entries: VecDeque<(ServerMsg, bool)>,
}

/// State shared by the handle and the task.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) log: Mutex<Log>,
    pub(super) notify: Notify,
    pub(super) events: broadcast::Sender<ServerMsg>,
    pub(super) media_connected: AtomicBool,
    pub(super) stopped: Mutex<Option<String>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            log: Mutex::new(Log::default()),
            notify: Notify::new(),
            events: broadcast::channel(MAX_EVENT_SUBSCRIBER_LAG).0,
            media_connected: AtomicBool::new(false),
            stopped: Mutex::new(None),
        }
    }

    pub(super) fn push(&self, msg: ServerMsg, consumed: bool) {
        {
            let mut log = lock(&self.log);
            if log.entries.len() >= MAX_LOGGED_MESSAGES {
                log.entries.pop_front();
            }
            log.entries.push_back((msg.clone(), consumed));
        }
        // No receivers is fine.
        let _ = self.events.send(msg);
        self.notify.notify_waiters();
    }

    pub(super) fn take_first(&self, pred: &dyn Fn(&ServerMsg) -> bool) -> Option<ServerMsg> {
        let mut log = lock(&self.log);
        let (msg, consumed) = log.entries.iter_mut().find(|(m, c)| !*c && pred(m))?;
        *consumed = true;
        Some(msg.clone())
    }

    pub(super) fn skip_all(&self) {
        for (_, consumed) in &mut lock(&self.log).entries {
            *consumed = true;
        }
    }

    pub(super) fn stop(&self, reason: String) {
        lock(&self.stopped).get_or_insert(reason);
        self.notify.notify_waiters();
    }

    pub(super) fn stopped(&self) -> Option<String> {
        lock(&self.stopped).clone()
    }
}
