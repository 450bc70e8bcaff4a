//! Turning a finished world into an [`Outcome`]: plain data with times from the start.

use std::time::{Duration, Instant};

use relay_proto::EdgeId;

use super::{NodeId, World};
use crate::outcome::{Outcome, ParticipantOutcome, SubOutcome, WireOutcome};

impl World {
    /// What the run observed.
    pub(super) fn outcome(self) -> Outcome {
        let (final_links, final_nodes) = self.final_tree();
        let (subscriptions, participants) = self.people();
        let backbone = self
            .links
            .iter()
            .filter_map(|l| match (l.from, l.to) {
                (NodeId::Edge(a), NodeId::Edge(b)) => Some(((a, b), l.link.stats())),
                _ => None,
            })
            .collect();
        let control_dropped = self
            .pairs
            .iter()
            .flat_map(|p| p.control)
            .map(|c| self.channels[c].dropped)
            .sum();
        Outcome {
            seed: self.seed,
            trace: self.trace.clone(),
            trees: self.trees.clone(),
            final_links,
            final_nodes,
            hosting: self.indices(
                self.coordinator
                    .presence(&self.meeting)
                    .into_iter()
                    .flat_map(|p| p.keys()),
            ),
            edge_views: self.edge_views(),
            edge_stats: self
                .edges
                .iter()
                .map(|e| e.worker.stats().clone())
                .collect(),
            coordinator: self.coordinator.stats().clone(),
            max_degree: origin_core::coordinator::Config::default().max_degree,
            wire: self.wire(),
            snapshot_times: self.snapshot_times.iter().map(|t| self.since(*t)).collect(),
            subscriptions,
            participants,
            backbone,
            partitions: self.partitions.clone(),
            control_dropped,
            events: self.queue.scheduled(),
            scenario: self.scenario,
        }
    }

    fn since(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    /// Edges by id as sorted indices.
    fn indices<'a>(&self, ids: impl Iterator<Item = &'a EdgeId>) -> Vec<usize> {
        let mut v: Vec<usize> = ids
            .filter_map(|e| self.edge_index.get(e).copied())
            .collect();
        v.sort_unstable();
        v
    }

    /// The coordinator's last tree: its links and its nodes.
    fn final_tree(&self) -> (Vec<(usize, usize)>, Vec<usize>) {
        match self.coordinator.tree(&self.meeting) {
            Some((_, tree)) => (self.index_links(tree.links()), self.indices(tree.nodes())),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Each edge's own neighbours in the meeting.
    fn edge_views(&self) -> Vec<Option<Vec<usize>>> {
        self.edges
            .iter()
            .map(|e| {
                e.worker
                    .tree_neighbours(&self.meeting)
                    .map(|(_, n)| self.indices(n.iter()))
            })
            .collect()
    }

    /// Every subscription and every participant.
    fn people(&self) -> (Vec<SubOutcome>, Vec<ParticipantOutcome>) {
        let mut subscriptions = Vec::new();
        let mut participants = Vec::new();
        for (i, p) in self.participants.iter().enumerate() {
            for s in &p.subs {
                subscriptions.push(SubOutcome {
                    subscriber: i,
                    spec: s.spec,
                    since: s.since.map(|t| self.since(t)),
                    binds: s.binds,
                    snapshots: s.snapshots.clone(),
                    gaps: s
                        .gaps
                        .iter()
                        .map(|(a, b)| (self.since(*a), self.since(*b)))
                        .collect(),
                    last_render: s.last_render.map(|t| self.since(t)),
                });
            }
            participants.push(ParticipantOutcome {
                name: p.spec.name.clone(),
                connected: p.client.is_connected(),
                closed: p.closed,
                unpublished: p.unpublished,
                errors: p.errors.clone(),
                quality: p.quality.clone(),
                layer_changes: p.layer_changes,
            });
        }
        (subscriptions, participants)
    }

    fn wire(&self) -> WireOutcome {
        WireOutcome {
            per_link: self.ledger.per_link.iter().map(|(k, v)| (*k, *v)).collect(),
            loops: self.ledger.loops,
            duplicates: self.ledger.duplicates,
            retransmissions: self.ledger.retransmissions,
            unknown_flow: self.ledger.unknown_flow,
            full: self.ledger.full,
            violations: self.ledger.violations.clone(),
        }
    }
}
