//! Join placements per second: 1,000 meetings over a region of 10 edges.
//!
//! - `first_join`: placing 1,000 new meetings into an empty region (hashing, the load bound,
//!   bookkeeping).
//! - `later_join`: the same 1,000 meetings asked again (the sticky path every further
//!   participant of a meeting takes).
//!
//!     cargo bench -p arbor-origin-core --bench placement

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use origin_core::GeoPoint;
use origin_core::placement::{Config, Placement};
use origin_core::registry::{self, Edge, Registry};
use relay_proto::{EdgeId, MeetingId, RegionId};

const MEETINGS: usize = 1000;

fn region_of_ten(now: Instant) -> Registry {
    let mut r = Registry::new(registry::Config::default());
    for i in 0..10 {
        r.handle_register(
            now,
            Edge {
                id: EdgeId::new(&format!("edge-{i}")).unwrap(),
                region: RegionId::new("eu-west").unwrap(),
                location: GeoPoint::new(50.0, 8.0).unwrap(),
                relay_addr: "127.0.0.1:4433".parse().unwrap(),
                http_url: format!("http://edge-{i}.test"),
                capacity: 500,
            },
        )
        .unwrap();
    }
    r
}

fn placements(c: &mut Criterion) {
    let registry = region_of_ten(Instant::now());
    let region = RegionId::new("eu-west").unwrap();
    let meetings: Vec<MeetingId> = (0..MEETINGS)
        .map(|i| MeetingId::new(&format!("meeting-{i:08x}")).unwrap())
        .collect();
    let mut g = c.benchmark_group("placement");
    g.throughput(Throughput::Elements(MEETINGS as u64));
    g.bench_function("first_join", |b| {
        b.iter_batched(
            || Placement::new(Config::default()),
            |mut p| {
                for m in &meetings {
                    p.place(m, &region, &registry).unwrap();
                }
                p
            },
            BatchSize::SmallInput,
        );
    });
    let mut warm = Placement::new(Config::default());
    for m in &meetings {
        warm.place(m, &region, &registry).unwrap();
    }
    g.bench_function("later_join", |b| {
        b.iter(|| {
            for m in &meetings {
                warm.place(m, &region, &registry).unwrap();
            }
        });
    });
    g.finish();
}

criterion_group!(benches, placements);
criterion_main!(benches);
