//! The router: how one published packet becomes many subscriber packets.
//!
//! Follow a video packet from Alice's browser to Bob's:
//!
//! 1. Alice's session (`crate::session`) decrypts it; str0m in RTP mode hands it over as an
//!    `RtpPacket` with its SSRC, which the session maps to a mid (her camera m-line) and a rid
//!    (the simulcast layer, `q`/`h`/`f`).
//! 2. The worker finds the [`Track`] published on that mid and the [`Layer`] for that rid,
//!    and updates the layer's bitrate meter and, on a keyframe, its resolution
//!    ([`vp8::parse`]).
//! 3. For every subscriber [`Slot`] bound to the track, [`Slot::verdict`] decides: forward
//!    (this is the layer the slot is on), switch (this is the first packet of a keyframe of the
//!    layer the slot wants), or drop (any other layer).
//! 4. Forwarded packets go through the slot's [`rewrite::Rewriter`] — sequence numbers,
//!    timestamps and VP8 picture ids continue seamlessly across switches — and are written to
//!    Bob's session with Bob's payload type, Bob's SSRC and fresh header extensions.
//!
//! Which layer a slot *wants* is decided away from the packet path by [`layers::allocate`],
//! from the slot's requested size and Bob's downlink estimate, whenever either changes.
//! Keyframe requests toward Alice go through one [`keyframe::KeyframeGate`] per layer, so a
//! hundred subscribers switching at once cost Alice one keyframe.
//!
//! Everything here is plain data and pure functions; the worker owns the str0m sessions.

pub mod h264;
pub mod keyframe;
pub mod layers;
pub mod rewrite;
pub mod vp8;

use std::time::{Duration, Instant};

use relay_proto::{LayerSet, ParticipantId, TrackId};
use str0m::format::Codec;
use str0m::media::{Mid, Rid};

use crate::cascade::{Downstream, RelayRx, Upstream};
use crate::signal::{Kind, LayerInfo, Source, TrackInfo};
use keyframe::KeyframeGate;
use layers::LayerView;
use rewrite::Rewriter;

/// Most subscribers one track fans out to on one worker (a meeting's cap times its slots).
pub const MAX_SUBSCRIBERS_PER_TRACK: usize = 4096;
/// Most simulcast layers a track may have.
pub const MAX_LAYERS: usize = 3;
/// A layer with no packet for this long is treated as paused by its publisher.
pub const LAYER_IDLE: Duration = Duration::from_millis(1500);

/// One published track and its simulcast layers: published here, or relayed from another
/// edge of the meeting's tree (see `crate::cascade`).
#[derive(Debug)]
pub struct Track {
    pub id: TrackId,
    pub owner: ParticipantId,
    /// Where its packets come from: a local publisher's m-line or a tree neighbour.
    pub upstream: Upstream,
    /// For a remote track: the edges its announcement passed, publisher's edge first.
    pub hops: relay_proto::Hops,
    pub kind: Kind,
    pub source: Source,
    pub codec: Option<Codec>,
    /// The publisher's payload parameters, learned from the first packet.
    pub params: Option<str0m::format::PayloadParams>,
    pub muted: bool,
    pub layers: Vec<Layer>,
    /// Subscriber slots fed by this track.
    pub subscribers: Vec<(ParticipantId, Mid)>,
    /// Tree neighbours this track is relayed to.
    pub downstream: Vec<Downstream>,
    /// For a remote track: the layers last subscribed upstream.
    pub demand: LayerSet,
    /// The layer states last announced downstream (`TrackState`).
    pub announced: Vec<relay_proto::LayerDesc>,
}

/// One simulcast layer (or the only layer of a non-simulcast track).
#[derive(Debug)]
pub struct Layer {
    pub rid: Option<Rid>,
    pub width: u32,
    pub height: u32,
    pub rate: RateMeter,
    pub gate: KeyframeGate,
    pub last_packet: Option<Instant>,
    /// For a remote track: whether the publisher's edge says the layer is sent, and at what
    /// rate. A remote layer nobody here subscribes to has no packets to judge by.
    pub remote: Option<RemoteLayer>,
    /// For a remote track: sequence extension and holes on the hop it arrives over.
    pub relay: RelayRx,
}

/// A remote layer as its publisher's edge describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteLayer {
    pub active: bool,
    pub bitrate_bps: u64,
}

impl Layer {
    pub fn new(rid: Option<Rid>, width: u32, height: u32) -> Self {
        Layer {
            rid,
            width,
            height,
            rate: RateMeter::default(),
            gate: KeyframeGate::default(),
            last_packet: None,
            remote: None,
            relay: RelayRx::default(),
        }
    }

    /// The publisher sends this layer: it had a packet recently, or none yet (a new track's
    /// layers count as active until they prove otherwise, so the first subscribers get
    /// their keyframe request out).
    pub fn is_active(&self, now: Instant) -> bool {
        if let Some(r) = self.remote {
            return r.active;
        }
        self.last_packet
            .is_none_or(|t| now.saturating_duration_since(t) < LAYER_IDLE)
    }

    /// The layer's bitrate: measured here, else announced by the publisher's edge.
    pub fn bitrate_bps(&self) -> u64 {
        match (self.rate.bps(), self.remote) {
            (0, Some(r)) => r.bitrate_bps,
            (measured, _) => measured,
        }
    }
}

impl Track {
    /// Whether it is published on this worker (not relayed from another edge).
    pub fn is_local(&self) -> bool {
        matches!(self.upstream, Upstream::Local { .. })
    }

    /// The layer a packet with this rid belongs to.
    pub fn layer_index(&self, rid: Option<&Rid>) -> Option<usize> {
        match rid {
            None if self.layers.len() == 1 => Some(0),
            rid => self.layers.iter().position(|l| l.rid.as_ref() == rid),
        }
    }

    /// Layer indices from the lowest resolution to the highest. Sizes learned from keyframes
    /// win over the order the publisher declared.
    pub fn layers_by_height(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        order.sort_by_key(|&i| (self.layers[i].height, i));
        order
    }

    /// The allocator's view of the layers, in [`Track::layers_by_height`] order.
    pub fn layer_views(&self, now: Instant, order: &[usize]) -> Vec<LayerView> {
        order
            .iter()
            .map(|&i| {
                let l = &self.layers[i];
                let measured = l.bitrate_bps();
                LayerView {
                    height: l.height,
                    bitrate_bps: if measured > 0 {
                        measured
                    } else {
                        layers::nominal_bitrate_bps(l.height)
                    },
                    active: l.is_active(now),
                }
            })
            .collect()
    }

    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id,
            participant_id: self.owner,
            kind: self.kind,
            source: self.source,
            muted: self.muted,
            simulcast: self.layers.len() > 1,
            layers: self
                .layers_by_height()
                .into_iter()
                .map(|i| {
                    let l = &self.layers[i];
                    LayerInfo {
                        rid: l.rid.map(|r| r.to_string()),
                        width: l.width,
                        height: l.height,
                    }
                })
                .collect(),
            codec: self
                .codec
                .map_or_else(String::new, |c| format!("{c:?}").to_uppercase()),
        }
    }
}

/// What to do with one packet for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    /// Rewrite and send on the current mapping.
    Forward,
    /// Start a new mapping here (the first packet of the wanted layer's keyframe).
    Switch,
}

/// One receive slot of a subscriber: a `recvonly` m-line on the subscriber's side that the
/// edge fills with whatever track the subscriber bound to it.
#[derive(Debug)]
pub struct Slot {
    pub mid: Mid,
    pub kind: Kind,
    pub track: Option<TrackId>,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    /// Layer (index into the track's layers) the allocator wants.
    pub want: Option<usize>,
    /// Layer being forwarded now.
    pub cur: Option<usize>,
    /// The layer last reported to the client with `layer_changed`.
    pub reported: Option<usize>,
    pub rewriter: Rewriter,
    /// The subscriber's payload type for the bound track's codec.
    pub pt: Option<str0m::media::Pt>,
    /// NACKs the subscriber had sent on this slot at the last stats report.
    pub nacks_seen: u64,
}

impl Slot {
    pub fn new(mid: Mid, kind: Kind, initial_seq: u16, initial_ts: u32) -> Self {
        let clock = match kind {
            Kind::Audio => 48_000,
            Kind::Video => 90_000,
        };
        Slot {
            mid,
            kind,
            track: None,
            max_width: None,
            max_height: None,
            want: None,
            cur: None,
            reported: None,
            rewriter: Rewriter::new(clock, initial_seq, initial_ts),
            pt: None,
            nacks_seen: 0,
        }
    }

    /// Binds the slot to a track (or unbinds it). The next packet forwarded will start a new
    /// mapping in the rewriter, so the output stays continuous.
    pub fn bind(&mut self, track: Option<TrackId>) {
        self.track = track;
        self.want = None;
        self.cur = None;
        self.reported = None;
        self.pt = None;
        self.rewriter.unanchor();
    }

    /// Sets the wanted layer; returns true when this asks for a switch (the caller then
    /// requests a keyframe on the new layer).
    pub fn set_want(&mut self, want: Option<usize>) -> bool {
        self.want = want;
        if want.is_none() {
            self.cur = None;
            self.rewriter.unanchor();
        }
        want.is_some() && want != self.cur
    }

    /// Decides about a packet of `layer`. Audio starts on any packet; video only on the
    /// first packet of a keyframe. While waiting for the wanted layer's keyframe the slot
    /// keeps forwarding its current layer, so a switch never freezes the picture.
    pub fn verdict(&self, layer: usize, keyframe_start: bool) -> Verdict {
        let Some(want) = self.want else {
            return Verdict::Drop;
        };
        let can_start = keyframe_start || self.kind == Kind::Audio;
        if layer == want && self.cur != Some(want) {
            return if can_start {
                Verdict::Switch
            } else {
                Verdict::Drop
            };
        }
        if self.cur == Some(layer) {
            Verdict::Forward
        } else {
            Verdict::Drop
        }
    }
}

/// Bytes per second over one-second windows, smoothed.
#[derive(Debug, Default, Clone)]
pub struct RateMeter {
    window_start: Option<Instant>,
    window_bytes: u64,
    bps: u64,
}

impl RateMeter {
    const WINDOW: Duration = Duration::from_secs(1);

    pub fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Self::WINDOW {
            let sample = self.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            self.bps = if self.bps == 0 {
                sample
            } else {
                (self.bps * 3 + sample) / 4
            };
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        self.window_bytes += bytes as u64;
    }

    /// The smoothed rate in bits per second, 0 until one window has passed.
    pub fn bps(&self) -> u64 {
        self.bps
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot::new(Mid::from("3"), Kind::Video, 0, 0)
    }

    #[test]
    fn a_switch_waits_for_the_keyframe_and_keeps_forwarding_meanwhile() {
        let mut s = slot();
        assert!(s.set_want(Some(0)));
        assert_eq!(s.verdict(0, false), Verdict::Drop);
        assert_eq!(s.verdict(0, true), Verdict::Switch);
        s.cur = Some(0);
        assert!(s.set_want(Some(2)));
        assert_eq!(s.verdict(0, false), Verdict::Forward);
        assert_eq!(s.verdict(2, false), Verdict::Drop);
        assert_eq!(s.verdict(1, true), Verdict::Drop);
        assert_eq!(s.verdict(2, true), Verdict::Switch);
    }

    #[test]
    fn pausing_stops_at_once() {
        let mut s = slot();
        s.set_want(Some(1));
        s.cur = Some(1);
        assert!(!s.set_want(None));
        assert_eq!(s.verdict(1, true), Verdict::Drop);
    }

    #[test]
    fn audio_starts_on_any_packet() {
        let mut s = Slot::new(Mid::from("1"), Kind::Audio, 0, 0);
        s.set_want(Some(0));
        assert_eq!(s.verdict(0, false), Verdict::Switch);
    }

    #[test]
    fn rate_meter_measures_bits_per_second() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        for i in 0..=100 {
            m.add(t0 + Duration::from_millis(i * 20), 1000);
        }
        // 50 packets of 1000 bytes per second = 400 kbit/s.
        assert!((390_000..=410_000).contains(&m.bps()), "{}", m.bps());
    }
}
