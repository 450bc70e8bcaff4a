//! The few RTP header fields the bare forwarder reads and rewrites (RFC 3550 §5.1), in place.
//!
//! An SRTP packet's header travels in the clear, so the same reader serves the forwarder
//! (after unprotecting), the SRTP code (to find where the payload starts) and the sinks (which
//! never decrypt).

use thiserror::Error;

/// Fixed part of an RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// A header that is not RTP version 2 or does not fit in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than its own header (fixed part, CSRCs, extension).
    #[error("datagram of {0} bytes is shorter than its RTP header")]
    Truncated(usize),
    /// The version bits are not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
}

/// Where the payload starts and the two fields a forwarder rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Header length: fixed part, CSRC list and header extension.
    pub len: usize,
    /// Sequence number.
    pub seq: u16,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl Header {
    /// Reads the header at the start of `packet`, checking every length before using it.
    pub fn parse(packet: &[u8]) -> Result<Header, RtpError> {
        let truncated = RtpError::Truncated(packet.len());
        let fixed = packet.get(..FIXED_HEADER_LEN).ok_or(truncated)?;
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let mut len = FIXED_HEADER_LEN + 4 * usize::from(fixed[0] & 0x0f);
        if fixed[0] & 0x10 != 0 {
            let ext = packet.get(len..len + 4).ok_or(truncated)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        }
        if len > packet.len() {
            return Err(truncated);
        }
        Ok(Header {
            len,
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        })
    }
}

/// Writes the sequence number of a packet whose header [`Header::parse`] accepted.
pub fn set_seq(packet: &mut [u8], seq: u16) {
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
}

/// Writes the SSRC of a packet whose header [`Header::parse`] accepted.
pub fn set_ssrc(packet: &mut [u8], ssrc: u32) {
    packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The 48-bit extended sequence number (SRTP packet index: rollover counter and sequence
/// number) of `seq`, guessed from the highest one seen so far as RFC 3711 Appendix A does:
/// the candidate nearest to `highest`.
pub fn extend_seq(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let last = highest as u16;
    let roc = if last < 0x8000 {
        if seq > last + 0x8000 {
            // Before a wrap that `highest` is already past; ROC 0 has no earlier cycle.
            roc.wrapping_sub(1) & 0xffff_ffff
        } else {
            roc
        }
    } else if seq < last - 0x8000 {
        (roc + 1) & 0xffff_ffff
    } else {
        roc
    };
    (roc << 16) | u64::from(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csrcs_and_extension() {
        let mut p = vec![0x92, 0x60, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // two CSRCs
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]); // one extension word
        p.extend_from_slice(b"payload");
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.len, 12 + 8 + 8);
        assert_eq!((h.seq, h.ssrc), (0x1234, 0xdead_beef));
        set_seq(&mut p, 7);
        set_ssrc(&mut p, 9);
        assert_eq!(Header::parse(&p).unwrap().seq, 7);
        assert_eq!(Header::parse(&p).unwrap().ssrc, 9);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(Header::parse(&[0x80; 11]), Err(RtpError::Truncated(11)));
        assert_eq!(Header::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        // Claims 15 CSRCs in a 20-byte datagram.
        assert_eq!(Header::parse(&[0x8f; 20]), Err(RtpError::Truncated(20)));
        // An extension header cut short, and one whose length runs past the end.
        assert_eq!(Header::parse(&[0x90; 14]), Err(RtpError::Truncated(14)));
        let mut p = [0u8; 20];
        p[0] = 0x90;
        p[15] = 9;
        assert_eq!(Header::parse(&p), Err(RtpError::Truncated(20)));
    }

    #[test]
    fn extended_sequence_numbers_follow_wraps_both_ways() {
        assert_eq!(extend_seq(0xfffe, 2), 0x1_0002);
        assert_eq!(extend_seq(0x1_0002, 0xfffe), 0xfffe);
        assert_eq!(extend_seq(0x5_8000, 0x7fff), 0x5_7fff);
        assert_eq!(extend_seq(100, 90), 90);
        // Before the first cycle the guess wraps the 32-bit ROC, as RFC 3711 does.
        assert_eq!(extend_seq(5, 0xfff0), 0xffff_ffff_fff0);
    }
}
