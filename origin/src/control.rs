//! The origin's control plane: edges' QUIC control links in, the coordinator's decisions out.
//!
//! Each edge dials the origin's relay endpoint (mutual TLS: the certificate says which edge it
//! is) and keeps one link open. Per link, a task feeds what the edge says into the
//! [`Coordinator`](origin_core::Coordinator) (register, heartbeat, RTT reports, presence) and
//! records it in the store for the REST API; one driver task wakes on every change and on the
//! coordinator's deadline, and delivers what it decided: peer lists and tree updates to edges,
//! new trees to the store.
//!
//! The data plane never waits on any of this: edges keep forwarding with the trees they have
//! while the origin is away, and report everything again when they reconnect.
//!
//! Drains: the REST API records an operator's drain in the store; the edge's link task learns
//! of it when it records the edge's next heartbeat, counts the edge as draining from then on
//! (placement takes nothing new there) and sends it `Drain` with the nearest healthy edge as
//! its target, again on every heartbeat until the edge acknowledges by heartbeating
//! `draining`, and later whenever that target changes ([`drain_target`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use origin_core::Coordinator;
use origin_core::coordinator::Output;
use relay_proto::{Control, DrainTarget, EdgeId, Hello, RegionId, Role};
use relay_quic::{LinkConfig, LinkEvent, LinkHandle, NodeCert, PkiDir, RelayEndpoint};

use crate::http::unix_now_ms;
use crate::placer::Placer;
use crate::store::{EdgeLoad, EdgeRecord, EdgeStatus, Heartbeat, Presence, Store, TreeRecord};

/// Where the control plane listens and which certificates it uses.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub listen: SocketAddr,
    pub pki_dir: PathBuf,
    /// The region the origin names in its Hello (informational).
    pub region: RegionId,
}

/// Live edge links, by edge id.
type Links = Arc<Mutex<HashMap<EdgeId, LinkHandle>>>;

/// Binds the relay endpoint and starts the accept loop and the driver. Returns the bound
/// address.
pub fn start(
    cfg: &ControlConfig,
    placer: Arc<Placer>,
    store: Arc<dyn Store>,
) -> anyhow::Result<SocketAddr> {
    let pki = PkiDir::new(&cfg.pki_dir);
    let cert =
        NodeCert::from_pem_files(&pki.node_cert(&Role::Origin), &pki.node_key(&Role::Origin))
            .with_context(|| format!("reading the origin's certificate from {:?}", cfg.pki_dir))?;
    let ca = std::fs::read_to_string(pki.ca_cert())
        .with_context(|| format!("reading the CA certificate {:?}", pki.ca_cert()))?;
    let endpoint = RelayEndpoint::bind(cfg.listen, &cert, &ca)
        .with_context(|| format!("binding the relay endpoint {}", cfg.listen))?;
    let addr = endpoint.local_addr()?;
    let links: Links = Arc::default();
    let hello = Hello {
        version: relay_proto::VERSION,
        role: Role::Origin,
        region: cfg.region.clone(),
    };
    tokio::spawn(drive(placer.clone(), store.clone(), links.clone()));
    tokio::spawn(accept_loop(endpoint, hello, placer, store, links));
    tracing::info!(%addr, "control plane listening");
    Ok(addr)
}

async fn accept_loop(
    endpoint: RelayEndpoint,
    hello: Hello,
    placer: Arc<Placer>,
    store: Arc<dyn Store>,
    links: Links,
) {
    while let Some(incoming) = endpoint.accept().await {
        let (hello, placer, store, links) =
            (hello.clone(), placer.clone(), store.clone(), links.clone());
        tokio::spawn(async move {
            let peer = match incoming.establish().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("control link refused: {e}");
                    return;
                }
            };
            let Role::Edge(edge) = peer.identity.clone() else {
                tracing::warn!(peer = ?peer.identity, "control link refused: not an edge");
                return;
            };
            let (link, events) = relay_quic::link::spawn(peer, LinkConfig::new(hello));
            edge_link(edge, link, events, placer, store, links).await;
        });
    }
}

/// One edge's control link, until it closes.
async fn edge_link(
    edge: EdgeId,
    link: LinkHandle,
    mut events: tokio::sync::mpsc::Receiver<LinkEvent>,
    placer: Arc<Placer>,
    store: Arc<dyn Store>,
    links: Links,
) {
    // The last `Drain` target sent on this link.
    let mut drain_sent: Option<Option<DrainTarget>> = None;
    while let Some(ev) = events.recv().await {
        match ev {
            LinkEvent::Up(_) => {
                tracing::info!(%edge, "edge connected");
                lock(&links).insert(edge.clone(), link.clone());
                placer.lock().handle_connected(Instant::now(), &edge);
            }
            LinkEvent::Message(mut msg) => {
                let pending = record(&*store, &edge, &msg).await;
                let draining = match &mut msg {
                    Control::Heartbeat(load) => {
                        // An operator's drain counts from now, before the edge has heard of it.
                        load.draining |= pending;
                        load.draining
                    }
                    _ => false,
                };
                let target = {
                    let mut c = placer.lock();
                    c.handle_message(Instant::now(), &edge, msg);
                    draining.then(|| drain_target(&c, &edge))
                };
                placer.changed();
                if let Some(target) = target
                    && (pending || drain_sent.as_ref() != Some(&target))
                {
                    let to = target.as_ref().map_or("none", |t| t.edge.as_str());
                    tracing::info!(%edge, to, "sending drain");
                    let _ = link.try_send(Control::Drain {
                        target: target.clone(),
                    });
                    drain_sent = Some(target);
                }
            }
            LinkEvent::Down(why) => {
                tracing::warn!(%edge, ?why, "edge disconnected");
                break;
            }
            LinkEvent::Datagram(_) | LinkEvent::Rtt(_) => {}
        }
    }
    lock(&links).remove(&edge);
    placer.lock().handle_disconnect(Instant::now(), &edge);
    placer.changed();
    let beat = Heartbeat {
        edge: edge.clone(),
        at_ms: unix_now_ms(),
        status: EdgeStatus::Dead,
        load: EdgeLoad::default(),
    };
    if let Err(e) = store.record_heartbeat(&beat).await {
        tracing::warn!(%edge, "recording the edge's death: {e}");
    }
}

/// Where a draining edge's clients go: the healthy edge nearest to it (measured RTT, else
/// the great-circle estimate; ties by id). `None` when no other edge takes new meetings.
pub fn drain_target(c: &Coordinator, from: &EdgeId) -> Option<DrainTarget> {
    let registry = c.registry();
    registry
        .edges()
        .filter(|s| s.is_healthy() && s.edge.id != *from)
        .min_by_key(|s| {
            let rtt = registry.rtt_us(from, &s.edge.id).unwrap_or(u32::MAX);
            (rtt, s.edge.id.clone())
        })
        .map(|s| DrainTarget {
            edge: s.edge.id.clone(),
            http_url: s.edge.http_url.clone(),
        })
}

/// What an edge reported, as the REST API shows it. For a heartbeat, `true` when an
/// operator's drain of the edge waits for delivery.
async fn record(store: &dyn Store, edge: &EdgeId, msg: &Control) -> bool {
    let now_ms = unix_now_ms();
    let r = match msg {
        Control::Register(info) if info.id == *edge => {
            let row = EdgeRecord {
                id: info.id.clone(),
                region: info.region.clone(),
                lat: f64::from(info.lat_e6) / 1e6,
                lon: f64::from(info.lon_e6) / 1e6,
                relay_addr: info.relay_addr,
                http_url: info.http_url.clone(),
                capacity: info.capacity,
                status: EdgeStatus::Alive,
                last_heartbeat_ms: now_ms,
                load: EdgeLoad::default(),
            };
            store.upsert_edge(&row).await
        }
        Control::Heartbeat(load) => {
            let beat = Heartbeat {
                edge: edge.clone(),
                at_ms: now_ms,
                status: if load.draining {
                    EdgeStatus::Draining
                } else {
                    EdgeStatus::Alive
                },
                load: EdgeLoad {
                    participants: load.participants,
                    meetings: load.meetings,
                    cpu_permille: u32::from(load.cpu_permille),
                },
            };
            return match store.heartbeat(&beat).await {
                Ok(beat) => beat.is_some_and(|b| b.drain_pending),
                Err(e) => {
                    tracing::warn!(%edge, "recording a heartbeat: {e}");
                    false
                }
            };
        }
        Control::Presence {
            meeting,
            participants,
            publishers,
        } => {
            let p = Presence {
                meeting: meeting.clone(),
                edge: edge.clone(),
                participants: *participants,
                publishers: *publishers,
                updated_at_ms: now_ms,
            };
            store.set_presence(&p).await
        }
        _ => Ok(()),
    };
    if let Err(e) = r {
        tracing::warn!(%edge, "recording a report: {e}");
    }
    false
}

/// Runs the coordinator's timers and delivers its outputs.
async fn drive(placer: Arc<Placer>, store: Arc<dyn Store>, links: Links) {
    loop {
        let (outputs, deadline) = {
            let mut c = placer.lock();
            c.handle_timeout(Instant::now());
            let mut outputs = Vec::new();
            let deadline = loop {
                match c.poll_output() {
                    Output::Timeout(at) => break at,
                    o => outputs.push(o),
                }
            };
            (outputs, deadline)
        };
        for o in outputs {
            deliver(&*store, &links, o).await;
        }
        tokio::select! {
            () = placer.wait_changed() => {}
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

async fn deliver(store: &dyn Store, links: &Links, o: Output) {
    match o {
        Output::Send(edge, msg) => {
            let link = lock(links).get(&edge).cloned();
            match link {
                Some(l) if l.try_send(msg).is_ok() => {}
                // The edge gets everything again when it reconnects (or its queue drains).
                _ => metrics::counter!("arbor_origin_control_dropped_total").increment(1),
            }
        }
        Output::Tree {
            meeting,
            epoch,
            links,
        } => {
            let record = TreeRecord {
                meeting,
                epoch,
                links,
                updated_at_ms: unix_now_ms(),
            };
            if let Err(e) = store.put_tree(&record).await {
                tracing::warn!(meeting = %record.meeting, "recording a tree: {e}");
            }
        }
        Output::Timeout(_) => {}
    }
}

fn lock(links: &Links) -> std::sync::MutexGuard<'_, HashMap<EdgeId, LinkHandle>> {
    links.lock().unwrap_or_else(PoisonError::into_inner)
}
