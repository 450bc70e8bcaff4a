//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use relay_proto::{EdgeId, MeetingId};

/// Arbor: a cascading WebRTC SFU mesh.
#[derive(Debug, Parser)]
#[command(name = "arbor", version, about)]
pub struct Cli {
    /// Where `arbor up` keeps its files (`cluster.json`, edge configs and logs).
    #[arg(long, global = true, env = "ARBOR_DATA_DIR", default_value = ".arbor")]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an access token (a JWT in LiveKit's layout) for a meeting and identity.
    Token(TokenArgs),
    /// Start a local cluster and keep it running until Ctrl-C.
    Up(UpArgs),
    /// Run a UDP impairment proxy (delay, jitter, loss, rate, partitions), or change one.
    Impair(ImpairArgs),
    /// Join synthetic WebRTC publishers and subscribers to a cluster and measure what they see.
    Load(LoadArgs),
    /// Measure Arbor's forwarding (in a network namespace of its own; needs root).
    Bench(BenchArgs),
    /// Act on one edge of a cluster through the origin (drain it).
    Edge(EdgeArgs),
}

/// `arbor edge`.
#[derive(Debug, Args)]
pub struct EdgeArgs {
    #[command(subcommand)]
    pub action: EdgeAction,
}

/// What `arbor edge` does.
#[derive(Debug, Subcommand)]
pub enum EdgeAction {
    /// Take no new joins on an edge and move its clients to other edges; by default, wait
    /// until it is empty (then it can be stopped).
    Drain(DrainArgs),
}

/// `arbor edge drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The edge's id, as `GET /v1/edges` lists it (`arbor up`: eu-1, us-1, ap-1, …).
    pub id: EdgeId,
    /// The cluster file with the origin's URL and credentials [default:
    /// <data-dir>/cluster.json].
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Wait until the origin reports the edge empty (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Return as soon as the origin has recorded the drain.
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    /// Longest wait for the edge to empty: `90s`, `10m`, `1h`.
    #[arg(long, default_value = "10m", value_parser = parse_ttl)]
    pub timeout: Duration,
}

impl DrainArgs {
    /// Whether to wait for the edge to empty (`--wait` unless `--no-wait` came last).
    pub fn wait(&self) -> bool {
        !self.no_wait
    }
}

/// `arbor bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value_t = Scenario::Forwarding)]
    pub scenario: Scenario,
    /// A reduced run in under three minutes: two forwarding steps side by side with Janus and
    /// the bare forwarder, a 1 → 200 broadcast over three cascaded edges and 100 idle joins.
    /// With `--json`, one object with the headline figures.
    #[arg(long, conflicts_with = "scenario")]
    pub quick: bool,
    /// Runs of each measurement; the report gives their median and range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Forwarding: subscriber counts of the ramp, in order; it stops at the first step with
    /// loss above 0.5% or the machine's CPU saturated.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 25, 50, 100, 200, 400])]
    pub subscribers: Vec<usize>,
    /// Broadcast: viewers of the one publisher, spread over three cascaded edges.
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Meeting: participants, each publishing simulcast and watching a gallery (one large
    /// tile and up to 24 thumbnails).
    #[arg(long, default_value_t = 100)]
    pub participants: usize,
    /// Join storm and memory: participants joining at once.
    #[arg(long, default_value_t = 500)]
    pub joins: usize,
    /// How long each step is measured once its participants have joined.
    #[arg(long, default_value = "10s", value_parser = parse_ttl)]
    pub window: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw the forwarding ramp's CPU and loss against subscribers, Arbor and Janus, as
    /// SVG files in this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The `arbor-edge` binary [default: beside `arbor`, else on PATH].
    #[arg(long)]
    pub edge_bin: Option<PathBuf>,
    /// An edge setting for every cluster the bench starts, as `section.key=value` (the
    /// edge's config file keys; repeatable): `--edge-set media.send_side_bwe=false`.
    #[arg(long = "edge-set", value_name = "SECTION.KEY=VALUE", value_parser = parse_edge_setting)]
    pub edge_set: Vec<EdgeSetting>,
    /// The `arbor-origin` binary [default: beside `arbor`, else on PATH].
    #[arg(long)]
    pub origin_bin: Option<PathBuf>,
}

/// `arbor bench`'s scenarios (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 1 publisher → N subscribers on one edge, side by side with Janus and the bare
    /// forwarder, N stepped up until loss or CPU ends the ramp.
    Forwarding,
    /// A meeting on one edge: every participant publishes and watches a gallery.
    Meeting,
    /// 1 publisher → many viewers over three cascaded edges.
    Broadcast,
    /// The latency and CPU one relay hop adds: the same viewers on the publisher's edge, then
    /// split between it and a second edge.
    Hop,
    /// Many joins at once: server CPU per join, memory per idle participant, time to first
    /// frame.
    JoinStorm,
    /// Memory (and CPU) per idle participant: the join storm without the media part.
    Memory,
    /// Every scenario above, in turn.
    All,
}

/// `arbor load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The cluster to load [default: <data-dir>/cluster.json].
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// The meeting everyone joins.
    #[arg(long, default_value = "load")]
    pub meeting: MeetingId,
    /// Publishers (camera and microphone each).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscribers.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// What publishers send: browser-like simulcast (320x180, 640x360, 1280x720) or one
    /// 640x360 layer at 1 Mbit/s.
    #[arg(long, value_enum, default_value_t = CameraArg::Simulcast)]
    pub camera: CameraArg,
    /// Edges publishers join, in turn (comma-separated ids) [default: the first edge].
    #[arg(long, value_delimiter = ',')]
    pub publisher_edges: Vec<String>,
    /// Edges subscribers join, in turn [default: every edge].
    #[arg(long, value_delimiter = ',')]
    pub subscriber_edges: Vec<String>,
    /// Video tiles per subscriber, each watching another publisher.
    #[arg(long, default_value_t = 1)]
    pub video_slots: usize,
    /// Audio slots per subscriber.
    #[arg(long, default_value_t = 1)]
    pub audio_slots: usize,
    /// The tallest video subscribers ask for, in pixels: 180, 360 and 720 pick the publishers'
    /// `q`, `h` and `f` layers.
    #[arg(long, default_value_t = 360, value_parser = clap::value_parser!(u32).range(90..=2160))]
    pub max_height: u32,
    /// A gallery: video slots after the first ask for this height (thumbnails), the first for
    /// `--max-height`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(90..=2160))]
    pub thumbnail_height: Option<u32>,
    /// Subscriber joins per second.
    #[arg(long, default_value_t = 50.0)]
    pub join_rate: f64,
    /// Publishers' microphones stay silent (by default they talk, so that the edge forwards
    /// their audio to the audio slots).
    #[arg(long)]
    pub silent_publishers: bool,
    /// How long to measure after the last join: `30s`, `5m`.
    #[arg(long, default_value = "30s", value_parser = parse_ttl)]
    pub duration: Duration,
    /// The address the clients' UDP sockets bind (their ICE candidate).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `arbor load --camera`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CameraArg {
    Simulcast,
    Single,
}

/// `arbor token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The meeting to join.
    #[arg(long)]
    pub meeting: MeetingId,
    /// The participant's identity (unique within the meeting).
    #[arg(long)]
    pub identity: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// What the participant may do.
    #[arg(long, value_enum, default_value_t = Role::Publisher)]
    pub role: Role,
    /// How long the token is valid: `90s`, `30m`, `6h`, `1d`, `1h30m`.
    #[arg(long, default_value = "6h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// The cluster file to read the API key and secret from [default: <data-dir>/cluster.json].
    #[arg(long, conflicts_with = "api_key")]
    pub cluster: Option<PathBuf>,
    /// Sign with this API key instead of the cluster file's (needs --api-secret).
    #[arg(long, requires = "api_secret", env = "ARBOR_API_KEY")]
    pub api_key: Option<String>,
    /// The secret of --api-key.
    #[arg(
        long,
        requires = "api_key",
        env = "ARBOR_API_SECRET",
        hide_env_values = true
    )]
    pub api_secret: Option<String>,
}

/// A participant's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Publish and subscribe.
    Publisher,
    /// Subscribe only (chat allowed).
    Subscriber,
}

/// `arbor up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many edges to start; they take the regions eu-west, us-east, ap-southeast in turn.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=i64::from(crate::up::plan::MAX_EDGES)))]
    pub edges: u8,
    /// The loopback network `127.<n>` to bind: the origin and the link proxies on
    /// 127.<n>.0.1, edge i on 127.<n>.<i>.1. Another network runs a second cluster beside
    /// the first.
    #[arg(long, default_value = "127.0")]
    pub ip_base: crate::up::plan::IpBase,
    /// Link the edges directly instead of through impairment proxies.
    #[arg(long)]
    pub no_impair: bool,
    /// The `arbor-edge` binary [default: next to this `arbor` binary].
    #[arg(long, env = "ARBOR_UP_EDGE_BIN")]
    pub edge_bin: Option<PathBuf>,
    /// The `arbor-origin` binary [default: next to this `arbor` binary].
    #[arg(long, env = "ARBOR_UP_ORIGIN_BIN")]
    pub origin_bin: Option<PathBuf>,
}

/// `arbor impair`: without a subcommand, runs the proxy until Ctrl-C.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImpairArgs {
    #[command(subcommand)]
    pub action: Option<ImpairAction>,
    /// The UDP address clients send to.
    #[arg(long, required = true)]
    pub listen: Option<SocketAddr>,
    /// Where the clients' datagrams go (each client from its own port).
    #[arg(long, required = true)]
    pub upstream: Option<SocketAddr>,
    /// Serve the control API (GET/PUT /link, GET /stats) on this TCP address.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Seeds the links' randomness: the same seed and traffic lose the same packets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Both directions start with these settings.
    #[command(flatten)]
    pub link: LinkArgs,
}

/// What `arbor impair` does instead of running a proxy.
#[derive(Debug, Subcommand)]
pub enum ImpairAction {
    /// Change a running proxy's links through its control API; prints the settings after.
    Set(ImpairSetArgs),
}

/// `arbor impair set`.
#[derive(Debug, Args)]
pub struct ImpairSetArgs {
    /// The running proxy's --control address.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub control: SocketAddr,
    /// Which direction to change: up is client → upstream.
    #[arg(long, value_enum, default_value_t = crate::impair::Direction::Both)]
    pub direction: crate::impair::Direction,
    /// Cut the link: drop every datagram, including those in flight.
    #[arg(long, conflicts_with = "heal")]
    pub partition: bool,
    /// Undo --partition.
    #[arg(long)]
    pub heal: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// Link settings of `arbor impair` and `arbor impair set` (absent: unchanged).
#[derive(Debug, Clone, Default, Args)]
pub struct LinkArgs {
    /// One-way delay, in milliseconds.
    #[arg(long)]
    pub delay_ms: Option<f64>,
    /// Each datagram's delay varies uniformly within ± this many milliseconds.
    #[arg(long)]
    pub jitter_ms: Option<f64>,
    /// Random loss, in percent.
    #[arg(long)]
    pub loss_pct: Option<f64>,
    /// Bottleneck rate in kbit/s (0: unlimited).
    #[arg(long)]
    pub rate_kbps: Option<u64>,
    /// The bottleneck's buffer, in bytes; datagrams past it are dropped.
    #[arg(long)]
    pub queue_bytes: Option<usize>,
}

/// Longest `--ttl` accepted.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `90s`, `30m`, `6h`, `1d` or a sum such as `1h30m`.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 90s, 30m, 6h, 1d or 1h30m");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    let ttl = Duration::from_secs(total);
    if ttl > MAX_TTL {
        return Err(format!("{s:?} is longer than the limit of 366 days"));
    }
    Ok(ttl)
}

/// One `--edge-set section.key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSetting {
    pub section: String,
    pub key: String,
    pub value: String,
}

impl EdgeSetting {
    /// The edge's environment variable for it (`ARBOR_SECTION_KEY`), which the edge reads
    /// over its config file.
    pub fn env(&self) -> (String, String) {
        let name = format!("ARBOR_{}_{}", self.section, self.key).to_uppercase();
        (name, self.value.clone())
    }
}

fn parse_edge_setting(s: &str) -> Result<EdgeSetting, String> {
    let (path, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not section.key=value"))?;
    let (section, key) = path
        .split_once('.')
        .ok_or_else(|| format!("{path:?} names no section: write section.key, as media.workers"))?;
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if !word(section) || !word(key) {
        return Err(format!(
            "{path:?} is not a config key (lowercase section.key)"
        ));
    }
    Ok(EdgeSetting {
        section: section.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(2 * 86_400)));
        for bad in [
            "",
            "6",
            "h",
            "0s",
            "6x",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "400d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn edge_settings() {
        let s = parse_edge_setting("media.send_side_bwe=false").unwrap();
        assert_eq!(
            s.env(),
            ("ARBOR_MEDIA_SEND_SIDE_BWE".to_owned(), "false".to_owned())
        );
        assert_eq!(
            parse_edge_setting("limits.max_participants=")
                .unwrap()
                .value,
            ""
        );
        for (bad, says) in [
            ("media.workers", "is not section.key=value"),
            ("workers=2", "names no section"),
            ("Media.workers=2", "is not a config key"),
            ("media.=2", "is not a config key"),
        ] {
            let e = parse_edge_setting(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn command_line() {
        let cli = Cli::try_parse_from([
            "arbor",
            "token",
            "--meeting",
            "demo",
            "--identity",
            "alice",
            "--role",
            "subscriber",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(cli.data_dir, PathBuf::from("/tmp/x"));
        let Command::Token(t) = cli.command else {
            panic!("not token")
        };
        assert_eq!(t.meeting.as_str(), "demo");
        assert_eq!(t.role, Role::Subscriber);
        assert_eq!(t.ttl, Duration::from_secs(6 * 3600));

        let e = Cli::try_parse_from(["arbor", "token", "--meeting", "a b", "--identity", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("meeting id may only contain"), "{e}");
        let e = Cli::try_parse_from([
            "arbor",
            "token",
            "--meeting",
            "m",
            "--identity",
            "x",
            "--api-key",
            "k",
        ]);
        assert!(e.is_err(), "--api-key needs --api-secret");

        let drain = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Edge(EdgeArgs {
                action: EdgeAction::Drain(d),
            }) = cli.command
            else {
                panic!("not edge drain")
            };
            d
        };
        let d = drain(&["arbor", "edge", "drain", "eu-1"]);
        assert_eq!((d.id.as_str(), d.wait()), ("eu-1", true));
        assert_eq!(d.timeout, Duration::from_secs(600));
        let d = drain(&[
            "arbor",
            "edge",
            "drain",
            "us-1",
            "--no-wait",
            "--timeout",
            "30s",
        ]);
        assert_eq!((d.wait(), d.timeout), (false, Duration::from_secs(30)));
        assert!(drain(&["arbor", "edge", "drain", "e", "--no-wait", "--wait"]).wait());
        let e = Cli::try_parse_from(["arbor", "edge", "drain", "no such"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("edge id may only contain"), "{e}");

        let cli = Cli::try_parse_from(["arbor", "up", "--ip-base", "127.2"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        assert_eq!(up.ip_base, crate::up::plan::IpBase(2));
    }
}
