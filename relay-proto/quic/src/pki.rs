//! Certificates: the node naming scheme, a dev CA, PEM files, and reading a peer's identity.
//!
//! Every node of the backbone holds one certificate from a private CA whose subject
//! alternative names include exactly one *node name* (a DNS name):
//!
//! | node | DNS SAN |
//! |---|---|
//! | the origin | `origin.arbor.internal` |
//! | edge `<id>` | `<id>.edge.arbor.internal` |
//!
//! Edge ids in certificates must be DNS-safe: lowercase letters, digits, `-`, `_` and `.`
//! (each dot-separated label 1..=63 bytes, not starting or ending with `-`). The certificate
//! must carry the extended key usages serverAuth *and* clientAuth, because every node both
//! dials and accepts. A dialer asks for the peer's node name as TLS server name, so the TLS
//! layer itself checks that it reached the node it meant; an acceptor reads the client's node
//! name with [`peer_identity`] and the link compares it with the peer's `Hello`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use relay_proto::{EdgeId, Role};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use x509_parser::extensions::GeneralName;

/// The DNS suffix of every node name; the dev CA may only issue names under it.
pub const NODE_DOMAIN: &str = "arbor.internal";
/// The origin's node name.
pub const ORIGIN_NAME: &str = "origin.arbor.internal";
/// The suffix of an edge's node name, after `<edge-id>`.
pub const EDGE_SUFFIX: &str = ".edge.arbor.internal";
/// Longest certificate chain read from a node's PEM file (leaf + intermediates).
pub const MAX_CHAIN_LEN: usize = 8;
/// Most CA certificates read from a roots file (more than one while a CA is rotated).
pub const MAX_ROOTS: usize = 16;
/// Longest PEM file read (certificates and keys are a few kilobytes).
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why a certificate, key or node name was refused.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{role:?} has no DNS-safe node name (lowercase letters, digits, '-', '_', '.')")]
    NotDnsSafe { role: Role },
    #[error("certificate or key: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{what}: bad PEM: {detail}")]
    Pem { what: String, detail: String },
    #[error("{what}: no {kind} found")]
    Missing { what: String, kind: &'static str },
    #[error("{what}: more than {max} certificates")]
    TooMany { what: String, max: usize },
    #[error("CA certificate refused as a trust anchor: {0}")]
    Root(rustls::Error),
    #[error("certificate identity: {0}")]
    Identity(#[from] IdentityError),
}

/// Why a certificate does not name exactly one node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the peer presented no certificate")]
    NoCertificate,
    #[error("the certificate cannot be parsed")]
    Unparsable,
    #[error(
        "the certificate has no DNS name of the form origin.{NODE_DOMAIN} or <edge>{EDGE_SUFFIX}"
    )]
    NoNodeName,
    #[error("the certificate names more than one node")]
    Ambiguous,
}

/// The node name of `role`, as a TLS server name.
pub fn node_name(role: &Role) -> Result<ServerName<'static>, PkiError> {
    let name = match role {
        Role::Origin => ORIGIN_NAME.to_owned(),
        Role::Edge(id) => format!("{}{EDGE_SUFFIX}", id.as_str()),
    };
    let lowercase = !name.bytes().any(|b| b.is_ascii_uppercase());
    match ServerName::try_from(name) {
        Ok(name @ ServerName::DnsName(_)) if lowercase => Ok(name),
        _ => Err(PkiError::NotDnsSafe { role: role.clone() }),
    }
}

/// The node named by a DNS name, if it is one (the inverse of [`node_name`]).
pub fn role_of_name(name: &str) -> Option<Role> {
    if name == ORIGIN_NAME {
        return Some(Role::Origin);
    }
    let id = EdgeId::new(name.strip_suffix(EDGE_SUFFIX)?).ok()?;
    let role = Role::Edge(id);
    // Only names that `node_name` would produce: one spelling per node.
    match node_name(&role) {
        Ok(ServerName::DnsName(dns)) if dns.as_ref() == name => Some(role),
        _ => None,
    }
}

/// The node named by a DER certificate's DNS subject alternative names.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Role, IdentityError> {
    let (_, x509) =
        x509_parser::parse_x509_certificate(cert).map_err(|_| IdentityError::Unparsable)?;
    let san = x509
        .subject_alternative_name()
        .map_err(|_| IdentityError::Unparsable)?
        .ok_or(IdentityError::NoNodeName)?;
    let mut found = None;
    for general in &san.value.general_names {
        let GeneralName::DNSName(dns) = general else {
            continue;
        };
        let Some(role) = role_of_name(dns) else {
            continue;
        };
        match &found {
            Some(seen) if *seen != role => return Err(IdentityError::Ambiguous),
            _ => found = Some(role),
        }
    }
    found.ok_or(IdentityError::NoNodeName)
}

/// The verified identity of the node at the other end of an established connection.
///
/// The handshake already checked the chain against the CA; this reads the node name from the
/// leaf certificate.
pub fn peer_identity(conn: &quinn::Connection) -> Result<Role, IdentityError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(IdentityError::NoCertificate)?;
    identity_of(chain.first().ok_or(IdentityError::NoCertificate)?)
}

/// The trust anchors in a PEM text of one or more CA certificates.
pub fn roots_from_pem(ca_pem: &str) -> Result<RootCertStore, PkiError> {
    let what = "CA certificates";
    let certs = certs_from_pem(ca_pem.as_bytes(), what, MAX_ROOTS)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(PkiError::Root)?;
    }
    Ok(roots)
}

/// A private certificate authority that issues node certificates (`arbor up`, tests).
///
/// Its certificate is name-constrained to [`NODE_DOMAIN`], so even a leaked dev CA key cannot
/// vouch for any other domain.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// A new CA with a fresh P-256 key; `name` is its common name (shown in tools).
    pub fn generate(name: &str) -> Result<Ca, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(NODE_DOMAIN.to_owned())],
            excluded_subtrees: Vec::new(),
        });
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
        })
    }

    /// Issues a certificate for `node` (serverAuth + clientAuth, its node name as DNS SAN).
    pub fn issue(&self, node: &Role) -> Result<NodeCert, PkiError> {
        let ServerName::DnsName(dns) = node_name(node)? else {
            return Err(PkiError::NotDnsSafe { role: node.clone() });
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, dns.as_ref());
        params.subject_alt_names = vec![SanType::DnsName(dns.as_ref().try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            role: node.clone(),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// The CA certificate, PEM: what every node trusts (`ca_pem` of
    /// [`crate::RelayEndpoint::bind`]).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the certificate and the private key (mode 0600 on Unix).
    pub fn to_pem_files(&self, cert: &Path, key: &Path) -> Result<(), PkiError> {
        write_file(cert, self.cert_pem.as_bytes(), false)?;
        write_file(key, self.issuer.key().serialize_pem().as_bytes(), true)
    }

    /// Reads a CA written by [`Ca::to_pem_files`] (or any CA whose key rcgen can load), to
    /// issue more node certificates later.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Ca, PkiError> {
        let cert_pem = read_text(cert)?;
        let key = KeyPair::from_pem(&read_text(key)?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Ca { issuer, cert_pem })
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// One node's certificate chain and private key; the identity is read from the leaf.
pub struct NodeCert {
    role: Role,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl NodeCert {
    /// The node this certificate names.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Leaf first, then intermediates.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key (for building a TLS configuration this crate does not).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Writes the chain (leaf first) and the private key (PKCS#8, mode 0600 on Unix).
    pub fn to_pem_files(&self, cert: &Path, key: &Path) -> Result<(), PkiError> {
        let mut pem = String::new();
        for der in &self.chain {
            pem.push_str(&pem_block("CERTIFICATE", der));
        }
        write_file(cert, pem.as_bytes(), false)?;
        write_file(
            key,
            pem_block("PRIVATE KEY", self.key.secret_der()).as_bytes(),
            true,
        )
    }

    /// Reads a chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1), from any CA.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<NodeCert, PkiError> {
        let chain = certs_from_pem(
            read_text(cert)?.as_bytes(),
            &cert.display().to_string(),
            MAX_CHAIN_LEN,
        )?;
        let what = key.display().to_string();
        let key = PrivateKeyDer::from_pem_slice(read_text(key)?.as_bytes())
            .map_err(|e| pem_error(&what, "private key", e))?;
        let role = identity_of(&chain[0])?;
        Ok(NodeCert { role, chain, key })
    }
}

impl Clone for NodeCert {
    fn clone(&self) -> NodeCert {
        NodeCert {
            role: self.role.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("NodeCert")
            .field("role", &self.role)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The file layout `arbor up` writes under `<data>/pki`, which operators may mirror.
#[derive(Debug, Clone)]
pub struct PkiDir {
    dir: PathBuf,
}

impl PkiDir {
    /// The layout under `dir` (usually `<data>/pki`).
    pub fn new(dir: impl Into<PathBuf>) -> PkiDir {
        PkiDir { dir: dir.into() }
    }

    /// `ca.pem`: the CA certificate(s) every node trusts.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `ca.key`: the dev CA's key (production keeps its CA key elsewhere).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// `origin.pem` or `edge-<id>.pem`.
    pub fn node_cert(&self, node: &Role) -> PathBuf {
        self.dir.join(format!("{}.pem", file_stem(node)))
    }

    /// `origin.key` or `edge-<id>.key`.
    pub fn node_key(&self, node: &Role) -> PathBuf {
        self.dir.join(format!("{}.key", file_stem(node)))
    }
}

fn file_stem(node: &Role) -> String {
    match node {
        Role::Origin => "origin".to_owned(),
        Role::Edge(id) => format!("edge-{id}"),
    }
}

fn certs_from_pem(
    pem: &[u8],
    what: &str,
    max: usize,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        if certs.len() == max {
            return Err(PkiError::TooMany {
                what: what.to_owned(),
                max,
            });
        }
        certs.push(cert.map_err(|e| pem_error(what, "certificate", e))?);
    }
    if certs.is_empty() {
        return Err(PkiError::Missing {
            what: what.to_owned(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

fn pem_error(what: &str, kind: &'static str, e: rustls::pki_types::pem::Error) -> PkiError {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => PkiError::Missing {
            what: what.to_owned(),
            kind,
        },
        e => PkiError::Pem {
            what: what.to_owned(),
            detail: format!("{e:?}"),
        },
    }
}

/// RFC 7468 text: base64 in 64-column lines between BEGIN and END markers.
fn pem_block(tag: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    // Base64 text is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

fn read_text(path: &Path) -> Result<String, PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    if fs::metadata(path).map_err(io)?.len() > MAX_PEM_BYTES {
        return Err(PkiError::TooLarge {
            path: path.to_owned(),
        });
    }
    fs::read_to_string(path).map_err(io)
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(id: &str) -> Role {
        Role::Edge(EdgeId::new(id).unwrap())
    }

    fn self_signed(names: &[&str]) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.der().clone()
    }

    #[test]
    fn node_names_round_trip() {
        for (role, name) in [
            (Role::Origin, "origin.arbor.internal"),
            (edge("a"), "a.edge.arbor.internal"),
            (edge("eu-west.7"), "eu-west.7.edge.arbor.internal"),
            (edge("edge_1"), "edge_1.edge.arbor.internal"),
        ] {
            let ServerName::DnsName(dns) = node_name(&role).unwrap() else {
                panic!("{role:?} is not a DNS name");
            };
            assert_eq!(dns.as_ref(), name);
            assert_eq!(role_of_name(name), Some(role));
        }
    }

    #[test]
    fn names_a_certificate_cannot_carry_are_refused() {
        for id in ["Upper", "-lead", "a..b", &"x".repeat(64)] {
            assert!(node_name(&edge(id)).is_err(), "{id}");
        }
        for name in [
            "A.edge.arbor.internal",
            ".edge.arbor.internal",
            "edge.arbor.internal",
            "a.edge.arbor.internal.evil",
            "origin.example.com",
        ] {
            assert_eq!(role_of_name(name), None, "{name}");
        }
    }

    #[test]
    fn identity_needs_exactly_one_node() {
        let one = self_signed(&["a.edge.arbor.internal", "localhost"]);
        assert_eq!(identity_of(&one), Ok(edge("a")));
        let two = self_signed(&["a.edge.arbor.internal", "b.edge.arbor.internal"]);
        assert_eq!(identity_of(&two), Err(IdentityError::Ambiguous));
        let none = self_signed(&["localhost"]);
        assert_eq!(identity_of(&none), Err(IdentityError::NoNodeName));
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert_eq!(identity_of(&garbage), Err(IdentityError::Unparsable));
    }

    #[test]
    fn issued_certificates_name_their_node() {
        let ca = Ca::generate("unit CA").unwrap();
        let cert = ca.issue(&edge("b")).unwrap();
        assert_eq!(cert.role(), &edge("b"));
        assert_eq!(identity_of(&cert.chain()[0]), Ok(edge("b")));
        assert!(matches!(
            ca.issue(&edge("B")),
            Err(PkiError::NotDnsSafe { .. })
        ));
        assert_eq!(roots_from_pem(ca.cert_pem()).unwrap().len(), 1);
        assert!(matches!(roots_from_pem(""), Err(PkiError::Missing { .. })));
    }

    #[test]
    fn pem_blocks_are_rfc7468() {
        let der: Vec<u8> = (0..=255).collect();
        let pem = pem_block("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_slice());
    }
}
