//! Server CPU per join and memory per idle participant, for one media worker.
//!
//! - **CPU per join**: each synthetic client (a real str0m peer) joins, offers, and runs ICE,
//!   DTLS and SRTP setup to the first media; the time spent inside the worker's calls is
//!   summed (one thread, no blocking, so this is the edge's CPU time for the join).
//! - **Memory per idle participant**: live heap bytes, counted by a wrapping allocator, held
//!   by a worker with N connected participants that publish nothing; measured as the heap
//!   released when the worker is dropped, minus an empty worker's.
//!
//!     cargo bench -p arbor-edge-core --bench join

#![allow(unsafe_code)] // the counting allocator below; nothing else
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use arbor_loadgen::ClientConfig;
use common::Mesh;
use edge_core::Limits;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn joins() -> usize {
    std::env::var("ARBOR_BENCH_JOINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Heap held by the mesh's worker: what dropping it releases.
fn worker_heap(mesh: &mut Mesh) -> isize {
    let fresh = Mesh::new(Limits::default()).edges.remove(0).worker;
    let old = std::mem::replace(mesh.worker(), fresh);
    let before = LIVE.load(Ordering::Relaxed);
    drop(old);
    before - LIVE.load(Ordering::Relaxed)
}

/// The parts of a join that happen before any network traffic, timed alone.
fn session_setup() {
    use edge_core::session::{Session, SessionConfig, ice_creds};
    use rand::SeedableRng;
    let now = std::time::Instant::now();
    let cfg = SessionConfig::new(common::EDGE, None).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut client = arbor_loadgen::Client::new(
        now,
        ClientConfig::subscriber(arbor_loadgen::Epoch(now), 1, 1),
    );
    client
        .add_local_candidate(now, "10.0.0.9:5000".parse().unwrap())
        .unwrap();
    let offer = client.create_offer(now).unwrap().sdp;
    const N: u32 = 200;
    let mut sessions = Vec::with_capacity(N as usize);
    let heap0 = LIVE.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    for _ in 0..N {
        sessions.push(Box::new(Session::new(now, &cfg, ice_creds(&mut rng))));
    }
    let build = t.elapsed() / N;
    let heap1 = LIVE.load(Ordering::Relaxed);
    let t = std::time::Instant::now();
    for s in &mut sessions {
        s.accept_offer(&offer).unwrap();
    }
    let accept = t.elapsed() / N;
    let heap2 = LIVE.load(Ordering::Relaxed);
    println!(
        "session heap: {} KiB after build (Session is {} bytes inline), +{} KiB after the offer",
        (heap1 - heap0) / N as isize / 1024,
        std::mem::size_of::<Session>(),
        (heap2 - heap1) / N as isize / 1024
    );
    println!(
        "session setup: Rtc build {:.3} ms, accept_offer {:.3} ms",
        build.as_secs_f64() * 1e3,
        accept.as_secs_f64() * 1e3
    );
}

fn main() {
    #[allow(non_snake_case)]
    let JOINS = joins();
    session_setup();
    // CPU per join: participants with one audio and one video receive slot. Each join is a
    // window of virtual time from `join` to the session's first connected moment; the worker
    // also ticks every other session's timers meanwhile, so that background (measured just
    // before, per virtual second) is subtracted.
    let mut mesh = Mesh::new(Limits {
        max_participants: JOINS + 1,
        ..Limits::default()
    });
    let mut per_join = Vec::with_capacity(JOINS);
    let mut background_per_s = 0.0f64;
    for i in 0..JOINS {
        if i % 10 == 0 {
            let t0 = mesh.worker_time;
            mesh.run(Duration::from_secs(2));
            background_per_s = (mesh.worker_time - t0).as_secs_f64() / 2.0;
        }
        let (before, start) = (mesh.worker_time, mesh.now);
        let p = mesh.join(&format!("p{i}"), ClientConfig::subscriber(mesh.epoch, 1, 1));
        while !mesh.peers[p].client.is_connected() {
            mesh.run(Duration::from_millis(5));
        }
        let window = (mesh.now - start).as_secs_f64();
        let spent = (mesh.worker_time - before).as_secs_f64() - background_per_s * window;
        per_join.push(Duration::from_secs_f64(spent.max(0.0)));
    }
    let idle_cpu_per_participant_us = background_per_s / JOINS as f64 * 1e6;
    per_join.sort();
    let total: Duration = per_join.iter().sum();
    let mean = total / JOINS as u32;
    let p50 = per_join[JOINS / 2];
    let p99 = per_join[JOINS * 99 / 100];
    println!(
        "join: {JOINS} joins, server CPU per join mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms (target <= 0.3 ms)",
        mean.as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    println!(
        "idle: {:.1} us of CPU per participant per second (timers: RTCP, ICE consent, stats)",
        idle_cpu_per_participant_us
    );

    // Memory: let the sessions settle idle for a while (no media published), then weigh.
    mesh.run(Duration::from_secs(5));
    let empty = {
        let mut m = Mesh::new(Limits::default());
        worker_heap(&mut m)
    };
    let full = worker_heap(&mut mesh);
    let per = (full - empty) as f64 / JOINS as f64;
    println!(
        "memory: {JOINS} idle participants hold {} KiB, {:.1} KiB each (target <= 64 KiB)",
        (full - empty) / 1024,
        per / 1024.0
    );
}
