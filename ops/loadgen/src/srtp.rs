//! Which SRTP profile a client's DTLS handshake negotiated, and the profile a benchmark pins.
//!
//! str0m 0.25 does DTLS with dimpl 0.9, and neither lets a caller choose SRTP profiles: as a
//! DTLS client dimpl always offers `AEAD_AES_256_GCM`, `AEAD_AES_128_GCM` and
//! `AES128_CM_SHA1_80`, and as a server it always picks the first of those three that the
//! client offered. Janus (libsrtp2 with GCM) prefers `AEAD_AES_256_GCM` too, so every leg
//! between these stacks negotiates [`DEFAULT_PROFILE`] and no setting changes that. What a
//! client *can* do is find out: str0m does not report the profile, so [`crypto_provider`] wraps
//! str0m's DTLS provider and records the profile each session's handshake exports. A client
//! whose configuration pins a profile refuses the session when the handshake picked another
//! one, so a benchmark never silently compares two different ciphers.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use str0m::config::{CryptoProvider, DtlsCert, DtlsVersion};
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{
    DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, ProtocolVersion,
    SrtpProfile as DimplProfile,
};

/// The profile every str0m/dimpl and Janus leg negotiates (both prefer it and neither can be
/// told otherwise); the one a side-by-side benchmark pins.
pub const DEFAULT_PROFILE: SrtpProfile = SrtpProfile::AeadAes256Gcm;

/// A DTLS-SRTP protection profile (RFC 5764, RFC 7714), named as OpenSSL and Janus name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SrtpProfile {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag.
    #[serde(rename = "SRTP_AES128_CM_SHA1_80")]
    Aes128CmSha1_80,
    /// AES-128 GCM.
    #[serde(rename = "SRTP_AEAD_AES_128_GCM")]
    AeadAes128Gcm,
    /// AES-256 GCM.
    #[serde(rename = "SRTP_AEAD_AES_256_GCM")]
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Every profile str0m implements.
    pub const ALL: [SrtpProfile; 3] = [
        SrtpProfile::Aes128CmSha1_80,
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm,
    ];

    /// The OpenSSL name (`SRTP_AEAD_AES_256_GCM`), as Janus's Admin API reports it.
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmSha1_80 => "SRTP_AES128_CM_SHA1_80",
            SrtpProfile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
        }
    }

    /// The profile an OpenSSL name stands for; `None` for profiles str0m lacks (such as
    /// `SRTP_AES128_CM_SHA1_32`) and for anything else.
    pub fn from_name(name: &str) -> Option<SrtpProfile> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    fn code(self) -> u8 {
        match self {
            SrtpProfile::Aes128CmSha1_80 => 1,
            SrtpProfile::AeadAes128Gcm => 2,
            SrtpProfile::AeadAes256Gcm => 3,
        }
    }

    fn from_code(code: u8) -> Option<SrtpProfile> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    fn from_dimpl(p: DimplProfile) -> Option<SrtpProfile> {
        match p {
            DimplProfile::AES128_CM_SHA1_80 => Some(SrtpProfile::Aes128CmSha1_80),
            DimplProfile::AEAD_AES_128_GCM => Some(SrtpProfile::AeadAes128Gcm),
            DimplProfile::AEAD_AES_256_GCM => Some(SrtpProfile::AeadAes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The profile one session's handshake exported, readable by the client that owns the session.
#[derive(Debug, Clone, Default)]
pub struct NegotiatedProfile(Arc<AtomicU8>);

impl NegotiatedProfile {
    /// The profile, once the handshake has exported its keys.
    pub fn profile(&self) -> Option<SrtpProfile> {
        SrtpProfile::from_code(self.0.load(Ordering::Relaxed))
    }

    fn record(&self, p: DimplProfile) {
        if let Some(p) = SrtpProfile::from_dimpl(p) {
            self.0.store(p.code(), Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// The record of the DTLS session most recently created on this thread. str0m creates an
    /// `Rtc`'s DTLS session inside `RtcConfig::build`, on the caller's thread, so the caller
    /// takes it right after building ([`take_created`]).
    static CREATED: RefCell<Option<NegotiatedProfile>> = const { RefCell::new(None) };
}

/// str0m's crypto provider with a DTLS provider that records each session's SRTP profile.
pub fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        dtls_provider: &WATCH,
        ..str0m::crypto::from_feature_flags()
    }
}

/// The record of the DTLS session the last `Rtc` built on this thread with
/// [`crypto_provider`] created; `None` if there was none since the last call.
pub fn take_created() -> Option<NegotiatedProfile> {
    CREATED.with(|c| c.borrow_mut().take())
}

/// Wraps str0m's default DTLS provider.
#[derive(Debug)]
struct Watch;

static WATCH: Watch = Watch;

fn inner() -> &'static dyn DtlsProvider {
    str0m::crypto::from_feature_flags().dtls_provider
}

impl DtlsProvider for Watch {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        inner().generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let session = inner().new_dtls(cert, now, dtls_version, mtu)?;
        let negotiated = NegotiatedProfile::default();
        CREATED.with(|c| *c.borrow_mut() = Some(negotiated.clone()));
        Ok(Box::new(Watched {
            session,
            negotiated,
        }))
    }
}

/// A DTLS session that notes the SRTP profile as its keying material goes by.
#[derive(Debug)]
struct Watched {
    session: Box<dyn DtlsInstance>,
    negotiated: NegotiatedProfile,
}

impl DtlsInstance for Watched {
    fn set_active(&mut self, active: bool) {
        self.session.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.session.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.session.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(_, profile) = &out {
            self.negotiated.record(*profile);
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.session.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.session.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.session.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.session.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.session.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.session.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in SrtpProfile::ALL {
            assert_eq!(SrtpProfile::from_name(p.name()), Some(p));
            assert_eq!(SrtpProfile::from_code(p.code()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
        assert_eq!(SrtpProfile::from_name("SRTP_AES128_CM_SHA1_32"), None);
        assert_eq!(SrtpProfile::from_code(0), None);
    }

    #[test]
    fn building_an_rtc_leaves_its_record_for_the_caller() {
        let now = crate::test_epoch();
        assert!(take_created().is_none());
        let _rtc = str0m::Rtc::builder()
            .set_crypto_provider(Arc::new(crypto_provider()))
            .build(now);
        let record = take_created().expect("the build created a DTLS session");
        assert_eq!(record.profile(), None, "no handshake yet");
        assert!(take_created().is_none(), "taken once");
    }
}
