//! One receive slot (a `recvonly` m-line) and everything a test wants to know about it.
//!
//! A video slot behaves like a browser's receive pipeline, minus the pixels: frames are
//! reassembled ([`Assembler`]), a frame is "rendered" when a decoder could decode it (a keyframe,
//! or the next frame after a rendered one), and a broken chain asks for a keyframe (PLI) the
//! way libwebrtc does. Every frame's stamp is checked for continuity, layer switches and latency.

use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::media::Mid;
use str0m::rtp::Ssrc;
use str0m::stats::MediaIngressStats;

use crate::assembler::{Assembler, Frame};
use crate::histogram::Histogram;
use crate::media::AUDIO_STAMP_OFFSET;
use crate::protocol::Kind;
use crate::stamp::{Epoch, Stamp};
use crate::vp8::{self, PICTURE_ID_MASK};

/// A gap between rendered frames longer than this, while subscribed, is a freeze.
pub const FREEZE_THRESHOLD: Duration = Duration::from_millis(500);

/// While the decoder waits for a keyframe, PLIs repeat at most this often.
pub const PLI_INTERVAL: Duration = Duration::from_secs(1);

/// Running one-way latency figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Most recent.
    pub last: Duration,
    /// Smallest.
    pub min: Duration,
    /// Largest.
    pub max: Duration,
    /// Sum, for the mean.
    pub sum: Duration,
    /// Every sample, for percentiles (over one slot or, merged, over many).
    pub histogram: Histogram,
}

impl LatencyStats {
    fn add(&mut self, d: Duration) {
        if self.count == 0 || d < self.min {
            self.min = d;
        }
        self.max = self.max.max(d);
        self.last = d;
        self.sum += d;
        self.count += 1;
        self.histogram.record(d);
    }

    /// Mean latency (zero without samples).
    pub fn mean(&self) -> Duration {
        match u32::try_from(self.count) {
            Ok(0) | Err(_) => Duration::ZERO,
            Ok(n) => self.sum / n,
        }
    }
}

/// str0m's receive statistics for the slot's stream (needs `ClientConfig::stats_interval`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct IngressStats {
    /// Packets received, including retransmissions.
    pub packets: u64,
    /// Bytes received, including retransmissions.
    pub bytes: u64,
    /// NACKs we sent.
    pub nacks: u64,
    /// PLIs we sent.
    pub plis: u64,
    /// FIRs we sent.
    pub firs: u64,
    /// Fraction lost, from our last receiver report.
    pub loss: Option<f32>,
    /// Interarrival jitter, RTP units.
    pub jitter: u32,
}

/// Everything measured on one slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotStats {
    /// The slot's mid.
    pub mid: String,
    /// Audio or video.
    pub kind: Option<Kind>,
    /// Whether the caller said media should be flowing (subscribed and not paused).
    pub expecting: bool,
    /// RTP packets received (after duplicates were dropped).
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Payload bit rate over the last second.
    pub bitrate_bps: u64,
    /// Frames released by the frame buffer (video) or audio packets.
    pub frames: u64,
    /// Frames a decoder could decode.
    pub frames_rendered: u64,
    /// Frames dropped because the decoder waited for a keyframe.
    pub frames_undecodable: u64,
    /// Keyframes received.
    pub keyframes: u64,
    /// Resolution from the last keyframe header.
    pub width: Option<u32>,
    /// Resolution from the last keyframe header.
    pub height: Option<u32>,
    /// Simulcast layer index of the last frame (from its stamp).
    pub layer: Option<u8>,
    /// Publisher `source_id` of the last frame (from its stamp).
    pub source: Option<u32>,
    /// SSRC the slot currently receives on.
    pub ssrc: Option<u32>,
    /// Layer changes within one source.
    pub layer_switches: u64,
    /// Layer changes whose first frame was not a keyframe (undecodable in a browser).
    pub switches_without_keyframe: u64,
    /// Source changes (the slot was re-bound to another track).
    pub source_switches: u64,
    /// Frames released after a hole in the packet sequence.
    pub non_contiguous: u64,
    /// Sequence numbers skipped by the frame buffer.
    pub packets_skipped: u64,
    /// Jumps in the stamped frame number within one source and layer.
    pub frame_gaps: u64,
    /// Frames missing in those jumps.
    pub frames_missing: u64,
    /// Contiguous frames whose PictureID is not the previous one plus one.
    pub picture_id_jumps: u64,
    /// Frames without a PictureID.
    pub picture_id_missing: u64,
    /// Frames whose RTP timestamp went backwards.
    pub timestamp_regressions: u64,
    /// Packets the frame buffer could not use (bad descriptor, late, overflow).
    pub packets_unusable: u64,
    /// Keyframe requests (PLI) this slot sent.
    pub plis_sent: u64,
    /// Freezes: more than [`FREEZE_THRESHOLD`] without a rendered frame while expecting.
    pub freezes: u64,
    /// Total time frozen.
    pub freeze_total: Duration,
    /// Longest freeze.
    pub freeze_longest: Duration,
    /// Time from the latest `set_expecting(true)` to the first rendered frame after it.
    pub first_frame: Option<Duration>,
    /// One-way latency, stamp to release.
    pub latency: LatencyStats,
    /// RFC 3550-style interarrival jitter of frames, milliseconds.
    pub jitter_ms: f64,
    /// Audio level of the last audio packet, -dBov.
    pub audio_level: Option<i8>,
    /// Whether str0m reports the stream as paused.
    pub paused: bool,
    /// str0m's receive statistics.
    pub ingress: Option<IngressStats>,
}

/// One bin per 100 ms over one second.
#[derive(Debug, Default)]
struct RateWindow {
    bins: [u64; 10],
    bin_at: Option<Instant>,
    idx: usize,
}

impl RateWindow {
    const BIN: Duration = Duration::from_millis(100);

    fn advance(&mut self, now: Instant) {
        let Some(mut at) = self.bin_at else {
            self.bin_at = Some(now);
            return;
        };
        let mut steps = 0;
        while now >= at + Self::BIN && steps < self.bins.len() {
            at += Self::BIN;
            self.idx = (self.idx + 1) % self.bins.len();
            self.bins[self.idx] = 0;
            steps += 1;
        }
        if now >= at + Self::BIN {
            // Idle for over a second: everything is stale.
            at = now;
        }
        self.bin_at = Some(at);
    }

    fn add(&mut self, now: Instant, bytes: usize) {
        self.advance(now);
        self.bins[self.idx] += bytes as u64;
    }

    fn bps(&mut self, now: Instant) -> u64 {
        self.advance(now);
        self.bins.iter().sum::<u64>() * 8
    }
}

/// What the last frame said, for continuity checks.
#[derive(Debug, Clone, Copy)]
struct Last {
    stamp: Option<Stamp>,
    picture_id: Option<u16>,
    rtp_ts: u32,
    arrival: Instant,
}

/// One receive slot.
#[derive(Debug)]
pub struct Slot {
    mid: Mid,
    kind: Kind,
    epoch: Epoch,
    ssrc: Option<Ssrc>,
    assembler: Assembler,
    last: Option<Last>,
    /// The decoder lost its reference chain and needs a keyframe.
    need_keyframe: bool,
    /// TL0PICIDX of the last decoded TL0 frame.
    last_tl0: Option<u8>,
    last_pli: Option<Instant>,
    pli_due: bool,
    expecting_since: Option<Instant>,
    first_frame_pending: bool,
    last_render: Option<Instant>,
    freeze_since: Option<Instant>,
    last_audio_seq: Option<u64>,
    rate: RateWindow,
    stats: SlotStats,
}

impl Slot {
    /// A slot for `mid` receiving `kind`.
    pub fn new(mid: Mid, kind: Kind, epoch: Epoch) -> Self {
        Slot {
            mid,
            kind,
            epoch,
            ssrc: None,
            assembler: Assembler::default(),
            last: None,
            need_keyframe: true,
            last_tl0: None,
            last_pli: None,
            pli_due: false,
            expecting_since: None,
            first_frame_pending: false,
            last_render: None,
            freeze_since: None,
            last_audio_seq: None,
            rate: RateWindow::default(),
            stats: SlotStats {
                mid: mid.to_string(),
                kind: Some(kind),
                ..Default::default()
            },
        }
    }

    /// The slot's mid.
    pub fn mid(&self) -> Mid {
        self.mid
    }

    /// Audio or video.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Tells the slot whether media should flow (subscribed and not paused). Starts the time to
    /// first frame and the freeze watch; stopping ends a running freeze.
    pub fn set_expecting(&mut self, now: Instant, expecting: bool) {
        if expecting && self.expecting_since.is_none() {
            self.expecting_since = Some(now);
            self.first_frame_pending = true;
            self.last_render = None;
        }
        if !expecting {
            self.end_freeze(now);
            self.expecting_since = None;
            self.first_frame_pending = false;
        }
        self.stats.expecting = expecting;
    }

    /// Handles one RTP packet of this slot.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        ssrc: Ssrc,
        seq: u64,
        header: &str0m::rtp::RtpHeader,
        payload: &[u8],
    ) {
        if self.ssrc != Some(ssrc) {
            // A new SSRC is a new sequence number space.
            self.ssrc = Some(ssrc);
            self.stats.ssrc = Some(*ssrc);
            self.assembler.reset();
            self.last_audio_seq = None;
            // A decoder starts a new stream on a keyframe.
            self.need_keyframe = true;
            self.last_tl0 = None;
        }
        self.stats.packets += 1;
        self.stats.bytes += payload.len() as u64;
        self.rate.add(now, payload.len());
        match self.kind {
            Kind::Audio => self.handle_audio(now, seq, header, payload),
            Kind::Video => {
                self.assembler
                    .insert(seq, header.timestamp, header.marker, payload);
                self.drain_frames(now);
            }
        }
    }

    fn drain_frames(&mut self, now: Instant) {
        while let Some(frame) = self.assembler.poll(now) {
            self.handle_frame(now, &frame);
        }
        let a = self.assembler.stats();
        self.stats.packets_unusable = a.late_packets + a.bad_packets + a.overflow_packets;
    }

    fn handle_audio(
        &mut self,
        now: Instant,
        seq: u64,
        header: &str0m::rtp::RtpHeader,
        payload: &[u8],
    ) {
        if let Some(prev) = self.last_audio_seq
            && seq > prev + 1
        {
            self.stats.packets_skipped += seq - prev - 1;
        }
        self.last_audio_seq = Some(self.last_audio_seq.map_or(seq, |p| p.max(seq)));
        self.stats.frames += 1;
        self.stats.frames_rendered += 1;
        if let Some(level) = header.ext_vals.audio_level {
            self.stats.audio_level = Some(level);
        }
        let stamp = payload.get(AUDIO_STAMP_OFFSET..).and_then(Stamp::parse);
        self.check_stamp(now, stamp, true, header.timestamp);
        self.render(now);
    }

    fn handle_frame(&mut self, now: Instant, frame: &Frame) {
        self.stats.frames += 1;
        if !frame.contiguous {
            self.stats.non_contiguous += 1;
            self.stats.packets_skipped += frame.skipped_packets;
        }
        let header = vp8::parse_frame_header(&frame.data);
        let keyframe = header.is_some_and(|h| h.keyframe);
        if let Some((w, h)) = header.and_then(|h| h.size) {
            self.stats.width = Some(u32::from(w));
            self.stats.height = Some(u32::from(h));
        }
        let at = if keyframe {
            vp8::KEYFRAME_HEADER_LEN
        } else {
            vp8::DELTA_HEADER_LEN
        };
        let stamp = frame.data.get(at..).and_then(Stamp::parse);
        let pid_follows = self.check_picture_id(frame);
        let decodable = keyframe || self.decodable(frame, pid_follows);
        self.check_stamp(now, stamp, keyframe, frame.rtp_ts);
        if let Some(last) = &mut self.last {
            last.picture_id = frame.descriptor.picture_id;
        }
        if keyframe {
            self.stats.keyframes += 1;
            self.need_keyframe = false;
        }
        if !decodable {
            self.need_keyframe = true;
            self.stats.frames_undecodable += 1;
            self.want_pli(now);
            return;
        }
        if frame.descriptor.tid.unwrap_or(0) == 0 {
            self.last_tl0 = frame.descriptor.tl0_pic_idx;
        }
        self.render(now);
    }

    /// Counts PictureID jumps; returns whether the PictureID follows the previous frame's.
    fn check_picture_id(&mut self, frame: &Frame) -> bool {
        let pid = frame.descriptor.picture_id;
        if pid.is_none() {
            self.stats.picture_id_missing += 1;
        }
        let Some((last, pid)) = self.last.and_then(|l| l.picture_id).zip(pid) else {
            return false;
        };
        let follows = pid == (last + 1) & PICTURE_ID_MASK;
        if !follows {
            self.stats.picture_id_jumps += 1;
        }
        follows
    }

    /// Whether a decoder holding the chain so far could decode this interframe.
    ///
    /// With TL0PICIDX/TID (RFC 7741) a TL0 frame needs the previous TL0 frame and a higher
    /// layer frame needs its TL0 frame, so dropped non-reference frames (a temporal layer the
    /// SFU thinned out) break nothing. Without them every frame needs the one before it.
    fn decodable(&self, frame: &Frame, pid_follows: bool) -> bool {
        if self.need_keyframe {
            return false;
        }
        let d = frame.descriptor;
        match (d.tl0_pic_idx, d.tid, self.last_tl0) {
            (Some(tl0), Some(0), Some(last)) => tl0 == last.wrapping_add(1),
            (Some(tl0), Some(_), Some(last)) => tl0 == last,
            _ => frame.contiguous && pid_follows,
        }
    }

    /// Continuity, layer and latency checks from the stamp; updates `self.last`.
    fn check_stamp(&mut self, now: Instant, stamp: Option<Stamp>, keyframe: bool, rtp_ts: u32) {
        let prev = self.last;
        if let Some(prev) = prev {
            // Wrapping difference: forward steps are small positive numbers.
            let d = rtp_ts.wrapping_sub(prev.rtp_ts);
            if d > u32::MAX / 2 {
                self.stats.timestamp_regressions += 1;
            }
            let rate = if self.kind == Kind::Audio {
                48_000.0
            } else {
                90_000.0
            };
            let media = f64::from(d as i32) / rate;
            let arrival = now.duration_since(prev.arrival).as_secs_f64();
            let delta_ms = (arrival - media).abs() * 1000.0;
            self.stats.jitter_ms += (delta_ms - self.stats.jitter_ms) / 16.0;
        }
        if let Some(s) = stamp {
            self.stats
                .latency
                .add(now.saturating_duration_since(self.epoch.instant_at(s.sent_ns)));
            if let Some(p) = prev.and_then(|p| p.stamp) {
                if p.source != s.source {
                    self.stats.source_switches += 1;
                } else if p.layer != s.layer {
                    self.stats.layer_switches += 1;
                    if !keyframe {
                        self.stats.switches_without_keyframe += 1;
                    }
                } else if s.frame != p.frame.wrapping_add(1) {
                    self.stats.frame_gaps += 1;
                    let missing = s.frame.wrapping_sub(p.frame).wrapping_sub(1);
                    if missing < u32::MAX / 2 {
                        self.stats.frames_missing += u64::from(missing);
                    }
                }
            }
            if self.kind == Kind::Video {
                self.stats.layer = Some(s.layer);
            }
            self.stats.source = Some(s.source);
        }
        self.last = Some(Last {
            stamp: stamp.or(prev.and_then(|p| p.stamp)),
            picture_id: prev.and_then(|p| p.picture_id),
            rtp_ts,
            arrival: now,
        });
    }

    fn render(&mut self, now: Instant) {
        self.stats.frames_rendered += u64::from(self.kind == Kind::Video);
        if self.expecting_since.is_some() {
            if let Some(prev) = self.last_render
                && self.freeze_since.is_none()
                && now.duration_since(prev) > FREEZE_THRESHOLD
            {
                self.freeze_since = Some(prev);
                self.stats.freezes += 1;
            }
            self.end_freeze(now);
            if self.first_frame_pending {
                self.first_frame_pending = false;
                self.stats.first_frame = self.expecting_since.map(|t| now.duration_since(t));
            }
        }
        self.last_render = Some(now);
    }

    fn end_freeze(&mut self, now: Instant) {
        if let Some(since) = self.freeze_since.take() {
            let d = now.duration_since(since);
            self.stats.freeze_total += d;
            self.stats.freeze_longest = self.stats.freeze_longest.max(d);
        }
    }

    fn want_pli(&mut self, now: Instant) {
        if self.last_pli.is_none_or(|t| now >= t + PLI_INTERVAL) {
            self.pli_due = true;
        }
    }

    /// Takes a pending keyframe request; the caller sends the PLI.
    pub fn take_pli(&mut self, now: Instant) -> bool {
        if !std::mem::take(&mut self.pli_due) {
            return false;
        }
        self.last_pli = Some(now);
        self.stats.plis_sent += 1;
        true
    }

    /// Asks for a keyframe now (a test's manual PLI), bypassing the throttle.
    pub fn force_pli(&mut self) {
        self.pli_due = true;
    }

    /// The next time [`Slot::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let buffer = self.assembler.poll_timeout();
        let freeze = match (self.expecting_since, self.last_render, self.freeze_since) {
            (Some(_), Some(r), None) => Some(r + FREEZE_THRESHOLD + Duration::from_millis(1)),
            _ => None,
        };
        let pli = (self.need_keyframe && self.stats.frames > 0)
            .then(|| self.last_pli.map(|t| t + PLI_INTERVAL))
            .flatten();
        [buffer, freeze, pli].into_iter().flatten().min()
    }

    /// Time-driven work: releasing frames after a hole, noticing freezes, repeating PLIs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.kind == Kind::Video {
            self.drain_frames(now);
        }
        if let (Some(_), Some(r), None) =
            (self.expecting_since, self.last_render, self.freeze_since)
            && now.duration_since(r) > FREEZE_THRESHOLD
        {
            self.freeze_since = Some(r);
            self.stats.freezes += 1;
        }
        if self.need_keyframe && self.stats.frames > 0 {
            self.want_pli(now);
        }
    }

    /// Records str0m's receive statistics.
    pub fn handle_ingress_stats(&mut self, s: &MediaIngressStats) {
        self.stats.ingress = Some(IngressStats {
            packets: s.packets,
            bytes: s.bytes,
            nacks: s.nacks,
            plis: s.plis,
            firs: s.firs,
            loss: s.loss,
            jitter: s.jitter,
        });
    }

    /// Records str0m's paused flag.
    pub fn set_paused(&mut self, paused: bool) {
        self.stats.paused = paused;
    }

    /// A snapshot of the slot's numbers.
    pub fn stats(&mut self, now: Instant) -> SlotStats {
        let mut s = self.stats.clone();
        s.bitrate_bps = self.rate.bps(now);
        if let Some(since) = self.freeze_since {
            s.freeze_total += now.duration_since(since);
            s.freeze_longest = s.freeze_longest.max(now.duration_since(since));
        }
        s
    }
}
