//! Starting and stopping the DNS server: sockets, hickory's server, the snapshot refresher.
//!
//! [`start`] binds UDP and TCP on `[dns] listen` (with port 0, TCP takes the port UDP got),
//! hands both to a `hickory_server::Server` with the [`Handler`], and spawns the task that
//! rebuilds the [`Snapshot`] every [`REFRESH`] from the coordinator's registry and reloads
//! the MaxMind database when its file changes. [`DnsServer::stop`] ends all of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use origin_core::steer;
use tokio::net::{TcpListener, UdpSocket};

use super::handler::{Handler, Setup};
use super::rrl;
use super::snapshot::{REFRESH, Snapshot};
use super::stats::Stats;
use super::zone::Zone;
use crate::config;
use crate::geoip::GeoIp;
use crate::placer::Placer;

/// A TCP connection that sends nothing for this long is closed.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
pub const TCP_RESPONSE_BUFFER: usize = 32;
/// How often the MaxMind database file is checked for a new version.
pub const GEOIP_CHECK: Duration = Duration::from_secs(10);
/// Tries at finding a port free for both UDP and TCP when the configured port is 0.
const MAX_BIND_TRIES: usize = 16;

/// What the DNS server answers from, besides `[dns]`.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The coordinator, whose registry the snapshots copy.
    pub placer: Arc<Placer>,
    pub geoip: Option<Arc<GeoIp>>,
    pub policy: steer::Policy,
    /// After this long without a heartbeat an edge counts as dead (the registry's bound).
    pub dead_after: Duration,
    pub stats: Arc<Stats>,
}

/// A running DNS server.
#[derive(Debug)]
pub struct DnsServer {
    /// The bound address, UDP and TCP alike.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds `[dns] listen` and serves the zone. Must be called inside a tokio runtime.
pub async fn start(cfg: &config::Dns, sources: Sources) -> anyhow::Result<DnsServer> {
    let serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let zone = Zone::new(cfg, serial).context("the [dns] names do not make a zone")?;
    let (udp, tcp) = bind(cfg.listen).await?;
    let addr = udp.local_addr()?;
    let snapshot = Arc::new(ArcSwap::from_pointee(build(&sources)));
    let handler = Handler::new(Setup {
        zone,
        snapshot: snapshot.clone(),
        geoip: sources.geoip.clone(),
        policy: sources.policy.clone(),
        answers: cfg.answers as usize,
        rrl: rrl::Config {
            responses_per_s: cfg.rrl_responses_per_s,
            slip: cfg.rrl_slip,
        },
        stats: sources.stats.clone(),
    });
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(refresh(sources, snapshot));
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = rx => {
                if let Err(e) = server.shutdown_gracefully().await {
                    tracing::warn!("dns server: {e}");
                }
            }
            r = server.block_until_done() => {
                if let Err(e) = r {
                    tracing::error!("dns server stopped: {e}");
                }
            }
        }
        refresher.abort();
    });
    tracing::info!(%addr, zone = %cfg.zone, "dns listening (udp and tcp)");
    Ok(DnsServer {
        addr,
        stop: Some(tx),
        task,
    })
}

impl DnsServer {
    /// Stops answering and waits for the server's tasks.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// UDP and TCP on one port: `addr`'s, or with port 0 one free for both.
async fn bind(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..MAX_BIND_TRIES {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding DNS UDP {addr}"))?;
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // A fixed port taken for TCP is final; a random one may be luckier next time.
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("binding DNS TCP {bound}")),
        }
    }
    Err(anyhow::anyhow!(
        "no port on {} was free for both UDP and TCP: {last:?}",
        addr.ip()
    ))
}

fn build(sources: &Sources) -> Snapshot {
    let coordinator = sources.placer.lock();
    Snapshot::build(
        Instant::now(),
        coordinator.registry().edges(),
        sources.dead_after,
        &sources.stats,
    )
}

/// Rebuilds the snapshot every [`REFRESH`]; reloads the database every [`GEOIP_CHECK`].
async fn refresh(sources: Sources, snapshot: Arc<ArcSwap<Snapshot>>) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_geoip_check = Instant::now() + GEOIP_CHECK;
    loop {
        tick.tick().await;
        snapshot.store(Arc::new(build(&sources)));
        let now = Instant::now();
        if let Some(geoip) = &sources.geoip
            && now >= next_geoip_check
        {
            next_geoip_check = now + GEOIP_CHECK;
            match geoip.reload_if_changed() {
                Ok(true) => {
                    let path = geoip.path().display();
                    tracing::info!(%path, "geoip database reloaded");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("keeping the current geoip database: {e}"),
            }
        }
    }
}
