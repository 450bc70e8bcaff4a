//! Edge CPU per forwarded packet: one publisher (3-layer simulcast VP8 + Opus) and N
//! subscribers on one worker, all real str0m sessions with SRTP.
//!
//! The publisher's encrypted datagrams are captured in virtual time, then replayed into the
//! worker: the timed part is exactly what the edge does per packet — demux, SRTP decrypt,
//! routing, layer verdict, seq/ts/picture-id rewrite, SRTP encrypt per subscriber — and
//! nothing the clients do. Throughput is reported per *forwarded* packet.
//!
//!     cargo bench -p arbor-edge-core --bench router

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use arbor_loadgen::ClientConfig;
use common::Mesh;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edge_core::Limits;
use edge_core::signal::{ClientMsg, Kind};

/// A meeting with `subs` subscribers watching the publisher's 720p layer, and 1 s of the
/// publisher's traffic captured (not yet delivered).
fn setup(subs: usize) -> (Mesh, Vec<common::Captured>) {
    let mut mesh = Mesh::new(Limits::default());
    mesh.join("pub", ClientConfig::new(mesh.epoch));
    let ids: Vec<usize> = (0..subs)
        .map(|i| mesh.join(&format!("s{i}"), ClientConfig::subscriber(mesh.epoch, 1, 1)))
        .collect();
    mesh.run(Duration::from_millis(1500));
    let tracks = mesh.tracks_seen(ids[0]);
    for &s in &ids {
        let mids = mesh.peers[s].client.mids();
        for t in &tracks {
            let mid = match t.kind {
                Kind::Video => mids.video_slots[0],
                Kind::Audio => mids.audio_slots[0],
            };
            mesh.send(
                s,
                ClientMsg::Subscribe {
                    track_id: t.id,
                    mid: mid.to_string(),
                    max_width: None,
                    max_height: Some(720),
                },
            );
        }
    }
    mesh.run(Duration::from_secs(2));
    let captured = mesh.capture(0, Duration::from_secs(1));
    (mesh, captured)
}

fn forwarding(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for subs in [1usize, 10, 50] {
        // Count what one replay forwards, to express the cost per forwarded packet.
        let (mut mesh, captured) = setup(subs);
        let forwarded_before = mesh.edges[0].worker.stats().rtp_forwarded;
        mesh.replay_to_edge(&captured);
        let forwarded = mesh.edges[0].worker.stats().rtp_forwarded - forwarded_before;
        assert!(forwarded > 0, "nothing forwarded");
        group.throughput(Throughput::Elements(forwarded));
        group.bench_function(format!("1_to_{subs}"), |b| {
            b.iter_batched(
                || setup(subs),
                |(mut mesh, captured)| {
                    let t = Instant::now();
                    mesh.replay_to_edge(&captured);
                    (t.elapsed(), mesh)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
