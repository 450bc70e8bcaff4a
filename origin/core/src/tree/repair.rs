//! Repairing the previous tree for the current problem, changing as few links as it can.
//!
//! Links between edges still in the problem stay. What changes:
//! - edges no longer in the problem (dead, or gone from the meeting and not offered as
//!   relays) disappear with their links;
//! - a node over a lowered fan-out bound loses its longest links;
//! - relays (including former terminals offered as relays) left as leaves are pruned;
//! - the pieces left over, orphaned subtrees and new terminals, are joined to the piece with
//!   the most terminals, largest first, each by the link that adds least to the worst
//!   publisher→subscriber latency between the two (nearest link on ties).

use super::Tree;
use super::eval::{IndexTree, NONE, farthest};
use super::problem::Costs;

/// The repaired tree, or `None` if `previous` is not a tree or no fan-out is left to join
/// the pieces.
pub(super) fn repair(previous: &Tree, costs: &Costs<'_>) -> Option<IndexTree> {
    if !previous.is_tree() {
        return None;
    }
    let p = costs.p;
    let mut t = IndexTree::new(p.len());
    for edge in previous.nodes() {
        if let Some(i) = p.index_of(edge) {
            t.present[i] = true;
        }
    }
    for (a, b) in previous.links() {
        if let (Some(i), Some(j)) = (p.index_of(a), p.index_of(b)) {
            t.link(i, j);
        }
    }
    for i in 0..p.len() {
        while t.degree(i) > p.max_degree[i] as usize {
            let longest = t.adj[i]
                .iter()
                .map(|&j| (costs.link(i, j), j))
                .max()
                .map(|(_, j)| j)?;
            t.unlink(i, longest);
        }
    }
    t.prune_relay_leaves(p);
    for i in 0..p.len() {
        if p.terminal[i] {
            t.present[i] = true;
        }
    }
    while join_one(&mut t, costs)? {}
    Some(t)
}

/// Joins the largest piece other than the main one to the main one. `Some(false)` when there
/// is a single piece left, `None` when no pair of nodes has fan-out to spare.
fn join_one(t: &mut IndexTree, costs: &Costs<'_>) -> Option<bool> {
    let p = costs.p;
    let n = p.len();
    let (order, parent) = t.traversal();
    let mut piece = vec![NONE; n];
    let mut terminals: Vec<usize> = Vec::new();
    for &v in &order {
        piece[v] = if parent[v] == NONE {
            terminals.push(0);
            terminals.len() - 1
        } else {
            piece[parent[v]]
        };
        terminals[piece[v]] += usize::from(p.terminal[v]);
    }
    if terminals.len() <= 1 {
        return Some(false);
    }
    // Most terminals first; ties to the piece found first (lowest index).
    let by_size = |skip: usize| {
        (0..terminals.len())
            .filter(|&c| c != skip)
            .max_by_key(|&c| (terminals[c], std::cmp::Reverse(c)))
    };
    let main = by_size(NONE)?;
    let next = by_size(main)?;
    let far_pub = farthest(t, costs, |i| p.publishes[i]);
    let far_sub = farthest(t, costs, |i| p.subscribes[i]);
    let has_room = |i: usize| t.degree(i) < p.max_degree[i] as usize;
    let mut best: Option<(i64, u64, usize, usize)> = None;
    for &u in order.iter().filter(|&&u| piece[u] == next && has_room(u)) {
        for &w in order.iter().filter(|&&w| piece[w] == main && has_room(w)) {
            let l = costs.link(u, w);
            let li = l as i64;
            let worst = (far_pub[w] + li + far_sub[u]).max(far_pub[u] + li + far_sub[w]);
            let key = (worst, l, u, w);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
    }
    let (_, _, u, w) = best?;
    t.link(u, w);
    Some(true)
}
