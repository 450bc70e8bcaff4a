//! CPU around a load window: the SFU processes' (each edge, or Janus), the load generator's
//! (this process) and the whole machine's. [`CpuProbe`] is the [`Window`] `run_with` and
//! `measure` call when the steady window starts and ends; [`CpuProbe::mark`] before a run
//! also measures the joins (the CPU and memory one participant costs).

use std::time::Duration;

use arbor_bench::cpu::{self, MachineCpu};
use arbor_bench::load::Window;

/// CPU used over a load window, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCpu {
    /// Each SFU process, in the order the probe was given.
    pub sfu_s: Vec<f64>,
    /// From [`CpuProbe::mark`] to the window's start (the joins), if marked.
    pub joining_sfu_s: Option<Vec<f64>>,
    /// Each SFU process's resident memory growth over the same span, in bytes.
    pub joining_rss_bytes: Option<Vec<i64>>,
    pub loadgen_s: f64,
    /// The machine's busy fraction over the window, 0 to 1 (other tenants included).
    pub machine_busy: f64,
}

impl WindowCpu {
    /// All SFU processes together.
    pub fn sfu_total_s(&self) -> f64 {
        self.sfu_s.iter().sum()
    }
}

#[derive(Debug, Clone)]
struct Reading {
    sfu: Vec<Duration>,
    rss: Vec<u64>,
    own: Duration,
    machine: MachineCpu,
}

/// Reads the CPU at [`CpuProbe::mark`] and when the load window starts and ends.
#[derive(Debug)]
pub struct CpuProbe {
    pids: Vec<u32>,
    mark: Option<Reading>,
    start: Option<Reading>,
    end: Option<anyhow::Result<WindowCpu>>,
}

impl CpuProbe {
    pub fn new(pids: Vec<u32>) -> Self {
        CpuProbe {
            pids,
            mark: None,
            start: None,
            end: None,
        }
    }

    /// Reads now, so the result also tells the CPU used from here to the window's start.
    pub fn mark(&mut self) {
        self.mark = self.read().ok();
    }

    /// The window's CPU, once it ended.
    pub fn result(self) -> anyhow::Result<WindowCpu> {
        self.end
            .unwrap_or_else(|| Err(anyhow::anyhow!("the load window never ended")))
    }

    fn read(&self) -> anyhow::Result<Reading> {
        let sfu = self
            .pids
            .iter()
            .map(|&pid| cpu::process(pid))
            .collect::<Result<_, _>>()?;
        let rss = self
            .pids
            .iter()
            .map(|&pid| cpu::rss_bytes(pid))
            .collect::<Result<_, _>>()?;
        Ok(Reading {
            sfu,
            rss,
            own: cpu::process(std::process::id())?,
            machine: cpu::machine()?,
        })
    }
}

fn seconds_between(a: &[Duration], b: &[Duration]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(a, b)| b.saturating_sub(*a).as_secs_f64())
        .collect()
}

impl Window for CpuProbe {
    fn started(&mut self) {
        self.start = self.read().ok();
    }

    fn ended(&mut self) {
        let Some(start) = self.start.take() else {
            self.end = Some(Err(anyhow::anyhow!(
                "cannot read the CPU of processes {:?}",
                self.pids
            )));
            return;
        };
        let joining = self
            .mark
            .as_ref()
            .map(|m| seconds_between(&m.sfu, &start.sfu));
        let grown = self.mark.as_ref().map(|m| {
            m.rss
                .iter()
                .zip(&start.rss)
                .map(|(a, b)| *b as i64 - *a as i64)
                .collect()
        });
        self.end = Some(self.read().map(|end| WindowCpu {
            sfu_s: seconds_between(&start.sfu, &end.sfu),
            joining_sfu_s: joining,
            joining_rss_bytes: grown,
            loadgen_s: end.own.saturating_sub(start.own).as_secs_f64(),
            machine_busy: end.machine.busy_since(&start.machine),
        }));
    }
}
