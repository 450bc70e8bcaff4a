//! Oracle 1: the shape of every tree the origin issued, and of the last one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::{Problems, edge_name, links_text, names};
use crate::outcome::Outcome;

/// How long after a cut the origin may still issue a tree using the cut link: suspicion
/// (600 ms plus a 200 ms tick), the report's and the update's trips, with margin.
pub const DETECTION_ALLOWANCE: Duration = Duration::from_millis(1000);

/// Oracle 1. See the module docs.
pub fn tree_shape(o: &Outcome) -> Result<(), String> {
    let mut p = Problems::default();
    issued_trees(o, &mut p);
    final_tree(o, &mut p);
    edges_agree(o, &mut p);
    expectations(o, &mut p);
    p.into_result()
}

/// Every tree issued is a tree, and none uses a link known to be cut.
fn issued_trees(o: &Outcome, p: &mut Problems) {
    for t in &o.trees {
        if let Err(e) = check_tree(&t.links, o.max_degree) {
            p.add(format!(
                "tree epoch {} at {:.3} s {e}",
                t.epoch,
                t.at.as_secs_f64()
            ));
        }
        for r in &o.partitions {
            let known = t.at >= r.cut + DETECTION_ALLOWANCE;
            let still_cut = r.healed.is_none_or(|h| t.at < h);
            if known && still_cut && t.links.contains(&(r.a, r.b)) {
                p.add(format!(
                    "tree epoch {} at {:.3} s uses {}-{}, cut since {:.3} s",
                    t.epoch,
                    t.at.as_secs_f64(),
                    edge_name(o, r.a),
                    edge_name(o, r.b),
                    r.cut.as_secs_f64()
                ));
            }
        }
    }
}

/// The last tree spans the hosting edges, and its relays relay.
fn final_tree(o: &Outcome, p: &mut Problems) {
    if o.hosting.len() < 2 {
        if !o.final_links.is_empty() {
            p.add(format!(
                "{} hosting edges but tree links {:?}",
                o.hosting.len(),
                o.final_links
            ));
        }
        return;
    }
    if let Err(e) = check_tree(&o.final_links, o.max_degree) {
        p.add(format!("the final tree {e}"));
    }
    let adj = adjacency(&o.final_links);
    for h in o.hosting.iter().filter(|h| !o.final_nodes.contains(h)) {
        p.add(format!(
            "{} hosts participants but is not in the tree",
            edge_name(o, *h)
        ));
    }
    for n in o.final_nodes.iter().filter(|n| !o.hosting.contains(n)) {
        let degree = adj.get(n).map_or(0, BTreeSet::len);
        if degree < 2 {
            p.add(format!(
                "relay {} has degree {degree}: it relays nothing",
                edge_name(o, *n)
            ));
        }
    }
}

/// Every edge's own neighbour set is the origin's.
fn edges_agree(o: &Outcome, p: &mut Problems) {
    let adj = adjacency(&o.final_links);
    for (e, view) in o.edge_views.iter().enumerate() {
        let want: Vec<usize> = adj
            .get(&e)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let have = view.clone().unwrap_or_default();
        if have != want {
            p.add(format!(
                "{} thinks its neighbours are {}, the origin says {}",
                edge_name(o, e),
                names(o, &have),
                names(o, &want)
            ));
        }
    }
}

/// The scenario's expected tree, and no more changes than it allows.
fn expectations(o: &Outcome, p: &mut Problems) {
    if let Some(expect) = &o.scenario.expect.final_tree {
        let mut want: Vec<(usize, usize)> =
            expect.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
        want.sort_unstable();
        if want != o.final_links {
            p.add(format!(
                "final tree {} instead of {}",
                links_text(o, &o.final_links),
                links_text(o, &want)
            ));
        }
    }
    let changes = o.trees.len();
    if changes > o.scenario.expect.max_tree_changes {
        let list: Vec<String> = o
            .trees
            .iter()
            .map(|t| format!("{:.2} s {}", t.at.as_secs_f64(), links_text(o, &t.links)))
            .collect();
        p.add(format!(
            "{changes} tree changes, at most {} expected (flapping?): {}",
            o.scenario.expect.max_tree_changes,
            list.join(", ")
        ));
    }
}

/// Checks that `links` form one tree (connected, acyclic) with degrees within the bound.
fn check_tree(links: &[(usize, usize)], max_degree: u32) -> Result<(), String> {
    if links.is_empty() {
        return Ok(());
    }
    let adj = adjacency(links);
    let Some(&root) = adj.keys().next() else {
        return Ok(());
    };
    let reached = hops_from(&adj, root);
    if reached.len() != adj.len() {
        return Err(format!("is not connected: {links:?}"));
    }
    if links.len() != adj.len() - 1 {
        return Err(format!("has a cycle: {links:?}"));
    }
    if let Some((n, s)) = adj.iter().find(|(_, s)| s.len() > max_degree as usize) {
        return Err(format!("gives edge {n} degree {} > {max_degree}", s.len()));
    }
    Ok(())
}

fn adjacency(links: &[(usize, usize)]) -> BTreeMap<usize, BTreeSet<usize>> {
    let mut adj: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for &(a, b) in links {
        adj.entry(a).or_default().insert(b);
        adj.entry(b).or_default().insert(a);
    }
    adj
}

/// Predecessors on the breadth-first paths from `root`.
fn hops_from(adj: &BTreeMap<usize, BTreeSet<usize>>, root: usize) -> BTreeMap<usize, usize> {
    let mut prev = BTreeMap::from([(root, root)]);
    let mut queue = VecDeque::from([root]);
    while let Some(at) = queue.pop_front() {
        for &next in adj.get(&at).into_iter().flatten() {
            if let std::collections::btree_map::Entry::Vacant(v) = prev.entry(next) {
                v.insert(at);
                queue.push_back(next);
            }
        }
    }
    prev
}

/// The path of edges from `a` to `b` in a tree, or `None` if they are not connected.
pub fn tree_path(links: &[(usize, usize)], a: usize, b: usize) -> Option<Vec<usize>> {
    if a == b {
        return Some(vec![a]);
    }
    let prev = hops_from(&adjacency(links), a);
    let mut path = vec![b];
    let mut at = b;
    while at != a {
        at = *prev.get(&at)?;
        path.push(at);
    }
    path.reverse();
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_checks_catch_cycles_splits_and_fan_out() {
        assert!(check_tree(&[(0, 1), (1, 2)], 8).is_ok());
        assert!(
            check_tree(&[(0, 1), (1, 2), (0, 2)], 8)
                .unwrap_err()
                .contains("cycle")
        );
        assert!(
            check_tree(&[(0, 1), (2, 3)], 8)
                .unwrap_err()
                .contains("connected")
        );
        assert!(
            check_tree(&[(0, 1), (0, 2), (0, 3)], 2)
                .unwrap_err()
                .contains("degree")
        );
    }

    #[test]
    fn paths_follow_the_tree() {
        let links = [(0, 1), (0, 2), (2, 3)];
        assert_eq!(tree_path(&links, 1, 3), Some(vec![1, 0, 2, 3]));
        assert_eq!(tree_path(&links, 2, 2), Some(vec![2]));
        assert_eq!(tree_path(&links, 1, 4), None);
    }
}
