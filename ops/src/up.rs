//! `arbor up`: a local cascaded cluster on this machine, until Ctrl-C.
//!
//! An origin and (by default) three edges in three regions, each a separate process on its
//! own loopback address ([`plan`]), the edges linked to each other over the QUIC backbone
//! through in-process `arbor impair` proxies that add each pair's one-way delay.
//!
//! Steps: generate an API key and secret and a dev CA with a certificate per node
//! (`<data>/pki`); write a synthetic MaxMind database placing each region's documentation
//! subnets at its site (`<data>/geo.mmdb`, for the origin's DNS steering and its join API);
//! write `origin.toml` and `edge-<id>.toml` (development defaults,
//! `ARBOR_*` / `ARBOR_ORIGIN_*` overrides from the environment, this cluster's addresses);
//! start the link proxies; start `arbor-origin` and wait for its `/readyz`; start every
//! `arbor-edge` and wait for theirs, then until the origin lists each edge alive; write
//! `cluster.json`; print where to go; supervise. Ctrl-C or SIGTERM stops every process and
//! exits 0; if one process dies, `arbor up` says which (with the end of its log), stops the
//! others and exits non-zero. Logs are `<data>/origin.log` and `<data>/edge-<id>.log`.

pub mod plan;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use arbor_edge::config as edge_config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use relay_proto::{EdgeId, Role};
use relay_quic::{Ca, PkiDir};
use serde::Deserialize;

use crate::cli::UpArgs;
use crate::cluster::{self, Cluster, Dns, DnsRegion, Edge, Link, Origin};
use crate::impair::Proxy;
use plan::Plan;
use process::{Proc, Shutdown};

pub use process::http_status;

/// The edge binary's name.
pub const EDGE_BIN: &str = "arbor-edge";

/// The origin binary's name.
pub const ORIGIN_BIN: &str = "arbor-origin";

/// How long each step of the start may take: the origin answering `/readyz`, an edge
/// answering its own, all edges registered with the origin.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The binaries `arbor up` runs.
#[derive(Debug, Clone)]
pub struct Bins {
    pub origin: PathBuf,
    pub edge: PathBuf,
}

/// Runs `arbor up` to completion.
pub fn run(args: &UpArgs, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let bins = Bins {
        origin: process::find_bin(ORIGIN_BIN, args.origin_bin.as_deref(), "--origin-bin")?,
        edge: process::find_bin(EDGE_BIN, args.edge_bin.as_deref(), "--edge-bin")?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(up(args, data_dir, &bins))
}

/// A cluster started by [`start`] (for `arbor bench` and tests): the processes run until
/// [`Running::stop`], or until the value is dropped (each process is killed with it).
pub struct Running {
    /// What `cluster.json` says (written too).
    pub cluster: Cluster,
    procs: Vec<Proc>,
    _proxies: Vec<Proxy>,
}

/// Starts the cluster `plan` describes in `data_dir`, as `arbor up` does, and returns once
/// every edge is registered, without supervising it or waiting for a signal. `edge_settings`
/// are `ARBOR_<SECTION>_<KEY>` pairs applied to every edge after the environment's
/// (`ARBOR_LIMITS_MAX_PARTICIPANTS` for a benchmark's large meeting).
pub async fn start(
    plan: Plan,
    data_dir: &Path,
    bins: &Bins,
    edge_settings: &[(String, String)],
) -> anyhow::Result<Running> {
    refuse_if_taken(&plan).await?;
    let prepared = prepare(plan, data_dir, edge_settings)?;
    let proxies = start_proxies(&prepared.plan).await?;
    let mut procs = Vec::new();
    if let Err(e) = start_processes(&prepared, bins, &mut procs).await {
        process::stop_all(&mut procs).await;
        return Err(e);
    }
    let cluster = describe(&prepared, &procs, &proxies);
    cluster.write(&Cluster::path_in(&prepared.dir))?;
    Ok(Running {
        cluster,
        procs,
        _proxies: proxies,
    })
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("procs", &self.procs)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Fails, naming the process and its log's tail, if one of them has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        process::check_running(&mut self.procs)
    }

    /// Stops every process (SIGTERM, then SIGKILL) and the proxies.
    pub async fn stop(mut self) {
        process::stop_all(&mut self.procs).await;
    }
}

/// A fresh API key (`API` + 12 hex digits) and secret (32 random bytes, base64url: 43
/// characters), from the operating system's generator.
pub fn generate_credentials() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 6 + 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .context("the operating system's random generator failed")?;
    let (key, secret) = bytes.split_at(6);
    let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("API{key}"), URL_SAFE_NO_PAD.encode(secret)))
}

/// Everything the start needs, prepared on disk.
struct Prepared {
    plan: Plan,
    /// Absolute; the user's spelling stays in messages.
    dir: PathBuf,
    api_key: String,
    api_secret: String,
}

async fn up(args: &UpArgs, data_dir: &Path, bins: &Bins) -> anyhow::Result<ExitCode> {
    let mut shutdown = Shutdown::listen()?;
    let plan = Plan::new(args.edges, args.ip_base, !args.no_impair);
    refuse_if_taken(&plan).await?;
    let prepared = prepare(plan, data_dir, &[])?;
    let proxies = start_proxies(&prepared.plan).await?;
    let mut procs = Vec::new();
    let result = run_cluster(
        &prepared,
        bins,
        data_dir,
        &proxies,
        &mut procs,
        &mut shutdown,
    )
    .await;
    process::stop_all(&mut procs).await;
    drop(proxies);
    result
}

/// Fails if something already answers on one of the cluster's HTTP addresses.
async fn refuse_if_taken(plan: &Plan) -> anyhow::Result<()> {
    let addrs = [plan.origin.http, plan.origin.dns]
        .into_iter()
        .chain(plan.edges.iter().map(|e| e.http));
    for addr in addrs {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), connect).await {
            bail!(
                "{addr} is already in use (another `arbor up`?); stop it, or start this cluster \
                 on another loopback network with --ip-base 127.1"
            );
        }
    }
    Ok(())
}

/// Creates the data directory, the credentials, the PKI and every config file; removes the
/// previous cluster's origin database (each `arbor up` is a fresh cluster).
fn prepare(
    plan: Plan,
    data_dir: &Path,
    edge_settings: &[(String, String)],
) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let dir = std::fs::canonicalize(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let (api_key, api_secret) = generate_credentials()?;
    let creds = (api_key.as_str(), api_secret.as_str());
    let pki_dir = dir.join("pki");
    write_pki(&pki_dir, &plan)?;

    let store = dir.join("origin.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut name = store.clone().into_os_string();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {name:?}"));
            }
            _ => {}
        }
    }
    let geoip_db = dir.join("geo.mmdb");
    write_geoip(&geoip_db, &plan)?;
    let origin_env: Vec<_> = arbor_origin::config::process_env().collect();
    let origin = plan.origin_config(creds, &pki_dir, (&store, &geoip_db), &origin_env)?;
    cluster::write_private(&dir.join("origin.toml"), origin.to_toml().as_bytes())?;
    let edge_env: Vec<_> = edge_config::process_env()
        .chain(edge_settings.iter().cloned())
        .collect();
    for edge in &plan.edges {
        let cfg = plan.edge_config(edge, creds, &pki_dir, &edge_env)?;
        let path = dir.join(format!("edge-{}.toml", edge.id));
        cluster::write_private(&path, cfg.to_toml().as_bytes())?;
    }
    Ok(Prepared {
        plan,
        dir,
        api_key,
        api_secret,
    })
}

/// The synthetic MaxMind database ([`Plan::geoip_networks`]) at `path`.
fn write_geoip(path: &Path, plan: &Plan) -> anyhow::Result<()> {
    let built = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bytes = arbor_origin::geoip::write(&plan.geoip_networks(), built)
        .context("cannot build the synthetic MaxMind database")?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// `cluster.json`'s DNS part: the origin's DNS address and each region's client subnets.
fn dns_of(plan: &Plan) -> Dns {
    Dns {
        addr: plan.origin.dns,
        zone: plan::DNS_ZONE.to_owned(),
        name: format!("edge.{}", plan::DNS_ZONE),
        regions: plan
            .sites()
            .iter()
            .map(|site| DnsRegion {
                region: relay_proto::RegionId::new(site.region)
                    .expect("site regions are valid ids"),
                client_subnet: site.client_subnet.to_owned(),
                client_subnet_v6: site.client_subnet_v6.to_owned(),
            })
            .collect(),
    }
}

/// A fresh dev CA and a certificate for the origin and each edge, in `dir` (replaced whole).
fn write_pki(dir: &Path, plan: &Plan) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", dir.display()));
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pki = PkiDir::new(dir);
    let ca = Ca::generate("arbor up dev CA").context("cannot generate the dev CA")?;
    ca.to_pem_files(&pki.ca_cert(), &pki.ca_key())
        .context("cannot write the dev CA")?;
    let roles =
        std::iter::once(Role::Origin).chain(plan.edges.iter().map(|e| Role::Edge(e.id.clone())));
    for role in roles {
        let cert = ca
            .issue(&role)
            .with_context(|| format!("cannot issue a certificate for {role:?}"))?;
        cert.to_pem_files(&pki.node_cert(&role), &pki.node_key(&role))
            .with_context(|| format!("cannot write the certificate of {role:?}"))?;
    }
    Ok(())
}

/// One in-process impairment proxy per impaired link, in the plan's link order.
async fn start_proxies(plan: &Plan) -> anyhow::Result<Vec<Proxy>> {
    let mut proxies = Vec::new();
    for (seed, link) in (0u64..).zip(&plan.links) {
        let Some(cfg) = link.proxy_config(seed) else {
            continue;
        };
        let proxy = Proxy::start(cfg)
            .await
            .with_context(|| format!("cannot start the proxy of link {} → {}", link.a, link.b))?;
        proxies.push(proxy);
    }
    Ok(proxies)
}

/// Starts the processes, writes `cluster.json`, prints the banner and supervises until a
/// signal (exit 0) or a death (non-zero). `procs` collects what was started, for the caller
/// to stop.
async fn run_cluster(
    p: &Prepared,
    bins: &Bins,
    data_dir: &Path,
    proxies: &[Proxy],
    procs: &mut Vec<Proc>,
    shutdown: &mut Shutdown,
) -> anyhow::Result<ExitCode> {
    tokio::select! {
        started = start_processes(p, bins, procs) => started?,
        () = shutdown.recv() => {
            eprintln!("Stopping the cluster…");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let cluster = describe(p, procs, proxies);
    cluster.write(&Cluster::path_in(&p.dir))?;
    println!("{}", banner(&cluster, data_dir));

    let died = {
        let waits = procs
            .iter_mut()
            .enumerate()
            .map(|(i, proc)| Box::pin(async move { (i, proc.wait().await) }));
        tokio::select! {
            ((i, status), _, _) = futures_util::future::select_all(waits) => Some((i, status)),
            () = shutdown.recv() => None,
        }
    };
    match died {
        Some((i, status)) => {
            let proc = &procs[i];
            let status = status.with_context(|| format!("cannot wait for {}", proc.name))?;
            eprintln!(
                "{}\nStopping the rest of the cluster.",
                proc.death_notice(status)
            );
            Ok(process::exit_code(status))
        }
        None => {
            eprintln!("Stopping the cluster…");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The origin, then the edges, each waited for; then until the origin lists every edge alive.
async fn start_processes(p: &Prepared, bins: &Bins, procs: &mut Vec<Proc>) -> anyhow::Result<()> {
    let origin_http = p.plan.origin.http;
    procs.push(Proc::spawn(
        "origin".to_owned(),
        &bins.origin,
        &p.dir.join("origin.toml"),
        p.dir.join("origin.log"),
        |var| var.starts_with(arbor_origin::config::ENV_PREFIX),
    )?);
    let what = format!("the origin did not answer http://{origin_http}/readyz with 200");
    process::wait_until(procs, READY_TIMEOUT, &what, || async move {
        matches!(http_status(origin_http, "/readyz").await, Ok(200))
    })
    .await?;

    for edge in &p.plan.edges {
        procs.push(Proc::spawn(
            format!("edge {}", edge.id),
            &bins.edge,
            &p.dir.join(format!("edge-{}.toml", edge.id)),
            p.dir.join(format!("edge-{}.log", edge.id)),
            is_edge_config_var,
        )?);
    }
    for edge in &p.plan.edges {
        let http = edge.http;
        let what = format!(
            "edge {} did not answer http://{http}/readyz with 200",
            edge.id
        );
        process::wait_until(procs, READY_TIMEOUT, &what, || async move {
            matches!(http_status(http, "/readyz").await, Ok(200))
        })
        .await?;
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .context("cannot build an HTTP client")?;
    let ids: Vec<EdgeId> = p.plan.edges.iter().map(|e| e.id.clone()).collect();
    let url = format!("http://{origin_http}/v1/edges");
    let what = "the edges did not all register with the origin (see their logs)";
    process::wait_until(procs, READY_TIMEOUT, what, || {
        all_alive(&client, &url, (&p.api_key, &p.api_secret), &ids)
    })
    .await
}

/// Whether `GET /v1/edges` lists every one of `ids` as alive.
async fn all_alive(
    client: &reqwest::Client,
    url: &str,
    (key, secret): (&str, &str),
    ids: &[EdgeId],
) -> bool {
    #[derive(Deserialize)]
    struct Edges {
        edges: Vec<Row>,
    }
    #[derive(Deserialize)]
    struct Row {
        id: EdgeId,
        status: String,
    }
    let response = client.get(url).basic_auth(key, Some(secret)).send().await;
    let Ok(body) = response.and_then(reqwest::Response::error_for_status) else {
        return false;
    };
    let Ok(list) = body.json::<Edges>().await else {
        return false;
    };
    ids.iter().all(|id| {
        list.edges
            .iter()
            .any(|e| e.id == *id && e.status == "alive")
    })
}

/// Whether `var` is one of the edge's `ARBOR_<SECTION>_<KEY>` settings.
fn is_edge_config_var(var: &str) -> bool {
    let Some((section, _)) = var
        .strip_prefix(edge_config::ENV_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return false;
    };
    let section = section.to_ascii_lowercase();
    edge_config::ENV_KEYS.iter().any(|(s, _)| *s == section)
}

/// The cluster file's contents: `procs` are the origin then the edges, in plan order;
/// `proxies` the impaired links', in plan order.
fn describe(p: &Prepared, procs: &[Proc], proxies: &[Proxy]) -> Cluster {
    let plan = &p.plan;
    let origin_url = format!("http://{}", plan.origin.http);
    let edges = plan
        .edges
        .iter()
        .zip(&procs[1..])
        .map(|(e, proc)| Edge {
            relay_addr: Some(e.relay),
            lat: e.lat,
            lon: e.lon,
            ..Edge::new(
                e.id.clone(),
                e.region.clone(),
                proc.pid,
                &format!("http://{}", e.http),
            )
        })
        .collect();
    let mut proxies = proxies.iter();
    let links = plan
        .links
        .iter()
        .map(|l| {
            let proxy = l.proxy.and_then(|_| proxies.next());
            Link {
                a: l.a.clone(),
                b: l.b.clone(),
                one_way_ms: match proxy {
                    Some(_) => l.one_way.as_micros() as f64 / 1000.0,
                    None => 0.0,
                },
                proxy: proxy.map(Proxy::listen_addr),
                control: proxy.and_then(Proxy::control_addr),
            }
        })
        .collect();
    Cluster {
        origin: Some(Origin {
            api_url: format!("{origin_url}/v1"),
            http_url: origin_url,
            pid: procs[0].pid,
            relay_addr: plan.origin.relay,
        }),
        api_key: p.api_key.clone(),
        api_secret: p.api_secret.clone(),
        dns: Some(dns_of(plan)),
        edges,
        links,
    }
}

/// What `arbor up` prints once the cluster is ready.
pub fn banner(cluster: &Cluster, data_dir: &Path) -> String {
    let data_flag = match data_dir == Path::new(".arbor") {
        true => String::new(),
        false => format!(" --data-dir {}", data_dir.display()),
    };
    let log = |name: &str| data_dir.join(format!("{name}.log")).display().to_string();
    let mut out = format!(
        "\nArbor is up: an origin and {} edge{}.\n\n",
        cluster.edges.len(),
        if cluster.edges.len() == 1 { "" } else { "s" }
    );
    if let Some(o) = &cluster.origin {
        out += &format!(
            "  Origin API  {}   (pid {}, log {})\n\n",
            o.api_url,
            o.pid,
            log("origin")
        );
    }
    for edge in &cluster.edges {
        out += &format!(
            "  {} — edge {}, pid {}\n\
             \x20   Join:           {}/?meeting=demo\n\
             \x20   WHIP ingest:    {}/demo   (Authorization: Bearer <token>)\n\
             \x20   WHEP playback:  {}/demo\n\
             \x20   Log:            {}\n\n",
            edge.region,
            edge.id,
            edge.pid,
            edge.http_url,
            edge.whip_url,
            edge.whep_url,
            log(&format!("edge-{}", edge.id)),
        );
    }
    out += &links_section(cluster);
    out += &dns_section(cluster);
    let whip = cluster.edges.first().map_or("", |e| e.whip_url.as_str());
    out += &format!(
        "  Cluster file:   {} (API key {})\n\
         \x20 Mint a token:   arbor token{data_flag} --meeting demo --identity alice\n\
         \x20 Stream with ffmpeg (H.264 + Opus over WHIP):\n\
         \x20   ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=30 -f lavfi -i sine \\\n\
         \x20     -c:v libx264 -profile:v baseline -bf 0 -pix_fmt yuv420p \\\n\
         \x20     -c:a libopus -ar 48000 -ac 2 -f whip \\\n\
         \x20     -authorization \"$(arbor token{data_flag} --meeting demo --identity obs)\" \\\n\
         \x20     {whip}/demo\n\n\
         Ctrl-C stops the origin, the edges and the links.",
        Cluster::path_in(data_dir).display(),
        cluster.api_key,
    );
    out
}

/// How to ask the DNS for each region's edge.
fn dns_section(cluster: &Cluster) -> String {
    let Some(dns) = &cluster.dns else {
        return String::new();
    };
    let mut out = format!(
        "  Geo DNS:        {} (UDP and TCP), zone {}; the nearest healthy edge for a client:\n",
        dns.addr, dns.zone
    );
    for r in &dns.regions {
        out += &format!(
            "    dig @{} -p {} {} +subnet={}   → {}\n",
            dns.addr.ip(),
            dns.addr.port(),
            dns.name,
            r.client_subnet,
            r.region
        );
    }
    out + "\n"
}

/// The backbone links and how to cut one.
fn links_section(cluster: &Cluster) -> String {
    if cluster.links.is_empty() {
        return String::new();
    }
    let mut out = String::from("  Backbone links (the first edge dials the second):\n");
    for l in &cluster.links {
        out += &match l.control {
            Some(control) => format!(
                "    {} → {}   {} ms each way   control {control}\n",
                l.a, l.b, l.one_way_ms
            ),
            None => format!("    {} → {}   direct\n", l.a, l.b),
        };
    }
    if let Some(control) = cluster.links.iter().find_map(|l| l.control) {
        out += &format!(
            "  Cut a link:     arbor impair set --control {control} --partition   (--heal \
             restores it)\n"
        );
    }
    out + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    #[test]
    fn credentials_are_fresh_and_long_enough() {
        let (k1, s1) = generate_credentials().unwrap();
        let (k2, s2) = generate_credentials().unwrap();
        assert_ne!((&k1, &s1), (&k2, &s2));
        assert!(k1.starts_with("API") && k1.len() == 15, "{k1}");
        assert!(s1.len() >= edge_config::MIN_SECRET_LEN, "{s1}");
        assert!(s1.len() >= arbor_origin::config::MIN_SECRET_LEN, "{s1}");
    }

    #[test]
    fn config_vars_are_recognised() {
        assert!(is_edge_config_var("ARBOR_HTTP_LISTEN"));
        assert!(is_edge_config_var("ARBOR_LOG_LEVEL"));
        assert!(is_edge_config_var("ARBOR_BACKBONE_PEER_ADDRS"));
        assert!(!is_edge_config_var("ARBOR_DATA_DIR"));
        assert!(
            !is_edge_config_var("ARBOR_UP_EDGE_BIN"),
            "arbor up's own flag"
        );
        assert!(
            !is_edge_config_var("ARBOR_ORIGIN_HTTP_LISTEN"),
            "the origin's"
        );
        assert!(!is_edge_config_var("ARBOR_HTTPX"));
        assert!(!is_edge_config_var("HOME"));
    }

    #[test]
    fn command_line() {
        let up = |argv: &[&str]| match Cli::try_parse_from([&["arbor", "up"], argv].concat()) {
            Ok(Cli {
                command: Command::Up(up),
                ..
            }) => Ok(up),
            Ok(other) => panic!("not up: {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        let args = up(&[]).unwrap();
        assert_eq!(args.edges, 3);
        assert_eq!(args.ip_base, plan::IpBase(0));
        assert!(!args.no_impair);
        let args = up(&["--edges", "2", "--ip-base", "127.11", "--no-impair"]).unwrap();
        assert_eq!((args.edges, args.ip_base), (2, plan::IpBase(11)));
        assert!(args.no_impair);
        assert!(up(&["--edges", "0"]).is_err());
        assert!(up(&["--edges", "10"]).is_err());
        let e = up(&["--ip-base", "10.0"]).unwrap_err();
        assert!(e.contains("not a loopback network"), "{e}");
    }

    fn sample() -> Cluster {
        let plan = Plan::new(3, plan::IpBase(0), true);
        let edges = plan
            .edges
            .iter()
            .zip(70..)
            .map(|(e, pid)| {
                Edge::new(
                    e.id.clone(),
                    e.region.clone(),
                    pid,
                    &format!("http://{}", e.http),
                )
            })
            .collect();
        let links = plan
            .links
            .iter()
            .map(|l| Link {
                a: l.a.clone(),
                b: l.b.clone(),
                one_way_ms: l.one_way.as_micros() as f64 / 1000.0,
                proxy: l.proxy.map(|p| p.0),
                control: l.proxy.map(|p| p.1),
            })
            .collect();
        Cluster {
            origin: Some(Origin {
                api_url: "http://127.0.0.1:7780/v1".into(),
                http_url: "http://127.0.0.1:7780".into(),
                pid: 69,
                relay_addr: plan.origin.relay,
            }),
            api_key: "APIk".into(),
            api_secret: "secret-not-shown".into(),
            dns: Some(dns_of(&plan)),
            edges,
            links,
        }
    }

    #[test]
    fn banner_says_where_to_go() {
        let cluster = sample();
        let text = banner(&cluster, Path::new(".arbor"));
        for url in [
            "http://127.0.1.1:7880/?meeting=demo",
            "http://127.0.2.1:7880/?meeting=demo",
            "http://127.0.3.1:7880/?meeting=demo",
            "http://127.0.1.1:7880/v1/whip/demo",
            "http://127.0.3.1:7880/v1/whep/demo",
            "http://127.0.0.1:7780/v1",
        ] {
            assert!(text.contains(url), "{url} in {text}");
        }
        for region in ["eu-west", "us-east", "ap-southeast"] {
            assert!(text.contains(region), "{region} in {text}");
        }
        assert!(
            text.contains("ap-1 → us-1   75 ms each way   control 127.0.0.1:9102"),
            "{text}"
        );
        assert!(
            text.contains("arbor impair set --control 127.0.0.1:9100 --partition"),
            "{text}"
        );
        assert!(text.contains(".arbor/edge-us-1.log"), "{text}");
        assert!(
            text.contains("arbor token --meeting demo --identity alice"),
            "{text}"
        );
        assert!(text.contains("Ctrl-C stops"), "{text}");
        assert!(
            text.contains(
                "dig @127.0.0.1 -p 7853 edge.arbor.test +subnet=203.0.113.0/24   → us-east"
            ),
            "{text}"
        );
        assert!(!text.contains("secret-not-shown"));
        let text = banner(&cluster, Path::new("/tmp/c"));
        assert!(
            text.contains("arbor token --data-dir /tmp/c --meeting demo"),
            "{text}"
        );

        let mut direct = cluster;
        for l in &mut direct.links {
            (l.proxy, l.control, l.one_way_ms) = (None, None, 0.0);
        }
        let text = banner(&direct, Path::new(".arbor"));
        assert!(text.contains("eu-1 → us-1   direct"), "{text}");
        assert!(!text.contains("impair set"), "{text}");
    }
}
