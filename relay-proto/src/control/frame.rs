//! Reassembling control frames from stream bytes that arrive in any split.

use super::Control;
use crate::MAX_FRAME_LEN;
use crate::wire::DecodeError;

/// Most bytes a [`FrameDecoder`] holds: a partial frame and one more frame's worth. Push at
/// most `MAX_FRAME_LEN + 4` bytes at a time and drain [`FrameDecoder::next`] in between
/// (the [`crate::Session`] does) and it is never reached.
pub const MAX_BUFFERED: usize = 2 * (MAX_FRAME_LEN + 4);

/// Turns a control stream's bytes back into messages.
///
/// A frame whose length prefix is over [`MAX_FRAME_LEN`] is refused as soon as its four
/// prefix bytes are in, before any of its body is waited for. Framing errors (that, or more
/// than [`MAX_BUFFERED`] bytes pushed without draining) are sticky: the stream cannot be
/// resynchronised, so every later `next` returns the same error. A body that does not
/// decode is reported once and skipped, since its length prefix was sound.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len() + bytes.len();
        if len > MAX_BUFFERED {
            let len = len as u64;
            self.fail(DecodeError::TooMany {
                what: "buffered bytes",
                len,
            });
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    // Not an Iterator: it returns a Result and `None` means "not yet", not "never".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Control>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_FRAME_LEN {
            return Err(self.fail(DecodeError::FrameTooLarge { len }));
        }
        let Some(body) = pending.get(4..4 + len) else {
            return Ok(None);
        };
        let msg = Control::decode_body(body);
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        msg.map(Some)
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_arrive_in_any_split() {
        let mut bytes = Vec::new();
        for nonce in 0..3 {
            Control::Ping { nonce }.encode(&mut bytes).unwrap();
        }
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            d.push(std::slice::from_ref(b));
            while let Some(msg) = d.next().unwrap() {
                got.push(msg);
            }
        }
        let want: Vec<_> = (0..3).map(|nonce| Control::Ping { nonce }).collect();
        assert_eq!(got, want);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn an_oversized_prefix_fails_before_its_body() {
        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME_LEN + 1) as u32).to_be_bytes());
        let e = DecodeError::FrameTooLarge {
            len: MAX_FRAME_LEN + 1,
        };
        assert_eq!(d.next(), Err(e.clone()));
        d.push(&[0; 16]);
        assert_eq!(d.next(), Err(e), "framing errors are sticky");
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_bad_body_is_skipped() {
        let mut d = FrameDecoder::new();
        d.push(&[0, 0, 0, 1, 0x3f]);
        let mut ok = Vec::new();
        Control::Ping { nonce: 5 }.encode(&mut ok).unwrap();
        d.push(&ok);
        assert_eq!(d.next(), Err(DecodeError::UnknownType(0x3f)));
        assert_eq!(d.next(), Ok(Some(Control::Ping { nonce: 5 })));
    }

    #[test]
    fn pushing_without_draining_is_bounded() {
        let mut d = FrameDecoder::new();
        d.push(&vec![0; MAX_BUFFERED]);
        d.push(&[0]);
        assert!(matches!(
            d.next(),
            Err(DecodeError::TooMany {
                what: "buffered bytes",
                ..
            })
        ));
    }
}
