//! The input of tree assignment, turned into dense indices once.
//!
//! The assigner touches every pair of nodes many times, so ids are sorted and replaced by
//! indices and latencies copied into one row-major matrix: a lookup is one multiply-add
//! instead of two map searches. Sorting also makes the result independent of input order.

use relay_proto::EdgeId;

use crate::registry::MAX_EDGES;

/// Most nodes (terminals and relays) in one problem.
pub const MAX_NODES: usize = MAX_EDGES;

/// What an edge is to the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It hosts participants: it must be in the tree.
    Terminal {
        /// Some participant there publishes (its media starts here).
        publishes: bool,
        /// Some participant there subscribes (media must reach here).
        subscribes: bool,
    },
    /// A healthy edge with spare capacity that the tree may pass through.
    Relay,
}

/// One edge that may be in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub edge: EdgeId,
    pub role: Role,
    /// Fan-out bound: most tree links at this edge (its parent included).
    pub max_degree: u32,
}

impl Node {
    /// A terminal that both publishes and subscribes (a meeting's usual edge).
    pub fn member(edge: EdgeId, max_degree: u32) -> Self {
        Self::terminal(edge, true, true, max_degree)
    }

    pub fn terminal(edge: EdgeId, publishes: bool, subscribes: bool, max_degree: u32) -> Self {
        Self {
            edge,
            role: Role::Terminal {
                publishes,
                subscribes,
            },
            max_degree,
        }
    }

    pub fn relay(edge: EdgeId, max_degree: u32) -> Self {
        Self {
            edge,
            role: Role::Relay,
            max_degree,
        }
    }
}

/// Knobs of the assigner. The defaults suit meetings and broadcasts alike.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Delay an edge adds when it forwards one hop (receive, route, send), added to every link
    /// so that, at equal wire latency, fewer hops win.
    pub hop_us: u32,
    /// Bound on the hops of any publisher→subscriber path, if any (see `docs/tree.md`).
    pub max_hops: Option<u32>,
    /// A new tree replaces the previous one only if it lowers the worst latency by at least
    /// this much...
    pub min_gain_us: u32,
    /// ...and by at least this fraction of it, in thousandths.
    pub min_gain_permille: u32,
    /// How many candidate centres to grow a tree from.
    pub max_centres: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hop_us: 1_000,
            max_hops: None,
            min_gain_us: 5_000,
            min_gain_permille: 150,
            max_centres: 16,
        }
    }
}

/// Why a problem was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemError {
    #[error("{got} nodes, at most {MAX_NODES} allowed")]
    TooManyNodes { got: usize },
    #[error("edge {0} appears twice")]
    Duplicate(EdgeId),
    #[error("a latency matrix for {nodes} nodes needs {} entries, got {got}", nodes * nodes)]
    MatrixSize { nodes: usize, got: usize },
}

/// A tree assignment problem in dense form.
#[derive(Debug, Clone)]
pub struct Problem {
    pub(super) ids: Vec<EdgeId>,
    pub(super) terminal: Vec<bool>,
    pub(super) publishes: Vec<bool>,
    pub(super) subscribes: Vec<bool>,
    pub(super) max_degree: Vec<u32>,
    /// One-way latency in µs, row-major, symmetric, zero on the diagonal.
    pub(super) one_way_us: Vec<u32>,
}

impl Problem {
    /// Builds a problem, asking `one_way_us(a, b)` once per unordered pair (with `a < b`): pass
    /// a symmetric function, e.g. half the registry's [`rtt_us`](crate::Registry::rtt_us).
    pub fn new(
        nodes: Vec<Node>,
        one_way_us: &dyn Fn(&EdgeId, &EdgeId) -> u32,
    ) -> Result<Self, ProblemError> {
        let mut p = Self::skeleton(nodes)?;
        let n = p.ids.len();
        for i in 0..n {
            for j in i + 1..n {
                let v = one_way_us(&p.ids[i], &p.ids[j]);
                p.one_way_us[i * n + j] = v;
                p.one_way_us[j * n + i] = v;
            }
        }
        Ok(p)
    }

    /// Builds a problem from a row-major `nodes.len()²` matrix in the order of `nodes`. An
    /// asymmetric pair counts as its larger direction (media may cross a link either way).
    pub fn from_matrix(nodes: Vec<Node>, one_way_us: &[u32]) -> Result<Self, ProblemError> {
        let n = nodes.len();
        if one_way_us.len() != n * n {
            return Err(ProblemError::MatrixSize {
                nodes: n,
                got: one_way_us.len(),
            });
        }
        // Sorting permutes the nodes; remember where each came from.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| nodes[a].edge.cmp(&nodes[b].edge));
        let mut p = Self::skeleton(nodes)?;
        for (i, &oi) in order.iter().enumerate() {
            for (j, &oj) in order.iter().enumerate().skip(i + 1) {
                let v = one_way_us[oi * n + oj].max(one_way_us[oj * n + oi]);
                p.one_way_us[i * n + j] = v;
                p.one_way_us[j * n + i] = v;
            }
        }
        Ok(p)
    }

    /// Sorted, validated nodes and a zero matrix.
    fn skeleton(mut nodes: Vec<Node>) -> Result<Self, ProblemError> {
        if nodes.len() > MAX_NODES {
            return Err(ProblemError::TooManyNodes { got: nodes.len() });
        }
        nodes.sort_by(|a, b| a.edge.cmp(&b.edge));
        if let Some(w) = nodes.windows(2).find(|w| w[0].edge == w[1].edge) {
            return Err(ProblemError::Duplicate(w[0].edge.clone()));
        }
        let n = nodes.len();
        let mut p = Self {
            ids: Vec::with_capacity(n),
            terminal: Vec::with_capacity(n),
            publishes: Vec::with_capacity(n),
            subscribes: Vec::with_capacity(n),
            max_degree: Vec::with_capacity(n),
            one_way_us: vec![0; n * n],
        };
        for node in nodes {
            let (terminal, publishes, subscribes) = match node.role {
                Role::Terminal {
                    publishes,
                    subscribes,
                } => (true, publishes, subscribes),
                Role::Relay => (false, false, false),
            };
            p.ids.push(node.edge);
            p.terminal.push(terminal);
            p.publishes.push(publishes);
            p.subscribes.push(subscribes);
            p.max_degree.push(node.max_degree);
        }
        Ok(p)
    }

    /// Number of nodes, terminals and relays.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of terminals.
    pub fn terminals(&self) -> usize {
        self.terminal.iter().filter(|t| **t).count()
    }

    /// The dense index of an edge.
    pub(super) fn index_of(&self, edge: &EdgeId) -> Option<usize> {
        self.ids.binary_search(edge).ok()
    }

    /// One-way latency between two nodes, in µs.
    pub fn one_way_us(&self, a: &EdgeId, b: &EdgeId) -> Option<u32> {
        let (i, j) = (self.index_of(a)?, self.index_of(b)?);
        Some(self.one_way_us[i * self.len() + j])
    }

    /// The dense latency row of node `i`.
    pub(super) fn row(&self, i: usize) -> &[u32] {
        let n = self.len();
        &self.one_way_us[i * n..(i + 1) * n]
    }
}

/// Link costs: one-way latency plus the per-hop delay, as `u64` so path sums cannot overflow.
#[derive(Debug, Clone, Copy)]
pub(super) struct Costs<'a> {
    pub(super) p: &'a Problem,
    pub(super) hop_us: u64,
}

impl<'a> Costs<'a> {
    pub(super) fn new(p: &'a Problem, policy: &Policy) -> Self {
        Self {
            p,
            hop_us: u64::from(policy.hop_us),
        }
    }

    /// Cost of the link `i — j` (zero for `i == j`).
    pub(super) fn link(&self, i: usize, j: usize) -> u64 {
        if i == j {
            return 0;
        }
        u64::from(self.p.one_way_us[i * self.p.len() + j]) + self.hop_us
    }
}
