//! Hop chains: the edges an announcement or a meeting event has passed, in order.
//!
//! Every edge that relays one appends itself; an edge that finds itself already in the chain
//! drops the message. While a meeting's tree is being replaced, old and new links can briefly
//! form a cycle, and the chain is what keeps a message from circling it.

use crate::MAX_HOPS;
use crate::id::EdgeId;
use crate::wire::{DecodeError, EncodeError, Reader, Wire, Writer, put_list, take_list};

/// A hop chain already holds [`MAX_HOPS`] edges: the message has travelled too far to be
/// relayed again (a tree is never that deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hop chain is full ({MAX_HOPS} edges)")]
pub struct HopsFull;

/// The edges a message has passed, oldest first; at most [`MAX_HOPS`] long by construction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hops(Vec<EdgeId>);

impl Hops {
    /// An empty chain (the message starts here; the sender pushes itself before sending).
    pub fn new() -> Hops {
        Hops(Vec::new())
    }

    /// A chain holding just `edge`.
    pub fn from_edge(edge: EdgeId) -> Hops {
        Hops(vec![edge])
    }

    /// Whether `edge` already relayed the message.
    pub fn contains(&self, edge: &EdgeId) -> bool {
        self.0.contains(edge)
    }

    /// Appends `edge`, or refuses when the chain is full.
    pub fn push(&mut self, edge: EdgeId) -> Result<(), HopsFull> {
        if self.0.len() >= MAX_HOPS {
            return Err(HopsFull);
        }
        self.0.push(edge);
        Ok(())
    }

    /// The edges, oldest first.
    pub fn iter(&self) -> std::slice::Iter<'_, EdgeId> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[EdgeId] {
        &self.0
    }

    /// The first edge (where the message was created).
    pub fn first(&self) -> Option<&EdgeId> {
        self.0.first()
    }

    /// The edge that sent it to us.
    pub fn last(&self) -> Option<&EdgeId> {
        self.0.last()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Vec<EdgeId>> for Hops {
    type Error = HopsFull;
    fn try_from(edges: Vec<EdgeId>) -> Result<Hops, HopsFull> {
        if edges.len() > MAX_HOPS {
            return Err(HopsFull);
        }
        Ok(Hops(edges))
    }
}

impl<'a> IntoIterator for &'a Hops {
    type Item = &'a EdgeId;
    type IntoIter = std::slice::Iter<'a, EdgeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Wire for Hops {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        put_list(w, &self.0, MAX_HOPS, "hops")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        take_list(r, MAX_HOPS, "hops").map(Hops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_bounded() {
        let edge = |i: usize| EdgeId::new(&format!("e{i}")).unwrap();
        let mut hops = Hops::new();
        for i in 0..MAX_HOPS {
            hops.push(edge(i)).unwrap();
        }
        assert_eq!(hops.push(edge(99)), Err(HopsFull));
        assert_eq!(hops.len(), MAX_HOPS);
        assert!(hops.contains(&edge(3)) && !hops.contains(&edge(99)));
        assert_eq!(hops.last(), Some(&edge(MAX_HOPS - 1)));
        let too_long: Vec<EdgeId> = (0..=MAX_HOPS).map(edge).collect();
        assert_eq!(Hops::try_from(too_long), Err(HopsFull));
    }
}
