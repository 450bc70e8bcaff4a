//! What each edge must be told when a meeting's tree changes.
//!
//! An edge only needs its own neighbours in the tree. A [`Change`] carries an edge's whole new
//! neighbour set (not added/removed links), so applying one is idempotent and needs no
//! history; an edge that left the tree gets an empty set. Every recompute that changes
//! anything bumps the meeting's [`TreeEpoch`] once, and all its changes carry that epoch: an
//! edge applies a change only if its epoch is newer than the last one it applied, so stale or
//! reordered updates are harmless. Edges whose neighbours did not change are not told, and
//! keep the (older) epoch they have.

use std::collections::{BTreeMap, BTreeSet};

use relay_proto::{EdgeId, TreeEpoch};

use super::Tree;

/// One edge's new neighbour set (empty: it left the tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub edge: EdgeId,
    /// In id order.
    pub neighbours: Vec<EdgeId>,
}

/// The changes of one recompute, under the meeting's new epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub epoch: TreeEpoch,
    pub changes: Vec<Change>,
}

/// The edges whose neighbour sets differ between `old` and `new`, in id order. An edge in
/// neither tree, or in one of them with no neighbours, counts as having the empty set.
pub fn diff(old: &Tree, new: &Tree) -> Vec<Change> {
    let edges: BTreeSet<&EdgeId> = old.nodes().chain(new.nodes()).collect();
    edges
        .into_iter()
        .filter(|e| !old.neighbours(e).eq(new.neighbours(e)))
        .map(|e| Change {
            edge: e.clone(),
            neighbours: new.neighbours(e).cloned().collect(),
        })
        .collect()
}

/// Diffs the trees and, if anything changed, bumps `epoch` and returns the update.
pub fn next_update(epoch: &mut TreeEpoch, old: &Tree, new: &Tree) -> Option<Update> {
    let changes = diff(old, new);
    if changes.is_empty() {
        return None;
    }
    epoch.0 += 1;
    Some(Update {
        epoch: *epoch,
        changes,
    })
}

/// Applies changes to a map of neighbour sets (what the edges, taken together, know).
/// An empty set removes the edge.
pub fn apply(view: &mut BTreeMap<EdgeId, Vec<EdgeId>>, changes: &[Change]) {
    for c in changes {
        if c.neighbours.is_empty() {
            view.remove(&c.edge);
        } else {
            view.insert(c.edge.clone(), c.neighbours.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> EdgeId {
        EdgeId::new(s).unwrap()
    }

    fn tree(links: &[(&str, &str)]) -> Tree {
        let mut t = Tree::new();
        for (a, b) in links {
            t.add_link(e(a), e(b));
        }
        t
    }

    #[test]
    fn only_changed_edges_and_leavers_get_changes() {
        let old = tree(&[("a", "b"), ("b", "c"), ("c", "d")]);
        let new = tree(&[("a", "b"), ("b", "c"), ("b", "e")]);
        let changes = diff(&old, &new);
        let summary: Vec<(&str, Vec<&str>)> = changes
            .iter()
            .map(|c| {
                let ns = c.neighbours.iter().map(EdgeId::as_str).collect();
                (c.edge.as_str(), ns)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("b", vec!["a", "c", "e"]),
                ("c", vec!["b"]),
                ("d", vec![]),
                ("e", vec!["b"]),
            ]
        );
        let mut epoch = TreeEpoch(4);
        assert_eq!(next_update(&mut epoch, &new, &new), None);
        assert_eq!(epoch, TreeEpoch(4));
        let update = next_update(&mut epoch, &old, &new).unwrap();
        assert_eq!(update.epoch, TreeEpoch(5));
        assert_eq!(update.changes, changes);
    }
}
