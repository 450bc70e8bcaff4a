//! The publisher side of the bare bench: an SRTP-protected RTP stream at a chosen packet rate
//! with the packet sizes of Arbor's load generator.
//!
//! A [`Script`] is one keyframe interval of `arbor_loadgen`'s synthetic camera and microphone
//! (its `VideoSource` and `AudioSource`, packetized with its VP8 packetizer at its
//! `MAX_RTP_PAYLOAD`): the same frame sizes, keyframe and packet sizes Arbor's clients send.
//! The feeder thread plays the script in a loop, paced to [`FeedConfig::pps`] instead of the
//! media's own clock, so one publisher can offer any load. Each packet carries a header
//! extension of the size a browser's (transport-wide sequence number and absolute send time).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arbor_loadgen::media::{AudioSource, VideoSource};
use arbor_loadgen::publisher::MAX_RTP_PAYLOAD;
use arbor_loadgen::{AudioConfig, Epoch, VideoConfig, vp8};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Error;
use super::rtp::FIXED_HEADER_LEN;
use super::srtp::{MasterKey, SrtpContext};
use arbor_udp::SendBatch;

/// RTP payload type of video packets.
pub const PT_VIDEO: u8 = 96;
/// RTP payload type of audio packets.
pub const PT_AUDIO: u8 = 111;

/// Bytes of the RFC 8285 one-byte header extension block every packet carries: its 4-byte
/// header, transport-wide sequence number (id 1, 2 bytes), absolute send time (id 2, 3 bytes),
/// padding.
pub const EXTENSION_LEN: usize = 12;

/// Packets in a script: a keyframe interval of one camera layer is a few thousand.
pub const MAX_SCRIPT_PACKETS: usize = 100_000;

/// Most streams a script has (camera layers plus the microphone).
pub const MAX_SCRIPT_STREAMS: usize = 4;

/// Packets the feeder queues in one go before it checks the clock and its stop flag again.
const MAX_BURST: u64 = 1024;

/// The least the feeder sleeps between bursts: below this, sleeping costs more than it paces.
const MIN_SLEEP: Duration = Duration::from_micros(500);

/// Kernel send buffer of the feeder's socket.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// One packet of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptPacket {
    /// Stream index: camera layers first, then the microphone.
    pub stream: u8,
    /// Whether it ends a video frame.
    pub marker: bool,
    /// Media time of its frame in the stream's clock (90 kHz video, 48 kHz audio).
    pub rtp_ticks: u32,
    /// RTP payload: a VP8 payload descriptor and frame bytes, or an Opus-like frame.
    pub payload: Vec<u8>,
}

/// One keyframe interval of synthetic media, packetized.
#[derive(Debug, Clone)]
pub struct Script {
    packets: Vec<ScriptPacket>,
    video_layers: usize,
    /// Length of the script in media time.
    interval: Duration,
}

impl Script {
    /// The packets `arbor_loadgen` sends for one `video.keyframe_interval` of `video` and
    /// `audio` (at most [`MAX_SCRIPT_PACKETS`]; each camera layer and the microphone a
    /// stream, at most [`MAX_SCRIPT_STREAMS`]).
    pub fn new(video: &VideoConfig, audio: &AudioConfig, seed: u64) -> Result<Self, Error> {
        let streams = video.layers.len() + 1;
        if streams > MAX_SCRIPT_STREAMS {
            return Err(Error::Limit {
                what: "script streams",
                count: streams,
                limit: MAX_SCRIPT_STREAMS,
            });
        }
        // Media time only: the sources are clocked by the loop below, never by the wall.
        let start = Instant::now();
        let end = start + video.keyframe_interval;
        let mut camera = VideoSource::new(video.clone(), 1, Epoch(start), seed);
        let mut microphone = AudioSource::new(*audio, 2, Epoch(start), seed ^ 1);
        camera.start(start);
        microphone.start(start);
        let audio_stream = video.layers.len() as u8;
        let mut packets = Vec::new();
        while let Some(now) = camera.poll_timeout().min(microphone.poll_timeout())
            && now < end
            && packets.len() < MAX_SCRIPT_PACKETS
        {
            while let Some(f) = microphone.poll_frame(now) {
                packets.push(ScriptPacket {
                    stream: audio_stream,
                    marker: false,
                    rtp_ticks: f.rtp_ticks as u32,
                    payload: f.data,
                });
            }
            while let Some(f) = camera.poll_frame(now) {
                let parts = vp8::packetize(&f.data, MAX_RTP_PAYLOAD, f.fields);
                let last = parts.len() - 1;
                packets.extend(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, payload)| ScriptPacket {
                            stream: f.layer as u8,
                            marker: i == last,
                            rtp_ticks: f.rtp_ticks as u32,
                            payload,
                        }),
                );
            }
        }
        packets.truncate(MAX_SCRIPT_PACKETS);
        Ok(Script {
            packets,
            video_layers: video.layers.len(),
            interval: video.keyframe_interval,
        })
    }

    /// The packets, in sending order.
    pub fn packets(&self) -> &[ScriptPacket] {
        &self.packets
    }

    /// Streams: camera layers and the microphone.
    pub fn streams(&self) -> usize {
        self.video_layers + 1
    }

    /// The packet rate of the media's own clock (one publisher, unscaled).
    pub fn natural_pps(&self) -> f64 {
        self.packets.len() as f64 / self.interval.as_secs_f64()
    }

    /// Mean size of an SRTP datagram of this script with a `tag_len`-byte tag.
    pub fn mean_datagram_len(&self, tag_len: usize) -> f64 {
        let payload: usize = self.packets.iter().map(|p| p.payload.len()).sum();
        let n = self.packets.len().max(1);
        (FIXED_HEADER_LEN + EXTENSION_LEN + tag_len) as f64 + payload as f64 / n as f64
    }

    /// Whether some packet of the script has exactly this payload.
    pub fn contains_payload(&self, payload: &[u8]) -> bool {
        self.packets.iter().any(|p| p.payload == payload)
    }

    fn clock_rate(&self, stream: u8) -> u64 {
        if usize::from(stream) < self.video_layers {
            90_000
        } else {
            48_000
        }
    }
}

/// What the feeder sends, where, and how fast.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The forwarder's address.
    pub destination: SocketAddr,
    /// The feeder's own address.
    pub bind: SocketAddr,
    /// The publisher's SRTP master key.
    pub keys: MasterKey,
    /// Packets per second.
    pub pps: u32,
    /// Stop after this many packets (`None`: until stopped).
    pub limit: Option<u64>,
    /// What to send.
    pub script: Arc<Script>,
    /// SSRC of stream 0; stream `n` is `ssrc + n`.
    pub ssrc: u32,
    /// Seeds the first sequence numbers and timestamps.
    pub seed: u64,
}

impl FeedConfig {
    /// `script` to `destination` at `pps`, from 127.0.0.1, until stopped.
    pub fn new(destination: SocketAddr, keys: MasterKey, pps: u32, script: Arc<Script>) -> Self {
        FeedConfig {
            destination,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            keys,
            pps,
            limit: None,
            script,
            ssrc: 0x1000_0000,
            seed: 0,
        }
    }
}

/// Counters of a feeder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    /// Packets the kernel took.
    pub packets: u64,
    /// Packets the kernel refused (or that could not be protected).
    pub send_errors: u64,
}

#[derive(Debug, Default)]
struct Shared {
    packets: AtomicU64,
    send_errors: AtomicU64,
    stop: AtomicBool,
}

/// Starts feeders.
#[derive(Debug)]
pub struct Feeder;

impl Feeder {
    /// Binds the socket and starts sending.
    pub fn spawn(config: FeedConfig) -> Result<FeedHandle, Error> {
        if config.script.packets.is_empty() {
            return Err(Error::Config("the feeder's script has no packets"));
        }
        let socket = arbor_udp::bind_udp(config.bind, SOCKET_BUFFER_BYTES, Duration::from_secs(1))
            .map_err(Error::io("bind the feeder's socket"))?;
        let worker = Worker {
            ctx: SrtpContext::new(&config.keys)?,
            socket,
            config,
            shared: Arc::new(Shared::default()),
        };
        let shared = worker.shared.clone();
        let thread = std::thread::Builder::new()
            .name("bare-feeder".into())
            .spawn(move || worker.run())
            .map_err(Error::io("start the feeder thread"))?;
        Ok(FeedHandle {
            shared,
            thread: Some(thread),
        })
    }
}

/// A running feeder; dropping it stops the thread too.
#[derive(Debug)]
pub struct FeedHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FeedHandle {
    /// The counters now.
    pub fn stats(&self) -> FeedStats {
        FeedStats {
            packets: self.shared.packets.load(Ordering::Relaxed),
            send_errors: self.shared.send_errors.load(Ordering::Relaxed),
        }
    }

    /// Whether the thread has ended (its [`FeedConfig::limit`] is sent).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the feeder to send its whole [`FeedConfig::limit`] (forever without one).
    pub fn wait(mut self) -> Result<FeedStats, Error> {
        self.join()?;
        Ok(self.stats())
    }

    /// Stops sending now and returns the final counters.
    pub fn stop(mut self) -> Result<FeedStats, Error> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.join()?;
        Ok(self.stats())
    }

    fn join(&mut self) -> Result<(), Error> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(Error::Panicked("feeder")),
            _ => Ok(()),
        }
    }
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.join();
    }
}

/// Per-stream RTP state of the feeder.
#[derive(Debug, Clone, Copy, Default)]
struct StreamTx {
    seq: u16,
    ts_origin: u32,
}

struct Worker {
    config: FeedConfig,
    socket: UdpSocket,
    ctx: SrtpContext,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        let mut rng = StdRng::seed_from_u64(self.config.seed);
        let mut streams = [StreamTx::default(); MAX_SCRIPT_STREAMS];
        for s in &mut streams {
            *s = StreamTx {
                seq: rng.random(),
                ts_origin: rng.random(),
            };
        }
        let mut tx = SendBatch::new(false);
        let limit = self.config.limit.unwrap_or(u64::MAX);
        let pps = f64::from(self.config.pps.max(1));
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < limit && !self.shared.stop.load(Ordering::Relaxed) {
            let due = ((start.elapsed().as_secs_f64() * pps) as u64).min(limit);
            let burst_end = due.min(sent + MAX_BURST);
            let ast = abs_send_time(start.elapsed());
            while sent < burst_end {
                if !tx.has_room() {
                    self.flush(&mut tx);
                }
                self.queue(&mut tx, &mut streams, sent, ast);
                sent += 1;
            }
            self.flush(&mut tx);
            if sent < due || sent >= limit {
                continue;
            }
            // Sleep until the next packet is due, but long enough to send a burst.
            let next = Duration::from_secs_f64((sent + 1) as f64 / pps);
            std::thread::sleep(next.saturating_sub(start.elapsed()).max(MIN_SLEEP));
        }
        self.flush(&mut tx);
    }

    /// Writes, protects and queues packet `n` of the endless loop over the script.
    fn queue(&mut self, tx: &mut SendBatch, streams: &mut [StreamTx], n: u64, ast: u32) {
        let script = &self.config.script;
        let len = script.packets.len() as u64;
        let p = &script.packets[(n % len) as usize];
        // Each lap of the script moves the media clock on by the script's length.
        let lap_ticks =
            (n / len) * script.clock_rate(p.stream) * script.interval.as_millis() as u64 / 1000;
        let stream = &mut streams[usize::from(p.stream)];
        let header = RtpFields {
            pt: if usize::from(p.stream) < script.video_layers {
                PT_VIDEO
            } else {
                PT_AUDIO
            },
            marker: p.marker,
            seq: stream.seq,
            ts: stream
                .ts_origin
                .wrapping_add(p.rtp_ticks)
                .wrapping_add(lap_ticks as u32),
            ssrc: self.config.ssrc.wrapping_add(u32::from(p.stream)),
            twcc: n as u16,
            abs_send_time: ast,
        };
        stream.seq = stream.seq.wrapping_add(1);
        let slot = tx.slot();
        let len = header.write(slot, &p.payload);
        match self.ctx.protect_rtp(slot, len) {
            Ok(len) => tx.commit(self.config.destination, len),
            Err(_) => {
                self.shared.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&self, tx: &mut SendBatch) {
        let f = tx.flush(&self.socket);
        self.shared
            .packets
            .fetch_add(f.datagrams, Ordering::Relaxed);
        self.shared
            .send_errors
            .fetch_add(f.errors, Ordering::Relaxed);
    }
}

/// The header fields the feeder writes.
struct RtpFields {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    twcc: u16,
    abs_send_time: u32,
}

impl RtpFields {
    /// Writes header, extension block and `payload` into `buf`; returns the RTP length.
    /// `buf` is a send slot, far longer than any script packet.
    fn write(&self, buf: &mut [u8], payload: &[u8]) -> usize {
        buf[0] = 0x90; // V=2, X=1
        buf[1] = self.pt | (u8::from(self.marker) << 7);
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let ast = self.abs_send_time.to_be_bytes();
        let twcc = self.twcc.to_be_bytes();
        let ext = [
            0xbe, 0xde, 0, 2, // one-byte header extensions, 2 words
            0x11, twcc[0], twcc[1], // id 1, 2 bytes
            0x22, ast[1], ast[2], ast[3], // id 2, 3 bytes
            0,      // padding
        ];
        let h = FIXED_HEADER_LEN + EXTENSION_LEN;
        buf[FIXED_HEADER_LEN..h].copy_from_slice(&ext);
        buf[h..h + payload.len()].copy_from_slice(payload);
        h + payload.len()
    }
}

/// abs-send-time: seconds in 6.18 fixed point, 24 bits.
fn abs_send_time(t: Duration) -> u32 {
    ((t.as_nanos() << 18) / 1_000_000_000) as u32 & 0x00ff_ffff
}
