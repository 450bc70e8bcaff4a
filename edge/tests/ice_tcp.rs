//! ICE-TCP against a real edge: a WHIP publisher whose UDP is blocked connects over the
//! worker's passive TCP candidate and its media reaches the edge.
//!
//! The client is a str0m `Rtc` with no UDP socket and a single *active* TCP host candidate
//! (RFC 6544). It offers send-only video over WHIP, finds the edge's `tcptype passive`
//! candidate in the answer, opens one TCP connection to it and runs everything — STUN
//! connectivity checks, the DTLS handshake, SRTP — over that connection with RFC 4571
//! framing (a 2-byte big-endian length before every packet, both ways). The test proves:
//!
//! - the answer advertises the worker's ICE-TCP port as a passive host candidate;
//! - the edge answers STUN and DTLS on the TCP connection, so ICE and DTLS complete and
//!   the client sees `Event::Connected`;
//! - every packet the client sends is TCP to that candidate (there is nothing else to use);
//! - RTP written after connecting is counted by the edge's router
//!   (`arbor_rtp_packets_received_total`).
//!
//! It runs twice: with the candidate naming the client socket's real address, and with
//! port 9 as browsers advertise active candidates (RFC 6544 §4.5), where the edge only
//! learns the connection's real address from the first binding request (peer-reflexive).
//!
//! Every wait is bounded by one deadline and polls for a condition; nothing sleeps as an
//! assertion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbor_edge::Edge;
use arbor_edge::config::Config;
use common::{http_base, token};
use reqwest::StatusCode;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The whole exchange, from the WHIP POST to the edge counting RTP, must fit in this.
const DEADLINE: Duration = Duration::from_secs(10);
/// RTP packets the edge must have received before the test passes.
const MIN_RTP: u64 = 10;
/// One video frame every this often once connected.
const FRAME_INTERVAL: Duration = Duration::from_millis(20);

/// An edge on 127.0.0.1 with one worker, an ephemeral UDP port and ICE-TCP on a free port.
/// Returns the edge and the worker's ICE-TCP address.
async fn start_edge_with_ice_tcp() -> (Edge, SocketAddr) {
    // A port that was free a moment ago; the edge binds it right away.
    let tcp_port = std::net::TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = Config::dev_default();
    cfg.http.listen = SocketAddr::new(LOCALHOST, 0);
    cfg.http.max_body_bytes = 64 * 1024;
    cfg.media.bind = LOCALHOST;
    cfg.media.public_ip = None;
    cfg.media.udp_port = 0;
    cfg.media.tcp_port = tcp_port;
    cfg.media.workers = 1;
    let edge = Edge::start(cfg).await.expect("edge starts");
    (edge, SocketAddr::new(LOCALHOST, tcp_port))
}

/// What the client loop has achieved so far, for the test to wait on.
#[derive(Debug, Clone, Default)]
struct Progress {
    connected: bool,
    frames_written: u64,
    frames_received: u64,
}

/// Reads RFC 4571 frames off the connection until it ends.
async fn read_frames(mut r: OwnedReadHalf, tx: mpsc::Sender<Vec<u8>>) {
    loop {
        let Ok(len) = r.read_u16().await else { return };
        let mut frame = vec![0u8; usize::from(len)];
        if r.read_exact(&mut frame).await.is_err() || tx.send(frame).await.is_err() {
            return;
        }
    }
}

/// The client's side of the connection: its `Rtc`, the addresses its candidate pair uses,
/// and the stream.
struct Client {
    rtc: Rtc,
    mid: Mid,
    /// The address in our candidate: what str0m sends from and what we say we received on.
    local: SocketAddr,
    /// The edge's passive candidate, i.e. the address we connected to.
    edge: SocketAddr,
    writer: OwnedWriteHalf,
    frames: mpsc::Receiver<Vec<u8>>,
    progress: watch::Sender<Progress>,
}

impl Client {
    /// Polls the `Rtc` until it wants time to pass: transmits go onto the stream, framed.
    /// Returns when it next wants a timeout.
    async fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output().expect("client rtc poll") {
                Output::Timeout(at) => return at,
                Output::Transmit(t) => {
                    // The only pair is ours-active ↔ edge-passive: nothing may go elsewhere.
                    assert_eq!(t.proto, Protocol::Tcp, "client sent {:?}", t.proto);
                    assert_eq!(t.source, self.local, "transmit from an unknown address");
                    assert_eq!(t.destination, self.edge, "transmit to an unknown address");
                    let len = u16::try_from(t.contents.len()).expect("a frame fits RFC 4571");
                    let mut framed = Vec::with_capacity(2 + t.contents.len());
                    framed.extend_from_slice(&len.to_be_bytes());
                    framed.extend_from_slice(&t.contents);
                    self.writer
                        .write_all(&framed)
                        .await
                        .expect("the edge closed the ICE-TCP connection");
                }
                Output::Event(Event::Connected) => {
                    self.progress.send_modify(|p| p.connected = true);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Writes one (fake) VP8 keyframe on our send-only m-line.
    fn write_frame(&mut self, n: u64) {
        let writer = self.rtc.writer(self.mid).expect("a writer once connected");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .expect("the edge accepted VP8")
            .pt();
        // Byte 0 bit 0 clear: a VP8 key frame; the rest is opaque to an SFU.
        let mut data = vec![0u8; 1000];
        data[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        writer
            .write(pt, Instant::now(), MediaTime::from_90khz(n * 3000), data)
            .expect("frame written");
    }

    /// Drives the client forever: frames in from the edge, timeouts, and (once connected)
    /// a video frame every [`FRAME_INTERVAL`]. One mutation per turn, then a full drain,
    /// as str0m asks. Panics (failing the test) if the edge closes the connection.
    async fn run(mut self) {
        let mut next_frame = Instant::now();
        loop {
            let timeout = self.drain().await;
            let p = self.progress.borrow().clone();
            let now = Instant::now();
            if p.connected && now >= next_frame {
                self.write_frame(p.frames_written);
                self.progress.send_modify(|p| p.frames_written += 1);
                next_frame = now + FRAME_INTERVAL;
                continue;
            }
            let wake = if p.connected {
                timeout.min(next_frame)
            } else {
                timeout
            };
            tokio::select! {
                frame = self.frames.recv() => {
                    let frame = frame.expect("the edge closed the ICE-TCP connection");
                    let receive = Receive::new(Protocol::Tcp, self.edge, self.local, &frame)
                        .expect("the edge sent a STUN, DTLS, RTP or RTCP packet");
                    self.rtc
                        .handle_input(Input::Receive(Instant::now(), receive))
                        .expect("client rtc input");
                    self.progress.send_modify(|p| p.frames_received += 1);
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .expect("client rtc timeout");
                }
            }
        }
    }
}

/// RTP packets the edge's router has counted, summed over its workers.
fn rtp_received(edge: &Edge) -> u64 {
    edge.media.stats().iter().map(|s| s.rtp_in).sum()
}

/// The value of `arbor_rtp_packets_received_total` in `GET /metrics`.
async fn rtp_received_metric(edge: &Edge) -> f64 {
    let text = reqwest::get(format!("{}/metrics", http_base(edge)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("arbor_rtp_packets_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Publishes over WHIP with only an active TCP candidate, advertised at the socket's real
/// address or, with `browser_port_9`, at port 9; then connects and sends video over TCP.
async fn publish_over_ice_tcp(meeting: &str, browser_port_9: bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (edge, edge_tcp) = start_edge_with_ice_tcp().await;

    // Connect first so the candidate can name the address we really send from. The edge
    // accepts and waits for frames; the connection is not tied to any session yet.
    let stream = TcpStream::connect(edge_tcp).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let local = if browser_port_9 {
        SocketAddr::new(LOCALHOST, 9)
    } else {
        stream.local_addr().unwrap()
    };

    let mut rtc = Rtc::builder().build(Instant::now());
    let candidate = Candidate::builder()
        .tcp()
        .host(local)
        .tcptype(TcpType::Active)
        .build()
        .unwrap();
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let offer = offer.to_sdp_string();
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(
        candidates.len() == 1
            && candidates[0].contains(" tcp ")
            && candidates[0].contains("tcptype active"),
        "the offer must carry exactly one candidate, active TCP: {offer}"
    );

    let r = reqwest::Client::new()
        .post(format!("{}/v1/whip/{meeting}", http_base(&edge)))
        .header("content-type", "application/sdp")
        .bearer_auth(token(meeting, "tcp-studio"))
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let answer = r.text().await.unwrap();
    let passive = format!(
        "tcp {{prio}} {} {} typ host tcptype passive",
        edge_tcp.ip(),
        edge_tcp.port()
    );
    assert!(
        answer.lines().any(|l| {
            let l = l.trim_end();
            let fields: Vec<&str> = l.split(' ').collect();
            l.starts_with("a=candidate:")
                && fields.len() >= 10
                && fields[2] == "tcp"
                && fields[4] == edge_tcp.ip().to_string()
                && fields[5] == edge_tcp.port().to_string()
                && fields[6..10] == ["typ", "host", "tcptype", "passive"]
        }),
        "no candidate like `{passive}` in the answer:\n{answer}"
    );
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();

    let (read, writer) = stream.into_split();
    let (frames_tx, frames) = mpsc::channel(256);
    let reader = tokio::spawn(read_frames(read, frames_tx));
    let (progress, mut watch_progress) = watch::channel(Progress::default());
    let watched = watch_progress.clone();
    let client = Client {
        rtc,
        mid,
        local,
        edge: edge_tcp,
        writer,
        frames,
        progress,
    };

    let observe = async {
        watch_progress
            .wait_for(|p| p.connected)
            .await
            .expect("client loop alive");
        loop {
            if rtp_received(&edge) >= MIN_RTP {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = client.run() => unreachable!("the client loop never returns"),
        r = tokio::time::timeout_at(deadline, observe) => {
            let p = watched.borrow().clone();
            let rtp = rtp_received(&edge);
            r.unwrap_or_else(|_| {
                panic!(
                    "timed out: {p:?}, edge counted {rtp} RTP packets, worker stats {:#?}",
                    edge.media.stats()
                )
            });
        }
    }
    reader.abort();

    // The same count is what /metrics exports.
    let metric = rtp_received_metric(&edge).await;
    assert!(
        metric >= MIN_RTP as f64,
        "arbor_rtp_packets_received_total = {metric}"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_publisher_without_udp_connects_over_ice_tcp() {
    publish_over_ice_tcp("tcp-only", false).await;
}

#[tokio::test]
async fn a_browser_style_active_candidate_on_port_9_connects_over_ice_tcp() {
    publish_over_ice_tcp("tcp-port-9", true).await;
}
