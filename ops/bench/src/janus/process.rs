//! [`Janus`]: the running `janus` process, from start to a clean stop.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{Admin, JanusApi, JanusConfig, JanusError};

/// How often `GET /janus/info` is tried while Janus starts.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often a stopping Janus is checked on from `Drop` (which cannot await).
const DROP_POLL: Duration = Duration::from_millis(20);
/// Lines of `janus.log` quoted in errors.
const LOG_TAIL_LINES: usize = 20;
/// Bytes of `janus.log` read for those lines at most.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// A running Janus. [`Janus::stop`] ends it with SIGTERM (Janus needs about 2 s) and waits;
/// dropping it does the same, blocking the dropping thread for at most the stop grace.
#[derive(Debug)]
pub struct Janus {
    child: Child,
    pid: u32,
    dir: PathBuf,
    config: JanusConfig,
    api: JanusApi,
    admin: Admin,
}

impl Janus {
    /// Writes the config into `dir`, starts `janus -F dir -L dir/janus.log -N` and waits
    /// until its HTTP API answers. Call it inside the bench's network namespace.
    pub async fn start(dir: &Path, config: JanusConfig) -> Result<Janus, JanusError> {
        config.write(dir)?;
        let log = dir.join("janus.log");
        // A log from an earlier run would confuse the start checks and the error tails.
        let _ = std::fs::remove_file(&log);
        let out = dir.join("janus.out");
        let stdout = std::fs::File::create(&out)
            .map_err(|e| JanusError::io(format!("creating {}", out.display()), e))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| JanusError::io(format!("reopening {}", out.display()), e))?;
        let child = Command::new(&config.binary)
            .arg("-F")
            .arg(dir)
            .arg("-L")
            .arg(&log)
            .arg("-N")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => JanusError::NotInstalled {
                    binary: config.binary.clone(),
                },
                _ => JanusError::io(format!("starting {}", config.binary.display()), e),
            })?;
        let mut janus = Janus {
            pid: child.id().unwrap_or_default(),
            child,
            dir: dir.to_path_buf(),
            api: JanusApi::new(&config.api_url())?,
            admin: Admin::new(&config.admin_url(), &config.admin_secret)?,
            config,
        };
        janus.wait_ready().await?;
        Ok(janus)
    }

    /// Polls `GET /janus/info` until it answers, Janus exits, or the start timeout passes;
    /// then checks that the answer came from this Janus (its log path), not an older one.
    async fn wait_ready(&mut self) -> Result<(), JanusError> {
        let timeout = self.config.start_timeout;
        let deadline = Instant::now() + timeout;
        let info = loop {
            if let Some(status) = self.try_exited()? {
                return Err(self.exited(status));
            }
            if let Ok(info) = self.api.info().await {
                break info;
            }
            if Instant::now() >= deadline {
                return Err(JanusError::StartTimeout {
                    url: format!("{}/info", self.config.api_url()),
                    after: timeout,
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        };
        let theirs = info["log-path"].as_str().unwrap_or_default();
        if Path::new(theirs) != self.log_path() {
            return Err(JanusError::PortTaken {
                port: self.config.http_port,
                other_log: theirs.to_string(),
            });
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &JanusConfig {
        &self.config
    }

    /// The folder holding its config files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `janus.log` in that folder.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("janus.log")
    }

    /// Its HTTP API.
    pub fn api(&self) -> &JanusApi {
        &self.api
    }

    /// Its Admin API.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// CPU time (user + system, every thread) Janus has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Result<Duration, crate::cpu::CpuError> {
        crate::cpu::process(self.pid)
    }

    /// Its exit status, if it has exited (does not wait).
    pub fn try_exited(&mut self) -> Result<Option<ExitStatus>, JanusError> {
        self.child
            .try_wait()
            .map_err(|e| JanusError::io(format!("checking on janus (pid {})", self.pid), e))
    }

    /// Stops it: SIGTERM, then SIGKILL if it has not exited within the stop grace. Returns
    /// how it exited.
    pub async fn stop(mut self) -> Result<ExitStatus, JanusError> {
        if let Some(status) = self.try_exited()? {
            return Ok(status);
        }
        self.terminate();
        let grace = self.config.stop_grace;
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.child.start_kill();
                self.child.wait().await
            }
        };
        status.map_err(|e| JanusError::io(format!("waiting for janus (pid {})", self.pid), e))
    }

    fn terminate(&mut self) {
        let pid = i32::try_from(self.pid).ok().and_then(Pid::from_raw);
        if pid.is_none_or(|p| kill_process(p, Signal::TERM).is_err()) {
            let _ = self.child.start_kill();
        }
    }

    fn exited(&self, status: ExitStatus) -> JanusError {
        JanusError::Exited {
            status: status.to_string(),
            log_tail: self.log_tail(),
        }
    }

    /// The last lines of `janus.log` (or of its stdout, if the log is empty).
    fn log_tail(&self) -> String {
        let tail = log_tail(&self.log_path());
        if tail.is_empty() {
            log_tail(&self.dir.join("janus.out"))
        } else {
            tail
        }
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.terminate();
        // `Drop` cannot await: poll for the exit, then kill (kill_on_drop) if it is late.
        let deadline = std::time::Instant::now() + self.config.stop_grace;
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(DROP_POLL);
        }
    }
}

/// The last [`LOG_TAIL_LINES`] lines of a file (empty if unreadable).
fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or_default();
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = vec![];
    let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
