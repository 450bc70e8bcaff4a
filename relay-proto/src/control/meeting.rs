//! Messages between edges of one meeting's tree: track announcements and state, and meeting
//! events flooded along the tree.

use crate::hops::Hops;
use crate::id::{EdgeId, FlowId, MeetingId, ParticipantId, TrackId};
use crate::wire::{DecodeError, EncodeError, Reader, Wire, Writer, put_list, take_list};
use crate::{MAX_CODEC_NAME_LEN, MAX_EVENT_LEN, MAX_FMTP_LEN, MAX_LAYERS, MAX_RID_LEN};

/// A track offered to a neighbour on `flow` (the sender's flow id for it on this link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub meeting: MeetingId,
    pub flow: FlowId,
    pub track: TrackDesc,
    /// The edges the announcement passed, starting with the publisher's edge.
    pub hops: Hops,
}

/// What a subscriber's edge needs to know to forward a track to browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackDesc {
    pub id: TrackId,
    pub owner: ParticipantId,
    pub kind: MediaKind,
    pub source: TrackSource,
    pub codec: CodecDesc,
    pub muted: bool,
    /// Simulcast layers, lowest first; at most [`MAX_LAYERS`] (one for a plain track).
    pub layers: Vec<LayerDesc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackSource {
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
}

/// The track's codec as negotiated with its publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecDesc {
    /// `"VP8"`, `"opus"`, … at most [`MAX_CODEC_NAME_LEN`] bytes.
    pub name: String,
    pub clock_rate: u32,
    /// Audio channels; 0 for video.
    pub channels: u8,
    /// The SDP `fmtp` parameters, at most [`MAX_FMTP_LEN`] bytes.
    pub fmtp: String,
}

/// One simulcast layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesc {
    /// The publisher's rid, at most [`MAX_RID_LEN`] bytes; `None` for a plain track.
    pub rid: Option<String>,
    pub width: u16,
    pub height: u16,
    pub bitrate_bps: u32,
    /// Whether the publisher is sending it.
    pub active: bool,
}

/// A meeting event (participant joined or left, chat, …) flooded along the tree. Each edge
/// remembers `(origin, seq)` and delivers an event once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingEvent {
    pub meeting: MeetingId,
    /// The edge that created it.
    pub origin: EdgeId,
    /// Increasing per origin edge.
    pub seq: u64,
    pub hops: Hops,
    /// JSON, at most [`MAX_EVENT_LEN`] bytes; the codec checks only the length and UTF-8.
    pub body: String,
}

impl Wire for Announce {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.meeting.put(w)?;
        self.flow.put(w)?;
        self.track.put(w)?;
        self.hops.put(w)
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Announce {
            meeting: MeetingId::take(r)?,
            flow: FlowId::take(r)?,
            track: TrackDesc::take(r)?,
            hops: Hops::take(r)?,
        })
    }
}

impl Wire for TrackDesc {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.id.put(w)?;
        self.owner.put(w)?;
        self.kind.put(w)?;
        self.source.put(w)?;
        self.codec.put(w)?;
        w.bool(self.muted);
        put_list(w, &self.layers, MAX_LAYERS, "layers")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TrackDesc {
            id: TrackId::take(r)?,
            owner: ParticipantId::take(r)?,
            kind: MediaKind::take(r)?,
            source: TrackSource::take(r)?,
            codec: CodecDesc::take(r)?,
            muted: r.bool("muted")?,
            layers: take_list(r, MAX_LAYERS, "layers")?,
        })
    }
}

/// Fieldless enums travel as one byte, their index in declaration order.
macro_rules! enum_wire {
    ($t:ident, $what:literal, [$($v:ident),*]) => {
        impl Wire for $t {
            fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.u8(*self as u8);
                Ok(())
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                const ALL: &[$t] = &[$($t::$v),*];
                ALL.get(usize::from(r.u8()?)).copied().ok_or(DecodeError::BadValue($what))
            }
        }
    };
}

enum_wire!(MediaKind, "media kind", [Audio, Video]);
enum_wire!(
    TrackSource,
    "track source",
    [Camera, Microphone, ScreenShare, ScreenShareAudio]
);

impl Wire for CodecDesc {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str(&self.name, MAX_CODEC_NAME_LEN, "codec name")?;
        w.varint_u32(self.clock_rate);
        w.u8(self.channels);
        w.str(&self.fmtp, MAX_FMTP_LEN, "fmtp")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CodecDesc {
            name: r.str(MAX_CODEC_NAME_LEN, "codec name")?.to_owned(),
            clock_rate: r.varint_u32("clock rate")?,
            channels: r.u8()?,
            fmtp: r.str(MAX_FMTP_LEN, "fmtp")?.to_owned(),
        })
    }
}

impl Wire for LayerDesc {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match &self.rid {
            None => w.u8(0),
            Some(rid) => {
                w.u8(1);
                w.str(rid, MAX_RID_LEN, "rid")?;
            }
        }
        w.u16(self.width);
        w.u16(self.height);
        w.varint_u32(self.bitrate_bps);
        w.bool(self.active);
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let rid = match r.u8()? {
            0 => None,
            1 => Some(r.str(MAX_RID_LEN, "rid")?.to_owned()),
            _ => return Err(DecodeError::BadValue("rid option")),
        };
        Ok(LayerDesc {
            rid,
            width: r.u16()?,
            height: r.u16()?,
            bitrate_bps: r.varint_u32("bitrate")?,
            active: r.bool("active")?,
        })
    }
}

impl Wire for MeetingEvent {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.meeting.put(w)?;
        self.origin.put(w)?;
        w.u64(self.seq);
        self.hops.put(w)?;
        w.str(&self.body, MAX_EVENT_LEN, "event body")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MeetingEvent {
            meeting: MeetingId::take(r)?,
            origin: EdgeId::take(r)?,
            seq: r.u64()?,
            hops: Hops::take(r)?,
            body: r.str(MAX_EVENT_LEN, "event body")?.to_owned(),
        })
    }
}
