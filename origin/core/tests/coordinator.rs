//! The coordinator in virtual time: edges register, report presence and RTTs, die and come
//! back; the coordinator answers with peer lists and tree updates.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)] // a test picks its virtual epoch

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use origin_core::coordinator::{Config, Coordinator, Output, UNREACHABLE_US};
use relay_proto::{Control, EdgeId, EdgeInfo, Load, MeetingId, RttSample, TreeEpoch};

/// A tree as the coordinator announced it: meeting, epoch, links.
type Announced = (MeetingId, TreeEpoch, Vec<(EdgeId, EdgeId)>);

struct Harness {
    now: Instant,
    c: Coordinator,
    /// What each edge was sent, in order.
    inbox: BTreeMap<EdgeId, Vec<Control>>,
    trees: Vec<Announced>,
}

fn edge(i: usize) -> EdgeId {
    format!("e{i}").parse().unwrap()
}

fn meeting() -> MeetingId {
    MeetingId::new("m").unwrap()
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        let cfg = Config {
            epoch_base: 1000,
            ..Config::default()
        };
        Harness {
            now,
            c: Coordinator::new(cfg, now),
            inbox: BTreeMap::new(),
            trees: Vec::new(),
        }
    }

    fn drain(&mut self) {
        loop {
            match self.c.poll_output() {
                Output::Send(to, msg) => self.inbox.entry(to).or_default().push(msg),
                Output::Tree {
                    meeting,
                    epoch,
                    links,
                } => self.trees.push((meeting, epoch, links)),
                Output::Timeout(_) => return,
            }
        }
    }

    fn msg(&mut self, from: usize, msg: Control) {
        self.c.handle_message(self.now, &edge(from), msg);
        self.drain();
    }

    fn register(&mut self, i: usize) {
        self.c.handle_connected(self.now, &edge(i));
        let addr: SocketAddr = format!("127.0.{i}.1:7890").parse().unwrap();
        self.msg(
            i,
            Control::Register(EdgeInfo {
                id: edge(i),
                region: "r".parse().unwrap(),
                lat_e6: 50_000_000,
                lon_e6: i as i32 * 1_000_000,
                relay_addr: addr,
                http_url: format!("http://127.0.{i}.1:7880"),
                capacity: 100,
            }),
        );
    }

    fn heartbeat_all(&mut self, edges: &[usize]) {
        for &i in edges {
            self.msg(i, Control::Heartbeat(Load::default()));
        }
    }

    /// Full mesh of RTT reports with `rtt(a, b)` microseconds.
    fn rtts(&mut self, edges: &[usize], rtt: impl Fn(usize, usize) -> u32) {
        for &a in edges {
            let samples = edges
                .iter()
                .filter(|b| **b != a)
                .map(|&b| RttSample {
                    peer: edge(b),
                    rtt_us: rtt(a, b),
                })
                .collect();
            self.msg(a, Control::RttReport(samples));
        }
    }

    fn presence(&mut self, at: usize, participants: u32) {
        self.msg(
            at,
            Control::Presence {
                meeting: meeting(),
                participants,
                publishers: participants.min(1),
            },
        );
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.c.handle_timeout(self.now);
        self.drain();
    }

    /// The last tree update edge `i` received for the meeting.
    fn neighbours_of(&self, i: usize) -> Option<(TreeEpoch, Vec<EdgeId>)> {
        self.inbox
            .get(&edge(i))?
            .iter()
            .rev()
            .find_map(|m| match m {
                Control::TreeUpdate(u) => Some((u.epoch, u.neighbours.clone())),
                _ => None,
            })
    }

    fn tree_updates(&self, i: usize) -> usize {
        self.inbox.get(&edge(i)).map_or(0, |v| {
            v.iter()
                .filter(|m| matches!(m, Control::TreeUpdate(_)))
                .count()
        })
    }
}

#[test]
fn registered_edges_learn_each_other() {
    let mut h = Harness::new();
    for i in 0..3 {
        h.register(i);
    }
    let last_peers = |i: usize| {
        h.inbox[&edge(i)]
            .iter()
            .rev()
            .find_map(|m| match m {
                Control::Peers(p) => Some(p.len()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!([last_peers(0), last_peers(1), last_peers(2)], [3, 3, 3]);
}

#[test]
fn a_registration_naming_another_edge_is_refused() {
    let mut h = Harness::new();
    h.c.handle_connected(h.now, &edge(1));
    let mut info = EdgeInfo {
        id: edge(2),
        region: "r".parse().unwrap(),
        lat_e6: 0,
        lon_e6: 0,
        relay_addr: "127.0.0.1:1".parse().unwrap(),
        http_url: "http://x".into(),
        capacity: 1,
    };
    h.msg(1, Control::Register(info.clone()));
    assert_eq!(h.c.stats().refused_registrations, 1);
    assert!(h.c.registry().edge(&edge(2)).is_none());
    info.id = edge(1);
    info.lat_e6 = 95_000_000; // not a latitude
    h.msg(1, Control::Register(info));
    assert_eq!(h.c.stats().refused_registrations, 2);
}

#[test]
fn presence_builds_the_tree_and_changes_go_only_where_needed() {
    let mut h = Harness::new();
    let all = [0, 1, 2];
    for i in all {
        h.register(i);
    }
    h.rtts(&all, |_, _| 20_000);
    h.presence(0, 2);
    assert!(h.neighbours_of(0).is_none(), "one edge needs no tree");
    h.presence(1, 1);
    let (e0, n0) = h.neighbours_of(0).unwrap();
    let (e1, n1) = h.neighbours_of(1).unwrap();
    assert_eq!((n0, n1), (vec![edge(1)], vec![edge(0)]));
    assert_eq!(e0, TreeEpoch(1000));
    assert_eq!(e0, e1);
    assert!(
        h.neighbours_of(2).is_none(),
        "no relay needed for two edges"
    );
    // A third edge joins: one more link; edges whose neighbours did not change hear nothing.
    h.presence(2, 1);
    let (epoch, _) = h.neighbours_of(2).unwrap();
    assert_eq!(epoch, TreeEpoch(1001));
    let (_, _, links) = h.trees.last().unwrap();
    assert_eq!(links.len(), 2, "three edges, two links: {links:?}");
    let told = (0..3)
        .filter(|i| h.neighbours_of(*i).map(|(e, _)| e) == Some(epoch))
        .count();
    assert_eq!(told, 2, "only the two ends of the new link are told");
    // Participant counts changing on an edge already in the tree change nothing.
    let before = h.c.stats().tree_updates_sent;
    h.presence(2, 5);
    assert_eq!(h.c.stats().tree_updates_sent, before);
}

#[test]
fn an_unreachable_tree_link_is_routed_around_at_once() {
    let mut h = Harness::new();
    let all = [0, 1, 2];
    for i in all {
        h.register(i);
    }
    // 0 is far from 2, so the tree is the line 0 - 1 - 2... or uses 0-1 in any case.
    h.rtts(
        &all,
        |a, b| if a + b == 2 && a != b { 80_000 } else { 20_000 },
    );
    for i in all {
        h.presence(i, 1);
    }
    let (_, _, links) = h.trees.last().unwrap().clone();
    assert!(links.contains(&(edge(0), edge(1))), "{links:?}");
    // Edge 0 reports edge 1 unreachable: the tree must drop 0-1 now, not at the next round.
    h.msg(
        0,
        Control::RttReport(vec![
            RttSample {
                peer: edge(1),
                rtt_us: u32::MAX,
            },
            RttSample {
                peer: edge(2),
                rtt_us: 80_000,
            },
        ]),
    );
    let (_, _, links) = h.trees.last().unwrap().clone();
    assert!(!links.contains(&(edge(0), edge(1))), "{links:?}");
    assert_eq!(links.len(), 2);
    assert!(h.c.stats().unreachable_reports >= 1);
    // And no flapping: the next rounds keep that tree while nothing changes.
    let recomputed = h.trees.len();
    for _ in 0..4 {
        h.heartbeat_all(&all);
        h.advance(Duration::from_millis(900));
    }
    h.heartbeat_all(&all);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.trees.len(), recomputed, "{:?}", h.trees.last());
    let _ = UNREACHABLE_US;
}

#[test]
fn a_silent_edge_is_declared_dead_and_its_trees_repaired() {
    let mut h = Harness::new();
    let all = [0, 1, 2];
    for i in all {
        h.register(i);
    }
    h.rtts(&all, |_, _| 20_000);
    for i in all {
        h.presence(i, 1);
    }
    // Edges 0 and 2 keep heartbeating; 1 goes silent.
    for _ in 0..4 {
        h.heartbeat_all(&[0, 2]);
        h.advance(Duration::from_millis(900));
    }
    let dead = h.c.registry().edge(&edge(1)).unwrap().status;
    assert_eq!(dead, origin_core::Status::Dead);
    let (_, _, links) = h.trees.last().unwrap().clone();
    assert_eq!(
        links,
        vec![(edge(0), edge(2))],
        "repaired around the dead edge"
    );
    assert!(h.c.presence(&meeting()).unwrap().get(&edge(1)).is_none());
}

#[test]
fn a_returning_edge_gets_its_neighbours_again_and_empty_edges_leave() {
    let mut h = Harness::new();
    for i in [0, 1] {
        h.register(i);
    }
    h.rtts(&[0, 1], |_, _| 20_000);
    h.presence(0, 1);
    h.presence(1, 1);
    let before = h.tree_updates(1);
    // Edge 1's control link blips; it reconnects and registers again.
    h.c.handle_disconnect(h.now, &edge(1));
    h.drain();
    h.register(1);
    h.presence(1, 1);
    assert!(h.tree_updates(1) > before, "told its neighbours again");
    assert_eq!(h.neighbours_of(1).unwrap().1, vec![edge(0)]);
    // Its last participant leaves: it is pruned, and so is the now single-edge tree.
    h.presence(1, 0);
    assert_eq!(h.neighbours_of(1).unwrap().1, Vec::<EdgeId>::new());
    assert_eq!(h.neighbours_of(0).unwrap().1, Vec::<EdgeId>::new());
}
