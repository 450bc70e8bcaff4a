//! Messages between an edge and the origin: registration, load, RTT probes, placement, tree
//! assignment and draining.

use std::net::SocketAddr;

use crate::id::{EdgeId, MeetingId, RegionId, TreeEpoch};
use crate::wire::{DecodeError, EncodeError, Reader, Wire, Writer, put_list, take_list};
use crate::{MAX_PEERS, MAX_URL_LEN};

/// What an edge tells the origin about itself when its link comes up (`Register`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeInfo {
    pub id: EdgeId,
    pub region: RegionId,
    /// Latitude in millionths of a degree, -90e6..=90e6 (geo steering).
    pub lat_e6: i32,
    /// Longitude in millionths of a degree, -180e6..=180e6.
    pub lon_e6: i32,
    /// Where other edges dial its relay (QUIC) endpoint.
    pub relay_addr: SocketAddr,
    /// Its public HTTP base URL (signaling, WHIP/WHEP), at most [`MAX_URL_LEN`] bytes.
    pub http_url: String,
    /// Participants it accepts before refusing joins.
    pub capacity: u32,
}

/// An edge's load, sent every heartbeat (`Heartbeat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    pub participants: u32,
    pub meetings: u32,
    /// CPU use in thousandths of the machine.
    pub cpu_permille: u16,
    /// Being drained: place nothing new here.
    pub draining: bool,
}

/// The smoothed RTT from the reporting edge to one peer edge (`RttReport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RttSample {
    pub peer: EdgeId,
    pub rtt_us: u32,
}

/// A live edge, as the origin lists it in `Peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub id: EdgeId,
    pub region: RegionId,
    pub relay_addr: SocketAddr,
}

/// Where a draining edge sends its clients: the nearest edge that takes new meetings, as the
/// origin names it in `Drain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainTarget {
    pub edge: EdgeId,
    /// Its HTTP base URL, at most [`MAX_URL_LEN`] bytes.
    pub http_url: String,
}

/// An edge's neighbours in one meeting's tree. Updates with an epoch older than the one
/// applied are ignored; an empty neighbour list means "leave the tree".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUpdate {
    pub meeting: MeetingId,
    pub epoch: TreeEpoch,
    /// At most [`MAX_PEERS`].
    pub neighbours: Vec<EdgeId>,
}

const LAT_E6: std::ops::RangeInclusive<i32> = -90_000_000..=90_000_000;
const LON_E6: std::ops::RangeInclusive<i32> = -180_000_000..=180_000_000;

impl Wire for EdgeInfo {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        if !LAT_E6.contains(&self.lat_e6) {
            return Err(EncodeError::BadValue("latitude"));
        }
        if !LON_E6.contains(&self.lon_e6) {
            return Err(EncodeError::BadValue("longitude"));
        }
        self.id.put(w)?;
        self.region.put(w)?;
        w.i32(self.lat_e6);
        w.i32(self.lon_e6);
        self.relay_addr.put(w)?;
        w.str(&self.http_url, MAX_URL_LEN, "http url")?;
        w.varint_u32(self.capacity);
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = EdgeId::take(r)?;
        let region = RegionId::take(r)?;
        let lat_e6 = r.i32()?;
        let lon_e6 = r.i32()?;
        if !LAT_E6.contains(&lat_e6) {
            return Err(DecodeError::BadValue("latitude"));
        }
        if !LON_E6.contains(&lon_e6) {
            return Err(DecodeError::BadValue("longitude"));
        }
        Ok(EdgeInfo {
            id,
            region,
            lat_e6,
            lon_e6,
            relay_addr: SocketAddr::take(r)?,
            http_url: r.str(MAX_URL_LEN, "http url")?.to_owned(),
            capacity: r.varint_u32("capacity")?,
        })
    }
}

impl Wire for Load {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.varint_u32(self.participants);
        w.varint_u32(self.meetings);
        w.u16(self.cpu_permille);
        w.bool(self.draining);
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Load {
            participants: r.varint_u32("participants")?,
            meetings: r.varint_u32("meetings")?,
            cpu_permille: r.u16()?,
            draining: r.bool("draining")?,
        })
    }
}

impl Wire for RttSample {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.peer.put(w)?;
        w.varint_u32(self.rtt_us);
        Ok(())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RttSample {
            peer: EdgeId::take(r)?,
            rtt_us: r.varint_u32("rtt")?,
        })
    }
}

impl Wire for PeerInfo {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.id.put(w)?;
        self.region.put(w)?;
        self.relay_addr.put(w)
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PeerInfo {
            id: EdgeId::take(r)?,
            region: RegionId::take(r)?,
            relay_addr: SocketAddr::take(r)?,
        })
    }
}

impl Wire for DrainTarget {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.edge.put(w)?;
        w.str(&self.http_url, MAX_URL_LEN, "http url")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DrainTarget {
            edge: EdgeId::take(r)?,
            http_url: r.str(MAX_URL_LEN, "http url")?.to_owned(),
        })
    }
}

impl Wire for TreeUpdate {
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.meeting.put(w)?;
        self.epoch.put(w)?;
        put_list(w, &self.neighbours, MAX_PEERS, "neighbours")
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TreeUpdate {
            meeting: MeetingId::take(r)?,
            epoch: TreeEpoch::take(r)?,
            neighbours: take_list(r, MAX_PEERS, "neighbours")?,
        })
    }
}
