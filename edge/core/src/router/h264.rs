//! Where an H.264 keyframe starts in RTP (RFC 6184).
//!
//! Browsers send an IDR picture as a parameter-set packet (SPS and PPS, alone or aggregated in
//! a STAP-A) followed by the IDR slices, all at one timestamp. A layer switch must start at
//! the parameter sets: every simulcast layer uses the same SPS id, so a decoder given the new
//! layer's IDR with the old layer's SPS decodes at the old size (or not at all). str0m's
//! `detect_h264_keyframe` looks for the IDR slice only, hence this reader.

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// Whether this payload starts an IDR picture: an SPS or IDR NAL unit, a STAP-A carrying
/// one, or the first fragment of one.
pub fn starts_keyframe(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    let starts = |nal_type: u8| nal_type == NAL_SPS || nal_type == NAL_IDR;
    match header & 0x1f {
        NAL_STAP_A => stap_a_types(payload).any(starts),
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && starts(fu & 0x1f)),
        t => starts(t),
    }
}

/// The NAL unit types aggregated in a STAP-A: after the STAP-A header, each unit is a 16-bit
/// size and the unit itself. Stops at the first truncated unit.
fn stap_a_types(payload: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 1;
    std::iter::from_fn(move || {
        let size = usize::from(u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]));
        let nal = *payload.get(i + 2)?;
        i += 2 + size.max(1);
        Some(nal & 0x1f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parameter_sets_start_a_keyframe() {
        // STAP-A with SPS (0x67) and PPS (0x68).
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(starts_keyframe(&stap));
        assert!(starts_keyframe(&[0x67, 0x42, 0x00, 0x1f]));
        // First FU-A fragment of an IDR, and a later one.
        assert!(starts_keyframe(&[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(&[0x7c, 0x05, 0x88]));
        // A non-IDR slice, and a STAP-A without parameter sets.
        assert!(!starts_keyframe(&[0x41, 0x9a]));
        assert!(!starts_keyframe(&[0x78, 0x00, 0x01, 0x06]));
        assert!(!starts_keyframe(&[]));
    }

    proptest! {
        #[test]
        fn never_panics_and_covers_str0m(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ours = starts_keyframe(&bytes);
            // Whatever str0m calls a keyframe start, so do we (we add the parameter sets).
            if str0m::format::detect_h264_keyframe(&bytes) {
                prop_assert!(ours);
            }
        }
    }
}
