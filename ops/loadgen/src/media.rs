//! Synthetic media sources: a simulcast VP8 "camera" and an Opus-like "microphone".
//!
//! They produce frames with the sizes, rates and keyframe behaviour of a browser encoder, but
//! the bytes after the codec header are a [`Stamp`] plus filler, not pictures. Sources are
//! clocked by the caller: `poll_timeout` says when the next frame is due and `poll_frame(now)`
//! returns the frames due by `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::stamp::{AUDIO_LAYER, Epoch, STAMP_LEN, Stamp};
use crate::vp8::{self, DescriptorFields, PICTURE_ID_MASK};

/// When a source falls further behind than this many frames (a stalled driver), it skips to
/// the present instead of bursting, like a real encoder dropping frames.
const MAX_CATCHUP_FRAMES: u64 = 3;

/// One simulcast layer the camera sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// RTP stream id (`a=rid`).
    pub rid: String,
    /// Frame width written into keyframe headers.
    pub width: u16,
    /// Frame height written into keyframe headers.
    pub height: u16,
    /// Target bit rate of the layer's frames (codec payload, not RTP/UDP overhead).
    pub bitrate_bps: u32,
}

impl LayerSpec {
    /// A layer named `rid`.
    pub fn new(rid: &str, width: u16, height: u16, bitrate_bps: u32) -> Self {
        LayerSpec {
            rid: rid.to_string(),
            width,
            height,
            bitrate_bps,
        }
    }
}

/// The synthetic camera.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    /// Layers, lowest first. The default is `q` 320x180 150 kbit/s, `h` 640x360 500 kbit/s,
    /// `f` 1280x720 1.5 Mbit/s.
    pub layers: Vec<LayerSpec>,
    /// Frames per second on every layer.
    pub fps: u32,
    /// A keyframe at least this often on every layer (requests add more).
    pub keyframe_interval: Duration,
    /// Keyframe size as a multiple of an interframe's.
    pub keyframe_ratio: u32,
    /// Temporal layers per simulcast layer: 1 (L1T1) or 3 (L1T3, TIDs 0,2,1,2).
    pub temporal_layers: u8,
    /// Whether the layers go out as rid simulcast (`a=simulcast:send`). Without it the camera
    /// must have exactly one layer, sent on the m-line's single SSRC as a browser without
    /// simulcast does; its `rid` then only labels the layer's statistics.
    pub simulcast: bool,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            layers: vec![
                LayerSpec::new("q", 320, 180, 150_000),
                LayerSpec::new("h", 640, 360, 500_000),
                LayerSpec::new("f", 1280, 720, 1_500_000),
            ],
            fps: 30,
            keyframe_interval: Duration::from_secs(3),
            keyframe_ratio: 9,
            temporal_layers: 1,
            simulcast: true,
        }
    }
}

impl VideoConfig {
    /// One 640x360 VP8 layer at 1 Mbit/s and 30 fps, without simulcast: the camera the
    /// forwarding benchmark sends to every SFU it compares, so none of them picks layers.
    pub fn single_layer() -> Self {
        VideoConfig {
            layers: vec![LayerSpec::new("h", 640, 360, 1_000_000)],
            simulcast: false,
            ..VideoConfig::default()
        }
    }
}

/// The synthetic microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// Whether the participant talks: decides the audio-level header extension value.
    pub speaking: bool,
    /// Level sent while speaking, in -dBov (0 loudest, -127 silence).
    pub speaking_level: i8,
    /// Smallest and largest frame, bytes (Opus at 20 ms is roughly 60-120).
    pub frame_bytes: (usize, usize),
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            speaking: false,
            speaking_level: -20,
            frame_bytes: (60, 120),
        }
    }
}

/// Level sent while silent.
pub const SILENT_LEVEL: i8 = -127;

/// One encoded video frame of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Index into [`VideoConfig::layers`].
    pub layer: usize,
    /// Whether this is a keyframe (and so carries the resolution).
    pub keyframe: bool,
    /// The frame: VP8 frame header, stamp, filler.
    pub data: Vec<u8>,
    /// When the frame was "captured" (its due time).
    pub capture: Instant,
    /// Capture time in 90 kHz ticks since the source started.
    pub rtp_ticks: u64,
    /// The payload descriptor fields for this frame's packets.
    pub fields: DescriptorFields,
}

/// One encoded audio frame (20 ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The frame: an Opus TOC byte, stamp, filler.
    pub data: Vec<u8>,
    /// When the frame was "captured".
    pub capture: Instant,
    /// Capture time in 48 kHz ticks since the source started.
    pub rtp_ticks: u64,
    /// Audio level for the RFC 6464 extension, -dBov.
    pub level: i8,
    /// Voice activity flag of the same extension.
    pub voice: bool,
}

/// Frame clock shared by both sources: frame `n` is due at `start + n * interval`.
#[derive(Debug, Clone)]
struct Clock {
    start: Option<Instant>,
    next: u64,
    interval_ns: u64,
    skipped: u64,
}

impl Clock {
    fn new(interval_ns: u64) -> Self {
        Clock {
            start: None,
            next: 0,
            interval_ns,
            skipped: 0,
        }
    }

    fn due(&self, n: u64) -> Option<Instant> {
        Some(self.start? + Duration::from_nanos(n * self.interval_ns))
    }

    /// The next frame index due by `now`, skipping ahead if too far behind.
    fn take_due(&mut self, now: Instant) -> Option<(u64, Instant)> {
        let start = self.start?;
        if self.due(self.next)? > now {
            return None;
        }
        let behind = u64::try_from(now.duration_since(start).as_nanos()).unwrap_or(u64::MAX)
            / self.interval_ns;
        if behind > self.next + MAX_CATCHUP_FRAMES {
            self.skipped += behind - self.next;
            self.next = behind;
        }
        let n = self.next;
        self.next += 1;
        Some((n, self.due(n)?))
    }
}

#[derive(Debug, Clone)]
struct LayerEncoder {
    frame_no: u32,
    /// Position in the temporal-layer cycle; a keyframe restarts it.
    cycle: u32,
    next_keyframe: Option<Instant>,
    force_keyframe: bool,
    picture_id: u16,
    tl0_pic_idx: u8,
    delta_bytes: usize,
}

/// The simulcast VP8 camera: every frame interval, one frame per layer.
#[derive(Debug)]
pub struct VideoSource {
    config: VideoConfig,
    source_id: u32,
    epoch: Epoch,
    rng: StdRng,
    clock: Clock,
    layers: Vec<LayerEncoder>,
    pending: VecDeque<VideoFrame>,
}

impl VideoSource {
    /// A camera that stamps frames with `source_id`, measuring send times from `epoch`.
    pub fn new(config: VideoConfig, source_id: u32, epoch: Epoch, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let fps = u64::from(config.fps.max(1));
        let per_interval = (config.keyframe_interval.as_secs_f64() * fps as f64).max(1.0);
        let ratio = f64::from(config.keyframe_ratio.max(1));
        let layers = config
            .layers
            .iter()
            .map(|l| {
                let avg = f64::from(l.bitrate_bps) / 8.0 / fps as f64;
                // One keyframe and (per_interval - 1) interframes average out to `avg`.
                let delta = avg * per_interval / (per_interval - 1.0 + ratio);
                LayerEncoder {
                    frame_no: 0,
                    cycle: 0,
                    next_keyframe: None,
                    force_keyframe: true,
                    picture_id: rng.random::<u16>() & PICTURE_ID_MASK,
                    tl0_pic_idx: rng.random(),
                    delta_bytes: (delta as usize).max(STAMP_LEN + vp8::KEYFRAME_HEADER_LEN),
                }
            })
            .collect();
        VideoSource {
            clock: Clock::new(1_000_000_000 / fps),
            config,
            source_id,
            epoch,
            rng,
            layers,
            pending: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VideoConfig {
        &self.config
    }

    /// Starts the frame clock: the first frames (keyframes) are due at `now`.
    pub fn start(&mut self, now: Instant) {
        if self.clock.start.is_none() {
            self.clock.start = Some(now);
        }
    }

    /// Frames skipped because the caller fell behind.
    pub fn skipped_frames(&self) -> u64 {
        self.clock.skipped
    }

    /// Makes the next frame of `layer` (all layers if `None`) a keyframe.
    pub fn request_keyframe(&mut self, layer: Option<usize>) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            if layer.is_none_or(|x| x == i) {
                l.force_keyframe = true;
            }
        }
    }

    /// When the next frame is due; `None` before [`VideoSource::start`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(f) = self.pending.front() {
            return Some(f.capture);
        }
        self.clock.due(self.clock.next)
    }

    /// The next frame due by `now`, layer by layer.
    pub fn poll_frame(&mut self, now: Instant) -> Option<VideoFrame> {
        if self.pending.is_empty() {
            let (n, capture) = self.clock.take_due(now)?;
            for layer in 0..self.layers.len() {
                let frame = self.encode(layer, n, capture);
                self.pending.push_back(frame);
            }
        }
        self.pending.pop_front()
    }

    fn encode(&mut self, layer: usize, n: u64, capture: Instant) -> VideoFrame {
        let spec = &self.config.layers[layer];
        let fps = u64::from(self.config.fps.max(1));
        let enc = &mut self.layers[layer];
        let keyframe = enc.force_keyframe || enc.next_keyframe.is_none_or(|t| capture >= t);
        if keyframe {
            enc.force_keyframe = false;
            enc.next_keyframe = Some(capture + self.config.keyframe_interval);
            enc.cycle = 0;
        }
        // TIDs for L1T3 cycle 0,2,1,2; a keyframe restarts the cycle.
        let pos = enc.cycle % 4;
        enc.cycle = enc.cycle.wrapping_add(1);
        let tid = match self.config.temporal_layers {
            3 => [0u8, 2, 1, 2][pos as usize],
            _ => 0,
        };
        if tid == 0 {
            enc.tl0_pic_idx = enc.tl0_pic_idx.wrapping_add(1);
        }
        let jitter = self.rng.random_range(0.9..1.1);
        let base = enc.delta_bytes as f64 * jitter;
        let len = if keyframe {
            base * f64::from(self.config.keyframe_ratio.max(1))
        } else {
            base
        } as usize;
        let len = len.max(vp8::KEYFRAME_HEADER_LEN + STAMP_LEN);
        let mut data = vec![(enc.frame_no & 0xff) as u8; len];
        let size = keyframe.then_some((spec.width, spec.height));
        let at = vp8::write_frame_header(&mut data, size, (len / 4) as u32);
        Stamp {
            source: self.source_id,
            layer: u8::try_from(layer).unwrap_or(u8::MAX - 1),
            frame: enc.frame_no,
            sent_ns: self.epoch.nanos_at(capture),
        }
        .write(&mut data[at..]);
        let fields = DescriptorFields {
            picture_id: enc.picture_id,
            tl0_pic_idx: enc.tl0_pic_idx,
            tid,
            // TID 1 and the first TID 2 of a cycle reference only the TL0 frame.
            layer_sync: keyframe || (tid > 0 && pos != 3),
            non_reference: self.config.temporal_layers == 3 && tid == 2,
        };
        enc.picture_id = (enc.picture_id + 1) & PICTURE_ID_MASK;
        enc.frame_no = enc.frame_no.wrapping_add(1);
        VideoFrame {
            layer,
            keyframe,
            data,
            capture,
            rtp_ticks: n * 90_000 / fps,
            fields,
        }
    }
}

/// The Opus-like microphone: a 20 ms frame 50 times a second.
#[derive(Debug)]
pub struct AudioSource {
    config: AudioConfig,
    source_id: u32,
    epoch: Epoch,
    rng: StdRng,
    clock: Clock,
    frame_no: u32,
}

/// Opus TOC byte: config 15 (hybrid FB, 20 ms), mono, one frame.
const OPUS_TOC: u8 = 15 << 3;

impl AudioSource {
    /// A microphone that stamps frames with `source_id`.
    pub fn new(config: AudioConfig, source_id: u32, epoch: Epoch, seed: u64) -> Self {
        AudioSource {
            config,
            source_id,
            epoch,
            rng: StdRng::seed_from_u64(seed),
            clock: Clock::new(20_000_000),
            frame_no: 0,
        }
    }

    /// Starts the frame clock.
    pub fn start(&mut self, now: Instant) {
        if self.clock.start.is_none() {
            self.clock.start = Some(now);
        }
    }

    /// Switches between speaking and silent levels.
    pub fn set_speaking(&mut self, speaking: bool) {
        self.config.speaking = speaking;
    }

    /// Frames skipped because the caller fell behind.
    pub fn skipped_frames(&self) -> u64 {
        self.clock.skipped
    }

    /// Whether the source is speaking.
    pub fn is_speaking(&self) -> bool {
        self.config.speaking
    }

    /// When the next frame is due; `None` before [`AudioSource::start`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.due(self.clock.next)
    }

    /// The next frame due by `now`.
    pub fn poll_frame(&mut self, now: Instant) -> Option<AudioFrame> {
        let (n, capture) = self.clock.take_due(now)?;
        let (lo, hi) = self.config.frame_bytes;
        let len = self.rng.random_range(lo..=hi.max(lo)).max(1 + STAMP_LEN);
        let mut data = vec![0x55; len];
        data[0] = OPUS_TOC;
        Stamp {
            source: self.source_id,
            layer: AUDIO_LAYER,
            frame: self.frame_no,
            sent_ns: self.epoch.nanos_at(capture),
        }
        .write(&mut data[1..]);
        self.frame_no = self.frame_no.wrapping_add(1);
        let (level, voice) = if self.config.speaking {
            (self.config.speaking_level, true)
        } else {
            (SILENT_LEVEL, false)
        };
        Some(AudioFrame {
            data,
            capture,
            rtp_ticks: n * 960,
            level,
            voice,
        })
    }
}

/// Where the stamp sits in an audio frame.
pub const AUDIO_STAMP_OFFSET: usize = 1;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_epoch as t0;

    #[test]
    fn layers_hit_their_bitrates_and_keyframe_every_interval() {
        let start = t0();
        let mut src = VideoSource::new(VideoConfig::default(), 7, Epoch(start), 1);
        src.start(start);
        let mut bytes = [0usize; 3];
        let mut keys = [0usize; 3];
        let end = start + Duration::from_secs(9);
        while let Some(t) = src.poll_timeout() {
            if t >= end {
                break;
            }
            while let Some(f) = src.poll_frame(t) {
                bytes[f.layer] += f.data.len();
                keys[f.layer] += usize::from(f.keyframe);
                let h = vp8::parse_frame_header(&f.data).unwrap();
                assert_eq!(h.keyframe, f.keyframe);
            }
        }
        for (i, spec) in VideoConfig::default().layers.iter().enumerate() {
            let bps = bytes[i] as f64 * 8.0 / 9.0;
            let target = f64::from(spec.bitrate_bps);
            assert!(
                (bps / target - 1.0).abs() < 0.1,
                "layer {i}: {bps} vs {target}"
            );
            assert_eq!(keys[i], 3, "layer {i}");
        }
    }

    #[test]
    fn keyframe_on_request_for_one_layer() {
        let start = t0();
        let mut src = VideoSource::new(VideoConfig::default(), 7, Epoch(start), 1);
        src.start(start);
        while src.poll_frame(start).is_some() {}
        src.request_keyframe(Some(1));
        let next = src.poll_timeout().unwrap();
        let frames: Vec<_> = std::iter::from_fn(|| src.poll_frame(next)).collect();
        let keys: Vec<bool> = frames.iter().map(|f| f.keyframe).collect();
        assert_eq!(keys, vec![false, true, false]);
        assert!(frames[1].data.len() > 5 * frames[0].data.len());
    }

    #[test]
    fn stalled_caller_skips_instead_of_bursting() {
        let start = t0();
        let mut src = AudioSource::new(AudioConfig::default(), 1, Epoch(start), 1);
        src.start(start);
        let late = start + Duration::from_secs(1);
        let n = std::iter::from_fn(|| src.poll_frame(late)).count();
        assert_eq!(n, 1);
        assert!(src.clock.skipped >= 45);
    }

    #[test]
    fn audio_frames_carry_level_and_stamp() {
        let start = t0();
        let config = AudioConfig {
            speaking: true,
            ..Default::default()
        };
        let mut src = AudioSource::new(config, 9, Epoch(start), 1);
        src.start(start);
        let f = src.poll_frame(start).unwrap();
        assert_eq!((f.level, f.voice), (-20, true));
        assert!((60..=120).contains(&f.data.len()));
        let s = Stamp::parse(&f.data[AUDIO_STAMP_OFFSET..]).unwrap();
        assert_eq!((s.source, s.layer, s.frame), (9, AUDIO_LAYER, 0));
        src.set_speaking(false);
        let f = src.poll_frame(start + Duration::from_millis(20)).unwrap();
        assert_eq!(f.level, SILENT_LEVEL);
    }
}
