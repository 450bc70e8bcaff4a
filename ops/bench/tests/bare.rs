#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The bare forwarder on 127.0.0.1: one feeder, the forwarder, twenty sinks.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use arbor_bench::bare::rtp::Header;
use arbor_bench::bare::srtp::SrtpError;
use arbor_bench::bare::{
    FeedConfig, Feeder, Forwarder, ForwarderConfig, MasterKey, MeasureOptions, Script, SinkConfig,
    Sinks, SrtpContext, Subscriber, measure_with,
};
use arbor_loadgen::{AudioConfig, SrtpProfile, VideoConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SUBSCRIBERS: usize = 20;
const PACKETS: u64 = 3000;
const PPS: u32 = 3000;
const SAMPLE_EVERY: u64 = 100;
/// Long enough for a loaded machine; the test waits for a condition, never this long if the
/// condition holds.
const PATIENCE: Duration = Duration::from_secs(20);

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Feeds `PACKETS` through a forwarder to `SUBSCRIBERS` sinks and checks that every packet
/// arrived once, in order, encrypted for its subscriber and carrying the feeder's payload.
fn every_packet_arrives(profile: SrtpProfile, gso: bool, seed: u64) {
    println!("profile {profile:?}, gso {gso}, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let sinks = Sinks::spawn(&SinkConfig {
        sample_every: SAMPLE_EVERY,
        ..SinkConfig::new(SUBSCRIBERS)
    })
    .unwrap();
    let publisher = MasterKey::random(profile, &mut rng);
    let subscribers: Vec<Subscriber> = sinks
        .addrs()
        .iter()
        .zip(0u32..)
        .map(|(&addr, n)| Subscriber {
            addr,
            keys: MasterKey::random(profile, &mut rng),
            ssrc: 1000 + 10 * n,
        })
        .collect();
    let mut config = ForwarderConfig::new(localhost(), publisher);
    config.subscribers = subscribers.clone();
    config.gso = gso;
    config.seed = seed;
    let forwarder = Forwarder::spawn(&config).unwrap();
    let script =
        Arc::new(Script::new(&VideoConfig::single_layer(), &AudioConfig::default(), seed).unwrap());
    let mut feed = FeedConfig::new(forwarder.local_addr(), publisher, PPS, script.clone());
    feed.limit = Some(PACKETS);
    feed.seed = seed;
    let fed = Feeder::spawn(feed).unwrap().wait().unwrap();
    assert_eq!((fed.packets, fed.send_errors), (PACKETS, 0));

    let expected = PACKETS * SUBSCRIBERS as u64;
    assert_eq!(sinks.wait_for_total(expected, PATIENCE), expected);
    assert_eq!(sinks.foreign(), 0);
    let used_gso = forwarder.gso();
    let tid = forwarder.tid();
    let task = format!("/proc/self/task/{tid}");
    assert!(std::path::Path::new(&task).exists());
    let stats = forwarder.stop().unwrap();
    assert!(
        !std::path::Path::new(&task).exists(),
        "stop joins the thread"
    );
    println!("{stats:?}, GSO used: {used_gso}");
    assert_eq!(stats.packets_in, PACKETS);
    assert_eq!(stats.dropped_in, 0);
    assert_eq!(stats.packets_out, expected);
    assert_eq!((stats.send_errors, stats.protect_errors), (0, 0));
    assert!(stats.recv_batches > 0 && stats.recv_batches <= PACKETS);
    if !used_gso {
        // Without GSO a call carries at most 64 datagrams.
        assert!(stats.send_calls >= expected.div_ceil(64), "{stats:?}");
    }

    let samples: Vec<Vec<Vec<u8>>> = (0..SUBSCRIBERS).map(|n| sinks.samples(n)).collect();
    for (n, s) in sinks.stop().unwrap().iter().enumerate() {
        assert_eq!(s.packets, PACKETS, "sink {n}");
        assert_eq!((s.expected, s.missing), (PACKETS, 0), "sink {n}");
        assert_eq!((s.gaps, s.late, s.malformed), (0, 0, 0), "sink {n}");
    }
    let mut first_seqs = std::collections::HashSet::new();
    for (n, sub) in subscribers.iter().enumerate() {
        let mut ctx = SrtpContext::new(&sub.keys).unwrap();
        // Another subscriber's keys do not open this subscriber's packets.
        let other = &subscribers[(n + 1) % SUBSCRIBERS].keys;
        let mut wrong = SrtpContext::new(other).unwrap();
        assert_eq!(samples[n].len(), 16, "sink {n} keeps MAX_SAMPLES");
        for (i, sample) in samples[n].iter().enumerate() {
            let mut bytes = sample.clone();
            assert_eq!(
                wrong.unprotect_rtp(&mut bytes),
                Err(SrtpError::AuthFailed),
                "sink {n}"
            );
            let mut bytes = sample.clone();
            let len = ctx.unprotect_rtp(&mut bytes).unwrap();
            let h = Header::parse(&bytes[..len]).unwrap();
            if i == 0 {
                first_seqs.insert(h.seq);
            }
            assert!(
                h.ssrc == sub.ssrc || h.ssrc == sub.ssrc + 1,
                "sink {n}: SSRC {}",
                h.ssrc
            );
            let payload = &bytes[h.len..len];
            assert!(
                script.contains_payload(payload),
                "sink {n}: payload is not the feeder's"
            );
            // The ciphertext differs from the plain payload: encryption is real.
            assert_ne!(&sample[h.len..len], payload, "sink {n}");
        }
    }
    // Sequence numbers are rewritten per subscriber: the first packet's differ.
    assert_eq!(first_seqs.len(), SUBSCRIBERS);
}

#[test]
fn every_packet_reaches_twenty_sinks_aes_256_gcm() {
    every_packet_arrives(SrtpProfile::AeadAes256Gcm, false, 1);
}

#[test]
fn every_packet_reaches_twenty_sinks_aes_128_gcm_with_gso() {
    every_packet_arrives(SrtpProfile::AeadAes128Gcm, true, 2);
}

#[test]
fn every_packet_reaches_twenty_sinks_aes_cm_sha1_80() {
    every_packet_arrives(SrtpProfile::Aes128CmSha1_80, false, 3);
}

#[test]
fn forged_foreign_and_garbage_packets_are_dropped_and_counted() {
    let seed = 4;
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let profile = SrtpProfile::AeadAes128Gcm;
    let sinks = Sinks::spawn(&SinkConfig::new(2)).unwrap();
    let publisher = MasterKey::random(profile, &mut rng);
    let mut config = ForwarderConfig::new(localhost(), publisher);
    config.subscribers = sinks
        .addrs()
        .iter()
        .map(|&addr| Subscriber {
            addr,
            keys: MasterKey::random(profile, &mut rng),
            ssrc: 77,
        })
        .collect();
    let forwarder = Forwarder::spawn(&config).unwrap();
    let to = forwarder.local_addr();

    let rtp = |seq: u16| {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    };
    let protect = |ctx: &mut SrtpContext, plain: &[u8]| {
        let mut buf = vec![0u8; plain.len() + 16];
        buf[..plain.len()].copy_from_slice(plain);
        let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    };
    let publisher_socket = UdpSocket::bind(localhost()).unwrap();
    let stranger = UdpSocket::bind(localhost()).unwrap();
    let mut ctx = SrtpContext::new(&publisher).unwrap();
    let forger = MasterKey::random(profile, &mut rng);
    let mut forged = SrtpContext::new(&forger).unwrap();

    // Garbage and a forgery before any valid packet: nobody is latched as the publisher.
    publisher_socket.send_to(b"not rtp", to).unwrap();
    stranger
        .send_to(&protect(&mut forged, &rtp(1)), to)
        .unwrap();
    // The publisher's first packet latches its address; a replay of it is refused.
    let first = protect(&mut ctx, &rtp(2));
    publisher_socket.send_to(&first, to).unwrap();
    publisher_socket.send_to(&first, to).unwrap();
    // A valid packet from another address is not the publisher's.
    stranger.send_to(&protect(&mut ctx, &rtp(3)), to).unwrap();
    publisher_socket
        .send_to(&protect(&mut ctx, &rtp(4)), to)
        .unwrap();

    assert_eq!(sinks.wait_for_total(4, PATIENCE), 4);
    let stats = forwarder.stop().unwrap();
    assert_eq!(stats.packets_in, 6);
    assert_eq!(stats.dropped_in, 4);
    assert_eq!(stats.packets_out, 4);
    let sinks = sinks.stop().unwrap();
    assert!(
        sinks.iter().all(|s| s.packets == 2 && s.gaps == 1),
        "{sinks:?}"
    );
}

#[test]
fn measure_accounts_for_every_packet() {
    // 20k egress packets/s for a second: tens of milliseconds of CPU, several clock ticks.
    let mut options = MeasureOptions::new(10, 2000, Duration::from_secs(1));
    options.warmup = Duration::from_millis(200);
    options.seed = 5;
    println!("seed {}", options.seed);
    let m = measure_with(&options).unwrap();
    println!("{m:?}");
    assert_eq!(m.loss_pct, 0.0);
    let f = m.forwarder;
    assert_eq!(f.dropped_in + f.send_errors + f.protect_errors, 0);
    assert_eq!(f.packets_out, f.packets_in * 10);
    assert!(m.egress_pps > 0.0 && m.cpu_s > 0.0 && m.window_s >= 1.0);
    assert!((m.egress_pps_per_cpu_s - m.egress_pps * m.window_s / m.cpu_s).abs() < 1e-6);
    assert!(m.mean_datagram_bytes > 100.0 && m.mean_datagram_bytes < 1100.0);
}
