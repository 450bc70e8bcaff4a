//! The virtual clock's agenda: events ordered by (time, sequence), so two events due at the
//! same instant run in the order they were scheduled and a run never depends on a heap's
//! tie-breaking.
//!
//! Nodes and links are woken through [`Queue::wake`], which keeps one pending wake per target:
//! a wake is pushed only when it is earlier than the one already pending, and a popped wake
//! that is no longer the pending one is stale and skipped. A target woken too early simply
//! reports its next deadline again.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

use edge_core::signal::{ClientMsg, ServerMsg};

/// Most events pending at once; past it the run stops with an error (a runaway feedback loop
/// in the simulated code, not a legitimate load).
pub const MAX_PENDING_EVENTS: usize = 1 << 22;

/// Something that is woken at its own deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Coordinator,
    Edge(usize),
    Client(usize),
    /// A media link (index into the world's links).
    Media(usize),
    /// An ordered control channel (index into the world's channels).
    Control(usize),
}

/// What happens at an instant.
#[derive(Debug)]
pub(crate) enum Event {
    /// A node's or link's deadline.
    Wake(Target),
    /// A client's signaling message reaches its edge.
    ToEdge { client: usize, msg: ClientMsg },
    /// An edge's signaling message reaches a client.
    ToClient { client: usize, msg: ServerMsg },
    /// An edge shell's 200 ms timer: probes, suspicion, and every fifth tick the heartbeat.
    ShellTick(usize),
    /// An edge's control link to the origin is up.
    OriginConnected(usize),
    /// A participant joins (index into the scenario's participants).
    Join(usize),
    /// The scenario's impairment number `n` takes effect.
    Impair(usize),
    /// A relay session's idle timeout, set when partition number `cut` of pair `pair` began.
    IdleCheck { pair: usize, cut: u64 },
    /// A relay link that went down reconnects (pair index).
    Reconnect(usize),
    /// The periodic sampling of what clients render.
    Sample,
    /// Every slot's numbers are recorded (window start, around impairments, end).
    Snapshot,
}

struct Entry {
    at: Instant,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The agenda. See the module docs.
#[derive(Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// The pending wake of each target.
    wakes: BTreeMap<Target, Instant>,
    overflowed: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("pending", &self.heap.len())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// Schedules `event` at `at`.
    pub(crate) fn push(&mut self, at: Instant, event: Event) {
        if self.heap.len() >= MAX_PENDING_EVENTS {
            self.overflowed = true;
            return;
        }
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Wakes `target` at `at` unless an earlier wake is already pending.
    pub(crate) fn wake(&mut self, target: Target, at: Instant) {
        if self.wakes.get(&target).is_some_and(|w| *w <= at) {
            return;
        }
        self.wakes.insert(target, at);
        self.push(at, Event::Wake(target));
    }

    /// The next event due at or before `until`, skipping stale wakes.
    pub(crate) fn pop(&mut self, until: Instant) -> Option<(Instant, Event)> {
        loop {
            let Reverse(head) = self.heap.peek()?;
            if head.at > until {
                return None;
            }
            let Reverse(Entry { at, event, .. }) = self.heap.pop()?;
            if let Event::Wake(target) = &event {
                if self.wakes.get(target) != Some(&at) {
                    continue;
                }
                self.wakes.remove(target);
            }
            return Some((at, event));
        }
    }

    /// Whether the agenda ever refused an event for being full.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Events processed so far (a measure of the run's size).
    pub(crate) fn scheduled(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test picks its virtual epoch
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ties_run_in_scheduling_order_and_stale_wakes_are_skipped() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut q = Queue::default();
        q.push(t0 + 2 * ms, Event::Sample);
        q.push(t0 + ms, Event::Join(1));
        q.push(t0 + ms, Event::Join(2));
        q.wake(Target::Edge(0), t0 + 3 * ms);
        q.wake(Target::Edge(0), t0 + ms); // earlier: replaces the pending one
        q.wake(Target::Edge(0), t0 + 5 * ms); // later than pending: ignored
        let mut order = Vec::new();
        while let Some((at, e)) = q.pop(t0 + 10 * ms) {
            order.push((at.duration_since(t0), format!("{e:?}")));
        }
        let expect = [
            (ms, "Join(1)"),
            (ms, "Join(2)"),
            (ms, "Wake(Edge(0))"),
            (2 * ms, "Sample"),
        ];
        let got: Vec<(Duration, &str)> = order.iter().map(|(d, s)| (*d, s.as_str())).collect();
        assert_eq!(got, expect);
    }
}
