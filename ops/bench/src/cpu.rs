//! CPU time from `/proc`: of a process (`/proc/<pid>/stat`), of one thread
//! (`/proc/self/task/<tid>/stat`), and of the whole machine (`/proc/stat`); and a process's
//! resident memory (`/proc/<pid>/status`), for memory per participant.
//!
//! Benchmarks divide work by CPU time rather than wall time ("forwarded packets per
//! CPU-second"), so that the other tenants of a shared machine, the load generator and the
//! other side of the comparison do not count against the process measured.

use std::time::Duration;

/// Why a reading failed.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} has no field {field}: {line:?}")]
    Parse {
        path: String,
        field: &'static str,
        line: String,
    },
}

/// User plus system CPU time a process has used, children excluded.
pub fn process(pid: u32) -> Result<Duration, CpuError> {
    task_stat(&format!("/proc/{pid}/stat"))
}

/// User plus system CPU time one thread of this process has used.
pub fn thread(tid: u32) -> Result<Duration, CpuError> {
    task_stat(&format!("/proc/self/task/{tid}/stat"))
}

/// A process's resident set size (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, CpuError> {
    let path = format!("/proc/{pid}/status");
    let text = read(&path)?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    kib.map(|k| k * 1024).ok_or_else(|| CpuError::Parse {
        path,
        field: "VmRSS",
        line: line.unwrap_or_default().to_owned(),
    })
}

/// The machine's CPU time so far, busy and in total (all cores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    pub busy: Duration,
    pub total: Duration,
}

impl MachineCpu {
    /// The busy fraction of all cores between `earlier` and `self`, 0 to 1.
    pub fn busy_since(&self, earlier: &MachineCpu) -> f64 {
        let total = self.total.saturating_sub(earlier.total).as_secs_f64();
        if total == 0.0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy).as_secs_f64() / total
    }
}

/// Reads `/proc/stat`'s `cpu` line.
pub fn machine() -> Result<MachineCpu, CpuError> {
    let path = "/proc/stat";
    let text = read(path)?;
    let line = text.lines().next().unwrap_or_default();
    let parse_err = |field| CpuError::Parse {
        path: path.into(),
        field,
        line: line.into(),
    };
    let mut fields = line.split_whitespace();
    if fields.next() != Some("cpu") {
        return Err(parse_err("cpu"));
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let ticks: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
    if ticks.len() < 5 {
        return Err(parse_err("idle"));
    }
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Ok(MachineCpu {
        busy: from_ticks(total - idle),
        total: from_ticks(total),
    })
}

/// utime + stime (fields 14 and 15) of a `stat` file. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn task_stat(path: &str) -> Result<Duration, CpuError> {
    let text = read(path)?;
    let parse_err = |field| CpuError::Parse {
        path: path.into(),
        field,
        line: text.trim_end().into(),
    };
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| parse_err("comm"))?;
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let mut next = |field| {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| parse_err(field))
    };
    let (utime, stime) = (next("utime")?, next("stime")?);
    Ok(from_ticks(utime + stime))
}

fn read(path: &str) -> Result<String, CpuError> {
    std::fs::read_to_string(path).map_err(|source| CpuError::Read {
        path: path.into(),
        source,
    })
}

fn from_ticks(ticks: u64) -> Duration {
    let per_s = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU on this thread until its own reading has grown.
    #[test]
    fn this_process_and_thread_accumulate_cpu() {
        let pid = std::process::id();
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        let (p0, t0, m0) = (
            process(pid).unwrap(),
            thread(tid).unwrap(),
            machine().unwrap(),
        );
        let mut x = 0u64;
        while thread(tid).unwrap() < t0 + Duration::from_millis(50) {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        assert!(process(pid).unwrap() >= p0 + Duration::from_millis(50));
        let m1 = machine().unwrap();
        assert!(m1.total > m0.total);
        let busy = m1.busy_since(&m0);
        assert!(busy > 0.0 && busy <= 1.0, "{busy}");
    }

    #[test]
    fn resident_memory_grows_with_touched_pages() {
        let before = rss_bytes(std::process::id()).unwrap();
        let block = vec![1u8; 64 << 20];
        let after = rss_bytes(std::process::id()).unwrap();
        assert!(after >= before + (48 << 20), "{before} → {after}");
        drop(block);
        assert!(rss_bytes(u32::MAX).is_err());
    }

    #[test]
    fn missing_processes_are_named() {
        let e = process(u32::MAX).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /proc/4294967295/stat"),
            "{e}"
        );
    }
}
