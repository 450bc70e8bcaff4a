//! The scenarios the simulator runs, as plain data: regions and the round-trip times between
//! them, edges, participants with their publish and subscribe roles, link impairments with
//! their schedule, and what the oracles expect.
//!
//! All four share one geography (the issue's "three regions at 40/80/150 ms RTT"):
//!
//! ```text
//!            us-east ── 40 ms ── us-central
//!               │                /
//!             80 ms        150 ms
//!               │          /
//!            eu-west ─────
//! ```
//!
//! The 150 ms side is longer than the two others together (120 ms), so the best tree over
//! one edge per region is the star around us-east, and a tree that had to use the long side
//! is measurably worse: the tree oracle and the latency oracle both see it. Edges of the same
//! region are 2 ms apart; clients are 10 ms (one way) from their edge, on clean access links;
//! the origin is in us-east. Coordinates are the data centres' (they feed the origin's geo fallback), but the
//! RTTs are the scenario's, not derived from distance.

use std::time::Duration;

use arbor_loadgen::{LayerSpec, VideoConfig};
use edge_core::signal::Kind;

use crate::link::{LinkConfig, Loss};

/// A region: where edges (and the origin) stand.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub id: &'static str,
    pub lat: f64,
    pub lon: f64,
}

/// One edge of the mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeSpec {
    pub id: String,
    /// Index into [`Scenario::regions`].
    pub region: usize,
}

/// What a participant receives: one slot bound to one publisher's track of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Index into [`Scenario::participants`] of the publisher.
    pub publisher: usize,
    pub kind: Kind,
    /// Largest video height asked for (ignored for audio).
    pub max_height: u32,
}

/// One synthetic participant.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantSpec {
    pub name: String,
    /// Index into [`Scenario::edges`] of the edge it joins (DNS steering's answer).
    pub edge: usize,
    /// Publishes the simulcast camera ([`Scenario::video`]).
    pub video: bool,
    /// Publishes a microphone.
    pub audio: bool,
    pub subscribe: Vec<Subscription>,
}

/// A change to a backbone link between two edges (both directions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Impairment {
    /// Media datagrams on the link are lost by this model from now on.
    Loss { a: usize, b: usize, loss: Loss },
    /// The link is cut: nothing crosses it.
    Partition { a: usize, b: usize },
    /// A cut link works again.
    Heal { a: usize, b: usize },
}

/// An impairment and when it happens (from the start of the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    pub at: Duration,
    pub what: Impairment,
}

/// What the oracles hold a run of this scenario to.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Least fraction of the expected frames each subscription renders in the measurement
    /// window.
    pub min_rendered: f64,
    /// Delivered latency may exceed the tree-path latency (plus the links' jitter) by this
    /// much at most, for every frame.
    pub latency_slack: Duration,
    /// The mean delivered latency may exceed the tree-path latency by this much at most.
    pub mean_latency_slack: Duration,
    /// Every subscription renders again within this of a partition's start (DESIGN.md §5:
    /// media back within 1 s), and pauses no longer than this anywhere in the window.
    pub recovery_bound: Duration,
    /// Whether every subscriber must see every packet in order (no hole reached a client):
    /// true where no partition cuts a path.
    pub contiguous: bool,
    /// The tree the run must end with, as pairs of edge indices (any order), if the scenario
    /// fixes it.
    pub final_tree: Option<Vec<(usize, usize)>>,
    /// Most tree changes the coordinator may make in the whole run (no flapping).
    pub max_tree_changes: usize,
}

/// A whole scenario. See the module docs for the geography.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    pub regions: Vec<Region>,
    /// Round-trip times between regions (by index), milliseconds; symmetric.
    pub region_rtt_ms: Vec<(usize, usize, u64)>,
    /// Round-trip time between two edges of the same region (and an edge and the origin there).
    pub local_rtt_ms: u64,
    /// Index into `regions` of the origin.
    pub origin_region: usize,
    pub edges: Vec<EdgeSpec>,
    pub participants: Vec<ParticipantSpec>,
    /// Every participant's access link (each direction), client to its edge.
    pub access: LinkConfig,
    /// The camera every video publisher runs.
    pub video: VideoConfig,
    /// When the first participant joins; the others follow `join_spacing` apart.
    pub first_join: Duration,
    pub join_spacing: Duration,
    /// Start of the window in which frames are counted and latency is judged.
    pub measure_from: Duration,
    /// Length of the run.
    pub duration: Duration,
    pub impairments: Vec<Scheduled>,
    pub expect: Expect,
}

impl Scenario {
    /// The scenario called `name`, if there is one.
    pub fn by_name(name: &str) -> Option<Scenario> {
        all().into_iter().find(|s| s.name == name)
    }

    /// Round-trip time between edges `a` and `b`.
    pub fn edge_rtt(&self, a: usize, b: usize) -> Duration {
        self.region_rtt(self.edges[a].region, self.edges[b].region)
    }

    /// Round-trip time between two regions (the local RTT within one).
    pub fn region_rtt(&self, a: usize, b: usize) -> Duration {
        if a == b {
            return Duration::from_millis(self.local_rtt_ms);
        }
        let ms = self
            .region_rtt_ms
            .iter()
            .find(|(x, y, _)| (*x, *y) == (a, b) || (*x, *y) == (b, a))
            .map_or(1000, |(_, _, ms)| *ms);
        Duration::from_millis(ms)
    }

    /// The link between edges `a` and `b` (each direction): half the RTT, 5 % jitter, no loss.
    pub fn backbone(&self, a: usize, b: usize) -> LinkConfig {
        let one_way = self.edge_rtt(a, b) / 2;
        LinkConfig {
            delay: one_way,
            jitter: one_way / 20,
            ..LinkConfig::ideal()
        }
    }

    /// Frames per second of a subscription's kind (Opus-like audio: 50 frames of 20 ms).
    pub fn fps(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Audio => 50,
            Kind::Video => self.video.fps,
        }
    }

    /// Index of the edge called `id`.
    pub fn edge_index(&self, id: &str) -> Option<usize> {
        self.edges.iter().position(|e| e.id == id)
    }
}

/// Every scenario, in the order CI runs them.
pub fn all() -> Vec<Scenario> {
    vec![three_regions(), meeting_30(), lossy_backbone(), partition()]
}

const US_EAST: usize = 0;
const US_CENTRAL: usize = 1;
const EU_WEST: usize = 2;

fn regions() -> Vec<Region> {
    vec![
        Region {
            id: "us-east",
            lat: 39.04,
            lon: -77.49,
        },
        Region {
            id: "us-central",
            lat: 41.26,
            lon: -95.86,
        },
        Region {
            id: "eu-west",
            lat: 53.35,
            lon: -6.26,
        },
    ]
}

/// A light simulcast camera, so a debug build can run thirty participants: the browser's
/// three layers (`q` 320x180, `h` 640x360, `f` 1280x720) at 15 fps and a third of the usual
/// rates (80, 250 and 600 kbit/s), a keyframe every 3 s.
pub fn light_camera() -> VideoConfig {
    VideoConfig {
        layers: vec![
            LayerSpec::new("q", 320, 180, 80_000),
            LayerSpec::new("h", 640, 360, 250_000),
            LayerSpec::new("f", 1280, 720, 600_000),
        ],
        fps: 15,
        ..VideoConfig::default()
    }
}

/// The access link: 10 ms each way, nothing else. The scenarios impair the backbone, whose
/// repair and re-routing are what they test. (With [`rough_access`] instead, the edges'
/// downlink bandwidth estimates dip and their pacers queue media: see
/// `docs/simulation.md`.)
pub fn access() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(10),
        ..LinkConfig::ideal()
    }
}

/// A rougher access link: 10 ms ± 0.5 ms each way and a 20 Mbit/s bottleneck.
pub fn rough_access() -> LinkConfig {
    LinkConfig::wan(10).with_rate(20_000_000, crate::link::DEFAULT_QUEUE_BYTES)
}

fn edge(id: &str, region: usize) -> EdgeSpec {
    EdgeSpec {
        id: id.to_string(),
        region,
    }
}

fn video(publisher: usize, max_height: u32) -> Subscription {
    Subscription {
        publisher,
        kind: Kind::Video,
        max_height,
    }
}

fn audio(publisher: usize) -> Subscription {
    Subscription {
        publisher,
        kind: Kind::Audio,
        max_height: 0,
    }
}

/// One edge per region; in each, a presenter (camera + microphone) who watches and hears the
/// two other presenters, and a viewer who watches all three presenters (360p) and hears the
/// presenter of the next edge.
fn three_presenters() -> (Vec<EdgeSpec>, Vec<ParticipantSpec>) {
    let edges = vec![
        edge("use-1", US_EAST),
        edge("usc-1", US_CENTRAL),
        edge("euw-1", EU_WEST),
    ];
    let mut participants = Vec::new();
    for (e, spec) in edges.iter().enumerate() {
        let others: Vec<usize> = (0..3).filter(|o| *o != e).map(|o| 2 * o).collect();
        participants.push(ParticipantSpec {
            name: format!("presenter-{}", spec.id),
            edge: e,
            video: true,
            audio: true,
            subscribe: others
                .iter()
                .flat_map(|&p| [video(p, 360), audio(p)])
                .collect(),
        });
        participants.push(ParticipantSpec {
            name: format!("viewer-{}", spec.id),
            edge: e,
            video: false,
            audio: false,
            subscribe: vec![
                video(0, 360),
                video(2, 360),
                video(4, 360),
                audio(2 * ((e + 1) % 3)),
            ],
        });
    }
    (edges, participants)
}

fn base(name: &'static str, edges: Vec<EdgeSpec>, participants: Vec<ParticipantSpec>) -> Scenario {
    Scenario {
        name,
        regions: regions(),
        region_rtt_ms: vec![
            (US_EAST, US_CENTRAL, 40),
            (US_EAST, EU_WEST, 80),
            (US_CENTRAL, EU_WEST, 150),
        ],
        local_rtt_ms: 2,
        origin_region: US_EAST,
        edges,
        participants,
        access: access(),
        video: light_camera(),
        first_join: Duration::from_secs(2),
        join_spacing: Duration::from_millis(50),
        measure_from: Duration::from_secs(5),
        duration: Duration::from_secs(9),
        impairments: Vec::new(),
        expect: Expect {
            min_rendered: 0.95,
            latency_slack: Duration::from_millis(50),
            mean_latency_slack: Duration::from_millis(25),
            recovery_bound: Duration::from_secs(1),
            contiguous: true,
            final_tree: None,
            max_tree_changes: 0,
        },
    }
}

/// Three regions at 40/80/150 ms RTT, one edge each, two participants per edge
/// ([`three_presenters`]). The tree must be the star around us-east: us-central and eu-west
/// reach each other through it (120 ms) rather than over their 150 ms link.
pub fn three_regions() -> Scenario {
    let (edges, participants) = three_presenters();
    let mut s = base("three_regions", edges, participants);
    s.expect.final_tree = Some(vec![(0, 1), (0, 2)]);
    // One change per edge that comes to host the meeting.
    s.expect.max_tree_changes = 3;
    s
}

/// A 30-participant meeting over five edges (us-east ×2, us-central ×1, eu-west ×2), six
/// participants per edge. Six publish the camera (the first participant of each edge, plus
/// the second one on the first edge); all thirty publish a microphone. Participant `k`
/// watches three cameras (the next three video publishers after its own position, its own
/// skipped; one at 360p, two at 180p) and hears three others (`k+7`, `k+13`, `k+19` mod 30,
/// which lie on other edges). 90 video and 90 audio subscriptions.
pub fn meeting_30() -> Scenario {
    let edges = vec![
        edge("use-1", US_EAST),
        edge("use-2", US_EAST),
        edge("usc-1", US_CENTRAL),
        edge("euw-1", EU_WEST),
        edge("euw-2", EU_WEST),
    ];
    let per_edge = 6;
    let n = edges.len() * per_edge;
    let publishers: Vec<usize> = (0..n).filter(|k| k % per_edge == 0 || *k == 1).collect();
    let participants = (0..n)
        .map(|k| {
            // The next three video publishers after `k`, wrapping, itself skipped.
            let start = publishers.iter().position(|p| *p > k).unwrap_or(0);
            let watch: Vec<usize> = (0..publishers.len())
                .map(|i| publishers[(start + i) % publishers.len()])
                .filter(|p| *p != k)
                .take(3)
                .collect();
            let mut subscribe: Vec<Subscription> = watch
                .iter()
                .enumerate()
                .map(|(i, &p)| video(p, if i == 0 { 360 } else { 180 }))
                .collect();
            subscribe.extend([7, 13, 19].map(|d| audio((k + d) % n)));
            ParticipantSpec {
                name: format!("p{k:02}"),
                edge: k / per_edge,
                video: publishers.contains(&k),
                audio: true,
                subscribe,
            }
        })
        .collect();
    let mut s = base("meeting_30", edges, participants);
    s.join_spacing = Duration::from_millis(40);
    s.measure_from = Duration::from_secs(6);
    s.duration = Duration::from_secs(12);
    // The star around use-1, with euw-2 behind euw-1 (2 ms) rather than across the ocean.
    s.expect.final_tree = Some(vec![(0, 1), (0, 2), (0, 3), (3, 4)]);
    // The five edges come one by one; the tree may change with each, and once when RTTs
    // settle.
    s.expect.max_tree_changes = 6;
    s
}

/// The three-region meeting with 2 % random loss on the us-east ↔ eu-west backbone link
/// (both directions) from t = 4 s: the hop repairs it, so eu-west's viewers still render
/// nearly every frame, at the price of a retransmission's delay on repaired frames.
pub fn lossy_backbone() -> Scenario {
    let (edges, participants) = three_presenters();
    let mut s = base("lossy_backbone", edges, participants);
    s.impairments = vec![Scheduled {
        at: Duration::from_secs(4),
        what: Impairment::Loss {
            a: 0,
            b: 2,
            loss: Loss::Random(0.02),
        },
    }];
    s.duration = Duration::from_secs(12);
    s.expect.final_tree = Some(vec![(0, 1), (0, 2)]);
    s.expect.max_tree_changes = 3;
    s.expect.min_rendered = 0.97;
    // A repaired frame waits for a NACK and its retransmission over the lossy hop (80 ms
    // RTT), twice if the retransmission is lost too; the frames behind it wait with it.
    s.expect.latency_slack = Duration::from_millis(250);
    s.expect.mean_latency_slack = Duration::from_millis(35);
    s
}

/// The three-region meeting, cut between us-east and eu-west (a link of the tree) at t = 6 s
/// for 5 s, longer than the relay session's 3 s idle timeout, so the link goes down and comes
/// back. The origin must re-route eu-west through us-central within a second, without any
/// client reconnecting; after the heal the tree may go back to the star.
pub fn partition() -> Scenario {
    let (edges, participants) = three_presenters();
    let mut s = base("partition", edges, participants);
    s.impairments = vec![
        Scheduled {
            at: Duration::from_secs(6),
            what: Impairment::Partition { a: 0, b: 2 },
        },
        Scheduled {
            at: Duration::from_secs(11),
            what: Impairment::Heal { a: 0, b: 2 },
        },
    ];
    s.duration = Duration::from_secs(18);
    s.expect.contiguous = false;
    // Frames lost while the route is re-built (under a second of a 13 s window).
    s.expect.min_rendered = 0.85;
    // The re-route and, after the heal, perhaps the way back.
    s.expect.max_tree_changes = 5;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thirty_participant_meeting_has_the_stated_shape() {
        let s = meeting_30();
        assert_eq!(s.participants.len(), 30);
        assert_eq!(s.participants.iter().filter(|p| p.video).count(), 6);
        for (k, p) in s.participants.iter().enumerate() {
            let videos: Vec<usize> = p
                .subscribe
                .iter()
                .filter(|x| x.kind == Kind::Video)
                .map(|x| x.publisher)
                .collect();
            assert_eq!(videos.len(), 3, "{k}: {videos:?}");
            assert!(!videos.contains(&k), "{k} watches itself");
            assert!(videos.iter().all(|v| s.participants[*v].video));
            let audios = p.subscribe.iter().filter(|x| x.kind == Kind::Audio);
            for a in audios {
                assert_ne!(
                    s.participants[a.publisher].edge, p.edge,
                    "{k} hears a neighbour"
                );
            }
        }
    }

    #[test]
    fn subscriptions_name_publishers_of_their_kind() {
        for s in all() {
            for p in &s.participants {
                for sub in &p.subscribe {
                    let publisher = &s.participants[sub.publisher];
                    let publishes = match sub.kind {
                        Kind::Video => publisher.video,
                        Kind::Audio => publisher.audio,
                    };
                    assert!(publishes, "{}: {} -> {}", s.name, p.name, publisher.name);
                }
            }
        }
    }
}
