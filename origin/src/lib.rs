//! The Arbor origin coordinator.
//!
//! Not built yet: it arrives with the cascade (the next issue). It will place meetings on
//! edges (bounded-load consistent hashing per region), assign each meeting's tree across
//! edges, keep the edge registry and its liveness, serve the `/v1` REST API and tokens, and
//! answer geo DNS. Its sans-IO core will live in `origin/core`, beside this shell, like
//! `edge/core` beside `edge`. See DESIGN.md §2–§5.
