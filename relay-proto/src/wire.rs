//! Bounded reading and writing of the relay's wire encodings.
//!
//! Integers are big-endian. Counts, lengths and most numbers are QUIC variable-length
//! integers (RFC 9000 §16: the two high bits of the first byte give the length, 1, 2, 4 or 8
//! bytes, so a value is at most 2⁶² − 1). Strings are a varint byte length and UTF-8; lists are
//! a varint count and the items. The [`Reader`] checks every length against what is left and
//! against the caller's named limit before it hands out a slice or lets anyone allocate; the
//! [`Writer`] refuses to write what a reader would refuse to read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::id::{EdgeId, FlowId, LayerSet, MAX_NAME_LEN, MeetingId, ParticipantId, RegionId};
use crate::id::{TrackId, TreeEpoch};

/// The largest value a QUIC varint can carry.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Why bytes from a peer are not a valid message. The session closes the link on any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated")]
    Truncated,
    #[error(
        "frame of {len} bytes is over the limit of {} bytes",
        crate::MAX_FRAME_LEN
    )]
    FrameTooLarge { len: usize },
    #[error("unknown message type {0}")]
    UnknownType(u64),
    #[error("{what}: {len} is over the limit")]
    TooMany { what: &'static str, len: u64 },
    #[error("string is not UTF-8")]
    BadUtf8,
    #[error("invalid {0}")]
    BadId(&'static str),
    #[error("invalid {0}")]
    BadValue(&'static str),
    #[error("trailing bytes after the message")]
    Trailing,
    /// A `Hello` of another protocol version whose layout this version cannot read; a
    /// `Hello` of another version that does parse decodes normally.
    #[error("peer speaks protocol version {0}")]
    Version(u16),
}

/// Why a value cannot be encoded: it breaks a bound that the decoder enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what}: {len} is over the limit of {max}")]
    TooMany {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "frame body of {len} bytes is over the limit of {} bytes",
        crate::MAX_FRAME_LEN
    )]
    FrameTooLarge { len: usize },
    #[error("{0} is out of range")]
    BadValue(&'static str),
}

/// Reads a byte slice front to back; every read is bounds-checked and fails with
/// [`DecodeError::Truncated`] rather than panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes, without copying.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    /// A QUIC varint (non-minimal encodings are accepted, as RFC 9000 allows).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut v = u64::from(first & 0x3f);
        for &b in self.bytes(len - 1)? {
            v = (v << 8) | u64::from(b);
        }
        Ok(v)
    }

    /// A varint that must fit in a `u32`.
    pub fn varint_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::BadValue(what))
    }

    /// One byte, 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue(what)),
        }
    }

    /// A list count, at most `max`. It is also checked against the bytes left (every item
    /// takes at least one), so a short message cannot make the caller reserve much.
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(DecodeError::TooMany { what, len: n });
        }
        if n > self.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    /// A string of at most `max` bytes, borrowed from the input.
    pub fn str(&mut self, max: usize, what: &'static str) -> Result<&'a str, DecodeError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(DecodeError::TooMany { what, len: n });
        }
        let bytes = self.bytes(n as usize)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8)
    }

    /// Succeeds only if everything was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

/// Appends encodings to a `Vec<u8>`. Infallible writes return `()`; writes that carry a
/// bound return [`EncodeError`] and write nothing when they fail.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    /// Bytes in the underlying buffer (including what was there before this writer).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// The shortest QUIC varint for `v`; [`EncodeError::BadValue`] above [`MAX_VARINT`].
    pub fn varint(&mut self, v: u64) -> Result<(), EncodeError> {
        match v {
            0..0x40 => self.u8(v as u8),
            0x40..0x4000 => self.u16(v as u16 | 0x4000),
            0x4000..0x4000_0000 => self.u32(v as u32 | 0x8000_0000),
            0x4000_0000..=MAX_VARINT => self.u64(v | 0xc000_0000_0000_0000),
            _ => return Err(EncodeError::BadValue("varint")),
        }
        Ok(())
    }

    /// A `u32` as a varint (always fits).
    pub fn varint_u32(&mut self, v: u32) {
        // A u32 is far below MAX_VARINT, so this cannot fail.
        let _ = self.varint(u64::from(v));
    }

    /// A list count, refused above `max`.
    pub fn count(&mut self, len: usize, max: usize, what: &'static str) -> Result<(), EncodeError> {
        if len > max {
            return Err(EncodeError::TooMany { what, len, max });
        }
        self.varint(len as u64)
    }

    /// A string, refused above `max` bytes.
    pub fn str(&mut self, s: &str, max: usize, what: &'static str) -> Result<(), EncodeError> {
        self.count(s.len(), max, what)?;
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// A value with one wire encoding. `put` refuses exactly what `take` would refuse.
pub(crate) trait Wire: Sized {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A list: a count of at most `max` and the items.
pub(crate) fn put_list<T: Wire>(
    w: &mut Writer<'_>,
    items: &[T],
    max: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    w.count(items.len(), max, what)?;
    items.iter().try_for_each(|item| item.put(w))
}

/// A list of at most `max` items; the count is checked before anything is reserved.
pub(crate) fn take_list<T: Wire>(
    r: &mut Reader<'_>,
    max: usize,
    what: &'static str,
) -> Result<Vec<T>, DecodeError> {
    let n = r.count(max, what)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(T::take(r)?);
    }
    Ok(items)
}

/// Names travel as text and are validated on the way in by their `FromStr`.
macro_rules! name_wire {
    ($($t:ty => $what:literal),* $(,)?) => {$(
        impl Wire for $t {
            fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.str(self.as_str(), MAX_NAME_LEN, $what)
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let s = r.str(MAX_NAME_LEN, $what)?;
                s.parse().map_err(|_| DecodeError::BadId($what))
            }
        }
    )*};
}

name_wire!(MeetingId => "meeting id", EdgeId => "edge id", RegionId => "region id");

/// Handles are any `u64`, so they travel fixed-width (a varint tops out at 2⁶² − 1, and a
/// [`FlowId`] has its meeting hash in the high bits anyway).
macro_rules! u64_wire {
    ($($t:ident),*) => {$(
        impl Wire for $t {
            fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.u64(self.0);
                Ok(())
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.u64().map($t)
            }
        }
    )*};
}

u64_wire!(ParticipantId, TrackId, FlowId, TreeEpoch);

impl Wire for LayerSet {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.bits());
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        LayerSet::from_bits(r.u8()?).ok_or(DecodeError::BadValue("layer set"))
    }
}

/// Family byte (4 or 6), address, port. IPv6 flow info and scope id are not carried.
impl Wire for SocketAddr {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self.ip() {
            IpAddr::V4(ip) => {
                w.u8(4);
                w.bytes(&ip.octets());
            }
            IpAddr::V6(ip) => {
                w.u8(6);
                w.bytes(&ip.octets());
            }
        }
        w.u16(self.port());
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ip = match r.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
            _ => return Err(DecodeError::BadValue("address family")),
        };
        Ok(SocketAddr::new(ip, r.u16()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Writer::new(&mut out).varint(v).unwrap();
        out
    }

    #[test]
    fn varints_match_rfc_9000_examples() {
        // RFC 9000 §A.1.
        let cases: [(&[u8], u64); 5] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
            (&[0x40, 0x25], 37),
        ];
        for (bytes, v) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.varint(), Ok(v));
            r.finish().unwrap();
        }
        assert_eq!(varint_bytes(15_293), [0x7b, 0xbd]);
        assert_eq!(varint_bytes(37), [0x25]);
        assert_eq!(varint_bytes(MAX_VARINT).len(), 8);
        let mut out = Vec::new();
        assert!(Writer::new(&mut out).varint(MAX_VARINT + 1).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn reads_are_bounded() {
        assert_eq!(Reader::new(&[0x40]).varint(), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(DecodeError::Truncated));
        // A count larger than the bytes left is refused before anyone reserves memory.
        assert_eq!(
            Reader::new(&[10, 0]).count(100, "x"),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0x41, 0]).count(100, "x"),
            Err(DecodeError::TooMany {
                what: "x",
                len: 256
            })
        );
        assert_eq!(
            Reader::new(&[2, 0xff, 0xfe]).str(8, "s"),
            Err(DecodeError::BadUtf8)
        );
        assert_eq!(Reader::new(&[2]).bool("b"), Err(DecodeError::BadValue("b")));
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::Trailing));
    }

    #[test]
    fn writers_refuse_what_readers_refuse() {
        let mut out = vec![9];
        let mut w = Writer::new(&mut out);
        assert_eq!(
            w.str("toolong", 3, "s"),
            Err(EncodeError::TooMany {
                what: "s",
                len: 7,
                max: 3
            })
        );
        assert_eq!(out, [9]);
    }

    #[test]
    fn addresses_round_trip() {
        for addr in ["10.1.2.3:7000", "[2001:db8::1]:443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            addr.put(&mut Writer::new(&mut out)).unwrap();
            let mut r = Reader::new(&out);
            assert_eq!(SocketAddr::take(&mut r), Ok(addr));
            r.finish().unwrap();
        }
    }
}
