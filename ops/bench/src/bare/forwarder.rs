//! The bare forwarder: the least work per packet that an SFU forwarding SRTP must do, on one
//! thread and one UDP socket, as the yardstick for Arbor's forwarding.
//!
//! Per batch of up to [`MAX_BATCH`] datagrams from one `recvmmsg`: unprotect each with the
//! publisher's context (authentication and replay check included); then per subscriber and
//! per packet copy it, rewrite its SSRC and sequence number (each subscriber has its own, as
//! behind an SFU), protect it with the subscriber's context and queue it; `sendmmsg` the queue
//! [`MAX_BATCH`] messages at a time. Nothing is allocated per packet and no system call is
//! made per packet. With UDP GSO (where the kernel has it), a subscriber's consecutive
//! equal-size packets of one batch leave as one message; the per-packet work is unchanged.
//!
//! No SFU logic: one publisher (the first source whose packet authenticates), every packet to
//! every subscriber, no RTCP, no layer choice, no congestion control.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::Error;
use super::rtp::{self, Header};
use super::srtp::{MasterKey, SrtpContext};
use arbor_udp::{MAX_BATCH, RecvBatch, SendBatch};

/// Subscribers one forwarder serves.
pub const MAX_SUBSCRIBERS: usize = 4096;

/// SSRCs of the publisher that are forwarded (a simulcast camera and a microphone); packets
/// of further SSRCs are dropped and counted.
pub const MAX_STREAMS: usize = 4;

/// How long a `recvmmsg` waits before the thread looks at its stop flag again.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(20);

/// Kernel socket buffer, each way.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// One receiver of everything the publisher sends.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Where its packets go.
    pub addr: SocketAddr,
    /// Its SRTP master key (the forwarder protects with it).
    pub keys: MasterKey,
    /// The SSRC it sees for the publisher's first stream; stream `n` is `ssrc + n`.
    pub ssrc: u32,
}

/// What the forwarder binds and serves.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Address of its one socket.
    pub bind: SocketAddr,
    /// The publisher's SRTP master key.
    pub publisher: MasterKey,
    /// Receivers, at most [`MAX_SUBSCRIBERS`].
    pub subscribers: Vec<Subscriber>,
    /// Use UDP GSO if the kernel supports it.
    pub gso: bool,
    /// Seeds each subscriber's sequence number offsets.
    pub seed: u64,
}

impl ForwarderConfig {
    /// A forwarder on `bind` for the publisher keyed `publisher`, no subscribers yet, no GSO.
    pub fn new(bind: SocketAddr, publisher: MasterKey) -> Self {
        ForwarderConfig {
            bind,
            publisher,
            subscribers: Vec::new(),
            gso: false,
            seed: 0,
        }
    }
}

/// Counters of a running forwarder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ForwarderStats {
    /// Datagrams received.
    pub packets_in: u64,
    /// Of those, dropped: not from the publisher, not authentic, replayed, or of a stream
    /// past [`MAX_STREAMS`].
    pub dropped_in: u64,
    /// Datagrams the kernel took for sending (GSO segments one by one).
    pub packets_out: u64,
    /// Datagrams the kernel refused.
    pub send_errors: u64,
    /// Packets a subscriber's context could not protect.
    pub protect_errors: u64,
    /// `recvmmsg` calls that returned datagrams.
    pub recv_batches: u64,
    /// `sendmmsg` calls.
    pub send_calls: u64,
}

#[derive(Debug, Default)]
struct Counters {
    packets_in: AtomicU64,
    dropped_in: AtomicU64,
    packets_out: AtomicU64,
    send_errors: AtomicU64,
    protect_errors: AtomicU64,
    recv_batches: AtomicU64,
    send_calls: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ForwarderStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ForwarderStats {
            packets_in: get(&self.packets_in),
            dropped_in: get(&self.dropped_in),
            packets_out: get(&self.packets_out),
            send_errors: get(&self.send_errors),
            protect_errors: get(&self.protect_errors),
            recv_batches: get(&self.recv_batches),
            send_calls: get(&self.send_calls),
        }
    }
}

/// Starts forwarders.
#[derive(Debug)]
pub struct Forwarder;

impl Forwarder {
    /// Binds the socket, derives every session key, and starts the forwarding thread.
    pub fn spawn(config: &ForwarderConfig) -> Result<ForwarderHandle, Error> {
        if config.subscribers.len() > MAX_SUBSCRIBERS {
            return Err(Error::Limit {
                what: "subscribers",
                count: config.subscribers.len(),
                limit: MAX_SUBSCRIBERS,
            });
        }
        let socket = arbor_udp::bind_udp(config.bind, SOCKET_BUFFER_BYTES, RECV_TIMEOUT)
            .map_err(Error::io("bind the forwarder's socket"))?;
        let local_addr = socket
            .local_addr()
            .map_err(Error::io("read the forwarder's address"))?;
        let gso = config.gso && arbor_udp::gso_supported(&socket);
        let mut rng = StdRng::seed_from_u64(config.seed);
        let routes = config
            .subscribers
            .iter()
            .map(|s| {
                Ok(Route {
                    addr: s.addr,
                    ctx: SrtpContext::new(&s.keys)?,
                    ssrc: s.ssrc,
                    seq_offset: rng.random(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            gso: AtomicBool::new(gso),
        });
        let worker = Worker {
            socket,
            publisher: SrtpContext::new(&config.publisher)?,
            publisher_addr: None,
            streams: Vec::with_capacity(MAX_STREAMS),
            routes,
            rx: RecvBatch::new(false),
            tx: SendBatch::new(gso),
            ready: [Ready::default(); MAX_BATCH],
            shared: shared.clone(),
        };
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bare-forwarder".into())
            .spawn(move || {
                let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get());
                worker.run();
            })
            .map_err(Error::io("start the forwarder thread"))?;
        let tid = tid_rx.recv().map_err(|_| Error::Panicked("forwarder"))?;
        Ok(ForwarderHandle {
            tid: tid.unsigned_abs(),
            local_addr,
            shared,
            thread: Some(thread),
        })
    }
}

#[derive(Debug)]
struct Shared {
    counters: Counters,
    stop: AtomicBool,
    gso: AtomicBool,
}

/// A running forwarder; dropping it stops the thread too.
#[derive(Debug)]
pub struct ForwarderHandle {
    tid: u32,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ForwarderHandle {
    /// The forwarding thread's id, for `/proc/self/task/<tid>/stat` ([`crate::cpu::thread`]).
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// Where the publisher sends.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether packets leave with GSO (asked for, supported, and never refused since).
    pub fn gso(&self) -> bool {
        self.shared.gso.load(Ordering::Relaxed)
    }

    /// The counters now.
    pub fn stats(&self) -> ForwarderStats {
        self.shared.counters.snapshot()
    }

    /// Stops the thread (within [`RECV_TIMEOUT`]), waits for it and returns the final counters.
    pub fn stop(mut self) -> Result<ForwarderStats, Error> {
        self.join()?;
        Ok(self.stats())
    }

    fn join(&mut self) -> Result<(), Error> {
        self.shared.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(Error::Panicked("forwarder")),
            _ => Ok(()),
        }
    }
}

impl Drop for ForwarderHandle {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// A subscriber as the thread sees it.
struct Route {
    addr: SocketAddr,
    ctx: SrtpContext,
    ssrc: u32,
    /// Added to the publisher's sequence numbers, per stream.
    seq_offset: [u16; MAX_STREAMS],
}

/// An unprotected packet of the current batch, ready to fan out.
#[derive(Debug, Clone, Copy, Default)]
struct Ready {
    /// Index in the receive batch.
    slot: usize,
    /// Plain RTP length.
    len: usize,
    seq: u16,
    /// Index of its SSRC among the publisher's streams.
    stream: usize,
}

struct Worker {
    socket: UdpSocket,
    publisher: SrtpContext,
    publisher_addr: Option<SocketAddr>,
    /// The publisher's SSRCs, in order of first appearance.
    streams: Vec<u32>,
    routes: Vec<Route>,
    rx: RecvBatch,
    tx: SendBatch,
    ready: [Ready; MAX_BATCH],
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            // An error other than a timeout (none is expected on a bound UDP socket) is
            // counted as an empty batch; the loop goes on until told to stop.
            if self.rx.recv(&self.socket).unwrap_or(0) == 0 {
                continue;
            }
            let ready = self.unprotect_batch();
            self.fan_out(ready);
        }
    }

    /// Unprotects the received batch in place; returns how many packets are ready.
    fn unprotect_batch(&mut self) -> usize {
        let mut ready = 0;
        for i in 0..self.rx.len() {
            let source = self.rx.source(i);
            if self.publisher_addr.is_some_and(|p| source != Some(p)) {
                continue;
            }
            let Ok(len) = self.publisher.unprotect_rtp(self.rx.datagram_mut(i)) else {
                continue;
            };
            let Ok(h) = Header::parse(&self.rx.datagram(i)[..len]) else {
                continue;
            };
            let stream = match self.streams.iter().position(|&s| s == h.ssrc) {
                Some(n) => n,
                None if self.streams.len() < MAX_STREAMS => {
                    self.streams.push(h.ssrc);
                    self.streams.len() - 1
                }
                None => continue,
            };
            if self.publisher_addr.is_none() {
                self.publisher_addr = source;
            }
            self.ready[ready] = Ready {
                slot: i,
                len,
                seq: h.seq,
                stream,
            };
            ready += 1;
        }
        let c = &self.shared.counters;
        let received = self.rx.len() as u64;
        c.packets_in.fetch_add(received, Ordering::Relaxed);
        c.dropped_in
            .fetch_add(received - ready as u64, Ordering::Relaxed);
        c.recv_batches.fetch_add(1, Ordering::Relaxed);
        ready
    }

    /// Protects every ready packet for every subscriber and sends them all.
    fn fan_out(&mut self, ready: usize) {
        let mut protect_errors = 0;
        for route in &mut self.routes {
            for r in &self.ready[..ready] {
                if !self.tx.has_room() {
                    flush(&mut self.tx, &self.socket, &self.shared);
                }
                let slot = self.tx.slot();
                slot[..r.len].copy_from_slice(&self.rx.datagram(r.slot)[..r.len]);
                rtp::set_ssrc(slot, route.ssrc.wrapping_add(r.stream as u32));
                rtp::set_seq(slot, r.seq.wrapping_add(route.seq_offset[r.stream]));
                match route.ctx.protect_rtp(slot, r.len) {
                    Ok(len) => self.tx.commit(route.addr, len),
                    Err(_) => protect_errors += 1,
                }
            }
        }
        flush(&mut self.tx, &self.socket, &self.shared);
        if protect_errors > 0 {
            let c = &self.shared.counters;
            c.protect_errors
                .fetch_add(protect_errors, Ordering::Relaxed);
        }
    }
}

/// Sends what `tx` holds and counts the outcome.
fn flush(tx: &mut SendBatch, socket: &UdpSocket, shared: &Shared) {
    if tx.is_empty() {
        return;
    }
    let f = tx.flush(socket);
    let c = &shared.counters;
    c.packets_out.fetch_add(f.datagrams, Ordering::Relaxed);
    c.send_errors.fetch_add(f.errors, Ordering::Relaxed);
    c.send_calls.fetch_add(f.calls, Ordering::Relaxed);
    if f.gso_failed {
        shared.gso.store(false, Ordering::Relaxed);
    }
}
