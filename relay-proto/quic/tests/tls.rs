//! Mutual TLS between real quinn endpoints on 127.0.0.1: who gets in and who is refused,
//! and certificates that travel through PEM files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::*;
use relay_proto::{ALPN, Role};
use relay_quic::pki::identity_of;
use relay_quic::{Ca, HandshakeError, NodeCert, PkiDir, RelayEndpoint};

const ORIGIN: Role = Role::Origin;

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_both_ways() {
    let ours = Ca::generate("our CA").unwrap();
    let theirs = Ca::generate("their CA").unwrap();
    let server = bind(&ours, &ORIGIN);

    // A client whose certificate comes from another CA (but who trusts the server's CA).
    let stranger = theirs.issue(&edge("x")).unwrap();
    let client = RelayEndpoint::bind(local(), &stranger, ours.cert_pem()).unwrap();
    let addr = server.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(
        async {
            // TLS 1.3: the client may finish its side first and learn of the refusal after.
            match client.connect(addr, &ORIGIN).await {
                Err(e) => e,
                Ok(peer) => HandshakeError::Connection(peer.conn.closed().await),
            }
        },
        accept_one(&server)
    );
    let refused = accepted.expect_err("the server refuses an unknown CA");
    assert_eq!(refused.reason(), "unknown_ca", "{refused}");
    assert_eq!(dialed.reason(), "unknown_ca", "{dialed}");

    // The other way round: a client that does not trust the server's CA refuses it.
    let wary =
        RelayEndpoint::bind(local(), &ours.issue(&edge("y")).unwrap(), theirs.cert_pem()).unwrap();
    let (dialed, accepted) = tokio::join!(wary.connect(addr, &ORIGIN), accept_one(&server));
    let refused = dialed.expect_err("the client refuses a server from an unknown CA");
    assert_eq!(refused.reason(), "unknown_ca", "{refused}");
    assert!(accepted.is_err());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let server = bind(&ca, &ORIGIN);
    let client = raw_client(ca.cert_pem(), None, ALPN);
    let addr = server.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(
        client_refused(client.connect(addr, "origin.arbor.internal")),
        accept_one(&server)
    );
    let refused = accepted.expect_err("no client certificate");
    assert_eq!(refused.reason(), "certificate_required", "{refused}");
    let dialed = HandshakeError::Connection(dialed);
    assert_eq!(dialed.reason(), "certificate_required", "{dialed}");
}

#[tokio::test]
async fn a_peer_speaking_another_alpn_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let server = bind(&ca, &ORIGIN);
    let cert = ca.issue(&edge("a")).unwrap();
    let client = raw_client(ca.cert_pem(), Some(&cert), b"h3");
    let addr = server.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(
        client.connect(addr, "origin.arbor.internal").unwrap(),
        accept_one(&server)
    );
    let refused = accepted.expect_err("wrong ALPN");
    assert_eq!(refused.reason(), "no_application_protocol", "{refused}");
    let dialed = HandshakeError::Connection(dialed.expect_err("wrong ALPN"));
    assert_eq!(dialed.reason(), "no_application_protocol", "{dialed}");
}

#[tokio::test]
async fn the_dialer_checks_that_it_reached_the_node_it_meant() {
    let ca = Ca::generate("test CA").unwrap();
    let server = bind(&ca, &edge("b"));
    let client = bind(&ca, &edge("a"));
    let addr = server.local_addr().unwrap();
    // Edge b answers at the address where the dialer expected edge c.
    let c = edge("c");
    let (dialed, _accepted) = tokio::join!(client.connect(addr, &c), accept_one(&server));
    let refused = dialed.expect_err("server name mismatch");
    assert!(
        matches!(refused, HandshakeError::Connection(_)),
        "{refused}"
    );
    // A name a certificate cannot carry is refused before dialing.
    let bad = client.connect(addr, &edge("Upper")).await.unwrap_err();
    assert_eq!(bad.reason(), "bad_peer_name");
}

#[tokio::test]
async fn a_ca_is_rotated_by_reloading_certificates_and_bundles() {
    let old = Ca::generate("old CA").unwrap();
    let new = Ca::generate("new CA").unwrap();
    let server = bind(&old, &ORIGIN);
    let addr = server.local_addr().unwrap();
    // Every node first trusts both CAs; the server then moves to a certificate from the new.
    let both = format!("{}{}", old.cert_pem(), new.cert_pem());
    server.reload(&new.issue(&ORIGIN).unwrap(), &both).unwrap();
    // A client still on the old CA's certificate, already trusting only the new CA.
    let client =
        RelayEndpoint::bind(local(), &old.issue(&edge("a")).unwrap(), new.cert_pem()).unwrap();
    let (dialed, accepted) = tokio::join!(client.connect(addr, &ORIGIN), accept_one(&server));
    assert_eq!(dialed.unwrap().identity, ORIGIN);
    assert_eq!(accepted.unwrap().identity, edge("a"));
    // A reload cannot turn the origin into an edge.
    let other = server.reload(&new.issue(&edge("z")).unwrap(), &both);
    assert!(matches!(
        other,
        Err(relay_quic::EndpointError::IdentityChanged { .. })
    ));
}

#[tokio::test]
async fn certificates_round_trip_through_pem_files() {
    let dir = std::env::temp_dir().join(format!("arbor-relay-quic-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = PkiDir::new(&dir);
    let (a, b) = (edge("eu-1.a"), ORIGIN);

    // `arbor up`: a CA and one certificate per node, on disk.
    let ca = Ca::generate("dev CA").unwrap();
    ca.to_pem_files(&pki.ca_cert(), &pki.ca_key()).unwrap();
    ca.issue(&a)
        .unwrap()
        .to_pem_files(&pki.node_cert(&a), &pki.node_key(&a))
        .unwrap();
    // Later, the CA is read back to issue another node's certificate.
    let reread = Ca::from_pem_files(&pki.ca_cert(), &pki.ca_key()).unwrap();
    reread
        .issue(&b)
        .unwrap()
        .to_pem_files(&pki.node_cert(&b), &pki.node_key(&b))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.node_key(&a))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }

    // Each node process reads its own files.
    let load = |role: &Role| NodeCert::from_pem_files(&pki.node_cert(role), &pki.node_key(role));
    let (cert_a, cert_b) = (load(&a).unwrap(), load(&b).unwrap());
    assert_eq!(cert_a.role(), &a);
    assert_eq!(identity_of(&leaf(&cert_b)).unwrap(), b);
    let ca_pem = std::fs::read_to_string(pki.ca_cert()).unwrap();
    let ep_a = RelayEndpoint::bind(local(), &cert_a, &ca_pem).unwrap();
    let ep_b = RelayEndpoint::bind(local(), &cert_b, &ca_pem).unwrap();
    let mut p = pair_with(&ep_a, &ep_b, hello(&a), hello(&b)).await;
    assert_eq!(expect_up(&mut p.dialer_events).await, hello(&b));
    assert_eq!(expect_up(&mut p.acceptor_events).await, hello(&a));

    // Files that are not what they claim are errors, not panics.
    let missing: PathBuf = dir.join("nope.pem");
    assert!(NodeCert::from_pem_files(&missing, &pki.node_key(&a)).is_err());
    assert!(NodeCert::from_pem_files(&pki.node_key(&a), &pki.node_key(&a)).is_err());
    assert!(NodeCert::from_pem_files(&pki.node_cert(&a), &pki.node_cert(&a)).is_err());
    assert!(RelayEndpoint::bind(local(), &cert_a, "not a certificate").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
