//! One QUIC endpoint per node: mutual TLS from a private CA, ALPN `arbor-relay/1`, and the
//! transport settings of a backbone link. It both dials ([`RelayEndpoint::connect`]) and
//! accepts ([`RelayEndpoint::accept`]); every refused handshake is logged and counted.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, IdleTimeout, Side, TransportConfig, VarInt};
use relay_proto::{ALPN, CloseCode, Role};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;

use crate::pki::{IdentityError, NodeCert, PkiError, node_name, peer_identity, roots_from_pem};

/// QUIC keep-alive: well below [`IDLE_TIMEOUT`], which both ends negotiate to the same value.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// A link with nothing received for this long is dead (three missed keep-alives).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Backbone paths are 1500-byte Ethernet: 1452 leaves room for IPv6 + UDP headers and makes
/// the largest datagram 1414 bytes from the first packet, without waiting for MTU discovery.
pub const INITIAL_MTU: u16 = 1452;
/// About 200 ms of media at 100 Mbit/s (100e6 / 8 × 0.2). Past it quinn drops the *oldest*
/// queued datagrams, so a congested link sheds stale media instead of queueing seconds of it
/// (quinn's default is 1 MiB whatever the rate).
pub const DATAGRAM_SEND_BUFFER_BYTES: usize = 2_500_000;
/// The same 200 ms at 100 Mbit/s on the receive side, before quinn drops the oldest.
pub const DATAGRAM_RECV_BUFFER_BYTES: usize = 2_500_000;
/// RTT assumed before the first sample: a long backbone hop rather than quinn's 333 ms
/// Internet default, so loss in the handshake is repaired sooner.
pub const INITIAL_RTT: Duration = Duration::from_millis(100);
/// UDP socket buffers asked of the kernel, each way: about 3,000 full-size packets, so a burst
/// at the congestion window is not lost in the socket before quinn reads it (Linux's 208 KiB
/// default lost a fifth of 1,000 back-to-back datagrams on loopback). Linux caps it at
/// `net.core.rmem_max` / `wmem_max`; raise those on edges (bind logs when it was capped).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// Streams a peer may open: the dialer opens the one control stream; nothing else.
pub const MAX_PEER_BIDI_STREAMS: u32 = 1;

/// Why an endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("QUIC crypto: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("bind: {0}")]
    Io(#[from] io::Error),
    #[error("a reloaded certificate must keep the node's identity {expected:?}, not {found:?}")]
    IdentityChanged { expected: Role, found: Role },
}

/// Why a connection did not become an authenticated link.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Name(#[from] PkiError),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("handshake: {0}")]
    Connection(#[from] ConnectionError),
    #[error("peer certificate: {0}")]
    Identity(#[from] IdentityError),
    #[error("the peer's certificate names {found:?}, not {expected:?}")]
    WrongPeer { expected: Role, found: Role },
    #[error("the peer did not negotiate ALPN arbor-relay/1")]
    Alpn,
}

impl HandshakeError {
    /// The `reason` label of `arbor_relay_handshake_failures_total`: a TLS alert name for
    /// certificate problems (`unknown_ca`, `certificate_required`, `bad_certificate`,
    /// `no_application_protocol`, …), else a short class.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Name(_) => "bad_peer_name",
            HandshakeError::Connect(_) => "connect",
            HandshakeError::Connection(e) => connection_failure_reason(e),
            HandshakeError::Identity(_) => "no_node_name",
            HandshakeError::WrongPeer { .. } => "wrong_peer",
            HandshakeError::Alpn => "no_application_protocol",
        }
    }
}

/// A connection whose handshake succeeded and whose peer certificate names `identity`.
#[derive(Debug, Clone)]
pub struct PeerConnection {
    /// The QUIC connection; hand it to [`crate::spawn`] to run the relay protocol on it.
    pub conn: quinn::Connection,
    /// The node named by the peer's certificate.
    pub identity: Role,
    /// `Client` if we dialed (and so open the control stream), `Server` if we accepted.
    pub side: Side,
}

/// A node's QUIC endpoint: one UDP socket that dials peers and accepts them.
#[derive(Debug, Clone)]
pub struct RelayEndpoint {
    endpoint: quinn::Endpoint,
    identity: Role,
    client: Arc<Mutex<quinn::ClientConfig>>,
}

impl RelayEndpoint {
    /// Binds `addr` with this node's certificate, trusting the CA certificates in `ca_pem`.
    /// Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, cert: &NodeCert, ca_pem: &str) -> Result<Self, EndpointError> {
        let roots = Arc::new(roots_from_pem(ca_pem)?);
        let server = server_config(cert, roots.clone())?;
        let client = client_config(cert, roots)?;
        let socket = udp_socket(addr)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )?;
        Ok(RelayEndpoint {
            endpoint,
            identity: cert.role().clone(),
            client: Arc::new(Mutex::new(client)),
        })
    }

    /// The node this endpoint speaks for (from its certificate).
    pub fn identity(&self) -> &Role {
        &self.identity
    }

    /// The bound UDP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The quinn endpoint, for stats and tuning this crate does not wrap.
    pub fn quinn(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// Dials the node `peer` at `addr`. TLS checks that the server's certificate names `peer`
    /// (its node name is the server name); failures are logged and counted.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        peer: &Role,
    ) -> Result<PeerConnection, HandshakeError> {
        let result = self.dial(addr, peer).await;
        if let Err(e) = &result {
            count_refusal(Side::Client, addr, e);
        }
        result
    }

    async fn dial(&self, addr: SocketAddr, peer: &Role) -> Result<PeerConnection, HandshakeError> {
        let ServerName::DnsName(name) = node_name(peer)? else {
            return Err(PkiError::NotDnsSafe { role: peer.clone() }.into());
        };
        let config = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let conn = self
            .endpoint
            .connect_with(config, addr, name.as_ref())?
            .await?;
        let checked = authenticate(conn, Side::Client)?;
        if checked.identity != *peer {
            let found = checked.identity.clone();
            close(
                &checked.conn,
                CloseCode::Unauthorized,
                "unexpected peer identity",
            );
            return Err(HandshakeError::WrongPeer {
                expected: peer.clone(),
                found,
            });
        }
        Ok(checked)
    }

    /// The next incoming connection attempt; `None` once the endpoint is closed. Finish it
    /// with [`Incoming::establish`], in its own task so one slow peer does not hold up others.
    pub async fn accept(&self) -> Option<Incoming> {
        self.endpoint.accept().await.map(Incoming)
    }

    /// Swaps in a renewed certificate or CA bundle for new connections (running links keep
    /// theirs). The node's identity cannot change.
    pub fn reload(&self, cert: &NodeCert, ca_pem: &str) -> Result<(), EndpointError> {
        if *cert.role() != self.identity {
            return Err(EndpointError::IdentityChanged {
                expected: self.identity.clone(),
                found: cert.role().clone(),
            });
        }
        let roots = Arc::new(roots_from_pem(ca_pem)?);
        let server = server_config(cert, roots.clone())?;
        let client = client_config(cert, roots)?;
        self.endpoint.set_server_config(Some(server));
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(())
    }

    /// Closes every connection with `code` and stops accepting.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.endpoint
            .close(VarInt::from_u32(code.code()), reason.as_bytes());
    }

    /// Waits until every connection is closed and its close was sent.
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// A connection attempt that has not finished its handshake.
#[derive(Debug)]
pub struct Incoming(quinn::Incoming);

impl Incoming {
    /// Where the attempt comes from (not yet authenticated).
    pub fn remote_address(&self) -> SocketAddr {
        self.0.remote_address()
    }

    /// Completes the handshake (the client's certificate must chain to the CA) and reads the
    /// client's node name; failures are logged and counted.
    pub async fn establish(self) -> Result<PeerConnection, HandshakeError> {
        let remote = self.0.remote_address();
        let result = async {
            let conn = self.0.accept()?.await?;
            authenticate(conn, Side::Server)
        }
        .await;
        if let Err(e) = &result {
            count_refusal(Side::Server, remote, e);
        }
        result
    }
}

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER_BYTES`] buffers (as far as the kernel
/// allows).
fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    // Linux reports twice the usable size it granted (it counts its own overhead).
    let (recv, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    if recv < SOCKET_BUFFER_BYTES || send < SOCKET_BUFFER_BYTES {
        tracing::warn!(%addr, recv, send, wanted = SOCKET_BUFFER_BYTES,
            "relay UDP socket buffers capped by the kernel (raise net.core.rmem_max/wmem_max)");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The checks after a completed handshake: the ALPN and a node name in the peer certificate.
fn authenticate(conn: quinn::Connection, side: Side) -> Result<PeerConnection, HandshakeError> {
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if alpn.as_deref() != Some(ALPN) {
        close(&conn, CloseCode::ProtocolViolation, "ALPN");
        return Err(HandshakeError::Alpn);
    }
    match peer_identity(&conn) {
        Ok(identity) => Ok(PeerConnection {
            conn,
            identity,
            side,
        }),
        Err(e) => {
            close(
                &conn,
                CloseCode::Unauthorized,
                "no node name in certificate",
            );
            Err(e.into())
        }
    }
}

fn close(conn: &quinn::Connection, code: CloseCode, reason: &str) {
    conn.close(VarInt::from_u32(code.code()), reason.as_bytes());
}

fn count_refusal(side: Side, remote: SocketAddr, e: &HandshakeError) {
    let reason = e.reason();
    let side = side_label(side);
    tracing::warn!(%remote, side, reason, error = %e, "relay handshake refused");
    metrics::counter!("arbor_relay_handshake_failures_total", "reason" => reason, "side" => side)
        .increment(1);
}

pub(crate) fn side_label(side: Side) -> &'static str {
    match side {
        Side::Client => "dial",
        Side::Server => "accept",
    }
}

/// A bounded label for a connection that failed: the TLS alert behind a crypto error, else
/// the error's class.
pub(crate) fn connection_failure_reason(e: &ConnectionError) -> &'static str {
    if let Some(alert) = tls_alert(e) {
        return tls_alert_name(alert);
    }
    match e {
        ConnectionError::VersionMismatch => "quic_version",
        ConnectionError::TransportError(_) | ConnectionError::ConnectionClosed(_) => "transport",
        ConnectionError::ApplicationClosed(_) => "closed_by_peer",
        ConnectionError::Reset => "reset",
        ConnectionError::TimedOut => "timeout",
        ConnectionError::LocallyClosed => "closed_locally",
        ConnectionError::CidsExhausted => "cids_exhausted",
    }
}

/// The TLS alert of a QUIC crypto error (codes 0x100..=0x1ff, RFC 9001 §4.8), raised by us
/// (`TransportError`) or by the peer (`ConnectionClosed`).
pub(crate) fn tls_alert(e: &ConnectionError) -> Option<u8> {
    let code = match e {
        ConnectionError::TransportError(t) => u64::from(t.code),
        ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        _ => return None,
    };
    code.checked_sub(0x100).and_then(|a| u8::try_from(a).ok())
}

/// RFC 8446 §6 alert names for the alerts a certificate or ALPN problem produces.
fn tls_alert_name(alert: u8) -> &'static str {
    match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        48 => "unknown_ca",
        49 => "access_denied",
        51 => "decrypt_error",
        70 => "protocol_version",
        80 => "internal_error",
        109 => "missing_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "tls_alert",
    }
}

/// The transport settings of a backbone link (both sides use the same).
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEPALIVE))
        .max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok())
        .initial_mtu(INITIAL_MTU)
        .initial_rtt(INITIAL_RTT)
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER_BYTES)
        .datagram_receive_buffer_size(Some(DATAGRAM_RECV_BUFFER_BYTES))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_PEER_BIDI_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        // quinn's default, stated: its BBR is experimental; the edge keeps media under the
        // window itself by dropping simulcast layers.
        .congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    t
}

/// aws-lc-rs, passed explicitly to every config: nothing depends on a process-wide default
/// provider, which panics when more than one rustls backend is compiled in.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Server side: TLS 1.3, client certificates required and checked against `roots`.
pub fn server_config(
    cert: &NodeCert,
    roots: Arc<RootCertStore>,
) -> Result<quinn::ServerConfig, EndpointError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert.chain().to_vec(), cert.key_der())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// Client side: TLS 1.3, servers checked against `roots`, our certificate offered.
pub fn client_config(
    cert: &NodeCert,
    roots: Arc<RootCertStore>,
) -> Result<quinn::ClientConfig, EndpointError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(cert.chain().to_vec(), cert.key_der())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}
