//! `arbor edge`: act on one edge of a cluster through the origin's REST API.
//!
//! `arbor edge drain <id>` asks the origin to drain the edge (`POST /v1/edges/{id}/drain`):
//! the edge takes no new joins, its `/readyz` answers 503, and its clients are told to move to
//! another edge. Unless `--no-wait`, it then polls `GET /v1/edges/{id}` and prints each change
//! until the origin reports the edge `drained` (no participant left) or `--timeout` passes.
//! The origin's URL and credentials come from the cluster file (`arbor up` writes it).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use relay_proto::EdgeId;
use serde::Deserialize;

use crate::cli::{DrainArgs, EdgeAction, EdgeArgs};
use crate::cluster::Cluster;

/// How often the origin is asked about a drain in progress.
pub const POLL: Duration = Duration::from_millis(500);
/// Longest wait for one answer from the origin.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `arbor edge …`.
pub fn run(args: &EdgeArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.action {
        EdgeAction::Drain(drain) => runtime.block_on(run_drain(drain, data_dir)),
    }
}

/// An edge as `GET /v1/edges/{id}` shows it (the fields this command reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EdgeView {
    pub id: EdgeId,
    pub status: String,
    pub sessions: u32,
    pub drain_pending: bool,
    pub drained: bool,
}

impl EdgeView {
    /// One line for the operator: where the drain stands.
    pub fn describe(&self) -> String {
        let id = &self.id;
        if self.drained {
            return format!("{id}: drained, no session left; it can be stopped");
        }
        match (self.status.as_str(), self.drain_pending) {
            ("dead", _) => format!("{id}: dead"),
            (_, true) => format!(
                "{id}: drain requested, waiting for the edge to hear of it ({} sessions)",
                self.sessions
            ),
            ("draining", false) => format!(
                "{id}: draining, {} sessions left (clients are moving to other edges)",
                self.sessions
            ),
            (status, false) => format!("{id}: {status}, {} sessions", self.sessions),
        }
    }
}

/// The origin's API, as the cluster file names it.
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
    secret: String,
}

impl Api {
    fn from_cluster(args: &DrainArgs, data_dir: &Path) -> anyhow::Result<Api> {
        let path = args
            .cluster
            .clone()
            .unwrap_or_else(|| Cluster::path_in(data_dir));
        let cluster = Cluster::read(&path)?;
        let Some(origin) = cluster.origin else {
            bail!(
                "the cluster in {} has no origin, so it cannot drain an edge",
                path.display()
            );
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Api {
            client,
            base: origin.api_url.trim_end_matches('/').to_owned(),
            key: cluster.api_key,
            secret: cluster.api_secret,
        })
    }

    /// `POST …/drain` (`post`) or `GET` the edge; problems become errors that say what to do.
    async fn call(&self, id: &EdgeId, post: bool) -> anyhow::Result<EdgeView> {
        let url = format!("{}/edges/{id}", self.base);
        let request = match post {
            true => self.client.post(format!("{url}/drain")),
            false => self.client.get(&url),
        };
        let response = request
            .basic_auth(&self.key, Some(&self.secret))
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the origin at {} (is the cluster running? `arbor up`)",
                    self.base
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .with_context(|| format!("the origin's answer about edge {id} is not readable"));
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|p| p["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match status.as_u16() {
            404 => bail!(
                "the origin knows no edge \"{id}\" (it lists {})",
                self.edge_ids().await
            ),
            409 => bail!("edge {id} cannot be drained: {detail}"),
            _ => bail!("the origin answered {status} about edge {id}: {detail}"),
        }
    }
}

impl Api {
    /// The ids `GET /v1/edges` lists, comma-separated (for an error message).
    async fn edge_ids(&self) -> String {
        #[derive(Deserialize)]
        struct List {
            edges: Vec<Row>,
        }
        #[derive(Deserialize)]
        struct Row {
            id: EdgeId,
        }
        let list = self
            .client
            .get(format!("{}/edges", self.base))
            .basic_auth(&self.key, Some(&self.secret))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let Ok(list) = list else {
            return "no edge it could say".to_owned();
        };
        match list.json::<List>().await {
            Ok(l) if !l.edges.is_empty() => {
                let ids: Vec<String> = l.edges.iter().map(|e| e.id.to_string()).collect();
                ids.join(", ")
            }
            _ => "no edge".to_owned(),
        }
    }
}

async fn run_drain(args: &DrainArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let api = Api::from_cluster(args, data_dir)?;
    let mut view = api.call(&args.id, true).await?;
    println!("{}", view.describe());
    if !args.wait() || view.drained {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + args.timeout;
    let mut unreachable = false;
    loop {
        if Instant::now() >= deadline {
            bail!(
                "{} after {:?}; the edge keeps draining (run the command again to wait more)",
                view.describe(),
                args.timeout
            );
        }
        tokio::time::sleep(POLL).await;
        // The edge came back without the drain (it restarted): ask again, it is idempotent.
        let again = view.status == "alive" && !view.drain_pending;
        let next = match api.call(&args.id, again).await {
            Ok(next) => next,
            // The origin may be restarting: the drain is recorded, keep waiting for it.
            Err(e) if !unreachable => {
                unreachable = true;
                eprintln!("{e:#}; retrying");
                continue;
            }
            Err(_) => continue,
        };
        unreachable = false;
        if next.status == "dead" {
            bail!("{}: it died while draining", next.id);
        }
        if next != view {
            println!("{}", next.describe());
        }
        view = next;
        if view.drained {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str, sessions: u32, pending: bool, drained: bool) -> EdgeView {
        EdgeView {
            id: "eu-1".parse().unwrap(),
            status: status.into(),
            sessions,
            drain_pending: pending,
            drained,
        }
    }

    #[test]
    fn progress_lines_say_where_the_drain_stands() {
        assert_eq!(
            view("alive", 3, true, false).describe(),
            "eu-1: drain requested, waiting for the edge to hear of it (3 sessions)"
        );
        assert_eq!(
            view("draining", 2, false, false).describe(),
            "eu-1: draining, 2 sessions left (clients are moving to other edges)"
        );
        assert_eq!(
            view("draining", 0, false, true).describe(),
            "eu-1: drained, no session left; it can be stopped"
        );
        assert_eq!(view("dead", 0, false, false).describe(), "eu-1: dead");
        assert_eq!(
            view("alive", 4, false, false).describe(),
            "eu-1: alive, 4 sessions"
        );
    }

    #[test]
    fn the_origins_answer_parses() {
        let json = r#"{"id":"eu-1","region":"eu-west","status":"draining","sessions":1,
            "drain_pending":false,"drained":false,"load":{"participants":1}}"#;
        let v: EdgeView = serde_json::from_str(json).unwrap();
        assert_eq!(v, view("draining", 1, false, false));
    }

    #[tokio::test]
    async fn an_origin_that_is_down_is_named() {
        let dir = crate::test_util::tempdir();
        let mut cluster: Cluster = serde_json::from_value(serde_json::json!({
            "origin": { "api_url": "http://127.0.0.1:9/v1", "http_url": "http://127.0.0.1:9",
                        "pid": 1, "relay_addr": "127.0.0.1:9" },
            "api_key": "k", "api_secret": "s", "dns": null, "edges": []
        }))
        .unwrap();
        cluster.write(&Cluster::path_in(&dir)).unwrap();
        let args = DrainArgs {
            id: "eu-1".parse().unwrap(),
            cluster: None,
            wait: false,
            no_wait: false,
            timeout: Duration::from_secs(1),
        };
        let e = run_drain(&args, &dir).await.unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("cannot reach the origin at http://127.0.0.1:9/v1"),
            "{text}"
        );
        cluster.origin = None;
        cluster.write(&Cluster::path_in(&dir)).unwrap();
        let e = run_drain(&args, &dir).await.unwrap_err();
        assert!(e.to_string().contains("has no origin"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
