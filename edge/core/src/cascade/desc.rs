//! Tracks as the relay protocol describes them: what an edge announces about a track it
//! relays, and how a remote track is rebuilt from an announcement. Pure conversions between
//! the router's `Track` and relay-proto's `TrackDesc`.

use std::time::Instant;

use relay_proto::{
    Announce, CodecDesc, EdgeId, LayerDesc, LayerSet, MediaKind, TrackDesc, TrackSource,
};
use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};

use super::Upstream;
use crate::router::{Layer, MAX_LAYERS, RemoteLayer, Track};
use crate::signal::{Kind, Source};

/// A remote layer's announced bitrate must move by this fraction before it is re-announced.
const BITRATE_CHANGE: f64 = 0.2;

/// The wire description of a track.
pub fn track_desc(t: &Track, now: Instant) -> TrackDesc {
    let codec = t.params.as_ref().map_or_else(
        || CodecDesc {
            name: String::new(),
            clock_rate: 0,
            channels: 0,
            fmtp: String::new(),
        },
        |p| {
            let spec = p.spec();
            CodecDesc {
                name: spec.codec.to_string(),
                clock_rate: spec.clock_rate.get(),
                channels: spec.channels.unwrap_or(0),
                fmtp: spec.format.to_string(),
            }
        },
    );
    TrackDesc {
        id: t.id,
        owner: t.owner,
        kind: match t.kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        },
        source: match t.source {
            Source::Microphone => TrackSource::Microphone,
            Source::Camera => TrackSource::Camera,
            Source::Screen => TrackSource::ScreenShare,
        },
        codec,
        muted: t.muted,
        layers: layer_descs(t, now),
    }
}

/// The layers as announced downstream: sizes, rates and whether the publisher sends them.
pub fn layer_descs(t: &Track, now: Instant) -> Vec<LayerDesc> {
    t.layers
        .iter()
        .map(|l| LayerDesc {
            rid: l.rid.map(|r| r.to_string()),
            width: l.width.min(u32::from(u16::MAX)) as u16,
            height: l.height.min(u32::from(u16::MAX)) as u16,
            bitrate_bps: l.bitrate_bps().min(u64::from(u32::MAX)) as u32,
            active: l.is_active(now),
        })
        .collect()
}

/// Whether announced layer states changed enough to tell downstream again.
pub fn states_differ(old: &[LayerDesc], new: &[LayerDesc]) -> bool {
    old.len() != new.len()
        || old.iter().zip(new).any(|(a, b)| {
            let (x, y) = (f64::from(a.bitrate_bps), f64::from(b.bitrate_bps));
            a.active != b.active
                || (a.width, a.height) != (b.width, b.height)
                || (x - y).abs() > BITRATE_CHANGE * x.max(1.0)
        })
}

/// A remote track from its announcement. None if the description is unusable.
pub fn remote_track(from: &EdgeId, a: &Announce) -> Option<Track> {
    let d = &a.track;
    let kind = match d.kind {
        MediaKind::Audio => Kind::Audio,
        MediaKind::Video => Kind::Video,
    };
    if d.layers.is_empty() || d.layers.len() > MAX_LAYERS {
        return None;
    }
    let mut track = Track {
        id: d.id,
        owner: d.owner,
        upstream: Upstream::Remote {
            peer: from.clone(),
            flow: a.flow,
            lost_at: None,
            standby: None,
        },
        hops: a.hops.clone(),
        kind,
        source: match d.source {
            TrackSource::Microphone | TrackSource::ScreenShareAudio => Source::Microphone,
            TrackSource::Camera => Source::Camera,
            TrackSource::ScreenShare => Source::Screen,
        },
        codec: None,
        params: None,
        muted: d.muted,
        layers: Vec::new(),
        subscribers: Vec::new(),
        downstream: Vec::new(),
        demand: LayerSet::default(),
        announced: Vec::new(),
    };
    apply_desc(&mut track, d);
    Some(track)
}

/// Applies an announcement's codec and layers to a remote track.
pub fn apply_desc(t: &mut Track, d: &TrackDesc) {
    if let Some(params) = payload_params(&d.codec) {
        t.codec = Some(params.spec().codec);
        t.params = Some(params);
    }
    apply_layers(t, &d.layers);
}

pub fn apply_layers(t: &mut Track, layers: &[LayerDesc]) {
    let layers = &layers[..layers.len().min(MAX_LAYERS)];
    if t.layers.len() != layers.len() {
        t.layers = layers
            .iter()
            .map(|l| {
                let rid = l.rid.as_deref().map(str0m::media::Rid::from);
                Layer::new(rid, u32::from(l.width), u32::from(l.height))
            })
            .collect();
    }
    for (l, d) in t.layers.iter_mut().zip(layers) {
        if d.width > 0 && d.height > 0 {
            l.width = u32::from(d.width);
            l.height = u32::from(d.height);
        }
        l.remote = Some(RemoteLayer {
            active: d.active,
            bitrate_bps: u64::from(d.bitrate_bps),
        });
    }
}

/// str0m payload parameters for a relayed codec, so subscribers' payload types can be
/// matched to it exactly as for a local publisher.
pub fn payload_params(c: &CodecDesc) -> Option<PayloadParams> {
    let codec = Codec::from(c.name.as_str());
    if matches!(
        codec,
        Codec::Unknown | Codec::Rtx | Codec::Red | Codec::Null
    ) {
        return None;
    }
    let spec = CodecSpec {
        codec,
        clock_rate: str0m::media::Frequency::new(c.clock_rate)?,
        channels: (c.channels > 0).then_some(c.channels),
        format: FormatParams::parse_line(&c.fmtp),
    };
    // The payload type is ours to pick: slots map the codec to each subscriber's own.
    Some(PayloadParams::new(96.into(), None, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_descriptions_survive_the_trip() {
        let c = CodecDesc {
            name: "H264".into(),
            clock_rate: 90_000,
            channels: 0,
            fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
        };
        let p = payload_params(&c).unwrap();
        assert_eq!(p.spec().codec, Codec::H264);
        assert_eq!(p.spec().format.packetization_mode, Some(1));
        assert!(
            payload_params(&CodecDesc {
                name: "nope".into(),
                ..c
            })
            .is_none()
        );
    }

    #[test]
    fn small_rate_wobbles_are_not_re_announced() {
        let l = |bps, active| LayerDesc {
            rid: None,
            width: 640,
            height: 360,
            bitrate_bps: bps,
            active,
        };
        assert!(!states_differ(&[l(500_000, true)], &[l(550_000, true)]));
        assert!(states_differ(&[l(500_000, true)], &[l(700_000, true)]));
        assert!(states_differ(&[l(500_000, true)], &[l(500_000, false)]));
    }
}
