//! WHIP/WHEP bodies: an arbitrary offer, then an arbitrary trickle/restart fragment.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (offer, fragment) = text.split_once("\n--\n").unwrap_or((&text, ""));
    let now = Instant::now();
    let mut worker = common::worker(now);
    let whip = worker.whip_publish(now, common::admission(), offer);
    if let Ok((id, _answer)) = whip {
        let _ = worker.ice_patch(now, id, fragment);
    }
    let _ = worker.whep_subscribe(now, common::admission(), offer);
    common::drain(&mut worker);
});
