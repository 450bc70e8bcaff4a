//! Errors of the sans-IO client.

use str0m::RtcError;

/// Why a [`crate::Client`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// str0m rejected an input or an SDP; the peer connection is usually unusable after this.
    #[error("webrtc: {0}")]
    Rtc(#[from] RtcError),
    /// The answer's SDP did not parse.
    #[error("answer SDP does not parse: {0}")]
    BadAnswer(String),
    /// The peer's offer SDP did not parse.
    #[error("offer SDP does not parse: {0}")]
    BadOffer(String),
    /// A camera configuration the client cannot send.
    #[error("bad video config: {0}")]
    VideoConfig(String),
    /// `accept_answer` without an offer in flight.
    #[error("no offer is pending")]
    NoPendingOffer,
    /// A new offer while the previous one awaits its answer.
    #[error("an offer is already pending; apply its answer first")]
    OfferPending,
    /// The offer would change nothing.
    #[error("nothing to offer")]
    NothingToOffer,
    /// A mid that is not one of this client's recv slots.
    #[error("unknown slot mid {0}")]
    UnknownSlot(String),
    /// More slots than [`crate::subscriber::MAX_SLOTS`].
    #[error("too many recv slots (max {max})")]
    TooManySlots {
        /// The bound.
        max: usize,
    },
    /// A local candidate was rejected.
    #[error("bad local candidate: {0}")]
    Candidate(String),
}
