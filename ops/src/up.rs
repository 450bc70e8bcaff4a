//! `arbor up`: a local cluster on this machine, until Ctrl-C.
//!
//! Steps: generate a fresh API key and secret; write the edge's config (development defaults,
//! `ARBOR_*` overrides from the environment, dev tokens on) to `<data-dir>/edge-<id>.toml`;
//! start `arbor-edge --config` on it, logging to `<data-dir>/edge-<id>.log`; wait for
//! `/readyz`; write `<data-dir>/cluster.json`; print where to go; wait. Ctrl-C (or SIGTERM)
//! stops the edge and exits 0; if the edge dies, `arbor up` exits non-zero with its status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use arbor_edge::config::{self, Config, Secret};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use crate::cli::UpArgs;
use crate::cluster::{self, Cluster, Edge};

/// The edge binary's name.
pub const EDGE_BIN: &str = "arbor-edge";

/// How long an edge may take to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping edge gets to exit by itself before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Lines of an edge's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// Runs `arbor up` to completion.
pub fn run(args: &UpArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let edge_bin = find_edge_bin(args.edge_bin.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up(args, data_dir, &edge_bin))
}

/// `explicit` if given, else `arbor-edge` next to the running executable.
pub fn find_edge_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--edge-bin {} is not a file", path.display());
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("cannot find the running executable's path")?;
    let bin = exe.with_file_name(format!("{EDGE_BIN}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{EDGE_BIN} not found at {}; build it with `cargo build --bin {EDGE_BIN}` (with the \
             same profile as arbor), or pass --edge-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// A fresh API key (`API` + 12 hex digits) and secret (32 random bytes, base64url: 43
/// characters), from the operating system's generator.
pub fn generate_credentials() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 6 + 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .context("the operating system's random generator failed")?;
    let (key, secret) = bytes.split_at(6);
    let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("API{key}"), URL_SAFE_NO_PAD.encode(secret)))
}

/// The edge's configuration: [`Config::dev_default`] with `env`'s `ARBOR_*` overrides, then
/// `http` for HTTP and media, dev tokens on, and `api_key` as the only key. Validated.
pub fn edge_config(
    http: SocketAddr,
    api_key: &str,
    api_secret: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Config> {
    let mut cfg = config::load(None, env).context("bad ARBOR_* environment variable")?;
    cfg.http.listen = http;
    cfg.http.public_url = None;
    cfg.media.bind = http.ip();
    cfg.media.public_ip = None;
    cfg.auth.dev_tokens = true;
    cfg.auth.keys = BTreeMap::from([(api_key.to_owned(), Secret::new(api_secret))]);
    cfg.validate()
        .context("the edge configuration for `arbor up` is not valid")?;
    Ok(cfg)
}

async fn up(args: &UpArgs, data_dir: &Path, edge_bin: &Path) -> anyhow::Result<ExitCode> {
    if tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(args.http),
    )
    .await
    .is_ok_and(|r| r.is_ok())
    {
        bail!(
            "{} is already in use (another `arbor up`?); stop it, or pick another address with \
             --http 127.0.2.1:7880",
            args.http
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let (api_key, api_secret) = generate_credentials()?;
    let cfg = edge_config(args.http, &api_key, &api_secret, config::process_env())?;
    let id = cfg.edge.id.clone();
    let config_path = data_dir.join(format!("edge-{id}.toml"));
    let log_path = data_dir.join(format!("edge-{id}.log"));
    cluster::write_private(&config_path, cfg.to_toml().as_bytes())?;

    let mut child = spawn_edge(edge_bin, &config_path, &log_path)?;
    tokio::select! {
        ready = wait_ready(&mut child, args.http, &log_path) => ready?,
        signal = shutdown_signal() => {
            signal?;
            stop(&mut child).await;
            return Ok(ExitCode::SUCCESS);
        }
    }

    let pid = child.id().unwrap_or_default();
    let edge = Edge::new(
        id.clone(),
        cfg.edge.region.clone(),
        pid,
        &cfg.http.public_url(),
    );
    let cluster = Cluster {
        origin: None,
        api_key,
        api_secret,
        dns: None,
        edges: vec![edge],
    };
    let cluster_path = Cluster::path_in(data_dir);
    cluster.write(&cluster_path)?;
    println!("{}", banner(&cluster, data_dir, &log_path));

    tokio::select! {
        status = child.wait() => {
            let status = status.context("cannot wait for arbor-edge")?;
            eprintln!("arbor-edge {id} stopped ({status}).{}", log_tail(&log_path));
            Ok(exit_code(status))
        }
        signal = shutdown_signal() => {
            signal?;
            eprintln!("Stopping the cluster…");
            stop(&mut child).await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn spawn_edge(edge_bin: &Path, config_path: &Path, log_path: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("cannot create the edge log {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reopen the edge log {}", log_path.display()))?;
    let mut command = Command::new(edge_bin);
    command
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    // The environment's overrides are already in the config file; the edge must not apply
    // them a second time on top of the address chosen here.
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(is_config_var) {
            command.env_remove(var);
        }
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", edge_bin.display()))
}

/// Whether `var` is one of the edge's `ARBOR_<SECTION>_<KEY>` settings.
fn is_config_var(var: &str) -> bool {
    let Some((section, _)) = var
        .strip_prefix(config::ENV_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return false;
    };
    let section = section.to_ascii_lowercase();
    config::ENV_KEYS.iter().any(|(s, _)| *s == section)
}

/// Polls `/readyz` until it answers 200; fails if the edge exits or [`READY_TIMEOUT`] passes.
async fn wait_ready(child: &mut Child, http: SocketAddr, log_path: &Path) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("cannot check on arbor-edge")? {
            bail!(
                "arbor-edge exited before it was ready ({status}).{}",
                log_tail(log_path)
            );
        }
        if let Ok(200) = http_status(http, "/readyz").await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            stop(child).await;
            bail!(
                "arbor-edge did not answer http://{http}/readyz with 200 within {} s.{}",
                READY_TIMEOUT.as_secs(),
                log_tail(log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status code of `GET <path>` on `addr`, over a minimal HTTP/1.1 exchange (1 s limit).
pub async fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(128);
        let mut chunk = [0u8; 128];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        parse_status_line(&head)
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 1 s"))?
}

/// `HTTP/1.1 200 OK…` → 200.
fn parse_status_line(head: &[u8]) -> std::io::Result<u16> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(code))) if version.starts_with("HTTP/1.") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP/1.x status line: {line:?}"),
        )),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}

/// Lets the edge exit by itself (a terminal's Ctrl-C reaches it too), then kills it.
async fn stop(child: &mut Child) {
    if let Ok(Ok(_)) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
        return;
    }
    if let Err(e) = child.kill().await {
        eprintln!("warning: cannot kill arbor-edge: {e}");
    }
}

/// A non-zero exit code that carries the edge's: its own code, or 128 + the signal.
fn exit_code(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code().and_then(|c| u8::try_from(c).ok())
        && code != 0
    {
        return ExitCode::from(code);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return ExitCode::from(128u8.saturating_add(u8::try_from(signal).unwrap_or(0)));
    }
    ExitCode::FAILURE
}

/// The last lines of the edge's log, formatted to follow an error message.
fn log_tail(log_path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log_path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!(" Its log ({}) is empty.", log_path.display());
    }
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!(
        " The end of its log ({}):\n  {}",
        log_path.display(),
        tail.join("\n  ")
    )
}

/// What `arbor up` prints once the cluster is ready.
pub fn banner(cluster: &Cluster, data_dir: &Path, log_path: &Path) -> String {
    let data_flag = match data_dir == Path::new(".arbor") {
        true => String::new(),
        false => format!(" --data-dir {}", data_dir.display()),
    };
    let mut out = String::from("\nArbor is up.\n\n");
    for edge in &cluster.edges {
        out += &format!(
            "  Edge {} ({}), pid {}\n\
             \x20   Open a meeting:  {}/?meeting=demo\n\
             \x20   WHIP ingest:     {}/demo   (Authorization: Bearer <token>)\n\
             \x20   WHEP playback:   {}/demo\n\
             \x20   Signaling:       {}\n\
             \x20   Metrics:         {}/metrics\n\
             \x20   Log:             {}\n\n",
            edge.id,
            edge.region,
            edge.pid,
            edge.http_url,
            edge.whip_url,
            edge.whep_url,
            edge.ws_url,
            edge.http_url,
            log_path.display(),
        );
    }
    let whip = cluster.edges.first().map_or("", |e| e.whip_url.as_str());
    out += &format!(
        "  Cluster file:      {} (API key {})\n\
         \x20 Mint a token:      arbor token{data_flag} --meeting demo --identity alice\n\
         \x20 Stream with ffmpeg (H.264 + Opus over WHIP):\n\
         \x20   ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=30 -f lavfi -i sine \\\n\
         \x20     -c:v libx264 -profile:v baseline -bf 0 -c:a libopus -f whip \\\n\
         \x20     -authorization \"$(arbor token{data_flag} --meeting demo --identity obs)\" \\\n\
         \x20     {whip}/demo\n\n\
         Ctrl-C stops the cluster.",
        Cluster::path_in(data_dir).display(),
        cluster.api_key,
    );
    if cluster
        .edges
        .iter()
        .any(|e| !e.http_url.starts_with("http://127.") && !e.http_url.starts_with("http://[::1]"))
    {
        out += "\n\nWarning: dev tokens are on and this edge may be reachable from other hosts: \
                anyone who can reach it can join any meeting.";
    }
    out
}

#[cfg(test)]
mod tests {
    use relay_proto::token;

    use super::*;

    #[test]
    fn credentials_are_fresh_and_long_enough() {
        let (k1, s1) = generate_credentials().unwrap();
        let (k2, s2) = generate_credentials().unwrap();
        assert_ne!((&k1, &s1), (&k2, &s2));
        assert!(k1.starts_with("API") && k1.len() == 15, "{k1}");
        assert!(s1.len() >= config::MIN_SECRET_LEN, "{s1}");
    }

    #[test]
    fn edge_config_is_valid_and_uses_the_fresh_key() {
        let (key, secret) = generate_credentials().unwrap();
        let http: SocketAddr = "127.0.2.1:9080".parse().unwrap();
        let env = [("ARBOR_MEDIA_WORKERS".to_owned(), "2".to_owned())];
        let cfg = edge_config(http, &key, &secret, env).unwrap();
        assert_eq!(cfg.http.listen, http);
        assert_eq!(cfg.media.bind, http.ip());
        assert_eq!(cfg.media.workers, 2, "environment overrides are kept");
        assert!(cfg.auth.dev_tokens);
        assert_eq!(cfg.auth.keys.len(), 1);
        assert_eq!(cfg.auth.keys[&key].expose(), secret);
        let reparsed = config::parse(&cfg.to_toml()).unwrap();
        assert_eq!(reparsed, cfg);
        // A token minted with the cluster's key verifies against the edge's keys.
        let meeting = relay_proto::MeetingId::new("demo").unwrap();
        let jwt = token::mint(
            &token::Claims::join(&meeting, "a", 2_000),
            &key,
            secret.as_bytes(),
        );
        assert!(token::verify(&jwt, &cfg.auth.keys, 1_000).is_ok());

        let bad = [("ARBOR_MEDIA_WORKERS".to_owned(), "lots".to_owned())];
        let e = format!("{:#}", edge_config(http, &key, &secret, bad).unwrap_err());
        assert!(e.contains("ARBOR_MEDIA_WORKERS"), "{e}");
    }

    #[test]
    fn config_vars_are_recognised() {
        assert!(is_config_var("ARBOR_HTTP_LISTEN"));
        assert!(is_config_var("ARBOR_LOG_LEVEL"));
        assert!(!is_config_var("ARBOR_DATA_DIR"));
        assert!(!is_config_var("ARBOR_UP_EDGE_BIN"), "arbor up's own flag");
        assert!(!is_config_var("ARBOR_HTTPX"));
        assert!(!is_config_var("HOME"));
    }

    #[test]
    fn missing_edge_binary_is_explained() {
        let e = find_edge_bin(None).unwrap_err().to_string();
        assert!(e.contains("cargo build --bin arbor-edge"), "{e}");
        let e = find_edge_bin(Some(Path::new("/nonexistent/arbor-edge")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/arbor-edge"), "{e}");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\n").unwrap(),
            503
        );
        assert!(parse_status_line(b"").is_err());
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
    }

    #[tokio::test]
    async fn http_status_against_a_tiny_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = conn.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            request
        });
        assert_eq!(http_status(addr, "/readyz").await.unwrap(), 503);
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
    }

    #[test]
    fn banner_says_where_to_go() {
        let edge = Edge::new(
            "local-1".parse().unwrap(),
            "local".parse().unwrap(),
            77,
            "http://127.0.1.1:7880",
        );
        let cluster = Cluster {
            origin: None,
            api_key: "APIk".into(),
            api_secret: "secret-not-shown".into(),
            dns: None,
            edges: vec![edge],
        };
        let text = banner(
            &cluster,
            Path::new(".arbor"),
            Path::new(".arbor/edge-local-1.log"),
        );
        assert!(
            text.contains("http://127.0.1.1:7880/?meeting=demo"),
            "{text}"
        );
        assert!(
            text.contains("http://127.0.1.1:7880/v1/whip/demo"),
            "{text}"
        );
        assert!(
            text.contains("arbor token --meeting demo --identity alice"),
            "{text}"
        );
        assert!(!text.contains("secret-not-shown"));
        assert!(!text.contains("Warning"));
        let text = banner(&cluster, Path::new("/tmp/c"), Path::new("/tmp/c/e.log"));
        assert!(
            text.contains("arbor token --data-dir /tmp/c --meeting demo"),
            "{text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_carry_the_edge_status() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        assert_eq!(exit_code(ExitStatus::from_raw(0)), ExitCode::FAILURE);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::from(137));
    }
}
