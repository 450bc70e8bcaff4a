//! The quinn shell of the relay protocol (being built).
