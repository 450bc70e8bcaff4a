//! Measured round-trip times between edges, as a dense symmetric matrix by slot.
//!
//! Dense because the tree assigner reads every pair of a meeting's edges on each recompute:
//! a row lookup is one index, where a map keyed by pairs would hash a million times for a
//! 1,000-edge broadcast. At [`MAX_EDGES`](crate::registry::MAX_EDGES) slots it holds 16 MiB.

/// Marks a pair never measured (or forgotten when one side went down).
const UNMEASURED: u32 = u32::MAX;

/// Newest RTT sample per unordered pair of slots.
#[derive(Debug, Default)]
pub(crate) struct RttTable {
    /// `rows[a][b] == rows[b][a]`; every row is as long as `rows`.
    rows: Vec<Vec<u32>>,
}

impl RttTable {
    /// Makes room for slot indices up to and including `slot`.
    pub(crate) fn ensure(&mut self, slot: usize) {
        let n = slot + 1;
        if self.rows.len() >= n {
            return;
        }
        for row in &mut self.rows {
            row.resize(n, UNMEASURED);
        }
        self.rows.resize_with(n, || vec![UNMEASURED; n]);
    }

    /// Stores a sample for both directions: the newest sample of either direction wins,
    /// because the two directions measure the same path and the newer one is fresher.
    /// `u32::MAX` is reserved, so it is stored one lower.
    pub(crate) fn record(&mut self, a: usize, b: usize, rtt_us: u32) {
        if a == b || a >= self.rows.len() || b >= self.rows.len() {
            return;
        }
        let v = rtt_us.min(UNMEASURED - 1);
        self.rows[a][b] = v;
        self.rows[b][a] = v;
    }

    /// The newest measured sample, if any.
    pub(crate) fn measured(&self, a: usize, b: usize) -> Option<u32> {
        let v = *self.rows.get(a)?.get(b)?;
        (v != UNMEASURED).then_some(v)
    }

    /// Forgets every sample involving `slot` (its edge died or its slot is being reused).
    pub(crate) fn clear(&mut self, slot: usize) {
        if slot >= self.rows.len() {
            return;
        }
        for row in &mut self.rows {
            row[slot] = UNMEASURED;
        }
        self.rows[slot].fill(UNMEASURED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_newest_wins_and_clear_forgets() {
        let mut t = RttTable::default();
        t.ensure(2);
        assert_eq!(t.measured(0, 1), None);
        t.record(0, 1, 10_000);
        t.record(1, 0, 12_000);
        assert_eq!(t.measured(0, 1), Some(12_000));
        assert_eq!(t.measured(1, 0), Some(12_000));
        t.record(2, 2, 5);
        assert_eq!(t.measured(2, 2), None);
        t.record(0, 9, 5); // out of range: ignored
        t.ensure(5);
        assert_eq!(t.measured(0, 1), Some(12_000), "growth keeps samples");
        t.record(1, 5, 7);
        t.clear(1);
        assert_eq!(t.measured(0, 1), None);
        assert_eq!(t.measured(5, 1), None);
        t.record(3, 4, u32::MAX);
        assert_eq!(t.measured(3, 4), Some(u32::MAX - 1));
    }
}
