//! The Arbor origin coordinator: a tokio shell around `origin_core`.
//!
//! [`Origin::start`] opens the store a config names (SQLite file or PostgreSQL, migrating
//! it), binds the HTTP listener and serves the REST API `/v1`, and returns a handle with the
//! bound address, so tests, `arbor up` and the `arbor-origin` binary start an origin the same
//! way:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let mut cfg = arbor_origin::config::Config::dev_default();
//! cfg.http.listen = "127.0.0.1:0".parse()?; // tests: any free port
//! let origin = arbor_origin::Origin::start(cfg).await?;
//! println!("API at http://{}/v1", origin.http_addr);
//! origin.stop().await;
//! # Ok(()) }
//! ```
//!
//! - [`store`]: the [`store::Store`] trait, SQLite and PostgreSQL behind it, one schema.
//! - [`http`]: the REST API (meetings, tokens, join, edges), problem+json errors, auth.
//! - [`placer`]: the `origin_core` coordinator (registry, placement, trees) behind a lock.
//! - [`control`]: edges' QUIC control links feeding the coordinator, and its decisions out.
//! - [`config`]: the TOML configuration with `ARBOR_ORIGIN_*` overrides.
//! - [`dns`]: the authoritative geo DNS server (`[dns]`), steering clients to the nearest
//!   healthy edge; [`geoip`]: the MaxMind database it and the join API locate clients with.

pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod geoip;
pub mod http;
pub mod metrics;
pub mod placer;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::placer::Placer;
use crate::store::{Store, redact_url};

/// A running origin.
#[derive(Debug)]
pub struct Origin {
    pub http_addr: SocketAddr,
    /// The control plane's relay endpoint, when `[relay]` is enabled.
    pub relay_addr: Option<SocketAddr>,
    /// The store the API uses (tests and the control links write edges, presence and trees).
    pub store: Arc<dyn Store>,
    /// The coordinator the API places joins with and the control plane feeds.
    pub placer: Arc<Placer>,
    /// The DNS server's address (UDP and TCP), when `[dns]` is enabled.
    pub dns_addr: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    dns: Option<dns::DnsServer>,
}

impl Origin {
    /// Starts an origin from a validated config. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> anyhow::Result<Origin> {
        let store = store::open(&config.store.url, config.store.max_connections)
            .await
            .with_context(|| format!("opening the store {}", redact_url(&config.store.url)))?;
        let coordinator = origin_core::coordinator::Config {
            placement: origin_core::placement::Config {
                load_factor: config.placement.load_factor,
                ..Default::default()
            },
            // Epochs move on across restarts: edges ignore epochs they have seen.
            epoch_base: u64::try_from(http::unix_now_ms()).unwrap_or(0) * 1000,
            ..Default::default()
        };
        let dead_after = {
            let r = &coordinator.registry;
            r.heartbeat_interval * r.missed_limit
        };
        let placer = Arc::new(Placer::new(coordinator, std::time::Instant::now()));
        let geoip = match config.dns.geoip_db.as_os_str().is_empty() {
            true => None,
            false => Some(Arc::new(geoip::GeoIp::open(&config.dns.geoip_db)?)),
        };
        let relay_addr = if config.relay.enabled {
            let cfg = control::ControlConfig {
                listen: config.relay.listen,
                pki_dir: config.relay.pki_dir.clone(),
                region: config.placement.default_region.clone(),
            };
            Some(control::start(&cfg, placer.clone(), store.clone())?)
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP listener {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let engine = store.engine();
        let (dns, metrics) = start_dns(&config, &placer, geoip.clone(), dead_after).await?;
        let app = http::router(http::AppState {
            config: Arc::new(config),
            store: store.clone(),
            placer: placer.clone(),
            metrics,
            geoip,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("http server: {e}");
            }
        });
        tracing::info!(%http_addr, ?engine, "origin started");
        Ok(Origin {
            http_addr,
            relay_addr,
            store,
            placer,
            dns_addr: dns.as_ref().map(|d| d.addr),
            shutdown: Some(tx),
            server,
            dns,
        })
    }

    /// Stops serving HTTP (waiting for requests in flight) and DNS.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(dns) = self.dns.take() {
            dns.stop().await;
        }
    }
}

/// The DNS server if `[dns]` enables it, and the metrics (with its counters when it runs).
async fn start_dns(
    config: &Config,
    placer: &Arc<Placer>,
    geoip: Option<Arc<geoip::GeoIp>>,
    dead_after: std::time::Duration,
) -> anyhow::Result<(Option<dns::DnsServer>, metrics::Metrics)> {
    let metrics = metrics::Metrics::new();
    if !config.dns.enabled {
        return Ok((None, metrics));
    }
    let stats = Arc::new(dns::Stats::new(&config.placement.regions));
    let sources = dns::server::Sources {
        placer: placer.clone(),
        geoip,
        policy: config.steering(),
        dead_after,
        stats: stats.clone(),
    };
    let server = dns::start(&config.dns, sources).await?;
    Ok((Some(server), metrics.with_dns(stats)))
}

/// Runs an origin until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let origin = Origin::start(config).await?;
    cli::shutdown_signal().await;
    tracing::info!("shutting down");
    origin.stop().await;
    Ok(())
}
