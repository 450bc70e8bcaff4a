//! Arbor's deterministic simulator (being built: the seeded link model first).
