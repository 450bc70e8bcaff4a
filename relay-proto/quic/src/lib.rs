//! The quinn shell of Arbor's relay protocol: mutual TLS from a private CA, one QUIC
//! endpoint per node, and one task per link that drives a sans-IO [`relay_proto::Session`].
//!
//! Everything the protocol *decides* — the Hello exchange, keep-alive pings, RTT, the idle
//! timeout, close codes, the frame codec — lives in `relay-proto` and is tested there in
//! virtual time. This crate only moves bytes between that session and quinn, and adds what
//! only a shell can know: who the peer's certificate says it is.
//!
//! # How a node uses it
//!
//! Each process binds one [`RelayEndpoint`] (one UDP socket) that both dials and accepts.
//! An edge dials its tree neighbours and the origin, and accepts other edges; the origin
//! only accepts edges.
//!
//! ```no_run
//! # async fn node(cert: relay_quic::NodeCert, ca_pem: String, hello: relay_proto::Hello,
//! #     peer_addr: std::net::SocketAddr, peer: relay_proto::Role)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use relay_quic::{LinkConfig, LinkEvent, RelayEndpoint};
//!
//! let endpoint = RelayEndpoint::bind("0.0.0.0:7400".parse()?, &cert, &ca_pem)?;
//!
//! // Accepting: finish each handshake in its own task, then run a link on it.
//! let acceptor = endpoint.clone();
//! let accepted_hello = hello.clone();
//! tokio::spawn(async move {
//!     while let Some(incoming) = acceptor.accept().await {
//!         let hello = accepted_hello.clone();
//!         tokio::spawn(async move {
//!             // Refusals (no or wrong certificate, other ALPN) are logged and counted.
//!             let Ok(conn) = incoming.establish().await else { return };
//!             let (link, mut events) = relay_quic::spawn(conn, LinkConfig::new(hello));
//!             while let Some(event) = events.recv().await { /* as below */ }
//!         });
//!     }
//! });
//!
//! // Dialing: TLS checks that the server's certificate names `peer`.
//! let conn = endpoint.connect(peer_addr, &peer).await?;
//! let (link, mut events) = relay_quic::spawn(conn, LinkConfig::new(hello));
//! while let Some(event) = events.recv().await {
//!     match event {
//!         LinkEvent::Up(peer_hello) => { /* now send: link.send(..), link.send_datagram(..) */ }
//!         LinkEvent::Message(msg) => { /* a relay_proto::Control from the peer */ }
//!         LinkEvent::Datagram(bytes) => { /* relay_proto::decode_datagram(&bytes) */ }
//!         LinkEvent::Rtt(rtt) => { /* one Ping/Pong sample */ }
//!         LinkEvent::Down(why) => break, // last event; re-dial or re-route
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # The driving loop
//!
//! [`spawn`] starts one tokio task per link (module `driver`). The dialer opens the single
//! bidirectional control stream, the acceptor accepts it; then one `select!` loop:
//!
//! - control-stream bytes → `Session::handle_stream`; the session's `Output::Timeout` arms a
//!   timer → `Session::handle_timeout`; owner messages ([`LinkHandle::send`]) →
//!   `Session::send`; [`LinkHandle::close`] → `Session::close`;
//! - after every input the loop drains `Session::poll_output`: `Stream` bytes are buffered and
//!   written as the stream takes them, events go to the owner, `Close` closes the QUIC
//!   connection with the close code as application error code (the peer reads it as
//!   [`Down::Closed`]);
//! - on `Established` the shell compares the Hello's role with the certificate's node name:
//!   a mismatch closes with `Unauthorized` (logged, counted); a match emits [`LinkEvent::Up`].
//!   Nothing the owner sends leaves before that point.
//!
//! Datagrams bypass the session in both directions: [`LinkHandle::send_datagram`] calls
//! quinn's `send_datagram` at once (never `send_datagram_wait`: a full send buffer drops the
//! oldest media, not the newest), and received datagrams go to the owner with `try_send`,
//! dropped and counted when its queue ([`link::EVENT_QUEUE`]) is full, so a slow owner never
//! stalls the link. Control events are reliable: they wait, and while they wait the link
//! stops reading the control stream, which QUIC flow control pushes back to the peer.
//!
//! quinn sends every datagram before any stream data, so a link saturated with media can
//! starve its own control stream: the owner must keep media under the path's capacity.
//!
//! # TLS model
//!
//! Every node holds one certificate from a private CA (TLS 1.3, aws-lc-rs, passed explicitly
//! so no process-wide rustls provider is needed). The certificate names the node with one
//! DNS subject alternative name — `origin.arbor.internal` or `<edge-id>.edge.arbor.internal`
//! ([`pki`]) — and carries the extended key usages serverAuth and clientAuth. Client
//! certificates are required; a dialer uses the peer's node name as the TLS server name, so
//! TLS itself checks that it reached the node it meant; the acceptor reads the dialer's node
//! name from its certificate ([`peer_identity`]). The ALPN is `arbor-relay/1`.
//!
//! `arbor up` creates a dev CA and node certificates with [`Ca`] and writes them as PEM under
//! `<data>/pki` ([`PkiDir`]). In production operators provide `ca.pem` (one or more CA
//! certificates; several while a CA is rotated) and, per node, a chain and key from any CA
//! with the name and usages above; `docs/relay-tls.md` has the details.
//!
//! # Transport settings
//!
//! [`endpoint::transport_config`]: keep-alive 1 s under a 3 s idle timeout (a dead peer is
//! noticed in about 3 s), initial MTU 1452 (1414-byte datagrams from the first packet),
//! datagram send and receive buffers of 200 ms at 100 Mbit/s, initial RTT 100 ms, Cubic, and
//! one bidirectional stream per connection. UDP socket buffers are raised to 4 MiB.

pub mod driver;
pub mod endpoint;
pub mod link;
pub mod pki;

pub use endpoint::{EndpointError, HandshakeError, Incoming, PeerConnection, RelayEndpoint};
pub use link::{
    DatagramSendError, Down, LinkConfig, LinkCounters, LinkEvent, LinkHandle, LinkSendError, spawn,
};
pub use pki::{Ca, IdentityError, NodeCert, PkiDir, PkiError, peer_identity};
