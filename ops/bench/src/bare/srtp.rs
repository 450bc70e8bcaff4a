//! SRTP for RTP packets, in place, on aws-lc-rs: RFC 7714 `AEAD_AES_128_GCM` and
//! `AEAD_AES_256_GCM`, and RFC 3711 `AES_CM_128_HMAC_SHA1_80`.
//!
//! An [`SrtpContext`] is one direction of one DTLS-SRTP session: session keys derived once from
//! a [`MasterKey`] (RFC 3711 §4.3), and per SSRC the highest packet index seen (which gives the
//! rollover counter) and, on the receiving side, a replay window. Both calls work in the
//! caller's buffer and allocate nothing per packet:
//!
//! ```
//! # use arbor_bench::bare::srtp::{MasterKey, SrtpContext};
//! # use arbor_loadgen::SrtpProfile;
//! let master = MasterKey::new(SrtpProfile::AeadAes128Gcm, &[7; 16], &[9; 12]).unwrap();
//! let (mut tx, mut rx) = (SrtpContext::new(&master).unwrap(), SrtpContext::new(&master).unwrap());
//! let mut buf = [0u8; 1500];
//! let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 42, b'h', b'i'];
//! buf[..rtp.len()].copy_from_slice(&rtp);
//! let len = tx.protect_rtp(&mut buf, rtp.len()).unwrap(); // header, ciphertext, tag
//! let len = rx.unprotect_rtp(&mut buf[..len]).unwrap(); // back to the plain packet
//! assert_eq!(&buf[..len], &rtp);
//! ```
//!
//! Only RTP: the bare forwarder sends and receives no RTCP. Master key index (MKI) and
//! key derivation rates other than zero are not supported; DTLS-SRTP uses neither.

use std::fmt;

use arbor_loadgen::SrtpProfile;
use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{constant_time, hmac};
use rand::RngCore;
use thiserror::Error;

use super::rtp::{Header, RtpError, extend_seq};

/// SSRCs one context keeps state for; a packet of one more is refused, not tracked.
pub const MAX_STREAMS: usize = 8;

/// Packets older than the highest index by this much or more are refused as replays
/// (RFC 3711 §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: u64 = 128;

/// Longest authentication tag of any profile: what a buffer must leave free after a packet.
pub const MAX_TAG_LEN: usize = 16;

/// KDF labels for SRTP (RFC 3711 §4.3.1); SRTCP's are not needed.
const LABEL_ENCRYPTION: u8 = 0;
const LABEL_AUTHENTICATION: u8 = 1;
const LABEL_SALT: u8 = 2;

/// HMAC-SHA1 key length of `AES_CM_128_HMAC_SHA1_80`.
const AUTH_KEY_LEN: usize = 20;

/// A packet the context refuses, or keys it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// The packet's RTP header is malformed or does not fit.
    #[error("not an RTP packet: {0}")]
    Rtp(#[from] RtpError),
    /// The caller's buffer has no room for the tag after the packet.
    #[error("no room for the {0}-byte tag after the packet")]
    NoRoom(usize),
    /// The tag does not match: a forged, damaged or wrongly keyed packet.
    #[error("authentication failed")]
    AuthFailed,
    /// Already received, or older than the replay window.
    #[error("replayed, or older than the replay window")]
    Replayed,
    /// A new SSRC on a context that already tracks [`MAX_STREAMS`].
    #[error("more than {MAX_STREAMS} SSRCs on one context")]
    TooManyStreams,
    /// A master key or salt of the wrong length for the profile.
    #[error("a {what} of {len} bytes; the profile needs {want}")]
    KeyLength {
        /// `"master key"` or `"master salt"`.
        what: &'static str,
        /// Length given.
        len: usize,
        /// Length the profile needs.
        want: usize,
    },
    /// aws-lc-rs refused a key or an operation that valid lengths cannot fail.
    #[error("the crypto library refused the operation")]
    Crypto,
}

/// Master key length of a profile.
pub const fn master_key_len(profile: SrtpProfile) -> usize {
    match profile {
        SrtpProfile::Aes128CmSha1_80 | SrtpProfile::AeadAes128Gcm => 16,
        SrtpProfile::AeadAes256Gcm => 32,
    }
}

/// Master (and session) salt length of a profile.
pub const fn master_salt_len(profile: SrtpProfile) -> usize {
    match profile {
        SrtpProfile::Aes128CmSha1_80 => 14,
        SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
    }
}

/// Authentication tag length of a profile.
pub const fn tag_len(profile: SrtpProfile) -> usize {
    match profile {
        SrtpProfile::Aes128CmSha1_80 => 10,
        SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 16,
    }
}

/// A master key and salt, as DTLS-SRTP exports them for one direction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    profile: SrtpProfile,
    key: [u8; 32],
    salt: [u8; 14],
}

impl MasterKey {
    /// A master key of `profile`; the lengths must be the profile's.
    pub fn new(profile: SrtpProfile, key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        let (want_key, want_salt) = (master_key_len(profile), master_salt_len(profile));
        if key.len() != want_key {
            return Err(SrtpError::KeyLength {
                what: "master key",
                len: key.len(),
                want: want_key,
            });
        }
        if salt.len() != want_salt {
            return Err(SrtpError::KeyLength {
                what: "master salt",
                len: salt.len(),
                want: want_salt,
            });
        }
        let mut m = MasterKey {
            profile,
            key: [0; 32],
            salt: [0; 14],
        };
        m.key[..want_key].copy_from_slice(key);
        m.salt[..want_salt].copy_from_slice(salt);
        Ok(m)
    }

    /// A master key of `profile` drawn from `rng` (seeded by the caller, so runs replay).
    pub fn random(profile: SrtpProfile, rng: &mut impl RngCore) -> Self {
        let mut m = MasterKey {
            profile,
            key: [0; 32],
            salt: [0; 14],
        };
        rng.fill_bytes(&mut m.key[..master_key_len(profile)]);
        rng.fill_bytes(&mut m.salt[..master_salt_len(profile)]);
        m
    }

    /// The profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// The key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key[..master_key_len(self.profile)]
    }

    /// The salt bytes.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..master_salt_len(self.profile)]
    }

    /// RFC 3711 §4.3.1 with a key derivation rate of 0: AES-CM keyed with the master key (AES-256
    /// for a 256-bit key, RFC 6188), counter `(salt XOR label << 48) << 16`, the keystream
    /// is the session key. A 96-bit GCM salt is padded with zeros on the right (RFC 7714 §11).
    fn derive(&self, label: u8, out: &mut [u8]) -> Result<(), SrtpError> {
        let aes = if self.key().len() == 32 {
            &AES_256
        } else {
            &AES_128
        };
        let key = UnboundCipherKey::new(aes, self.key()).map_err(|_| SrtpError::Crypto)?;
        let key = EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?;
        let mut counter = [0u8; 16];
        counter[..14].copy_from_slice(&self.salt);
        counter[7] ^= label;
        out.fill(0);
        key.less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(counter)))
            .map_err(|_| SrtpError::Crypto)?;
        Ok(())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Session keys of one profile.
// One per context: boxing the larger variant would only add an indirection per packet.
#[allow(clippy::large_enum_variant)]
enum Transform {
    Gcm {
        key: LessSafeKey,
        salt: [u8; 12],
    },
    Cm {
        key: EncryptingKey,
        salt: [u8; 14],
        auth: hmac::Key,
    },
}

/// What a context knows of one SSRC.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Highest packet index (ROC << 16 | SEQ) protected or authenticated.
    highest: u64,
    /// Bit `n` set: index `highest - n` was received (receiving side only).
    window: u128,
}

impl Stream {
    fn check_replay(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= REPLAY_WINDOW || self.window & (1 << age) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.window = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.highest = index;
        } else {
            self.window |= 1 << (self.highest - index);
        }
    }
}

/// One direction of an SRTP session: protects or unprotects RTP in the caller's buffer.
pub struct SrtpContext {
    profile: SrtpProfile,
    transform: Transform,
    streams: Vec<Stream>,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context with session keys derived from `master`.
    pub fn new(master: &MasterKey) -> Result<Self, SrtpError> {
        let profile = master.profile();
        let mut key = [0u8; 32];
        let key = &mut key[..master_key_len(profile)];
        let mut salt = [0u8; 14];
        let salt = &mut salt[..master_salt_len(profile)];
        let mut auth = [0u8; AUTH_KEY_LEN];
        master.derive(LABEL_ENCRYPTION, key)?;
        master.derive(LABEL_SALT, salt)?;
        master.derive(LABEL_AUTHENTICATION, &mut auth)?;
        Self::with_session_keys(profile, key, salt, &auth)
    }

    /// A context with the session keys given (RFC 7714's test vectors start from these).
    fn with_session_keys(
        profile: SrtpProfile,
        key: &[u8],
        salt: &[u8],
        auth: &[u8],
    ) -> Result<Self, SrtpError> {
        let transform = match profile {
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => {
                let aead = if profile == SrtpProfile::AeadAes128Gcm {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                let key = UnboundKey::new(aead, key).map_err(|_| SrtpError::Crypto)?;
                Transform::Gcm {
                    key: LessSafeKey::new(key),
                    salt: salt.try_into().map_err(|_| SrtpError::Crypto)?,
                }
            }
            SrtpProfile::Aes128CmSha1_80 => {
                let key = UnboundCipherKey::new(&AES_128, key).map_err(|_| SrtpError::Crypto)?;
                Transform::Cm {
                    key: EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?,
                    salt: salt.try_into().map_err(|_| SrtpError::Crypto)?,
                    auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
                }
            }
        };
        Ok(SrtpContext {
            profile,
            transform,
            streams: Vec::with_capacity(MAX_STREAMS),
        })
    }

    /// The profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Bytes [`SrtpContext::protect_rtp`] adds to a packet.
    pub fn tag_len(&self) -> usize {
        tag_len(self.profile)
    }

    /// Encrypts the RTP packet in `buf[..len]` and appends its tag; returns the SRTP length.
    ///
    /// The rollover counter follows the sequence numbers of the SSRC: send in order (or
    /// nearly, within half the sequence space), as an RTP sender does.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag = self.tag_len();
        let packet = buf.get(..len).ok_or(SrtpError::NoRoom(tag))?;
        let h = Header::parse(packet)?;
        if buf.len() < len + tag {
            return Err(SrtpError::NoRoom(tag));
        }
        let slot = self.slot(h.ssrc)?;
        let index = slot.map_or(u64::from(h.seq), |i| {
            extend_seq(self.streams[i].highest, h.seq)
        });
        match &self.transform {
            Transform::Gcm { key, salt } => {
                let nonce = Nonce::assume_unique_for_key(gcm_iv(salt, h.ssrc, index));
                let (head, body) = buf.split_at_mut(h.len);
                let payload_len = len - h.len;
                let sealed = key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*head), &mut body[..payload_len])
                    .map_err(|_| SrtpError::Crypto)?;
                body[payload_len..payload_len + tag].copy_from_slice(sealed.as_ref());
            }
            Transform::Cm { key, salt, auth } => {
                aes_cm(key, salt, h.ssrc, index, &mut buf[h.len..len])?;
                let mac = hmac_sha1(auth, &buf[..len], index);
                buf[len..len + tag].copy_from_slice(&mac.as_ref()[..tag]);
            }
        }
        match slot {
            Some(i) => self.streams[i].highest = self.streams[i].highest.max(index),
            None => self.streams.push(Stream {
                ssrc: h.ssrc,
                highest: index,
                window: 1,
            }),
        }
        Ok(len + tag)
    }

    /// Authenticates and decrypts the SRTP packet that fills `buf`; returns the length of the
    /// plain RTP packet now at its start. Nothing about the stream changes unless the packet
    /// authenticates.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag = self.tag_len();
        let end = buf
            .len()
            .checked_sub(tag)
            .ok_or(RtpError::Truncated(buf.len()))?;
        let h = Header::parse(&buf[..end])?;
        let slot = self.slot(h.ssrc)?;
        let index = match slot {
            Some(i) => {
                let s = self.streams[i];
                let index = extend_seq(s.highest, h.seq);
                s.check_replay(index)?;
                index
            }
            None => u64::from(h.seq),
        };
        match &self.transform {
            Transform::Gcm { key, salt } => {
                let nonce = Nonce::assume_unique_for_key(gcm_iv(salt, h.ssrc, index));
                let (head, body) = buf.split_at_mut(h.len);
                key.open_in_place(nonce, Aad::from(&*head), body)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
            Transform::Cm { key, salt, auth } => {
                let mac = hmac_sha1(auth, &buf[..end], index);
                constant_time::verify_slices_are_equal(&mac.as_ref()[..tag], &buf[end..])
                    .map_err(|_| SrtpError::AuthFailed)?;
                aes_cm(key, salt, h.ssrc, index, &mut buf[h.len..end])?;
            }
        }
        match slot {
            Some(i) => self.streams[i].accept(index),
            None => self.streams.push(Stream {
                ssrc: h.ssrc,
                highest: index,
                window: 1,
            }),
        }
        Ok(end)
    }

    /// The stream of `ssrc`: `Some(position)` if known, `None` if there is room for it.
    fn slot(&self, ssrc: u32) -> Result<Option<usize>, SrtpError> {
        match self.streams.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => Ok(Some(i)),
            None if self.streams.len() < MAX_STREAMS => Ok(None),
            None => Err(SrtpError::TooManyStreams),
        }
    }
}

/// RFC 7714 §8.1: `(0x0000 || SSRC || ROC || SEQ) XOR salt`.
fn gcm_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv
}

/// RFC 3711 §4.1.1: XORs `data` with the AES-CM keystream for packet `index` of `ssrc`,
/// counter `(salt << 16) XOR (SSRC << 64) XOR (index << 16)`.
fn aes_cm(
    key: &EncryptingKey,
    salt: &[u8; 14],
    ssrc: u32,
    index: u64,
    data: &mut [u8],
) -> Result<(), SrtpError> {
    let mut counter = [0u8; 16];
    counter[..14].copy_from_slice(salt);
    for (b, x) in counter[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= x;
    }
    for (b, x) in counter[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= x;
    }
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(counter)))
        .map_err(|_| SrtpError::Crypto)?;
    Ok(())
}

/// RFC 3711 §4.2: HMAC-SHA1 over the authenticated portion and the 32-bit ROC.
fn hmac_sha1(key: &hmac::Key, authenticated: &[u8], index: u64) -> hmac::Tag {
    let roc = (index >> 16) as u32;
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(authenticated);
    ctx.update(&roc.to_be_bytes());
    ctx.sign()
}

#[cfg(test)]
mod tests;
