//! The sans-IO heart of the Arbor origin: which edges exist, where meetings go, and how each
//! meeting's edges are wired into a cascade tree.
//!
//! Nothing here opens a socket, reads a clock or spawns a task. The origin shell owns one
//! [`Registry`] and one [`Placement`], feeds them what arrives from edges and clients, and asks
//! [`tree::assign`] for a meeting's tree whenever its set of edges or their latencies change:
//!
//! ```text
//! edge control link ─► Registry::handle_register / handle_heartbeat / handle_rtt / handle_disconnect
//! timer ─────────────► Registry::handle_timeout(now)        (wake at Registry::poll_timeout)
//!                      Registry::poll_event ─► Up / Draining / Down
//!                                                   │ Down, Draining
//!                                                   ▼
//! DNS query, join ───► steer(client, registry.edges(), policy) ─► nearest healthy edges
//! join request ──────► Placement::place(meeting, region, &registry) ─► edge      Placement::evict
//! meeting edges ─────► tree::Problem::new(nodes, &|a, b| registry.rtt_us(a, b) / 2)
//!                      tree::assign(&problem, &policy, previous) ─► tree
//!                      tree::next_update(&mut epoch, &old, &new) ─► TreeUpdate per changed edge
//! ```
//!
//! - [`registry`]: liveness (heartbeat 1 s, dead after 3 missed), load, RTT matrix with a
//!   great-circle fallback ([`geo`]).
//! - [`placement`]: bounded-load consistent hashing of meetings over a region's healthy edges.
//! - [`steer`]: the nearest edge that takes new clients, for DNS answers and the join API's
//!   region (steering picks a client's edge, placement a meeting's edge within a region).
//! - [`tree`]: the tree assigner, its repair and keep-or-replace policy, and diffs with epochs
//!   (design note: `docs/tree.md`).
//!
//! Everything that decides routing is deterministic: ordered maps and FNV-1a hashes, never
//! `std`'s randomly seeded hasher.

pub mod coordinator;
pub mod geo;
mod hash;
pub mod placement;
pub mod registry;
mod rtt;
pub mod steer;
pub mod tree;

pub use coordinator::Coordinator;
pub use geo::GeoPoint;
pub use placement::{PlaceError, Placement};
pub use registry::{Edge, EdgeState, Load, Registry, RegistryEvent, Status, UnknownEdge};
pub use steer::steer;
pub use tree::{Assignment, Problem, Tree};
