//! The sans-IO heart of the Arbor origin (being built: registry, placement, trees).
