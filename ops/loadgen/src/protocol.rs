//! The meeting signaling messages (`docs/signaling.md`): the edge's own definitions, so a
//! synthetic client can never drift from the protocol the edge speaks.
//!
//! Parsing [`ServerMsg`] is lenient in the ways a long-lived client needs: unknown fields are
//! ignored, and unknown message types, error codes and enum values parse as their `Unknown`
//! or `Other` variants instead of failing.

pub use edge_core::signal::*;
