//! The DNS server's counters: plain atomics on the query path, turned into Prometheus series
//! only when `/metrics` is scraped ([`crate::metrics::Metrics::render`]).
//!
//! A map lookup per query (what the origin's other metrics cost) would be a measurable share
//! of an answer that takes microseconds; an atomic add is not. Every label is bounded: the query type and
//! response code by the fixed lists below, the region by the configured regions.

use std::sync::atomic::{AtomicU64, Ordering};

use relay_proto::RegionId;

/// `qtype` label values.
pub const QTYPES: [&str; 6] = ["a", "aaaa", "soa", "ns", "any", "other"];
/// `rcode` label values.
pub const RCODES: [&str; 7] = [
    "noerror", "nxdomain", "refused", "formerr", "notimp", "servfail", "badvers",
];
/// `ecs` label values.
pub const ECS: [&str; 2] = ["present", "absent"];

/// The query's type, as an index into [`QTYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qtype {
    A,
    Aaaa,
    Soa,
    Ns,
    Any,
    Other,
}

/// The response code, as an index into [`RCODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
    Refused,
    FormErr,
    NotImp,
    ServFail,
    BadVers,
}

/// What the rate limiter did to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Slipped,
    Dropped,
}

/// Counters shared by the handler (which adds) and `/metrics` (which reads).
#[derive(Debug)]
pub struct Stats {
    queries: [[[AtomicU64; 2]; RCODES.len()]; QTYPES.len()],
    /// Per configured region, then one for "other" and one for "none" (no edge to answer).
    answers: Vec<AtomicU64>,
    regions: Vec<RegionId>,
    limited: [AtomicU64; 2],
}

impl Stats {
    /// Counters for answers in `regions` (the configured ones; others count as `other`).
    pub fn new(regions: &[RegionId]) -> Self {
        Stats {
            queries: Default::default(),
            answers: (0..regions.len() + 2).map(|_| AtomicU64::new(0)).collect(),
            regions: regions.to_vec(),
            limited: Default::default(),
        }
    }

    /// The index [`Stats::answered`] takes for an edge of `region`.
    pub fn region_index(&self, region: &RegionId) -> usize {
        self.regions
            .iter()
            .position(|r| r == region)
            .unwrap_or(self.regions.len())
    }

    /// One query and how it was answered.
    pub fn query(&self, qtype: Qtype, rcode: Rcode, ecs: bool) {
        self.queries[qtype as usize][rcode as usize][usize::from(!ecs)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// One steered answer, by the region index of its first edge, or `None` when no edge
    /// could take the client.
    pub fn answered(&self, region: Option<usize>) {
        let i = region.map_or(self.regions.len() + 1, |i| i.min(self.regions.len()));
        self.answers[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn limited(&self, what: Limited) {
        self.limited[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every `(qtype, rcode, ecs, count)`.
    pub fn queries(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static str, u64)> {
        QTYPES.iter().enumerate().flat_map(move |(q, qtype)| {
            RCODES.iter().enumerate().flat_map(move |(r, rcode)| {
                ECS.iter().enumerate().map(move |(e, ecs)| {
                    (
                        *qtype,
                        *rcode,
                        *ecs,
                        self.queries[q][r][e].load(Ordering::Relaxed),
                    )
                })
            })
        })
    }

    /// Every `(region label, count)`: the configured regions, `other`, `none`.
    pub fn answers(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let labels = self
            .regions
            .iter()
            .map(ToString::to_string)
            .chain(["other".to_owned(), "none".to_owned()]);
        labels
            .zip(&self.answers)
            .map(|(l, n)| (l, n.load(Ordering::Relaxed)))
    }

    /// `(slipped, dropped)`.
    pub fn limited_counts(&self) -> (u64, u64) {
        (
            self.limited[Limited::Slipped as usize].load(Ordering::Relaxed),
            self.limited[Limited::Dropped as usize].load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_their_labels() {
        let regions = [RegionId::new("eu").unwrap(), RegionId::new("us").unwrap()];
        let s = Stats::new(&regions);
        s.query(Qtype::Aaaa, Rcode::NxDomain, true);
        s.query(Qtype::Aaaa, Rcode::NxDomain, true);
        s.query(Qtype::Other, Rcode::BadVers, false);
        let hits: Vec<_> = s.queries().filter(|q| q.3 > 0).collect();
        assert_eq!(
            hits,
            [
                ("aaaa", "nxdomain", "present", 2),
                ("other", "badvers", "absent", 1)
            ]
        );
        assert_eq!(s.queries().count(), 6 * 7 * 2);
        assert_eq!(s.region_index(&regions[1]), 1);
        assert_eq!(s.region_index(&RegionId::new("ap").unwrap()), 2);
        s.answered(Some(1));
        s.answered(Some(2));
        s.answered(Some(7));
        s.answered(None);
        let answers: Vec<_> = s.answers().collect();
        assert_eq!(
            answers,
            [
                ("eu".to_owned(), 0),
                ("us".to_owned(), 1),
                ("other".to_owned(), 2),
                ("none".to_owned(), 1)
            ]
        );
        s.limited(Limited::Dropped);
        assert_eq!(s.limited_counts(), (0, 1));
    }
}
