//! Cheap subscribers for the bare forwarder: count packets and sequence gaps, never decrypt.
//!
//! All sinks share one thread and one UDP socket bound to `0.0.0.0:<port>`; sink `n` is the
//! address `first_ip + n` on that port (all of 127/8 is local, so 127.0.0.2, 127.0.0.3, …
//! need no setup). Each datagram's destination address (`IP_PKTINFO`) says which sink it was
//! sent to, so the forwarder really sends to one destination per subscriber (which is what
//! limits GSO) while the receiving side costs one `recvmmsg` per batch of up to 64 datagrams
//! rather than one per sink. The RTP header of an SRTP packet is in the clear, so sequence
//! numbers are read without keys; a few raw datagrams per sink can be kept for a caller to
//! decrypt ([`SinkConfig::sample_every`]). The thread blocks in `recvmmsg`, or polls
//! ([`SinkConfig::poll_interval`]) so that the forwarder's sends never have to wake it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Error;
use super::rtp::{Header, extend_seq};
use arbor_udp::RecvBatch;

/// Sinks one thread serves.
pub const MAX_SINKS: usize = 4096;

/// SSRCs a sink tracks; packets of more are counted as foreign.
pub const MAX_STREAMS_PER_SINK: usize = 4;

/// Raw datagrams a sink keeps.
pub const MAX_SAMPLES: usize = 16;

/// Kernel receive buffer of the shared socket: every sink's traffic queues here.
pub const SOCKET_BUFFER_BYTES: usize = 32 << 20;

/// How long a `recvmmsg` waits before the thread looks at its stop flag again.
const RECV_TIMEOUT: Duration = Duration::from_millis(20);

/// How many sinks and where.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Number of sinks, at most [`MAX_SINKS`].
    pub count: usize,
    /// Address of sink 0; sink `n` is `first_ip + n`. Must be local (127/8 always is).
    pub first_ip: Ipv4Addr,
    /// Keep the 1st, (n+1)-th, (2n+1)-th … datagram of each sink, up to [`MAX_SAMPLES`];
    /// 0 keeps none.
    pub sample_every: u64,
    /// `None`: block in `recvmmsg` like a receiving process, so the forwarder's sends wake
    /// the sink thread. `Some(interval)`: never block; drain the socket, then sleep for
    /// `interval`, so a datagram finds nobody to wake and the forwarder's CPU time carries
    /// less of the receiving side's cost (loopback delivers in the sender's context).
    pub poll_interval: Option<Duration>,
}

impl SinkConfig {
    /// `count` sinks from 127.0.0.2, keeping no samples.
    pub fn new(count: usize) -> Self {
        SinkConfig {
            count,
            first_ip: Ipv4Addr::new(127, 0, 0, 2),
            sample_every: 0,
            poll_interval: None,
        }
    }
}

/// What one sink received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Datagrams received.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the sequence numbers span, first to highest, summed over SSRCs.
    pub expected: u64,
    /// `expected - packets` (0 if duplicates outnumber losses).
    pub missing: u64,
    /// Forward jumps of more than one sequence number.
    pub gaps: u64,
    /// Packets at or below the highest sequence number so far (reordered or duplicated).
    pub late: u64,
    /// Datagrams that were not RTP, or of an SSRC past [`MAX_STREAMS_PER_SINK`].
    pub malformed: u64,
}

impl SinkStats {
    /// Missing packets as a percentage of those expected.
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            return 0.0;
        }
        100.0 * self.missing as f64 / self.expected as f64
    }
}

#[derive(Debug, Clone, Copy)]
struct StreamSeq {
    ssrc: u32,
    first: u64,
    highest: u64,
}

#[derive(Debug, Default)]
struct Sink {
    stats: SinkStats,
    streams: Vec<StreamSeq>,
    samples: Vec<Vec<u8>>,
}

impl Sink {
    /// Counts one datagram; false if it was not counted as a packet (malformed).
    fn receive(&mut self, datagram: &[u8], sample_every: u64) -> bool {
        let Ok(h) = Header::parse(datagram) else {
            self.stats.malformed += 1;
            return false;
        };
        match self.streams.iter().position(|s| s.ssrc == h.ssrc) {
            Some(i) => {
                let s = &mut self.streams[i];
                let ext = extend_seq(s.highest, h.seq);
                if ext > s.highest {
                    self.stats.gaps += u64::from(ext > s.highest + 1);
                    s.highest = ext;
                } else {
                    self.stats.late += 1;
                }
            }
            None if self.streams.len() < MAX_STREAMS_PER_SINK => {
                // Start one cycle up, so that an earlier packet arriving late extends below.
                let ext = (1 << 16) | u64::from(h.seq);
                self.streams.push(StreamSeq {
                    ssrc: h.ssrc,
                    first: ext,
                    highest: ext,
                });
            }
            None => {
                self.stats.malformed += 1;
                return false;
            }
        }
        if sample_every > 0
            && self.stats.packets.is_multiple_of(sample_every)
            && self.samples.len() < MAX_SAMPLES
        {
            self.samples.push(datagram.to_vec());
        }
        self.stats.packets += 1;
        self.stats.bytes += datagram.len() as u64;
        true
    }

    fn snapshot(&self) -> SinkStats {
        let mut s = self.stats;
        for st in &self.streams {
            // An early packet arriving late lowers nothing: `first` is the first to arrive.
            s.expected += st.highest.saturating_sub(st.first) + 1;
        }
        s.missing = s.expected.saturating_sub(s.packets);
        s
    }
}

#[derive(Debug, Default)]
struct State {
    sinks: Vec<Sink>,
    /// Datagrams to an address that is no sink.
    foreign: u64,
    /// Datagrams received by all sinks.
    total: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The sink thread never panics while holding the lock; if it did, the counts are
        // still the best there is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts sinks.
#[derive(Debug)]
pub struct Sinks;

impl Sinks {
    /// Binds the shared socket and starts the thread.
    pub fn spawn(config: &SinkConfig) -> Result<SinkHandle, Error> {
        if config.count > MAX_SINKS {
            return Err(Error::Limit {
                what: "sinks",
                count: config.count,
                limit: MAX_SINKS,
            });
        }
        let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let socket = arbor_udp::bind_udp(bind, SOCKET_BUFFER_BYTES, RECV_TIMEOUT)
            .map_err(Error::io("bind the sinks' socket"))?;
        arbor_udp::enable_pktinfo(&socket).map_err(Error::io("ask for IP_PKTINFO"))?;
        if config.poll_interval.is_some() {
            socket
                .set_nonblocking(true)
                .map_err(Error::io("make the sinks' socket non-blocking"))?;
        }
        let port = socket
            .local_addr()
            .map_err(Error::io("read the sinks' port"))?
            .port();
        let first = u32::from(config.first_ip);
        let addrs = (0..config.count as u32)
            .map(|n| SocketAddr::from((Ipv4Addr::from(first.wrapping_add(n)), port)))
            .collect();
        let shared = Arc::new(Shared::default());
        shared.lock().sinks = (0..config.count).map(|_| Sink::default()).collect();
        let worker = Worker {
            socket,
            first,
            sample_every: config.sample_every,
            poll_interval: config.poll_interval,
            shared: shared.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("bare-sinks".into())
            .spawn(move || worker.run())
            .map_err(Error::io("start the sink thread"))?;
        Ok(SinkHandle {
            addrs,
            shared,
            thread: Some(thread),
        })
    }
}

/// Running sinks; dropping it stops the thread too.
#[derive(Debug)]
pub struct SinkHandle {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SinkHandle {
    /// Address of each sink, by index.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Each sink's counts now.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.shared
            .lock()
            .sinks
            .iter()
            .map(Sink::snapshot)
            .collect()
    }

    /// Datagrams received by all sinks.
    pub fn total(&self) -> u64 {
        self.shared.lock().total
    }

    /// Datagrams sent to this port at an address that is no sink.
    pub fn foreign(&self) -> u64 {
        self.shared.lock().foreign
    }

    /// The raw datagrams sink `n` kept, oldest first.
    pub fn samples(&self, n: usize) -> Vec<Vec<u8>> {
        self.shared
            .lock()
            .sinks
            .get(n)
            .map(|s| s.samples.clone())
            .unwrap_or_default()
    }

    /// Waits until all sinks together have received `total` datagrams, or `timeout` passed;
    /// returns the total then.
    pub fn wait_for_total(&self, total: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.total < total {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.total
    }

    /// Stops the thread, waits for it and returns each sink's final counts.
    pub fn stop(mut self) -> Result<Vec<SinkStats>, Error> {
        self.join()?;
        Ok(self.stats())
    }

    fn join(&mut self) -> Result<(), Error> {
        self.shared.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(Error::Panicked("sink")),
            _ => Ok(()),
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

struct Worker {
    socket: UdpSocket,
    first: u32,
    sample_every: u64,
    poll_interval: Option<Duration>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(self) {
        let mut batch = RecvBatch::new(true);
        while !self.shared.stop.load(Ordering::Relaxed) {
            if batch.recv(&self.socket).unwrap_or(0) == 0 {
                if let Some(interval) = self.poll_interval {
                    std::thread::sleep(interval);
                }
                continue;
            }
            let mut state = self.shared.lock();
            for i in 0..batch.len() {
                let sink = batch
                    .destination(i)
                    .map(|ip| u32::from(ip).wrapping_sub(self.first) as usize);
                match sink.filter(|&n| n < state.sinks.len()) {
                    Some(n) => {
                        let counted = state.sinks[n].receive(batch.datagram(i), self.sample_every);
                        state.total += u64::from(counted);
                    }
                    None => state.foreign += 1,
                }
            }
            drop(state);
            self.shared.changed.notify_all();
        }
    }
}
