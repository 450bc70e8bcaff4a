//! What the DNS answers from: a copy of the registry's edges, swapped in whole.
//!
//! The query path must never wait on the control plane (DESIGN.md §3), so it does not take
//! the coordinator's lock. A refresh task copies the registry every [`REFRESH`] into a
//! [`Snapshot`] and publishes it through an `ArcSwap`; each query loads the current one
//! without locking. An edge whose last heartbeat is older than the registry's dead-after
//! bound counts as dead in the copy even before the registry's own timer has said so, so a
//! silent edge leaves the answers at most [`REFRESH`] after the registry would declare it
//! dead, wherever the registry's timer stands.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use origin_core::{EdgeState, Status};

use super::stats::Stats;

/// How often the snapshot is rebuilt.
pub const REFRESH: Duration = Duration::from_millis(250);

/// One edge as the DNS sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub state: EdgeState,
    /// Its address for A answers.
    pub v4: Option<Ipv4Addr>,
    /// Its address for AAAA answers.
    pub v6: Option<Ipv6Addr>,
    /// Its region's index in the answer counters ([`Stats::region_index`]).
    pub region_index: usize,
}

impl AsRef<EdgeState> for Target {
    fn as_ref(&self) -> &EdgeState {
        &self.state
    }
}

/// The edges at one moment, with the names they answer to.
#[derive(Debug, Default)]
pub struct Snapshot {
    targets: Vec<Target>,
    /// Lower-cased edge id → index in `targets`; dead edges have no name.
    by_name: BTreeMap<String, usize>,
    /// Names that exist only because an edge id with dots has names below them.
    empty_non_terminals: BTreeSet<String>,
}

impl Snapshot {
    /// Copies `edges` as of `now`: an edge silent for `dead_after` or longer is dead.
    pub fn build<'a>(
        now: Instant,
        edges: impl IntoIterator<Item = &'a EdgeState>,
        dead_after: Duration,
        stats: &Stats,
    ) -> Snapshot {
        let mut s = Snapshot::default();
        for state in edges {
            let mut state = state.clone();
            if state.status != Status::Dead && state.last_heard + dead_after <= now {
                state.status = Status::Dead;
            }
            let ip = address(&state);
            let target = Target {
                v4: ip.and_then(|ip| match ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(v6) => v6.to_ipv4_mapped(),
                }),
                v6: ip.and_then(|ip| match ip {
                    IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => Some(v6),
                    _ => None,
                }),
                region_index: stats.region_index(&state.edge.region),
                state,
            };
            if target.state.status != Status::Dead {
                let name = target.state.edge.id.as_str().to_ascii_lowercase();
                let mut rest = name.as_str();
                while let Some((_, parent)) = rest.split_once('.') {
                    s.empty_non_terminals.insert(parent.to_owned());
                    rest = parent;
                }
                // Of two ids differing only in case, the first in id order keeps the name.
                s.by_name.entry(name).or_insert(s.targets.len());
            }
            s.targets.push(target);
        }
        s
    }

    /// Every edge, dead ones included.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The live (or draining) edge whose id is `name`, compared without case.
    pub fn edge_named(&self, name: &str) -> Option<&Target> {
        self.by_name.get(name).map(|i| &self.targets[*i])
    }

    /// Whether `name` has edge names below it (but is none itself).
    pub fn is_empty_non_terminal(&self, name: &str) -> bool {
        self.empty_non_terminals.contains(name)
    }
}

/// The edge's address: the host of its HTTP URL when that is an IP literal (what `arbor up`
/// and most single-host edges register), else the IP of its relay address unless that is
/// unspecified. `None`: the edge cannot be answered with an address.
pub fn address(state: &EdgeState) -> Option<IpAddr> {
    url_ip(&state.edge.http_url).or_else(|| {
        let ip = state.edge.relay_addr.ip();
        (!ip.is_unspecified()).then_some(ip)
    })
}

/// The host of `scheme://[user@]host[:port][/…]` if it is an IP literal.
fn url_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split_once(']')?.0.parse().ok();
    }
    host.split(':').next()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real Instant as the time base
mod tests {
    use origin_core::registry::{Config, Edge, Registry};
    use origin_core::{GeoPoint, Load};
    use relay_proto::{EdgeId, RegionId};

    use super::*;

    #[test]
    fn addresses_come_from_the_url_or_the_relay_address() {
        assert_eq!(url_ip("http://127.0.1.1:7880"), "127.0.1.1".parse().ok());
        assert_eq!(
            url_ip("https://[2001:db8::7]:443/x"),
            "2001:db8::7".parse().ok()
        );
        assert_eq!(url_ip("http://u:p@192.0.2.1/"), "192.0.2.1".parse().ok());
        assert_eq!(url_ip("https://edge.example"), None);
        assert_eq!(url_ip("http://[::1"), None);
        assert_eq!(url_ip(""), None);
    }

    #[test]
    fn silent_edges_are_dead_and_lose_their_names() {
        let t0 = Instant::now();
        let mut r = Registry::new(Config::default());
        let edge = |id: &str, url: &str, relay: &str| Edge {
            id: EdgeId::new(id).unwrap(),
            region: RegionId::new("eu").unwrap(),
            location: GeoPoint::new(1.0, 2.0).unwrap(),
            relay_addr: relay.parse().unwrap(),
            http_url: url.to_owned(),
            capacity: 10,
        };
        r.handle_register(t0, edge("Fra-1", "https://fra.example", "192.0.2.1:7890"))
            .unwrap();
        r.handle_register(t0, edge("a.b.c", "http://[2001:db8::1]:80", "0.0.0.0:7890"))
            .unwrap();
        r.handle_register(t0, edge("gone", "https://gone.example", "0.0.0.0:1"))
            .unwrap();
        let later = t0 + Duration::from_secs(3);
        r.handle_heartbeat(later, &EdgeId::new("Fra-1").unwrap(), Load::default())
            .unwrap();
        r.handle_heartbeat(later, &EdgeId::new("a.b.c").unwrap(), Load::default())
            .unwrap();
        let stats = Stats::new(&[RegionId::new("eu").unwrap()]);
        let s = Snapshot::build(later, r.edges(), Duration::from_secs(3), &stats);
        let fra = s.edge_named("fra-1").unwrap();
        assert_eq!(fra.v4, "192.0.2.1".parse().ok());
        assert_eq!((fra.v6, fra.region_index), (None, 0));
        let abc = s.edge_named("a.b.c").unwrap();
        assert_eq!((abc.v4, abc.v6), (None, "2001:db8::1".parse().ok()));
        assert!(s.is_empty_non_terminal("b.c") && s.is_empty_non_terminal("c"));
        assert!(!s.is_empty_non_terminal("a.b.c"));
        // Silent since t0: dead in the copy, though the registry has not run its timer.
        assert!(s.edge_named("gone").is_none());
        assert_eq!(s.targets().len(), 3);
        assert_eq!(s.targets()[2].state.edge.id.as_str(), "gone");
        assert_eq!(s.targets()[2].state.status, Status::Dead);
        assert_eq!(s.targets()[2].v4, None, "no address to give");
    }
}
