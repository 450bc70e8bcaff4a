//! Typed ids.
//!
//! Two families:
//! - *Names* chosen by people (`MeetingId`, `EdgeId`, `RegionId`): validated strings, because
//!   they appear in URLs, tokens, DNS labels and config files. [`MAX_NAME_LEN`] and the
//!   character set keep them safe to put in all of those without escaping.
//! - *Handles* minted by Arbor (`ParticipantId`, `TrackId`, `FlowId`): 64-bit numbers with a
//!   prefixed hex text form (`p_1f…`, `t_9a…`, `f_3c…`) so a log line says what kind of thing
//!   it names.
//!
//! Plus [`TreeEpoch`] (a meeting tree's version) and [`LayerSet`] (simulcast layer indices).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::MAX_LAYERS;

/// Longest meeting, edge or region name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {MAX_NAME_LEN} characters")]
    TooLong { kind: &'static str },
    #[error("{kind} may only contain letters, digits, '-', '_' and '.', found {found:?}")]
    BadChar { kind: &'static str, found: char },
    #[error("{kind} must look like {prefix}<16 hex digits>")]
    BadHandle {
        kind: &'static str,
        prefix: &'static str,
    },
}

fn check_name(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(IdError::TooLong { kind });
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(found) => Err(IdError::BadChar { kind, found }),
        None => Ok(()),
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_name($kind, s)?;
                Ok(Self(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_id!(
    /// A meeting (LiveKit calls it a room): the `video.room` claim of a token.
    MeetingId,
    "meeting id"
);
name_id!(
    /// An edge SFU process, unique in a deployment.
    EdgeId,
    "edge id"
);
name_id!(
    /// A deployment region (`eu-west`, `us-east`, …).
    RegionId,
    "region id"
);

macro_rules! handle_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl $name {
            /// The prefix of the text form.
            pub const PREFIX: &'static str = $prefix;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{:016x}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let bad = IdError::BadHandle { kind: $kind, prefix: $prefix };
                let hex = s.strip_prefix($prefix).ok_or(bad.clone())?;
                if hex.len() != 16 {
                    return Err(bad);
                }
                u64::from_str_radix(hex, 16).map(Self).map_err(|_| bad)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

handle_id!(
    /// One participant's presence in a meeting on an edge. A resumed signaling connection
    /// keeps it; a fresh join gets a new one.
    ParticipantId,
    "participant id",
    "p_"
);
handle_id!(
    /// One published media track (a microphone, a camera, a screen share).
    TrackId,
    "track id",
    "t_"
);

handle_id!(
    /// One track on one link direction of the relay (see [`FlowId::new`] for its layout).
    FlowId,
    "flow id",
    "f_"
);

impl MeetingId {
    /// FNV-1a (32 bit) over the id's bytes: stable across builds, processes and machines.
    ///
    /// The edge shell picks a meeting's media worker from this hash, and [`FlowId`] carries
    /// it, so a receiving shell can route a relayed datagram to the right worker from the
    /// flow id alone.
    pub fn hash32(&self) -> u32 {
        const OFFSET: u32 = 0x811c_9dc5;
        const PRIME: u32 = 0x0100_0193;
        self.0
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
    }
}

impl FlowId {
    /// The `n`th flow of `meeting` on a link direction: the meeting's [`MeetingId::hash32`]
    /// in the high 32 bits, `n` (chosen by the sender, unique per meeting and link direction)
    /// in the low 32 bits.
    pub fn new(meeting: &MeetingId, n: u32) -> FlowId {
        FlowId((u64::from(meeting.hash32()) << 32) | u64::from(n))
    }

    /// The [`MeetingId::hash32`] of the flow's meeting.
    pub fn meeting_hash(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The sender's per-meeting number of the flow (the `n` of [`FlowId::new`]).
    pub fn index(self) -> u32 {
        self.0 as u32
    }
}

/// A layer index that is not below [`MAX_LAYERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("layer {0} is out of range (at most {MAX_LAYERS} layers)")]
pub struct LayerOutOfRange(pub u8);

/// A set of simulcast layer indices `0..MAX_LAYERS` (0 = lowest), as a bitmask.
///
/// The empty set means "none" (a `Subscribe` with it unsubscribes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    /// No layers.
    pub const EMPTY: LayerSet = LayerSet(0);
    /// Every layer index below [`MAX_LAYERS`].
    pub const ALL: LayerSet = LayerSet((1 << MAX_LAYERS) - 1);

    /// The set with exactly these bits, or `None` if a bit at or above [`MAX_LAYERS`] is set.
    pub fn from_bits(bits: u8) -> Option<LayerSet> {
        (bits & !Self::ALL.0 == 0).then_some(LayerSet(bits))
    }

    /// The set with only `layer`.
    pub fn single(layer: u8) -> Result<LayerSet, LayerOutOfRange> {
        let mut s = LayerSet::EMPTY;
        s.insert(layer)?;
        Ok(s)
    }

    /// The bitmask: bit `i` set means layer `i` is in the set.
    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, layer: u8) -> bool {
        usize::from(layer) < MAX_LAYERS && self.0 & (1 << layer) != 0
    }

    /// Adds `layer`; refused (set unchanged) when it is not below [`MAX_LAYERS`].
    pub fn insert(&mut self, layer: u8) -> Result<(), LayerOutOfRange> {
        if usize::from(layer) >= MAX_LAYERS {
            return Err(LayerOutOfRange(layer));
        }
        self.0 |= 1 << layer;
        Ok(())
    }

    pub fn remove(&mut self, layer: u8) {
        if usize::from(layer) < MAX_LAYERS {
            self.0 &= !(1 << layer);
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The highest layer in the set.
    pub fn max(self) -> Option<u8> {
        self.iter().last()
    }

    /// The layers in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..MAX_LAYERS as u8).filter(move |&l| self.contains(l))
    }
}

impl fmt::Debug for LayerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The version of a meeting's tree. Updates with an older epoch than the one applied are
/// ignored, which makes tree updates idempotent and safe to reorder.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
pub struct TreeEpoch(pub u64);

impl fmt::Display for TreeEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick an arbitrary epoch
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_validated() {
        assert!(MeetingId::new("standup-42.eu").is_ok());
        assert_eq!(
            MeetingId::new(""),
            Err(IdError::Empty { kind: "meeting id" })
        );
        assert!(matches!(
            MeetingId::new("a/b"),
            Err(IdError::BadChar { found: '/', .. })
        ));
        assert!(matches!(
            MeetingId::new(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn json_rejects_invalid_names() {
        let r: Result<MeetingId, _> = serde_json::from_str("\"bad name\"");
        assert!(r.is_err());
        let ok: MeetingId = serde_json::from_str("\"good\"").unwrap();
        assert_eq!(ok.as_str(), "good");
    }

    #[test]
    fn meeting_hash_is_fnv1a_32() {
        // Reference values of FNV-1a 32 (draft-eastlake-fnv test vectors).
        assert_eq!(MeetingId::new("a").unwrap().hash32(), 0xe40c_292c);
        assert_eq!(MeetingId::new("foobar").unwrap().hash32(), 0xbf9c_f968);
    }

    #[test]
    fn flow_id_carries_the_meeting_hash() {
        let m = MeetingId::new("standup-42").unwrap();
        let f = FlowId::new(&m, 7);
        assert_eq!(f.meeting_hash(), m.hash32());
        assert_eq!(f.index(), 7);
        assert_eq!(f.to_string().len(), 18);
        assert_eq!(f.to_string().parse::<FlowId>().unwrap(), f);
    }

    #[test]
    fn layer_sets_hold_only_valid_layers() {
        let mut s = LayerSet::default();
        assert!(s.is_empty());
        s.insert(2).unwrap();
        s.insert(0).unwrap();
        assert_eq!(
            s.insert(MAX_LAYERS as u8),
            Err(LayerOutOfRange(MAX_LAYERS as u8))
        );
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 2]);
        assert_eq!((s.len(), s.max()), (2, Some(2)));
        assert!(s.contains(2) && !s.contains(1) && !s.contains(200));
        s.remove(2);
        assert_eq!(s, LayerSet::single(0).unwrap());
        assert_eq!(LayerSet::from_bits(0b1000), None);
        assert_eq!(format!("{:?}", LayerSet::ALL), "{0, 1, 2}");
    }

    proptest! {
        #[test]
        fn handles_round_trip(n: u64) {
            let p = ParticipantId(n);
            prop_assert_eq!(p.to_string().parse::<ParticipantId>().unwrap(), p);
            let t = TrackId(n);
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<TrackId>(&json).unwrap(), t);
            // A track id is not a participant id.
            prop_assert!(t.to_string().parse::<ParticipantId>().is_err());
        }

        #[test]
        fn parsing_never_panics(s in ".{0,40}") {
            let _ = s.parse::<ParticipantId>();
            let _ = MeetingId::new(&s);
        }
    }
}
