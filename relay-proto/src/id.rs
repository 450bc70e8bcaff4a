//! Typed ids.
//!
//! Two families:
//! - *Names* chosen by people (`MeetingId`, `EdgeId`, `RegionId`): validated strings, because
//!   they appear in URLs, tokens, DNS labels and config files. [`MAX_NAME_LEN`] and the
//!   character set keep them safe to put in all of those without escaping.
//! - *Handles* minted by Arbor (`ParticipantId`, `TrackId`): random 64-bit numbers with a
//!   prefixed hex text form (`p_1f…`, `t_9a…`) so a log line says what kind of thing it names.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
