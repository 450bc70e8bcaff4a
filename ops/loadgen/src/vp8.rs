//! Just enough VP8 to look like a browser to an SFU.
//!
//! Two layers of framing, both written and read here:
//! - the **frame header** (RFC 6386 §9.1) at the start of every encoded frame: a 3-byte frame
//!   tag, and on keyframes the start code `9d 01 2a` plus the 14-bit width and height. SFUs (and
//!   our edge) read real layer sizes from it, and our subscriber reads the resolution back.
//! - the **RTP payload descriptor** (RFC 7741 §4.2) at the start of every RTP payload, in the
//!   shape Chrome sends for simulcast: `X=1`, a 15-bit PictureID, TL0PICIDX and TID/Y. An SFU
//!   that switches layers must rewrite PictureID/TL0PICIDX, so they have to be present.
//!
//! str0m's frame-mode VP8 packetizer writes no PictureID, which is why the client runs str0m in
//! RTP mode and packetizes here.

/// Length of a keyframe's frame header: tag, start code, width, height.
pub const KEYFRAME_HEADER_LEN: usize = 10;
/// Length of an interframe's frame header: the tag alone.
pub const DELTA_HEADER_LEN: usize = 3;
/// Length of the payload descriptor this module writes.
pub const DESCRIPTOR_LEN: usize = 6;

const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];
const MAX_FIRST_PARTITION: u32 = (1 << 19) - 1;
/// PictureID is 15 bits on the wire.
pub const PICTURE_ID_MASK: u16 = 0x7fff;

/// A parsed VP8 frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// `key_frame` bit of the tag is 0.
    pub keyframe: bool,
    /// `show_frame` bit of the tag.
    pub show_frame: bool,
    /// Size of the first partition, from the tag.
    pub first_partition_len: u32,
    /// Width and height (14 bits each) on keyframes.
    pub size: Option<(u16, u16)>,
}

/// Writes a frame header at the start of `out` and returns its length.
///
/// `size` is `Some((width, height))` for a keyframe and `None` for an interframe.
/// Panics if `out` is shorter than the header (callers size frames; a bug otherwise).
pub fn write_frame_header(
    out: &mut [u8],
    size: Option<(u16, u16)>,
    first_partition_len: u32,
) -> usize {
    let key_bit = u32::from(size.is_none());
    let version = 0u32;
    let show_frame = 1u32;
    let raw = (first_partition_len.min(MAX_FIRST_PARTITION) << 5)
        | (show_frame << 4)
        | (version << 1)
        | key_bit;
    out[..3].copy_from_slice(&raw.to_le_bytes()[..3]);
    let Some((w, h)) = size else {
        return DELTA_HEADER_LEN;
    };
    out[3..6].copy_from_slice(&START_CODE);
    // Upper two bits are the scaling mode; zero means no upscaling.
    out[6..8].copy_from_slice(&(w & 0x3fff).to_le_bytes());
    out[8..10].copy_from_slice(&(h & 0x3fff).to_le_bytes());
    KEYFRAME_HEADER_LEN
}

/// Parses the frame header at the start of a depacketized frame.
///
/// `None` if the frame is too short, or a keyframe lacks the start code.
pub fn parse_frame_header(frame: &[u8]) -> Option<FrameHeader> {
    let tag = frame.get(..3)?;
    let raw = u32::from(tag[0]) | (u32::from(tag[1]) << 8) | (u32::from(tag[2]) << 16);
    let keyframe = raw & 1 == 0;
    let header = FrameHeader {
        keyframe,
        show_frame: (raw >> 4) & 1 == 1,
        first_partition_len: raw >> 5,
        size: None,
    };
    if !keyframe {
        return Some(header);
    }
    let rest = frame.get(3..KEYFRAME_HEADER_LEN)?;
    if rest[..3] != START_CODE {
        return None;
    }
    let w = u16::from_le_bytes([rest[3], rest[4]]) & 0x3fff;
    let h = u16::from_le_bytes([rest[5], rest[6]]) & 0x3fff;
    Some(FrameHeader {
        size: Some((w, h)),
        ..header
    })
}

/// Per-frame fields of the payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorFields {
    /// 15-bit PictureID.
    pub picture_id: u16,
    /// TL0PICIDX: increments on every temporal-layer-0 frame.
    pub tl0_pic_idx: u8,
    /// Temporal layer id.
    pub tid: u8,
    /// Layer sync (`Y`): the frame depends only on a TL0 frame.
    pub layer_sync: bool,
    /// Non-reference frame (`N`): nothing depends on it, an SFU may drop it.
    pub non_reference: bool,
}

/// A parsed payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// `S=1` and `PID=0`: the first packet of a frame.
    pub start: bool,
    /// `N` bit.
    pub non_reference: bool,
    /// PictureID, 7 or 15 bits, if present.
    pub picture_id: Option<u16>,
    /// TL0PICIDX, if present.
    pub tl0_pic_idx: Option<u8>,
    /// TID, if present.
    pub tid: Option<u8>,
    /// `Y` bit (false when TID is absent).
    pub layer_sync: bool,
    /// Bytes before the VP8 payload.
    pub len: usize,
}

/// Parses the payload descriptor of one RTP payload.
///
/// `None` if it is truncated, or there is no payload after it.
pub fn parse_descriptor(payload: &[u8]) -> Option<Descriptor> {
    let b0 = *payload.first()?;
    let mut i = 1;
    let mut d = Descriptor {
        start: b0 & 0x10 != 0 && b0 & 0x07 == 0,
        non_reference: b0 & 0x20 != 0,
        picture_id: None,
        tl0_pic_idx: None,
        tid: None,
        layer_sync: false,
        len: 0,
    };
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let p0 = *payload.get(i)?;
            i += 1;
            if p0 & 0x80 != 0 {
                let p1 = *payload.get(i)?;
                i += 1;
                d.picture_id = Some((u16::from(p0 & 0x7f) << 8) | u16::from(p1));
            } else {
                d.picture_id = Some(u16::from(p0));
            }
        }
        if x & 0x40 != 0 {
            d.tl0_pic_idx = Some(*payload.get(i)?);
            i += 1;
        }
        if x & 0x30 != 0 {
            let t = *payload.get(i)?;
            i += 1;
            if x & 0x20 != 0 {
                d.tid = Some(t >> 6);
                d.layer_sync = t & 0x20 != 0;
            }
        }
    }
    if i >= payload.len() {
        return None;
    }
    d.len = i;
    Some(d)
}

/// Splits one encoded frame into RTP payloads of at most `max_payload` bytes, each starting
/// with a descriptor carrying `fields`.
///
/// Sizes are balanced (like libwebrtc) rather than "full packets then a runt".
/// Panics if `max_payload <= DESCRIPTOR_LEN` (a configuration bug).
pub fn packetize(frame: &[u8], max_payload: usize, fields: DescriptorFields) -> Vec<Vec<u8>> {
    assert!(
        max_payload > DESCRIPTOR_LEN,
        "max_payload too small for a VP8 descriptor"
    );
    let room = max_payload - DESCRIPTOR_LEN;
    let count = frame.len().div_ceil(room).max(1);
    let base = frame.len() / count;
    let extra = frame.len() % count;
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for n in 0..count {
        let len = base + usize::from(n < extra);
        let mut p = Vec::with_capacity(DESCRIPTOR_LEN + len);
        let mut b0 = 0x80; // X
        if fields.non_reference {
            b0 |= 0x20;
        }
        if n == 0 {
            b0 |= 0x10; // S, PID 0
        }
        p.push(b0);
        p.push(0x80 | 0x40 | 0x20); // I, L, T
        let pid = fields.picture_id & PICTURE_ID_MASK;
        p.push(0x80 | (pid >> 8) as u8); // M: 15-bit PictureID
        p.push((pid & 0xff) as u8);
        p.push(fields.tl0_pic_idx);
        p.push(((fields.tid & 0x3) << 6) | (u8::from(fields.layer_sync) << 5));
        p.extend_from_slice(&frame[at..at + len]);
        at += len;
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_header_round_trips() {
        let mut buf = [0u8; 32];
        assert_eq!(
            write_frame_header(&mut buf, Some((1280, 720)), 1000),
            KEYFRAME_HEADER_LEN
        );
        // RFC 6386 §9.1: key_frame bit 0, show_frame 1, then the start code.
        assert_eq!(buf[0] & 1, 0);
        assert_eq!(buf[0] & 0x10, 0x10);
        assert_eq!(&buf[3..6], &[0x9d, 0x01, 0x2a]);
        let h = parse_frame_header(&buf).unwrap();
        assert!(h.keyframe && h.show_frame);
        assert_eq!(h.size, Some((1280, 720)));
        assert_eq!(h.first_partition_len, 1000);
    }

    #[test]
    fn delta_header_round_trips() {
        let mut buf = [0u8; 8];
        assert_eq!(write_frame_header(&mut buf, None, 7), DELTA_HEADER_LEN);
        let h = parse_frame_header(&buf).unwrap();
        assert!(!h.keyframe);
        assert_eq!(h.size, None);
        assert_eq!(h.first_partition_len, 7);
    }

    #[test]
    fn str0m_sees_our_keyframes() {
        let mut frame = vec![0u8; 3000];
        write_frame_header(&mut frame, Some((320, 180)), 100);
        let fields = DescriptorFields {
            picture_id: 300,
            tl0_pic_idx: 9,
            tid: 0,
            layer_sync: true,
            non_reference: false,
        };
        let packets = packetize(&frame, 1000, fields);
        assert_eq!(packets.len(), 4);
        assert!(str0m::format::detect_vp8_keyframe(&packets[0]));
        assert!(!str0m::format::detect_vp8_keyframe(&packets[1]));
        let total: usize = packets.iter().map(|p| p.len() - DESCRIPTOR_LEN).sum();
        assert_eq!(total, frame.len());
    }

    #[test]
    fn descriptor_round_trips() {
        let fields = DescriptorFields {
            picture_id: 0x1234,
            tl0_pic_idx: 200,
            tid: 2,
            layer_sync: true,
            non_reference: true,
        };
        let packets = packetize(&[1, 2, 3, 4, 5], 8, fields);
        assert_eq!(packets.len(), 3);
        let d = parse_descriptor(&packets[0]).unwrap();
        assert!(d.start && d.non_reference && d.layer_sync);
        assert_eq!(d.picture_id, Some(0x1234));
        assert_eq!(d.tl0_pic_idx, Some(200));
        assert_eq!(d.tid, Some(2));
        assert_eq!(d.len, DESCRIPTOR_LEN);
        assert!(!parse_descriptor(&packets[1]).unwrap().start);
        assert_eq!(parse_descriptor(&packets[0][..DESCRIPTOR_LEN]), None);
    }

    #[test]
    fn short_picture_id_parses() {
        // X=1, S=1; I=1; 7-bit PictureID 5; payload byte.
        let d = parse_descriptor(&[0x90, 0x80, 0x05, 0xaa]).unwrap();
        assert_eq!(d.picture_id, Some(5));
        assert_eq!(d.len, 3);
    }
}
