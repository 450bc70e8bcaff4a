//! The edge's configuration: a TOML file, then `ARBOR_<SECTION>_<KEY>` environment overrides.
//!
//! ```no_run
//! # fn main() -> Result<(), arbor_edge::config::ConfigError> {
//! use arbor_edge::config;
//! let cfg = config::load(Some("edge.toml".as_ref()), config::process_env())?;
//! cfg.validate()?; // every problem at once, each with its path
//! # Ok(()) }
//! ```
//!
//! Layering: built-in defaults, then the file (keys it omits keep their defaults), then the
//! environment. Without a file the base is [`Config::dev_default`], a loopback-only
//! development edge. [`load`] only parses; [`Config::validate`] checks that the result makes
//! sense (ports, secrets, addresses) and must be called before use.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use relay_proto::{EdgeId, RegionId};
use serde::{Deserialize, Serialize};

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "ARBOR_";

/// API key of [`Config::dev_default`]. LiveKit's dev mode uses the same name.
pub const DEV_API_KEY: &str = "devkey";

/// Secret of [`DEV_API_KEY`]. Public knowledge, so [`Config::validate`] refuses it unless the
/// edge listens on loopback only.
pub const DEV_API_SECRET: &str = "arbor-dev-secret-never-use-in-production";

/// Shortest API secret accepted, in bytes (HS256 wants a key as long as its hash).
pub const MIN_SECRET_LEN: usize = 32;

/// Most `[backbone] peer_addrs` entries.
pub const MAX_PEER_ADDRS: usize = 1024;

/// Most media workers an edge runs.
pub const MAX_WORKERS: usize = 1024;

/// Largest HTTP request body an edge can be configured to accept (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The edge's configuration. Every key has a default; a file only lists what it changes.
///
/// An annotated file with every key at its default (except `[auth.keys]`, which has none):
///
/// ```toml
/// [edge]
/// id = "local-1"                # unique in the deployment; letters, digits, '-', '_', '.'
/// region = "local"              # the region this edge serves
///
/// [http]                        # signaling WebSocket, WHIP/WHEP, web page, /readyz, /metrics
/// listen = "127.0.1.1:7880"
/// # public_url = "https://edge-1.example.com"  # how clients reach `listen`
/// #                                             # (default "http://<listen>")
/// max_body_bytes = 65536        # largest request body (WHIP/WHEP SDP)
/// cors_origins = ["*"]          # origins allowed to call WHIP/WHEP from a browser
///
/// [media]                       # WebRTC media: ICE-lite, DTLS-SRTP
/// bind = "127.0.1.1"
/// # public_ip = "203.0.113.7"   # the address put in ICE candidates (default: bind)
/// udp_port = 7882               # worker i listens on udp_port + i
/// tcp_port = 7982               # ICE-TCP, worker i on tcp_port + i; 0 disables ICE-TCP
/// workers = 0                   # media threads; 0 = one per core
/// send_side_bwe = true          # estimate each subscriber's downlink from TWCC feedback
///                               # (and pace to it); false forwards as received
///
/// [backbone]                   # the cascade: QUIC links to the origin and other edges
/// enabled = false               # off: a standalone edge
/// listen = "127.0.1.1:7890"     # relay endpoint (UDP); mutual TLS from the cluster CA
/// # public_addr = "203.0.113.7:7890"  # what other edges dial (default: listen)
/// origin = "127.0.0.1:7790"     # the origin's relay endpoint
/// pki_dir = ".arbor/pki"        # ca.pem, edge-<id>.pem, edge-<id>.key (docs/relay-tls.md)
/// latitude = 0.0                # where this edge is, in degrees
/// longitude = 0.0
/// capacity = 10000              # participants before the origin stops placing here
/// # peer_addrs = { "us-1" = "127.0.0.1:7800" }  # dial these edges here instead of the
/// #                                             # address the origin lists (a proxy)
///
/// [auth]
/// dev_tokens = false            # let the built-in web page mint its own tokens: demos only
///
/// [auth.keys]                   # API key = secret (at least one; secrets >= 32 bytes)
/// APIj3kd8s2mQ = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
///
/// [limits]
/// max_participants = 100        # per meeting
/// max_chat_len = 2000           # characters per chat message
/// chat_history = 100            # messages kept per meeting and sent on join
/// resume_grace_s = 30           # how long a dropped participant may resume
/// max_subscriptions_per_participant = 128
/// max_meetings_per_worker = 1000
///
/// [health]                     # when /readyz answers 503 (anycast and DNS health checks)
/// max_cpu = 0.9                 # share of the machine's CPU, over the last 3 s
/// max_sessions = 10000          # meeting participants plus WHIP/WHEP sessions
/// origin_grace_s = 10           # origin unreachable this long, and no meeting hosted here
///
/// [log]
/// level = "info"                # a level, or target=level directives: "info,arbor_edge=debug"
/// format = "text"               # "text" or "json"
/// ```
///
/// Any key can be overridden by an environment variable `ARBOR_<SECTION>_<KEY>`, upper case:
/// `ARBOR_HTTP_LISTEN=0.0.0.0:443`, `ARBOR_MEDIA_WORKERS=4`, `ARBOR_AUTH_DEV_TOKENS=true`,
/// `ARBOR_HTTP_CORS_ORIGINS=https://a.example,https://b.example`. The keys map is replaced
/// as a whole by `ARBOR_AUTH_KEYS="key1=secret1,key2=secret2"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub edge: Edge,
    pub http: Http,
    pub media: Media,
    pub backbone: Backbone,
    pub auth: Auth,
    pub limits: Limits,
    pub health: Health,
    pub log: Log,
}

/// `[edge]`: who this edge is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Edge {
    pub id: EdgeId,
    pub region: RegionId,
}

/// `[http]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub listen: SocketAddr,
    /// Base URL clients use; see [`Http::public_url`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
}

/// `[media]`: the WebRTC media sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    pub bind: IpAddr,
    /// Address advertised in ICE candidates; see [`Media::public_ip`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<IpAddr>,
    /// First UDP port; worker `i` uses `udp_port + i`.
    pub udp_port: u16,
    /// First ICE-TCP port; worker `i` uses `tcp_port + i`. 0 disables ICE-TCP.
    pub tcp_port: u16,
    /// Media worker threads; 0 means one per core. See [`Media::worker_count`].
    pub workers: usize,
    /// Whether sessions run str0m's TWCC send-side bandwidth estimator. It is what steps a
    /// subscriber's simulcast layers down when its downlink narrows, and it comes with
    /// str0m's pacer: each subscriber's packets leave at 1.1× its estimate, one full
    /// session timeout per packet (most of the edge's CPU per forwarded packet, and up to
    /// hundreds of milliseconds added to keyframe bursts; BENCHMARKS.md). Off, packets are
    /// forwarded as they arrive, as Janus and mediasoup do, and layers follow the sizes
    /// subscribers ask for and any REMB they send: for audiences on good networks and
    /// single-layer ingest (WHIP), where there is no layer to choose.
    pub send_side_bwe: bool,
}

/// `[backbone]`: the QUIC links to the origin and the other edges (the cascade). Off, the
/// edge runs alone: every meeting lives on it only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backbone {
    pub enabled: bool,
    /// The relay endpoint (UDP, QUIC) this edge binds.
    pub listen: SocketAddr,
    /// The address other edges dial; see [`Backbone::public_addr`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_addr: Option<SocketAddr>,
    /// The origin's relay endpoint.
    pub origin: SocketAddr,
    /// Holds `ca.pem` and this edge's `edge-<id>.pem` / `.key` (see `docs/relay-tls.md`).
    pub pki_dir: PathBuf,
    /// Where this edge is, in degrees (placement and DNS steering use it).
    pub latitude: f64,
    pub longitude: f64,
    /// Participants this edge takes before the origin stops placing meetings on it.
    pub capacity: u32,
    /// Where to dial some peers instead of the relay address the origin lists for them: a
    /// proxy in between, such as `arbor up`'s impairment proxies. The TLS server name stays
    /// the peer's node name, so the peer is still authenticated.
    pub peer_addrs: BTreeMap<EdgeId, SocketAddr>,
}

impl Default for Backbone {
    fn default() -> Self {
        Backbone {
            enabled: false,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)), 7890),
            public_addr: None,
            origin: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 7790),
            pki_dir: PathBuf::from(".arbor/pki"),
            latitude: 0.0,
            longitude: 0.0,
            capacity: 10_000,
            peer_addrs: BTreeMap::new(),
        }
    }
}

impl Backbone {
    /// The relay address other edges dial: `public_addr` if set, else `listen`.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr.unwrap_or(self.listen)
    }
}

/// `[auth]`: who may mint tokens for this edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Let the edge mint tokens for its own web page (`POST /v1/dev/token`; `arbor up`,
    /// demos). Anyone who can reach the edge can then join any meeting: never on a public
    /// edge.
    pub dev_tokens: bool,
    /// API key → secret. Pass `&cfg.auth.keys` to `relay_proto::token::verify`.
    pub keys: BTreeMap<String, Secret>,
}

/// `[limits]`: per-meeting and per-worker bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_participants: usize,
    pub max_chat_len: usize,
    pub chat_history: usize,
    pub resume_grace_s: u64,
    pub max_subscriptions_per_participant: usize,
    pub max_meetings_per_worker: usize,
}

/// `[health]`: the thresholds past which `/readyz` answers 503, so that anycast and DNS
/// health checks send new clients elsewhere (`crate::health`). Draining always does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Health {
    /// Not ready at or above this share of the machine's CPU (all cores), averaged over the
    /// last few seconds; 0 < max_cpu ≤ 1.
    pub max_cpu: f64,
    /// Not ready at or above this many sessions: meeting participants plus WHIP/WHEP
    /// sessions.
    pub max_sessions: u64,
    /// Not ready once the origin has been unreachable for this long while the edge hosts no
    /// meeting (an edge that hosts one keeps serving it: the data plane does not need the
    /// origin). Only with the backbone on.
    pub origin_grace_s: u64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            max_cpu: 0.9,
            max_sessions: 10_000,
            origin_grace_s: 10,
        }
    }
}

/// `[log]`: what the edge logs and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A `tracing_subscriber::EnvFilter` directive: `info`, `warn,arbor_edge=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// An API secret. `Debug` does not show it; [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing and for writing config files.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

const DEFAULT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1));

impl Default for Edge {
    fn default() -> Self {
        Self {
            id: EdgeId::new("local-1").expect("a valid literal"),
            region: RegionId::new("local").expect("a valid literal"),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(DEFAULT_IP, 7880),
            public_url: None,
            max_body_bytes: 64 * 1024,
            cors_origins: vec!["*".to_owned()],
        }
    }
}

impl Default for Media {
    fn default() -> Self {
        Self {
            bind: DEFAULT_IP,
            public_ip: None,
            udp_port: 7882,
            tcp_port: 7982,
            workers: 0,
            send_side_bwe: true,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_participants: 100,
            max_chat_len: 2000,
            chat_history: 100,
            resume_grace_s: 30,
            max_subscriptions_per_participant: 128,
            max_meetings_per_worker: 1000,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Http {
    /// The base URL clients use to reach this edge, without a trailing slash:
    /// `public_url` if set, else `http://<listen>`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

impl Media {
    /// The address put in ICE candidates: `public_ip` if set, else `bind`.
    pub fn public_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.bind)
    }

    /// How many media workers to run: `workers`, or one per core when it is 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

impl Config {
    /// The embedded development configuration: the defaults above plus `dev_tokens = true`
    /// and the well-known key [`DEV_API_KEY`] = [`DEV_API_SECRET`]. Loopback only.
    /// `arbor up` starts from this and replaces the key with a fresh one.
    pub fn dev_default() -> Self {
        let mut cfg = Self::default();
        cfg.auth.dev_tokens = true;
        cfg.auth
            .keys
            .insert(DEV_API_KEY.to_owned(), Secret::new(DEV_API_SECRET));
        cfg
    }

    /// The configuration as a TOML file, secrets included (`arbor up` writes it).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("every field of Config has a TOML form")
    }

    /// A copy with every secret replaced by `"<redacted>"`, for printing.
    pub fn redacted(&self) -> Self {
        let mut cfg = self.clone();
        for secret in cfg.auth.keys.values_mut() {
            *secret = Secret::new("<redacted>");
        }
        cfg
    }

    /// Checks the configuration as a whole and reports every problem found, each with the
    /// path of the key at fault. `workers = 0` is resolved with this machine's core count.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_workers(self.media.worker_count())
    }

    fn validate_with_workers(&self, workers: usize) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        self.check_http(&mut problems);
        self.check_media(&mut problems, workers);
        self.check_auth(&mut problems);
        self.check_limits(&mut problems);
        self.check_backbone(&mut problems);
        self.check_health(&mut problems);
        check_log_level(&mut problems, &self.log.level);
        problems.into_result()
    }

    fn check_backbone(&self, p: &mut Problems) {
        let b = &self.backbone;
        if !b.enabled {
            return;
        }
        if !(-90.0..=90.0).contains(&b.latitude) {
            p.add(
                "backbone.latitude",
                format!("{} is not a latitude (-90..=90)", b.latitude),
            );
        }
        if !(-180.0..=180.0).contains(&b.longitude) {
            p.add(
                "backbone.longitude",
                format!("{} is not a longitude (-180..=180)", b.longitude),
            );
        }
        if b.capacity == 0 {
            p.add("backbone.capacity", "must be at least 1");
        }
        if b.public_addr().ip().is_unspecified() {
            p.add(
                "backbone.public_addr",
                "other edges cannot dial an unspecified address; set public_addr",
            );
        }
        if b.peer_addrs.len() > MAX_PEER_ADDRS {
            p.add(
                "backbone.peer_addrs",
                format!("more than the limit of {MAX_PEER_ADDRS} entries"),
            );
        }
        for (peer, addr) in &b.peer_addrs {
            if *peer == self.edge.id {
                p.add(
                    "backbone.peer_addrs",
                    format!("{peer} is this edge itself; an edge never dials itself"),
                );
            }
            if addr.ip().is_unspecified() || addr.port() == 0 {
                p.add(
                    "backbone.peer_addrs",
                    format!("{peer} = {addr} cannot be dialled; give a concrete address and port"),
                );
            }
        }
    }

    fn check_health(&self, p: &mut Problems) {
        let h = &self.health;
        if !(h.max_cpu > 0.0 && h.max_cpu <= 1.0) {
            p.add(
                "health.max_cpu",
                format!(
                    "{} is not a share of the machine's CPU (0 < max_cpu <= 1)",
                    h.max_cpu
                ),
            );
        }
        if !(1..=10_000_000).contains(&h.max_sessions) {
            p.add(
                "health.max_sessions",
                format!("{} is outside 1..=10000000", h.max_sessions),
            );
        }
        if h.origin_grace_s > 3600 {
            p.add(
                "health.origin_grace_s",
                format!("{} is outside 0..=3600", h.origin_grace_s),
            );
        }
    }

    fn check_http(&self, p: &mut Problems) {
        let http = &self.http;
        if http.listen.port() == 0 {
            p.add(
                "http.listen",
                "a fixed port is required (clients must know it)",
            );
        }
        if http.public_url.is_none() && http.listen.ip().is_unspecified() {
            p.add(
                "http.public_url",
                format!(
                    "required when http.listen is a wildcard address ({}): clients cannot \
                     connect to it",
                    http.listen.ip()
                ),
            );
        }
        if let Some(url) = &http.public_url
            && let Err(why) = check_base_url(url)
        {
            p.add("http.public_url", format!("{url:?} {why}"));
        }
        if http.max_body_bytes < 1024 || http.max_body_bytes > MAX_BODY_BYTES {
            p.add(
                "http.max_body_bytes",
                format!(
                    "{} is outside 1024..={MAX_BODY_BYTES} (an SDP offer needs a few KiB)",
                    http.max_body_bytes
                ),
            );
        }
        for origin in &http.cors_origins {
            if origin != "*"
                && let Err(why) = check_base_url(origin)
            {
                p.add(
                    "http.cors_origins",
                    format!("{origin:?} is neither \"*\" nor an origin: it {why}"),
                );
            }
        }
    }

    fn check_media(&self, p: &mut Problems, workers: usize) {
        let media = &self.media;
        if media.public_ip.is_none() && media.bind.is_unspecified() {
            p.add(
                "media.public_ip",
                format!(
                    "required when media.bind is a wildcard address ({}): ICE candidates \
                     must carry an address clients can reach",
                    media.bind
                ),
            );
        }
        if media.public_ip.is_some_and(|ip| ip.is_unspecified()) {
            p.add(
                "media.public_ip",
                "must be a concrete address, not a wildcard",
            );
        }
        if media.workers > MAX_WORKERS {
            p.add(
                "media.workers",
                format!("{} is more than the limit of {MAX_WORKERS}", media.workers),
            );
            return;
        }
        let udp = port_range(p, "media.udp_port", media.udp_port, workers);
        let relay = self.backbone.listen;
        let same_ip =
            |ip: IpAddr| ip == media.bind || ip.is_unspecified() || media.bind.is_unspecified();
        if let Some(udp) = udp
            && self.backbone.enabled
            && same_ip(relay.ip())
            && (udp.0..=udp.1).contains(&u32::from(relay.port()))
        {
            p.add(
                "media.udp_port",
                format!(
                    "port range udp_port..udp_port+workers ({}..={}) includes the backbone's \
                     QUIC port {} of backbone.listen; a worker could not bind it",
                    udp.0,
                    udp.1,
                    relay.port()
                ),
            );
        }
        let tcp = match media.tcp_port {
            0 => None,
            port => port_range(p, "media.tcp_port", port, workers),
        };
        let (Some(udp), Some(tcp)) = (udp, tcp) else {
            return;
        };
        if udp.0 <= tcp.1 && tcp.0 <= udp.1 {
            p.add(
                "media.udp_port",
                format!(
                    "port range udp_port..udp_port+workers ({}..={}) overlaps tcp_port..\
                     tcp_port+workers ({}..={}); keep them apart so a port number names one \
                     socket",
                    udp.0, udp.1, tcp.0, tcp.1
                ),
            );
        }
        let http_port = u32::from(self.http.listen.port());
        if tcp.0 <= http_port && http_port <= tcp.1 {
            p.add(
                "media.tcp_port",
                format!(
                    "port range tcp_port..tcp_port+workers ({}..={}) includes the HTTP port \
                     {http_port} of http.listen",
                    tcp.0, tcp.1
                ),
            );
        }
    }

    fn check_auth(&self, p: &mut Problems) {
        let keys = &self.auth.keys;
        if keys.is_empty() {
            p.add(
                "auth.keys",
                "at least one API key is required, e.g. [auth.keys] mykey = \"<32+ random bytes>\"",
            );
        }
        let loopback_only =
            self.http.listen.ip().is_loopback() && self.media.public_ip().is_loopback();
        for (key, secret) in keys {
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                p.add(
                    "auth.keys",
                    format!("API key {key:?} may only contain letters, digits, '-', '_' and '.'"),
                );
            }
            if secret.expose().len() < MIN_SECRET_LEN {
                p.add(
                    "auth.keys",
                    format!(
                        "secret for {key:?} is shorter than {MIN_SECRET_LEN} bytes ({} bytes)",
                        secret.expose().len()
                    ),
                );
            }
            if secret.expose() == DEV_API_SECRET && !loopback_only {
                p.add(
                    "auth.keys",
                    format!(
                        "{key:?} uses the well-known development secret, but this edge is \
                         reachable from other hosts: generate a real secret"
                    ),
                );
            }
        }
    }

    fn check_limits(&self, p: &mut Problems) {
        let l = &self.limits;
        let bounds: [(&str, usize, usize, usize); 6] = [
            ("limits.max_participants", l.max_participants, 1, 10_000),
            ("limits.max_chat_len", l.max_chat_len, 1, 32_768),
            ("limits.chat_history", l.chat_history, 0, 10_000),
            (
                "limits.max_subscriptions_per_participant",
                l.max_subscriptions_per_participant,
                1,
                4096,
            ),
            (
                "limits.max_meetings_per_worker",
                l.max_meetings_per_worker,
                1,
                1_000_000,
            ),
            (
                "limits.resume_grace_s",
                usize::try_from(l.resume_grace_s).unwrap_or(usize::MAX),
                0,
                3600,
            ),
        ];
        for (path, value, min, max) in bounds {
            if value < min || value > max {
                p.add(path, format!("{value} is outside {min}..={max}"));
            }
        }
    }
}

/// `first..first+count` as inclusive `u32` bounds, or a problem if it leaves the port space.
fn port_range(p: &mut Problems, path: &str, first: u16, count: usize) -> Option<(u32, u32)> {
    if first == 0 {
        p.add(path, "must be a fixed port (1-65535)");
        return None;
    }
    let count = u32::try_from(count.max(1)).unwrap_or(u32::MAX);
    let last = u32::from(first).saturating_add(count - 1);
    if last > u32::from(u16::MAX) {
        p.add(
            path,
            format!(
                "{first} + {count} workers runs past port 65535; lower the port or the workers"
            ),
        );
        return None;
    }
    Some((u32::from(first), last))
}

/// `Ok` for `http(s)://host[:port]` with an optional path; `Err(why)` otherwise.
fn check_base_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("does not start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    if url.contains(['?', '#']) {
        return Err("has a query or fragment");
    }
    Ok(())
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn check_log_level(p: &mut Problems, level: &str) {
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            p.add(
                "log.level",
                format!(
                    "{directive:?} is neither a level ({}) nor a target=level directive",
                    LEVELS.join(", ")
                ),
            );
        }
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
        p.add("log.level", format!("{level:?}: {e}"));
    }
}

/// One thing wrong with a configuration: where (`media.udp_port`, or an environment variable
/// such as `ARBOR_MEDIA_WORKERS`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), ConfigError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(self.0)),
        }
    }
}

/// Why a configuration could not be loaded or is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type. The message has the line.
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// Bad environment overrides, or a configuration that does not validate.
    #[error("invalid configuration:{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found, when the error is a list of them.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// Reads the configuration: `path` if given (else [`Config::dev_default`]), then the
/// `ARBOR_*` variables in `env`. Pass [`process_env`] in a binary, a literal list in tests.
/// Does not [`validate`](Config::validate).
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut cfg = match path {
        None => Config::dev_default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            parse(&text).map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?
        }
    };
    let mut problems = Problems::default();
    for (var, value) in env {
        if let Err(message) = apply_env(&mut cfg, &var, &value) {
            problems.0.push(Problem { path: var, message });
        }
    }
    problems.into_result()?;
    Ok(cfg)
}

/// Parses a configuration file's text (no environment, no validation).
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// The process environment's `ARBOR_*` variables, for [`load`]. Unlike `std::env::vars`, it
/// does not panic on values that are not UTF-8 (they are passed on, mangled, and refused by
/// the setting they were meant for).
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| {
        let k = k.into_string().ok()?;
        k.starts_with(ENV_PREFIX)
            .then(|| (k, v.to_string_lossy().into_owned()))
    })
}

/// Every key that an `ARBOR_<SECTION>_<KEY>` variable can set, as `(section, key)`.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("edge", "id"),
    ("edge", "region"),
    ("http", "listen"),
    ("http", "public_url"),
    ("http", "max_body_bytes"),
    ("http", "cors_origins"),
    ("media", "bind"),
    ("media", "public_ip"),
    ("media", "udp_port"),
    ("media", "tcp_port"),
    ("media", "workers"),
    ("media", "send_side_bwe"),
    ("backbone", "enabled"),
    ("backbone", "listen"),
    ("backbone", "public_addr"),
    ("backbone", "origin"),
    ("backbone", "pki_dir"),
    ("backbone", "latitude"),
    ("backbone", "longitude"),
    ("backbone", "capacity"),
    ("backbone", "peer_addrs"),
    ("auth", "dev_tokens"),
    ("auth", "keys"),
    ("limits", "max_participants"),
    ("limits", "max_chat_len"),
    ("limits", "chat_history"),
    ("limits", "resume_grace_s"),
    ("limits", "max_subscriptions_per_participant"),
    ("limits", "max_meetings_per_worker"),
    ("health", "max_cpu"),
    ("health", "max_sessions"),
    ("health", "origin_grace_s"),
    ("log", "level"),
    ("log", "format"),
];

/// Applies one variable. Variables outside the known sections (`ARBOR_DATA_DIR`, …) belong to
/// other tools and are ignored; an unknown key inside a known section is an error (a typo).
fn apply_env(cfg: &mut Config, var: &str, value: &str) -> Result<(), String> {
    let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    let Some((section, key)) = rest.split_once('_') else {
        return Ok(());
    };
    let section = section.to_ascii_lowercase();
    let key = key.to_ascii_lowercase();
    if !ENV_KEYS.iter().any(|(s, _)| *s == section) {
        return Ok(());
    }
    let c = cfg;
    match (section.as_str(), key.as_str()) {
        ("edge", "id") => c.edge.id = typed(value)?,
        ("edge", "region") => c.edge.region = typed(value)?,
        ("http", "listen") => c.http.listen = typed(value)?,
        ("http", "public_url") => c.http.public_url = Some(value.to_owned()),
        ("http", "max_body_bytes") => c.http.max_body_bytes = typed(value)?,
        ("http", "cors_origins") => c.http.cors_origins = comma_list(value),
        ("media", "bind") => c.media.bind = typed(value)?,
        ("media", "public_ip") => c.media.public_ip = Some(typed(value)?),
        ("media", "udp_port") => c.media.udp_port = typed(value)?,
        ("media", "tcp_port") => c.media.tcp_port = typed(value)?,
        ("media", "workers") => c.media.workers = typed(value)?,
        ("media", "send_side_bwe") => c.media.send_side_bwe = boolean(value)?,
        ("backbone", "enabled") => c.backbone.enabled = boolean(value)?,
        ("backbone", "listen") => c.backbone.listen = typed(value)?,
        ("backbone", "public_addr") => c.backbone.public_addr = Some(typed(value)?),
        ("backbone", "origin") => c.backbone.origin = typed(value)?,
        ("backbone", "pki_dir") => c.backbone.pki_dir = PathBuf::from(value),
        ("backbone", "latitude") => c.backbone.latitude = typed(value)?,
        ("backbone", "longitude") => c.backbone.longitude = typed(value)?,
        ("backbone", "capacity") => c.backbone.capacity = typed(value)?,
        ("backbone", "peer_addrs") => c.backbone.peer_addrs = peer_map(value)?,
        ("auth", "dev_tokens") => c.auth.dev_tokens = boolean(value)?,
        ("auth", "keys") => c.auth.keys = key_map(value)?,
        ("limits", "max_participants") => c.limits.max_participants = typed(value)?,
        ("limits", "max_chat_len") => c.limits.max_chat_len = typed(value)?,
        ("limits", "chat_history") => c.limits.chat_history = typed(value)?,
        ("limits", "resume_grace_s") => c.limits.resume_grace_s = typed(value)?,
        ("limits", "max_subscriptions_per_participant") => {
            c.limits.max_subscriptions_per_participant = typed(value)?;
        }
        ("limits", "max_meetings_per_worker") => c.limits.max_meetings_per_worker = typed(value)?,
        ("health", "max_cpu") => c.health.max_cpu = typed(value)?,
        ("health", "max_sessions") => c.health.max_sessions = typed(value)?,
        ("health", "origin_grace_s") => c.health.origin_grace_s = typed(value)?,
        ("log", "level") => c.log.level = value.to_owned(),
        ("log", "format") => {
            c.log.format = match value.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("expected \"text\" or \"json\", got {value:?}")),
            }
        }
        _ => {
            let known: Vec<String> = ENV_KEYS
                .iter()
                .filter(|(s, _)| *s == section)
                .map(|(s, k)| format!("{ENV_PREFIX}{s}_{k}").to_ascii_uppercase())
                .collect();
            return Err(format!(
                "not a setting of [{section}]; known: {}",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn typed<T: FromStr>(value: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e| format!("cannot use {value:?}: {e}"))
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn key_map(value: &str) -> Result<BTreeMap<String, Secret>, String> {
    let mut keys = BTreeMap::new();
    for pair in comma_list(value) {
        let Some((key, secret)) = pair.split_once('=') else {
            return Err("expected key1=secret1,key2=secret2, but an entry has no '='".into());
        };
        keys.insert(key.trim().to_owned(), Secret::new(secret.trim()));
    }
    Ok(keys)
}

/// `id1=addr1,id2=addr2` (the form of `ARBOR_BACKBONE_PEER_ADDRS`).
fn peer_map(value: &str) -> Result<BTreeMap<EdgeId, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for pair in comma_list(value) {
        let Some((id, addr)) = pair.split_once('=') else {
            return Err(format!(
                "expected edge1=127.0.0.1:7800,edge2=…, but {pair:?} has no '='"
            ));
        };
        peers.insert(typed(id)?, typed(addr)?);
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn problems_of(cfg: &Config, workers: usize) -> Vec<String> {
        match cfg.validate_with_workers(workers) {
            Ok(()) => Vec::new(),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    fn one_problem(cfg: &Config) -> String {
        let problems = problems_of(cfg, 2);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems[0].clone()
    }

    fn secret32() -> Secret {
        Secret::new("x".repeat(MIN_SECRET_LEN))
    }

    #[test]
    fn defaults() {
        let cfg = Config::dev_default();
        assert_eq!(cfg.edge.id.as_str(), "local-1");
        assert_eq!(cfg.edge.region.as_str(), "local");
        assert_eq!(cfg.http.listen, "127.0.1.1:7880".parse().unwrap());
        assert_eq!(cfg.http.public_url(), "http://127.0.1.1:7880");
        assert_eq!(cfg.http.max_body_bytes, 65536);
        assert_eq!(cfg.http.cors_origins, ["*"]);
        assert_eq!(cfg.media.bind, DEFAULT_IP);
        assert_eq!(cfg.media.public_ip(), DEFAULT_IP);
        assert_eq!((cfg.media.udp_port, cfg.media.tcp_port), (7882, 7982));
        assert_eq!(cfg.media.workers, 0);
        assert!(cfg.media.send_side_bwe);
        assert!(cfg.media.worker_count() >= 1);
        assert!(cfg.auth.dev_tokens);
        assert_eq!(cfg.limits, Limits::default());
        assert_eq!(cfg.limits.max_participants, 100);
        assert_eq!(cfg.log.level, "info");
        assert_eq!(cfg.log.format, LogFormat::Text);
        cfg.validate().unwrap();
        // An empty file is the defaults, without any key.
        let empty = parse("").unwrap();
        assert_eq!(empty, Config::default());
        assert!(!empty.auth.dev_tokens);
        let problems = problems_of(&empty, 2);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("auth.keys: at least one API key"));
    }

    #[test]
    fn load_without_file_is_dev_default() {
        let cfg = load(None, Vec::new()).unwrap();
        assert_eq!(cfg, Config::dev_default());
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("arbor-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edge.toml");
        std::fs::write(
            &path,
            "[edge]\nid = \"fra-1\"\n[auth.keys]\nk = \"0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap();
        let cfg = load(Some(&path), Vec::new()).unwrap();
        assert_eq!(cfg.edge.id.as_str(), "fra-1");
        assert_eq!(cfg.http, Http::default());
        cfg.validate().unwrap();

        let missing = dir.join("nope.toml");
        let e = load(Some(&missing), Vec::new()).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("nope.toml"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let source = include_str!("config.rs");
        let start = source.find("/// ```toml\n").unwrap() + "/// ```toml\n".len();
        let end = start + source[start..].find("/// ```\n").unwrap();
        let example: String = source[start..end]
            .lines()
            .map(|l| {
                l.trim_start()
                    .trim_start_matches("///")
                    .strip_prefix(' ')
                    .unwrap_or("")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = parse(&example).unwrap();
        let mut expected = Config::default();
        expected.auth.keys.insert(
            "APIj3kd8s2mQ".into(),
            Secret::new("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"),
        );
        assert_eq!(cfg, expected, "the doc example must show the defaults");
        cfg.validate().unwrap();
    }

    #[test]
    fn toml_round_trip() {
        let mut cfg = Config::dev_default();
        cfg.http.public_url = Some("https://edge.example.com".into());
        cfg.media.public_ip = Some("203.0.113.7".parse().unwrap());
        cfg.log.format = LogFormat::Json;
        let text = cfg.to_toml();
        assert_eq!(parse(&text).unwrap(), cfg, "{text}");
        let redacted = cfg.redacted().to_toml();
        assert!(!redacted.contains(DEV_API_SECRET), "{redacted}");
        assert!(!format!("{cfg:?}").contains(DEV_API_SECRET));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[http]\nlistne = \"0.0.0.0:80\"\n").unwrap_err();
        assert!(e.contains("unknown field `listne`"), "{e}");
        assert!(e.contains("`listen`"), "should list the valid keys: {e}");
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[mdia]\n").unwrap_err();
        assert!(e.contains("unknown field `mdia`"), "{e}");
        let e = parse("[media]\nudp_port = \"x\"\n").unwrap_err();
        assert!(e.contains("udp_port"), "{e}");
        let e = parse("[http]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(e.contains("invalid socket address"), "{e}");
        let e = parse("[edge]\nid = \"a b\"\n").unwrap_err();
        assert!(e.contains("edge id may only contain"), "{e}");
    }

    #[test]
    fn env_overrides() {
        let cfg = load(
            None,
            env(&[
                ("ARBOR_EDGE_ID", "fra-2"),
                ("ARBOR_EDGE_REGION", "eu-central"),
                ("ARBOR_HTTP_LISTEN", "127.0.2.1:8080"),
                ("ARBOR_HTTP_PUBLIC_URL", "https://fra-2.example.com/"),
                ("ARBOR_HTTP_MAX_BODY_BYTES", "4096"),
                (
                    "ARBOR_HTTP_CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("ARBOR_MEDIA_BIND", "127.0.2.1"),
                ("ARBOR_MEDIA_PUBLIC_IP", "127.0.2.2"),
                ("ARBOR_MEDIA_UDP_PORT", "9000"),
                ("ARBOR_MEDIA_TCP_PORT", "0"),
                ("ARBOR_MEDIA_WORKERS", "4"),
                ("ARBOR_MEDIA_SEND_SIDE_BWE", "false"),
                ("ARBOR_AUTH_DEV_TOKENS", "false"),
                (
                    "ARBOR_AUTH_KEYS",
                    "k1=0123456789abcdef0123456789abcdef,k2=a=b",
                ),
                ("ARBOR_LIMITS_MAX_PARTICIPANTS", "50"),
                ("ARBOR_LIMITS_MAX_CHAT_LEN", "500"),
                ("ARBOR_LIMITS_CHAT_HISTORY", "10"),
                ("ARBOR_LIMITS_RESUME_GRACE_S", "60"),
                ("ARBOR_LIMITS_MAX_SUBSCRIPTIONS_PER_PARTICIPANT", "64"),
                ("ARBOR_LIMITS_MAX_MEETINGS_PER_WORKER", "10"),
                ("ARBOR_HEALTH_MAX_CPU", "0.75"),
                ("ARBOR_HEALTH_MAX_SESSIONS", "500"),
                ("ARBOR_HEALTH_ORIGIN_GRACE_S", "3"),
                ("ARBOR_LOG_LEVEL", "debug"),
                ("ARBOR_LOG_FORMAT", "JSON"),
                // Not ours: ignored.
                ("ARBOR_DATA_DIR", "/tmp/x"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.edge.id.as_str(), "fra-2");
        assert_eq!(cfg.edge.region.as_str(), "eu-central");
        assert_eq!(cfg.http.listen, "127.0.2.1:8080".parse().unwrap());
        assert_eq!(cfg.http.public_url(), "https://fra-2.example.com");
        assert_eq!(cfg.http.max_body_bytes, 4096);
        assert_eq!(
            cfg.http.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            cfg.media.public_ip(),
            "127.0.2.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!((cfg.media.udp_port, cfg.media.tcp_port), (9000, 0));
        assert_eq!(cfg.media.worker_count(), 4);
        assert!(!cfg.media.send_side_bwe);
        assert!(!cfg.auth.dev_tokens);
        assert_eq!(cfg.auth.keys.len(), 2);
        assert_eq!(cfg.auth.keys["k2"].expose(), "a=b");
        assert_eq!(cfg.limits.max_participants, 50);
        assert_eq!(cfg.limits.max_chat_len, 500);
        assert_eq!(cfg.limits.chat_history, 10);
        assert_eq!(cfg.limits.resume_grace_s, 60);
        assert_eq!(cfg.limits.max_subscriptions_per_participant, 64);
        assert_eq!(cfg.limits.max_meetings_per_worker, 10);
        assert_eq!(cfg.health.max_cpu, 0.75);
        assert_eq!(cfg.health.max_sessions, 500);
        assert_eq!(cfg.health.origin_grace_s, 3);
        assert_eq!(cfg.log.level, "debug");
        assert_eq!(cfg.log.format, LogFormat::Json);
    }

    #[test]
    fn env_overrides_beat_the_file() {
        let dir = std::env::temp_dir().join(format!("arbor-config-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edge.toml");
        std::fs::write(&path, "[media]\nworkers = 2\n").unwrap();
        let cfg = load(Some(&path), env(&[("ARBOR_MEDIA_WORKERS", "3")])).unwrap();
        assert_eq!(cfg.media.workers, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = load(
            None,
            env(&[
                ("ARBOR_MEDIA_WORKERS", "many"),
                ("ARBOR_HTTP_LISTEN", "localhost"),
                ("ARBOR_AUTH_DEV_TOKENS", "maybe"),
                ("ARBOR_AUTH_KEYS", "justakey"),
                ("ARBOR_HTTP_LISTNE", "127.0.0.1:1"),
                ("ARBOR_MEDIA_UDP_PORT", "70000"),
                ("ARBOR_LOG_FORMAT", "xml"),
                ("ARBOR_EDGE_ID", "no spaces"),
            ]),
        )
        .unwrap_err();
        let text = e.to_string();
        let paths: Vec<&str> = e.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "ARBOR_MEDIA_WORKERS",
                "ARBOR_HTTP_LISTEN",
                "ARBOR_AUTH_DEV_TOKENS",
                "ARBOR_AUTH_KEYS",
                "ARBOR_HTTP_LISTNE",
                "ARBOR_MEDIA_UDP_PORT",
                "ARBOR_LOG_FORMAT",
                "ARBOR_EDGE_ID",
            ],
            "{text}"
        );
        assert!(
            text.contains("ARBOR_MEDIA_WORKERS: cannot use \"many\""),
            "{text}"
        );
        assert!(
            text.contains("ARBOR_HTTP_LISTNE: not a setting of [http]; known: ARBOR_HTTP_LISTEN"),
            "{text}"
        );
        assert!(!text.contains("justakey"), "secrets are not echoed: {text}");
    }

    #[test]
    fn env_keys_cover_every_setting() {
        let mut cfg = Config::dev_default();
        cfg.http.public_url = Some("http://x".into());
        cfg.media.public_ip = Some(DEFAULT_IP);
        cfg.backbone.public_addr = Some(cfg.backbone.listen);
        let table: toml::Table = toml::from_str(&cfg.to_toml()).unwrap();
        let mut from_toml = Vec::new();
        for (section, keys) in &table {
            for key in keys.as_table().unwrap().keys() {
                from_toml.push((section.clone(), key.clone()));
            }
        }
        from_toml.sort();
        let mut listed: Vec<(String, String)> = ENV_KEYS
            .iter()
            .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
            .collect();
        listed.sort();
        assert_eq!(from_toml, listed);
        // And each one is accepted by apply_env.
        for (s, k) in ENV_KEYS {
            let var = format!("ARBOR_{s}_{k}").to_ascii_uppercase();
            let r = apply_env(&mut Config::dev_default(), &var, "");
            assert!(
                r.as_ref()
                    .map_or_else(|e| !e.contains("not a setting"), |()| true),
                "{var}"
            );
        }
    }

    #[test]
    fn peer_addrs_from_the_file_and_the_environment() {
        let text = "[edge]\nid = \"ap-1\"\n[backbone]\nenabled = true\n\
                    [backbone.peer_addrs]\n\"us-1\" = \"127.0.0.1:7801\"\n";
        let mut cfg = parse(text).unwrap();
        cfg.auth.keys = BTreeMap::from([("k".into(), secret32())]);
        let us: EdgeId = "us-1".parse().unwrap();
        assert_eq!(
            cfg.backbone.peer_addrs[&us],
            "127.0.0.1:7801".parse().unwrap()
        );
        assert!(problems_of(&cfg, 2).is_empty());
        assert_eq!(parse(&cfg.to_toml()).unwrap(), cfg, "round trip");

        let var = "ARBOR_BACKBONE_PEER_ADDRS";
        apply_env(&mut cfg, var, "eu-1=127.0.0.1:7800, us-1=127.0.0.1:7802").unwrap();
        assert_eq!(cfg.backbone.peer_addrs.len(), 2);
        assert_eq!(
            cfg.backbone.peer_addrs[&us],
            "127.0.0.1:7802".parse().unwrap()
        );
        apply_env(&mut cfg, var, "").unwrap();
        assert!(cfg.backbone.peer_addrs.is_empty());
        for bad in ["us-1", "us 1=127.0.0.1:1", "us-1=localhost:1"] {
            assert!(apply_env(&mut cfg, var, bad).is_err(), "{bad}");
        }

        cfg.backbone.peer_addrs = BTreeMap::from([
            ("ap-1".parse().unwrap(), "127.0.0.1:7800".parse().unwrap()),
            (us, "0.0.0.0:7801".parse().unwrap()),
        ]);
        let p = problems_of(&cfg, 2);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].contains("ap-1 is this edge itself"), "{p:#?}");
        assert!(
            p[1].contains("us-1 = 0.0.0.0:7801 cannot be dialled"),
            "{p:#?}"
        );
    }

    #[test]
    fn validation_port_ranges() {
        let mut cfg = Config::dev_default();
        cfg.media.udp_port = 7900;
        cfg.media.tcp_port = 7903;
        let p = problems_of(&cfg, 4);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("media.udp_port: port range udp_port..udp_port+workers (7900..=7903) overlaps tcp_port"),
            "{p:#?}"
        );
        assert!(problems_of(&cfg, 3).is_empty());

        cfg.media.udp_port = 65535;
        assert!(one_problem(&cfg).contains("runs past port 65535"));
        cfg.media.udp_port = 0;
        assert!(one_problem(&cfg).starts_with("media.udp_port: must be a fixed port"));

        let mut cfg = Config::dev_default();
        cfg.media.tcp_port = 7879;
        assert!(one_problem(&cfg).contains("includes the HTTP port 7880"));
        cfg.media.tcp_port = 0;
        assert!(problems_of(&cfg, 100).is_empty(), "tcp 0 disables ICE-TCP");

        cfg.media.workers = MAX_WORKERS + 1;
        assert!(one_problem(&cfg).starts_with("media.workers:"));
    }

    #[test]
    fn validation_addresses() {
        let mut cfg = Config::dev_default();
        cfg.auth.keys = BTreeMap::from([("k".into(), secret32())]);
        cfg.http.listen = "0.0.0.0:7880".parse().unwrap();
        assert!(one_problem(&cfg).starts_with("http.public_url: required when http.listen"));
        cfg.http.public_url = Some("ftp://x".into());
        assert!(one_problem(&cfg).contains("does not start with http://"));
        cfg.http.public_url = Some("https://edge.example.com".into());
        assert!(problems_of(&cfg, 2).is_empty());

        cfg.media.bind = "0.0.0.0".parse().unwrap();
        assert!(one_problem(&cfg).starts_with("media.public_ip: required when media.bind"));
        cfg.media.public_ip = Some("203.0.113.7".parse().unwrap());
        assert!(problems_of(&cfg, 2).is_empty());

        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        assert!(one_problem(&cfg).starts_with("http.listen: a fixed port"));
        cfg.http.listen = "127.0.0.1:80".parse().unwrap();
        cfg.http.cors_origins = vec!["*".into(), "example.com".into()];
        assert!(one_problem(&cfg).starts_with("http.cors_origins: \"example.com\""));
    }

    #[test]
    fn media_ports_must_leave_the_backbone_port_free() {
        let mut cfg = Config::default();
        cfg.backbone.enabled = true;
        cfg.media.udp_port = 7882;
        cfg.media.workers = 16;
        cfg.backbone.listen = SocketAddr::new(cfg.media.bind, 7890);
        let problems = cfg.validate().unwrap_err().to_string();
        assert!(
            problems.contains("includes the backbone's QUIC port 7890"),
            "{problems}"
        );
        cfg.media.udp_port = 7900;
        assert!(
            !cfg.validate()
                .err()
                .is_some_and(|e| e.to_string().contains("QUIC port"))
        );
    }

    #[test]
    fn validation_keys() {
        let mut cfg = Config::dev_default();
        cfg.auth.keys = BTreeMap::from([("devkey".into(), Secret::new("short"))]);
        assert_eq!(
            one_problem(&cfg),
            "auth.keys: secret for \"devkey\" is shorter than 32 bytes (5 bytes)"
        );
        cfg.auth.keys = BTreeMap::from([("bad key".into(), secret32())]);
        assert!(one_problem(&cfg).contains("\"bad key\" may only contain"));
        cfg.auth.keys.clear();
        assert!(one_problem(&cfg).starts_with("auth.keys: at least one API key is required"));

        // The well-known dev secret is for loopback only.
        let mut cfg = Config::dev_default();
        cfg.media.public_ip = Some("203.0.113.7".parse().unwrap());
        assert!(one_problem(&cfg).contains("well-known development secret"));
    }

    #[test]
    fn validation_health() {
        let mut cfg = Config::dev_default();
        assert_eq!(cfg.health, Health::default());
        for bad in [0.0, -0.5, 1.01, f64::NAN] {
            cfg.health.max_cpu = bad;
            assert!(
                one_problem(&cfg).starts_with("health.max_cpu:"),
                "{bad}: {:?}",
                problems_of(&cfg, 2)
            );
        }
        cfg.health.max_cpu = 1.0;
        cfg.health.max_sessions = 0;
        assert_eq!(
            one_problem(&cfg),
            "health.max_sessions: 0 is outside 1..=10000000"
        );
        cfg.health.max_sessions = 1;
        cfg.health.origin_grace_s = 3601;
        assert_eq!(
            one_problem(&cfg),
            "health.origin_grace_s: 3601 is outside 0..=3600"
        );
        cfg.health.origin_grace_s = 0;
        assert!(problems_of(&cfg, 2).is_empty());
        let e = load(None, env(&[("ARBOR_HEALTH_MAX_CPU", "most")])).unwrap_err();
        assert_eq!(e.problems()[0].path, "ARBOR_HEALTH_MAX_CPU");
    }

    #[test]
    fn validation_limits_and_log() {
        let mut cfg = Config::dev_default();
        cfg.limits.max_participants = 0;
        cfg.limits.max_chat_len = 1_000_000;
        cfg.limits.resume_grace_s = u64::MAX;
        cfg.http.max_body_bytes = 10;
        cfg.log.level = "inof".into();
        let p = problems_of(&cfg, 2);
        let paths: Vec<&str> = p.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "http.max_body_bytes",
                "limits.max_participants",
                "limits.max_chat_len",
                "limits.resume_grace_s",
                "log.level"
            ],
            "{p:#?}"
        );
        let text = cfg.validate_with_workers(2).unwrap_err().to_string();
        assert!(
            text.starts_with("invalid configuration:\n  - http.max_body_bytes: 10 is outside"),
            "{text}"
        );

        cfg = Config::dev_default();
        cfg.log.level = "warn,arbor_edge=debug,str0m=off".into();
        assert!(problems_of(&cfg, 2).is_empty());
        cfg.log.level = "arbor_edge=loud".into();
        assert!(one_problem(&cfg).starts_with("log.level:"));
    }
}
