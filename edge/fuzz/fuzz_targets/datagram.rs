//! The whole receive path: arbitrary datagrams from arbitrary sources into a worker with a
//! live session, with time passing between them.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use str0m::net::Protocol;

mod common;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let (mut worker, _id) = common::worker_with_participant(now);
    let mut t = now;
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let source = if i % 2 == 0 {
            "10.0.0.2:5000"
        } else {
            "10.0.0.3:5000"
        };
        worker.handle_receive(
            t,
            Protocol::Udp,
            source.parse().unwrap(),
            common::EDGE,
            chunk,
        );
        t += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)));
        worker.handle_timeout(t);
        common::drain(&mut worker);
    }
});
