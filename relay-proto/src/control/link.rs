//! Link messages: the handshake and the close codes.

use std::fmt;

use crate::id::{EdgeId, RegionId};
use crate::wire::{DecodeError, EncodeError, Reader, Wire, Writer};

/// The first frame in each direction, sent exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's protocol version ([`crate::VERSION`]); a peer with another one is
    /// refused with [`CloseCode::VersionMismatch`].
    pub version: u16,
    pub role: Role,
    pub region: RegionId,
}

/// Who is at the other end. The shell checks it against the peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Edge(EdgeId),
    Origin,
}

/// Why a link closed. Carried in `Goodbye` and, as `code()`, as the QUIC application error
/// code of the connection close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// An orderly close.
    Normal,
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// A frame could not be decoded.
    Malformed,
    /// A frame's length prefix is over [`crate::MAX_FRAME_LEN`].
    FrameTooLarge,
    /// Nothing was received for the idle timeout.
    IdleTimeout,
    /// The peer's certificate does not match its `Hello` (decided by the shell).
    Unauthorized,
    /// A well-formed message at the wrong time (no `Hello` first, a second `Hello`, an
    /// unknown message type).
    ProtocolViolation,
    /// The receiver cannot keep up (its queues are full).
    Overloaded,
    /// The process is going away.
    Shutdown,
}

impl CloseCode {
    const ALL: [CloseCode; 9] = [
        CloseCode::Normal,
        CloseCode::VersionMismatch,
        CloseCode::Malformed,
        CloseCode::FrameTooLarge,
        CloseCode::IdleTimeout,
        CloseCode::Unauthorized,
        CloseCode::ProtocolViolation,
        CloseCode::Overloaded,
        CloseCode::Shutdown,
    ];

    /// The QUIC application error code, 0..=8 in declaration order.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The close code with this QUIC application error code.
    pub fn from_code(code: u32) -> Option<CloseCode> {
        Self::ALL.get(code as usize).copied()
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `version` u16 | role (u8 0 = origin, 1 = edge + edge id) | region.
impl Wire for Hello {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.version);
        self.role.put(w)?;
        self.region.put(w)
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Hello {
            version: r.u16()?,
            role: Role::take(r)?,
            region: RegionId::take(r)?,
        })
    }
}

impl Wire for Role {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Role::Origin => {
                w.u8(0);
                Ok(())
            }
            Role::Edge(id) => {
                w.u8(1);
                id.put(w)
            }
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(Role::Origin),
            1 => Ok(Role::Edge(EdgeId::take(r)?)),
            _ => Err(DecodeError::BadValue("role")),
        }
    }
}

impl Wire for CloseCode {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.varint_u32(self.code());
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = r.varint_u32("close code")?;
        CloseCode::from_code(code).ok_or(DecodeError::BadValue("close code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_stable() {
        for (i, c) in CloseCode::ALL.iter().enumerate() {
            assert_eq!(c.code(), i as u32);
            assert_eq!(CloseCode::from_code(i as u32), Some(*c));
        }
        assert_eq!(CloseCode::Shutdown.code(), 8);
        assert_eq!(CloseCode::from_code(9), None);
    }
}
