//! `arbor token`: mint an access token against a cluster file or an explicit key.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use relay_proto::token::{self, Claims};

use crate::cli::{Role, TokenArgs};
use crate::cluster::Cluster;

/// Mints the token `args` describe, valid from `now`. The key is `--api-key`/`--api-secret`
/// if given, else the one in `--cluster` (default `<data_dir>/cluster.json`).
pub fn run(args: &TokenArgs, data_dir: &Path, now: SystemTime) -> anyhow::Result<String> {
    if args.identity.trim().is_empty() {
        anyhow::bail!("--identity must not be empty");
    }
    let (api_key, api_secret) = match (&args.api_key, &args.api_secret) {
        (Some(key), Some(secret)) => (key.clone(), secret.clone()),
        _ => {
            let path = match &args.cluster {
                Some(path) => path.clone(),
                None => Cluster::path_in(data_dir),
            };
            let cluster = Cluster::read(&path)?;
            (cluster.api_key, cluster.api_secret)
        }
    };
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let mut claims = Claims::join(
        &args.meeting,
        args.identity.clone(),
        now_s + args.ttl.as_secs(),
    )
    .issued_at(now_s);
    if let Some(name) = &args.name {
        claims = claims.name(name.clone());
    }
    if args.role == Role::Subscriber {
        claims = claims.subscriber_only();
    }
    Ok(token::mint(&claims, &api_key, api_secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;
    use relay_proto::MeetingId;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::cluster::{Cluster, Edge};
    use crate::test_util::tempdir;

    const NOW_S: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_S)
    }

    fn args(extra: &[&str]) -> (TokenArgs, std::path::PathBuf) {
        let mut argv = vec!["arbor", "token", "--meeting", "demo", "--identity", "alice"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Token(t) = cli.command else {
            panic!("not token")
        };
        (t, cli.data_dir)
    }

    fn write_cluster(dir: &Path) -> Cluster {
        let cluster = Cluster {
            origin: None,
            api_key: "APItest".into(),
            api_secret: "0123456789abcdef0123456789abcdef-x".into(),
            dns: None,
            edges: vec![Edge::new(
                "local-1".parse().unwrap(),
                "local".parse().unwrap(),
                1,
                "http://127.0.1.1:7880",
            )],
            links: Vec::new(),
        };
        cluster.write(&Cluster::path_in(dir)).unwrap();
        cluster
    }

    #[test]
    fn token_from_the_cluster_file_verifies() {
        let dir = tempdir();
        let cluster = write_cluster(&dir);
        let dir_arg = dir.to_str().unwrap();
        let (a, data_dir) = args(&["--name", "Alice", "--ttl", "1h", "--data-dir", dir_arg]);
        let jwt = run(&a, &data_dir, now()).unwrap();
        let keys = (cluster.api_key.as_str(), cluster.api_secret.as_str());
        let g = token::verify(&jwt, &keys, NOW_S).unwrap();
        assert_eq!(g.meeting, MeetingId::new("demo").unwrap());
        assert_eq!(g.identity, "alice");
        assert_eq!(g.name.as_deref(), Some("Alice"));
        assert!(g.can_publish && g.can_subscribe);
        assert_eq!(g.expires_at_s, NOW_S + 3600);
        assert_eq!(g.not_before_s, Some(NOW_S));
        let expired = token::verify(&jwt, &keys, NOW_S + 3600 + token::LEEWAY_S + 1);
        assert_eq!(expired.unwrap_err().code(), "token_expired");

        // --cluster points at the file directly.
        let path = Cluster::path_in(&dir);
        let (a, data_dir) = args(&["--cluster", path.to_str().unwrap(), "--role", "subscriber"]);
        let g = token::verify(&run(&a, &data_dir, now()).unwrap(), &keys, NOW_S).unwrap();
        assert!(!g.can_publish && g.can_subscribe);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_with_an_explicit_key() {
        let secret = "another-secret-of-at-least-32-bytes";
        let (a, data_dir) = args(&["--api-key", "k1", "--api-secret", secret]);
        let jwt = run(&a, &data_dir, now()).unwrap();
        assert!(token::verify(&jwt, &("k1", secret), NOW_S).is_ok());
    }

    #[test]
    fn missing_cluster_file_is_explained() {
        let dir = tempdir();
        let (a, data_dir) = args(&["--data-dir", dir.to_str().unwrap()]);
        let e = format!("{:#}", run(&a, &data_dir, now()).unwrap_err());
        assert!(e.contains("cluster.json"), "{e}");
        assert!(e.contains("arbor up"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_identity_is_refused() {
        let cli = Cli::try_parse_from([
            "arbor",
            "token",
            "--meeting",
            "demo",
            "--identity",
            " ",
            "--api-key",
            "k",
            "--api-secret",
            "s",
        ])
        .unwrap();
        let Command::Token(a) = cli.command else {
            panic!()
        };
        let e = run(&a, &cli.data_dir, now()).unwrap_err().to_string();
        assert!(e.contains("--identity"), "{e}");
    }
}
