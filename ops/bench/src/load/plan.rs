//! Who joins where and watches whom: a pure function of the [`LoadSpec`], so a run is
//! reproducible and the plan is tested without sockets.

use std::net::IpAddr;
use std::time::Duration;

use arbor_loadgen::SrtpProfile;
use relay_proto::MeetingId;

/// Most video slots a synthetic subscriber opens (a gallery of 24 thumbnails plus a speaker).
pub const MAX_VIDEO_SLOTS: usize = 25;
/// Most participants one `arbor load` process drives.
pub const MAX_CLIENTS: usize = 5_000;

/// An edge clients can join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The edge's id, for the report.
    pub id: String,
    /// Its signaling WebSocket (`ws://host:port/v1/rtc`).
    pub ws_url: String,
}

/// The video a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Camera {
    /// Browser-like simulcast: `q` 320x180, `h` 640x360 and `f` 1280x720.
    Simulcast,
    /// One 640x360 layer without simulcast (what the side-by-side benchmarks send).
    Single,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub meeting: MeetingId,
    pub publishers: usize,
    pub subscribers: usize,
    pub camera: Camera,
    /// Edges (indices into the targets) publishers join, in turn.
    pub publisher_edges: Vec<usize>,
    /// Edges subscribers join, in turn.
    pub subscriber_edges: Vec<usize>,
    /// Video slots per subscriber; slot `k` of subscriber `i` watches publisher `(i + k) % P`.
    pub video_slots: usize,
    /// Audio slots per subscriber.
    pub audio_slots: usize,
    /// The tallest layer subscribers ask for (180, 360 or 720 picks `q`, `h` or `f`).
    pub max_height: u32,
    /// If set, video slots after the first ask for this height instead: a gallery of one
    /// large tile and thumbnails.
    pub thumbnail_height: Option<u32>,
    /// Whether subscribers subscribe their video slots; without, they join, connect and sit
    /// idle (the memory and join-cost benchmarks).
    pub subscribe: bool,
    /// Whether publishers talk (their audio level -20 dBov) or stay silent (-127 dBov). An SFU
    /// that forwards only the loudest speakers' audio, as Arbor does, forwards none of a
    /// silent publisher's; Janus forwards every publisher's audio either way.
    pub publishers_speak: bool,
    /// Subscriber joins started per second.
    pub join_rate_per_s: f64,
    /// How long to measure once everyone joined.
    pub duration: Duration,
    /// Address the clients' UDP sockets bind (their ICE host candidate).
    pub bind_ip: IpAddr,
    /// If set, clients close a session whose DTLS negotiated another SRTP profile (the
    /// benchmarks pin one on every side).
    pub srtp_profile: Option<SrtpProfile>,
}

/// One participant of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The token's identity: `pub-<n>` or `sub-<n>`.
    pub identity: String,
    /// Index of the edge to join.
    pub edge: usize,
    pub role: SeatRole,
}

/// What a participant does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatRole {
    /// Publishes the camera and a microphone; `n` numbers the publisher (its stamp source).
    Publisher { n: usize },
    /// Watches these publishers, one per video slot.
    Subscriber { watches: Vec<usize> },
}

/// Why a spec cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("no edges to join")]
    NoTargets,
    #[error("edge index {0} does not exist (the cluster has {1} edges)")]
    NoSuchEdge(usize, usize),
    #[error("{0} participants is more than one process drives (at most {MAX_CLIENTS})")]
    TooMany(usize),
    #[error("{slots} video slots per subscriber, but there are only {publishers} publishers")]
    MoreSlotsThanPublishers { slots: usize, publishers: usize },
    #[error("{0} video slots per subscriber is more than {MAX_VIDEO_SLOTS}")]
    TooManySlots(usize),
    #[error("the join rate must be a positive number of joins per second")]
    BadJoinRate,
    #[error("subscribers need at least one publisher to watch")]
    NothingToWatch,
}

/// The seats of `spec` over `targets` edges: publishers first, then subscribers.
pub fn plan(spec: &LoadSpec, targets: usize) -> Result<Vec<Seat>, PlanError> {
    check(spec, targets)?;
    let mut seats = Vec::with_capacity(spec.publishers + spec.subscribers);
    for n in 0..spec.publishers {
        seats.push(Seat {
            identity: format!("pub-{n}"),
            edge: spec.publisher_edges[n % spec.publisher_edges.len()],
            role: SeatRole::Publisher { n },
        });
    }
    for i in 0..spec.subscribers {
        let watches = (0..spec.video_slots)
            .map(|k| (i + k) % spec.publishers)
            .collect();
        seats.push(Seat {
            identity: format!("sub-{i}"),
            edge: spec.subscriber_edges[i % spec.subscriber_edges.len()],
            role: SeatRole::Subscriber { watches },
        });
    }
    Ok(seats)
}

fn check(spec: &LoadSpec, targets: usize) -> Result<(), PlanError> {
    if targets == 0 {
        return Err(PlanError::NoTargets);
    }
    let edges = spec.publisher_edges.iter().chain(&spec.subscriber_edges);
    if let Some(&bad) = edges.clone().find(|&&e| e >= targets) {
        return Err(PlanError::NoSuchEdge(bad, targets));
    }
    if spec.publisher_edges.is_empty() || spec.subscriber_edges.is_empty() {
        return Err(PlanError::NoTargets);
    }
    let total = spec.publishers + spec.subscribers;
    if total > MAX_CLIENTS {
        return Err(PlanError::TooMany(total));
    }
    if spec.video_slots > MAX_VIDEO_SLOTS {
        return Err(PlanError::TooManySlots(spec.video_slots));
    }
    if spec.subscribers > 0 && spec.publishers == 0 {
        return Err(PlanError::NothingToWatch);
    }
    if spec.video_slots > spec.publishers {
        return Err(PlanError::MoreSlotsThanPublishers {
            slots: spec.video_slots,
            publishers: spec.publishers,
        });
    }
    if !(spec.join_rate_per_s.is_finite() && spec.join_rate_per_s > 0.0) {
        return Err(PlanError::BadJoinRate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LoadSpec {
        LoadSpec {
            meeting: "load".parse().unwrap(),
            publishers: 3,
            subscribers: 5,
            camera: Camera::Simulcast,
            publisher_edges: vec![0],
            subscriber_edges: vec![0, 1, 2],
            video_slots: 2,
            audio_slots: 1,
            max_height: 360,
            thumbnail_height: None,
            subscribe: true,
            publishers_speak: true,
            join_rate_per_s: 50.0,
            duration: Duration::from_secs(10),
            bind_ip: [127, 0, 0, 1].into(),
            srtp_profile: None,
        }
    }

    #[test]
    fn publishers_then_subscribers_round_robin() {
        let seats = plan(&spec(), 3).unwrap();
        assert_eq!(seats.len(), 8);
        assert!(seats[..3].iter().all(|s| s.edge == 0));
        assert_eq!(seats[2].role, SeatRole::Publisher { n: 2 });
        let subs: Vec<(usize, &SeatRole)> = seats[3..].iter().map(|s| (s.edge, &s.role)).collect();
        let w = |v: &[usize]| SeatRole::Subscriber {
            watches: v.to_vec(),
        };
        assert_eq!(subs[0], (0, &w(&[0, 1])));
        assert_eq!(subs[1], (1, &w(&[1, 2])));
        assert_eq!(subs[2], (2, &w(&[2, 0])));
        assert_eq!(subs[3], (0, &w(&[0, 1])));
        assert_eq!(seats[7].identity, "sub-4");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert_eq!(plan(&spec(), 0), Err(PlanError::NoTargets));
        assert_eq!(plan(&spec(), 2), Err(PlanError::NoSuchEdge(2, 2)));
        let s = LoadSpec {
            video_slots: 4,
            ..spec()
        };
        assert_eq!(
            plan(&s, 3),
            Err(PlanError::MoreSlotsThanPublishers {
                slots: 4,
                publishers: 3
            })
        );
        let s = LoadSpec {
            subscribers: MAX_CLIENTS,
            ..spec()
        };
        assert_eq!(plan(&s, 3), Err(PlanError::TooMany(MAX_CLIENTS + 3)));
        let s = LoadSpec {
            join_rate_per_s: 0.0,
            ..spec()
        };
        assert_eq!(plan(&s, 3), Err(PlanError::BadJoinRate));
        let s = LoadSpec {
            publishers: 0,
            video_slots: 0,
            ..spec()
        };
        assert_eq!(plan(&s, 3), Err(PlanError::NothingToWatch));
        let s = LoadSpec {
            publishers: 30,
            video_slots: 26,
            ..spec()
        };
        assert_eq!(plan(&s, 3), Err(PlanError::TooManySlots(26)));
    }
}
