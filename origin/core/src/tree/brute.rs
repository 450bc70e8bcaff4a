//! The exact optimum by exhaustion, for checking the heuristic on small instances.
//!
//! Every subset of relays joins the terminals; every labelled tree over that node set is
//! enumerated as a Prüfer sequence (k^(k-2) trees for k nodes: 16,807 for seven), filtered by
//! the fan-out bounds (a node's degree is its count in the sequence plus one), and scored by
//! walking every publisher's paths. Deliberately independent of `eval.rs`, so it checks that
//! too.

use super::problem::{Costs, Problem};

/// Largest instance worth exhausting.
pub(super) const MAX_BRUTE_NODES: usize = 7;

/// The least worst-case publisher→subscriber latency over all trees within the bounds, and
/// one tree achieving it (as links of problem indices), or `None` if no tree fits.
pub(super) fn optimum(costs: &Costs<'_>) -> Option<(u64, Vec<(usize, usize)>)> {
    let p = costs.p;
    assert!(
        p.len() <= MAX_BRUTE_NODES,
        "brute force is for tiny instances"
    );
    let terminals: Vec<usize> = (0..p.len()).filter(|&i| p.terminal[i]).collect();
    let relays: Vec<usize> = (0..p.len()).filter(|&i| !p.terminal[i]).collect();
    let mut best: Option<(u64, Vec<(usize, usize)>)> = None;
    for mask in 0u32..(1 << relays.len()) {
        let mut nodes = terminals.clone();
        nodes.extend(
            relays
                .iter()
                .enumerate()
                .filter(|(k, _)| mask & (1 << k) != 0)
                .map(|(_, &r)| r),
        );
        for links in labelled_trees(nodes.len()) {
            let links: Vec<(usize, usize)> =
                links.iter().map(|&(a, b)| (nodes[a], nodes[b])).collect();
            if !within_degree(p, &nodes, &links) {
                continue;
            }
            let cost = worst_of(costs, &links);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, links));
            }
        }
    }
    best
}

/// Every labelled tree on `k` nodes as a link list (one empty tree for k ≤ 1).
fn labelled_trees(k: usize) -> Vec<Vec<(usize, usize)>> {
    match k {
        0 | 1 => return vec![vec![]],
        2 => return vec![vec![(0, 1)]],
        _ => {}
    }
    let len = k - 2;
    let total = k.pow(len as u32);
    (0..total)
        .map(|mut code| {
            let seq: Vec<usize> = (0..len)
                .map(|_| {
                    let d = code % k;
                    code /= k;
                    d
                })
                .collect();
            decode_pruefer(&seq, k)
        })
        .collect()
}

/// The standard O(k²) Prüfer decoding.
fn decode_pruefer(seq: &[usize], k: usize) -> Vec<(usize, usize)> {
    let mut degree = vec![1usize; k];
    for &s in seq {
        degree[s] += 1;
    }
    let mut links = Vec::with_capacity(k - 1);
    for &s in seq {
        let leaf = (0..k).find(|&i| degree[i] == 1).expect("a leaf exists");
        links.push((leaf, s));
        degree[leaf] -= 1;
        degree[s] -= 1;
    }
    let rest: Vec<usize> = (0..k).filter(|&i| degree[i] == 1).collect();
    links.push((rest[0], rest[1]));
    links
}

fn within_degree(p: &Problem, nodes: &[usize], links: &[(usize, usize)]) -> bool {
    nodes.iter().all(|&v| {
        let d = links.iter().filter(|&&(a, b)| a == v || b == v).count();
        d <= p.max_degree[v] as usize
    })
}

/// Worst publisher→subscriber path cost, by a depth-first walk from every publisher.
pub(super) fn worst_of(costs: &Costs<'_>, links: &[(usize, usize)]) -> u64 {
    let p = costs.p;
    let mut worst = 0;
    for src in (0..p.len()).filter(|&i| p.publishes[i]) {
        let mut stack = vec![(src, usize::MAX, 0u64)];
        while let Some((at, from, d)) = stack.pop() {
            if at != src && p.subscribes[at] {
                worst = worst.max(d);
            }
            for &(a, b) in links {
                let next = if a == at {
                    b
                } else if b == at {
                    a
                } else {
                    continue;
                };
                if next != from {
                    stack.push((next, at, d + costs.link(at, next)));
                }
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cayley_counts() {
        for (k, n) in [(1, 1), (2, 1), (3, 3), (4, 16), (5, 125)] {
            let trees = labelled_trees(k);
            assert_eq!(trees.len(), n, "k = {k}");
            let distinct: std::collections::BTreeSet<Vec<(usize, usize)>> = trees
                .iter()
                .map(|t| {
                    let mut l: Vec<_> = t.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
                    l.sort_unstable();
                    l
                })
                .collect();
            assert_eq!(distinct.len(), n, "k = {k}: duplicates");
            for t in &trees {
                assert_eq!(t.len(), k.saturating_sub(1));
            }
        }
    }
}
