//! The control message family and its codec.
//!
//! Control frames travel on one bidirectional QUIC stream per link, in order:
//!
//! ```text
//! frame = body length (u32 BE, ≤ MAX_FRAME_LEN) | body
//! body  = message type (varint, see [`ty`]) | fields
//! ```
//!
//! Fields: numbers that fit in a `u32` are varints, `u64`s and handles (track, participant,
//! flow ids, epochs, nonces) are fixed 8 bytes, `u16`/`i32` fixed width, `bool` one byte 0/1,
//! names (meeting, edge, region ids) and other strings a varint length and UTF-8, lists a
//! varint count and the items, `Option` a byte 0/1 and the value. Every string and list has a
//! named bound; [`Control::encode`] refuses a value that breaks one, so it never writes a
//! frame that [`Control::decode_body`] refuses.

mod frame;
mod link;
mod meeting;
mod origin;

pub use frame::{FrameDecoder, MAX_BUFFERED};
pub use link::{CloseCode, Hello, Role};
pub use meeting::{
    Announce, CodecDesc, LayerDesc, MediaKind, MeetingEvent, TrackDesc, TrackSource,
};
pub use origin::{DrainTarget, EdgeInfo, Load, PeerInfo, RttSample, TreeUpdate};

use crate::VERSION;
use crate::id::{EdgeId, FlowId, LayerSet, MeetingId};
use crate::wire::{DecodeError, EncodeError, Reader, Wire, Writer, put_list, take_list};
use crate::{MAX_FRAME_LEN, MAX_LAYERS, MAX_NACK_SEQS, MAX_PEERS, MAX_REASON_LEN, MAX_URL_LEN};

/// One control message. Fields are public: build them directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    // Link.
    /// The first frame in each direction, exactly once.
    Hello(Hello),
    /// Answered by `Pong` with the same nonce; the session sends and answers these itself.
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// The sender is closing the link; `reason` is at most [`MAX_REASON_LEN`] bytes.
    Goodbye {
        code: CloseCode,
        reason: String,
    },

    // Edge → origin.
    Register(EdgeInfo),
    Heartbeat(Load),
    /// At most [`MAX_PEERS`] samples.
    RttReport(Vec<RttSample>),
    /// A meeting's size on the sending edge; 0 participants means the meeting left it.
    Presence {
        meeting: MeetingId,
        participants: u32,
        publishers: u32,
    },
    /// Where should this meeting live? Answered by `Placed` with the same `id`.
    PlaceRequest {
        id: u64,
        meeting: MeetingId,
    },

    // Origin → edge.
    /// All live edges (for dialing and RTT probes), at most [`MAX_PEERS`].
    Peers(Vec<PeerInfo>),
    TreeUpdate(TreeUpdate),
    /// The answer to `PlaceRequest { id, .. }`: `edge` hosts the meeting at `http_url`.
    Placed {
        id: u64,
        meeting: MeetingId,
        edge: EdgeId,
        http_url: String,
    },
    /// An operator drains the edge: take no new joins, move every client to `target` (or,
    /// per meeting, to where the origin now places it), and report `Load::draining` from now
    /// on. Idempotent; sent again when the target changes. `None`: no other edge takes new
    /// meetings, so joins are refused and clients stay.
    Drain {
        target: Option<DrainTarget>,
    },

    // Edge ↔ edge, per meeting.
    Announce(Announce),
    /// The track on `flow` is gone.
    Withdraw {
        meeting: MeetingId,
        flow: FlowId,
    },
    /// The sender lost its own route to the track on `flow` (a link behind it broke): keep
    /// the track, take another route if one is announced, and tell your own downstream.
    RouteLost {
        meeting: MeetingId,
        flow: FlowId,
    },
    /// The track's mute state or layers changed (at most [`MAX_LAYERS`] layers).
    TrackState {
        meeting: MeetingId,
        flow: FlowId,
        muted: bool,
        layers: Vec<LayerDesc>,
    },
    /// Send these layers of `flow`; the empty set unsubscribes.
    Subscribe {
        meeting: MeetingId,
        flow: FlowId,
        layers: LayerSet,
    },
    KeyframeRequest {
        meeting: MeetingId,
        flow: FlowId,
        layer: u8,
    },
    /// Resend these RTP sequence numbers of one layer (at most [`MAX_NACK_SEQS`]).
    Nack {
        flow: FlowId,
        layer: u8,
        seqs: Vec<u16>,
    },
    Event(MeetingEvent),
}

/// Message type numbers (the first varint of a body). Never reuse a retired number.
pub mod ty {
    pub const HELLO: u64 = 0x00;
    pub const PING: u64 = 0x01;
    pub const PONG: u64 = 0x02;
    pub const GOODBYE: u64 = 0x03;
    pub const REGISTER: u64 = 0x10;
    pub const HEARTBEAT: u64 = 0x11;
    pub const RTT_REPORT: u64 = 0x12;
    pub const PRESENCE: u64 = 0x13;
    pub const PLACE_REQUEST: u64 = 0x14;
    pub const PEERS: u64 = 0x20;
    pub const TREE_UPDATE: u64 = 0x21;
    pub const PLACED: u64 = 0x22;
    pub const DRAIN: u64 = 0x23;
    pub const ANNOUNCE: u64 = 0x30;
    pub const WITHDRAW: u64 = 0x31;
    pub const ROUTE_LOST: u64 = 0x37;
    pub const TRACK_STATE: u64 = 0x32;
    pub const SUBSCRIBE: u64 = 0x33;
    pub const KEYFRAME_REQUEST: u64 = 0x34;
    pub const NACK: u64 = 0x35;
    pub const EVENT: u64 = 0x36;
}

impl Control {
    /// Appends one complete frame (length prefix included) to `out`. On error `out` is left
    /// as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut res = self.encode_fields(&mut Writer::new(out));
        let len = out.len() - start - 4;
        if res.is_ok() && len > MAX_FRAME_LEN {
            res = Err(EncodeError::FrameTooLarge { len });
        }
        match res {
            Ok(()) => out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes()),
            Err(_) => out.truncate(start),
        }
        res
    }

    /// Decodes one frame body (the bytes after the length prefix).
    pub fn decode_body(body: &[u8]) -> Result<Control, DecodeError> {
        let mut r = Reader::new(body);
        let res = Self::decode_fields(&mut r).and_then(|msg| r.finish().map(|()| msg));
        match res {
            // A Hello of another version that this version cannot read is still a version
            // mismatch, not garbage: the message type and the leading version never change.
            Err(_) => match hello_version(body) {
                Some(v) if v != VERSION => Err(DecodeError::Version(v)),
                _ => res,
            },
            ok => ok,
        }
    }

    /// The message type number ([`ty`]).
    pub fn ty(&self) -> u64 {
        match self {
            Control::Hello(_) => ty::HELLO,
            Control::Ping { .. } => ty::PING,
            Control::Pong { .. } => ty::PONG,
            Control::Goodbye { .. } => ty::GOODBYE,
            Control::Register(_) => ty::REGISTER,
            Control::Heartbeat(_) => ty::HEARTBEAT,
            Control::RttReport(_) => ty::RTT_REPORT,
            Control::Presence { .. } => ty::PRESENCE,
            Control::PlaceRequest { .. } => ty::PLACE_REQUEST,
            Control::Peers(_) => ty::PEERS,
            Control::TreeUpdate(_) => ty::TREE_UPDATE,
            Control::Placed { .. } => ty::PLACED,
            Control::Drain { .. } => ty::DRAIN,
            Control::Announce(_) => ty::ANNOUNCE,
            Control::Withdraw { .. } => ty::WITHDRAW,
            Control::RouteLost { .. } => ty::ROUTE_LOST,
            Control::TrackState { .. } => ty::TRACK_STATE,
            Control::Subscribe { .. } => ty::SUBSCRIBE,
            Control::KeyframeRequest { .. } => ty::KEYFRAME_REQUEST,
            Control::Nack { .. } => ty::NACK,
            Control::Event(_) => ty::EVENT,
        }
    }

    fn encode_fields(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.varint(self.ty())?;
        match self {
            Control::Hello(m) => m.put(w),
            Control::Ping { nonce } | Control::Pong { nonce } => {
                w.u64(*nonce);
                Ok(())
            }
            Control::Goodbye { code, reason } => {
                code.put(w)?;
                w.str(reason, MAX_REASON_LEN, "reason")
            }
            Control::Register(m) => m.put(w),
            Control::Heartbeat(m) => m.put(w),
            Control::RttReport(m) => put_list(w, m, MAX_PEERS, "rtt samples"),
            Control::Presence {
                meeting,
                participants,
                publishers,
            } => {
                meeting.put(w)?;
                w.varint_u32(*participants);
                w.varint_u32(*publishers);
                Ok(())
            }
            Control::PlaceRequest { id, meeting } => {
                w.u64(*id);
                meeting.put(w)
            }
            Control::Peers(m) => put_list(w, m, MAX_PEERS, "peers"),
            Control::TreeUpdate(m) => m.put(w),
            Control::Placed {
                id,
                meeting,
                edge,
                http_url,
            } => {
                w.u64(*id);
                meeting.put(w)?;
                edge.put(w)?;
                w.str(http_url, MAX_URL_LEN, "http url")
            }
            Control::Drain { target } => match target {
                None => {
                    w.u8(0);
                    Ok(())
                }
                Some(t) => {
                    w.u8(1);
                    t.put(w)
                }
            },
            Control::Announce(m) => m.put(w),
            Control::Withdraw { meeting, flow } | Control::RouteLost { meeting, flow } => {
                meeting.put(w)?;
                flow.put(w)
            }
            Control::TrackState {
                meeting,
                flow,
                muted,
                layers,
            } => {
                meeting.put(w)?;
                flow.put(w)?;
                w.bool(*muted);
                put_list(w, layers, MAX_LAYERS, "layers")
            }
            Control::Subscribe {
                meeting,
                flow,
                layers,
            } => {
                meeting.put(w)?;
                flow.put(w)?;
                layers.put(w)
            }
            Control::KeyframeRequest {
                meeting,
                flow,
                layer,
            } => {
                meeting.put(w)?;
                flow.put(w)?;
                put_layer(w, *layer)
            }
            Control::Nack { flow, layer, seqs } => {
                flow.put(w)?;
                put_layer(w, *layer)?;
                w.count(seqs.len(), MAX_NACK_SEQS, "nack seqs")?;
                seqs.iter().for_each(|s| w.u16(*s));
                Ok(())
            }
            Control::Event(m) => m.put(w),
        }
    }

    fn decode_fields(r: &mut Reader<'_>) -> Result<Control, DecodeError> {
        Ok(match r.varint()? {
            ty::HELLO => Control::Hello(Hello::take(r)?),
            ty::PING => Control::Ping { nonce: r.u64()? },
            ty::PONG => Control::Pong { nonce: r.u64()? },
            ty::GOODBYE => Control::Goodbye {
                code: CloseCode::take(r)?,
                reason: r.str(MAX_REASON_LEN, "reason")?.to_owned(),
            },
            ty::REGISTER => Control::Register(EdgeInfo::take(r)?),
            ty::HEARTBEAT => Control::Heartbeat(Load::take(r)?),
            ty::RTT_REPORT => Control::RttReport(take_list(r, MAX_PEERS, "rtt samples")?),
            ty::PRESENCE => Control::Presence {
                meeting: MeetingId::take(r)?,
                participants: r.varint_u32("participants")?,
                publishers: r.varint_u32("publishers")?,
            },
            ty::PLACE_REQUEST => Control::PlaceRequest {
                id: r.u64()?,
                meeting: MeetingId::take(r)?,
            },
            ty::PEERS => Control::Peers(take_list(r, MAX_PEERS, "peers")?),
            ty::TREE_UPDATE => Control::TreeUpdate(TreeUpdate::take(r)?),
            ty::PLACED => Control::Placed {
                id: r.u64()?,
                meeting: MeetingId::take(r)?,
                edge: EdgeId::take(r)?,
                http_url: r.str(MAX_URL_LEN, "http url")?.to_owned(),
            },
            ty::DRAIN => Control::Drain {
                target: match r.u8()? {
                    0 => None,
                    1 => Some(DrainTarget::take(r)?),
                    _ => return Err(DecodeError::BadValue("drain target option")),
                },
            },
            ty::ANNOUNCE => Control::Announce(Announce::take(r)?),
            ty::WITHDRAW => Control::Withdraw {
                meeting: MeetingId::take(r)?,
                flow: FlowId::take(r)?,
            },
            ty::ROUTE_LOST => Control::RouteLost {
                meeting: MeetingId::take(r)?,
                flow: FlowId::take(r)?,
            },
            ty::TRACK_STATE => Control::TrackState {
                meeting: MeetingId::take(r)?,
                flow: FlowId::take(r)?,
                muted: r.bool("muted")?,
                layers: take_list(r, MAX_LAYERS, "layers")?,
            },
            ty::SUBSCRIBE => Control::Subscribe {
                meeting: MeetingId::take(r)?,
                flow: FlowId::take(r)?,
                layers: LayerSet::take(r)?,
            },
            ty::KEYFRAME_REQUEST => Control::KeyframeRequest {
                meeting: MeetingId::take(r)?,
                flow: FlowId::take(r)?,
                layer: take_layer(r)?,
            },
            ty::NACK => Control::Nack {
                flow: FlowId::take(r)?,
                layer: take_layer(r)?,
                seqs: take_seqs(r)?,
            },
            ty::EVENT => Control::Event(MeetingEvent::take(r)?),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// The version of a `Hello` body, read without the rest of its layout.
fn hello_version(body: &[u8]) -> Option<u16> {
    let mut r = Reader::new(body);
    (r.varint().ok()? == ty::HELLO).then(|| r.u16().ok())?
}

fn put_layer(w: &mut Writer<'_>, layer: u8) -> Result<(), EncodeError> {
    if usize::from(layer) >= MAX_LAYERS {
        return Err(EncodeError::BadValue("layer"));
    }
    w.u8(layer);
    Ok(())
}

fn take_layer(r: &mut Reader<'_>) -> Result<u8, DecodeError> {
    let layer = r.u8()?;
    if usize::from(layer) >= MAX_LAYERS {
        return Err(DecodeError::BadValue("layer"));
    }
    Ok(layer)
}

fn take_seqs(r: &mut Reader<'_>) -> Result<Vec<u16>, DecodeError> {
    let n = r.count(MAX_NACK_SEQS, "nack seqs")?;
    (0..n).map(|_| r.u16()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hops::Hops;

    fn frame(msg: &Control) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn a_ping_frame_is_byte_exact() {
        let bytes = frame(&Control::Ping {
            nonce: 0x0102_0304_0506_0708,
        });
        assert_eq!(bytes, [0, 0, 0, 9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            Control::decode_body(&bytes[4..]),
            Ok(Control::Ping {
                nonce: 0x0102_0304_0506_0708
            })
        );
    }

    #[test]
    fn a_hello_frame_is_byte_exact() {
        let hello = Control::Hello(Hello {
            version: VERSION,
            role: Role::Edge(EdgeId::new("e1").unwrap()),
            region: "eu".parse().unwrap(),
        });
        let bytes = frame(&hello);
        assert_eq!(
            bytes,
            [0, 0, 0, 10, 0x00, 0, 1, 1, 2, b'e', b'1', 2, b'e', b'u']
        );
    }

    #[test]
    fn a_drain_frame_is_byte_exact() {
        let none = frame(&Control::Drain { target: None });
        assert_eq!(none, [0, 0, 0, 2, 0x23, 0]);
        let to = Control::Drain {
            target: Some(DrainTarget {
                edge: EdgeId::new("us-1").unwrap(),
                http_url: "http://u".into(),
            }),
        };
        let bytes = frame(&to);
        assert_eq!(
            bytes,
            [
                0, 0, 0, 16, 0x23, 1, 4, b'u', b's', b'-', b'1', 8, b'h', b't', b't', b'p', b':',
                b'/', b'/', b'u'
            ]
        );
        assert_eq!(Control::decode_body(&bytes[4..]), Ok(to));
        assert_eq!(
            Control::decode_body(&[0x23, 2]),
            Err(DecodeError::BadValue("drain target option"))
        );
    }

    #[test]
    fn bounds_are_refused_on_both_sides() {
        let long = Control::Goodbye {
            code: CloseCode::Normal,
            reason: "x".repeat(MAX_REASON_LEN + 1),
        };
        let mut out = vec![7];
        assert!(matches!(
            long.encode(&mut out),
            Err(EncodeError::TooMany { what: "reason", .. })
        ));
        assert_eq!(out, [7], "a refused message leaves the buffer alone");

        let bad_layer = Control::Nack {
            flow: FlowId(1),
            layer: MAX_LAYERS as u8,
            seqs: vec![],
        };
        assert_eq!(
            bad_layer.encode(&mut out),
            Err(EncodeError::BadValue("layer"))
        );

        // A Nack claiming more seqs than allowed, decoded by hand.
        let mut body = vec![ty::NACK as u8];
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&[0, 0x42, 0x00]);
        assert_eq!(
            Control::decode_body(&body),
            Err(DecodeError::TooMany {
                what: "nack seqs",
                len: 512
            })
        );
    }

    #[test]
    fn a_body_over_the_frame_limit_is_refused() {
        let body = "x".repeat(crate::MAX_EVENT_LEN);
        let peers: Vec<PeerInfo> = (0..MAX_PEERS)
            .map(|i| PeerInfo {
                id: EdgeId::new(&format!("edge-{i:05}")).unwrap(),
                region: "r".parse().unwrap(),
                relay_addr: "10.0.0.1:7000".parse().unwrap(),
            })
            .collect();
        let mut out = Vec::new();
        assert!(matches!(
            Control::Peers(peers).encode(&mut out),
            Err(EncodeError::FrameTooLarge { .. })
        ));
        assert!(out.is_empty());
        let event = Control::Event(MeetingEvent {
            meeting: MeetingId::new("m").unwrap(),
            origin: EdgeId::new("e").unwrap(),
            seq: 1,
            hops: Hops::new(),
            body,
        });
        event.encode(&mut out).unwrap();
    }

    #[test]
    fn unknown_types_trailing_bytes_and_foreign_hellos() {
        assert_eq!(
            Control::decode_body(&[0x3f]),
            Err(DecodeError::UnknownType(0x3f))
        );
        assert_eq!(
            Control::decode_body(&[ty::PING as u8, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(DecodeError::Trailing)
        );
        assert_eq!(Control::decode_body(&[]), Err(DecodeError::Truncated));
        // A version-2 Hello with a layout we cannot read is a version mismatch…
        assert_eq!(
            Control::decode_body(&[0x00, 0, 2, 0xff]),
            Err(DecodeError::Version(2))
        );
        // …but a broken version-1 Hello is just malformed.
        assert_eq!(
            Control::decode_body(&[0x00, 0, 1, 0xff]),
            Err(DecodeError::BadValue("role"))
        );
    }
}
