//! A publisher client, a subscriber client and a minimal str0m SFU between them, on an
//! in-memory network in virtual time (str0m `tests/common.rs` style: no sockets, no sleeps).
//!
//! The SFU is two ICE-lite RTP-mode `Rtc`s: `up` answers the publisher, `down` answers the
//! subscriber. Each [`Route`] forwards one (mid, rid) of the publisher into one recv slot of the
//! subscriber with rewritten sequence numbers, and relays the slot's PLIs upstream. Routes can
//! drop whole frames (with or without a sequence hole) or pause, to inject the faults the
//! subscriber must notice.
#![allow(dead_code, unreachable_pub, missing_debug_implementations)]
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbor_loadgen::{Client, ClientConfig, Epoch, Input, Output};
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, Rtc};

pub const A: &str = "10.0.0.1:1000";
pub const B: &str = "10.0.0.2:2000";
pub const UP: &str = "10.0.0.9:3478";
pub const DOWN: &str = "10.0.0.9:3479";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// What a route does with the frames passing through it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Drop the next N whole frames and close the sequence gap (an SFU that lost frames).
    DropFrames(u32),
    /// Drop the next N whole frames and leave the sequence hole (NACKs cannot be served).
    HoleFrames(u32),
    /// Forward nothing.
    Pause,
}

/// One publisher stream forwarded into one subscriber slot.
#[derive(Debug)]
pub struct Route {
    pub src_mid: Mid,
    pub src_rid: Option<Rid>,
    pub dst_mid: Mid,
    pub fault: Fault,
    /// Added to incoming sequence numbers; shrinks as frames are dropped contiguously.
    shift: Option<i64>,
    dropping_ts: Option<(u32, bool)>,
    pub plis_relayed: u64,
}

impl Route {
    pub fn new(src_mid: Mid, src_rid: Option<&str>, dst_mid: Mid) -> Self {
        Route {
            src_mid,
            src_rid: src_rid.map(Rid::from),
            dst_mid,
            fault: Fault::None,
            shift: None,
            dropping_ts: None,
            plis_relayed: 0,
        }
    }

    /// The outgoing sequence number, or `None` to drop the packet.
    fn map(&mut self, p: &RtpPacket) -> Option<u64> {
        let seq = *p.seq_no as i64;
        let shift = *self.shift.get_or_insert(1000 - seq);
        let start = arbor_loadgen::vp8::parse_descriptor(&p.payload).is_some_and(|d| d.start);
        if start && !matches!(self.dropping_ts, Some((ts, _)) if ts == p.header.timestamp) {
            self.dropping_ts = match self.fault {
                Fault::DropFrames(n) if n > 0 => {
                    self.fault = if n > 1 {
                        Fault::DropFrames(n - 1)
                    } else {
                        Fault::None
                    };
                    Some((p.header.timestamp, true))
                }
                Fault::HoleFrames(n) if n > 0 => {
                    self.fault = if n > 1 {
                        Fault::HoleFrames(n - 1)
                    } else {
                        Fault::None
                    };
                    Some((p.header.timestamp, false))
                }
                _ => None,
            };
        }
        if self.fault == Fault::Pause {
            return None;
        }
        if let Some((ts, close_gap)) = self.dropping_ts
            && ts == p.header.timestamp
        {
            if close_gap {
                self.shift = Some(shift - 1);
            }
            return None;
        }
        Some((seq + shift) as u64)
    }
}

/// The stand-in SFU.
pub struct MiniSfu {
    pub up: Rtc,
    pub down: Rtc,
    up_timeout: Instant,
    down_timeout: Instant,
    pub routes: Vec<Route>,
    pub up_events: Vec<String>,
}

fn sfu_rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .set_ice_lite(true)
        .set_stats_interval(Some(Duration::from_secs(1)))
        .build(now)
}

impl MiniSfu {
    pub fn new(now: Instant) -> Self {
        let mut up = sfu_rtc(now);
        let mut down = sfu_rtc(now);
        up.add_local_candidate(Candidate::host(addr(UP), "udp").unwrap());
        down.add_local_candidate(Candidate::host(addr(DOWN), "udp").unwrap());
        MiniSfu {
            up,
            down,
            up_timeout: now,
            down_timeout: now,
            routes: vec![],
            up_events: vec![],
        }
    }

    pub fn route(&mut self, dst: Mid) -> &mut Route {
        self.routes.iter_mut().find(|r| r.dst_mid == dst).unwrap()
    }

    fn timeout(&self) -> Instant {
        self.up_timeout.min(self.down_timeout)
    }

    fn handle(&mut self, now: Instant, packet: Option<&Packet>, out: &mut Vec<Packet>) {
        match packet {
            Some(p) if p.to == addr(UP) => {
                self.up.handle_input(receive(now, p)).unwrap();
            }
            Some(p) => {
                self.down.handle_input(receive(now, p)).unwrap();
            }
            None => {
                if self.up_timeout <= now {
                    self.up.handle_input(str0m::Input::Timeout(now)).unwrap();
                }
                if self.down_timeout <= now {
                    self.down.handle_input(str0m::Input::Timeout(now)).unwrap();
                }
            }
        }
        self.drain_all(now, out);
    }

    fn drain_all(&mut self, now: Instant, out: &mut Vec<Packet>) {
        let (t, up_events) = drain(&mut self.up, now, out);
        self.up_timeout = t;
        let (t, down_events) = drain(&mut self.down, now, out);
        self.down_timeout = t;
        for e in up_events {
            if let Event::RtpPacket(p) = e {
                self.forward(now, &p, out);
            }
        }
        for e in down_events {
            if let Event::KeyframeRequest(req) = e {
                self.relay_pli(now, req.mid, out);
            }
        }
    }

    fn forward(&mut self, now: Instant, p: &RtpPacket, out: &mut Vec<Packet>) {
        let Some(stream) = self
            .up
            .direct_api()
            .stream_rx(&p.header.ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(route) = self
            .routes
            .iter_mut()
            .find(|r| (r.src_mid, r.src_rid) == stream)
        else {
            return;
        };
        let Some(seq) = route.map(p) else {
            return;
        };
        let dst = route.dst_mid;
        let mut api = self.down.direct_api();
        let Some(tx) = api.stream_tx_by_mid(dst, None) else {
            return;
        };
        let ext = ExtensionValues {
            audio_level: p.header.ext_vals.audio_level,
            voice_activity: p.header.ext_vals.voice_activity,
            ..Default::default()
        };
        let write = RtpWrite::new(
            p.header.payload_type,
            seq.into(),
            p.header.timestamp,
            p.timestamp,
            p.payload.clone(),
        )
        .marker(p.header.marker)
        .ext_vals(ext)
        .nackable(true);
        tx.write_rtp(write);
        self.settle_down(now, out);
    }

    /// Drain `down` after a mutation and stamp freshly queued packets so they leave now.
    fn settle_down(&mut self, now: Instant, out: &mut Vec<Packet>) {
        let (t, _) = drain(&mut self.down, now, out);
        self.down_timeout = t;
        if t <= now {
            self.down.handle_input(str0m::Input::Timeout(now)).unwrap();
            let (t, _) = drain(&mut self.down, now, out);
            self.down_timeout = t;
        }
    }

    fn relay_pli(&mut self, now: Instant, dst: Mid, out: &mut Vec<Packet>) {
        let Some(route) = self.routes.iter_mut().find(|r| r.dst_mid == dst) else {
            return;
        };
        route.plis_relayed += 1;
        let (mid, rid) = (route.src_mid, route.src_rid);
        if let Some(rx) = self.up.direct_api().stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        let (t, events) = drain(&mut self.up, now, out);
        self.up_timeout = t;
        for e in events {
            if let Event::RtpPacket(p) = e {
                self.forward(now, &p, out);
            }
        }
    }
}

fn receive<'a>(now: Instant, p: &'a Packet) -> str0m::Input<'a> {
    str0m::Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source: p.from,
            destination: p.to,
            contents: p.data.as_slice().try_into().unwrap(),
        },
    )
}

/// Drains one `Rtc`; returns its next timeout and the events, queueing datagrams.
fn drain(rtc: &mut Rtc, now: Instant, out: &mut Vec<Packet>) -> (Instant, Vec<Event>) {
    let mut events = vec![];
    loop {
        match rtc.poll_output().unwrap() {
            str0m::Output::Timeout(t) => return (t.max(now), events),
            str0m::Output::Transmit(t) => out.push(Packet {
                from: t.source,
                to: t.destination,
                data: t.contents.into(),
            }),
            str0m::Output::Event(e) => events.push(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// Publisher `a`, subscriber `b`, the SFU and the wire.
pub struct World {
    pub start: Instant,
    pub now: Instant,
    pub a: Client,
    pub b: Client,
    pub sfu: MiniSfu,
    /// One-way delay of every hop.
    pub latency: Duration,
    /// Returns true for datagrams to lose on the wire.
    pub lose: Box<dyn FnMut(&Packet) -> bool>,
    pub lost: u64,
    wire: BinaryHeap<Reverse<(Instant, u64)>>,
    in_flight: std::collections::HashMap<u64, Packet>,
    next_id: u64,
}

impl World {
    /// Publisher with the default camera and a speaking microphone; subscriber with three
    /// video slots (q, h, f) and one audio slot; all negotiated and routed.
    pub fn new(latency: Duration) -> Self {
        let start = Instant::now();
        let epoch = Epoch(start);
        let mut ca = ClientConfig::new(epoch);
        ca.source_id = 0xA;
        ca.seed = 1;
        if let Some(a) = &mut ca.audio {
            a.speaking = true;
        }
        let mut cb = ClientConfig::subscriber(epoch, 3, 1);
        cb.seed = 2;
        let mut a = Client::new(start, ca);
        let mut b = Client::new(start, cb);
        let mut sfu = MiniSfu::new(start);
        a.add_local_candidate(start, addr(A)).unwrap();
        b.add_local_candidate(start, addr(B)).unwrap();

        let offer = a.create_offer(start).unwrap();
        let answer = sfu
            .up
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(&offer.sdp).unwrap())
            .unwrap();
        a.accept_answer(start, &answer.to_sdp_string()).unwrap();
        let offer = b.create_offer(start).unwrap();
        let answer = sfu
            .down
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(&offer.sdp).unwrap())
            .unwrap();
        b.accept_answer(start, &answer.to_sdp_string()).unwrap();

        let am = a.mids();
        let bm = b.mids();
        let video = am.video.unwrap();
        for (rid, slot) in ["q", "h", "f"].iter().zip(&bm.video_slots) {
            sfu.routes.push(Route::new(video, Some(rid), *slot));
        }
        sfu.routes
            .push(Route::new(am.audio.unwrap(), None, bm.audio_slots[0]));
        for mid in bm.video_slots.iter().chain(&bm.audio_slots) {
            b.set_expecting(start, *mid, true).unwrap();
        }
        World {
            start,
            now: start,
            a,
            b,
            sfu,
            latency,
            lose: Box::new(|_| false),
            lost: 0,
            wire: BinaryHeap::new(),
            in_flight: Default::default(),
            next_id: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn send(&mut self, packets: Vec<Packet>) {
        for p in packets {
            if (self.lose)(&p) {
                self.lost += 1;
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.wire.push(Reverse((self.now + self.latency, id)));
            self.in_flight.insert(id, p);
        }
    }

    fn drain_client(c: &mut Client, out: &mut Vec<Packet>) -> Instant {
        loop {
            match c.poll_output() {
                Output::Transmit(t) => out.push(Packet {
                    from: t.source,
                    to: t.destination,
                    data: t.contents.into(),
                }),
                Output::Timeout(t) => return t,
            }
        }
    }

    /// Processes everything due at the next instant anything is due.
    pub fn step(&mut self) {
        let mut out = vec![];
        let ta = Self::drain_client(&mut self.a, &mut out);
        let tb = Self::drain_client(&mut self.b, &mut out);
        self.send(std::mem::take(&mut out));
        let tw = self.wire.peek().map(|Reverse((t, _))| *t);
        let next = [Some(ta), Some(tb), Some(self.sfu.timeout()), tw]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        // Never stand still: a peer asking for `now` again gets it 200 µs later.
        self.now = next.max(self.now + Duration::from_micros(200));
        let now = self.now;
        while let Some(Reverse((t, id))) = self.wire.peek().copied() {
            if t > now {
                break;
            }
            self.wire.pop();
            let p = self.in_flight.remove(&id).unwrap();
            let input = Input::Datagram {
                source: p.from,
                destination: p.to,
                contents: &p.data,
            };
            if p.to == addr(A) {
                self.a.handle_input(now, input).unwrap();
            } else if p.to == addr(B) {
                self.b.handle_input(now, input).unwrap();
            } else {
                self.sfu.handle(now, Some(&p), &mut out);
            }
        }
        if ta <= now {
            self.a.handle_input(now, Input::Timeout).unwrap();
        }
        if tb <= now {
            self.b.handle_input(now, Input::Timeout).unwrap();
        }
        if self.sfu.timeout() <= now {
            self.sfu.handle(now, None, &mut out);
        }
        self.send(out);
    }

    /// Runs until `d` of virtual time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until both clients are connected (panics after 5 virtual seconds).
    pub fn connect(&mut self) {
        while !(self.a.is_connected() && self.b.is_connected()) {
            assert!(
                self.elapsed() < Duration::from_secs(5),
                "clients did not connect"
            );
            self.step();
        }
    }
}
