//! Tree assignment: one cascade tree per meeting over the edges that host it.
//!
//! Media crosses the backbone along a tree so that every track reaches every edge exactly once
//! and no loop can form. The origin recomputes a meeting's tree when its set of edges changes
//! (a region gains or loses its last participant, an edge dies) or when measured RTTs drift,
//! and sends each edge whose neighbours changed its new neighbour set under a new epoch:
//!
//! ```text
//! Problem::new(nodes, &latency) ─► assign(&problem, &policy, previous) ─► Assignment { tree, .. }
//!                                                                             │
//!        next_update(&mut epoch, &old_tree, &assignment.tree) ─► Update { epoch, changes }
//!                                                                             │ per edge
//!                                                   TreeUpdate { meeting, epoch, neighbours }
//! ```
//!
//! - [`Problem`]: the meeting's terminals (edges hosting participants, with publish/subscribe
//!   roles), the relays it may borrow, one-way latencies and per-edge fan-out bounds.
//! - [`assign`]: the heuristic (centre-grown, degree-bounded shortest-path trees), repair of
//!   the previous tree and the keep-or-replace decision. See `docs/tree.md` for the why.
//! - [`diff`] / [`next_update`]: per-edge neighbour sets that changed, stamped with an epoch.
//!
//! Everything is a pure function of its inputs: the same problem gives the same tree.

mod assign;
mod diff;
mod eval;
mod improve;
mod problem;
mod repair;

#[cfg(test)]
mod brute;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use relay_proto::EdgeId;

pub use assign::{AssignError, Assignment, CHECKED_FACTOR, Source, assign};
pub use diff::{Change, Update, apply, diff, next_update};
pub use problem::{MAX_NODES, Node, Policy, Problem, ProblemError, Role};

/// Why a [`Tree`] is not a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("the links form a cycle")]
    Cycle,
    #[error("edge {0} is not connected to the rest")]
    Disconnected(EdgeId),
}

/// An undirected graph over edges, meant to be a tree: the cascade links of one meeting.
/// Ordered maps make iteration, and so everything derived from it, deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    adjacency: BTreeMap<EdgeId, BTreeSet<EdgeId>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an edge with no links (a meeting hosted on one edge is a one-node tree).
    pub fn add_node(&mut self, edge: EdgeId) {
        self.adjacency.entry(edge).or_default();
    }

    /// Adds the link `a — b` and both ends. False for a self-link or an existing link.
    pub fn add_link(&mut self, a: EdgeId, b: EdgeId) -> bool {
        if a == b {
            return false;
        }
        self.adjacency
            .entry(b.clone())
            .or_default()
            .insert(a.clone());
        self.adjacency.entry(a).or_default().insert(b)
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &EdgeId> {
        self.adjacency.keys()
    }

    pub fn contains(&self, edge: &EdgeId) -> bool {
        self.adjacency.contains_key(edge)
    }

    /// The edge's neighbours in id order (none if it is not in the tree).
    pub fn neighbours(&self, edge: &EdgeId) -> impl Iterator<Item = &EdgeId> {
        self.adjacency.get(edge).into_iter().flatten()
    }

    pub fn degree(&self, edge: &EdgeId) -> usize {
        self.adjacency.get(edge).map_or(0, BTreeSet::len)
    }

    /// Every link once, as `(a, b)` with `a < b`, in order.
    pub fn links(&self) -> impl Iterator<Item = (&EdgeId, &EdgeId)> {
        self.adjacency
            .iter()
            .flat_map(|(a, ns)| ns.iter().filter(move |b| a < *b).map(move |b| (a, b)))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.adjacency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adjacency.is_empty()
    }

    pub fn link_count(&self) -> usize {
        self.adjacency.values().map(BTreeSet::len).sum::<usize>() / 2
    }

    /// Checks that the graph is connected and acyclic (the empty graph is a tree).
    pub fn check(&self) -> Result<(), TreeError> {
        let Some(first) = self.adjacency.keys().next() else {
            return Ok(());
        };
        let reached = self.hops_from(first);
        if let Some(lost) = self.adjacency.keys().find(|e| !reached.contains_key(*e)) {
            return Err(TreeError::Disconnected(lost.clone()));
        }
        // Connected with n nodes: a tree exactly when it has n - 1 links.
        if self.link_count() != self.len() - 1 {
            return Err(TreeError::Cycle);
        }
        Ok(())
    }

    pub fn is_tree(&self) -> bool {
        self.check().is_ok()
    }

    /// Hops from `root` to every node reachable from it (breadth-first).
    pub fn hops_from(&self, root: &EdgeId) -> BTreeMap<EdgeId, usize> {
        let mut hops = BTreeMap::new();
        if !self.contains(root) {
            return hops;
        }
        let mut queue = VecDeque::from([(root, 0)]);
        hops.insert(root.clone(), 0);
        while let Some((at, h)) = queue.pop_front() {
            for next in self.neighbours(at) {
                if !hops.contains_key(next) {
                    hops.insert(next.clone(), h + 1);
                    queue.push_back((next, h + 1));
                }
            }
        }
        hops
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    fn e(s: &str) -> EdgeId {
        EdgeId::new(s).unwrap()
    }

    #[test]
    fn checks_shape() {
        let mut t = Tree::new();
        assert!(t.is_tree());
        t.add_node(e("a"));
        assert!(t.is_tree());
        assert!(t.add_link(e("a"), e("b")));
        assert!(!t.add_link(e("b"), e("a")));
        assert!(!t.add_link(e("b"), e("b")));
        assert!(t.add_link(e("b"), e("c")));
        assert!(t.is_tree());
        assert_eq!(t.links().count(), 2);
        assert_eq!(t.hops_from(&e("a"))[&e("c")], 2);
        t.add_node(e("d"));
        assert_eq!(t.check(), Err(TreeError::Disconnected(e("d"))));
        t.add_link(e("c"), e("d"));
        t.add_link(e("d"), e("a"));
        assert_eq!(t.check(), Err(TreeError::Cycle));
        assert_eq!(
            t.neighbours(&e("a")).collect::<Vec<_>>(),
            [&e("b"), &e("d")]
        );
    }
}
