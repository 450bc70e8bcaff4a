//! Run-time control of `arbor impair`: the JSON types, the HTTP API served on `--control`,
//! and the client behind `arbor impair set`.
//!
//! - `GET /link` → [`Links`]: each direction's settings.
//! - `PUT /link` with a [`LinkUpdate`] (only the fields to change) → [`Links`] as they are now;
//!   400 with `{"error": "…"}` when a value is out of range or the body is not an update.
//! - `GET /stats` → [`ProxyStats`].
//!
//! The HTTP handlers and [`Control`] only send commands to the proxy's task, which owns
//! the links: nothing is shared or locked.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use arbor_sim::link::{LinkConfig, LinkStats, Loss, MAX_DELAY};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Largest `PUT /link` body accepted.
pub const MAX_BODY_BYTES: usize = 4096;

/// Highest `rate_kbps` accepted: 100 Gbit/s.
pub const MAX_RATE_KBPS: u64 = 100_000_000;

/// Largest `queue_bytes` accepted: 64 MiB.
pub const MAX_QUEUE_BYTES: usize = 64 << 20;

/// How long `arbor impair set` waits for the proxy's answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which direction a change applies to. Up is client → upstream, down is upstream → client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Both directions.
    #[default]
    Both,
    /// Client → upstream.
    Up,
    /// Upstream → client.
    Down,
}

impl Direction {
    /// Whether this covers the client → upstream direction.
    pub fn includes_up(self) -> bool {
        matches!(self, Direction::Both | Direction::Up)
    }

    /// Whether this covers the upstream → client direction.
    pub fn includes_down(self) -> bool {
        matches!(self, Direction::Both | Direction::Down)
    }
}

/// One direction's settings, in the API's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    /// One-way delay.
    pub delay_ms: f64,
    /// Each packet's delay varies uniformly within ±`jitter_ms`.
    pub jitter_ms: f64,
    /// Long-run loss, in percent.
    pub loss_pct: f64,
    /// Whether the loss comes in bursts (a Gilbert–Elliott model set by a library caller);
    /// `PUT` with `loss_pct` always sets independent random loss.
    pub bursty_loss: bool,
    /// Bottleneck rate; 0 is unlimited.
    pub rate_kbps: u64,
    /// Bottleneck buffer (tail drop past it).
    pub queue_bytes: usize,
    /// Whether the direction is cut.
    pub partition: bool,
}

impl From<&LinkConfig> for LinkView {
    fn from(cfg: &LinkConfig) -> Self {
        Self {
            delay_ms: cfg.delay.as_secs_f64() * 1000.0,
            jitter_ms: cfg.jitter.as_secs_f64() * 1000.0,
            loss_pct: cfg.loss.mean() * 100.0,
            bursty_loss: matches!(cfg.loss, Loss::GilbertElliott { .. }),
            rate_kbps: cfg.rate_bps.map_or(0, |bps| bps.div_ceil(1000)),
            queue_bytes: cfg.queue_bytes,
            partition: cfg.partitioned,
        }
    }
}

/// Both directions' settings: the answer to `GET /link` and `PUT /link`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// Client → upstream.
    pub up: LinkView,
    /// Upstream → client.
    pub down: LinkView,
}

/// The body of `PUT /link`: the fields to change (absent fields stay as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkUpdate {
    /// Which direction to change (default both).
    #[serde(default)]
    pub direction: Direction,
    /// One-way delay, 0–60,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Jitter, 0–60,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Random loss, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// Bottleneck rate, 0 (unlimited) – 100,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kbps: Option<u64>,
    /// Bottleneck buffer, 1 – 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_bytes: Option<usize>,
    /// Cut (true) or heal (false) the link. Cutting drops the packets in flight too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<bool>,
}

/// A [`LinkUpdate`] with a value out of range; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidUpdate(pub String);

impl LinkUpdate {
    /// `cfg` with this update's fields applied, checked.
    pub fn apply(&self, cfg: &LinkConfig) -> Result<LinkConfig, InvalidUpdate> {
        let mut cfg = cfg.clone();
        if let Some(ms) = self.delay_ms {
            cfg.delay = millis("delay_ms", ms)?;
        }
        if let Some(ms) = self.jitter_ms {
            cfg.jitter = millis("jitter_ms", ms)?;
        }
        if let Some(pct) = self.loss_pct {
            if !(0.0..=100.0).contains(&pct) {
                return Err(InvalidUpdate(format!(
                    "loss_pct must be between 0 and 100, not {pct}"
                )));
            }
            cfg.loss = match pct > 0.0 {
                true => Loss::Random(pct / 100.0),
                false => Loss::None,
            };
        }
        if let Some(kbps) = self.rate_kbps {
            if kbps > MAX_RATE_KBPS {
                return Err(InvalidUpdate(format!(
                    "rate_kbps must be at most {MAX_RATE_KBPS} (0 is unlimited), not {kbps}"
                )));
            }
            cfg.rate_bps = (kbps > 0).then_some(kbps * 1000);
        }
        if let Some(bytes) = self.queue_bytes {
            if !(1..=MAX_QUEUE_BYTES).contains(&bytes) {
                return Err(InvalidUpdate(format!(
                    "queue_bytes must be between 1 and {MAX_QUEUE_BYTES}, not {bytes}"
                )));
            }
            cfg.queue_bytes = bytes;
        }
        if let Some(partition) = self.partition {
            cfg.partitioned = partition;
        }
        cfg.validate().map_err(|e| InvalidUpdate(e.to_string()))?;
        Ok(cfg)
    }
}

fn millis(field: &str, ms: f64) -> Result<Duration, InvalidUpdate> {
    let max_ms = MAX_DELAY.as_millis();
    if !ms.is_finite() || ms < 0.0 || ms > max_ms as f64 {
        return Err(InvalidUpdate(format!(
            "{field} must be between 0 and {max_ms}, not {ms}"
        )));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// What one direction's links did, summed over every flow (expired ones included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Packets handed to the link model.
    pub sent: u64,
    /// Packets delivered by the model (and then sent on).
    pub delivered: u64,
    /// Packets lost by the loss model.
    pub lost: u64,
    /// Packets tail-dropped by a full bottleneck buffer or in-flight limit.
    pub dropped_queue: u64,
    /// Packets dropped by a partition.
    pub dropped_partition: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Packets in flight now.
    pub in_flight: u64,
}

impl DirectionStats {
    /// Adds one link's counters and its packets in flight.
    pub fn add(&mut self, stats: LinkStats, in_flight: usize) {
        self.sent += stats.sent;
        self.delivered += stats.delivered;
        self.lost += stats.lost;
        self.dropped_queue += stats.dropped_queue;
        self.dropped_partition += stats.dropped_partition;
        self.duplicated += stats.duplicated;
        self.in_flight += in_flight as u64;
    }
}

/// The answer to `GET /stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Clients with a flow now.
    pub flows: u64,
    /// Flows opened since start.
    pub flows_opened: u64,
    /// Client → upstream.
    pub up: DirectionStats,
    /// Upstream → client.
    pub down: DirectionStats,
    /// Datagrams dropped because no flow could be opened for them (table full, socket
    /// error) or because their flow had expired.
    pub dropped_no_flow: u64,
    /// Delivered datagrams the operating system refused to send.
    pub send_errors: u64,
}

/// A request to the proxy's task, with the channel for its answer.
#[derive(Debug)]
pub(super) enum Command {
    Links(oneshot::Sender<Links>),
    Update(LinkUpdate, oneshot::Sender<Result<Links, InvalidUpdate>>),
    Stats(oneshot::Sender<ProxyStats>),
}

/// Why a control request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// The update had a value out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidUpdate),
    /// The proxy is no longer running.
    #[error("the proxy has stopped")]
    Stopped,
}

/// Talks to a running proxy in this process (the HTTP API uses it too). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    commands: mpsc::Sender<Command>,
}

impl Control {
    pub(super) fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands }
    }

    /// Both directions' settings.
    pub async fn links(&self) -> Result<Links, ControlError> {
        self.ask(Command::Links).await
    }

    /// Applies `update` to every flow and to flows opened later; the settings after it.
    pub async fn update(&self, update: LinkUpdate) -> Result<Links, ControlError> {
        Ok(self.ask(|reply| Command::Update(update, reply)).await??)
    }

    /// The counters.
    pub async fn stats(&self) -> Result<ProxyStats, ControlError> {
        self.ask(Command::Stats).await
    }

    async fn ask<R>(
        &self,
        command: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| ControlError::Stopped)?;
        answer.await.map_err(|_| ControlError::Stopped)
    }
}

/// The HTTP API over `control`.
pub(super) fn router(control: Control) -> Router {
    Router::new()
        .route("/link", get(get_link).put(put_link))
        .route("/stats", get(get_stats))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(control)
}

async fn get_link(State(control): State<Control>) -> Response {
    respond(control.links().await)
}

async fn put_link(State(control): State<Control>, body: Bytes) -> Response {
    match serde_json::from_slice::<LinkUpdate>(&body) {
        Ok(update) => respond(control.update(update).await),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("not a link update: {e}")),
    }
}

async fn get_stats(State(control): State<Control>) -> Response {
    respond(control.stats().await)
}

fn respond<T: Serialize>(result: Result<T, ControlError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(e @ ControlError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ ControlError::Stopped) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(ErrorBody { error: message })).into_response()
}

/// `PUT /link` on the proxy whose control API is at `control`; the settings after it.
pub async fn put(control: SocketAddr, update: &LinkUpdate) -> anyhow::Result<Links> {
    let url = format!("http://{control}/link");
    let response = reqwest::Client::new()
        .put(&url)
        .json(update)
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("cannot reach the impair control API at {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&body).map_or(body, |b| b.error);
        bail!("{url} answered {status}: {message}");
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer with link settings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_change_only_their_fields() {
        let base = LinkConfig::wan(40);
        let update: LinkUpdate =
            serde_json::from_str(r#"{"direction":"up","loss_pct":2,"rate_kbps":800}"#).unwrap();
        assert_eq!(update.direction, Direction::Up);
        let cfg = update.apply(&base).unwrap();
        assert_eq!(cfg.delay, base.delay);
        assert_eq!(cfg.jitter, base.jitter);
        assert_eq!(cfg.loss, Loss::Random(0.02));
        assert_eq!(cfg.rate_bps, Some(800_000));
        let view = LinkView::from(&cfg);
        assert_eq!(
            (view.delay_ms, view.loss_pct, view.rate_kbps),
            (40.0, 2.0, 800)
        );

        let cfg = LinkUpdate {
            rate_kbps: Some(0),
            loss_pct: Some(0.0),
            partition: Some(true),
            ..LinkUpdate::default()
        }
        .apply(&cfg)
        .unwrap();
        assert_eq!(
            (cfg.rate_bps, cfg.loss, cfg.partitioned),
            (None, Loss::None, true)
        );
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (r#"{"loss_pct":150}"#, "loss_pct must be between 0 and 100"),
            (r#"{"delay_ms":-1}"#, "delay_ms must be between 0 and 60000"),
            (r#"{"jitter_ms":1e9}"#, "jitter_ms must be between"),
            (r#"{"rate_kbps":100000000000}"#, "rate_kbps must be at most"),
            (r#"{"queue_bytes":0}"#, "queue_bytes must be between 1"),
        ];
        for (json, message) in cases {
            let update: LinkUpdate = serde_json::from_str(json).unwrap();
            let e = update.apply(&LinkConfig::ideal()).unwrap_err().to_string();
            assert!(e.contains(message), "{json}: {e}");
        }
        for json in [
            r#"{"loss":1}"#,
            r#"{"direction":"sideways"}"#,
            r#"{"delay_ms":"5"}"#,
        ] {
            assert!(serde_json::from_str::<LinkUpdate>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn partial_updates_serialise_only_their_fields() {
        let update = LinkUpdate {
            partition: Some(true),
            ..LinkUpdate::default()
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"direction":"both","partition":true}"#
        );
    }
}
