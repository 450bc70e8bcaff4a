//! Shared by the integration tests: nodes on 127.0.0.1 with a dev CA, link pairs, event waits,
//! raw quinn clients with hand-made TLS settings, and a UDP relay that can cut a path.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use relay_proto::{EdgeId, Hello, RegionId, Role, VERSION};
use relay_quic::{
    Ca, Down, LinkConfig, LinkEvent, LinkHandle, NodeCert, PeerConnection, RelayEndpoint,
};
use rustls::pki_types::CertificateDer;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Upper bound on any single wait: a broken link fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Events = mpsc::Receiver<LinkEvent>;

pub fn edge(id: &str) -> Role {
    Role::Edge(EdgeId::new(id).unwrap())
}

pub fn hello(role: &Role) -> Hello {
    Hello {
        version: VERSION,
        role: role.clone(),
        region: RegionId::new("test-region").unwrap(),
    }
}

pub fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn bind(ca: &Ca, role: &Role) -> RelayEndpoint {
    RelayEndpoint::bind(local(), &ca.issue(role).unwrap(), ca.cert_pem()).unwrap()
}

/// Accepts one connection on `server` and returns its handshake result.
pub async fn accept_one(
    server: &RelayEndpoint,
) -> Result<PeerConnection, relay_quic::HandshakeError> {
    let incoming = tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("an incoming connection")
        .expect("endpoint open");
    tokio::time::timeout(WAIT, incoming.establish())
        .await
        .expect("handshake finishes")
}

/// A dialer (edge `a`) and an acceptor (edge `b`), each with a link task whose Hello is
/// `a_hello` / `b_hello`.
pub struct Pair {
    pub dialer: LinkHandle,
    pub dialer_events: Events,
    pub acceptor: LinkHandle,
    pub acceptor_events: Events,
}

pub async fn pair_with(
    dialer_ep: &RelayEndpoint,
    acceptor_ep: &RelayEndpoint,
    dialer_hello: Hello,
    acceptor_hello: Hello,
) -> Pair {
    let addr = acceptor_ep.local_addr().unwrap();
    let peer = acceptor_ep.identity().clone();
    let (dialed, accepted) = tokio::join!(dialer_ep.connect(addr, &peer), accept_one(acceptor_ep));
    let (dialer, dialer_events) = relay_quic::spawn(dialed.unwrap(), LinkConfig::new(dialer_hello));
    let (acceptor, acceptor_events) =
        relay_quic::spawn(accepted.unwrap(), LinkConfig::new(acceptor_hello));
    Pair {
        dialer,
        dialer_events,
        acceptor,
        acceptor_events,
    }
}

/// The next event that is not an RTT sample.
pub async fn next_event(events: &mut Events) -> LinkEvent {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("an event within the wait")
            .expect("Down comes before the channel closes");
        if !matches!(event, LinkEvent::Rtt(_)) {
            return event;
        }
    }
}

/// Skips events until Down.
pub async fn wait_down(events: &mut Events) -> Down {
    loop {
        if let LinkEvent::Down(down) = next_event(events).await {
            return down;
        }
    }
}

pub async fn expect_up(events: &mut Events) -> Hello {
    match next_event(events).await {
        LinkEvent::Up(hello) => hello,
        other => panic!("expected Up, got {other:?}"),
    }
}

/// A quinn client endpoint with hand-made TLS: `cert` (or none) and `alpn`, trusting `ca_pem`.
pub fn raw_client(ca_pem: &str, cert: Option<&NodeCert>, alpn: &[u8]) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = Arc::new(relay_quic::pki::roots_from_pem(ca_pem).unwrap());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain().to_vec(), cert.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(relay_quic::endpoint::transport_config()));
    let mut endpoint = quinn::Endpoint::client(local()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// What a client sees of a refused handshake: `connect` fails, or (TLS 1.3 clients finish
/// first) the connection closes right after with a TLS alert.
pub async fn client_refused(
    connecting: Result<quinn::Connecting, quinn::ConnectError>,
) -> quinn::ConnectionError {
    tokio::time::timeout(WAIT, async {
        match connecting.unwrap().await {
            Err(e) => e,
            Ok(conn) => conn.closed().await,
        }
    })
    .await
    .expect("the client learns of the refusal")
}

pub fn leaf(cert: &NodeCert) -> CertificateDer<'static> {
    cert.chain()[0].clone()
}

/// A UDP relay between a client and `server`; [`Relay::cut`] silently drops everything after,
/// as a dead host or a cut path would.
pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    pub async fn start(server: SocketAddr) -> Relay {
        let socket = Arc::new(UdpSocket::bind(local()).await.unwrap());
        let addr = socket.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            let mut client = None;
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if flag.load(Ordering::Relaxed) {
                    continue;
                }
                let to = if from == server {
                    match client {
                        Some(c) => c,
                        None => continue,
                    }
                } else {
                    client = Some(from);
                    server
                };
                let _ = socket.send_to(&buf[..n], to).await;
            }
        });
        Relay { addr, cut }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}
