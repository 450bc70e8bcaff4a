//! The assigner: grow degree-bounded shortest-path trees from a few centres, keep the best,
//! and prefer the previous tree unless the new one is clearly better.
//!
//! # Heuristic
//!
//! 1. **Centres.** Every node gets a star score, `max_p d(c, p) + max_s d(c, s)` over
//!    publishers `p` and subscribers `s` (what the tree would cost as a star around `c`). The
//!    [`Policy::max_centres`] best-scoring nodes, relays included, are tried; a meeting with a
//!    single publisher always tries that publisher too.
//! 2. **Growth.** From a centre, terminals are attached in order of their distance to it, each
//!    to the in-tree node with free fan-out that minimises its path latency from the centre
//!    (`dist(u) + d(u, v)`, ties to the shallower node). If going through a relay not yet in
//!    the tree is strictly quicker — which happens only when fan-out bounds fill the nodes a
//!    terminal would rather hang from — the relay is inserted first. A hop bound (from
//!    [`Policy::max_hops`]) caps the depth of nodes that may take children. Trees of up to
//!    [`MAX_IMPROVE_NODES`] terminals also grow in two other orders ([`Order`]).
//! 3. **Choice.** Relays left as leaves are pruned; each candidate tree is scored by its exact
//!    worst publisher→subscriber latency ([`evaluate`]) and the best is kept; small trees then
//!    go through local search ([`improve`]).
//!
//! Cost: O(K · n · w) for K centres, n nodes and w nodes with free fan-out (w ≤ n), plus
//! O(n · r) for r candidate relays. See `docs/tree.md` for measured times.
//!
//! # Quality
//!
//! With metric latencies (the triangle inequality holds) and fan-out bounds that do not bind,
//! the tree grown from a terminal centre is the star around it; for meetings where every edge
//! publishes and subscribes it costs at most `d(p, c) + d(c, s) ≤ 2 · OPT`, because every direct
//! distance is a lower bound on OPT (a relay centre chosen instead scores no more than the
//! best terminal). With a single publisher, the star around it is optimal.
//! With binding fan-out bounds there is no proven factor; the property tests check
//! [`CHECKED_FACTOR`] against a brute-force optimum on every instance of up to seven nodes they
//! generate.
//!
//! # Incrementality
//!
//! The previous tree is repaired first (dead edges dropped, orphaned subtrees and new terminals
//! reattached where they add least to the worst latency, departed terminals and leaf relays
//! pruned). A freshly grown tree replaces it only if it lowers the worst latency by at least
//! [`Policy::min_gain_us`] and [`Policy::min_gain_permille`], so a meeting's links do not flap
//! with RTT noise. When the repaired tree is already within that margin of the lower bound
//! (the worst direct publisher→subscriber latency), the fresh search is skipped altogether.

use super::Tree;
use super::eval::{Cost, IndexTree, NONE, evaluate};
use super::improve::{MAX_IMPROVE_NODES, improve};
use super::problem::{Costs, Policy, Problem};
use super::repair::repair;

/// The approximation factor the property tests check against brute force (see the module
/// docs for what is proven).
pub const CHECKED_FACTOR: f64 = 2.0;

/// Where an assignment's tree came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// There was no previous tree.
    New,
    /// The previous tree, repaired if edges came or went.
    Kept,
    /// A fresh tree, better than the repaired previous one by the policy's margin (or the
    /// previous one could not be repaired within the bounds).
    Replaced,
}

/// The result of [`assign`].
#[derive(Debug, Clone)]
pub struct Assignment {
    pub tree: Tree,
    /// Worst publisher→subscriber latency along the tree: link latencies plus
    /// [`Policy::hop_us`] per link, in µs (saturated at `u32::MAX`).
    pub worst_us: u32,
    /// Most links on any publisher→subscriber path.
    pub worst_hops: u32,
    pub source: Source,
    /// What the repaired previous tree would have cost, when there was one.
    pub previous_worst_us: Option<u32>,
}

/// Why no tree could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    #[error("no tree spans the terminals within the fan-out and hop bounds")]
    Infeasible,
}

/// Assigns a tree for `problem`, starting from `previous` (the meeting's current tree) if
/// there is one. Pure and deterministic.
pub fn assign(
    problem: &Problem,
    policy: &Policy,
    previous: Option<&Tree>,
) -> Result<Assignment, AssignError> {
    let costs = Costs::new(problem, policy);
    let within_hops = |c: &Cost| policy.max_hops.is_none_or(|h| c.worst_hops <= u64::from(h));
    let repaired = previous
        .and_then(|t| repair(t, &costs))
        .map(|t| (evaluate(&t, &costs), t))
        .filter(|(c, _)| within_hops(c));
    let previous_worst_us = repaired.as_ref().map(|(c, _)| saturate(c.worst_us));

    if let Some((cost, tree)) = &repaired {
        let best_possible = lower_bound(&costs);
        if !replaces(cost.worst_us, best_possible, policy) {
            return Ok(finish(
                problem,
                tree,
                *cost,
                Source::Kept,
                previous_worst_us,
            ));
        }
    }
    let fresh = grow_best(&costs, policy);
    let (source, (cost, tree)) = match (repaired, fresh) {
        (Some(old), Some(new)) if replaces(old.0.worst_us, new.0.worst_us, policy) => {
            (Source::Replaced, new)
        }
        (Some(old), _) => (Source::Kept, old),
        (None, Some(new)) if previous.is_some() => (Source::Replaced, new),
        (None, Some(new)) => (Source::New, new),
        (None, None) => return Err(AssignError::Infeasible),
    };
    Ok(finish(problem, &tree, cost, source, previous_worst_us))
}

/// Whether a tree costing `new` should replace one costing `old`.
fn replaces(old: u64, new: u64, policy: &Policy) -> bool {
    let needed = u64::from(policy.min_gain_us)
        .max(old.saturating_mul(u64::from(policy.min_gain_permille)) / 1000);
    new < old && old - new >= needed
}

/// No tree beats the worst direct publisher→subscriber link (given the triangle inequality).
fn lower_bound(costs: &Costs<'_>) -> u64 {
    let p = costs.p;
    let subs: Vec<usize> = (0..p.len()).filter(|&i| p.subscribes[i]).collect();
    (0..p.len())
        .filter(|&i| p.publishes[i])
        .flat_map(|a| subs.iter().map(move |&b| costs.link(a, b)))
        .max()
        .unwrap_or(0)
}

fn saturate(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn finish(
    p: &Problem,
    t: &IndexTree,
    cost: Cost,
    source: Source,
    previous_worst_us: Option<u32>,
) -> Assignment {
    let mut tree = Tree::new();
    for i in t.nodes() {
        tree.add_node(p.ids[i].clone());
        for &j in t.adj[i].iter().filter(|&&j| j > i) {
            tree.add_link(p.ids[i].clone(), p.ids[j].clone());
        }
    }
    Assignment {
        tree,
        worst_us: saturate(cost.worst_us),
        worst_hops: saturate(cost.worst_hops),
        source,
        previous_worst_us,
    }
}

/// The best tree over the candidate centres, or `None` if none fits the bounds.
fn grow_best(costs: &Costs<'_>, policy: &Policy) -> Option<(Cost, IndexTree)> {
    let p = costs.p;
    let terminals: Vec<usize> = (0..p.len()).filter(|&i| p.terminal[i]).collect();
    match terminals.as_slice() {
        [] => return Some((Cost::default(), IndexTree::new(p.len()))),
        [only] => {
            let mut t = IndexTree::new(p.len());
            t.present[*only] = true;
            return Some((Cost::default(), t));
        }
        _ => {}
    }
    let publishers: Vec<usize> = terminals
        .iter()
        .copied()
        .filter(|&i| p.publishes[i])
        .collect();
    // Small trees also try the other growth orders, which save a centre's fan-out for the
    // edges that need it most; large ones cannot afford the extra passes.
    let orders: &[Order] = if terminals.len() <= MAX_IMPROVE_NODES {
        &[Order::NearFirst, Order::FarFirst, Order::LatestFit]
    } else {
        &[Order::NearFirst]
    };
    let mut best: Option<(Cost, usize, IndexTree)> = None;
    for centre in candidate_centres(costs, policy, &publishers) {
        let radius = match policy.max_hops {
            None => u32::MAX,
            Some(h) if publishers == [centre] => h,
            Some(h) => h / 2,
        };
        for &order in orders {
            let Some(mut tree) = Grower::new(costs, centre, radius).run(&terminals, order) else {
                continue;
            };
            tree.prune_relay_leaves(p);
            let cost = evaluate(&tree, costs);
            if policy
                .max_hops
                .is_some_and(|h| cost.worst_hops > u64::from(h))
            {
                continue;
            }
            let key = (cost.worst_us, cost.worst_hops, tree.link_count());
            if best
                .as_ref()
                .is_none_or(|(c, l, _)| key < (c.worst_us, c.worst_hops, *l))
            {
                best = Some((cost, key.2, tree));
            }
        }
    }
    let (cost, _, mut tree) = best?;
    improve(&mut tree, costs, policy.max_hops, cost);
    tree.prune_relay_leaves(p);
    Some((evaluate(&tree, costs), tree))
}

/// Nodes ordered by star score (see the module docs), the best `max_centres`, plus the sole
/// publisher if there is one.
fn candidate_centres(costs: &Costs<'_>, policy: &Policy, publishers: &[usize]) -> Vec<usize> {
    let p = costs.p;
    let n = p.len();
    let subscribers: Vec<usize> = (0..n).filter(|&i| p.subscribes[i]).collect();
    let terminals: Vec<usize> = (0..n).filter(|&i| p.terminal[i]).collect();
    let farthest = |c: usize, set: &[usize]| set.iter().map(|&t| costs.link(c, t)).max();
    let mut scored: Vec<(u64, usize)> = (0..n)
        .filter(|&c| p.terminal[c] || p.max_degree[c] >= 2)
        .map(|c| {
            let score = match (farthest(c, publishers), farthest(c, &subscribers)) {
                (Some(a), Some(b)) => a + b,
                _ => farthest(c, &terminals).unwrap_or(0),
            };
            (score, c)
        })
        .collect();
    scored.sort_unstable();
    let mut centres: Vec<usize> = scored
        .iter()
        .take(policy.max_centres.max(1))
        .map(|&(_, c)| c)
        .collect();
    if let [only] = publishers
        && !centres.contains(only)
    {
        centres.push(*only);
    }
    centres
}

/// In which order growth attaches terminals, by distance to the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Nearest first, each to the parent that reaches it soonest.
    NearFirst,
    /// Farthest first, likewise.
    FarFirst,
    /// Nearest first, each to the *latest* parent that still reaches it within the star
    /// radius `max_t d(centre, t)` (the soonest if none does): that radius is a lower bound
    /// on a tree's radius from this centre, so fitting under it costs nothing and leaves the
    /// shallow fan-out to edges that need it.
    LatestFit,
}

/// One greedy growth from a centre. See the module docs, step 2.
struct Grower<'c, 'p> {
    costs: &'c Costs<'p>,
    radius: u32,
    tree: IndexTree,
    /// Path cost from the centre.
    dist: Vec<u64>,
    depth: Vec<u32>,
    /// Fan-out left.
    free: Vec<u32>,
    /// In-tree nodes that may take a child: free fan-out and depth below the radius.
    open: Vec<usize>,
    /// Relays not in the tree that could carry a child (fan-out ≥ 2).
    relays: Vec<usize>,
    /// Per entry of `relays`: the cheapest open parent that could take it with room below it,
    /// as (path cost to the relay, parent), or `(u64::MAX, NONE)`.
    relay_parent: Vec<(u64, usize)>,
    /// For [`Order::LatestFit`]: the radius within which the latest parent is preferred.
    fit_within: Option<u64>,
}

impl<'c, 'p> Grower<'c, 'p> {
    fn new(costs: &'c Costs<'p>, centre: usize, radius: u32) -> Self {
        let p = costs.p;
        let n = p.len();
        let relays: Vec<usize> = (0..n)
            .filter(|&i| !p.terminal[i] && i != centre && p.max_degree[i] >= 2)
            .collect();
        let mut g = Self {
            costs,
            radius,
            tree: IndexTree::new(n),
            dist: vec![0; n],
            depth: vec![0; n],
            free: vec![0; n],
            open: Vec::new(),
            relay_parent: vec![(u64::MAX, NONE); relays.len()],
            relays,
            fit_within: None,
        };
        g.add(centre, NONE);
        g
    }

    /// Attaches every terminal, nearest to the centre first. `None` if one cannot be placed.
    fn run(mut self, terminals: &[usize], order: Order) -> Option<IndexTree> {
        let centre = self.tree.nodes().next()?;
        let p = self.costs.p;
        // Terminals that neither publish nor subscribe do not count in the objective: they
        // come last, so they do not take fan-out that a publisher or subscriber needs.
        let mut queue: Vec<(bool, u64, usize)> = terminals
            .iter()
            .filter(|&&v| v != centre)
            .map(|&v| {
                let d = self.costs.link(centre, v);
                let d = if order == Order::FarFirst {
                    u64::MAX - d
                } else {
                    d
                };
                (!(p.publishes[v] || p.subscribes[v]), d, v)
            })
            .collect();
        queue.sort_unstable();
        if order == Order::LatestFit {
            self.fit_within = terminals.iter().map(|&t| self.costs.link(centre, t)).max();
        }
        for (_, _, v) in queue {
            self.attach(v)?;
        }
        Some(self.tree)
    }

    fn attach(&mut self, v: usize) -> Option<()> {
        let row = self.costs.p.row(v);
        let hop = self.costs.hop_us;
        let mut direct: Option<(u64, u32, usize)> = None;
        let mut fit: Option<(u64, u32, usize)> = None;
        let within = self.fit_within.unwrap_or(0);
        for &u in &self.open {
            let key = (self.dist[u] + u64::from(row[u]) + hop, self.depth[u], u);
            if direct.is_none_or(|d| key < d) {
                direct = Some(key);
            }
            if key.0 <= within && fit.is_none_or(|f| key > f) {
                fit = Some(key);
            }
        }
        if let Some((_, _, u)) = fit {
            self.add(v, u);
            return Some(());
        }
        let mut via: Option<(u64, usize)> = None;
        for (k, &(to_relay, parent)) in self.relay_parent.iter().enumerate() {
            if parent == NONE {
                continue;
            }
            let total = to_relay + self.costs.link(self.relays[k], v);
            if via.is_none_or(|(best, _)| total < best) {
                via = Some((total, k));
            }
        }
        match (direct, via) {
            (d, Some((total, k))) if d.is_none_or(|(dc, _, _)| total < dc) => {
                let relay = self.relays.swap_remove(k);
                let (_, parent) = self.relay_parent.swap_remove(k);
                self.add(relay, parent);
                self.add(v, relay);
            }
            (Some((_, _, u)), _) => self.add(v, u),
            (None, _) => return None,
        }
        Some(())
    }

    /// Puts `w` in the tree under `parent` (`NONE` for the centre) and updates the
    /// bookkeeping: open nodes, and the relays' best parents.
    fn add(&mut self, w: usize, parent: usize) {
        let p = self.costs.p;
        self.tree.present[w] = true;
        self.free[w] = p.max_degree[w];
        if parent != NONE {
            self.tree.link(parent, w);
            self.dist[w] = self.dist[parent] + self.costs.link(parent, w);
            self.depth[w] = self.depth[parent] + 1;
            self.free[w] = self.free[w].saturating_sub(1);
            self.free[parent] -= 1;
            if self.free[parent] == 0 {
                self.close(parent);
            }
        }
        if self.free[w] > 0 && self.depth[w] < self.radius {
            self.open.push(w);
            if self.depth[w].saturating_add(1) < self.radius {
                for (k, &x) in self.relays.iter().enumerate() {
                    let via = self.dist[w] + self.costs.link(w, x);
                    if via < self.relay_parent[k].0 {
                        self.relay_parent[k] = (via, w);
                    }
                }
            }
        }
    }

    /// `u` has no fan-out left: it leaves `open`, and relays that counted on it look again.
    fn close(&mut self, u: usize) {
        self.open.retain(|&x| x != u);
        for k in 0..self.relays.len() {
            if self.relay_parent[k].1 != u {
                continue;
            }
            let x = self.relays[k];
            self.relay_parent[k] = self
                .open
                .iter()
                .filter(|&&o| self.depth[o].saturating_add(1) < self.radius)
                .map(|&o| (self.dist[o] + self.costs.link(o, x), o))
                .min()
                .unwrap_or((u64::MAX, NONE));
        }
    }
}
