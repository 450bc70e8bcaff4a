//! A client that answers instead of offering (as a Janus subscriber does), in virtual time: a
//! single-layer publisher offers straight to it, the offer's m-lines become its recv slots, and
//! both ends report the SRTP profile their DTLS handshake negotiated, or refuse a pinned one.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbor_loadgen::protocol::Kind;
use arbor_loadgen::srtp::DEFAULT_PROFILE;
use arbor_loadgen::{
    Client, ClientConfig, ClientError, ClientEvent, Epoch, Input, Output, SrtpProfile, VideoConfig,
};

const A: &str = "10.0.0.1:1000";
const B: &str = "10.0.0.2:2000";
/// One-way delay of the wire.
const LATENCY: Duration = Duration::from_millis(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Publisher `a` (one VP8 layer, audio) offered straight to answerer `b`.
struct Pair {
    now: Instant,
    a: Client,
    b: Client,
    /// (due, from, to, bytes), in send order; equal delays keep it sorted by due time.
    wire: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Pair {
    fn new(b_profile: Option<SrtpProfile>) -> Self {
        let start = Instant::now();
        let epoch = Epoch(start);
        let mut ca = ClientConfig::new(epoch);
        ca.video = Some(VideoConfig::single_layer());
        ca.source_id = 0xA;
        ca.seed = 1;
        ca.srtp_profile = Some(DEFAULT_PROFILE);
        let mut cb = ClientConfig::subscriber(epoch, 0, 0);
        cb.seed = 2;
        cb.srtp_profile = b_profile;
        let mut a = Client::new(start, ca);
        let mut b = Client::new(start, cb);
        a.add_local_candidate(start, addr(A)).unwrap();
        b.add_local_candidate(start, addr(B)).unwrap();
        let offer = a.create_offer(start).unwrap();
        assert!(!offer.sdp.contains("a=simulcast"), "{}", offer.sdp);
        let answer = b.accept_offer(start, &offer.sdp).unwrap();
        a.accept_answer(start, &answer).unwrap();
        Pair {
            now: start,
            a,
            b,
            wire: vec![],
        }
    }

    fn drain(&mut self) -> Instant {
        let mut next = self.wire.first().map(|w| w.0);
        for c in [&mut self.a, &mut self.b] {
            loop {
                match c.poll_output() {
                    Output::Transmit(t) => self.wire.push((
                        self.now + LATENCY,
                        t.source,
                        t.destination,
                        t.contents.into(),
                    )),
                    Output::Timeout(t) => {
                        next = Some(next.map_or(t, |n| n.min(t)));
                        break;
                    }
                }
            }
        }
        next.unwrap()
    }

    fn step(&mut self) {
        let next = self.drain();
        self.now = next.max(self.now + Duration::from_micros(200));
        let now = self.now;
        let due = self.wire.iter().take_while(|w| w.0 <= now).count();
        for (_, from, to, data) in self.wire.drain(..due).collect::<Vec<_>>() {
            let input = Input::Datagram {
                source: from,
                destination: to,
                contents: &data,
            };
            let c = if to == addr(A) {
                &mut self.a
            } else {
                &mut self.b
            };
            // A closed peer refuses input; that is what the refusal test looks at.
            let _ = c.handle_input(now, input);
        }
        let _ = self.a.handle_input(now, Input::Timeout);
        let _ = self.b.handle_input(now, Input::Timeout);
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until `done` holds or `limit` of virtual time has passed; returns how long it
    /// took. A DTLS flight that arrives before its peer is ready is resent after str0m's
    /// 1 s retransmission timer, so how soon a pair connects depends on the random ICE and
    /// DTLS values of the run.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> Duration {
        let start = self.now;
        while !done(self) && self.now < start + limit {
            self.step();
        }
        self.now - start
    }
}

#[test]
fn the_offers_mlines_become_slots_that_render() {
    let mut p = Pair::new(Some(DEFAULT_PROFILE));
    let mids = p.b.mids();
    assert_eq!(mids.audio_slots.len(), 1, "{mids:?}");
    assert_eq!(mids.video_slots.len(), 1, "{mids:?}");
    let took = p.run_until(Duration::from_secs(5), |p| {
        p.a.is_connected() && p.b.is_connected()
    });
    assert!(
        p.a.is_connected() && p.b.is_connected(),
        "not connected after {took:?}"
    );
    p.run_for(Duration::from_secs(3));

    let now = p.now;
    let stats = p.b.stats(now);
    let video = stats
        .slots
        .iter()
        .find(|s| s.kind == Some(Kind::Video))
        .unwrap();
    assert!(video.frames_rendered >= 60, "{video:#?}");
    assert_eq!((video.width, video.height), (Some(640), Some(360)));
    assert_eq!(video.source, Some(0xA));
    assert_eq!(video.frames_undecodable + video.freezes, 0, "{video:#?}");
    assert!(video.first_frame.is_some(), "{video:#?}");
    let audio = stats
        .slots
        .iter()
        .find(|s| s.kind == Some(Kind::Audio))
        .unwrap();
    assert!(audio.frames >= 100, "{audio:#?}");

    let sent = p.a.stats(now);
    assert_eq!(sent.publisher.layers.len(), 1);
    assert_eq!(
        sent.publisher.packets_unsendable, 0,
        "{:#?}",
        sent.publisher
    );
    // Both ends see the profile str0m's DTLS always lands on.
    assert_eq!(sent.srtp_profile, Some(SrtpProfile::AeadAes256Gcm));
    assert_eq!(stats.srtp_profile, Some(SrtpProfile::AeadAes256Gcm));
}

#[test]
fn a_pin_on_another_profile_refuses_the_session() {
    let mut p = Pair::new(Some(SrtpProfile::AeadAes128Gcm));
    let mut events = Vec::new();
    p.run_until(Duration::from_secs(5), |p| {
        events.extend(std::iter::from_fn(|| p.b.poll_event()));
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::SrtpRefused { .. }))
    });
    assert!(
        events.contains(&ClientEvent::SrtpRefused {
            required: SrtpProfile::AeadAes128Gcm,
            negotiated: Some(SrtpProfile::AeadAes256Gcm),
        }),
        "{events:?}"
    );
    assert!(!p.b.is_connected() && !p.b.is_alive());
    let now = p.now;
    assert!(p.b.stats(now).slots.iter().all(|s| s.frames == 0));
}

#[test]
fn bad_offers_and_configs_are_errors() {
    let now = Instant::now();
    let epoch = Epoch(now);
    let mut b = Client::new(now, ClientConfig::subscriber(epoch, 0, 0));
    let err = b.accept_offer(now, "v=0\r\nnot an offer").unwrap_err();
    assert!(matches!(err, ClientError::BadOffer(_)), "{err}");

    let mut config = ClientConfig::new(epoch);
    config.video = Some(VideoConfig {
        simulcast: false,
        ..VideoConfig::default()
    });
    let mut a = Client::new(now, config);
    let err = a.create_offer(now).unwrap_err();
    assert!(matches!(err, ClientError::VideoConfig(_)), "{err}");
}
