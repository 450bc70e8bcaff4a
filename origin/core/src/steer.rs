//! Which edge a client should use: the nearest edge that may take it.
//!
//! [`steer`] is the one steering decision of the origin, and a pure function of its inputs:
//! the DNS server calls it to answer `edge.<zone>` (with the location of the EDNS client
//! subnet or of the resolver), and the join API calls it with the location of the caller's
//! address. Same inputs, same answer, whoever asks.
//!
//! ```text
//! client address ─► MaxMind lookup ─► Client { location, key } ─┐
//! registry edges (or a snapshot of them) ───────────────────────┼─► steer ─► nearest first
//! Policy { cpu_limit_permille, home } ──────────────────────────┘
//! ```
//!
//! # Steering and placement
//!
//! Steering chooses the **client's** edge: the nearest one that may take new clients, from
//! where the client is and nothing else. [`Placement`](crate::Placement) chooses the
//! **meeting's** edge inside one region, so that every participant of a meeting in that region
//! meets on one edge and the meeting crosses the backbone once per region. The join API uses
//! both: steering names the nearest edge, whose *region* the join goes to, and placement picks
//! the meeting's edge in that region. DNS has no meeting to go by, so it answers steering's
//! choice alone; the client's edge then asks the origin where the meeting lives
//! (`PlaceRequest`) and the cascade carries the media between regions.
//!
//! # Rules
//!
//! - Eligible: [`Status::Alive`] (dead and draining edges are skipped) and not overloaded:
//!   CPU under [`Policy::cpu_limit_permille`] (placement's threshold) and fewer participants
//!   than the edge's capacity (the edge's `backbone.capacity` counts participants).
//! - Located client: nearest first by great-circle distance, measured in [`TIE_KM`] steps so
//!   that the edges of one metro area count as equally near. Equally near edges are ordered
//!   by a rendezvous hash of the client's key and the edge's id (FNV-1a): each client (each
//!   subnet) always gets the same edge, and different clients spread over all of them.
//! - Client of unknown location (no database, or an address it does not list): the edges of
//!   [`Policy::home`] first (the region a join naming none goes to), then all others, each
//!   group in rendezvous order. Nothing is known about distance, so the answer follows the
//!   join API's default rather than guessing.
//!
//! The cost is one distance and one hash per edge, and no allocation beyond the answer.

use relay_proto::RegionId;

use crate::geo::{GeoPoint, distance_km};
use crate::hash::{Fnv, mix};
use crate::registry::{EdgeState, Status};

/// Most edges one call returns.
pub const MAX_STEERED: usize = 8;

/// Distances are compared in steps of this many kilometres: edges of one metro area are
/// equally near and share its clients.
pub const TIE_KM: f64 = 25.0;

/// What steering needs to know besides the edges.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Edges reporting this much CPU or more take no new clients (placement's threshold).
    pub cpu_limit_permille: u16,
    /// Where clients of unknown location go first.
    pub home: Option<RegionId>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            cpu_limit_permille: crate::placement::Config::default().cpu_limit_permille,
            home: None,
        }
    }
}

/// The client being steered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Client<'a> {
    /// Where it is, if the address is in the database.
    pub location: Option<GeoPoint>,
    /// Bytes that identify it for tie-breaks, e.g. its subnet: the same key always gets the
    /// same edge among equally near ones.
    pub key: &'a [u8],
}

/// Whether the edge takes new clients: alive, not draining, not overloaded.
pub fn eligible(state: &EdgeState, policy: &Policy) -> bool {
    state.status == Status::Alive && !overloaded(state, policy)
}

/// CPU at or above the limit, or as many participants as its capacity.
pub fn overloaded(state: &EdgeState, policy: &Policy) -> bool {
    state.load.cpu_permille >= policy.cpu_limit_permille
        || state.load.participants >= state.edge.capacity
}

/// Up to `max` (at most [`MAX_STEERED`]) eligible edges, best first. See the module docs for
/// the order. The order of `edges` does not matter.
pub fn steer<'a, E: AsRef<EdgeState>>(
    client: &Client<'_>,
    edges: impl IntoIterator<Item = &'a E>,
    policy: &Policy,
    max: usize,
) -> Vec<&'a E> {
    let max = max.min(MAX_STEERED);
    let mut best: Vec<(Rank<'a>, &'a E)> = Vec::with_capacity(max + 1);
    if max == 0 {
        return Vec::new();
    }
    let prefix = Fnv::new().field(client.key);
    for e in edges {
        let state = e.as_ref();
        if !eligible(state, policy) {
            continue;
        }
        let rank = Rank {
            group: group(client, state, policy),
            weight: !mix(prefix.field(state.edge.id.as_str().as_bytes()).finish()),
            id: state.edge.id.as_str(),
        };
        if best.len() == max && best.last().is_some_and(|(worst, _)| rank >= *worst) {
            continue;
        }
        let at = best.partition_point(|(r, _)| *r < rank);
        best.insert(at, (rank, e));
        best.truncate(max);
    }
    best.into_iter().map(|(_, e)| e).collect()
}

/// Sort key: lower is better. `weight` is the complement of the rendezvous hash, so the
/// highest hash wins; the id only separates hash collisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank<'a> {
    group: u32,
    weight: u64,
    id: &'a str,
}

/// The distance step for a located client; 0 (home) or 1 (elsewhere) otherwise.
fn group(client: &Client<'_>, state: &EdgeState, policy: &Policy) -> u32 {
    match client.location {
        // At most half the circumference: about 800 steps.
        Some(at) => (distance_km(at, state.edge.location) / TIE_KM) as u32,
        None => u32::from(policy.home.as_ref() != Some(&state.edge.region)),
    }
}

impl AsRef<EdgeState> for EdgeState {
    fn as_ref(&self) -> &EdgeState {
        self
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real Instant as the time base
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use proptest::prelude::*;
    use relay_proto::EdgeId;

    use super::*;
    use crate::registry::{Config, Edge, Load, Registry};

    fn p(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn edge(id: &str, region: &str, at: GeoPoint) -> Edge {
        Edge {
            id: EdgeId::new(id).unwrap(),
            region: RegionId::new(region).unwrap(),
            location: at,
            relay_addr: "127.0.0.1:4433".parse().unwrap(),
            http_url: format!("http://{id}.test"),
            capacity: 100,
        }
    }

    const PARIS: (f64, f64) = (48.86, 2.35);
    const ASHBURN: (f64, f64) = (39.04, -77.49);
    const SINGAPORE: (f64, f64) = (1.35, 103.82);

    /// eu-1 (Paris), us-1 (Ashburn), ap-1 (Singapore), as `arbor up` starts them.
    fn three_regions() -> (Registry, Instant) {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        for (id, region, (lat, lon)) in [
            ("eu-1", "eu-west", PARIS),
            ("us-1", "us-east", ASHBURN),
            ("ap-1", "ap-southeast", SINGAPORE),
        ] {
            r.handle_register(t0, edge(id, region, p(lat, lon)))
                .unwrap();
        }
        (r, t0)
    }

    fn ids(chosen: &[&EdgeState]) -> Vec<String> {
        chosen.iter().map(|s| s.edge.id.to_string()).collect()
    }

    fn steer_at(r: &Registry, at: Option<GeoPoint>, key: &[u8], policy: &Policy) -> Vec<String> {
        let client = Client { location: at, key };
        ids(&steer(&client, r.edges(), policy, MAX_STEERED))
    }

    #[test]
    fn each_region_gets_its_nearest_edge() {
        let (r, _) = three_regions();
        let policy = Policy::default();
        let london = p(51.51, -0.13);
        let new_york = p(40.71, -74.01);
        let tokyo = p(35.68, 139.69);
        assert_eq!(
            steer_at(&r, Some(london), b"a", &policy),
            ["eu-1", "us-1", "ap-1"]
        );
        assert_eq!(steer_at(&r, Some(new_york), b"a", &policy)[0], "us-1");
        assert_eq!(steer_at(&r, Some(tokyo), b"a", &policy)[0], "ap-1");
        let one = steer(
            &Client {
                location: Some(tokyo),
                key: b"a",
            },
            r.edges(),
            &policy,
            1,
        );
        assert_eq!(ids(&one), ["ap-1"]);
        assert!(
            steer(
                &Client {
                    location: None,
                    key: b""
                },
                r.edges(),
                &policy,
                0
            )
            .is_empty()
        );
    }

    #[test]
    fn dead_draining_and_overloaded_edges_are_skipped() {
        let (mut r, t0) = three_regions();
        let policy = Policy::default();
        let london = Some(p(51.51, -0.13));
        let eu = EdgeId::new("eu-1").unwrap();
        let us = EdgeId::new("us-1").unwrap();
        let draining = Load {
            draining: true,
            ..Load::default()
        };
        r.handle_heartbeat(t0, &eu, draining).unwrap();
        assert_eq!(steer_at(&r, london, b"a", &policy), ["us-1", "ap-1"]);
        // Back from draining, but its CPU is at the limit: still skipped.
        let hot = Load {
            cpu_permille: policy.cpu_limit_permille,
            ..Load::default()
        };
        r.handle_heartbeat(t0, &eu, hot).unwrap();
        assert_eq!(steer_at(&r, london, b"a", &policy), ["us-1", "ap-1"]);
        // As many participants as its capacity: full.
        let full = Load {
            participants: 100,
            ..Load::default()
        };
        r.handle_heartbeat(t0, &eu, full).unwrap();
        assert_eq!(steer_at(&r, london, b"a", &policy), ["us-1", "ap-1"]);
        r.handle_heartbeat(t0, &eu, Load::default()).unwrap();
        assert_eq!(steer_at(&r, london, b"a", &policy)[0], "eu-1");
        r.handle_disconnect(t0, &us);
        r.handle_disconnect(t0, &eu);
        assert_eq!(steer_at(&r, london, b"a", &policy), ["ap-1"]);
    }

    #[test]
    fn equally_near_edges_share_clients_and_each_client_sticks() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        // Three edges in one city, a few km apart: one distance step.
        for (i, lon) in [2.35, 2.40, 2.30].iter().enumerate() {
            let e = edge(&format!("par-{i}"), "eu-west", p(48.86, *lon));
            r.handle_register(t0, e).unwrap();
        }
        r.handle_register(t0, edge("fra-1", "eu-west", p(50.11, 8.68)))
            .unwrap();
        let policy = Policy::default();
        let client = Some(p(48.85, 2.35));
        let mut firsts: BTreeMap<String, u32> = BTreeMap::new();
        for n in 0..300u32 {
            let key = n.to_be_bytes();
            let answer = steer_at(&r, client, &key, &policy);
            assert_eq!(answer, steer_at(&r, client, &key, &policy), "sticky");
            assert_eq!(answer[3], "fra-1", "farther than every Paris edge");
            *firsts.entry(answer[0].clone()).or_default() += 1;
        }
        assert_eq!(firsts.len(), 3, "{firsts:?}");
        assert!(firsts.values().all(|n| *n > 60), "{firsts:?}");
    }

    #[test]
    fn unknown_location_goes_home_first() {
        let (r, _) = three_regions();
        let policy = Policy {
            home: Some(RegionId::new("us-east").unwrap()),
            ..Policy::default()
        };
        for n in 0..20u8 {
            let answer = steer_at(&r, None, &[n], &policy);
            assert_eq!(answer[0], "us-1");
            assert_eq!(answer.len(), 3);
        }
        // Without a home, every edge is a candidate for the first place.
        let firsts: std::collections::BTreeSet<String> = (0..64u8)
            .map(|n| steer_at(&r, None, &[n], &Policy::default())[0].clone())
            .collect();
        assert_eq!(firsts.len(), 3, "{firsts:?}");
    }

    /// One generated edge: region, location, and what happens to it.
    #[derive(Debug, Clone)]
    struct Gen {
        region: u8,
        lat: f64,
        lon: f64,
        fate: u8,
        cpu_permille: u16,
        participants: u32,
    }

    fn gen_edge() -> impl Strategy<Value = Gen> {
        (
            0u8..4,
            -90.0f64..=90.0,
            -180.0f64..=180.0,
            0u8..4,
            0u16..1000,
            0u32..150,
        )
            .prop_map(|(region, lat, lon, fate, cpu_permille, participants)| Gen {
                region,
                lat,
                lon,
                fate,
                cpu_permille,
                participants,
            })
    }

    /// A registry holding `edges`: fate 0 and 1 alive, 2 draining, 3 dead.
    fn registry_of(edges: &[Gen]) -> Registry {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        for (i, g) in edges.iter().enumerate() {
            let id = format!("e{i}");
            let e = edge(&id, &format!("r{}", g.region), p(g.lat, g.lon));
            r.handle_register(t0, e).unwrap();
            let id = EdgeId::new(&id).unwrap();
            let load = Load {
                participants: g.participants,
                meetings: 0,
                cpu_permille: g.cpu_permille,
                draining: g.fate == 2,
            };
            r.handle_heartbeat(t0, &id, load).unwrap();
            if g.fate == 3 {
                r.handle_disconnect(t0, &id);
            }
        }
        r
    }

    proptest! {
        #[test]
        fn answers_are_the_nearest_eligible_edges(
            edges in proptest::collection::vec(gen_edge(), 0..40),
            located in any::<bool>(),
            lat in -90.0f64..=90.0,
            lon in -180.0f64..=180.0,
            key in proptest::collection::vec(any::<u8>(), 0..8),
            max in 0usize..12,
            home in 0u8..5,
        ) {
            let r = registry_of(&edges);
            let policy = Policy {
                home: Some(RegionId::new(&format!("r{home}")).unwrap()),
                ..Policy::default()
            };
            let client = Client { location: located.then(|| p(lat, lon)), key: &key };
            let chosen = steer(&client, r.edges(), &policy, max);
            let eligible_count = r.edges().filter(|s| eligible(s, &policy)).count();
            prop_assert_eq!(chosen.len(), eligible_count.min(max).min(MAX_STEERED));
            prop_assert!(chosen.iter().all(|s| eligible(s, &policy)));
            // Best first, and nothing left out is better than the last answer.
            let groups: Vec<u32> = chosen.iter().map(|s| group(&client, s, &policy)).collect();
            prop_assert!(groups.windows(2).all(|w| w[0] <= w[1]), "{:?}", groups);
            if let Some(last) = groups.last() {
                for s in r.edges().filter(|s| eligible(s, &policy)) {
                    if !chosen.iter().any(|c| c.edge.id == s.edge.id) {
                        prop_assert!(group(&client, s, &policy) >= *last);
                    }
                }
            }
            // The edges' order does not matter.
            let mut reversed: Vec<&EdgeState> = r.edges().collect();
            reversed.reverse();
            let again = steer(&client, reversed, &policy, max);
            prop_assert_eq!(ids(&chosen), ids(&again));
        }
    }
}
