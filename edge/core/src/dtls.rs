//! DTLS for every session of the process from one validated configuration.
//!
//! str0m's aws-lc-rs backend builds a fresh dimpl `Config` for each `Rtc`, and dimpl validates
//! its crypto provider on every build: ECDSA verifications for each cipher suite and complete
//! key exchanges on X25519, P-256 and P-384. That self-test is about 1.2 ms of CPU — four
//! times the whole join budget (DESIGN.md §6: ≤ 0.3 ms per join). The configuration does not
//! depend on the session (the certificate is passed per instance), so this provider builds it
//! once per MTU and hands every session a shared `Arc`. Everything else is dimpl as str0m
//! configures it: no server cookie (ICE has already proven return routability), the
//! session's MTU, DTLS 1.2 by default.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use str0m::config::{CryptoProvider, DtlsCert, DtlsVersion};
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, ProtocolVersion};

/// Most distinct MTUs cached (sessions of one edge all use the same one).
const MAX_CONFIGS: usize = 8;

/// A [`DtlsProvider`] whose dimpl configurations are validated once and shared.
#[derive(Debug)]
pub struct SharedDtls {
    configs: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>,
}

static SHARED: SharedDtls = SharedDtls {
    configs: Mutex::new(Vec::new()),
};

/// str0m's default crypto provider with [`SharedDtls`] in place of its DTLS provider.
pub fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        dtls_provider: &SHARED,
        ..str0m::crypto::from_feature_flags()
    }
}

impl SharedDtls {
    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self
            .configs
            .lock()
            .map_err(|_| CryptoError::Other("DTLS config cache poisoned".into()))?;
        if let Some((_, c)) = configs.iter().find(|(m, _)| *m == mtu) {
            return Ok(c.clone());
        }
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl config: {e}")))?,
        );
        if configs.len() < MAX_CONFIGS {
            configs.push((mtu, config.clone()));
        }
        Ok(config)
    }
}

impl DtlsProvider for SharedDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let cert = dimpl::DtlsCertificate {
            certificate: cert.certificate.clone(),
            private_key: cert.private_key.clone(),
        };
        let dtls = match dtls_version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            v => return Err(CryptoError::Other(format!("unsupported DTLS version {v}"))),
        };
        Ok(Box::new(Instance(dtls)))
    }
}

/// A dimpl session behind str0m's DTLS interface.
struct Instance(dimpl::Dtls);

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dimpl::Dtls")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}
