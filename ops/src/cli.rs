//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use relay_proto::MeetingId;

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
    /// The edge's HTTP address; its media binds the same IP.
    #[arg(long, default_value = "127.0.1.1:7880")]
    pub http: SocketAddr,
    /// The `arbor-edge` binary [default: next to this `arbor` binary].
    #[arg(long, env = "ARBOR_UP_EDGE_BIN")]
    pub edge_bin: Option<PathBuf>,
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

        let cli = Cli::try_parse_from(["arbor", "up", "--http", "127.0.2.1:9000"]).unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        assert_eq!(up.http, "127.0.2.1:9000".parse().unwrap());
    }
}
