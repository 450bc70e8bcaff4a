//! Tree recompute time: a full recompute for meetings spanning 10, 100 and 1,000 edges, an
//! incremental recompute after one edge joins, and a 1,000-edge broadcast under a 3-hop bound.
//!
//! Instances are seeded random points in a 100 ms × 100 ms plane (one-way latency = distance,
//! so it is metric); every edge is a terminal that publishes and subscribes; fan-out 8.
//! Each iteration builds the dense problem from a latency matrix and assigns, as the origin does.
//!
//!     cargo bench -p arbor-origin-core --bench tree

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use origin_core::tree::{Node, Policy, Problem, Tree, assign};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relay_proto::EdgeId;

const SEED: u64 = 0x7EE5_0001;
const FAN_OUT: u32 = 8;

struct Instance {
    ids: Vec<EdgeId>,
    /// Row-major one-way latencies, µs.
    matrix: Vec<u32>,
}

fn instance(n: usize) -> Instance {
    let mut rng = StdRng::seed_from_u64(SEED ^ n as u64);
    let points: Vec<(f64, f64)> = (0..n)
        .map(|_| {
            (
                rng.random_range(0.0..100_000.0),
                rng.random_range(0.0..100_000.0),
            )
        })
        .collect();
    let mut matrix = vec![0; n * n];
    for i in 0..n {
        for j in 0..n {
            let (a, b) = (points[i], points[j]);
            matrix[i * n + j] = (a.0 - b.0).hypot(a.1 - b.1).round() as u32;
        }
    }
    let ids = (0..n)
        .map(|i| EdgeId::new(&format!("edge-{i:04}")).unwrap())
        .collect();
    Instance { ids, matrix }
}

/// The problem over the first `k` edges of the instance.
fn problem(inst: &Instance, k: usize, node: impl Fn(usize, EdgeId) -> Node) -> Problem {
    let n = inst.ids.len();
    let nodes = (0..k).map(|i| node(i, inst.ids[i].clone())).collect();
    let mut m = Vec::with_capacity(k * k);
    for i in 0..k {
        m.extend_from_slice(&inst.matrix[i * n..i * n + k]);
    }
    Problem::from_matrix(nodes, &m).unwrap()
}

fn member(_: usize, id: EdgeId) -> Node {
    Node::member(id, FAN_OUT)
}

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree/full");
    g.sample_size(20);
    for n in [10, 100, 1000] {
        let inst = instance(n);
        let policy = Policy::default();
        let a = assign(&problem(&inst, n, member), &policy, None).unwrap();
        println!(
            "n = {n}: worst {} µs, {} hops, {} links",
            a.worst_us,
            a.worst_hops,
            a.tree.link_count()
        );
        g.bench_with_input(BenchmarkId::from_parameter(n), &inst, |b, inst| {
            b.iter(|| assign(&problem(inst, n, member), &policy, None).unwrap());
        });
    }
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree/add_one_edge");
    g.sample_size(20);
    for n in [10, 100, 1000] {
        let inst = instance(n);
        let policy = Policy::default();
        let before: Tree = assign(&problem(&inst, n - 1, member), &policy, None)
            .unwrap()
            .tree;
        let a = assign(&problem(&inst, n, member), &policy, Some(&before)).unwrap();
        println!("n = {n}: {:?}, worst {} µs", a.source, a.worst_us);
        g.bench_with_input(BenchmarkId::from_parameter(n), &inst, |b, inst| {
            b.iter(|| {
                assign(&problem(inst, n, member), &policy, Some(black_box(&before))).unwrap()
            });
        });
    }
    g.finish();
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree/broadcast_3_hops");
    g.sample_size(10);
    let n = 1000;
    let inst = instance(n);
    let policy = Policy {
        max_hops: Some(3),
        ..Policy::default()
    };
    let viewer = |i: usize, id: EdgeId| Node::terminal(id, i == 0, i != 0, 11);
    let a = assign(&problem(&inst, n, viewer), &policy, None).unwrap();
    println!(
        "broadcast n = {n}, fan-out 11: worst {} µs, {} hops",
        a.worst_us, a.worst_hops
    );
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| assign(&problem(&inst, n, viewer), &policy, None).unwrap());
    });
    g.finish();
}

criterion_group!(benches, full, incremental, broadcast);
criterion_main!(benches);
