//! One measurement of the bare forwarder: a feeder, the forwarder and N sinks on loopback, the
//! forwarder thread's CPU time over a window, and what arrived.
//!
//! The kernel delivers a loopback datagram to the receiving socket in the sender's context,
//! so the forwarder thread's CPU time includes the receive path of every egress packet (and
//! the wake-up of a blocked sink thread, unless [`MeasureOptions::sink_poll`] is set). An SFU
//! measured on loopback or a veth pair pays the same, which is what makes the figures
//! comparable; on a real NIC both would be cheaper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor_loadgen::srtp::DEFAULT_PROFILE;
use arbor_loadgen::{AudioConfig, SrtpProfile, VideoConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use super::Error;
use super::feed::{FeedConfig, Feeder, Script};
use super::forwarder::{Forwarder, ForwarderConfig, ForwarderStats, Subscriber};
use super::sink::{SinkConfig, Sinks};
use super::srtp::{MasterKey, tag_len};
use crate::cpu;

/// How long the sinks may take to receive what is still in flight once the feeder stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What to measure.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    /// Subscribers (sinks), each sent every packet.
    pub subscribers: usize,
    /// Packets per second the publisher sends; egress is this times `subscribers`.
    pub pps: u32,
    /// The measured window.
    pub duration: Duration,
    /// Traffic before the window, so that it starts in steady state.
    pub warmup: Duration,
    /// SRTP profile on every leg.
    pub profile: SrtpProfile,
    /// Let the forwarder use UDP GSO where the kernel has it.
    pub gso: bool,
    /// Seeds keys, sequence numbers and the media.
    pub seed: u64,
    /// The forwarder's address.
    pub bind: SocketAddr,
    /// How the sinks wait ([`SinkConfig::poll_interval`]).
    pub sink_poll: Option<Duration>,
    /// The publisher's camera.
    pub video: VideoConfig,
    /// The publisher's microphone.
    pub audio: AudioConfig,
}

impl MeasureOptions {
    /// `subscribers` at `pps` for `duration` after 1 s of warm-up: the forwarding benchmark's
    /// camera (one 640x360 VP8 layer at 1 Mbit/s) and microphone, the profile every str0m and
    /// Janus leg negotiates, no GSO, on 127.0.0.1.
    pub fn new(subscribers: usize, pps: u32, duration: Duration) -> Self {
        MeasureOptions {
            subscribers,
            pps,
            duration,
            warmup: Duration::from_secs(1),
            profile: DEFAULT_PROFILE,
            gso: false,
            seed: 1,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            sink_poll: None,
            video: VideoConfig::single_layer(),
            audio: AudioConfig::default(),
        }
    }
}

/// What a measurement found. Rates are over the window; loss is over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Subscribers served.
    pub subscribers: usize,
    /// SRTP profile.
    pub profile: SrtpProfile,
    /// Whether the forwarder used GSO to the end.
    pub gso: bool,
    /// Packets per second the publisher was asked to send.
    pub offered_pps: u32,
    /// Packets per second the forwarder received.
    pub ingress_pps: f64,
    /// Packets per second the forwarder sent.
    pub egress_pps: f64,
    /// CPU time of the forwarder thread in the window, seconds.
    pub cpu_s: f64,
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Egress packets per CPU-second of the forwarder thread: the figure compared.
    pub egress_pps_per_cpu_s: f64,
    /// Packets the sinks did not receive, as a percentage of those sent to them (every
    /// packet the feeder sent, once per subscriber).
    pub loss_pct: f64,
    /// Mean SRTP datagram size, bytes.
    pub mean_datagram_bytes: f64,
    /// The forwarder's counters at the end.
    pub forwarder: ForwarderStats,
    /// The seed, to replay.
    pub seed: u64,
}

/// Measures `subscribers` at `pps` for `duration` with [`MeasureOptions::new`]'s defaults.
pub fn measure(subscribers: usize, pps: u32, duration: Duration) -> Result<Measurement, Error> {
    measure_with(&MeasureOptions::new(subscribers, pps, duration))
}

/// Runs feeder, forwarder and sinks as `options` says and measures the forwarder.
pub fn measure_with(options: &MeasureOptions) -> Result<Measurement, Error> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let sinks = Sinks::spawn(&SinkConfig {
        poll_interval: options.sink_poll,
        ..SinkConfig::new(options.subscribers)
    })?;
    let publisher = MasterKey::random(options.profile, &mut rng);
    let mut config = ForwarderConfig::new(options.bind, publisher);
    config.gso = options.gso;
    config.seed = options.seed;
    config.subscribers = sinks
        .addrs()
        .iter()
        .zip(0u32..)
        .map(|(&addr, n)| Subscriber {
            addr,
            keys: MasterKey::random(options.profile, &mut rng),
            ssrc: 0x2000_0000 + 16 * n,
        })
        .collect();
    let forwarder = Forwarder::spawn(&config)?;
    let script = Arc::new(Script::new(&options.video, &options.audio, options.seed)?);
    let mean_datagram_bytes = script.mean_datagram_len(tag_len(options.profile));
    let mut feed = FeedConfig::new(forwarder.local_addr(), publisher, options.pps, script);
    feed.seed = options.seed;
    let feeder = Feeder::spawn(feed)?;

    std::thread::sleep(options.warmup);
    let (t0, s0, c0) = (
        Instant::now(),
        forwarder.stats(),
        cpu::thread(forwarder.tid())?,
    );
    std::thread::sleep(options.duration);
    let (t1, s1, c1) = (
        Instant::now(),
        forwarder.stats(),
        cpu::thread(forwarder.tid())?,
    );

    let sent = feeder.stop()?.packets * options.subscribers as u64;
    let received = sinks.wait_for_total(sent, DRAIN_TIMEOUT);
    let gso = forwarder.gso();
    let stats = forwarder.stop()?;
    sinks.stop()?;

    let window_s = (t1 - t0).as_secs_f64();
    let cpu_s = (c1.saturating_sub(c0)).as_secs_f64();
    let egress = (s1.packets_out - s0.packets_out) as f64;
    Ok(Measurement {
        subscribers: options.subscribers,
        profile: options.profile,
        gso,
        offered_pps: options.pps,
        ingress_pps: (s1.packets_in - s0.packets_in) as f64 / window_s,
        egress_pps: egress / window_s,
        cpu_s,
        window_s,
        egress_pps_per_cpu_s: if cpu_s > 0.0 { egress / cpu_s } else { 0.0 },
        loss_pct: if sent == 0 {
            0.0
        } else {
            100.0 * sent.saturating_sub(received) as f64 / sent as f64
        },
        mean_datagram_bytes,
        forwarder: stats,
        seed: options.seed,
    })
}
