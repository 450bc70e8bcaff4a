//! Why something about Janus failed.

use std::path::PathBuf;
use std::time::Duration;

use arbor_loadgen::DriverError;

/// An error starting, driving or reading Janus.
#[derive(Debug, thiserror::Error)]
pub enum JanusError {
    /// The `janus` binary is not there.
    #[error(
        "{} not found: Janus comes from Debian's package `janus` (apt-get install janus)",
        binary.display()
    )]
    NotInstalled {
        /// The path or name that was tried.
        binary: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Janus exited before it answered, or while it was expected to run.
    #[error("janus exited ({status}); the end of its log:\n{log_tail}")]
    Exited {
        /// How it exited.
        status: String,
        /// The last lines of `janus.log`.
        log_tail: String,
    },
    /// Janus did not answer `GET /janus/info` in time.
    #[error("janus did not answer {url} within {after:?}; the end of its log:\n{log_tail}")]
    StartTimeout {
        /// The URL polled.
        url: String,
        /// How long it was polled.
        after: Duration,
        /// The last lines of `janus.log`.
        log_tail: String,
    },
    /// Another Janus already serves the API port (its info names another log file).
    #[error("port {port} is served by another Janus (logging to {other_log}); stop it first")]
    PortTaken {
        /// The API port.
        port: u16,
        /// The other instance's log path.
        other_log: String,
    },
    /// The HTTP request itself failed (connection refused, timeout, unreadable body).
    #[error("HTTP {what}: {reason}")]
    Http {
        /// Which request.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// Janus answered `"janus": "error"`.
    #[error("janus error {code} on {what}: {reason}")]
    Janus {
        /// Which request.
        what: String,
        /// Janus's error code (`458` no such session, `459` no such handle, ...).
        code: i64,
        /// Janus's reason.
        reason: String,
    },
    /// The VideoRoom plugin answered with an `error_code`.
    #[error("videoroom error {code} on {what}: {reason}")]
    Plugin {
        /// Which request.
        what: String,
        /// The plugin's error code (`426` no such room, `427` room exists, ...).
        code: i64,
        /// The plugin's reason.
        reason: String,
    },
    /// A reply that does not have the expected shape.
    #[error("unexpected reply to {what}: {reply}")]
    BadReply {
        /// Which request.
        what: String,
        /// The reply, as JSON.
        reply: String,
    },
    /// An asynchronous reply did not come in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
    /// More asynchronous requests in flight on one session than the bound allows.
    #[error("more than {max} Janus transactions in flight on one session")]
    TooManyTransactions {
        /// The bound.
        max: usize,
    },
    /// The session is gone (destroyed, or Janus said it does not know it).
    #[error("janus session {0} is closed")]
    SessionClosed(u64),
    /// The synthetic client's media task failed.
    #[error(transparent)]
    Media(#[from] DriverError),
}

impl JanusError {
    pub(super) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        JanusError::Io {
            what: what.into(),
            source,
        }
    }

    pub(super) fn http(what: &str, e: &reqwest::Error) -> Self {
        JanusError::Http {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}
