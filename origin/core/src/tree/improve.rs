//! Local search for small trees: link exchange.
//!
//! The greedy growth can spend a centre's fan-out on the nearest edges when the farthest ones
//! needed it more. For trees of up to [`MAX_IMPROVE_NODES`] nodes (most meetings span a few
//! regions), every link is tried: cut it, and reconnect the two halves by the pair of nodes
//! with spare fan-out that lowers the worst latency most. Passes repeat while something
//! improves, at most [`MAX_PASSES`] times. A pass costs O(n⁴) (n links × n² reconnections ×
//! an O(n) evaluation), which bounds the size it is worth running on.

use super::eval::{Cost, IndexTree, evaluate};
use super::problem::Costs;

/// Largest tree the local search runs on.
pub(super) const MAX_IMPROVE_NODES: usize = 16;
/// Most improvement passes.
const MAX_PASSES: usize = 8;

/// Improves `t` in place and returns its new cost (`cost` is its current one). Keeps the
/// fan-out bounds and, if given, the hop bound. Deterministic: candidates are tried in index
/// order and only strict improvements are taken.
pub(super) fn improve(
    t: &mut IndexTree,
    costs: &Costs<'_>,
    max_hops: Option<u32>,
    mut cost: Cost,
) -> Cost {
    let p = costs.p;
    let nodes: Vec<usize> = t.nodes().collect();
    if nodes.len() < 4 || nodes.len() > MAX_IMPROVE_NODES {
        return cost;
    }
    let fits = |c: &Cost| max_hops.is_none_or(|h| c.worst_hops <= u64::from(h));
    let room = |t: &IndexTree, i: usize| t.degree(i) < p.max_degree[i] as usize;
    for _ in 0..MAX_PASSES {
        let mut improved = false;
        let links: Vec<(usize, usize)> = nodes
            .iter()
            .flat_map(|&a| {
                t.adj[a]
                    .iter()
                    .filter(move |&&b| b > a)
                    .map(move |&b| (a, b))
            })
            .collect();
        for (a, b) in links {
            if !t.adj[a].contains(&b) {
                continue; // an earlier exchange in this pass removed it
            }
            t.unlink(a, b);
            let side = side_of(t, a);
            let mut best: Option<(Cost, usize, usize)> = None;
            let xs: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|&x| side[x] && room(t, x))
                .collect();
            let ys: Vec<usize> = nodes
                .iter()
                .copied()
                .filter(|&y| !side[y] && room(t, y))
                .collect();
            for &x in &xs {
                for &y in &ys {
                    if (x, y) == (a, b) {
                        continue;
                    }
                    t.link(x, y);
                    let c = evaluate(t, costs);
                    t.unlink(x, y);
                    if fits(&c) && c < best.map_or(cost, |b| b.0) {
                        best = Some((c, x, y));
                    }
                }
            }
            match best {
                Some((c, x, y)) => {
                    t.link(x, y);
                    cost = c;
                    improved = true;
                }
                None => t.link(a, b),
            }
        }
        if !improved {
            break;
        }
    }
    cost
}

/// Which nodes are reachable from `from` (one half of a cut tree).
fn side_of(t: &IndexTree, from: usize) -> Vec<bool> {
    let mut seen = vec![false; t.present.len()];
    let mut stack = vec![from];
    seen[from] = true;
    while let Some(at) = stack.pop() {
        for &next in &t.adj[at] {
            if !seen[next] {
                seen[next] = true;
                stack.push(next);
            }
        }
    }
    seen
}
