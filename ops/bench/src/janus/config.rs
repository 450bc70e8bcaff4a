//! [`JanusConfig`] and the three files it becomes in Janus's private config folder.
//!
//! `janus -F <dir>` reads `janus.jcfg` and every plugin and transport config from `<dir>`, so
//! the packaged `/etc/janus` (every plugin, WebSockets and nanomsg open, demo rooms capped at
//! 128 kbit/s) is never read. The `*_folder` keys are left out: Debian's compiled-in defaults
//! find the plugins.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::JanusError;
use crate::netns::SFU_ADDR;

/// Every plugin Debian ships except the VideoRoom.
const DISABLED_PLUGINS: &[&str] = &[
    "libjanus_audiobridge.so",
    "libjanus_duktape.so",
    "libjanus_echotest.so",
    "libjanus_lua.so",
    "libjanus_nosip.so",
    "libjanus_recordplay.so",
    "libjanus_sip.so",
    "libjanus_streaming.so",
    "libjanus_textroom.so",
    "libjanus_videocall.so",
    "libjanus_voicemail.so",
];

/// Every transport Debian ships except HTTP.
const DISABLED_TRANSPORTS: &[&str] = &[
    "libjanus_websockets.so",
    "libjanus_nanomsg.so",
    "libjanus_mqtt.so",
    "libjanus_pfunix.so",
    "libjanus_rabbitmq.so",
];

/// How Janus is started.
#[derive(Debug, Clone)]
pub struct JanusConfig {
    /// The binary: a path, or a name looked up in `PATH`.
    pub binary: PathBuf,
    /// The only address Janus gathers ICE candidates on (`nat.ice_enforce_list`); never a
    /// loopback address, which Janus skips.
    pub ice_addr: IpAddr,
    /// The HTTP API port on 127.0.0.1 (`/janus`).
    pub http_port: u16,
    /// The Admin API port on 127.0.0.1 (`/admin`).
    pub admin_port: u16,
    /// The Admin API secret.
    pub admin_secret: String,
    /// Static event loops (`general.event_loops`): one per core keeps Janus at a fixed thread
    /// count instead of a thread per handle.
    pub event_loops: usize,
    /// Log verbosity, 0-7 (5 adds the SRTP profile line after "DTLS established").
    pub debug_level: u8,
    /// UDP ports Janus's ICE agents use.
    pub rtp_ports: RangeInclusive<u16>,
    /// How long Janus gets to answer `GET /janus/info`.
    pub start_timeout: Duration,
    /// How long Janus gets to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
}

impl Default for JanusConfig {
    fn default() -> Self {
        JanusConfig {
            binary: PathBuf::from("janus"),
            ice_addr: IpAddr::V4(SFU_ADDR),
            http_port: 8088,
            admin_port: 7088,
            admin_secret: "arbor-bench".into(),
            event_loops: std::thread::available_parallelism().map_or(1, |n| n.get()),
            debug_level: 4,
            rtp_ports: 40000..=40999,
            start_timeout: Duration::from_secs(10),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// Where the HTTP transport listens (inside the namespace; nothing outside can reach it).
pub(super) const API_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

impl JanusConfig {
    /// `http://127.0.0.1:<http_port>/janus`.
    pub fn api_url(&self) -> String {
        format!("http://{API_IP}:{}/janus", self.http_port)
    }

    /// `http://127.0.0.1:<admin_port>/admin`.
    pub fn admin_url(&self) -> String {
        format!("http://{API_IP}:{}/admin", self.admin_port)
    }

    /// Writes `janus.jcfg`, `janus.transport.http.jcfg` and `janus.plugin.videoroom.jcfg`
    /// into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), JanusError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| JanusError::io(format!("creating {}", dir.display()), e))?;
        for (name, text) in [
            ("janus.jcfg", self.core()),
            ("janus.transport.http.jcfg", self.http()),
            ("janus.plugin.videoroom.jcfg", "general: {\n}\n".to_string()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| JanusError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    }

    fn core(&self) -> String {
        format!(
            r#"general: {{
	debug_level = {debug_level}
	debug_timestamps = true
	admin_secret = "{secret}"
	session_timeout = 0
	event_loops = {loops}
}}
certificates: {{
}}
media: {{
	rtp_port_range = "{lo}-{hi}"
}}
nat: {{
	full_trickle = false
	ignore_mdns = true
	ice_enforce_list = "{ice}"
}}
plugins: {{
	disable = "{plugins}"
}}
transports: {{
	disable = "{transports}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#,
            debug_level = self.debug_level.min(7),
            secret = self.admin_secret,
            loops = self.event_loops.max(1),
            lo = self.rtp_ports.start(),
            hi = self.rtp_ports.end(),
            ice = self.ice_addr,
            plugins = DISABLED_PLUGINS.join(","),
            transports = DISABLED_TRANSPORTS.join(","),
        )
    }

    fn http(&self) -> String {
        format!(
            r#"general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "{ip}"
	https = false
}}
admin: {{
	admin_base_path = "/admin"
	admin_http = true
	admin_port = {admin_port}
	admin_ip = "{ip}"
	admin_https = false
}}
"#,
            port = self.http_port,
            admin_port = self.admin_port,
            ip = API_IP,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_config_pins_what_the_bench_relies_on() {
        let c = JanusConfig {
            event_loops: 3,
            ..JanusConfig::default()
        };
        let text = c.core();
        for needle in [
            "session_timeout = 0",
            "event_loops = 3",
            "full_trickle = false",
            "ice_enforce_list = \"10.77.0.1\"",
            "rtp_port_range = \"40000-40999\"",
            "admin_secret = \"arbor-bench\"",
            "broadcast = false",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        assert!(!text.contains("libjanus_videoroom.so"), "{text}");
        assert!(text.contains("libjanus_streaming.so"), "{text}");
        assert!(text.contains("libjanus_websockets.so"), "{text}");
        let http = c.http();
        assert!(http.contains("port = 8088") && http.contains("admin_port = 7088"));
        assert!(http.contains("ip = \"127.0.0.1\"") && !http.contains("0.0.0.0"));
        assert_eq!(c.api_url(), "http://127.0.0.1:8088/janus");
        assert_eq!(c.admin_url(), "http://127.0.0.1:7088/admin");
    }
}
