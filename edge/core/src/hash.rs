//! A deterministic hasher for the maps whose iteration order reaches the outputs.
//!
//! `std`'s default hasher is seeded at random per process, so iterating a `HashMap` of
//! tracks (to announce them on a new tree link) or of participants (to allocate their layers)
//! would send the same messages in a different order on every run: flows numbered
//! differently, a simulator seed that does not replay. Maps keyed by what the worker or a
//! peer edge chose (participant, track and meeting ids) use FNV-1a instead; maps keyed by
//! what a stranger sends (STUN usernames, source addresses) keep the seeded hasher, which
//! resists collision attacks, and are never iterated.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// 64-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` that iterates in the same order on every run with the same operations.
pub type DetMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inserts_same_order() {
        let fill = || {
            let mut m: DetMap<u64, u64> = DetMap::default();
            for k in [9, 3, 7_000_000_000, 1, 42] {
                m.insert(k, k);
            }
            m.keys().copied().collect::<Vec<_>>()
        };
        assert_eq!(fill(), fill());
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
