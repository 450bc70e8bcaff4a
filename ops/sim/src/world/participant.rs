//! A synthetic participant: an `arbor_loadgen::Client` (real str0m, simulcast VP8, Opus) plus
//! the little a meeting client decides: which announced track goes into which receive slot,
//! and what it rendered when.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbor_loadgen::{AudioConfig, Client, ClientConfig, Epoch, SlotStats};
use edge_core::signal::{ClientMsg, Kind, TrackInfo};
use relay_proto::{ParticipantId, TrackId};
use str0m::media::Mid;

use crate::scenario::{ParticipantSpec, Scenario, Subscription};

/// A pause in rendering longer than this is remembered as a gap (shorter ones are the normal
/// frame spacing plus sampling).
pub const GAP_RECORD: Duration = Duration::from_millis(150);
/// Gaps remembered per subscription; past it the longest are kept.
pub const MAX_GAPS: usize = 64;

/// One receive slot and what the participant wants in it.
#[derive(Debug)]
pub(crate) struct SubState {
    pub spec: Subscription,
    pub mid: Mid,
    /// The track bound to the slot, if the publisher's track is known.
    pub track: Option<TrackId>,
    /// When the slot was first bound.
    pub since: Option<Instant>,
    /// How many times it was bound (more than once: the track was re-published).
    pub binds: u32,
    /// Frames rendered at the last sample, and when that count last grew.
    pub rendered: u64,
    pub last_render: Option<Instant>,
    /// Pauses in rendering longer than [`GAP_RECORD`]: (last frame before, first frame after).
    pub gaps: Vec<(Instant, Instant)>,
    /// The slot's numbers at each of the run's snapshot times (`None` before it existed).
    pub snapshots: Vec<Option<SlotStats>>,
}

impl SubState {
    /// Takes a sample of the slot's rendered-frame count at `now`.
    pub(crate) fn sample(&mut self, now: Instant, s: &SlotStats) {
        let rendered = match self.spec.kind {
            Kind::Video => s.frames_rendered,
            Kind::Audio => s.frames,
        };
        if rendered <= self.rendered {
            return;
        }
        if let Some(last) = self.last_render
            && now.duration_since(last) > GAP_RECORD
        {
            if self.gaps.len() >= MAX_GAPS {
                // Keep the longest: drop the shortest one so far.
                if let Some(i) = (0..self.gaps.len()).min_by_key(|&i| gap_len(self.gaps[i])) {
                    self.gaps.remove(i);
                }
            }
            self.gaps.push((last, now));
        }
        self.rendered = rendered;
        self.last_render = Some(now);
    }
}

fn gap_len((a, b): (Instant, Instant)) -> Duration {
    b.duration_since(a)
}

/// One simulated participant.
#[derive(Debug)]
pub(crate) struct Participant {
    pub spec: ParticipantSpec,
    pub client: Client,
    pub addr: SocketAddr,
    /// Its id at its edge, once joined.
    pub pid: Option<ParticipantId>,
    /// Media links to and from its edge (indices into the world's links).
    pub uplink: usize,
    pub downlink: usize,
    pub subs: Vec<SubState>,
    /// `track_unpublished` messages about a track it had bound.
    pub unpublished: u32,
    /// `error` messages from the edge, with their codes.
    pub errors: Vec<String>,
    /// The last `connection_quality` the edge sent: quality and downlink estimate.
    pub quality: Option<(String, u64)>,
    /// `layer_changed` messages received.
    pub layer_changes: u32,
    /// The edge closed the participant.
    pub closed: bool,
}

impl Participant {
    /// A participant that has not joined yet.
    pub(crate) fn new(
        now: Instant,
        scenario: &Scenario,
        index: usize,
        seed: u64,
        epoch: Epoch,
        links: (usize, usize),
    ) -> Self {
        let spec = scenario.participants[index].clone();
        let count = |k: Kind| spec.subscribe.iter().filter(|s| s.kind == k).count();
        let mut cfg = ClientConfig::subscriber(epoch, count(Kind::Video), count(Kind::Audio));
        cfg.seed = seed;
        // Stamped into frames: 1-based so that 0 never names a publisher.
        cfg.source_id = index as u32 + 1;
        cfg.video = spec.video.then(|| scenario.video.clone());
        cfg.audio = spec.audio.then(AudioConfig::default);
        cfg.name = Some(spec.name.clone());
        let addr = client_addr(index);
        Participant {
            spec,
            client: Client::new(now, cfg),
            addr,
            pid: None,
            uplink: links.0,
            downlink: links.1,
            subs: Vec::new(),
            unpublished: 0,
            errors: Vec::new(),
            quality: None,
            layer_changes: 0,
            closed: false,
        }
    }

    /// After the first offer: one slot per subscription, in the scenario's order.
    pub(crate) fn assign_slots(&mut self) {
        let mids = self.client.mids();
        let (mut video, mut audio) = (mids.video_slots.into_iter(), mids.audio_slots.into_iter());
        self.subs = self
            .spec
            .subscribe
            .iter()
            .filter_map(|spec| {
                let mid = match spec.kind {
                    Kind::Video => video.next(),
                    Kind::Audio => audio.next(),
                }?;
                Some(SubState {
                    spec: *spec,
                    mid,
                    track: None,
                    since: None,
                    binds: 0,
                    rendered: 0,
                    last_render: None,
                    gaps: Vec::new(),
                    snapshots: Vec::new(),
                })
            })
            .collect();
    }

    /// A track became known (`publisher` is the index of its owner): the subscriptions that
    /// want it are bound. Returns the `subscribe` messages to send.
    pub(crate) fn offer_track(
        &mut self,
        now: Instant,
        publisher: usize,
        track: &TrackInfo,
    ) -> Vec<ClientMsg> {
        let mut out = Vec::new();
        for sub in &mut self.subs {
            if sub.spec.publisher != publisher
                || sub.spec.kind != track.kind
                || sub.track == Some(track.id)
            {
                continue;
            }
            sub.track = Some(track.id);
            sub.since.get_or_insert(now);
            sub.binds += 1;
            let video = sub.spec.kind == Kind::Video;
            out.push(ClientMsg::Subscribe {
                track_id: track.id,
                mid: sub.mid.to_string(),
                max_width: None,
                max_height: video.then_some(sub.spec.max_height),
            });
            // Only fails for an unknown mid; these come from the client itself.
            let _ = self.client.set_expecting(now, sub.mid, true);
        }
        out
    }

    /// A track is gone.
    pub(crate) fn track_gone(&mut self, track: TrackId) {
        for sub in &mut self.subs {
            if sub.track == Some(track) {
                sub.track = None;
                self.unpublished += 1;
            }
        }
    }

    /// Samples every slot's rendering at `now`.
    pub(crate) fn sample(&mut self, now: Instant) {
        if self.subs.iter().all(|s| s.since.is_none()) {
            return;
        }
        let stats = self.client.stats(now).slots;
        for sub in &mut self.subs {
            let mid = sub.mid.to_string();
            if let Some(s) = stats.iter().find(|s| s.mid == mid) {
                sub.sample(now, s);
            }
        }
    }

    /// Records every slot's numbers (at one of the run's snapshot times).
    pub(crate) fn snapshot(&mut self, now: Instant) {
        let stats = self.client.stats(now).slots;
        for sub in &mut self.subs {
            let mid = sub.mid.to_string();
            sub.snapshots
                .push(stats.iter().find(|s| s.mid == mid).cloned());
        }
    }
}

/// Participant `i`'s address: 10.1.x.y, port 5000.
pub(crate) fn client_addr(i: usize) -> SocketAddr {
    let [_, _, hi, lo] = (i as u32 + 1).to_be_bytes();
    SocketAddr::from(([10, 1, hi, lo], 5000))
}
