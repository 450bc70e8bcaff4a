//! Publisher -> stand-in SFU -> subscriber in virtual time: the synthetic clients must produce
//! browser-shaped media and notice what a browser would notice.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use arbor_loadgen::SlotStats;
use common::{DOWN, Fault, World, addr};

fn slots(w: &mut World) -> Vec<SlotStats> {
    let now = w.now;
    w.b.stats(now).slots
}

#[test]
fn keyframe_headers_carry_each_layers_resolution() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_secs(2));
    let s = slots(&mut w);
    let expect = [(320, 180, 0), (640, 360, 1), (1280, 720, 2)];
    for (slot, (width, height, layer)) in s.iter().zip(expect) {
        assert_eq!(
            (slot.width, slot.height),
            (Some(width), Some(height)),
            "{slot:#?}"
        );
        assert_eq!(slot.layer, Some(layer));
        assert_eq!(slot.source, Some(0xA));
        assert!(slot.frames_rendered >= 55, "{slot:#?}");
        assert_eq!(slot.keyframes, 1);
        assert_eq!(
            slot.picture_id_jumps + slot.picture_id_missing + slot.frame_gaps,
            0,
            "{slot:#?}"
        );
        assert_eq!(
            slot.non_contiguous + slot.frames_undecodable + slot.freezes,
            0,
            "{slot:#?}"
        );
        assert!(
            slot.first_frame.unwrap() < Duration::from_millis(500),
            "{slot:#?}"
        );
    }
    let audio = &s[3];
    assert!(audio.frames >= 90, "{audio:#?}");
    assert_eq!(audio.audio_level, Some(-20));
    assert_eq!(audio.source, Some(0xA));
    assert_eq!(audio.packets_skipped, 0);
}

#[test]
fn layer_bitrates_are_within_a_quarter_of_their_targets() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    let secs = 10.0;
    w.run_for(Duration::from_secs_f64(secs));
    let now = w.now;
    let publisher = w.a.stats(now).publisher;
    let received = slots(&mut w);
    for ((layer, target), slot) in publisher
        .layers
        .iter()
        .zip([150e3, 500e3, 1.5e6])
        .zip(&received)
    {
        let sent = layer.frame_bytes as f64 * 8.0 / secs;
        let got = slot.bytes as f64 * 8.0 / secs;
        assert!(
            (sent / target - 1.0).abs() <= 0.25,
            "{}: sent {sent} vs {target}",
            layer.rid
        );
        assert!(
            (got / target - 1.0).abs() <= 0.25,
            "{}: received {got} vs {target}",
            layer.rid
        );
        // A keyframe at 0, 3, 6 and 9 s.
        assert_eq!(layer.keyframes, 4, "{layer:#?}");
        assert!((295..=301).contains(&layer.frames), "{layer:#?}");
    }
    assert_eq!(publisher.frames_skipped, 0);
    assert!((495..=501).contains(&publisher.audio_frames));
}

#[test]
fn a_pli_produces_a_keyframe_on_that_layer_only() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_millis(1500));
    let slot_h = w.b.mids().video_slots[1];
    let now = w.now;
    w.b.request_keyframe(now, slot_h).unwrap();
    w.run_for(Duration::from_millis(200));
    let now = w.now;
    let layers = w.a.stats(now).publisher.layers;
    assert_eq!((layers[1].plis, layers[1].keyframes), (1, 2), "{layers:#?}");
    assert_eq!((layers[0].keyframes, layers[2].keyframes), (1, 1));
    let s = slots(&mut w);
    assert_eq!(s[1].keyframes, 2);
    assert_eq!(s[1].plis_sent, 1);
    assert_eq!((s[0].keyframes, s[2].keyframes), (1, 1));
}

#[test]
fn latency_is_what_the_wire_adds() {
    let mut w = World::new(Duration::ZERO);
    w.connect();
    w.run_for(Duration::from_secs(2));
    for s in slots(&mut w) {
        assert!(s.latency.count > 0);
        assert!(s.latency.max <= Duration::from_millis(2), "{:?}", s.latency);
    }

    // Two hops of 20 ms each.
    let mut w = World::new(Duration::from_millis(20));
    w.connect();
    w.run_for(Duration::from_secs(2));
    for s in slots(&mut w) {
        let mean = s.latency.mean();
        assert!(
            mean >= Duration::from_millis(40) && mean <= Duration::from_millis(45),
            "{:?}",
            s.latency
        );
    }
}

#[test]
fn a_dropped_frame_is_noticed_and_repaired_by_a_keyframe() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_secs(1));
    let q = w.b.mids().video_slots[0];
    w.sfu.route(q).fault = Fault::DropFrames(1);
    w.run_for(Duration::from_secs(1));
    let s = &slots(&mut w)[0];
    assert_eq!(
        (s.frame_gaps, s.frames_missing, s.picture_id_jumps),
        (1, 1, 1),
        "{s:#?}"
    );
    // The sequence numbers were closed up, so only the PictureID/TL0PICIDX reveal the loss.
    assert_eq!(s.non_contiguous, 0);
    assert!(s.frames_undecodable >= 1 && s.plis_sent >= 1, "{s:#?}");
    assert_eq!(s.keyframes, 2, "{s:#?}");
    assert_eq!(s.freezes, 0);
    assert_eq!(w.sfu.route(q).plis_relayed, 1);
    let now = w.now;
    assert_eq!(w.a.stats(now).publisher.layers[0].plis, 1);
}

#[test]
fn a_sequence_hole_is_noticed_after_nacks_fail() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_secs(1));
    let f = w.b.mids().video_slots[2];
    w.sfu.route(f).fault = Fault::HoleFrames(1);
    w.run_for(Duration::from_secs(2));
    let s = &slots(&mut w)[2];
    assert_eq!(s.non_contiguous, 1, "{s:#?}");
    assert!(s.packets_skipped >= 1);
    assert_eq!((s.frame_gaps, s.frames_missing), (1, 1));
    assert_eq!(s.keyframes, 2, "{s:#?}");
    assert!(s.ingress.unwrap().nacks >= 1, "{s:#?}");
}

#[test]
fn wire_loss_is_repaired_by_nack_and_rtx() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_secs(1));
    // Lose three VP8 packets on the way to the subscriber.
    let mut budget = 3;
    let mut seen = 0u64;
    w.lose = Box::new(move |p| {
        let rtp_vp8 = p.from == addr(DOWN)
            && p.data.len() > 200
            && p.data[0] >> 6 == 2
            && p.data[1] & 0x7f == 96;
        if rtp_vp8 {
            seen += 1;
            if seen.is_multiple_of(50) && budget > 0 {
                budget -= 1;
                return true;
            }
        }
        false
    });
    w.run_for(Duration::from_secs(3));
    assert_eq!(w.lost, 3);
    let s = slots(&mut w);
    let nacks: u64 = s.iter().filter_map(|s| s.ingress).map(|i| i.nacks).sum();
    assert!(nacks >= 3, "{s:#?}");
    for slot in &s[..3] {
        assert_eq!(
            slot.non_contiguous + slot.frame_gaps + slot.frames_undecodable,
            0,
            "{slot:#?}"
        );
    }
}

#[test]
fn a_stalled_slot_freezes_and_thaws() {
    let mut w = World::new(Duration::from_millis(5));
    w.connect();
    w.run_for(Duration::from_secs(1));
    let h = w.b.mids().video_slots[1];
    w.sfu.route(h).fault = Fault::Pause;
    w.run_for(Duration::from_millis(1200));
    assert_eq!(slots(&mut w)[1].freezes, 1);
    w.sfu.route(h).fault = Fault::None;
    w.run_for(Duration::from_secs(1));
    let s = &slots(&mut w)[1];
    assert_eq!(s.freezes, 1, "{s:#?}");
    // The pause left a sequence hole: the frame buffer waits for retransmissions, then the
    // slot asks for a keyframe, as a browser would.
    assert_eq!(
        (s.non_contiguous, s.plis_sent, s.keyframes),
        (1, 1, 2),
        "{s:#?}"
    );
    assert!(
        s.freeze_total >= Duration::from_millis(1200)
            && s.freeze_total < Duration::from_millis(1800),
        "{s:#?}"
    );
    // Not expecting media: a stall is no freeze.
    let now = w.now;
    w.b.set_expecting(now, h, false).unwrap();
    w.sfu.route(h).fault = Fault::Pause;
    w.run_for(Duration::from_secs(2));
    assert_eq!(slots(&mut w)[1].freezes, 1);
}
