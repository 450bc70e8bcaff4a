//! Trees over dense indices, and what they cost.
//!
//! The objective is the worst publisher→subscriber path latency, taken over pairs of
//! distinct edges. It is computed in one post-order pass (the "diameter" dynamic programme,
//! with publishers and subscribers tracked apart), so comparing candidate trees costs O(n).

use super::problem::{Costs, Problem};

/// "No such node" in parent links and for absent values.
pub(super) const NONE: usize = usize::MAX;

/// A distance to nothing: smaller than any real sum, and safe to add a link cost to.
pub(super) const FAR_NONE: i64 = i64::MIN / 4;

/// An undirected forest over problem indices; `present` marks the nodes in it.
#[derive(Debug, Clone)]
pub(super) struct IndexTree {
    pub(super) adj: Vec<Vec<usize>>,
    pub(super) present: Vec<bool>,
}

impl IndexTree {
    pub(super) fn new(n: usize) -> Self {
        Self {
            adj: vec![Vec::new(); n],
            present: vec![false; n],
        }
    }

    pub(super) fn link(&mut self, a: usize, b: usize) {
        self.present[a] = true;
        self.present[b] = true;
        self.adj[a].push(b);
        self.adj[b].push(a);
    }

    pub(super) fn unlink(&mut self, a: usize, b: usize) {
        self.adj[a].retain(|&x| x != b);
        self.adj[b].retain(|&x| x != a);
    }

    pub(super) fn degree(&self, i: usize) -> usize {
        self.adj[i].len()
    }

    pub(super) fn link_count(&self) -> usize {
        self.adj.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// Present nodes in index order.
    pub(super) fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.present.len()).filter(|&i| self.present[i])
    }

    /// Removes relays (non-terminals) left as leaves or alone, repeatedly: they carry nothing.
    pub(super) fn prune_relay_leaves(&mut self, p: &Problem) {
        let mut stack: Vec<usize> = self
            .nodes()
            .filter(|&i| !p.terminal[i] && self.degree(i) <= 1)
            .collect();
        while let Some(i) = stack.pop() {
            if !self.present[i] || p.terminal[i] || self.degree(i) > 1 {
                continue;
            }
            self.present[i] = false;
            if let Some(&j) = self.adj[i].first() {
                self.unlink(i, j);
                stack.push(j);
            }
        }
    }

    /// Every component's nodes in breadth-first order from its lowest index, with each
    /// node's parent (`NONE` for the component root). Returns (order, parent).
    pub(super) fn traversal(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.present.len();
        let mut parent = vec![NONE; n];
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        for root in self.nodes() {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let start = order.len();
            order.push(root);
            let mut k = start;
            while k < order.len() {
                let at = order[k];
                k += 1;
                for &next in &self.adj[at] {
                    if !seen[next] {
                        seen[next] = true;
                        parent[next] = at;
                        order.push(next);
                    }
                }
            }
        }
        (order, parent)
    }
}

/// What a tree costs: its worst publisher→subscriber path, in µs (links plus hop delays) and
/// in hops (the two worst may be different pairs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Cost {
    pub(super) worst_us: u64,
    pub(super) worst_hops: u64,
}

/// The cost of a tree (a connected `IndexTree`; on a forest, the worst over components).
pub(super) fn evaluate(tree: &IndexTree, costs: &Costs<'_>) -> Cost {
    let (order, parent) = tree.traversal();
    Cost {
        worst_us: worst_pair(tree, costs.p, &order, &parent, |a, b| costs.link(a, b)),
        worst_hops: worst_pair(tree, costs.p, &order, &parent, |_, _| 1),
    }
}

/// Post-order pass: `best_pub[v]` / `best_sub[v]` are the farthest publisher / subscriber in
/// v's subtree; at each node, pairs through it combine two different branches (the node itself
/// counts as a branch at distance 0), so a node is never paired with itself.
fn worst_pair(
    tree: &IndexTree,
    p: &Problem,
    order: &[usize],
    parent: &[usize],
    weight: impl Fn(usize, usize) -> u64,
) -> u64 {
    let n = tree.present.len();
    let mut best_pub = vec![FAR_NONE; n];
    let mut best_sub = vec![FAR_NONE; n];
    let mut worst = 0i64;
    for &v in order.iter().rev() {
        let mut bp = if p.publishes[v] { 0 } else { FAR_NONE };
        let mut bs = if p.subscribes[v] { 0 } else { FAR_NONE };
        for &c in &tree.adj[v] {
            if c == parent[v] {
                continue;
            }
            let w = weight(v, c) as i64;
            let (cp, cs) = (best_pub[c] + w, best_sub[c] + w);
            worst = worst.max(bp + cs).max(cp + bs);
            bp = bp.max(cp);
            bs = bs.max(cs);
        }
        best_pub[v] = bp;
        best_sub[v] = bs;
    }
    worst.max(0) as u64
}

/// For every present node, the path cost to the farthest node of its component that satisfies
/// `flag` (below zero if there is none): the classic two-pass "rerooting" programme, O(n).
pub(super) fn farthest(
    tree: &IndexTree,
    costs: &Costs<'_>,
    flag: impl Fn(usize) -> bool,
) -> Vec<i64> {
    let n = tree.present.len();
    let (order, parent) = tree.traversal();
    // Down pass: farthest flagged node inside the subtree.
    let mut down = vec![FAR_NONE; n];
    for &v in order.iter().rev() {
        let mut best = if flag(v) { 0 } else { FAR_NONE };
        for &c in &tree.adj[v] {
            if c != parent[v] {
                best = best.max(down[c] + costs.link(v, c) as i64);
            }
        }
        down[v] = best;
    }
    // Up pass: farthest flagged node outside the subtree, through the parent.
    let mut up = vec![FAR_NONE; n];
    for &v in &order {
        let own = if flag(v) { 0 } else { FAR_NONE };
        // The two best branches below v (and above it), so each child can skip its own.
        let mut top = [(up[v], NONE), (own, NONE)];
        top.sort_by_key(|t| std::cmp::Reverse(t.0));
        for &c in &tree.adj[v] {
            if c == parent[v] {
                continue;
            }
            let via = down[c] + costs.link(v, c) as i64;
            if via > top[0].0 {
                top[1] = top[0];
                top[0] = (via, c);
            } else if via > top[1].0 {
                top[1] = (via, c);
            }
        }
        for &c in &tree.adj[v] {
            if c != parent[v] {
                let other = if top[0].1 == c { top[1].0 } else { top[0].0 };
                up[c] = other + costs.link(v, c) as i64;
            }
        }
    }
    (0..n).map(|v| down[v].max(up[v]).max(FAR_NONE)).collect()
}
