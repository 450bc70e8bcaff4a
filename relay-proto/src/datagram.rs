//! Media datagrams: one RTP packet of one layer of one flow per QUIC DATAGRAM frame.
//!
//! ```text
//! flow     u64 BE   FlowId: meeting hash (high 32 bits) | sender's flow number
//! layer    u8       simulcast layer index, < MAX_LAYERS
//! RTP      RFC 3550 header: V=2, P=0, X, CC=0 | M, PT | seq u16 | timestamp u32 | SSRC u32 = 0
//!          [X=1: RFC 8285 one-byte extensions (0xBEDE), element id 1 = audio level (RFC 6464)]
//! payload  the rest
//! ```
//!
//! The hot path: [`decode_datagram`] borrows the payload from the input and allocates
//! nothing; [`encode_datagram`] appends to a buffer the caller reuses. The flow id is fixed
//! width (not a varint) because it uses all 64 bits, and so that [`peek_flow`] can route a
//! datagram to its meeting's worker from its first eight bytes. The RTP header keeps the
//! packet a valid RTP packet for tools (SSRC 0: the receiving edge writes its own per
//! subscriber); only the fields an edge forwards survive the hop.

use crate::id::FlowId;
use crate::{MAX_DATAGRAM, MAX_LAYERS};

/// Bytes before the RTP payload without extensions: flow, layer, RTP header.
pub const BASE_OVERHEAD: usize = 8 + 1 + 12;
/// The audio-level extension block: profile, length, one element, padding.
const AUDIO_LEVEL_EXT_LEN: usize = 8;
/// Most bytes a datagram adds to its payload.
pub const MAX_OVERHEAD: usize = BASE_OVERHEAD + AUDIO_LEVEL_EXT_LEN;

/// The RFC 8285 one-byte-header extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Our extension element id for the RFC 6464 audio level.
const AUDIO_LEVEL_ID: u8 = 1;

/// The RTP header fields a relayed packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaHeader {
    pub marker: bool,
    /// 0..=127.
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    /// RFC 6464: (voice activity, level 0..=127 in -dBov). Edges rank speakers by it.
    pub audio_level: Option<(bool, u8)>,
}

/// A decoded datagram, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media<'a> {
    pub flow: FlowId,
    pub layer: u8,
    pub header: MediaHeader,
    pub payload: &'a [u8],
}

/// Why a datagram cannot be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    #[error("datagram of {len} bytes is over the limit of {MAX_DATAGRAM}")]
    TooLarge { len: usize },
    #[error("datagram truncated")]
    Truncated,
    #[error("layer {0} is out of range")]
    BadLayer(u8),
    #[error("invalid RTP {0}")]
    BadRtp(&'static str),
}

/// Appends one datagram to `out`; on error `out` is left as it was.
pub fn encode_datagram(
    flow: FlowId,
    layer: u8,
    h: &MediaHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DatagramError> {
    let ext_len = if h.audio_level.is_some() {
        AUDIO_LEVEL_EXT_LEN
    } else {
        0
    };
    let len = BASE_OVERHEAD + ext_len + payload.len();
    if len > MAX_DATAGRAM {
        return Err(DatagramError::TooLarge { len });
    }
    if usize::from(layer) >= MAX_LAYERS {
        return Err(DatagramError::BadLayer(layer));
    }
    if h.payload_type > 0x7f {
        return Err(DatagramError::BadRtp("payload type"));
    }
    if h.audio_level.is_some_and(|(_, level)| level > 0x7f) {
        return Err(DatagramError::BadRtp("audio level"));
    }
    out.reserve(len);
    out.extend_from_slice(&flow.0.to_be_bytes());
    out.push(layer);
    // V=2, P=0, X, CC=0.
    out.push(0x80 | if ext_len > 0 { 0x10 } else { 0 });
    out.push(u8::from(h.marker) << 7 | h.payload_type);
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    if let Some((voice, level)) = h.audio_level {
        out.extend_from_slice(&ONE_BYTE_PROFILE.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // one 32-bit word follows
        out.extend_from_slice(&[AUDIO_LEVEL_ID << 4, u8::from(voice) << 7 | level, 0, 0]);
    }
    out.extend_from_slice(payload);
    Ok(())
}

/// Decodes a datagram without copying or allocating.
pub fn decode_datagram(bytes: &[u8]) -> Result<Media<'_>, DatagramError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DatagramError::TooLarge { len: bytes.len() });
    }
    let (flow, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or(DatagramError::Truncated)?;
    let (&[layer], rest) = rest
        .split_first_chunk::<1>()
        .ok_or(DatagramError::Truncated)?;
    let (rtp, rest) = rest
        .split_first_chunk::<12>()
        .ok_or(DatagramError::Truncated)?;
    let flow = FlowId(u64::from_be_bytes(*flow));
    if usize::from(layer) >= MAX_LAYERS {
        return Err(DatagramError::BadLayer(layer));
    }
    if rtp[0] >> 6 != 2 {
        return Err(DatagramError::BadRtp("version"));
    }
    if rtp[0] & 0x20 != 0 {
        return Err(DatagramError::BadRtp("padding"));
    }
    if rtp[0] & 0x0f != 0 {
        return Err(DatagramError::BadRtp("csrc count"));
    }
    let mut header = MediaHeader {
        marker: rtp[1] & 0x80 != 0,
        payload_type: rtp[1] & 0x7f,
        seq: u16::from_be_bytes([rtp[2], rtp[3]]),
        timestamp: u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]),
        audio_level: None,
    };
    let mut payload = rest;
    if rtp[0] & 0x10 != 0 {
        let (profile, elements, after) = split_extension(rest)?;
        header.audio_level = audio_level(profile, elements)?;
        payload = after;
    }
    Ok(Media {
        flow,
        layer,
        header,
        payload,
    })
}

/// The flow of a datagram, read from its first eight bytes (to pick a worker before
/// decoding).
pub fn peek_flow(bytes: &[u8]) -> Option<FlowId> {
    bytes
        .first_chunk::<8>()
        .map(|b| FlowId(u64::from_be_bytes(*b)))
}

/// The extension block's profile and elements, and what follows the block.
fn split_extension(bytes: &[u8]) -> Result<(u16, &[u8], &[u8]), DatagramError> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(DatagramError::Truncated)?;
    let profile = u16::from_be_bytes([head[0], head[1]]);
    let len = 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
    if len > rest.len() {
        return Err(DatagramError::Truncated);
    }
    let (elements, payload) = rest.split_at(len);
    Ok((profile, elements, payload))
}

/// The audio level among one-byte extension elements; other profiles and ids are skipped.
fn audio_level(profile: u16, mut elements: &[u8]) -> Result<Option<(bool, u8)>, DatagramError> {
    if profile != ONE_BYTE_PROFILE {
        return Ok(None);
    }
    let mut level = None;
    // Each step consumes at least one byte, so this ends within the block.
    while let Some((&b, rest)) = elements.split_first() {
        if b == 0 {
            elements = rest; // padding
            continue;
        }
        let (id, len) = (b >> 4, usize::from(b & 0x0f) + 1);
        if id == 15 {
            break; // reserved: stop parsing (RFC 8285 §4.2)
        }
        let value = rest
            .get(..len)
            .ok_or(DatagramError::BadRtp("extension element"))?;
        if id == AUDIO_LEVEL_ID {
            level = Some((value[0] & 0x80 != 0, value[0] & 0x7f));
        }
        elements = &rest[len..];
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: FlowId = FlowId(0xdead_beef_0000_0007);

    #[test]
    fn audio_is_byte_exact() {
        let h = MediaHeader {
            marker: true,
            payload_type: 111,
            seq: 0x0102,
            timestamp: 0x0304_0506,
            audio_level: Some((true, 30)),
        };
        let mut out = Vec::new();
        encode_datagram(FLOW, 0, &h, b"opus", &mut out).unwrap();
        let want: &[u8] = &[
            0xde,
            0xad,
            0xbe,
            0xef,
            0,
            0,
            0,
            7, // flow
            0, // layer
            0x90,
            0x80 | 111,
            1,
            2,
            3,
            4,
            5,
            6,
            0,
            0,
            0,
            0, // RTP, X set
            0xbe,
            0xde,
            0,
            1,
            0x10,
            0x80 | 30,
            0,
            0, // audio level
            b'o',
            b'p',
            b'u',
            b's',
        ];
        assert_eq!(out, want);
        let m = decode_datagram(&out).unwrap();
        assert_eq!(
            (m.flow, m.layer, m.header, m.payload),
            (FLOW, 0, h, &b"opus"[..])
        );
        assert_eq!(peek_flow(&out), Some(FLOW));
    }

    #[test]
    fn video_without_extension() {
        let h = MediaHeader {
            payload_type: 96,
            seq: 9,
            ..MediaHeader::default()
        };
        let mut out = Vec::new();
        encode_datagram(FLOW, 2, &h, &[1, 2, 3], &mut out).unwrap();
        assert_eq!(out.len(), BASE_OVERHEAD + 3);
        let m = decode_datagram(&out).unwrap();
        assert_eq!((m.layer, m.header, m.payload), (2, h, &[1, 2, 3][..]));
    }

    #[test]
    fn bounds_are_checked() {
        let h = MediaHeader::default();
        let mut out = vec![];
        let big = vec![0; MAX_DATAGRAM];
        assert!(matches!(
            encode_datagram(FLOW, 0, &h, &big, &mut out),
            Err(DatagramError::TooLarge { .. })
        ));
        let fits = vec![0; MAX_DATAGRAM - BASE_OVERHEAD];
        encode_datagram(FLOW, 0, &h, &fits, &mut out).unwrap();
        out.clear();
        assert_eq!(
            encode_datagram(FLOW, 3, &h, &[], &mut out),
            Err(DatagramError::BadLayer(3))
        );
        let loud = MediaHeader {
            audio_level: Some((false, 128)),
            ..h
        };
        assert_eq!(
            encode_datagram(FLOW, 0, &loud, &[], &mut out),
            Err(DatagramError::BadRtp("audio level"))
        );
        assert!(out.is_empty());
        assert_eq!(decode_datagram(&[0; 5]), Err(DatagramError::Truncated));
    }

    #[test]
    fn foreign_extensions_are_skipped() {
        let mut out = Vec::new();
        encode_datagram(FLOW, 0, &MediaHeader::default(), &[], &mut out).unwrap();
        out[9] |= 0x10;
        // A 3-byte element with id 2, padding, then an audio level.
        out.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x22, 1, 2, 3, 0, 0x10, 0x05, 0, 0xaa]);
        let m = decode_datagram(&out).unwrap();
        assert_eq!(m.header.audio_level, Some((false, 5)));
        assert_eq!(m.payload, [0xaa]);
        // An element running past its block is refused.
        let n = out.len();
        out[n - 4] = 0x13;
        out.truncate(n - 1);
        assert_eq!(
            decode_datagram(&out),
            Err(DatagramError::BadRtp("extension element"))
        );
    }
}
