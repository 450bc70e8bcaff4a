//! Any WebSocket text frame: parsing never panics, and whatever parses is handled by a
//! worker without panicking (a joined participant sends it).
#![no_main]

use std::time::Instant;

use edge_core::signal::ClientMsg;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msg) = ClientMsg::parse(text) else {
        return;
    };
    let now = Instant::now();
    let (mut worker, id) = common::worker_with_participant(now);
    worker.handle_client_message(now, id, msg);
    common::drain(&mut worker);
});
