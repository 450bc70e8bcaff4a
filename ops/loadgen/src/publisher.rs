//! The sending role of a client: a simulcast VP8 camera and an Opus-like microphone on
//! `sendonly` m-lines.
//!
//! The publisher turns frames from [`VideoSource`]/[`AudioSource`] into RTP packets the way a
//! browser's RTP sender does: one SSRC per simulcast layer (str0m creates them from the
//! negotiated `a=simulcast:send`; without simulcast, the m-line's one SSRC), per-layer sequence
//! numbers and random timestamp origins, VP8 payload descriptors with PictureIDs, the marker bit
//! on a frame's last packet, video packets NACK-able (str0m answers NACKs from its RTX cache)
//! and audio not, audio level on every audio packet. It owns no `Rtc`: [`crate::Client`] polls
//! it for packets and writes each
//! packet through str0m's direct API.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use str0m::Rtc;
use str0m::format::Codec;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, SeqNo};
use str0m::stats::MediaEgressStats;

use crate::media::{AudioConfig, AudioSource, VideoConfig, VideoSource};
use crate::protocol::{Publication, Source};
use crate::stamp::Epoch;
use crate::vp8;

/// Largest RTP payload written (descriptor included). With RTP header, extensions and the
/// SRTP tag a datagram stays well under str0m's 1150-byte MTU target.
pub const MAX_RTP_PAYLOAD: usize = 1000;

/// Counters of one simulcast layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerStats {
    /// The layer's rid.
    pub rid: String,
    /// Frames encoded.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Codec bytes of those frames (what the bit rate targets count).
    pub frame_bytes: u64,
    /// RTP packets handed to str0m.
    pub packets: u64,
    /// PLIs received for this layer.
    pub plis: u64,
    /// FIRs received for this layer.
    pub firs: u64,
    /// NACKs received (str0m egress stats).
    pub nacks: u64,
    /// Loss the receiver reported (str0m egress stats).
    pub loss: Option<f32>,
    /// Round-trip time (str0m egress stats).
    pub rtt: Option<Duration>,
}

/// Counters of the whole publisher.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PublisherStats {
    /// One entry per simulcast layer, lowest first.
    pub layers: Vec<LayerStats>,
    /// Audio frames (= packets) sent.
    pub audio_frames: u64,
    /// Audio codec bytes sent.
    pub audio_bytes: u64,
    /// Frames the sources skipped because the driver fell behind.
    pub frames_skipped: u64,
    /// Packets (or whole frames, for a rejected m-line) that could not be sent: no negotiated
    /// payload type, or no str0m send stream (a layer the answer rejected).
    pub packets_unsendable: u64,
    /// Whether audio is currently "speaking".
    pub speaking: bool,
}

/// One RTP packet to write.
#[derive(Debug)]
pub(crate) struct RtpOut {
    pub(crate) mid: Mid,
    pub(crate) rid: Option<Rid>,
    pub(crate) pt: Pt,
    pub(crate) seq: SeqNo,
    pub(crate) ts: u32,
    pub(crate) wallclock: Instant,
    pub(crate) marker: bool,
    pub(crate) ext: ExtensionValues,
    pub(crate) nackable: bool,
    pub(crate) payload: Vec<u8>,
}

/// Per-SSRC send state.
#[derive(Debug)]
struct StreamTx {
    seq: u64,
    ts_offset: u32,
}

impl StreamTx {
    fn new(rng: &mut StdRng) -> Self {
        StreamTx {
            seq: u64::from(rng.random::<u16>()),
            ts_offset: rng.random(),
        }
    }

    fn next_seq(&mut self) -> SeqNo {
        let s = self.seq;
        self.seq += 1;
        s.into()
    }
}

/// The sending role.
#[derive(Debug)]
pub struct Publisher {
    video: Option<VideoSource>,
    audio: Option<AudioSource>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    vp8_pt: Option<Pt>,
    opus_pt: Option<Pt>,
    layer_tx: Vec<StreamTx>,
    audio_tx: StreamTx,
    queue: VecDeque<RtpOut>,
    stats: PublisherStats,
}

impl Publisher {
    /// A publisher sending `video` and/or `audio` (either may be absent).
    pub fn new(
        video: Option<VideoConfig>,
        audio: Option<AudioConfig>,
        source_id: u32,
        epoch: Epoch,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let layers: Vec<LayerStats> = video
            .iter()
            .flat_map(|v| v.layers.iter())
            .map(|l| LayerStats {
                rid: l.rid.clone(),
                ..Default::default()
            })
            .collect();
        let layer_tx = layers.iter().map(|_| StreamTx::new(&mut rng)).collect();
        Publisher {
            video: video.map(|v| VideoSource::new(v, source_id, epoch, rng.random())),
            audio: audio.map(|a| AudioSource::new(a, source_id, epoch, rng.random())),
            video_mid: None,
            audio_mid: None,
            vp8_pt: None,
            opus_pt: None,
            layer_tx,
            audio_tx: StreamTx::new(&mut rng),
            queue: VecDeque::new(),
            stats: PublisherStats {
                layers,
                speaking: audio.is_some_and(|a| a.speaking),
                ..Default::default()
            },
        }
    }

    /// The camera's configuration, if it sends video.
    pub fn video_config(&self) -> Option<&VideoConfig> {
        self.video.as_ref().map(|v| v.config())
    }

    /// Whether the camera sends rid simulcast ([`VideoConfig::simulcast`]).
    pub fn is_simulcast(&self) -> bool {
        self.video_config().is_some_and(|v| v.simulcast)
    }

    /// Whether it sends video.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Whether it sends audio.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Records the m-lines created for the offer.
    pub(crate) fn set_mids(&mut self, audio: Option<Mid>, video: Option<Mid>) {
        self.audio_mid = audio;
        self.video_mid = video;
    }

    /// The sendonly audio m-line.
    pub fn audio_mid(&self) -> Option<Mid> {
        self.audio_mid
    }

    /// The sendonly video m-line.
    pub fn video_mid(&self) -> Option<Mid> {
        self.video_mid
    }

    /// The `publish` list of an `offer` message.
    pub fn publications(&self) -> Vec<Publication> {
        let mut out = vec![];
        if let Some(mid) = self.audio_mid {
            out.push(Publication {
                mid: mid.to_string(),
                source: Source::Microphone,
                width: None,
                height: None,
            });
        }
        if let (Some(mid), Some(v)) = (self.video_mid, self.video_config()) {
            let top = v
                .layers
                .iter()
                .max_by_key(|l| u32::from(l.width) * u32::from(l.height));
            out.push(Publication {
                mid: mid.to_string(),
                source: Source::Camera,
                width: top.map(|l| u32::from(l.width)),
                height: top.map(|l| u32::from(l.height)),
            });
        }
        out
    }

    /// Picks the negotiated payload types once an answer is applied.
    pub(crate) fn handle_negotiated(&mut self, rtc: &Rtc) {
        let pick = |mid: Option<Mid>, codec: Codec| {
            let media = rtc.media(mid?)?;
            rtc.codec_config()
                .iter()
                .find(|p| p.spec().codec == codec && media.remote_pts().contains(&p.pt()))
                .map(|p| p.pt())
        };
        self.vp8_pt = pick(self.video_mid, Codec::Vp8);
        self.opus_pt = pick(self.audio_mid, Codec::Opus);
    }

    /// Starts the media clocks (at ICE+DTLS connect: str0m drops media written before).
    pub(crate) fn start(&mut self, now: Instant) {
        if let Some(v) = &mut self.video {
            v.start(now);
        }
        if let Some(a) = &mut self.audio {
            a.start(now);
        }
    }

    /// Switches the audio level between speaking and silent.
    pub fn set_speaking(&mut self, speaking: bool) {
        if let Some(a) = &mut self.audio {
            a.set_speaking(speaking);
            self.stats.speaking = speaking;
        }
    }

    /// Forces a keyframe on `rid` (all layers if `None`).
    pub fn request_keyframe(&mut self, rid: Option<&str>) {
        let layer = rid.and_then(|r| self.stats.layers.iter().position(|l| l.rid == r));
        if let Some(v) = &mut self.video
            && (rid.is_none() || layer.is_some())
        {
            v.request_keyframe(layer);
        }
    }

    /// An incoming PLI/FIR: the next frame of that layer is a keyframe.
    pub(crate) fn handle_keyframe_request(&mut self, req: &KeyframeRequest) {
        if Some(req.mid) != self.video_mid {
            return;
        }
        let rid = req.rid.map(|r| r.to_string());
        for l in &mut self.stats.layers {
            if rid.as_ref().is_none_or(|r| *r == l.rid) {
                match req.kind {
                    KeyframeRequestKind::Pli => l.plis += 1,
                    KeyframeRequestKind::Fir => l.firs += 1,
                }
            }
        }
        self.request_keyframe(rid.as_deref());
    }

    /// Records str0m's send statistics for one layer.
    pub(crate) fn handle_egress_stats(&mut self, s: &MediaEgressStats) {
        if Some(s.mid) != self.video_mid {
            return;
        }
        let rid = s.rid.map(|r| r.to_string());
        // Without simulcast the one layer has no rid on the wire.
        let simulcast = self.is_simulcast();
        if let Some(l) = self
            .stats
            .layers
            .iter_mut()
            .find(|l| !simulcast || rid.as_deref() == Some(l.rid.as_str()))
        {
            l.nacks = s.nacks;
            l.loss = s.loss;
            l.rtt = s.rtt;
        }
    }

    /// Counts a packet str0m had no send stream for.
    pub(crate) fn note_unsendable(&mut self) {
        self.stats.packets_unsendable += 1;
    }

    /// When the next frame is due (or now, if packets are queued).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(p) = self.queue.front() {
            return Some(p.wallclock);
        }
        let v = self.video.as_ref().and_then(|v| v.poll_timeout());
        let a = self.audio.as_ref().and_then(|a| a.poll_timeout());
        v.into_iter().chain(a).min()
    }

    /// The next packet to write at `now`.
    pub(crate) fn poll_packet(&mut self, now: Instant) -> Option<RtpOut> {
        while self.queue.is_empty() {
            if !self.encode_next(now) {
                return None;
            }
        }
        self.queue.pop_front()
    }

    /// Encodes one due frame into packets; false when no frame is due. Frames for an m-line
    /// the answer did not accept are consumed and counted, so the clock never stalls.
    fn encode_next(&mut self, now: Instant) -> bool {
        if let Some(a) = &mut self.audio
            && let Some(f) = a.poll_frame(now)
        {
            let (Some(mid), Some(pt)) = (self.audio_mid, self.opus_pt) else {
                self.stats.packets_unsendable += 1;
                return true;
            };
            self.stats.audio_frames += 1;
            self.stats.audio_bytes += f.data.len() as u64;
            let ts = self.audio_tx.ts_offset.wrapping_add(f.rtp_ticks as u32);
            self.queue.push_back(RtpOut {
                mid,
                rid: None,
                pt,
                seq: self.audio_tx.next_seq(),
                ts,
                wallclock: f.capture,
                marker: false,
                ext: ExtensionValues {
                    audio_level: Some(f.level),
                    voice_activity: Some(f.voice),
                    ..Default::default()
                },
                nackable: false,
                payload: f.data,
            });
            return true;
        }
        let Some(f) = self.video.as_mut().and_then(|v| v.poll_frame(now)) else {
            return false;
        };
        let (Some(mid), Some(pt)) = (self.video_mid, self.vp8_pt) else {
            self.stats.packets_unsendable += 1;
            return true;
        };
        let simulcast = self.is_simulcast();
        let stats = &mut self.stats.layers[f.layer];
        let tx = &mut self.layer_tx[f.layer];
        stats.frames += 1;
        stats.keyframes += u64::from(f.keyframe);
        stats.frame_bytes += f.data.len() as u64;
        let rid = simulcast.then(|| Rid::from(stats.rid.as_str()));
        let ts = tx.ts_offset.wrapping_add(f.rtp_ticks as u32);
        let packets = vp8::packetize(&f.data, MAX_RTP_PAYLOAD, f.fields);
        let n = packets.len();
        stats.packets += n as u64;
        for (i, payload) in packets.into_iter().enumerate() {
            self.queue.push_back(RtpOut {
                mid,
                rid,
                pt,
                seq: tx.next_seq(),
                ts,
                wallclock: f.capture,
                marker: i + 1 == n,
                ext: ExtensionValues::default(),
                nackable: true,
                payload,
            });
        }
        true
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PublisherStats {
        let mut s = self.stats.clone();
        s.frames_skipped = self.video.as_ref().map_or(0, |v| v.skipped_frames())
            + self.audio.as_ref().map_or(0, |a| a.skipped_frames());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_epoch as t0;

    #[test]
    fn frames_for_unnegotiated_mlines_are_consumed_not_stalled() {
        let start = t0();
        let mut p = Publisher::new(
            Some(VideoConfig::default()),
            Some(AudioConfig::default()),
            1,
            Epoch(start),
            3,
        );
        p.start(start);
        let later = start + Duration::from_millis(100);
        assert!(p.poll_packet(later).is_none());
        // Every due frame was taken (and counted), so the next deadline is in the future.
        assert!(p.poll_timeout().is_some_and(|t| t > later));
        assert!(p.stats().packets_unsendable >= 3 * 4);
    }

    #[test]
    fn publications_describe_the_mlines() {
        let start = t0();
        let mut p = Publisher::new(
            Some(VideoConfig::default()),
            Some(AudioConfig::default()),
            1,
            Epoch(start),
            3,
        );
        p.set_mids(Some("0".into()), Some("1".into()));
        let list = p.publications();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].mid.as_str(), list[0].source),
            ("0", Source::Microphone)
        );
        assert_eq!((list[1].width, list[1].height), (Some(1280), Some(720)));
    }
}
