//! The child processes of `arbor up`: finding their binaries, starting them with a log file
//! and without the environment overrides already written into their configs, waiting until
//! they answer, and stopping them (SIGTERM, then SIGKILL after [`STOP_GRACE`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a stopping process gets to exit by itself before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often readiness is polled.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Lines of a process's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// A running child process of `arbor up`.
#[derive(Debug)]
pub struct Proc {
    /// How messages name it: `origin`, `edge eu-1`.
    pub name: String,
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
    child: Child,
    /// Set once it has been waited for.
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `bin --config <config>`, logging to `log`. Variables for which `scrub` holds are
    /// removed from its environment: their values are already in the config file, and the
    /// process must not apply them again on top of what `arbor up` chose.
    pub fn spawn(
        name: String,
        bin: &Path,
        config: &Path,
        log: PathBuf,
        scrub: fn(&str) -> bool,
    ) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create the log {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot reopen the log {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        for (var, _) in std::env::vars_os() {
            if var.to_str().is_some_and(scrub) {
                command.env_remove(var);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} ({})", name, bin.display()))?;
        let pid = child.id().unwrap_or_default();
        Ok(Proc {
            name,
            pid,
            log,
            child,
            status: None,
        })
    }

    /// Its exit status, if it has exited (does not wait).
    pub fn try_exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("cannot check on {}", self.name))?;
        }
        Ok(self.status)
    }

    /// Waits until it exits.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.status = Some(status);
        Ok(status)
    }

    /// "edge eu-1 (pid 42) exited with signal 9. The end of its log (…): …"
    pub fn death_notice(&self, status: ExitStatus) -> String {
        format!(
            "{} (pid {}) exited ({status}).{}",
            self.name,
            self.pid,
            log_tail(&self.log)
        )
    }

    /// Asks it to stop: SIGTERM on Unix, a kill elsewhere.
    fn terminate(&mut self) {
        #[cfg(unix)]
        {
            use rustix::process::{Pid, Signal, kill_process};
            let pid = i32::try_from(self.pid).ok().and_then(Pid::from_raw);
            if let Some(pid) = pid
                && kill_process(pid, Signal::TERM).is_ok()
            {
                return;
            }
        }
        let _ = self.child.start_kill();
    }
}

/// An error naming the first process that has exited, with the end of its log.
pub fn check_running(procs: &mut [Proc]) -> anyhow::Result<()> {
    for p in procs.iter_mut() {
        if let Some(status) = p.try_exited()? {
            bail!("{}", p.death_notice(status));
        }
    }
    Ok(())
}

/// Polls `probe` until it holds; fails if a process exits or `timeout` passes first.
pub async fn wait_until<F, Fut>(
    procs: &mut [Proc],
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        check_running(procs)?;
        if probe().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} within {} s", timeout.as_secs());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Stops every process still running: SIGTERM to all, then a kill for those that have not
/// exited after [`STOP_GRACE`].
pub async fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        if let Ok(None) = p.try_exited() {
            p.terminate();
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for p in procs.iter_mut() {
        if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, p.wait()).await {
            continue;
        }
        if let Err(e) = p.child.kill().await {
            eprintln!("warning: cannot kill {} (pid {}): {e}", p.name, p.pid);
        }
        let _ = p.wait().await;
    }
}

/// `explicit` if given (from `flag`), else the binary `name` next to the running executable.
pub fn find_bin(name: &str, explicit: Option<&Path>, flag: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("{flag} {} is not a file", path.display());
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("cannot find the running executable's path")?;
    let bin = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{name} not found at {}; build it with `cargo build --bin {name}` (with the same \
             profile as arbor), or pass {flag}",
            bin.display()
        );
    }
    Ok(bin)
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

/// Ctrl-C and SIGTERM, listened for from the start so that none is missed between phases.
#[derive(Debug)]
pub struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Starts listening. Needs a tokio runtime.
    pub fn listen() -> anyhow::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    /// Resolves on the next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A non-zero exit code that carries a child's: its own code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
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

/// The last lines of a log, formatted to follow an error message.
pub fn log_tail(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!(" Its log ({}) is empty.", log.display());
    }
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    format!(
        " The end of its log ({}):\n  {}",
        log.display(),
        tail.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_are_explained() {
        let e = find_bin("arbor-edge", None, "--edge-bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo build --bin arbor-edge"), "{e}");
        assert!(e.contains("--edge-bin"), "{e}");
        let e = find_bin(
            "arbor-origin",
            Some(Path::new("/nonexistent/arbor-origin")),
            "--origin-bin",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--origin-bin /nonexistent/arbor-origin"), "{e}");
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

    #[cfg(unix)]
    #[test]
    fn exit_codes_carry_the_child_status() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        assert_eq!(exit_code(ExitStatus::from_raw(0)), ExitCode::FAILURE);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::from(137));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_dead_child_is_reported_and_the_rest_stopped() {
        let dir = crate::test_util::tempdir();
        // Two scripts: one exits at once with a message, one waits for a signal.
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            path
        };
        let dies = script("dies.sh", "echo 'no certificate' >&2; exit 3\n");
        let waits = script(
            "waits.sh",
            "trap 'exit 0' TERM; while :; do sleep 0.05; done\n",
        );
        let mut procs = vec![
            shell(&dir, "waiter", &waits),
            shell(&dir, "edge x-1", &dies),
        ];
        let e = wait_until(&mut procs, Duration::from_secs(10), "never", || async {
            false
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("edge x-1 (pid "), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("no certificate"), "{e}");
        stop_all(&mut procs).await;
        let status = procs[0].try_exited().unwrap().unwrap();
        assert!(status.success(), "SIGTERM let it exit by itself: {status}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `/bin/sh <script>`, as a [`Proc`] (Proc::spawn passes `--config`, which sh refuses).
    #[cfg(unix)]
    fn shell(dir: &Path, name: &str, script: &Path) -> Proc {
        let log = dir.join(format!("{}.log", name.replace(' ', "-")));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("/bin/sh")
            .arg(script)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Proc {
            name: name.into(),
            pid: child.id().unwrap(),
            log,
            child,
            status: None,
        }
    }
}
