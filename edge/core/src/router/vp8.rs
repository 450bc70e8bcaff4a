//! Reading the VP8 RTP payload descriptor (RFC 7741) and keyframe header (RFC 6386 §9.1).
//!
//! str0m's `Vp8Descriptor` writes our rewritten ids back in place (`Vp8Patch`) but does not
//! expose the values it parsed, and the router needs them: picture ids and TL0PICIDX to
//! rewrite, the keyframe bit to gate layer switches, and a keyframe's frame size to learn
//! each simulcast layer's real resolution. This reader is bounds-checked and allocation-free.

/// What the router needs from one VP8 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Info {
    /// The picture id and whether it is the 15-bit form.
    pub picture_id: Option<(u16, bool)>,
    pub tl0_pic_idx: Option<u8>,
    /// First packet of a keyframe.
    pub keyframe_start: bool,
    /// Frame size, when this packet starts a keyframe.
    pub size: Option<(u32, u32)>,
}

/// Parses a VP8 RTP payload. `None` if the descriptor is truncated.
pub fn parse(payload: &[u8]) -> Option<Vp8Info> {
    let b0 = *payload.first()?;
    let mut i = 1;
    let mut info = Vp8Info::default();
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let p = *payload.get(i)?;
            if p & 0x80 != 0 {
                let p2 = *payload.get(i + 1)?;
                info.picture_id = Some(((u16::from(p & 0x7f) << 8) | u16::from(p2), true));
                i += 2;
            } else {
                info.picture_id = Some((u16::from(p), false));
                i += 1;
            }
        }
        if x & 0x40 != 0 {
            info.tl0_pic_idx = Some(*payload.get(i)?);
            i += 1;
        }
        if x & 0x30 != 0 {
            payload.get(i)?;
            i += 1;
        }
    }
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    if start {
        if let Some(&tag) = payload.get(i) {
            info.keyframe_start = tag & 0x01 == 0;
        }
        if info.keyframe_start {
            info.size = keyframe_size(&payload[i..]);
        }
    }
    Some(info)
}

/// Width and height from a keyframe's uncompressed header: a 3-byte frame tag, the start
/// code `9d 01 2a`, then 14-bit width and height (little-endian, top 2 bits are scaling).
fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let h = frame.get(..10)?;
    if h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([h[6], h[7]]) & 0x3fff);
    let ht = u32::from(u16::from_le_bytes([h[8], h[9]]) & 0x3fff);
    (w > 0 && ht > 0).then_some((w, ht))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// X=1, S=1, PID=0; I=1, L=1; 15-bit picture id 0x1234; TL0 7; keyframe 640x360.
    const KEY: [u8; 15] = [
        0x90,
        0xc0,
        0x80 | 0x12,
        0x34,
        7,
        0x10,
        0x02,
        0x00,
        0x9d,
        0x01,
        0x2a,
        0x80,
        0x02,
        0x68,
        0x01,
    ];

    #[test]
    fn reads_ids_and_keyframe_size() {
        let info = parse(&KEY).unwrap();
        assert_eq!(info.picture_id, Some((0x1234, true)));
        assert_eq!(info.tl0_pic_idx, Some(7));
        assert!(info.keyframe_start);
        assert_eq!(info.size, Some((640, 360)));
        assert!(str0m::format::detect_vp8_keyframe(&KEY));
    }

    #[test]
    fn delta_frames_and_continuations_are_not_keyframes() {
        let mut delta = KEY;
        delta[5] |= 0x01;
        assert!(!parse(&delta).unwrap().keyframe_start);
        let mut cont = KEY;
        cont[0] &= !0x10;
        assert!(!parse(&cont).unwrap().keyframe_start);
        assert_eq!(parse(&[0x90, 0x80]), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_agrees_with_str0m(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(info) = parse(&bytes) {
                prop_assert_eq!(info.keyframe_start, str0m::format::detect_vp8_keyframe(&bytes));
            }
        }
    }
}
