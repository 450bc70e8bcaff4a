//! The Arbor edge: a tokio shell around `edge-core`.
//!
//! [`Edge::start`] binds everything a config names — one UDP socket and one ICE-TCP listener
//! per media worker, the HTTP listener — and returns a handle with the bound addresses, so
//! tests, `arbor up` and the `arbor-edge` binary all start an edge the same way.
//!
//! - [`media`]: worker threads (one per core) driving `edge_core::Worker`.
//! - [`backbone`]: QUIC links to the origin and the other edges (the cascade).
//! - [`http`]: signaling WebSocket, WHIP/WHEP, web client, `/livez`, `/readyz`, `/metrics`.
//! - [`health`]: when `/readyz` says no (draining, overloaded, origin lost), and the drain.
//! - [`config`]: the TOML configuration with env overrides.

pub mod backbone;
pub mod cli;
pub mod config;
pub mod health;
pub mod http;
pub mod media;
pub mod metrics;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::media::{Media, MediaConfig};

/// A running edge.
#[derive(Debug)]
pub struct Edge {
    pub http_addr: SocketAddr,
    /// The relay endpoint's address, when the backbone is enabled.
    pub relay_addr: Option<SocketAddr>,
    pub media: Media,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Edge {
    /// Starts an edge from a validated config. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> anyhow::Result<Edge> {
        let workers = config.media.worker_count();
        let limits = edge_core::Limits {
            max_participants: config.limits.max_participants,
            max_meetings: config.limits.max_meetings_per_worker,
            max_chat_len: config.limits.max_chat_len,
            chat_history: config.limits.chat_history,
            resume_grace: Duration::from_secs(config.limits.resume_grace_s),
            max_slots: config.limits.max_subscriptions_per_participant,
            ..Default::default()
        };
        let (to_origin, from_workers) = tokio::sync::mpsc::channel(backbone::ORIGIN_QUEUE);
        let media = Media::start(&MediaConfig {
            bind: config.media.bind,
            public_ip: config.media.public_ip.unwrap_or(config.media.bind),
            udp_port: config.media.udp_port,
            tcp_port: config.media.tcp_port,
            workers,
            send_side_bwe: config.media.send_side_bwe,
            limits,
            edge: config.edge.id.clone(),
            to_origin: config.backbone.enabled.then_some(to_origin),
        })?;
        let metrics = telemetry::Metrics::install(&config.edge.id)?;
        let health = health::Health::new(
            health::Thresholds::from_config(&config.health),
            config.backbone.enabled,
        );
        health.spawn_cpu_sampler();
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP listener {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        // The backbone registers addresses with the origin: the bound ones when a port was
        // left to the system (tests).
        let (relay_addr, placements) = if config.backbone.enabled {
            let b = &config.backbone;
            let http_url = match (config.http.public_url.is_some(), config.http.listen.port()) {
                (false, 0) => format!("http://{http_addr}"),
                _ => config.http.public_url(),
            };
            let cfg = backbone::BackboneConfig {
                edge: config.edge.id.clone(),
                region: config.edge.region.clone(),
                listen: b.listen,
                public_addr: b.public_addr(),
                origin: b.origin,
                pki: relay_quic::PkiDir::new(&b.pki_dir),
                lat_e6: (b.latitude * 1e6).round() as i32,
                lon_e6: (b.longitude * 1e6).round() as i32,
                http_url,
                capacity: b.capacity,
                peer_addrs: b.peer_addrs.clone(),
            };
            let b = backbone::start(cfg, media.clone(), from_workers, health.clone())?;
            (Some(b.local_addr), Some(b.placements))
        } else {
            (None, None)
        };
        let state = http::AppState {
            config: Arc::new(config),
            media: media.clone(),
            metrics: metrics.clone(),
            placements,
            health,
        };
        let app = http::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let upkeep = async {
                loop {
                    tokio::time::sleep(metrics::UPKEEP_INTERVAL).await;
                    metrics.upkeep();
                }
            };
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            tokio::select! {
                r = serve => if let Err(e) = r { tracing::error!("http server: {e}") },
                _ = upkeep => {}
            }
        });
        tracing::info!(%http_addr, udp = ?media.udp_addrs(), "edge started");
        Ok(Edge {
            http_addr,
            relay_addr,
            media,
            shutdown: Some(tx),
            server,
        })
    }

    /// Stops serving HTTP. (Media threads stop with the process.)
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }
}
