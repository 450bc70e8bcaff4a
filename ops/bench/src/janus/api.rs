//! The Janus HTTP API: requests, their replies and errors, and sessions to hold handles.
//!
//! Every POST carries a fresh `transaction`. Synchronous plugin requests (`create`, `list`,
//! `destroy`) are answered in the POST's reply (`"janus": "success"`); asynchronous ones
//! (`join`, `publish`, `start`) are acknowledged there (`"janus": "ack"`) and answered later
//! on the session's long-poll ([`super::Session`]). Errors keep Janus's code and reason:
//! `"janus": "error"` replies become [`JanusError::Janus`], a plugin's `error_code` becomes
//! [`JanusError::Plugin`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{JanusError, Session};

/// Timeout of every HTTP request but the long-poll.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(super) http: reqwest::Client,
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
        exchange("GET /janus/info", self.http.get(&url)).await
    }

    /// Creates a session and starts its long-poll task.
    pub async fn create_session(&self) -> Result<Session, JanusError> {
        let reply = self
            .post(&self.base, "create", json!({"janus": "create"}))
            .await?;
        let id = data_id("create", &reply)?;
        let url = format!("{}/{id}", self.base);
        Ok(Session::start(self.clone(), id, url))
    }

    pub(super) fn transaction(&self) -> String {
        format!(
            "arbor-{}",
            self.transactions.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// POSTs `msg` with a fresh transaction; `"janus": "error"` replies become errors.
    pub(super) async fn post(
        &self,
        url: &str,
        what: &str,
        msg: Value,
    ) -> Result<Value, JanusError> {
        self.post_with(url, what, msg, self.transaction()).await
    }

    pub(super) async fn post_with(
        &self,
        url: &str,
        what: &str,
        mut msg: Value,
        transaction: String,
    ) -> Result<Value, JanusError> {
        msg["transaction"] = Value::String(transaction);
        exchange(what, self.http.post(url).json(&msg)).await
    }
}

/// Sends `request` with the request timeout and checks Janus's JSON reply.
async fn exchange(what: &str, request: reqwest::RequestBuilder) -> Result<Value, JanusError> {
    let reply = request
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| JanusError::http(what, &e))?
        .json::<Value>()
        .await
        .map_err(|e| JanusError::http(what, &e))?;
    check_janus(what, reply)
}

/// `data.id` of a `success` reply.
pub(super) fn data_id(what: &str, reply: &Value) -> Result<u64, JanusError> {
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| bad_reply(what, reply))
}

pub(super) fn bad_reply(what: &str, reply: &Value) -> JanusError {
    JanusError::BadReply {
        what: what.to_string(),
        reply: reply.to_string(),
    }
}

/// Turns `"janus": "error"` into [`JanusError::Janus`].
pub(super) fn check_janus(what: &str, reply: Value) -> Result<Value, JanusError> {
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
pub(super) fn plugin_reply(what: &str, reply: &Value) -> Result<PluginReply, JanusError> {
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
