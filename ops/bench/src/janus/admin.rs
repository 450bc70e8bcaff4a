//! The Janus Admin API: what Janus itself says about one PeerConnection (`handle_info`).

use std::time::Duration;

use arbor_loadgen::SrtpProfile;
use serde::Serialize;
use serde_json::{Value, json};

use super::JanusError;

/// Timeout of one Admin API request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// m-lines read from one `handle_info` at most.
const MAX_MEDIA: usize = 64;

/// Packet counters of one m-line, as Janus counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MediaCounters {
    /// The m-line's mid.
    pub mid: String,
    /// `audio`, `video` or `data`.
    pub kind: String,
    /// Packets Janus received on it.
    pub packets_in: u64,
    /// Bytes Janus received on it.
    pub bytes_in: u64,
    /// Packets Janus sent on it.
    pub packets_out: u64,
    /// Bytes Janus sent on it.
    pub bytes_out: u64,
}

/// What Janus reports about one handle's PeerConnection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HandleInfo {
    /// The negotiated SRTP profile as Janus names it (`SRTP_AEAD_AES_256_GCM`).
    pub srtp_profile_name: Option<String>,
    /// That profile, if str0m knows it.
    pub srtp_profile: Option<SrtpProfile>,
    /// Janus's DTLS role (`active` / `passive`).
    pub dtls_role: Option<String>,
    /// The ICE pair in use, as Janus prints it.
    pub selected_pair: Option<String>,
    /// Per m-line counters.
    pub media: Vec<MediaCounters>,
    /// The whole `info` object, for anything else.
    pub raw: Value,
}

impl HandleInfo {
    /// Reads the parts the bench uses out of `handle_info`'s `info`.
    pub fn parse(info: Value) -> Self {
        let webrtc = &info["webrtc"];
        let dtls = &webrtc["dtls"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let srtp_profile_name = text(&dtls["srtp-profile"]);
        let media = match &webrtc["media"] {
            Value::Object(m) => m.values().take(MAX_MEDIA).map(media_counters).collect(),
            Value::Array(m) => m.iter().take(MAX_MEDIA).map(media_counters).collect(),
            _ => vec![],
        };
        HandleInfo {
            srtp_profile: srtp_profile_name
                .as_deref()
                .and_then(SrtpProfile::from_name),
            srtp_profile_name,
            dtls_role: text(&dtls["dtls-role"]),
            selected_pair: text(&webrtc["ice"]["selected-pair"]),
            media,
            raw: info,
        }
    }

    /// Packets Janus sent on every m-line together.
    pub fn packets_out(&self) -> u64 {
        self.media.iter().map(|m| m.packets_out).sum()
    }

    /// Packets Janus received on every m-line together.
    pub fn packets_in(&self) -> u64 {
        self.media.iter().map(|m| m.packets_in).sum()
    }
}

fn media_counters(m: &Value) -> MediaCounters {
    let n = |v: &Value| v.as_u64().unwrap_or_default();
    let stats = &m["stats"];
    MediaCounters {
        mid: m["mid"].as_str().unwrap_or_default().to_string(),
        kind: m["type"].as_str().unwrap_or_default().to_string(),
        packets_in: n(&stats["in"]["packets"]),
        bytes_in: n(&stats["in"]["bytes"]),
        packets_out: n(&stats["out"]["packets"]),
        bytes_out: n(&stats["out"]["bytes"]),
    }
}

/// The Admin API of one Janus instance.
#[derive(Debug, Clone)]
pub struct Admin {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl Admin {
    /// The Admin API at `base` (`http://127.0.0.1:7088/admin`) with its secret.
    pub fn new(base: &str, secret: &str) -> Result<Self, JanusError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| JanusError::http("admin client setup", &e))?;
        Ok(Admin {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
        })
    }

    /// `handle_info` for handle `handle` of session `session`.
    pub async fn handle_info(&self, session: u64, handle: u64) -> Result<HandleInfo, JanusError> {
        let url = format!("{}/{session}/{handle}", self.base);
        let reply = self.post(&url, "handle_info").await?;
        Ok(HandleInfo::parse(reply["info"].clone()))
    }

    /// The ids of every session Janus holds.
    pub async fn list_sessions(&self) -> Result<Vec<u64>, JanusError> {
        let reply = self.post(&self.base, "list_sessions").await?;
        Ok(ids(&reply["sessions"]))
    }

    /// The ids of every handle of `session`.
    pub async fn list_handles(&self, session: u64) -> Result<Vec<u64>, JanusError> {
        let url = format!("{}/{session}", self.base);
        let reply = self.post(&url, "list_handles").await?;
        Ok(ids(&reply["handles"]))
    }

    async fn post(&self, url: &str, request: &str) -> Result<Value, JanusError> {
        let what = format!("admin {request}");
        let msg = json!({"janus": request, "transaction": request, "admin_secret": self.secret});
        let reply = self
            .http
            .post(url)
            .timeout(ADMIN_TIMEOUT)
            .json(&msg)
            .send()
            .await
            .map_err(|e| JanusError::http(&what, &e))?
            .json::<Value>()
            .await
            .map_err(|e| JanusError::http(&what, &e))?;
        if reply["janus"] == "error" {
            return Err(JanusError::Janus {
                what,
                code: reply["error"]["code"].as_i64().unwrap_or_default(),
                reason: reply["error"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        Ok(reply)
    }
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_info_yields_profile_role_and_counters() {
        let info = json!({"webrtc": {
        "ice": {"selected-pair": "10.77.0.1:40000 [host,udp] <-> 10.77.0.2:5000 [host,udp]"},
        "dtls": {"srtp-profile": "SRTP_AEAD_AES_256_GCM", "dtls-role": "active"},
        "media": {
            "0": {"mid": "0", "type": "audio", "stats": {"in": {"packets": 5, "bytes": 500}}},
            "1": {"mid": "1", "type": "video",
                  "stats": {"in": {"packets": 7, "bytes": 7000}, "out": {"packets": 2}}}
        }}});
        let h = HandleInfo::parse(info);
        assert_eq!(h.srtp_profile, Some(SrtpProfile::AeadAes256Gcm));
        assert_eq!(h.dtls_role.as_deref(), Some("active"));
        assert!(h.selected_pair.as_deref().unwrap().contains("10.77.0.2"));
        assert_eq!((h.packets_in(), h.packets_out()), (12, 2));
        assert_eq!(h.media[1].kind, "video");

        let unknown = HandleInfo::parse(json!({"webrtc": {"dtls": {
            "srtp-profile": "SRTP_AES128_CM_SHA1_32"}}}));
        assert_eq!(unknown.srtp_profile, None);
        assert_eq!(
            unknown.srtp_profile_name.as_deref(),
            Some("SRTP_AES128_CM_SHA1_32")
        );
    }
}
