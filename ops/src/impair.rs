//! `arbor impair`: a userspace UDP proxy that delays, jitters, drops, rate-limits and
//! partitions datagrams, changeable at run time (this kernel has no `tc netem`).
//!
//! ```text
//!           ┌──────────────── one flow per client address ─────────────────┐
//! client ──► listen ── up Link (client → upstream) ──► own socket ──► upstream
//! client ◄── listen ◄─ down Link (upstream → client) ◄─ own socket ◄── upstream
//! ```
//!
//! Each client gets its own upstream socket, so the upstream sees one source per client and
//! its replies find their way back. Each direction of each flow is a seeded
//! [`arbor_sim::link::Link`], the simulator's model ([`flow_seeds`]). One task owns every flow
//! and link, so nothing is locked: it reads the listen socket, a channel fed by one reader
//! task per upstream socket, and a channel of [`control`] commands; it hands packets to the
//! links with `Instant::now()`, sends what they deliver, and sleeps until the earliest
//! `poll_timeout`. UDP only (QUIC rides it).
//!
//! Embed it with [`Proxy::start`] (tests, `arbor up`); `arbor impair` runs [`serve`].

pub mod control;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arbor_sim::link::{Link, LinkConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cli::{ImpairAction, ImpairArgs, LinkArgs};
use control::Command;
pub use control::{
    Control, ControlError, Direction, DirectionStats, InvalidUpdate, LinkUpdate, LinkView, Links,
    ProxyStats,
};

/// Most clients with a flow at once; a new client past it is dropped (`dropped_no_flow`)
/// until an idle flow expires.
pub const MAX_FLOWS: usize = 1024;

/// A flow with no datagram either way for this long (and nothing in flight) is closed.
pub const FLOW_IDLE: Duration = Duration::from_secs(60);

/// How often idle flows are looked for (more often when the idle time is shorter).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Largest UDP payload.
pub const MAX_DATAGRAM_BYTES: usize = 65_535;

/// Datagrams from upstream sockets waiting for the proxy's task; readers wait when it is full
/// (and the kernel's socket buffers then drop, as a congested router would).
const UPSTREAM_QUEUE: usize = 1024;

/// Control commands waiting for the proxy's task.
const COMMAND_QUEUE: usize = 16;

/// What [`Proxy::start`] needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The UDP address clients send to (port 0 picks one: see [`Proxy::listen_addr`]).
    pub listen: SocketAddr,
    /// Where the clients' datagrams go.
    pub upstream: SocketAddr,
    /// The TCP address of the HTTP control API, if any.
    pub control: Option<SocketAddr>,
    /// Client → upstream, for every flow.
    pub up: LinkConfig,
    /// Upstream → client, for every flow.
    pub down: LinkConfig,
    /// Seeds every link's randomness ([`flow_seeds`]).
    pub seed: u64,
    /// See [`FLOW_IDLE`].
    pub flow_idle: Duration,
}

impl ProxyConfig {
    /// A proxy with ideal links, seed 0, no control API.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> Self {
        Self {
            listen,
            upstream,
            control: None,
            up: LinkConfig::ideal(),
            down: LinkConfig::ideal(),
            seed: 0,
            flow_idle: FLOW_IDLE,
        }
    }
}

/// The (up, down) link seeds of flow number `flow` (0 for the first client, in order of their
/// first datagram): FNV-1a of the proxy's seed, the flow number and the direction.
pub fn flow_seeds(seed: u64, flow: u64) -> (u64, u64) {
    let hash = |direction: u8| {
        let bytes = seed.to_be_bytes().into_iter().chain(flow.to_be_bytes());
        bytes
            .chain([direction])
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    };
    (hash(0), hash(1))
}

/// A task that is aborted when this is dropped.
#[derive(Debug)]
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running proxy. Dropping it stops it; [`stop`](Self::stop) also reports how it ended.
#[derive(Debug)]
pub struct Proxy {
    listen_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    control: Control,
    shutdown: Option<oneshot::Sender<()>>,
    task: AbortOnDrop<anyhow::Result<()>>,
    _control_task: Option<AbortOnDrop<()>>,
}

impl Proxy {
    /// Binds the sockets and starts the proxy's tasks on the current tokio runtime.
    pub async fn start(cfg: ProxyConfig) -> anyhow::Result<Self> {
        cfg.up.validate().context("bad settings for the up link")?;
        cfg.down
            .validate()
            .context("bad settings for the down link")?;
        let listen = bind_listen(cfg.listen)
            .with_context(|| format!("cannot bind the UDP address {}", cfg.listen))?;
        let listen_addr = listen.0.local_addr().context("no local UDP address")?;
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let control = Control::new(commands);
        let (control_addr, control_task) = match cfg.control {
            Some(addr) => {
                let (addr, task) = serve_control(addr, control.clone()).await?;
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        let (shutdown, shutdown_rx) = oneshot::channel();
        let (from_upstream, from_upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
        let forwarder = Forwarder::new(listen, &cfg, from_upstream);
        let task = tokio::spawn(forwarder.run(shutdown_rx, command_rx, from_upstream_rx));
        Ok(Self {
            listen_addr,
            control_addr,
            control,
            shutdown: Some(shutdown),
            task: AbortOnDrop(task),
            _control_task: control_task,
        })
    }

    /// Where clients send.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Where the HTTP control API listens, if it was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// Changes and reads the links in this process.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Stops the proxy and waits for its task.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.shutdown.take());
        (&mut self.task.0)
            .await
            .context("the proxy's task failed")?
    }
}

/// The listen socket twice: tokio's, for receiving, and a clone of the same socket for sending
/// without waiting (tokio's `try_send*` refuse until the reactor has seen the socket writable).
fn bind_listen(addr: SocketAddr) -> std::io::Result<(UdpSocket, std::net::UdpSocket)> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let sender = socket.try_clone()?;
    Ok((UdpSocket::from_std(socket)?, sender))
}

/// A socket connected to `upstream` from an ephemeral port, so replies come back to it alone;
/// twice, as in [`bind_listen`].
fn upstream_socket(upstream: SocketAddr) -> std::io::Result<(UdpSocket, std::net::UdpSocket)> {
    let any: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(upstream)?;
    socket.set_nonblocking(true)?;
    let sender = socket.try_clone()?;
    Ok((UdpSocket::from_std(socket)?, sender))
}

async fn serve_control(
    addr: SocketAddr,
    control: Control,
) -> anyhow::Result<(SocketAddr, AbortOnDrop<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the control address {addr}"))?;
    let local = listener.local_addr().context("no local control address")?;
    let app = control::router(control);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("impair: the control API stopped: {e}");
        }
    });
    Ok((local, AbortOnDrop(task)))
}

/// Runs a proxy until `shutdown` resolves (or the proxy fails), printing where it listens.
pub async fn serve(
    cfg: ProxyConfig,
    shutdown: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let (seed, upstream) = (cfg.seed, cfg.upstream);
    let mut proxy = Proxy::start(cfg).await?;
    let control = proxy
        .control_addr()
        .map_or(String::new(), |a| format!("; control http://{a}/link"));
    println!(
        "arbor impair: udp {} → {} (seed {seed}){control}",
        proxy.listen_addr(),
        upstream,
    );
    tokio::select! {
        ended = &mut proxy.task.0 => ended.context("the proxy's task failed")?,
        signal = shutdown => {
            signal?;
            proxy.stop().await
        }
    }
}

/// `arbor impair` (runs the proxy until Ctrl-C) and `arbor impair set`.
pub fn run(args: &ImpairArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.action {
        Some(ImpairAction::Set(set)) => {
            let partition = match (set.partition, set.heal) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            };
            let update = link_update(&set.link, set.direction, partition);
            let links = runtime.block_on(control::put(set.control, &update))?;
            println!("{}", serde_json::to_string_pretty(&links)?);
        }
        None => runtime.block_on(serve(proxy_config(args)?, shutdown_signal()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The proxy `arbor impair` runs: both directions start with the flags' settings.
pub fn proxy_config(args: &ImpairArgs) -> anyhow::Result<ProxyConfig> {
    let (Some(listen), Some(upstream)) = (args.listen, args.upstream) else {
        bail!("arbor impair needs --listen and --upstream");
    };
    let link = link_update(&args.link, Direction::Both, None)
        .apply(&LinkConfig::ideal())
        .context("bad link settings")?;
    Ok(ProxyConfig {
        control: args.control,
        up: link.clone(),
        down: link,
        seed: args.seed,
        ..ProxyConfig::new(listen, upstream)
    })
}

fn link_update(link: &LinkArgs, direction: Direction, partition: Option<bool>) -> LinkUpdate {
    LinkUpdate {
        direction,
        delay_ms: link.delay_ms,
        jitter_ms: link.jitter_ms,
        loss_pct: link.loss_pct,
        rate_kbps: link.rate_kbps,
        queue_bytes: link.queue_bytes,
        partition,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}

/// One client's flow: its upstream socket and a link each way.
struct Flow {
    /// Its number, in order of opening; also tells a reused client address's new flow from
    /// datagrams of its expired one still in the channel.
    id: u64,
    /// Sends to the upstream (its reader task owns the receiving side).
    sender: std::net::UdpSocket,
    up: Link<Vec<u8>>,
    down: Link<Vec<u8>>,
    last_active: Instant,
    _reader: AbortOnDrop<()>,
}

/// A datagram read from a flow's upstream socket.
struct FromUpstream {
    flow: u64,
    client: SocketAddr,
    datagram: Vec<u8>,
}

/// The proxy's task: owns the listen socket, the flows and their links.
struct Forwarder {
    listen: UdpSocket,
    listen_sender: std::net::UdpSocket,
    upstream: SocketAddr,
    seed: u64,
    up: LinkConfig,
    down: LinkConfig,
    flow_idle: Duration,
    flows: BTreeMap<SocketAddr, Flow>,
    flows_opened: u64,
    /// Counters of expired flows.
    retired: (DirectionStats, DirectionStats),
    dropped_no_flow: u64,
    send_errors: u64,
    /// Given to each flow's reader task.
    from_upstream: mpsc::Sender<FromUpstream>,
    next_sweep: Instant,
}

impl Forwarder {
    fn new(
        (listen, listen_sender): (UdpSocket, std::net::UdpSocket),
        cfg: &ProxyConfig,
        from_upstream: mpsc::Sender<FromUpstream>,
    ) -> Self {
        Self {
            listen,
            listen_sender,
            upstream: cfg.upstream,
            seed: cfg.seed,
            up: cfg.up.clone(),
            down: cfg.down.clone(),
            flow_idle: cfg.flow_idle,
            flows: BTreeMap::new(),
            flows_opened: 0,
            retired: Default::default(),
            dropped_no_flow: 0,
            send_errors: 0,
            from_upstream,
            next_sweep: Instant::now(),
        }
    }

    async fn run(
        mut self,
        mut shutdown: oneshot::Receiver<()>,
        mut commands: mpsc::Receiver<Command>,
        mut from_upstream: mpsc::Receiver<FromUpstream>,
    ) -> anyhow::Result<()> {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        loop {
            let wake = tokio::time::Instant::from_std(self.next_wake());
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                received = self.listen.recv_from(&mut buf) => match received {
                    Ok((n, client)) => self.handle_client(Instant::now(), client, buf[..n].to_vec()),
                    Err(e) => tracing::debug!("impair: cannot receive on the listen socket: {e}"),
                },
                Some(d) = from_upstream.recv() => self.handle_upstream(Instant::now(), d),
                Some(command) = commands.recv() => self.handle_command(command),
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            self.flush(now);
            if now >= self.next_sweep {
                self.sweep(now);
            }
        }
    }

    /// The earliest link timeout, or the next idle sweep.
    fn next_wake(&self) -> Instant {
        self.flows
            .values()
            .flat_map(|f| [f.up.poll_timeout(), f.down.poll_timeout()])
            .flatten()
            .fold(self.next_sweep, Instant::min)
    }

    fn handle_client(&mut self, now: Instant, client: SocketAddr, datagram: Vec<u8>) {
        if !self.flows.contains_key(&client) && !self.open_flow(now, client) {
            self.dropped_no_flow += 1;
            return;
        }
        if let Some(flow) = self.flows.get_mut(&client) {
            flow.last_active = now;
            flow.up.handle_packet(now, datagram);
        }
    }

    fn handle_upstream(&mut self, now: Instant, d: FromUpstream) {
        match self.flows.get_mut(&d.client) {
            Some(flow) if flow.id == d.flow => {
                flow.last_active = now;
                flow.down.handle_packet(now, d.datagram);
            }
            _ => self.dropped_no_flow += 1,
        }
    }

    /// Opens a flow for `client`; false if the table is full of live flows or the socket
    /// cannot be opened.
    fn open_flow(&mut self, now: Instant, client: SocketAddr) -> bool {
        if self.flows.len() >= MAX_FLOWS {
            self.sweep(now);
        }
        if self.flows.len() >= MAX_FLOWS {
            tracing::debug!(%client, "impair: {MAX_FLOWS} flows open; datagram dropped");
            return false;
        }
        let (socket, sender) = match upstream_socket(self.upstream) {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::warn!(%client, "impair: cannot open a socket to {}: {e}", self.upstream);
                return false;
            }
        };
        let id = self.flows_opened;
        self.flows_opened += 1;
        let (up_seed, down_seed) = flow_seeds(self.seed, id);
        let reader = tokio::spawn(read_upstream(
            socket,
            id,
            client,
            self.from_upstream.clone(),
        ));
        let flow = Flow {
            id,
            sender,
            up: Link::new(self.up.clone(), up_seed),
            down: Link::new(self.down.clone(), down_seed),
            last_active: now,
            _reader: AbortOnDrop(reader),
        };
        self.flows.insert(client, flow);
        true
    }

    /// Sends every datagram the links have due at `now`. A send that would block is dropped
    /// and counted: the proxy's task never waits on one socket.
    fn flush(&mut self, now: Instant) {
        for (client, flow) in &mut self.flows {
            while let Some(datagram) = flow.up.poll_deliver(now) {
                if flow.sender.send(&datagram).is_err() {
                    self.send_errors += 1;
                }
            }
            while let Some(datagram) = flow.down.poll_deliver(now) {
                if self.listen_sender.send_to(&datagram, *client).is_err() {
                    self.send_errors += 1;
                }
            }
        }
    }

    /// Closes flows idle for `flow_idle` with nothing in flight, keeping their counters.
    fn sweep(&mut self, now: Instant) {
        self.next_sweep = now + SWEEP_EVERY.min(self.flow_idle / 2);
        let (idle, retired) = (self.flow_idle, &mut self.retired);
        self.flows.retain(|_, flow| {
            let live = now.duration_since(flow.last_active) < idle
                || flow.up.in_flight() > 0
                || flow.down.in_flight() > 0;
            if !live {
                retired.0.add(flow.up.stats(), 0);
                retired.1.add(flow.down.stats(), 0);
            }
            live
        });
    }

    fn handle_command(&mut self, command: Command) {
        // A requester that gave up does not need its answer.
        let _ = match command {
            Command::Links(reply) => reply.send(self.links()).map_err(drop),
            Command::Update(update, reply) => reply.send(self.update(&update)).map_err(drop),
            Command::Stats(reply) => reply.send(self.stats()).map_err(drop),
        };
    }

    fn links(&self) -> Links {
        Links {
            up: LinkView::from(&self.up),
            down: LinkView::from(&self.down),
        }
    }

    /// Applies `update` to both templates and every flow, or to nothing if a value is bad.
    fn update(&mut self, update: &LinkUpdate) -> Result<Links, InvalidUpdate> {
        let direction = update.direction;
        let up = direction
            .includes_up()
            .then(|| update.apply(&self.up))
            .transpose()?;
        let down = direction
            .includes_down()
            .then(|| update.apply(&self.down))
            .transpose()?;
        if let Some(up) = up {
            for flow in self.flows.values_mut() {
                flow.up.set_config(up.clone());
            }
            self.up = up;
        }
        if let Some(down) = down {
            for flow in self.flows.values_mut() {
                flow.down.set_config(down.clone());
            }
            self.down = down;
        }
        Ok(self.links())
    }

    fn stats(&self) -> ProxyStats {
        let (mut up, mut down) = self.retired;
        for flow in self.flows.values() {
            up.add(flow.up.stats(), flow.up.in_flight());
            down.add(flow.down.stats(), flow.down.in_flight());
        }
        ProxyStats {
            flows: self.flows.len() as u64,
            flows_opened: self.flows_opened,
            up,
            down,
            dropped_no_flow: self.dropped_no_flow,
            send_errors: self.send_errors,
        }
    }
}

/// Forwards what the upstream sends to one flow's socket to the proxy's task.
async fn read_upstream(
    socket: UdpSocket,
    flow: u64,
    client: SocketAddr,
    to: mpsc::Sender<FromUpstream>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                let datagram = buf[..n].to_vec();
                let message = FromUpstream {
                    flow,
                    client,
                    datagram,
                };
                if to.send(message).await.is_err() {
                    return;
                }
            }
            // An ICMP "port unreachable" for an earlier datagram: the upstream is not up (yet).
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::warn!(%client, "impair: cannot receive from the upstream: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command as CliCommand};

    fn impair_args(argv: &[&str]) -> Result<ImpairArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["arbor", "impair"], argv].concat())?;
        match cli.command {
            CliCommand::Impair(args) => Ok(args),
            other => panic!("not impair: {other:?}"),
        }
    }

    #[test]
    fn command_line() {
        let args = impair_args(&[
            "--listen",
            "127.0.0.1:9000",
            "--upstream",
            "127.0.0.1:9001",
            "--delay-ms",
            "40",
            "--jitter-ms",
            "5",
            "--loss-pct",
            "1",
            "--control",
            "127.0.0.1:9100",
            "--seed",
            "9",
        ])
        .unwrap();
        let cfg = proxy_config(&args).unwrap();
        assert_eq!(cfg.upstream, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(cfg.control, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(cfg.seed, 9);
        assert_eq!(cfg.up, cfg.down);
        assert_eq!(cfg.up.delay, Duration::from_millis(40));
        assert_eq!(cfg.up.loss, arbor_sim::link::Loss::Random(0.01));

        let e = impair_args(&["--listen", "127.0.0.1:9000"]).unwrap_err();
        assert!(e.to_string().contains("--upstream"), "{e}");
        let args = impair_args(&[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--loss-pct",
            "150",
        ]);
        let e = format!("{:#}", proxy_config(&args.unwrap()).unwrap_err());
        assert!(e.contains("loss_pct must be between 0 and 100"), "{e}");

        let args = impair_args(&["set", "--partition", "--direction", "up"]).unwrap();
        let Some(ImpairAction::Set(set)) = args.action else {
            panic!("not set")
        };
        assert!(set.partition && !set.heal);
        assert_eq!(set.direction, Direction::Up);
        assert_eq!(set.control, "127.0.0.1:9100".parse().unwrap());
        assert!(impair_args(&["set", "--partition", "--heal"]).is_err());
        let args = impair_args(&["set", "--control", "127.0.0.1:1", "--loss-pct", "2"]).unwrap();
        let Some(ImpairAction::Set(set)) = args.action else {
            panic!("not set")
        };
        assert_eq!(set.link.loss_pct, Some(2.0));
    }

    #[test]
    fn flow_seeds_differ_by_flow_and_direction() {
        let (up, down) = flow_seeds(1, 0);
        assert_ne!(up, down);
        assert_ne!(flow_seeds(1, 1), (up, down));
        assert_ne!(flow_seeds(2, 0), (up, down));
        assert_eq!(flow_seeds(1, 0), (up, down));
    }
}
