//! Known-answer vectors (RFC 3711 Appendix B, RFC 7714 §16, libsrtp's `srtp_validate`),
//! round trips, tampering, replay and rollover.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Protects `plain` with `ctx` and returns the SRTP packet.
fn protect(ctx: &mut SrtpContext, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = vec![0u8; plain.len() + MAX_TAG_LEN];
    buf[..plain.len()].copy_from_slice(plain);
    let n = ctx.protect_rtp(&mut buf, plain.len())?;
    buf.truncate(n);
    Ok(buf)
}

/// Unprotects `srtp` with `ctx` and returns the RTP packet.
fn unprotect(ctx: &mut SrtpContext, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = srtp.to_vec();
    let n = ctx.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn pair(master: &MasterKey) -> (SrtpContext, SrtpContext) {
    (
        SrtpContext::new(master).unwrap(),
        SrtpContext::new(master).unwrap(),
    )
}

#[test]
fn rfc3711_b3_key_derivation() {
    let master = MasterKey::new(
        SrtpProfile::Aes128CmSha1_80,
        &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &hex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    .unwrap();
    let mut key = [0u8; 16];
    master.derive(LABEL_ENCRYPTION, &mut key).unwrap();
    assert_eq!(key[..], hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    master.derive(LABEL_SALT, &mut salt).unwrap();
    assert_eq!(salt[..], hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0u8; 20];
    master.derive(LABEL_AUTHENTICATION, &mut auth).unwrap();
    assert_eq!(auth[..], hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let key = UnboundCipherKey::new(&AES_128, &hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
    let key = EncryptingKey::ctr(key).unwrap();
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    // The whole 65282-block segment: its last blocks check the 16-bit counter's carry.
    let mut stream = vec![0u8; 1_044_512];
    aes_cm(&key, &salt, 0, 0, &mut stream).unwrap();
    let first = "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0";
    assert_eq!(stream[..48], hex(first));
    let last = "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
                6A2CC3787889374FBEB4C81B17BA6C44";
    assert_eq!(stream[stream.len() - 48..], hex(last));
}

/// libsrtp `srtp_validate`: the default policy (AES_CM_128_HMAC_SHA1_80) from a master key.
#[test]
fn libsrtp_aes_cm_packet() {
    let master = MasterKey::new(
        SrtpProfile::Aes128CmSha1_80,
        &hex("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &hex("0EC675AD498AFEEBB6960B3AABE6"),
    )
    .unwrap();
    let plain = hex("800F1234DECAFBADCAFEBABE ABABABABABABABABABABABABABABABAB");
    let srtp = hex("800F1234DECAFBADCAFEBABE 4E55DC4CE79978D88CA4D215949D2402
         B78D6ACC99EA179B8DBB");
    let (mut tx, mut rx) = pair(&master);
    assert_eq!(protect(&mut tx, &plain).unwrap(), srtp);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain);
}

/// libsrtp `srtp_validate_gcm`: AEAD_AES_128_GCM from a master key and a 96-bit salt, which
/// checks the KDF's salt padding for GCM.
#[test]
fn libsrtp_gcm_packet() {
    let master = MasterKey::new(
        SrtpProfile::AeadAes128Gcm,
        &hex("000102030405060708090A0B0C0D0E0F"),
        &hex("A0A1A2A3A4A5A6A7A8A9AAAB"),
    )
    .unwrap();
    let plain = hex("800F1234DECAFBADCAFEBABE ABABABABABABABABABABABABABABABAB");
    let srtp = hex("800F1234DECAFBADCAFEBABE C5002EDE04CFDD2EB91159E0880AA06E
         D2976826F796B201DF3131A127E8A392");
    let (mut tx, mut rx) = pair(&master);
    assert_eq!(protect(&mut tx, &plain).unwrap(), srtp);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain);
}

const RFC7714_PLAIN: &str = "8040F17B8041F8D35501A0B2 47616C6C696120657374206F6D6E6973
                             2064697669736120696E207061727465732074726573";
const RFC7714_SALT: &str = "517569642070726F2071756F";

/// RFC 7714 §16, AEAD_AES_128_GCM: session key and salt given.
#[test]
fn rfc7714_aes_128_gcm_packet() {
    let key = hex("000102030405060708090A0B0C0D0E0F");
    let srtp = hex("8040F17B8041F8D35501A0B2 F24DE3A3FB34DE6CACBA861C9D7E4BCA
         BE633BD50D294E6F42A5F47A51C7D19B36DE3ADF8833899D7F27BEB16A9152CF765EE4390CCE");
    let session = |k: &[u8]| {
        SrtpContext::with_session_keys(SrtpProfile::AeadAes128Gcm, k, &hex(RFC7714_SALT), &[])
    };
    let (mut tx, mut rx) = (session(&key).unwrap(), session(&key).unwrap());
    assert_eq!(protect(&mut tx, &hex(RFC7714_PLAIN)).unwrap(), srtp);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), hex(RFC7714_PLAIN));
}

/// RFC 7714 §16, AEAD_AES_256_GCM: session key and salt given.
#[test]
fn rfc7714_aes_256_gcm_packet() {
    let key = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    let srtp = hex("8040F17B8041F8D35501A0B2 32B1DE78A822FE12EF9F78FA332E33AA
         B18012389A58E2F3B50B2A0276FFAE0F1BA63799B87B7AA3DB36DFFFD6B0F9BB7878D7A76C13");
    let session = |k: &[u8]| {
        SrtpContext::with_session_keys(SrtpProfile::AeadAes256Gcm, k, &hex(RFC7714_SALT), &[])
    };
    let (mut tx, mut rx) = (session(&key).unwrap(), session(&key).unwrap());
    assert_eq!(protect(&mut tx, &hex(RFC7714_PLAIN)).unwrap(), srtp);
    assert_eq!(unprotect(&mut rx, &srtp).unwrap(), hex(RFC7714_PLAIN));
}

#[test]
fn keys_of_the_wrong_length_are_refused() {
    let err = MasterKey::new(SrtpProfile::AeadAes256Gcm, &[0; 16], &[0; 12]).unwrap_err();
    assert_eq!(
        err,
        SrtpError::KeyLength {
            what: "master key",
            len: 16,
            want: 32
        }
    );
    let err = MasterKey::new(SrtpProfile::Aes128CmSha1_80, &[0; 16], &[0; 12]).unwrap_err();
    assert!(matches!(err, SrtpError::KeyLength { want: 14, .. }));
}

fn rtp(ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x10, 0]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn replays_and_packets_older_than_the_window_are_refused() {
    for profile in SrtpProfile::ALL {
        let master = MasterKey::random(profile, &mut StdRng::seed_from_u64(1));
        let (mut tx, mut rx) = pair(&master);
        let packets: Vec<_> = (0..300u16)
            .map(|seq| protect(&mut tx, &rtp(5, seq, b"x")).unwrap())
            .collect();
        unprotect(&mut rx, &packets[200]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[200]), Err(SrtpError::Replayed));
        // Late but inside the window: accepted once.
        unprotect(&mut rx, &packets[199]).unwrap();
        unprotect(&mut rx, &packets[73]).unwrap();
        assert_eq!(unprotect(&mut rx, &packets[73]), Err(SrtpError::Replayed));
        assert_eq!(unprotect(&mut rx, &packets[72]), Err(SrtpError::Replayed));
        unprotect(&mut rx, &packets[299]).unwrap();
    }
}

#[test]
fn the_rollover_counter_follows_sequence_wraps() {
    let master = MasterKey::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).unwrap();
    let (mut tx, mut rx) = pair(&master);
    // 3 x 65536 + 10 packets: three wraps. The receiver sees the packets around every
    // quarter of the sequence space: never a jump of half of it, which RFC 3711's index
    // estimate cannot tell from a late packet.
    let mut seq = 0xfff0u16;
    for n in 0..(3 * 65_536 + 10u32) {
        let packet = protect(&mut tx, &rtp(9, seq, &n.to_be_bytes())).unwrap();
        if seq % 0x4000 >= 0x3ff0 || seq % 0x4000 < 0x10 {
            assert_eq!(
                unprotect(&mut rx, &packet).unwrap(),
                rtp(9, seq, &n.to_be_bytes())
            );
        }
        seq = seq.wrapping_add(1);
    }
    assert_eq!(tx.streams[0].highest >> 16, 3);
    assert_eq!(rx.streams[0].highest >> 16, 3);
    // A receiver that missed the wraps guesses ROC 0 and cannot authenticate.
    let mut late = SrtpContext::new(&master).unwrap();
    let packet = protect(&mut tx, &rtp(9, seq, b"late")).unwrap();
    assert_eq!(unprotect(&mut late, &packet), Err(SrtpError::AuthFailed));
}

#[test]
fn streams_are_bounded() {
    let master = MasterKey::new(SrtpProfile::AeadAes128Gcm, &[3; 16], &[4; 12]).unwrap();
    let (mut tx, mut rx) = pair(&master);
    for ssrc in 0..MAX_STREAMS as u32 {
        let p = protect(&mut tx, &rtp(ssrc, 1, b"x")).unwrap();
        unprotect(&mut rx, &p).unwrap();
    }
    let extra = rtp(MAX_STREAMS as u32, 1, b"x");
    assert_eq!(protect(&mut tx, &extra), Err(SrtpError::TooManyStreams));
}

#[test]
fn a_buffer_without_room_for_the_tag_is_refused() {
    let master = MasterKey::new(SrtpProfile::Aes128CmSha1_80, &[3; 16], &[4; 14]).unwrap();
    let mut tx = SrtpContext::new(&master).unwrap();
    let mut buf = rtp(1, 1, b"abc");
    let len = buf.len();
    assert_eq!(tx.protect_rtp(&mut buf, len), Err(SrtpError::NoRoom(10)));
    assert_eq!(
        tx.protect_rtp(&mut buf, len + 1),
        Err(SrtpError::NoRoom(10))
    );
}

fn profiles() -> impl Strategy<Value = SrtpProfile> {
    prop::sample::select(SrtpProfile::ALL.to_vec())
}

/// An RTP packet with up to 3 CSRCs, maybe a header extension, and a payload.
fn packets() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 12]>(),
        prop::collection::vec(any::<u8>(), 0..=12),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..=3)),
        prop::collection::vec(any::<u8>(), 0..1200),
    )
        .prop_map(|(mut fixed, csrcs, ext, payload)| {
            let cc = csrcs.len() / 4;
            fixed[0] = 0x80 | (u8::from(ext.is_some()) << 4) | cc as u8;
            let mut p = fixed.to_vec();
            p.extend_from_slice(&csrcs[..cc * 4]);
            if let Some(words) = ext {
                p.extend_from_slice(&[0xbe, 0xde, 0, words.len() as u8]);
                for w in words {
                    p.extend_from_slice(&[w; 4]);
                }
            }
            p.extend_from_slice(&payload);
            p
        })
}

proptest! {
    #[test]
    fn round_trips(profile in profiles(), seed in any::<u64>(), plain in packets()) {
        let master = MasterKey::random(profile, &mut StdRng::seed_from_u64(seed));
        let (mut tx, mut rx) = pair(&master);
        let srtp = protect(&mut tx, &plain).unwrap();
        prop_assert_eq!(srtp.len(), plain.len() + tag_len(profile));
        let h = Header::parse(&plain).unwrap();
        prop_assert_eq!(&srtp[..h.len], &plain[..h.len]);
        if plain.len() - h.len >= 8 {
            prop_assert_ne!(&srtp[h.len..plain.len()], &plain[h.len..]);
        }
        prop_assert_eq!(unprotect(&mut rx, &srtp).unwrap(), plain);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused(
        profile in profiles(),
        plain in packets(),
        at in any::<prop::sample::Index>(),
        bit in 0..8u8,
    ) {
        let master = MasterKey::random(profile, &mut StdRng::seed_from_u64(11));
        let (mut tx, mut rx) = pair(&master);
        let mut srtp = protect(&mut tx, &plain).unwrap();
        let i = at.index(srtp.len());
        srtp[i] ^= 1 << bit;
        // A flip in the header may also make it unparsable or name another SSRC/index:
        // whatever the error, the packet must not pass.
        prop_assert!(unprotect(&mut rx, &srtp).is_err());
    }

    #[test]
    fn garbage_never_panics(
        profile in profiles(),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        len in 0..220usize,
    ) {
        let master = MasterKey::random(profile, &mut StdRng::seed_from_u64(2));
        let (mut tx, mut rx) = pair(&master);
        let mut buf = bytes.clone();
        let _ = rx.unprotect_rtp(&mut buf);
        let mut buf = bytes;
        let _ = tx.protect_rtp(&mut buf, len);
    }
}
