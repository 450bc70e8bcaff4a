//! Whether this edge should receive new clients (`/readyz`), and its drain.
//!
//! Anycast and DNS health checks read `/readyz`: 200 while the edge takes new clients, 503
//! with a one-line reason when it should not (DESIGN.md §4–§5). The decision is a pure
//! function, [`readiness`], over a [`Snapshot`] that the shell gathers from the media
//! workers and from [`Health`], so every combination is unit-tested without a clock, a
//! socket or `/proc`:
//!
//! ```text
//! /proc/self/stat every CPU_SAMPLE ─► CpuWindow::handle_sample(now, ticks) ─► cpu share
//! origin link up / down (backbone) ─► Health::handle_origin_up / handle_origin_down
//! origin's Drain (backbone) ────────► Health::handle_drain(target) ─► watch: every session
//! GET /readyz ──► Health::snapshot(&media) ─► readiness(&snapshot, &thresholds)
//! ```
//!
//! Not ready, in this order: a media worker stopped; an operator drains the edge; CPU at or
//! above `[health] max_cpu` over the last [`CPU_WINDOW`]; sessions at or above
//! `max_sessions`; the origin unreachable for longer than `origin_grace_s` while the edge
//! hosts no meeting (one that hosts meetings keeps serving them: the data plane does not
//! need the origin, and their joins must still land here).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use relay_proto::DrainTarget;
use tokio::sync::watch;

use crate::media::Media;

/// How often the process's CPU time is read.
pub const CPU_SAMPLE: Duration = Duration::from_secs(1);
/// Samples kept: the CPU share is averaged over the last `CPU_WINDOW_SAMPLES` intervals.
pub const CPU_WINDOW_SAMPLES: usize = 3;
/// The span the CPU share is averaged over.
pub const CPU_WINDOW: Duration = Duration::from_secs(3);
/// Clock ticks per second of `/proc/self/stat` (`CLK_TCK`, 100 on every Linux platform).
const TICKS_PER_S: f64 = 100.0;

/// `[health]` as the decision uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Share of the machine's CPU, 0..=1.
    pub max_cpu: f64,
    pub max_sessions: u64,
    pub origin_grace: Duration,
}

impl Thresholds {
    pub fn from_config(h: &crate::config::Health) -> Self {
        Thresholds {
            max_cpu: h.max_cpu,
            max_sessions: h.max_sessions,
            origin_grace: Duration::from_secs(h.origin_grace_s),
        }
    }
}

/// The edge's control link to the origin, as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginLink {
    /// No backbone: a standalone edge needs no origin.
    Unused,
    Up,
    /// Down (or never up) for this long.
    Lost {
        for_: Duration,
    },
}

/// Everything [`readiness`] looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Every media worker thread is running.
    pub media_running: bool,
    pub draining: bool,
    /// The process's share of the machine's CPU over the last [`CPU_WINDOW`], 0..=1.
    pub cpu: f64,
    /// Participants of every kind (meeting clients, WHIP and WHEP sessions).
    pub sessions: u64,
    /// Meetings hosted (with local participants or relayed through).
    pub meetings: u64,
    pub origin: OriginLink,
}

/// Why the edge is not ready; `Display` is the one-line reason `/readyz` answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unready {
    MediaStopped,
    Draining { sessions: u64 },
    Cpu { cpu: f64, max: f64 },
    Sessions { sessions: u64, max: u64 },
    OriginLost { for_: Duration },
}

impl fmt::Display for Unready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unready::MediaStopped => f.write_str("a media worker stopped"),
            Unready::Draining { sessions } => {
                write!(
                    f,
                    "draining: {sessions} sessions left, new joins go elsewhere"
                )
            }
            Unready::Cpu { cpu, max } => write!(
                f,
                "overloaded: CPU at {:.0}% over the last {} s (the limit is {:.0}%)",
                cpu * 100.0,
                CPU_WINDOW.as_secs(),
                max * 100.0
            ),
            Unready::Sessions { sessions, max } => {
                write!(f, "overloaded: {sessions} sessions (the limit is {max})")
            }
            Unready::OriginLost { for_ } => write!(
                f,
                "origin unreachable for {} s and no meeting hosted here",
                for_.as_secs()
            ),
        }
    }
}

/// The readiness decision: `Ok` when the edge should receive new clients.
pub fn readiness(s: &Snapshot, t: &Thresholds) -> Result<(), Unready> {
    if !s.media_running {
        return Err(Unready::MediaStopped);
    }
    if s.draining {
        return Err(Unready::Draining {
            sessions: s.sessions,
        });
    }
    if s.cpu >= t.max_cpu {
        return Err(Unready::Cpu {
            cpu: s.cpu,
            max: t.max_cpu,
        });
    }
    if s.sessions >= t.max_sessions {
        return Err(Unready::Sessions {
            sessions: s.sessions,
            max: t.max_sessions,
        });
    }
    if let OriginLink::Lost { for_ } = s.origin
        && for_ > t.origin_grace
        && s.meetings == 0
    {
        return Err(Unready::OriginLost { for_ });
    }
    Ok(())
}

/// The process's CPU share over a sliding window of samples of its CPU time.
#[derive(Debug, Default)]
pub struct CpuWindow {
    /// (when, utime + stime in clock ticks), oldest first; at most `CPU_WINDOW_SAMPLES + 1`.
    samples: VecDeque<(Instant, u64)>,
}

impl CpuWindow {
    /// Adds a reading of the process's CPU time.
    pub fn handle_sample(&mut self, now: Instant, ticks: u64) {
        if self.samples.len() > CPU_WINDOW_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, ticks));
    }

    /// CPU time over wall time between the oldest and the newest sample, divided by
    /// `cores`: 0..=1. Zero until there are two samples.
    pub fn share(&self, cores: usize) -> f64 {
        let (Some(&(t0, c0)), Some(&(t1, c1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let wall = t1.saturating_duration_since(t0).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let busy = c1.saturating_sub(c0) as f64 / TICKS_PER_S;
        (busy / wall / cores.max(1) as f64).clamp(0.0, 1.0)
    }
}

/// What an operator's drain asked of this edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drain {
    pub draining: bool,
    /// Where clients go when the origin has no better place for their meeting.
    pub target: Option<DrainTarget>,
}

/// The shell's side: the state `/readyz`, the backbone and the signaling sessions share.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    thresholds: Thresholds,
    /// The CPU share in thousandths, refreshed every [`CPU_SAMPLE`].
    cpu_permille: AtomicU32,
    drain: watch::Sender<Drain>,
    origin: Mutex<OriginState>,
    /// The drain's end ("no participants left") was logged.
    drained: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
enum OriginState {
    Unused,
    Up,
    Down { since: Instant },
}

impl Health {
    /// With `backbone`, the origin counts as lost from now until its link comes up.
    pub fn new(thresholds: Thresholds, backbone: bool) -> Health {
        let origin = match backbone {
            true => OriginState::Down {
                since: Instant::now(),
            },
            false => OriginState::Unused,
        };
        Health {
            inner: Arc::new(Inner {
                thresholds,
                cpu_permille: AtomicU32::new(0),
                drain: watch::Sender::new(Drain::default()),
                origin: Mutex::new(origin),
                drained: AtomicBool::new(false),
            }),
        }
    }

    /// Starts reading `/proc/self/stat` every [`CPU_SAMPLE`]; the task ends with the last
    /// clone of this `Health`. Must be called inside a tokio runtime.
    pub fn spawn_cpu_sampler(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::spawn(async move {
            let mut window = CpuWindow::default();
            let mut tick = tokio::time::interval(CPU_SAMPLE);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Some(ticks) = process_ticks() {
                    window.handle_sample(Instant::now(), ticks);
                    let permille = (window.share(cores) * 1000.0).round() as u32;
                    inner.cpu_permille.store(permille, Ordering::Relaxed);
                }
            }
        });
    }

    /// The process's CPU share over the last [`CPU_WINDOW`], in thousandths of the machine.
    pub fn cpu_permille(&self) -> u16 {
        self.inner.cpu_permille.load(Ordering::Relaxed).min(1000) as u16
    }

    pub fn is_draining(&self) -> bool {
        self.inner.drain.borrow().draining
    }

    /// The drain as it stands.
    pub fn drain(&self) -> Drain {
        self.inner.drain.borrow().clone()
    }

    /// Follows the drain: every signaling session holds one.
    pub fn watch_drain(&self) -> watch::Receiver<Drain> {
        self.inner.drain.subscribe()
    }

    /// The origin asked this edge to drain, sending clients to `target`. Idempotent; `true`
    /// if anything changed (the first request, or a new target).
    pub fn handle_drain(&self, target: Option<DrainTarget>) -> bool {
        let next = Drain {
            draining: true,
            target,
        };
        self.inner.drain.send_if_modified(|d| {
            let changed = *d != next;
            *d = next;
            changed
        })
    }

    /// Reports the participant count while draining; `true` exactly once, the first time it
    /// is zero (the caller logs that the drain is done).
    pub fn handle_participants(&self, participants: u64) -> bool {
        self.is_draining() && participants == 0 && !self.inner.drained.swap(true, Ordering::Relaxed)
    }

    pub fn handle_origin_up(&self) {
        *self.origin() = OriginState::Up;
    }

    pub fn handle_origin_down(&self) {
        let mut origin = self.origin();
        if matches!(*origin, OriginState::Up) {
            *origin = OriginState::Down {
                since: Instant::now(),
            };
        }
    }

    /// What [`readiness`] needs, read now.
    pub fn snapshot(&self, media: &Media) -> Snapshot {
        let stats = media.stats();
        let origin = match *self.origin() {
            OriginState::Unused => OriginLink::Unused,
            OriginState::Up => OriginLink::Up,
            OriginState::Down { since } => OriginLink::Lost {
                for_: since.elapsed(),
            },
        };
        Snapshot {
            media_running: media.healthy(),
            draining: self.is_draining(),
            cpu: f64::from(self.cpu_permille()) / 1000.0,
            sessions: stats.iter().map(|s| s.participants).sum(),
            meetings: stats.iter().map(|s| s.meetings).sum(),
            origin,
        }
    }

    /// [`readiness`] of this edge now.
    pub fn check(&self, media: &Media) -> Result<(), Unready> {
        readiness(&self.snapshot(media), &self.inner.thresholds)
    }

    fn origin(&self) -> std::sync::MutexGuard<'_, OriginState> {
        self.inner
            .origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// utime + stime of this process, in clock ticks.
pub fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_ticks(&stat)
}

fn parse_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // an arbitrary epoch for the CPU window
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        max_cpu: 0.9,
        max_sessions: 100,
        origin_grace: Duration::from_secs(10),
    };

    fn ready() -> Snapshot {
        Snapshot {
            media_running: true,
            draining: false,
            cpu: 0.2,
            sessions: 5,
            meetings: 1,
            origin: OriginLink::Up,
        }
    }

    /// Every combination of the five conditions: the verdict is the first one that holds,
    /// in the documented order, and `Ok` when none does.
    #[test]
    fn every_combination_gives_the_first_reason_that_holds() {
        let lost = |s: u64| OriginLink::Lost {
            for_: Duration::from_secs(s),
        };
        for bits in 0u32..64 {
            let on = |i: u32| bits & (1 << i) != 0;
            let s = Snapshot {
                media_running: !on(0),
                draining: on(1),
                cpu: if on(2) { 0.95 } else { 0.5 },
                sessions: if on(3) { 100 } else { 99 },
                origin: if on(4) { lost(11) } else { lost(10) },
                meetings: if on(5) { 1 } else { 0 },
            };
            let expected = if on(0) {
                Err(Unready::MediaStopped)
            } else if on(1) {
                Err(Unready::Draining {
                    sessions: s.sessions,
                })
            } else if on(2) {
                Err(Unready::Cpu {
                    cpu: 0.95,
                    max: 0.9,
                })
            } else if on(3) {
                Err(Unready::Sessions {
                    sessions: 100,
                    max: 100,
                })
            } else if on(4) && !on(5) {
                Err(Unready::OriginLost {
                    for_: Duration::from_secs(11),
                })
            } else {
                Ok(())
            };
            assert_eq!(readiness(&s, &T), expected, "{s:?}");
        }
    }

    #[test]
    fn boundaries() {
        let mut s = ready();
        assert_eq!(readiness(&s, &T), Ok(()));
        s.cpu = 0.9;
        assert!(matches!(readiness(&s, &T), Err(Unready::Cpu { .. })));
        s.cpu = 0.899;
        s.sessions = 100;
        assert!(matches!(readiness(&s, &T), Err(Unready::Sessions { .. })));
        s.sessions = 99;
        assert_eq!(readiness(&s, &T), Ok(()));
        // A standalone edge and a connected one never wait for the origin.
        s.meetings = 0;
        for origin in [OriginLink::Unused, OriginLink::Up] {
            s.origin = origin;
            assert_eq!(readiness(&s, &T), Ok(()));
        }
        s.origin = OriginLink::Lost {
            for_: Duration::from_secs(3600),
        };
        assert!(matches!(readiness(&s, &T), Err(Unready::OriginLost { .. })));
        s.meetings = 1;
        assert_eq!(readiness(&s, &T), Ok(()), "it serves what it hosts");
    }

    #[test]
    fn reasons_are_one_line_and_start_with_their_kind() {
        let reasons = [
            (Unready::MediaStopped, "a media worker stopped"),
            (
                Unready::Draining { sessions: 3 },
                "draining: 3 sessions left, new joins go elsewhere",
            ),
            (
                Unready::Cpu {
                    cpu: 0.934,
                    max: 0.9,
                },
                "overloaded: CPU at 93% over the last 3 s (the limit is 90%)",
            ),
            (
                Unready::Sessions {
                    sessions: 100,
                    max: 100,
                },
                "overloaded: 100 sessions (the limit is 100)",
            ),
            (
                Unready::OriginLost {
                    for_: Duration::from_millis(12_500),
                },
                "origin unreachable for 12 s and no meeting hosted here",
            ),
        ];
        for (unready, text) in reasons {
            assert_eq!(unready.to_string(), text);
        }
    }

    #[test]
    fn cpu_share_over_the_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = CpuWindow::default();
        assert_eq!(w.share(2), 0.0);
        w.handle_sample(at(0), 1000);
        assert_eq!(w.share(2), 0.0, "one sample is no interval");
        // 1 s of CPU per wall second on a 2-core machine: half of it.
        w.handle_sample(at(1), 1100);
        assert!((w.share(2) - 0.5).abs() < 1e-9);
        w.handle_sample(at(2), 1300);
        w.handle_sample(at(3), 1500);
        // (1500 - 1000) ticks = 5 s over 3 s: saturated, clamped to 1.
        assert!((w.share(1) - 1.0).abs() < 1e-9);
        // The first sample leaves the window: (1700 - 1100) / 100 / 3 s / 2 cores.
        w.handle_sample(at(4), 1700);
        assert!((w.share(2) - 1.0).abs() < 1e-9);
        // An idle second: (1700 - 1300) / 100 / 3 s / 2 cores.
        w.handle_sample(at(5), 1700);
        assert!((w.share(2) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(w.samples.len(), CPU_WINDOW_SAMPLES + 1);
        // A clock that did not move, or a counter that went back, is no load.
        let mut w = CpuWindow::default();
        w.handle_sample(at(1), 500);
        w.handle_sample(at(1), 600);
        assert_eq!(w.share(1), 0.0);
        w.handle_sample(at(2), 100);
        assert_eq!(w.share(1), 0.0);
    }

    #[test]
    fn proc_stat_is_parsed_after_the_command_name() {
        let line = "4242 (arbor edge) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_ticks(line), Some(325));
        assert_eq!(parse_ticks("4242 (x"), None);
        assert_eq!(parse_ticks("4242 (x) S 1"), None);
        assert!(process_ticks().is_some());
    }

    #[tokio::test]
    async fn drain_is_idempotent_and_reports_empty_once() {
        let h = Health::new(T, true);
        let mut watch = h.watch_drain();
        assert!(!h.is_draining());
        assert!(!h.handle_participants(0), "not draining");
        let target = DrainTarget {
            edge: "us-1".parse().unwrap(),
            http_url: "http://us".into(),
        };
        assert!(h.handle_drain(Some(target.clone())));
        assert!(watch.has_changed().unwrap());
        assert_eq!(watch.borrow_and_update().target, Some(target.clone()));
        assert!(!h.handle_drain(Some(target)), "a repeat changes nothing");
        assert!(!watch.has_changed().unwrap());
        assert!(h.handle_drain(None), "a new target does");
        assert!(h.is_draining());
        assert!(!h.handle_participants(2));
        assert!(h.handle_participants(0));
        assert!(!h.handle_participants(0), "logged once");
    }
}
