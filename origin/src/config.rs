//! The origin's configuration: a TOML file, then `ARBOR_ORIGIN_<SECTION>_<KEY>` environment
//! overrides.
//!
//! ```no_run
//! # fn main() -> Result<(), arbor_origin::config::ConfigError> {
//! use arbor_origin::config;
//! let cfg = config::load(Some("origin.toml".as_ref()), config::process_env())?;
//! cfg.validate()?; // every problem at once, each with its path
//! # Ok(()) }
//! ```
//!
//! Layering, as for the edge: built-in defaults, then the file (keys it omits keep their
//! defaults), then the environment. Without a file the base is [`Config::dev_default`]. The
//! environment prefix is `ARBOR_ORIGIN_`, not the edge's `ARBOR_`, so that one shell can set
//! both an edge's `ARBOR_HTTP_LISTEN` and the origin's `ARBOR_ORIGIN_HTTP_LISTEN`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use relay_proto::RegionId;
use serde::{Deserialize, Serialize};

use crate::store::{Engine, redact_url};

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "ARBOR_ORIGIN_";

/// API key of [`Config::dev_default`], the edge's development key.
pub const DEV_API_KEY: &str = "devkey";

/// Secret of [`DEV_API_KEY`], the edge's. Refused unless the origin listens on loopback only.
pub const DEV_API_SECRET: &str = "arbor-dev-secret-never-use-in-production";

/// Shortest API secret accepted, in bytes (HS256 wants a key as long as its hash).
pub const MIN_SECRET_LEN: usize = 32;

/// Longest token lifetime the API mints: 24 hours.
pub const MAX_TTL_S: u64 = 24 * 3600;

/// Largest HTTP request body the origin can be configured to accept (1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Most regions a configuration may list.
pub const MAX_REGIONS: usize = 256;

/// Most pooled database connections.
pub const MAX_CONNECTIONS: u32 = 256;

/// The origin's configuration. Every key has a default; a file only lists what it changes.
///
/// An annotated file with every key at its default (except `[auth.keys]`, which has none):
///
/// ```toml
/// [http]                        # the REST API /v1, /livez, /readyz, /metrics
/// listen = "127.0.0.1:7870"
/// max_body_bytes = 16384        # largest request body
///
/// [store]
/// url = "sqlite://arbor-origin.db"  # or postgres://user:password@host:5432/database
/// max_connections = 8
///
/// [auth.keys]                   # API key = secret (at least one; secrets >= 32 bytes)
/// APIj3kd8s2mQ = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
///
/// [placement]
/// regions = ["local"]           # the regions edges serve; a join may name one of them
/// default_region = "local"      # where a join that names no region goes
/// load_factor = 1.25            # an edge may hold this much more than the region's average
///
/// [tokens]
/// default_ttl_s = 21600         # lifetime of minted join tokens when the request names none
///
/// [log]
/// level = "info"                # a level, or target=level directives: "info,arbor_origin=debug"
/// format = "text"               # "text" or "json"
///
/// [dns]                         # authoritative geo DNS for the zone (UDP and TCP)
/// enabled = false
/// listen = "127.0.0.1:7853"     # production: 0.0.0.0:53
/// zone = "arbor.test"           # the zone served; names outside it are REFUSED
/// entry = "edge"                # <entry>.<zone> answers the nearest healthy edge(s)
/// ttl_s = 30                    # TTL of every record, and of negative answers
/// answers = 1                   # edges per steered answer, nearest first (1 to 8)
/// nameservers = ["ns1"]         # NS names; relative to the zone unless they end in '.'
/// nameserver_ips = []           # addresses of the nameservers inside the zone
/// hostmaster = "hostmaster"     # the SOA's mailbox, relative to the zone unless it ends in '.'
/// geoip_db = ""                 # MaxMind database (.mmdb); "" = no locations (the join API
///                               # uses it too, even with DNS off)
/// rrl_responses_per_s = 20      # UDP answers per second per /24 or /56; 0 = no limit
/// rrl_slip = 2                  # every 2nd limited answer is sent truncated; 0 = drop all
/// ```
///
/// Any key can be overridden by `ARBOR_ORIGIN_<SECTION>_<KEY>`, upper case:
/// `ARBOR_ORIGIN_HTTP_LISTEN=0.0.0.0:443`, `ARBOR_ORIGIN_STORE_URL=postgres://…`,
/// `ARBOR_ORIGIN_PLACEMENT_REGIONS=eu,us`. The keys map is replaced as a whole by
/// `ARBOR_ORIGIN_AUTH_KEYS="key1=secret1,key2=secret2"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: Http,
    pub relay: Relay,
    pub store: Store,
    pub auth: Auth,
    pub placement: Placement,
    pub tokens: Tokens,
    pub log: Log,
    pub dns: Dns,
}

/// `[http]`: the API listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
}

/// `[store]`: where the origin keeps its state.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Store {
    /// `sqlite://path` (created if missing) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
}

/// `[auth]`: the API keys (the same pairs the edges accept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// API key → secret.
    pub keys: BTreeMap<String, Secret>,
}

/// `[placement]`: regions and the load bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Placement {
    pub regions: Vec<RegionId>,
    pub default_region: RegionId,
    pub load_factor: f64,
}

/// `[relay]`: the QUIC endpoint edges keep their control links to (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relay {
    /// Off: no edge can register, so joins find no edge (REST-only tests and tools).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Holds `ca.pem`, `origin.pem` and `origin.key` (see `docs/relay-tls.md`).
    pub pki_dir: PathBuf,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            enabled: false,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7790),
            pki_dir: PathBuf::from(".arbor/pki"),
        }
    }
}

/// `[dns]`: the authoritative geo DNS server (`crate::dns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    /// Off: no DNS server (the join API still steers with `geoip_db`).
    pub enabled: bool,
    /// UDP and TCP, same address and port.
    pub listen: SocketAddr,
    /// The zone served, e.g. `arbor.example.com`.
    pub zone: String,
    /// The label of the steered name, `<entry>.<zone>`.
    pub entry: String,
    /// TTL of every answer, and the negative-caching TTL (the SOA minimum).
    pub ttl_s: u32,
    /// Edges per steered answer, nearest first.
    pub answers: u32,
    /// The zone's NS names (the first is the SOA's primary).
    pub nameservers: Vec<String>,
    /// What the nameservers inside the zone resolve to (glue).
    pub nameserver_ips: Vec<IpAddr>,
    /// The SOA's responsible mailbox, as a domain name.
    pub hostmaster: String,
    /// A MaxMind database mapping addresses to locations; empty: none.
    pub geoip_db: PathBuf,
    /// Response rate limit per source prefix (UDP only); 0 turns it off.
    pub rrl_responses_per_s: u32,
    /// Every `rrl_slip`th limited response is sent truncated; 0 drops them all.
    pub rrl_slip: u32,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            enabled: false,
            listen: SocketAddr::new(DEFAULT_IP, 7853),
            zone: "arbor.test".to_owned(),
            entry: "edge".to_owned(),
            ttl_s: 30,
            answers: 1,
            nameservers: vec!["ns1".to_owned()],
            nameserver_ips: Vec::new(),
            hostmaster: "hostmaster".to_owned(),
            geoip_db: PathBuf::new(),
            rrl_responses_per_s: 20,
            rrl_slip: 2,
        }
    }
}

/// Longest TTL `[dns]` accepts: one day.
pub const MAX_DNS_TTL_S: u32 = 86_400;

/// Most nameservers `[dns]` lists.
pub const MAX_NAMESERVERS: usize = 16;

/// Largest `rrl_slip`.
pub const MAX_RRL_SLIP: u32 = 10;

/// `[tokens]`: join tokens minted by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tokens {
    pub default_ttl_s: u64,
}

/// `[log]`: what the origin logs and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
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

    /// The secret itself, for signing and comparing.
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

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

const DEFAULT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn local_region() -> RegionId {
    RegionId::new("local").expect("a valid literal")
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(DEFAULT_IP, 7870),
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self {
            url: "sqlite://arbor-origin.db".to_owned(),
            max_connections: 8,
        }
    }
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            regions: vec![local_region()],
            default_region: local_region(),
            load_factor: 1.25,
        }
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            default_ttl_s: 6 * 3600,
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

impl Config {
    /// The embedded development configuration: the defaults plus the edge's well-known
    /// development key [`DEV_API_KEY`]. Loopback only.
    pub fn dev_default() -> Self {
        let mut cfg = Self::default();
        cfg.auth
            .keys
            .insert(DEV_API_KEY.to_owned(), Secret::new(DEV_API_SECRET));
        cfg
    }

    /// How DNS and the join API steer clients: placement's CPU limit, and the default region
    /// as home for clients of unknown location.
    pub fn steering(&self) -> origin_core::steer::Policy {
        origin_core::steer::Policy {
            cpu_limit_permille: origin_core::placement::Config::default().cpu_limit_permille,
            home: Some(self.placement.default_region.clone()),
        }
    }

    /// The configuration as a TOML file, secrets included.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("every field of Config has a TOML form")
    }

    /// Checks the configuration as a whole and reports every problem found, each with the
    /// path of the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        if self.http.listen.port() == 0 {
            p.add(
                "http.listen",
                "a fixed port is required (clients must know it)",
            );
        }
        if !(1024..=MAX_BODY_BYTES).contains(&self.http.max_body_bytes) {
            p.add(
                "http.max_body_bytes",
                format!(
                    "{} is outside 1024..={MAX_BODY_BYTES}",
                    self.http.max_body_bytes
                ),
            );
        }
        self.check_store(&mut p);
        self.check_auth(&mut p);
        self.check_placement(&mut p);
        if !(60..=MAX_TTL_S).contains(&self.tokens.default_ttl_s) {
            p.add(
                "tokens.default_ttl_s",
                format!(
                    "{} is outside 60..={MAX_TTL_S} (one minute to 24 hours)",
                    self.tokens.default_ttl_s
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.add("log.level", format!("{:?}: {e}", self.log.level));
        }
        self.check_dns(&mut p);
        p.into_result()
    }

    fn check_dns(&self, p: &mut Problems) {
        let d = &self.dns;
        if let Err(e) = crate::dns::zone::Zone::new(d, 1) {
            let path = match &e {
                crate::dns::zone::ZoneError::BadEntry(_) => "dns.entry",
                crate::dns::zone::ZoneError::BadName { what: "zone", .. } => "dns.zone",
                crate::dns::zone::ZoneError::BadName {
                    what: "hostmaster", ..
                } => "dns.hostmaster",
                crate::dns::zone::ZoneError::BadName { .. } => "dns.nameservers",
            };
            p.add(path, e.to_string());
        }
        if d.enabled && d.listen.port() == 0 {
            p.add(
                "dns.listen",
                "a fixed port is required (resolvers must know it)",
            );
        }
        if !(1..=MAX_DNS_TTL_S).contains(&d.ttl_s) {
            p.add(
                "dns.ttl_s",
                format!("{} is outside 1..={MAX_DNS_TTL_S}", d.ttl_s),
            );
        }
        let most = origin_core::steer::MAX_STEERED as u32;
        if !(1..=most).contains(&d.answers) {
            p.add(
                "dns.answers",
                format!("{} is outside 1..={most}", d.answers),
            );
        }
        if d.nameservers.is_empty() || d.nameservers.len() > MAX_NAMESERVERS {
            p.add(
                "dns.nameservers",
                format!("list 1 to {MAX_NAMESERVERS} names"),
            );
        }
        if d.nameserver_ips.len() > MAX_NAMESERVERS {
            p.add(
                "dns.nameserver_ips",
                format!("list at most {MAX_NAMESERVERS} addresses"),
            );
        }
        if d.rrl_slip > MAX_RRL_SLIP {
            p.add(
                "dns.rrl_slip",
                format!("{} is outside 0..={MAX_RRL_SLIP}", d.rrl_slip),
            );
        }
        if !d.geoip_db.as_os_str().is_empty() && !d.geoip_db.is_file() {
            p.add(
                "dns.geoip_db",
                format!("{} is not a readable file", d.geoip_db.display()),
            );
        }
    }

    fn check_store(&self, p: &mut Problems) {
        if Engine::of_url(&self.store.url).is_none() {
            p.add(
                "store.url",
                format!(
                    "{:?} is neither sqlite://<path> nor postgres://<user>@<host>/<database>",
                    redact_url(&self.store.url)
                ),
            );
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.store.max_connections) {
            p.add(
                "store.max_connections",
                format!(
                    "{} is outside 1..={MAX_CONNECTIONS}",
                    self.store.max_connections
                ),
            );
        }
    }

    fn check_auth(&self, p: &mut Problems) {
        if self.auth.keys.is_empty() {
            p.add(
                "auth.keys",
                "at least one API key is required, e.g. [auth.keys] mykey = \"<32+ random bytes>\"",
            );
        }
        for (key, secret) in &self.auth.keys {
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
            if secret.expose() == DEV_API_SECRET && !self.http.listen.ip().is_loopback() {
                p.add(
                    "auth.keys",
                    format!(
                        "{key:?} uses the well-known development secret, but the origin is \
                         reachable from other hosts: generate a real secret"
                    ),
                );
            }
        }
    }

    fn check_placement(&self, p: &mut Problems) {
        let pl = &self.placement;
        if pl.regions.is_empty() || pl.regions.len() > MAX_REGIONS {
            p.add(
                "placement.regions",
                format!("list 1 to {MAX_REGIONS} regions"),
            );
        }
        if !pl.regions.contains(&pl.default_region) {
            p.add(
                "placement.default_region",
                format!("{} is not one of placement.regions", pl.default_region),
            );
        }
        if !(pl.load_factor >= 1.0 && pl.load_factor <= 10.0) {
            p.add(
                "placement.load_factor",
                format!("{} is outside 1.0..=10.0", pl.load_factor),
            );
        }
    }
}

/// One thing wrong with a configuration: where and what.
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
/// `ARBOR_ORIGIN_*` variables in `env`. Does not [`validate`](Config::validate).
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

/// The process environment's `ARBOR_ORIGIN_*` variables, for [`load`] (values that are not
/// UTF-8 are passed on mangled, and refused by the setting they were meant for).
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| {
        let k = k.into_string().ok()?;
        k.starts_with(ENV_PREFIX)
            .then(|| (k, v.to_string_lossy().into_owned()))
    })
}

/// Every key an `ARBOR_ORIGIN_<SECTION>_<KEY>` variable can set, as `(section, key)`.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("http", "listen"),
    ("http", "max_body_bytes"),
    ("relay", "enabled"),
    ("relay", "listen"),
    ("relay", "pki_dir"),
    ("store", "url"),
    ("store", "max_connections"),
    ("auth", "keys"),
    ("placement", "regions"),
    ("placement", "default_region"),
    ("placement", "load_factor"),
    ("tokens", "default_ttl_s"),
    ("log", "level"),
    ("log", "format"),
    ("dns", "enabled"),
    ("dns", "listen"),
    ("dns", "zone"),
    ("dns", "entry"),
    ("dns", "ttl_s"),
    ("dns", "answers"),
    ("dns", "nameservers"),
    ("dns", "nameserver_ips"),
    ("dns", "hostmaster"),
    ("dns", "geoip_db"),
    ("dns", "rrl_responses_per_s"),
    ("dns", "rrl_slip"),
];

/// Applies one variable. `ARBOR_ORIGIN_CONFIG` (the CLI's) and variables outside the known
/// sections are ignored; an unknown key inside a known section is an error (a typo).
fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

fn apply_env(cfg: &mut Config, var: &str, value: &str) -> Result<(), String> {
    let Some((section, key)) = var
        .strip_prefix(ENV_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(());
    };
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if !ENV_KEYS.iter().any(|(s, _)| *s == section) {
        return Ok(());
    }
    let c = cfg;
    match (section.as_str(), key.as_str()) {
        ("http", "listen") => c.http.listen = typed(value)?,
        ("http", "max_body_bytes") => c.http.max_body_bytes = typed(value)?,
        ("relay", "enabled") => c.relay.enabled = boolean(value)?,
        ("relay", "listen") => c.relay.listen = typed(value)?,
        ("relay", "pki_dir") => c.relay.pki_dir = PathBuf::from(value.trim()),
        ("store", "url") => c.store.url = value.trim().to_owned(),
        ("store", "max_connections") => c.store.max_connections = typed(value)?,
        ("auth", "keys") => c.auth.keys = key_map(value)?,
        ("placement", "regions") => {
            c.placement.regions = comma_list(value)
                .iter()
                .map(|r| typed(r))
                .collect::<Result<_, _>>()?;
        }
        ("placement", "default_region") => c.placement.default_region = typed(value)?,
        ("placement", "load_factor") => c.placement.load_factor = typed(value)?,
        ("tokens", "default_ttl_s") => c.tokens.default_ttl_s = typed(value)?,
        ("dns", key) => apply_dns_env(&mut c.dns, key, value)?,
        ("log", "level") => c.log.level = value.to_owned(),
        ("log", "format") => {
            c.log.format = match value.trim().to_ascii_lowercase().as_str() {
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

/// `ARBOR_ORIGIN_DNS_<KEY>`; lists are comma-separated.
fn apply_dns_env(d: &mut Dns, key: &str, value: &str) -> Result<(), String> {
    match key {
        "enabled" => d.enabled = boolean(value)?,
        "listen" => d.listen = typed(value)?,
        "zone" => d.zone = value.trim().to_owned(),
        "entry" => d.entry = value.trim().to_owned(),
        "ttl_s" => d.ttl_s = typed(value)?,
        "answers" => d.answers = typed(value)?,
        "nameservers" => d.nameservers = comma_list(value),
        "nameserver_ips" => {
            d.nameserver_ips = comma_list(value)
                .iter()
                .map(|ip| typed(ip))
                .collect::<Result<_, _>>()?;
        }
        "hostmaster" => d.hostmaster = value.trim().to_owned(),
        "geoip_db" => d.geoip_db = PathBuf::from(value.trim()),
        "rrl_responses_per_s" => d.rrl_responses_per_s = typed(value)?,
        "rrl_slip" => d.rrl_slip = typed(value)?,
        _ => {
            let known: Vec<String> = ENV_KEYS
                .iter()
                .filter(|(s, _)| *s == "dns")
                .map(|(s, k)| format!("{ENV_PREFIX}{s}_{k}").to_ascii_uppercase())
                .collect();
            return Err(format!(
                "not a setting of [dns]; known: {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn problems(cfg: &Config) -> Vec<String> {
        match cfg.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn dev_default_is_valid() {
        let cfg = load(None, Vec::new()).unwrap();
        assert_eq!(cfg, Config::dev_default());
        assert_eq!(cfg.http.listen, "127.0.0.1:7870".parse().unwrap());
        assert_eq!(cfg.store.url, "sqlite://arbor-origin.db");
        cfg.validate().unwrap();
        // An empty file is the defaults without a key.
        let p = problems(&parse("").unwrap());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("auth.keys: at least one API key"), "{p:?}");
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let source = include_str!("config.rs");
        let start = source.find("/// ```toml\n").unwrap() + "/// ```toml\n".len();
        let end = start + source[start..].find("/// ```\n").unwrap();
        let example: String = source[start..end]
            .lines()
            .map(|l| {
                let l = l.trim_start().trim_start_matches("///");
                format!("{}\n", l.strip_prefix(' ').unwrap_or(l))
            })
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
    fn toml_round_trip_and_secrets_stay_out_of_debug() {
        let mut cfg = Config::dev_default();
        cfg.store.url = "postgres://arbor:pw@db/arbor".into();
        cfg.log.format = LogFormat::Json;
        assert_eq!(parse(&cfg.to_toml()).unwrap(), cfg);
        let debug = format!("{cfg:?}");
        assert!(!debug.contains(DEV_API_SECRET), "{debug}");
        assert!(!debug.contains(":pw@"), "{debug}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[store]\nurll = \"x\"\n").unwrap_err();
        assert!(e.contains("unknown field `urll`"), "{e}");
        let e = parse("[placement]\nregions = [\"a b\"]\n").unwrap_err();
        assert!(e.contains("region id may only contain"), "{e}");
    }

    #[test]
    fn env_overrides() {
        let cfg = load(
            None,
            env(&[
                ("ARBOR_ORIGIN_HTTP_LISTEN", "127.0.0.2:9000"),
                ("ARBOR_ORIGIN_HTTP_MAX_BODY_BYTES", "4096"),
                ("ARBOR_ORIGIN_STORE_URL", "postgres://u@h/db"),
                ("ARBOR_ORIGIN_STORE_MAX_CONNECTIONS", "3"),
                (
                    "ARBOR_ORIGIN_AUTH_KEYS",
                    "k1=0123456789abcdef0123456789abcdef",
                ),
                ("ARBOR_ORIGIN_PLACEMENT_REGIONS", "eu, us"),
                ("ARBOR_ORIGIN_PLACEMENT_DEFAULT_REGION", "us"),
                ("ARBOR_ORIGIN_PLACEMENT_LOAD_FACTOR", "1.5"),
                ("ARBOR_ORIGIN_TOKENS_DEFAULT_TTL_S", "600"),
                ("ARBOR_ORIGIN_LOG_LEVEL", "debug"),
                ("ARBOR_ORIGIN_LOG_FORMAT", "JSON"),
                // Not ours: the CLI's, and the edge's.
                ("ARBOR_ORIGIN_CONFIG", "/etc/x.toml"),
                ("ARBOR_HTTP_LISTEN", "0.0.0.0:1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.http.listen, "127.0.0.2:9000".parse().unwrap());
        assert_eq!(cfg.http.max_body_bytes, 4096);
        assert_eq!(cfg.store.url, "postgres://u@h/db");
        assert_eq!(cfg.store.max_connections, 3);
        assert_eq!(cfg.auth.keys.len(), 1);
        assert_eq!(cfg.placement.regions.len(), 2);
        assert_eq!(cfg.placement.default_region.as_str(), "us");
        assert!((cfg.placement.load_factor - 1.5).abs() < f64::EPSILON);
        assert_eq!(cfg.tokens.default_ttl_s, 600);
        assert_eq!(cfg.log.format, LogFormat::Json);
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let e = load(
            None,
            env(&[
                ("ARBOR_ORIGIN_HTTP_LISTEN", "localhost"),
                ("ARBOR_ORIGIN_STORE_URLL", "x"),
                ("ARBOR_ORIGIN_AUTH_KEYS", "justakey"),
            ]),
        )
        .unwrap_err();
        let paths: Vec<&str> = e.problems().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "ARBOR_ORIGIN_HTTP_LISTEN",
                "ARBOR_ORIGIN_STORE_URLL",
                "ARBOR_ORIGIN_AUTH_KEYS"
            ]
        );
        assert!(!e.to_string().contains("justakey"), "{e}");
    }

    #[test]
    fn env_keys_cover_every_setting() {
        let table: toml::Table = toml::from_str(&Config::dev_default().to_toml()).unwrap();
        let mut from_toml: Vec<(String, String)> = table
            .iter()
            .flat_map(|(s, keys)| {
                keys.as_table()
                    .unwrap()
                    .keys()
                    .map(|k| (s.clone(), k.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        from_toml.sort();
        let mut listed: Vec<(String, String)> = ENV_KEYS
            .iter()
            .map(|(s, k)| ((*s).to_owned(), (*k).to_owned()))
            .collect();
        listed.sort();
        assert_eq!(from_toml, listed);
    }

    #[test]
    fn validation_names_each_problem() {
        let mut cfg = Config::dev_default();
        cfg.http.listen = "0.0.0.0:0".parse().unwrap();
        cfg.store.url = "mysql://x".into();
        cfg.store.max_connections = 0;
        cfg.placement.default_region = RegionId::new("mars").unwrap();
        cfg.placement.load_factor = 0.5;
        cfg.tokens.default_ttl_s = MAX_TTL_S + 1;
        cfg.log.level = "loud=verbose".into();
        let paths: Vec<String> = problems(&cfg)
            .iter()
            .map(|p| p.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "http.listen",
                "store.url",
                "store.max_connections",
                "auth.keys",
                "placement.default_region",
                "placement.load_factor",
                "tokens.default_ttl_s",
                "log.level"
            ]
        );
        let mut cfg = Config::dev_default();
        cfg.auth.keys = BTreeMap::from([("k".into(), Secret::new("short"))]);
        assert_eq!(
            problems(&cfg),
            ["auth.keys: secret for \"k\" is shorter than 32 bytes (5 bytes)"]
        );
    }

    #[test]
    fn dns_section_from_env_and_its_checks() {
        let cfg = load(
            None,
            env(&[
                ("ARBOR_ORIGIN_DNS_ENABLED", "on"),
                ("ARBOR_ORIGIN_DNS_LISTEN", "127.0.0.1:5300"),
                ("ARBOR_ORIGIN_DNS_ZONE", "geo.example.com"),
                ("ARBOR_ORIGIN_DNS_ENTRY", "sfu"),
                ("ARBOR_ORIGIN_DNS_TTL_S", "60"),
                ("ARBOR_ORIGIN_DNS_ANSWERS", "2"),
                ("ARBOR_ORIGIN_DNS_NAMESERVERS", "ns1, ns2.example.net."),
                ("ARBOR_ORIGIN_DNS_NAMESERVER_IPS", "192.0.2.53,2001:db8::53"),
                ("ARBOR_ORIGIN_DNS_HOSTMASTER", "ops"),
                ("ARBOR_ORIGIN_DNS_RRL_RESPONSES_PER_S", "0"),
                ("ARBOR_ORIGIN_DNS_RRL_SLIP", "1"),
            ]),
        )
        .unwrap();
        let d = &cfg.dns;
        assert!(d.enabled);
        assert_eq!(d.listen, "127.0.0.1:5300".parse().unwrap());
        assert_eq!(
            (d.zone.as_str(), d.entry.as_str()),
            ("geo.example.com", "sfu")
        );
        assert_eq!(
            (d.ttl_s, d.answers, d.rrl_responses_per_s, d.rrl_slip),
            (60, 2, 0, 1)
        );
        assert_eq!(d.nameservers, ["ns1", "ns2.example.net."]);
        assert_eq!(d.nameserver_ips.len(), 2);
        cfg.validate().unwrap();

        let e = load(None, env(&[("ARBOR_ORIGIN_DNS_TTL", "5")])).unwrap_err();
        assert!(e.to_string().contains("ARBOR_ORIGIN_DNS_TTL_S"), "{e}");

        let mut cfg = Config::dev_default();
        cfg.dns = Dns {
            enabled: true,
            listen: "127.0.0.1:0".parse().unwrap(),
            zone: "no spaces.example".into(),
            entry: "a.b".into(),
            ttl_s: 0,
            answers: 9,
            nameservers: Vec::new(),
            rrl_slip: 11,
            geoip_db: "/nonexistent/geo.mmdb".into(),
            ..Dns::default()
        };
        let paths: Vec<String> = problems(&cfg)
            .iter()
            .map(|p| p.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "dns.zone",
                "dns.listen",
                "dns.ttl_s",
                "dns.answers",
                "dns.nameservers",
                "dns.rrl_slip",
                "dns.geoip_db"
            ]
        );
    }
}
