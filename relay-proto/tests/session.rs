//! Two relay sessions wired back to back in virtual time (a `Pair`, like quinn-proto's test
//! harness): the handshake, keep-alive, RTT, idle timeout and every way a link closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Instant::now only anchors the virtual clock; every later instant is computed.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use relay_proto::*;

const A: usize = 0;
const B: usize = 1;

struct Side {
    session: Session,
    events: Vec<SessionEvent>,
    closed: Option<(CloseCode, String, Instant)>,
    timeout: Instant,
}

/// Two sessions and the stream between them: bytes arrive `delay` after they are written.
struct Pair {
    now: Instant,
    delay: Duration,
    /// Bytes in flight towards each side: (arrival, bytes).
    inbound: [VecDeque<(Instant, Vec<u8>)>; 2],
    sides: [Side; 2],
    /// Drop everything written from now on (a cut link).
    cut: bool,
    /// Deliver stream bytes one at a time.
    byte_by_byte: bool,
}

fn hello(role: Role) -> Hello {
    Hello {
        version: VERSION,
        role,
        region: RegionId::new("eu-west").unwrap(),
    }
}

fn edge_cfg(name: &str) -> SessionConfig {
    SessionConfig::new(hello(Role::Edge(EdgeId::new(name).unwrap())))
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        let now = Instant::now();
        let side = |cfg| Side {
            session: Session::new(now, cfg),
            events: vec![],
            closed: None,
            timeout: now,
        };
        Pair {
            now,
            delay: Duration::from_millis(10),
            inbound: [VecDeque::new(), VecDeque::new()],
            sides: [side(a), side(b)],
            cut: false,
            byte_by_byte: false,
        }
    }

    fn edges() -> Pair {
        Pair::new(edge_cfg("a"), edge_cfg("b"))
    }

    /// Polls both sides until each returns a timeout.
    fn drain(&mut self) {
        for i in [A, B] {
            loop {
                match self.sides[i].session.poll_output() {
                    Output::Stream(bytes) if !self.cut => {
                        self.inbound[1 - i].push_back((self.now + self.delay, bytes));
                    }
                    Output::Stream(_) => {}
                    Output::Event(e) => self.sides[i].events.push(e),
                    Output::Close { code, reason } => {
                        assert!(self.sides[i].closed.is_none(), "closed twice");
                        self.sides[i].closed = Some((code, reason, self.now));
                    }
                    Output::Timeout(at) => {
                        self.sides[i].timeout = at;
                        break;
                    }
                }
            }
        }
    }

    /// Runs until `now + d`, jumping from one arrival or timeout to the next.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drain();
            let arrivals = self
                .inbound
                .iter()
                .filter_map(|q| q.front().map(|(at, _)| *at));
            let next = arrivals
                .chain(self.sides.iter().map(|s| s.timeout))
                .min()
                .unwrap();
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            for i in [A, B] {
                while let Some((at, bytes)) = self.inbound[i].pop_front() {
                    if at > self.now {
                        self.inbound[i].push_front((at, bytes));
                        break;
                    }
                    self.deliver(i, &bytes);
                }
                if self.sides[i].timeout <= self.now {
                    self.sides[i].session.handle_timeout(self.now);
                }
            }
        }
    }

    fn deliver(&mut self, to: usize, bytes: &[u8]) {
        let s = &mut self.sides[to].session;
        if self.byte_by_byte {
            bytes
                .iter()
                .for_each(|b| s.handle_stream(self.now, std::slice::from_ref(b)));
        } else {
            s.handle_stream(self.now, bytes);
        }
    }

    /// Hands raw bytes to one side, as if its peer had written them.
    fn inject(&mut self, to: usize, bytes: &[u8]) {
        self.sides[to].session.handle_stream(self.now, bytes);
        self.drain();
    }

    fn session(&self, i: usize) -> &Session {
        &self.sides[i].session
    }

    fn close_code(&self, i: usize) -> Option<CloseCode> {
        self.sides[i].closed.as_ref().map(|c| c.0)
    }

    fn messages(&self, i: usize) -> Vec<Control> {
        let msgs = self.sides[i].events.iter().filter_map(|e| match e {
            SessionEvent::Message(m) => Some(m.clone()),
            _ => None,
        });
        msgs.collect()
    }
}

fn frame(msg: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

fn heartbeat(participants: u32) -> Control {
    Control::Heartbeat(Load {
        participants,
        ..Load::default()
    })
}

#[test]
fn handshake_then_messages_in_order() {
    let mut p = Pair::new(edge_cfg("a"), SessionConfig::new(hello(Role::Origin)));
    // Sent before the handshake: queued behind our Hello.
    p.sides[A].session.send(&heartbeat(1)).unwrap();
    p.run(Duration::from_millis(100));
    assert_eq!(p.session(A).peer(), Some(&hello(Role::Origin)));
    assert_eq!(
        p.session(B).peer(),
        Some(&hello(Role::Edge(EdgeId::new("a").unwrap())))
    );
    assert_eq!(
        p.sides[B].events[0],
        SessionEvent::Established(hello(Role::Edge(EdgeId::new("a").unwrap())))
    );
    assert_eq!(p.messages(B), [heartbeat(1)]);
    p.sides[B].session.send(&heartbeat(2)).unwrap();
    p.run(Duration::from_millis(100));
    assert_eq!(p.messages(A), [heartbeat(2)]);
    assert!(p.sides.iter().all(|s| s.closed.is_none()));
    let stats = p.session(B).stats();
    assert_eq!(stats.malformed, 0);
    assert!(
        stats.frames_in >= 3 && stats.frames_out >= 3 && stats.bytes_in > 0,
        "{stats:?}"
    );
}

#[test]
fn any_split_of_the_stream_works() {
    let mut p = Pair::edges();
    p.byte_by_byte = true;
    p.sides[A].session.send(&heartbeat(7)).unwrap();
    p.run(Duration::from_secs(2));
    assert_eq!(p.messages(B), [heartbeat(7)]);
    assert!(p.session(A).rtt().is_some());
}

#[test]
fn a_version_mismatch_closes_both_sides() {
    let mut newer = edge_cfg("b");
    newer.hello.version = VERSION + 1;
    let mut p = Pair::new(edge_cfg("a"), newer);
    p.run(Duration::from_secs(1));
    assert_eq!(p.close_code(A), Some(CloseCode::VersionMismatch));
    assert_eq!(p.close_code(B), Some(CloseCode::VersionMismatch));
    let established = |i: usize| {
        p.sides[i]
            .events
            .iter()
            .any(|e| matches!(e, SessionEvent::Established(_)))
    };
    assert!(!established(A) && !established(B));
}

#[test]
fn a_message_before_hello_is_a_protocol_violation() {
    let now = Instant::now();
    let mut s = Session::new(now, edge_cfg("a"));
    s.handle_stream(now, &frame(&heartbeat(1)));
    let Output::Stream(bytes) = s.poll_output() else {
        panic!("our Hello and Goodbye")
    };
    let mut d = FrameDecoder::new();
    d.push(&bytes);
    assert!(matches!(d.next(), Ok(Some(Control::Hello(_)))));
    assert!(matches!(
        d.next(),
        Ok(Some(Control::Goodbye {
            code: CloseCode::ProtocolViolation,
            ..
        }))
    ));
    assert!(matches!(
        s.poll_output(),
        Output::Close {
            code: CloseCode::ProtocolViolation,
            ..
        }
    ));
    assert!(matches!(s.poll_output(), Output::Timeout(_)));
    assert_eq!(s.send(&heartbeat(1)), Err(SendError::Closed));
}

#[test]
fn a_second_hello_or_an_unknown_type_is_a_protocol_violation() {
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.inject(B, &frame(&Control::Hello(hello(Role::Origin))));
    assert_eq!(p.close_code(B), Some(CloseCode::ProtocolViolation));

    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.inject(B, &[0, 0, 0, 1, 0x3f]);
    assert_eq!(p.close_code(B), Some(CloseCode::ProtocolViolation));
    assert_eq!(p.session(B).stats().malformed, 1);
}

#[test]
fn rtt_is_measured_from_ping_and_pong() {
    let mut p = Pair::edges();
    p.delay = Duration::from_millis(25);
    p.run(Duration::from_secs(5));
    let samples = |p: &Pair, i: usize| -> Vec<Duration> {
        let rtts = p.sides[i].events.iter().filter_map(|e| match e {
            SessionEvent::Rtt(d) => Some(*d),
            _ => None,
        });
        rtts.collect()
    };
    for i in [A, B] {
        assert_eq!(p.session(i).rtt(), Some(Duration::from_millis(50)));
        // One right after the handshake, then one per keep-alive.
        let s = samples(&p, i);
        assert!(s.len() >= 5, "{s:?}");
        assert!(s.iter().all(|d| *d == Duration::from_millis(50)));
    }
    // The smoothed value follows a longer path, 1/8 of the difference per sample.
    p.delay = Duration::from_millis(65);
    p.run(Duration::from_secs(3));
    let s = samples(&p, A);
    assert_eq!(s.last(), Some(&Duration::from_millis(130)));
    let srtt = s[1..].iter().fold(s[0], |srtt, &r| srtt * 7 / 8 + r / 8);
    assert_eq!(p.session(A).rtt(), Some(srtt));
    assert!(
        srtt > Duration::from_millis(60) && srtt < Duration::from_millis(130),
        "{srtt:?}"
    );
}

#[test]
fn keep_alives_hold_an_idle_link_open() {
    let mut p = Pair::edges();
    p.run(Duration::from_secs(20));
    assert!(p.sides.iter().all(|s| s.closed.is_none()));
    assert!(p.session(A).stats().pings >= 19);
}

#[test]
fn a_silent_peer_times_out() {
    let mut p = Pair::edges();
    p.run(Duration::from_secs(2));
    let cut_at = p.now;
    p.cut = true;
    p.inbound.iter_mut().for_each(VecDeque::clear);
    p.run(Duration::from_secs(10));
    for i in [A, B] {
        let (code, _, at) = p.sides[i].closed.clone().expect("closed");
        assert_eq!(code, CloseCode::IdleTimeout);
        // The last byte came at most one keep-alive (plus the delay) before the cut.
        let after = at - cut_at;
        assert!(
            after <= Duration::from_secs(3) && after >= Duration::from_secs(2) - p.delay,
            "{after:?}"
        );
    }

    // A peer that never says anything: closed at exactly the idle timeout.
    let start = Instant::now();
    let mut s = Session::new(start, edge_cfg("a"));
    let mut now = start;
    let closed_at = loop {
        match s.poll_output() {
            Output::Timeout(at) => {
                now = at;
                s.handle_timeout(now);
            }
            Output::Close { code, .. } => break (code, now - start),
            Output::Stream(_) | Output::Event(_) => {}
        }
    };
    assert_eq!(closed_at, (CloseCode::IdleTimeout, Duration::from_secs(3)));
}

#[test]
fn garbage_is_malformed() {
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    // A Withdraw whose meeting id is cut short.
    p.inject(B, &[0, 0, 0, 2, 0x31, 0x05]);
    assert_eq!(p.close_code(B), Some(CloseCode::Malformed));
    assert_eq!(p.session(B).stats().malformed, 1);
    // The Goodbye tells the other side why.
    p.run(Duration::from_millis(100));
    assert_eq!(p.close_code(A), Some(CloseCode::Malformed));
    let reason = &p.sides[A].closed.as_ref().unwrap().1;
    assert!(reason.contains("truncated"), "{reason}");
}

#[test]
fn an_oversized_length_prefix_closes_before_the_body_arrives() {
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.inject(B, &((MAX_FRAME_LEN + 1) as u32).to_be_bytes());
    assert_eq!(p.close_code(B), Some(CloseCode::FrameTooLarge));

    // Not our protocol at all: "GET " reads as a 1.2 GB frame.
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.inject(B, b"GET / HTTP/1.1\r\n");
    assert_eq!(p.close_code(B), Some(CloseCode::FrameTooLarge));
}

#[test]
fn goodbye_carries_the_code_to_the_peer() {
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.sides[A].session.send(&heartbeat(3)).unwrap();
    p.sides[A]
        .session
        .close(CloseCode::Shutdown, "draining for an upgrade");
    assert!(p.session(A).is_closed());
    p.run(Duration::from_millis(100));
    assert_eq!(p.close_code(A), Some(CloseCode::Shutdown));
    let (code, reason, _) = p.sides[B].closed.clone().unwrap();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Shutdown, "draining for an upgrade")
    );
    // What was sent before the Goodbye still arrives.
    assert_eq!(p.messages(B), [heartbeat(3)]);
}

#[test]
fn long_reasons_are_cut_at_a_char_boundary() {
    let mut p = Pair::edges();
    p.run(Duration::from_millis(100));
    p.sides[A]
        .session
        .close(CloseCode::Normal, &"é".repeat(MAX_REASON_LEN));
    p.run(Duration::from_millis(100));
    let reason = &p.sides[B].closed.as_ref().unwrap().1;
    assert_eq!(reason.len(), MAX_REASON_LEN);
}

#[test]
fn the_send_queue_is_bounded() {
    let now = Instant::now();
    let mut cfg = edge_cfg("a");
    cfg.max_queued = 4;
    let mut s = Session::new(now, cfg);
    // Our Hello is the first of the four.
    for i in 0..3 {
        s.send(&heartbeat(i)).unwrap();
    }
    assert_eq!(s.send(&heartbeat(3)), Err(SendError::QueueFull));
    assert!(matches!(s.poll_output(), Output::Stream(_)));
    s.send(&heartbeat(3)).unwrap();
    assert_eq!(
        s.send(&Control::Ping { nonce: 1 }),
        Err(SendError::NotAllowed)
    );
    let too_many = Control::Nack {
        flow: FlowId(1),
        layer: 0,
        seqs: vec![0; MAX_NACK_SEQS + 1],
    };
    assert!(matches!(s.send(&too_many), Err(SendError::TooLarge(_))));
}
