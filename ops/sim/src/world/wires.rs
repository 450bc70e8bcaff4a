//! Putting what nodes send on the wires, and delivering what arrives.

use edge_core::Output as EdgeOutput;
use origin_core::coordinator::Output as OriginOutput;
use relay_proto::{Control, EdgeId};
use str0m::net::Protocol;

use super::backbone::Packet;
use super::ledger::secs;
use super::queue::{Event, Target};
use super::{NodeId, TraceChannel, World, encoded_len};
use crate::outcome::TreeRecord;
use arbor_loadgen::Input as ClientInput;

impl World {
    /// Drains edge `i`'s worker onto the wires.
    pub(super) fn drain_edge(&mut self, i: usize) {
        loop {
            match self.edges[i].worker.poll_output() {
                EdgeOutput::Transmit(t) => {
                    let Some(&c) = self.by_addr.get(&t.destination) else {
                        continue;
                    };
                    let packet = Packet::Udp {
                        source: t.source,
                        destination: t.destination,
                        bytes: t.contents.to_vec(),
                    };
                    self.send_media(self.participants[c].downlink, packet);
                }
                EdgeOutput::Signal(pid, msg) => {
                    if let Some(&client) = self.by_pid.get(&pid) {
                        let at = self.now + self.scenario.access.delay;
                        let msg = std::sync::Arc::unwrap_or_clone(msg);
                        self.queue.push(at, Event::ToClient { client, msg });
                    }
                }
                EdgeOutput::Closed(pid) => {
                    if let Some(&c) = self.by_pid.get(&pid) {
                        self.participants[c].closed = true;
                    }
                }
                EdgeOutput::Relay(to, msg) => self.relay_control(i, &to, msg),
                EdgeOutput::RelayDatagram(to, bytes) => self.relay_datagram(i, &to, bytes),
                EdgeOutput::Origin(msg) => {
                    let ch = self.edges[i].to_origin;
                    self.send_control(ch, msg, false);
                }
                EdgeOutput::Timeout(at) => {
                    self.queue.wake(Target::Edge(i), at.max(self.now));
                    return;
                }
            }
        }
    }

    pub(super) fn drain_coordinator(&mut self) {
        loop {
            match self.coordinator.poll_output() {
                OriginOutput::Send(edge, msg) => {
                    if let Some(&i) = self.edge_index.get(&edge) {
                        let ch = self.edges[i].from_origin;
                        self.send_control(ch, msg, false);
                    }
                }
                OriginOutput::Tree {
                    meeting,
                    epoch,
                    links,
                } => {
                    if meeting == self.meeting {
                        let links = self.index_links(links.iter().map(|(a, b)| (a, b)));
                        let at = self.now - self.start;
                        self.trees.push(TreeRecord {
                            at,
                            epoch: epoch.0,
                            links,
                        });
                    }
                }
                OriginOutput::Timeout(at) => {
                    self.queue.wake(Target::Coordinator, at.max(self.now));
                    return;
                }
            }
        }
    }

    /// Links named by edge ids, as sorted `(low, high)` index pairs.
    pub(super) fn index_links<'a>(
        &self,
        links: impl Iterator<Item = (&'a EdgeId, &'a EdgeId)>,
    ) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = links
            .filter_map(|(a, b)| Some((*self.edge_index.get(a)?, *self.edge_index.get(b)?)))
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        out.sort_unstable();
        out
    }

    pub(super) fn send_media(&mut self, k: usize, packet: Packet) {
        let link = &mut self.links[k].link;
        link.handle_packet(self.now, packet);
        if let Some(at) = link.poll_timeout() {
            self.queue.wake(Target::Media(k), at);
        }
    }

    pub(super) fn send_control(&mut self, ch: usize, msg: Control, held: bool) {
        self.channels[ch].send(self.now, msg, held);
        if let Some(at) = self.channels[ch].next_due() {
            self.queue.wake(Target::Control(ch), at);
        }
    }

    /// Index of the relay connection between edges `a` and `b`.
    pub(super) fn pair_index(&self, a: usize, b: usize) -> Option<usize> {
        let (lo, hi) = (a.min(b), a.max(b));
        self.pairs.iter().position(|p| (p.a, p.b) == (lo, hi))
    }

    pub(super) fn relay_control(&mut self, from: usize, to: &EdgeId, msg: Control) {
        let Some(&to) = self.edge_index.get(to) else {
            return;
        };
        let Some(p) = self.pair_index(from, to) else {
            return;
        };
        self.ledger.control(from, to, &msg);
        let pair = &self.pairs[p];
        if pair.down {
            // The session is closed; the worker was told (`handle_link_down`).
            self.channels[pair.control[pair.dir(from)]].dropped += 1;
            return;
        }
        let (ch, held) = (pair.control[pair.dir(from)], pair.cut_since.is_some());
        self.send_control(ch, msg, held);
    }

    pub(super) fn relay_datagram(&mut self, from: usize, to: &EdgeId, bytes: bytes::Bytes) {
        let Some(&to) = self.edge_index.get(to) else {
            return;
        };
        let Some(p) = self.pair_index(from, to) else {
            return;
        };
        let (down, k) = (
            self.pairs[p].down,
            self.pairs[p].media[self.pairs[p].dir(from)],
        );
        if down {
            return;
        }
        let now_s = secs(self.start, self.now);
        let names = &self.names;
        let describe = |i: usize| names.get(i).cloned().unwrap_or_default();
        self.ledger.sent(now_s, from, to, &bytes, &describe);
        self.send_media(k, Packet::Relay(bytes));
    }

    pub(super) fn deliver_media(&mut self, k: usize) {
        let now = self.now;
        while let Some(packet) = self.links[k].link.poll_deliver(now) {
            let (from, to) = (self.links[k].from, self.links[k].to);
            match (to, packet) {
                (
                    NodeId::Edge(e),
                    Packet::Udp {
                        source,
                        destination,
                        bytes,
                    },
                ) => {
                    self.trace
                        .record(now, TraceChannel::Access, from, to, bytes.len());
                    self.edges[e].worker.handle_receive(
                        now,
                        Protocol::Udp,
                        source,
                        destination,
                        &bytes,
                    );
                    self.drain_edge(e);
                }
                (
                    NodeId::Client(c),
                    Packet::Udp {
                        source,
                        destination,
                        bytes,
                    },
                ) => {
                    self.trace
                        .record(now, TraceChannel::Access, from, to, bytes.len());
                    let input = ClientInput::Datagram {
                        source,
                        destination,
                        contents: &bytes,
                    };
                    let r = self.participants[c].client.handle_input(now, input);
                    self.client_result(c, r);
                    self.drain_client(c);
                }
                (NodeId::Edge(e), Packet::Relay(bytes)) => {
                    let NodeId::Edge(f) = from else { continue };
                    self.trace
                        .record(now, TraceChannel::RelayMedia, from, to, bytes.len());
                    let now_s = secs(self.start, now);
                    let names = &self.names;
                    let describe = |i: usize| names.get(i).cloned().unwrap_or_default();
                    self.ledger.received(now_s, f, e, &bytes, &describe);
                    let id = self.edges[f].id.clone();
                    self.edges[e].worker.handle_relay_datagram(now, &id, &bytes);
                    self.drain_edge(e);
                }
                _ => {}
            }
        }
        if let Some(at) = self.links[k].link.poll_timeout() {
            self.queue.wake(Target::Media(k), at);
        }
    }

    pub(super) fn deliver_control(&mut self, k: usize) {
        let now = self.now;
        while let Some(msg) = self.channels[k].pop_due(now) {
            let (from, to) = (self.channels[k].from, self.channels[k].to);
            let len = encoded_len(&msg);
            match (from, to) {
                (NodeId::Edge(a), NodeId::Edge(b)) => {
                    self.trace
                        .record(now, TraceChannel::RelayControl, from, to, len);
                    let id = self.edges[a].id.clone();
                    self.edges[b].worker.handle_relay(now, &id, msg);
                    self.drain_edge(b);
                }
                (NodeId::Edge(a), NodeId::Origin) => {
                    self.trace.record(now, TraceChannel::Origin, from, to, len);
                    self.note_unreachable(a, &msg);
                    let id = self.edges[a].id.clone();
                    self.coordinator.handle_message(now, &id, msg);
                    self.drain_coordinator();
                }
                (NodeId::Origin, NodeId::Edge(b)) => {
                    self.trace.record(now, TraceChannel::Origin, from, to, len);
                    if let Control::TreeUpdate(update) = msg {
                        self.edges[b].worker.handle_tree_update(now, update);
                        self.drain_edge(b);
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = self.channels[k].next_due() {
            self.queue.wake(Target::Control(k), at);
        }
    }

    /// Records when the origin first heard that a cut link is unreachable.
    pub(super) fn note_unreachable(&mut self, from: usize, msg: &Control) {
        let Control::RttReport(samples) = msg else {
            return;
        };
        let at = self.now - self.start;
        for s in samples.iter().filter(|s| s.rtt_us == u32::MAX) {
            let Some(&peer) = self.edge_index.get(&s.peer) else {
                continue;
            };
            for r in &mut self.partitions {
                let same = (r.a, r.b) == (from, peer) || (r.a, r.b) == (peer, from);
                if same && r.reported.is_none() && r.healed.is_none_or(|h| at <= h) {
                    r.reported = Some(at);
                }
            }
        }
    }
}
