//! Media workers: one OS thread per core, each owning one [`edge_core::Worker`], one UDP
//! socket and one ICE-TCP listener.
//!
//! Each thread runs a current-thread tokio runtime and a single loop that waits for the
//! first of: a datagram, a command from the HTTP side, a TCP frame, or the worker's deadline.
//! Every input is followed by draining the worker's outputs; the UDP datagrams of one drain
//! (one packet fanned out to every subscriber) leave together, in `sendmmsg` batches of
//! [`arbor_udp::MAX_BATCH`], so the kernel is entered once per batch rather than once per
//! subscriber. The worker is touched only by its thread, so the media path has no locks; the
//! HTTP side reaches it through a bounded command channel ([`COMMAND_QUEUE`]) and never waits
//! on media.
//!
//! A meeting's id hashes (`MeetingId::hash32`, FNV-1a: stable across builds, processes and
//! edges) to one worker, so all of a meeting's participants meet on one thread, and a relay
//! datagram finds its worker from the meeting hash in its flow id.
//!
//! The cascade reaches workers through the same command queue (tree updates, relay
//! messages and datagrams from `crate::backbone`); workers send relay traffic straight on
//! the link handles the backbone gives them, and origin-bound reports on one channel.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arbor_udp::SendBatch;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use edge_core::signal::{ClientMsg, ServerMsg};
use edge_core::worker::IceRestart;
use edge_core::{Admission, ApiError, Output, Role, Worker, WorkerConfig, WorkerStats};
use relay_proto::{Control, EdgeId, MeetingId, ParticipantId, TreeUpdate};
use relay_quic::LinkHandle;
use str0m::net::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

/// Commands queued per worker before the HTTP side gets "overloaded".
pub const COMMAND_QUEUE: usize = 1024;
/// Messages queued per signaling socket; a client that does not read loses its socket
/// (it can resume), never the worker's time.
pub const SIGNAL_QUEUE: usize = 256;
/// Frames queued per ICE-TCP connection; past it frames are dropped like UDP would.
pub const TCP_QUEUE: usize = 512;
/// Datagrams read per wake-up before looking at other inputs (fairness).
const READ_BATCH: usize = 64;
/// Most ICE-TCP connections per worker; past it new ones are refused (closed at once).
pub const MAX_TCP_CONNECTIONS: usize = 2048;
/// An ICE-TCP connection that carries nothing for this long is closed. Clients send STUN
/// consent checks every few seconds, so a live one never idles this long.
pub const TCP_IDLE: Duration = Duration::from_secs(30);
/// After a failed `accept` (e.g. out of file descriptors) the listener rests this long, so
/// a listener that stays ready with errors cannot starve the worker's timers.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Largest RFC 4571 frame (the length prefix is 16 bits).
const MAX_TCP_FRAME: usize = u16::MAX as usize;

/// What the HTTP side asks a worker.
#[derive(Debug)]
pub enum Command {
    Join {
        admission: Admission,
        reply: oneshot::Sender<Result<Joined, edge_core::worker::Refusal>>,
    },
    Resume {
        admission: Admission,
        participant: ParticipantId,
        secret: String,
        reply: oneshot::Sender<Result<Joined, edge_core::worker::Refusal>>,
    },
    Client {
        participant: ParticipantId,
        msg: ClientMsg,
    },
    SignalClosed {
        participant: ParticipantId,
    },
    Whip {
        admission: Admission,
        offer: String,
        reply: oneshot::Sender<Result<(ParticipantId, String), ApiError>>,
    },
    Whep {
        admission: Admission,
        offer: String,
        reply: oneshot::Sender<Result<(ParticipantId, String), ApiError>>,
    },
    Patch {
        participant: ParticipantId,
        fragment: String,
        reply: oneshot::Sender<Result<Option<IceRestart>, ApiError>>,
    },
    Delete {
        participant: ParticipantId,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// From the origin: this edge's neighbours in a meeting's tree changed.
    TreeUpdate(TreeUpdate),
    /// A control message from a peer edge.
    Relay {
        from: EdgeId,
        msg: Control,
    },
    /// A media datagram from a peer edge.
    RelayDatagram {
        from: EdgeId,
        bytes: Bytes,
    },
    /// A link to a peer edge is up: send to it on this handle.
    LinkUp {
        peer: EdgeId,
        link: LinkHandle,
    },
    LinkDown {
        peer: EdgeId,
    },
    /// The origin link is back: report presence in full.
    ResendPresence,
}

/// A joined (or resumed) participant: its id and the stream of messages for its socket.
#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantId,
    pub messages: mpsc::Receiver<Outgoing>,
}

/// A server message as its socket sends it: JSON text, which the recipients of one broadcast
/// (a `participant_joined` goes to everyone in the meeting) share, serialized once.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub text: Utf8Bytes,
    /// A fatal error: the worker has removed the participant; the socket closes after it.
    pub fatal: bool,
}

impl Outgoing {
    pub fn of(msg: &ServerMsg) -> Outgoing {
        Outgoing {
            // Serializing our own message types cannot fail.
            text: serde_json::to_string(msg).unwrap_or_default().into(),
            fatal: matches!(msg, ServerMsg::Error { fatal: true, .. }),
        }
    }
}

/// The HTTP side's handle on the media workers.
#[derive(Debug, Clone)]
pub struct Media {
    workers: Arc<Vec<WorkerHandle>>,
    /// Live WHIP/WHEP sessions; shared with the worker threads, which forget a session when
    /// its participant goes away (reaped, replaced), so the map never outlives its media.
    pub resources: Arc<Mutex<Resources>>,
}

/// Most live WHIP/WHEP sessions tracked by one edge.
pub const MAX_RESOURCES: usize = 100_000;

/// A WHIP or WHEP session as the HTTP side knows it.
#[derive(Debug, Clone)]
pub struct Resource {
    pub meeting: MeetingId,
    pub worker: usize,
    pub participant: ParticipantId,
    /// A WHIP publisher (else a WHEP viewer).
    pub whip: bool,
    /// The strong ETag of the current ICE session.
    pub etag: String,
}

/// WHIP/WHEP sessions by their unguessable id, and the reverse index the workers use.
#[derive(Debug, Default)]
pub struct Resources {
    by_id: HashMap<String, Resource>,
    by_participant: HashMap<(usize, ParticipantId), String>,
}

impl Resources {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Live (WHIP, WHEP) sessions.
    pub fn counts(&self) -> (usize, usize) {
        let whip = self.by_id.values().filter(|r| r.whip).count();
        (whip, self.by_id.len() - whip)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds a session; false when [`MAX_RESOURCES`] are live.
    pub fn insert(&mut self, id: String, r: Resource) -> bool {
        if self.by_id.len() >= MAX_RESOURCES {
            return false;
        }
        self.by_participant
            .insert((r.worker, r.participant), id.clone());
        self.by_id.insert(id, r);
        true
    }

    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.by_id.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Resource> {
        self.by_id.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) {
        if let Some(r) = self.by_id.remove(id) {
            self.by_participant.remove(&(r.worker, r.participant));
        }
    }

    /// A worker removed this participant.
    pub fn remove_participant(&mut self, worker: usize, participant: ParticipantId) {
        if let Some(id) = self.by_participant.remove(&(worker, participant)) {
            self.by_id.remove(&id);
        }
    }
}

#[derive(Debug)]
struct WorkerHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<Mutex<WorkerStats>>,
    udp: SocketAddr,
}

/// Where workers bind and what they advertise.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bind: IpAddr,
    pub public_ip: IpAddr,
    pub udp_port: u16,
    /// 0 disables ICE-TCP.
    pub tcp_port: u16,
    pub workers: usize,
    /// See [`crate::config::Media::send_side_bwe`].
    pub send_side_bwe: bool,
    pub limits: edge_core::Limits,
    /// This edge's id (hop chains, meeting events).
    pub edge: EdgeId,
    /// Where workers send origin-bound reports; `None` for a standalone edge.
    pub to_origin: Option<mpsc::Sender<Control>>,
}

impl Media {
    /// Binds every worker's sockets and starts the threads. Fails if a port is taken.
    pub fn start(cfg: &MediaConfig) -> anyhow::Result<Media> {
        let resources = Arc::new(Mutex::new(Resources::default()));
        let mut workers = Vec::new();
        for i in 0..cfg.workers.max(1) {
            let port = |base: u16| -> anyhow::Result<u16> {
                base.checked_add(i as u16)
                    .context("media port out of range")
            };
            let udp_bind = SocketAddr::new(
                cfg.bind,
                if cfg.udp_port == 0 {
                    0
                } else {
                    port(cfg.udp_port)?
                },
            );
            let udp = std::net::UdpSocket::bind(udp_bind)
                .with_context(|| format!("binding media UDP socket {udp_bind}"))?;
            udp.set_nonblocking(true)?;
            set_buffers(&udp);
            let udp_local = udp.local_addr()?;
            let tcp = if cfg.tcp_port == 0 {
                None
            } else {
                let addr = SocketAddr::new(cfg.bind, port(cfg.tcp_port)?);
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding ICE-TCP listener {addr}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            };
            let public_udp = SocketAddr::new(cfg.public_ip, udp_local.port());
            let public_tcp = match &tcp {
                Some(l) => Some(SocketAddr::new(cfg.public_ip, l.local_addr()?.port())),
                None => None,
            };
            let mut session = edge_core::SessionConfig::new(public_udp, public_tcp)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            session.send_side_bwe = cfg.send_side_bwe;
            let wcfg = WorkerConfig {
                session,
                limits: cfg.limits.clone(),
                ice_servers: Vec::new(),
                edge: cfg.edge.clone(),
                rng_seed: rand::random(),
                wall_ms_at_start: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            };
            let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
            let stats = Arc::new(Mutex::new(WorkerStats::default()));
            let thread_stats = stats.clone();
            let thread_resources = resources.clone();
            let local = udp_local;
            let public_ip = cfg.public_ip;
            let to_origin = cfg.to_origin.clone();
            std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime");
                    let shared = Shared {
                        index: i,
                        stats: thread_stats,
                        resources: thread_resources,
                        to_origin,
                    };
                    let result = rt.block_on(run(wcfg, udp, tcp, local, public_ip, rx, shared));
                    if let Err(e) = result {
                        tracing::error!(worker = i, "media worker stopped: {e:#}");
                    }
                })?;
            workers.push(WorkerHandle {
                commands: tx,
                stats,
                udp: udp_local,
            });
        }
        Ok(Media {
            workers: Arc::new(workers),
            resources,
        })
    }

    /// The worker a meeting lives on.
    pub fn worker_for(&self, meeting: &MeetingId) -> usize {
        self.worker_for_hash(meeting.hash32())
    }

    /// The worker for a meeting hash (`MeetingId::hash32`, also the high half of flow ids).
    pub fn worker_for_hash(&self, hash: u32) -> usize {
        hash as usize % self.workers.len()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Queues a command on a worker. Fails when the worker's queue is full (overload) or
    /// the worker died.
    pub fn send(&self, worker: usize, cmd: Command) -> Result<(), Overloaded> {
        self.workers[worker]
            .commands
            .try_send(cmd)
            .map_err(|_| Overloaded)
    }

    /// The UDP addresses the workers listen on.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.udp).collect()
    }

    /// Sum of all workers' latest stats.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.workers
            .iter()
            .map(|w| w.stats.lock().map(|s| s.clone()).unwrap_or_default())
            .collect()
    }

    /// Whether every worker thread is still running.
    pub fn healthy(&self) -> bool {
        self.workers.iter().all(|w| !w.commands.is_closed())
    }
}

/// The worker's command queue is full or the worker is gone.
#[derive(Debug, Clone, Copy)]
pub struct Overloaded;

fn set_buffers(s: &std::net::UdpSocket) {
    let s = socket2::SockRef::from(s);
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
}

/// What a worker thread shares with the HTTP side.
struct Shared {
    index: usize,
    stats: Arc<Mutex<WorkerStats>>,
    resources: Arc<Mutex<Resources>>,
    to_origin: Option<mpsc::Sender<Control>>,
}

/// A frame from an ICE-TCP connection, or its end.
enum TcpEvent {
    Frame(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// The worker thread's loop.
async fn run(
    cfg: WorkerConfig,
    udp: std::net::UdpSocket,
    tcp: Option<std::net::TcpListener>,
    local: SocketAddr,
    public_ip: IpAddr,
    mut commands: mpsc::Receiver<Command>,
    shared: Shared,
) -> anyhow::Result<()> {
    let udp = UdpSocket::from_std(udp)?;
    let tcp = tcp.map(TcpListener::from_std).transpose()?;
    let tcp_local = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let mut worker = Worker::new(cfg, Instant::now());
    let mut shell = Shell::new(&udp, &shared);
    let (tcp_tx, mut tcp_rx) = mpsc::channel::<TcpEvent>(TCP_QUEUE);
    let mut buf = vec![0u8; 2048];
    let mut deadline = Instant::now();
    let mut last_stats = Instant::now();
    let mut accept_paused_until = Instant::now();
    loop {
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            biased;
            r = udp.readable() => {
                r?;
                for _ in 0..READ_BATCH {
                    match udp.try_recv_from(&mut buf) {
                        Ok((n, source)) => {
                            let now = Instant::now();
                            let dest = SocketAddr::new(public_ip, local.port());
                            worker.handle_receive(now, Protocol::Udp, source, dest, &buf[..n]);
                            deadline = shell.drain(&mut worker);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP errors surface here on Linux; they concern one peer.
                            tracing::debug!("udp recv: {e}");
                            break;
                        }
                    }
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                shell.handle_command(&mut worker, cmd);
                deadline = shell.drain(&mut worker);
            }
            ev = tcp_rx.recv() => {
                match ev {
                    Some(TcpEvent::Frame(source, frame)) => {
                        let dest = SocketAddr::new(public_ip, tcp_local.map_or(0, |a| a.port()));
                        worker.handle_receive(Instant::now(), Protocol::Tcp, source, dest, &frame);
                        deadline = shell.drain(&mut worker);
                    }
                    Some(TcpEvent::Closed(peer)) => { shell.tcp_writers.remove(&peer); }
                    None => {}
                }
            }
            conn = accept(tcp.as_ref()), if Instant::now() >= accept_paused_until => {
                match conn {
                    Ok((stream, peer)) if shell.tcp_writers.len() < MAX_TCP_CONNECTIONS => {
                        let (wtx, wrx) = mpsc::channel(TCP_QUEUE);
                        shell.tcp_writers.insert(peer, wtx);
                        tokio::spawn(tcp_connection(stream, peer, tcp_tx.clone(), wrx));
                    }
                    Ok(_) => tracing::debug!("ICE-TCP connection refused: {MAX_TCP_CONNECTIONS} open"),
                    Err(e) => {
                        tracing::warn!("ICE-TCP accept failed: {e}");
                        accept_paused_until = Instant::now() + ACCEPT_BACKOFF;
                    }
                }
            }
            _ = sleep => {
                worker.handle_timeout(Instant::now());
                deadline = shell.drain(&mut worker);
            }
        }
        if last_stats.elapsed().as_millis() >= 500 {
            last_stats = Instant::now();
            if let Ok(mut s) = shared.stats.lock() {
                *s = worker.stats().clone();
                // The kernel's refusals count with the worker's own full queue: either way
                // the datagram found no room to leave.
                s.dropped_transmit_queue += shell.send_refused;
            }
        }
    }
}

async fn accept(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Reads RFC 4571 frames (16-bit length prefix) into the worker and writes its frames back.
async fn tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    to_worker: mpsc::Sender<TcpEvent>,
    mut from_worker: mpsc::Receiver<Vec<u8>>,
) {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let reader = async {
        let mut frame = Vec::new();
        loop {
            let len = match tokio::time::timeout(TCP_IDLE, r.read_u16()).await {
                Ok(len) => len? as usize,
                Err(_) => return Ok(()), // idle: close
            };
            frame.resize(len.min(MAX_TCP_FRAME), 0);
            r.read_exact(&mut frame).await?;
            // A busy worker loses the frame: TCP media degrades like UDP would, by loss.
            let _ = to_worker.try_send(TcpEvent::Frame(peer, std::mem::take(&mut frame)));
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    };
    let writer = async {
        while let Some(frame) = from_worker.recv().await {
            let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
            w.write_u16(len).await?;
            w.write_all(&frame[..len as usize]).await?;
        }
        Ok::<(), io::Error>(())
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    let _ = to_worker.send(TcpEvent::Closed(peer)).await;
}

/// The parts of the worker thread that talk to the outside.
struct Shell<'a> {
    udp: &'a UdpSocket,
    /// UDP datagrams of one drain, sent together (`sendmmsg`) when it ends or fills up.
    sends: SendBatch,
    /// Datagrams the kernel refused (a full send buffer) or too large to queue.
    send_refused: u64,
    shared: &'a Shared,
    signals: HashMap<ParticipantId, mpsc::Sender<Outgoing>>,
    /// The last message serialized, for the next recipients of the same broadcast.
    last_signal: Option<(Arc<ServerMsg>, Outgoing)>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    /// Live relay links to peer edges.
    links: HashMap<EdgeId, LinkHandle>,
}

impl<'a> Shell<'a> {
    fn new(udp: &'a UdpSocket, shared: &'a Shared) -> Self {
        Shell {
            udp,
            sends: SendBatch::new(false),
            send_refused: 0,
            shared,
            signals: HashMap::new(),
            last_signal: None,
            tcp_writers: HashMap::new(),
            links: HashMap::new(),
        }
    }

    fn handle_command(&mut self, worker: &mut Worker, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join { admission, reply } => {
                let r = worker
                    .join(now, admission, Role::Meeting)
                    .map(|p| self.joined(p));
                let _ = reply.send(r);
            }
            Command::Resume {
                admission,
                participant,
                secret,
                reply,
            } => {
                let r = worker
                    .resume(now, &admission, participant, &secret)
                    .map(|()| self.joined(participant));
                let _ = reply.send(r);
            }
            Command::Client { participant, msg } => {
                worker.handle_client_message(now, participant, msg);
            }
            Command::SignalClosed { participant } => {
                self.signals.remove(&participant);
                worker.signal_closed(now, participant);
            }
            Command::Whip {
                admission,
                offer,
                reply,
            } => {
                let _ = reply.send(worker.whip_publish(now, admission, &offer));
            }
            Command::Whep {
                admission,
                offer,
                reply,
            } => {
                let _ = reply.send(worker.whep_subscribe(now, admission, &offer));
            }
            Command::Patch {
                participant,
                fragment,
                reply,
            } => {
                let _ = reply.send(worker.ice_patch(now, participant, &fragment));
            }
            Command::Delete { participant, reply } => {
                let _ = reply.send(worker.delete(now, participant));
            }
            Command::TreeUpdate(update) => worker.handle_tree_update(now, update),
            Command::Relay { from, msg } => worker.handle_relay(now, &from, msg),
            Command::RelayDatagram { from, bytes } => {
                worker.handle_relay_datagram(now, &from, &bytes);
            }
            Command::LinkUp { peer, link } => {
                self.links.insert(peer.clone(), link);
                worker.handle_link_up(now, &peer);
            }
            Command::LinkDown { peer } => {
                self.links.remove(&peer);
                worker.handle_link_down(now, &peer);
            }
            Command::ResendPresence => worker.resend_presence(),
        }
    }

    /// Opens the message stream for a (re)joined participant. Messages the worker queued
    /// for it during the call (its `joined`) are drained into it right after.
    fn joined(&mut self, participant: ParticipantId) -> Joined {
        let (tx, rx) = mpsc::channel(SIGNAL_QUEUE);
        self.signals.insert(participant, tx);
        Joined {
            participant,
            messages: rx,
        }
    }

    /// Drains the worker's outputs; returns its next deadline.
    fn drain(&mut self, worker: &mut Worker) -> Instant {
        loop {
            match worker.poll_output() {
                Output::Transmit(t) => match t.proto {
                    Protocol::Udp => self.queue_udp(&t.contents, t.destination),
                    _ => {
                        if let Some(w) = self.tcp_writers.get(&t.destination) {
                            let _ = w.try_send(t.contents.to_vec());
                        }
                    }
                },
                Output::Signal(p, msg) => {
                    let out = match &self.last_signal {
                        Some((m, out)) if Arc::ptr_eq(m, &msg) => out.clone(),
                        _ => {
                            let out = Outgoing::of(&msg);
                            self.last_signal = Some((msg, out.clone()));
                            out
                        }
                    };
                    if let Some(tx) = self.signals.get(&p)
                        && let Err(e) = tx.try_send(out)
                    {
                        // Full: the client stopped reading; drop its socket, it may resume.
                        // Closed: the socket's task ended and its `SignalClosed` is queued.
                        if matches!(e, mpsc::error::TrySendError::Full(_)) {
                            metrics::counter!(crate::metrics::SIGNAL_QUEUE_OVERFLOWS).increment(1);
                        }
                        self.signals.remove(&p);
                        worker.signal_closed(Instant::now(), p);
                    }
                }
                Output::Closed(p) => {
                    self.signals.remove(&p);
                    if let Ok(mut r) = self.shared.resources.lock() {
                        r.remove_participant(self.shared.index, p);
                    }
                }
                Output::Relay(to, msg) => {
                    // A full or missing link loses the message; the peer's next link-up
                    // brings both sides' state back in full.
                    let sent = self.links.get(&to).is_some_and(|l| l.try_send(msg).is_ok());
                    if !sent {
                        metrics::counter!("arbor_relay_messages_dropped_total").increment(1);
                    }
                }
                Output::RelayDatagram(to, bytes) => {
                    let sent = self
                        .links
                        .get(&to)
                        .is_some_and(|l| l.send_datagram(bytes).is_ok());
                    if !sent {
                        metrics::counter!("arbor_relay_datagrams_dropped_total").increment(1);
                    }
                }
                Output::Origin(msg) => {
                    if let Some(tx) = &self.shared.to_origin {
                        let _ = tx.try_send(msg);
                    }
                }
                Output::Timeout(at) => {
                    self.flush_udp();
                    return at;
                }
            }
        }
    }

    /// Queues a datagram for the next `sendmmsg`, flushing first if the batch is full.
    fn queue_udp(&mut self, contents: &[u8], to: SocketAddr) {
        if contents.len() > arbor_udp::SLOT_LEN {
            // Nothing the worker makes is this large (str0m keeps to the MTU); dropping
            // it is what the kernel would do past the path MTU anyway.
            self.send_refused += 1;
            return;
        }
        if !self.sends.has_room() {
            self.flush_udp();
        }
        self.sends.slot()[..contents.len()].copy_from_slice(contents);
        self.sends.commit(to, contents.len());
    }

    /// Sends the queued datagrams. A full socket buffer drops them: media is loss-tolerant,
    /// and waiting would stall every other participant of the worker.
    fn flush_udp(&mut self) {
        self.send_refused += self.sends.flush(self.udp).errors;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_core::signal::ClientMsg;

    fn admission(identity: &str) -> Admission {
        Admission {
            meeting: MeetingId::new("m").unwrap(),
            identity: identity.into(),
            name: identity.into(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            hidden: false,
        }
    }

    /// A client that stops reading its signaling socket costs only itself: once its bounded
    /// queue is full the worker drops it (it may resume) instead of waiting, and everyone
    /// else keeps receiving.
    #[tokio::test]
    async fn a_signaling_client_that_stops_reading_is_dropped_not_waited_for() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = udp.local_addr().unwrap();
        let shared = Shared {
            index: 0,
            stats: Default::default(),
            resources: Default::default(),
            to_origin: None,
        };
        let mut shell = Shell::new(&udp, &shared);
        let cfg = WorkerConfig {
            session: edge_core::SessionConfig::new(local, None).unwrap(),
            limits: edge_core::Limits::default(),
            ice_servers: vec![],
            edge: "edge-test".parse().unwrap(),
            rng_seed: 1,
            wall_ms_at_start: 0,
        };
        let mut worker = Worker::new(cfg, Instant::now());
        let join = |shell: &mut Shell<'_>, worker: &mut Worker, who: &str| {
            let (tx, rx) = oneshot::channel();
            shell.handle_command(
                worker,
                Command::Join {
                    admission: admission(who),
                    reply: tx,
                },
            );
            shell.drain(worker);
            rx
        };
        let mut stuck = join(&mut shell, &mut worker, "stuck")
            .await
            .unwrap()
            .unwrap();
        let mut reader = join(&mut shell, &mut worker, "reader")
            .await
            .unwrap()
            .unwrap();
        // Far more events than the stuck client's queue holds; the reader drains as it goes.
        let mut seen = 0;
        for i in 0..(SIGNAL_QUEUE * 2) {
            let r = join(&mut shell, &mut worker, &format!("c{i}"))
                .await
                .unwrap()
                .unwrap();
            shell.handle_command(
                &mut worker,
                Command::Client {
                    participant: r.participant,
                    msg: ClientMsg::Leave {},
                },
            );
            shell.drain(&mut worker);
            while let Ok(m) = reader.messages.try_recv() {
                seen += usize::from(m.text.contains(r#""type":"participant_left""#));
            }
        }
        assert_eq!(seen, SIGNAL_QUEUE * 2, "the reader got every event");
        assert!(
            !shell.signals.contains_key(&stuck.participant),
            "the stuck client was dropped"
        );
        assert!(shell.signals.contains_key(&reader.participant));
        // It kept what fit in its queue; then its stream ended (its socket closes; it may resume).
        let mut kept = 0;
        while let Ok(_m) = stuck.messages.try_recv() {
            kept += 1;
        }
        assert_eq!(kept, SIGNAL_QUEUE);
        assert!(stuck.messages.recv().await.is_none());
        assert!(
            worker.has_participant(stuck.participant),
            "media goes on until the grace ends"
        );
    }
}
