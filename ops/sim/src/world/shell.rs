//! What the tokio shells do around the sans-IO cores (`edge/src/backbone.rs`), modelled in
//! virtual time, and the scenario's impairments of the backbone.
//!
//! - Every [`PING_TICKS`] ticks (150 ms, the relay sessions' ping interval) an edge's shell
//!   takes an RTT sample from each peer whose link answered (the link's base RTT); every
//!   [`TICK`] (50 ms) it reports peers silent for [`SUSPECT_AFTER`] (500 ms) unreachable to
//!   the origin — the constants of `edge/src/backbone.rs`.
//! - Every [`HEARTBEAT_TICKS`] ticks (1 s) it sends the origin a heartbeat with its load and an
//!   RTT report for every peer (`u32::MAX` for silent ones).
//! - A relay session whose path stays cut for [`IDLE_TIMEOUT`] (3 s) closes: both workers get
//!   `handle_link_down` and what was queued on its stream is lost. After the heal the dialling
//!   edge reconnects after its backoff (up to [`BACKOFF_MAX`], seeded) and a handshake (one
//!   RTT); both workers get `handle_link_up`.
//! - A cut shorter than that holds control messages (the QUIC stream retransmits them after
//!   the heal, in order) and drops media datagrams.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng as _;
use relay_proto::{Control, Load, RttSample};

use super::World;
use super::queue::{Event, Target};
use crate::outcome::PartitionRecord;
use crate::scenario::Impairment;

/// The shells' suspicion check period (`SUSPECT_CHECK`).
pub const TICK: Duration = Duration::from_millis(50);
/// Ticks between RTT samples: the sessions' 150 ms ping (`PING_INTERVAL`).
pub const PING_TICKS: u64 = 3;
/// Silence after which a peer is reported unreachable.
pub const SUSPECT_AFTER: Duration = Duration::from_millis(500);
/// Ticks between heartbeats (and full RTT reports): 1 s.
pub const HEARTBEAT_TICKS: u64 = 20;
/// A relay session with nothing received for this long closes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait of a dialling edge between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What an edge's shell knows about one peer.
#[derive(Debug, Clone, Copy)]
struct Probe {
    last_sample: Instant,
    suspect: bool,
}

/// One edge's shell state.
#[derive(Debug)]
pub(crate) struct Shell {
    probes: BTreeMap<usize, Probe>,
    ticks: u64,
}

impl Shell {
    /// The shell of edge `me` among `edges`, every link freshly sampled at `now`.
    pub(crate) fn new(now: Instant, me: usize, edges: usize) -> Self {
        let probe = Probe {
            last_sample: now,
            suspect: false,
        };
        Shell {
            probes: (0..edges)
                .filter(|e| *e != me)
                .map(|e| (e, probe))
                .collect(),
            ticks: 0,
        }
    }
}

impl World {
    /// One shell tick of edge `i`: samples, fast suspicion reports, and the heartbeat.
    pub(super) fn shell_tick(&mut self, i: usize) {
        let now = self.now;
        self.queue.push(now + TICK, Event::ShellTick(i));
        let answered: Vec<(usize, bool)> = self.edges[i]
            .shell
            .probes
            .keys()
            .map(|&peer| {
                let ok = self
                    .pair_index(i, peer)
                    .is_some_and(|p| self.pairs[p].probe_answered(now));
                (peer, ok)
            })
            .collect();
        let shell = &mut self.edges[i].shell;
        shell.ticks += 1;
        let ping = shell.ticks.is_multiple_of(PING_TICKS);
        let mut fresh_suspects = Vec::new();
        for (peer, ok) in answered {
            let Some(probe) = shell.probes.get_mut(&peer) else {
                continue;
            };
            if ok && ping {
                *probe = Probe {
                    last_sample: now,
                    suspect: false,
                };
            } else if !ok
                && now.duration_since(probe.last_sample) >= SUSPECT_AFTER
                && !probe.suspect
            {
                probe.suspect = true;
                fresh_suspects.push(peer);
            }
        }
        let heartbeat = shell.ticks.is_multiple_of(HEARTBEAT_TICKS);
        if !fresh_suspects.is_empty() {
            let samples = fresh_suspects
                .into_iter()
                .map(|peer| RttSample {
                    peer: self.edges[peer].id.clone(),
                    rtt_us: u32::MAX,
                })
                .collect();
            let ch = self.edges[i].to_origin;
            self.send_control(ch, Control::RttReport(samples), false);
        }
        if heartbeat {
            self.heartbeat(i);
        }
    }

    /// The 1 s report: load and the RTT to every peer.
    fn heartbeat(&mut self, i: usize) {
        let now = self.now;
        let worker = &self.edges[i].worker;
        let load = Load {
            participants: worker.participant_count() as u32,
            meetings: worker.stats().meetings as u32,
            cpu_permille: 0,
            draining: false,
        };
        let mut samples = Vec::new();
        let peers: Vec<(usize, Probe)> = self.edges[i]
            .shell
            .probes
            .iter()
            .map(|(p, probe)| (*p, *probe))
            .collect();
        for (peer, probe) in peers {
            let fresh = now.duration_since(probe.last_sample) < SUSPECT_AFTER;
            let rtt_us = match (fresh, self.pair_index(i, peer)) {
                (true, Some(p)) => {
                    self.pairs[p].rtt.as_micros().min(u128::from(u32::MAX - 1)) as u32
                }
                _ => {
                    if let Some(probe) = self.edges[i].shell.probes.get_mut(&peer) {
                        probe.suspect = true;
                    }
                    u32::MAX
                }
            };
            samples.push(RttSample {
                peer: self.edges[peer].id.clone(),
                rtt_us,
            });
        }
        let ch = self.edges[i].to_origin;
        self.send_control(ch, Control::Heartbeat(load), false);
        self.send_control(ch, Control::RttReport(samples), false);
    }

    /// Applies the scenario's impairment number `n`.
    pub(super) fn impair(&mut self, n: usize) {
        let what = self.scenario.impairments[n].what;
        let (a, b) = match what {
            Impairment::Loss { a, b, .. }
            | Impairment::Partition { a, b }
            | Impairment::Heal { a, b } => (a, b),
        };
        let Some(p) = self.pair_index(a, b) else {
            return;
        };
        let media = self.pairs[p].media;
        for k in media {
            let mut cfg = self.links[k].link.config().clone();
            match what {
                Impairment::Loss { loss, .. } => cfg.loss = loss,
                Impairment::Partition { .. } => cfg.partitioned = true,
                Impairment::Heal { .. } => cfg.partitioned = false,
            }
            self.links[k].link.set_config(cfg);
        }
        match what {
            Impairment::Loss { .. } => {}
            Impairment::Partition { .. } => self.cut(p),
            Impairment::Heal { .. } => self.heal(p),
        }
    }

    fn cut(&mut self, p: usize) {
        let now = self.now;
        let pair = &mut self.pairs[p];
        if pair.cut_since.is_some() {
            return;
        }
        pair.cut_since = Some(now);
        pair.cuts += 1;
        let cut = pair.cuts;
        self.partitions.push(PartitionRecord {
            a: pair.a,
            b: pair.b,
            cut: now - self.start,
            healed: None,
            reported: None,
            down: None,
            up: None,
        });
        self.queue
            .push(now + IDLE_TIMEOUT, Event::IdleCheck { pair: p, cut });
    }

    fn heal(&mut self, p: usize) {
        let now = self.now;
        let pair = &mut self.pairs[p];
        if pair.cut_since.take().is_none() {
            return;
        }
        pair.healed_at = Some(now);
        let (a, b) = (pair.a, pair.b);
        let at = now - self.start;
        if let Some(r) = self
            .partitions
            .iter_mut()
            .rev()
            .find(|r| (r.a, r.b) == (a, b))
        {
            r.healed = Some(at);
        }
        if self.pairs[p].down {
            let backoff = self
                .rng_shell
                .random_range(0..BACKOFF_MAX.as_micros() as u64);
            let at = now + Duration::from_micros(backoff) + self.pairs[p].rtt;
            self.queue.push(at, Event::Reconnect(p));
            return;
        }
        for ch in self.pairs[p].control {
            self.channels[ch].release(now);
            if let Some(due) = self.channels[ch].next_due() {
                self.queue.wake(Target::Control(ch), due);
            }
        }
    }

    /// The idle timeout of partition `cut` of pair `p`: if the path is still cut, the relay
    /// session closes on both ends.
    pub(super) fn idle_check(&mut self, p: usize, cut: u64) {
        let pair = &mut self.pairs[p];
        if pair.cuts != cut || pair.cut_since.is_none() || pair.down {
            return;
        }
        pair.down = true;
        let (a, b, control) = (pair.a, pair.b, pair.control);
        for ch in control {
            self.channels[ch].clear();
        }
        let at = self.now - self.start;
        if let Some(r) = self.latest_partition(a, b) {
            r.down = Some(at);
        }
        for (me, peer) in [(a, b), (b, a)] {
            let id = self.edges[peer].id.clone();
            self.edges[me].worker.handle_link_down(self.now, &id);
            self.drain_edge(me);
        }
    }

    /// The newest partition of the link between edges `a` and `b`.
    fn latest_partition(&mut self, a: usize, b: usize) -> Option<&mut PartitionRecord> {
        self.partitions
            .iter_mut()
            .rev()
            .find(|r| (r.a, r.b) == (a, b))
    }

    /// A closed relay session reconnects (if its path is whole again).
    pub(super) fn reconnect(&mut self, p: usize) {
        let pair = &mut self.pairs[p];
        if !pair.down || pair.cut_since.is_some() {
            return;
        }
        pair.down = false;
        let (a, b) = (pair.a, pair.b);
        let at = self.now - self.start;
        if let Some(r) = self.latest_partition(a, b) {
            r.up = Some(at);
        }
        for (me, peer) in [(a, b), (b, a)] {
            let id = self.edges[peer].id.clone();
            self.edges[me].worker.handle_link_up(self.now, &id);
            self.drain_edge(me);
        }
    }
}
