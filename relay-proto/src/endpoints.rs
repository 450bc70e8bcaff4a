//! Where an edge's HTTP surface lives.
//!
//! The origin's join answers, an edge's redirect to another edge and `arbor up`'s cluster
//! file all hand clients these URLs; they are built here, once, from an edge's HTTP base URL
//! (`http://host:port` or `https://host`, as the edge registers it).

/// The signaling WebSocket (`docs/signaling.md`).
pub const SIGNALING_PATH: &str = "/v1/rtc";
/// The WHIP ingest base; append `/<meeting>`.
pub const WHIP_PATH: &str = "/v1/whip";
/// The WHEP playback base; append `/<meeting>`.
pub const WHEP_PATH: &str = "/v1/whep";

/// The signaling WebSocket URL of the edge at `http_base`: `ws://` for `http://`, `wss://`
/// for `https://`.
pub fn signaling_url(http_base: &str) -> String {
    let base = http_base.trim_end_matches('/');
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}{SIGNALING_PATH}"),
        None => format!(
            "ws://{}{SIGNALING_PATH}",
            base.trim_start_matches("http://")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        assert_eq!(
            signaling_url("http://127.0.1.1:7880"),
            "ws://127.0.1.1:7880/v1/rtc"
        );
        assert_eq!(
            signaling_url("https://fra.example/"),
            "wss://fra.example/v1/rtc"
        );
    }
}
