//! The wire ledger: what every relayed packet did, for the duplicate and loop oracles.
//!
//! The simulator sees every relay datagram an edge sends and every one an edge receives. With
//! the announcements that name each flow's track (seen on the same wire), it knows each
//! datagram as (track, layer, RTP sequence number): the publisher's own numbers, which every
//! hop keeps. On a correct cascade:
//!
//! - **no loop**: an edge never receives a packet of a track it publishes, and never receives
//!   a packet over a second link after it first arrived over another one (it went round, or
//!   two paths fed the edge at once);
//! - **no duplicate**: a packet crosses a link direction once, plus once per NACK the
//!   receiver sent for it (a retransmission it asked for; two NACKs for one hole can each be
//!   answered).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use relay_proto::{Control, FlowId, TrackId};

/// Most packets the ledger remembers; past it, it stops recording (and says so).
pub const MAX_LEDGER_PACKETS: usize = 1 << 22;
/// Violations kept with their details (all are counted).
pub const MAX_VIOLATIONS: usize = 16;

/// A packet's identity along its whole path.
type PacketKey = (TrackId, u8, u16);

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// (sending edge, its flow) → the track, from announcements.
    flows: HashMap<(usize, FlowId), TrackId>,
    /// Track → the edge where it is published (the first hop of its announcements).
    home: HashMap<TrackId, usize>,
    /// The neighbour each edge first received a packet from.
    first_from: HashMap<(usize, PacketKey), usize>,
    /// Crossings of a link direction (from, to) by a packet.
    crossings: HashMap<(usize, usize, PacketKey), u32>,
    /// NACKs `to` sent `from` for a packet.
    nacked: HashMap<(usize, usize, PacketKey), u32>,
    /// Relay datagrams sent, per link direction.
    pub per_link: BTreeMap<(usize, usize), u64>,
    pub unknown_flow: u64,
    pub loops: u64,
    pub duplicates: u64,
    pub retransmissions: u64,
    pub full: bool,
    pub violations: Vec<String>,
}

impl Ledger {
    /// An edge sent a control message to another edge.
    pub(crate) fn control(&mut self, from: usize, to: usize, msg: &Control) {
        match msg {
            Control::Announce(a) => {
                self.flows.insert((from, a.flow), a.track.id);
                // The publishing edge announces with a chain of itself alone.
                if a.hops.len() == 1 {
                    self.home.entry(a.track.id).or_insert(from);
                }
            }
            Control::Nack { flow, layer, seqs } => {
                // The flow is the upstream's (`to`'s) flow on this link.
                let Some(track) = self.flows.get(&(to, *flow)).copied() else {
                    return;
                };
                for s in seqs {
                    *self
                        .nacked
                        .entry((to, from, (track, *layer, *s)))
                        .or_default() += 1;
                }
            }
            _ => {}
        }
    }

    /// An edge sent a relay datagram. `describe` names edges in messages.
    pub(crate) fn sent(
        &mut self,
        now_s: f64,
        from: usize,
        to: usize,
        bytes: &[u8],
        describe: &dyn Fn(usize) -> String,
    ) {
        *self.per_link.entry((from, to)).or_default() += 1;
        let Some(key) = self.key(from, bytes, true) else {
            return;
        };
        if self.crossings.len() >= MAX_LEDGER_PACKETS {
            self.full = true;
            return;
        }
        let n = self.crossings.entry((from, to, key)).or_default();
        *n += 1;
        if *n > 1 {
            let asked = self.nacked.get(&(from, to, key)).copied().unwrap_or(0);
            if *n - 1 <= asked {
                self.retransmissions += 1;
            } else {
                self.duplicates += 1;
                let (track, layer, seq) = key;
                let msg = format!(
                    "{now_s:.3} s: track {track} layer {layer} seq {seq} crossed {} → {} {n} times \
                     with {asked} NACKs for it",
                    describe(from),
                    describe(to),
                );
                self.violation(msg);
            }
        }
    }

    /// An edge received a relay datagram from a neighbour.
    pub(crate) fn received(
        &mut self,
        now_s: f64,
        from: usize,
        to: usize,
        bytes: &[u8],
        describe: &dyn Fn(usize) -> String,
    ) {
        let Some(key) = self.key(from, bytes, false) else {
            return;
        };
        let (track, layer, seq) = key;
        let why = if self.home.get(&track) == Some(&to) {
            Some("its own track came back".to_string())
        } else {
            match self.first_from.get(&(to, key)) {
                Some(first) if *first != from => {
                    Some(format!("it came first from {}", describe(*first)))
                }
                Some(_) => None,
                None => {
                    if self.first_from.len() < MAX_LEDGER_PACKETS {
                        self.first_from.insert((to, key), from);
                    }
                    None
                }
            }
        };
        if let Some(why) = why {
            self.loops += 1;
            let msg = format!(
                "{now_s:.3} s: {} received track {track} layer {layer} seq {seq} from {}: {why}",
                describe(to),
                describe(from),
            );
            self.violation(msg);
        }
    }

    /// A datagram's packet identity; `count` the datagrams on unknown flows (once, when
    /// sent).
    fn key(&mut self, from: usize, bytes: &[u8], count: bool) -> Option<PacketKey> {
        let media = relay_proto::decode_datagram(bytes).ok()?;
        let track = self.flows.get(&(from, media.flow)).copied();
        if track.is_none() && count {
            self.unknown_flow += 1;
        }
        Some((track?, media.layer, media.header.seq))
    }

    fn violation(&mut self, msg: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(msg);
        }
    }
}

/// Seconds since `start`, for messages.
pub(crate) fn secs(start: Instant, now: Instant) -> f64 {
    now.saturating_duration_since(start).as_secs_f64()
}
