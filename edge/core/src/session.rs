//! One client's WebRTC session: a str0m [`Rtc`] configured for an SFU, and nothing else.
//!
//! The configuration is the same for every client of an edge (see [`SessionConfig`]):
//! RTP mode (the router forwards packets, never frames), ICE-lite (the edge has public
//! addresses; the client does full ICE), one DTLS certificate shared by every session (so a
//! join costs no key generation), TWCC bandwidth estimation toward the client (the router's
//! layer choice needs a downlink estimate), and the codecs browsers publish: Opus, VP8,
//! H.264 and VP9.
//!
//! str0m is fail-fast: it panics on broken internal invariants, never on input. So every
//! call into the `Rtc` goes through [`guard`]: a panic marks this session dead and the worker
//! removes it — one participant pays for a bug, not the meeting.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt, Rid};
use str0m::net::TcpType;
use str0m::rtp::Ssrc;
use str0m::{Candidate, IceCreds, Input, Output, Rtc, RtcError};

/// Most SSRCs a session maps to (mid, rid): 3 simulcast layers per published m-line for a
/// handful of m-lines, plus repair streams.
pub const MAX_RX_STREAMS: usize = 64;
/// Largest SDP accepted, in bytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most m-lines a session's SDP may have (publications + receive slots).
pub const MAX_MLINES: usize = 160;

/// What every session of a worker shares.
#[derive(Clone)]
pub struct SessionConfig {
    pub crypto: Arc<CryptoProvider>,
    pub cert: DtlsCert,
    /// Host candidates clients can reach: the worker's UDP address and, when enabled, its
    /// passive ICE-TCP address.
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    /// Starting point of the downlink estimate.
    pub initial_bwe: Bitrate,
    /// Whether sessions estimate their downlink with str0m's TWCC send-side BWE (which
    /// paces what they send to the estimate); without it packets leave as they are routed.
    pub send_side_bwe: bool,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// Generates the shared DTLS certificate. Call once per process.
    pub fn new(udp: SocketAddr, tcp: Option<SocketAddr>) -> Result<Self, SessionError> {
        let crypto = Arc::new(crate::dtls::crypto_provider());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or(SessionError::NoCertificate)?;
        Ok(SessionConfig {
            crypto,
            cert,
            udp,
            tcp,
            initial_bwe: Bitrate::kbps(1_000),
            send_side_bwe: true,
        })
    }
}

/// Why a session could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the crypto provider cannot generate a DTLS certificate")]
    NoCertificate,
    #[error("SDP is larger than {MAX_SDP_BYTES} bytes")]
    SdpTooLarge,
    #[error("SDP has more than {MAX_MLINES} m-lines")]
    TooManyMlines,
    #[error("SDP could not be parsed: {0}")]
    SdpParse(String),
    #[error("offer rejected: {0}")]
    SdpRejected(String),
    #[error("session failed: {0}")]
    Rtc(#[from] RtcError),
    #[error("session crashed and was closed")]
    Crashed,
}

/// What one drain step produced. Not boxed on purpose: this is the per-packet path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    Transmit(str0m::net::Transmit),
    Event(str0m::Event),
    /// Drained: the session wants [`Session::handle_timeout`] at this time.
    Timeout(Instant),
}

/// A client's `Rtc` plus the lookups the router needs on every packet.
pub struct Session {
    rtc: Rtc,
    ufrag: String,
    /// SSRC → (mid, rid), learned on the first packet of each stream.
    rx_streams: Vec<(Ssrc, Mid, Option<Rid>)>,
    /// The m-lines of the last accepted offer, in SDP order.
    mids: Vec<Mid>,
    dead: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("ufrag", &self.ufrag)
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on the session's `Rtc`, turning a panic into a dead session.
fn guard<T>(s: &mut Session, f: impl FnOnce(&mut Rtc) -> T) -> Result<T, SessionError> {
    if s.dead {
        return Err(SessionError::Crashed);
    }
    match catch_unwind(AssertUnwindSafe(|| f(&mut s.rtc))) {
        Ok(v) => Ok(v),
        Err(_) => {
            s.dead = true;
            Err(SessionError::Crashed)
        }
    }
}

impl Session {
    /// A new session with its own ICE credentials (`ufrag` must be unique in the worker: the
    /// demux table finds sessions by it).
    pub fn new(now: Instant, cfg: &SessionConfig, creds: IceCreds) -> Self {
        let ufrag = creds.ufrag.clone();
        let mut builder = Rtc::builder()
            .set_crypto_provider(cfg.crypto.clone())
            .set_dtls_cert(cfg.cert.clone())
            .set_local_ice_credentials(creds)
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .enable_bwe(cfg.send_side_bwe.then_some(cfg.initial_bwe))
            .clear_codecs()
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(2)));
        for codec in VIDEO_CODECS {
            builder = match codec {
                Codec::Vp8 => builder.enable_vp8(true),
                Codec::H264 => builder.enable_h264(true),
                Codec::Vp9 => builder.enable_vp9(true),
                _ => builder,
            };
        }
        let mut rtc = builder.build(now);
        if let Ok(c) = Candidate::host(cfg.udp, "udp") {
            rtc.add_local_candidate(c);
        }
        if let Some(tcp) = cfg.tcp {
            let c = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build();
            if let Ok(c) = c {
                rtc.add_local_candidate(c);
            }
        }
        Session {
            rtc,
            ufrag,
            rx_streams: Vec::new(),
            mids: Vec::new(),
            dead: false,
        }
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Whether the `Rtc` is still alive (not closed, not crashed, ICE not timed out).
    pub fn is_alive(&self) -> bool {
        !self.dead && self.rtc.is_alive()
    }

    /// Accepts a client offer and returns the answer SDP. Bounded before parsing.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SessionError> {
        if sdp.len() > MAX_SDP_BYTES {
            return Err(SessionError::SdpTooLarge);
        }
        if sdp.matches("\nm=").count() > MAX_MLINES {
            return Err(SessionError::TooManyMlines);
        }
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| SessionError::SdpParse(tidy_parse_error(&e.to_string())))?;
        let answer = guard(self, |rtc| rtc.sdp_api().accept_offer(offer))?
            .map_err(|e| SessionError::SdpRejected(e.to_string()))?;
        self.mids = sdp
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .map(Mid::from)
            .collect();
        Ok(follow_offer_order(sdp, &answer.to_sdp_string()))
    }

    /// The m-lines of the session, in SDP order.
    pub fn mids(&self) -> Vec<Mid> {
        self.mids.clone()
    }

    /// Adds a trickled remote candidate (`a=candidate:` line or bare `candidate:` value).
    /// Candidates we cannot use are ignored, as WHIP asks.
    pub fn add_remote_candidate(&mut self, line: &str) -> Result<(), SessionError> {
        let line = line.trim().trim_start_matches("a=");
        if let Ok(c) = Candidate::from_sdp_string(line) {
            guard(self, |rtc| rtc.add_remote_candidate(c))?;
        }
        Ok(())
    }

    /// Whether this datagram may be fed to the session: str0m's own check that the source is
    /// an ICE-validated address (or a STUN message for our ufrag). Never skip it: it is what
    /// keeps forged DTLS from an unchecked address away from the session.
    pub fn accepts(&self, input: &Input<'_>) -> bool {
        !self.dead && self.rtc.accepts(input)
    }

    /// Feeds a datagram that [`Session::accepts`] approved.
    pub fn handle_input(&mut self, input: Input<'_>) -> Result<(), SessionError> {
        guard(self, |rtc| rtc.handle_input(input))??;
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        guard(self, |rtc| rtc.handle_input(Input::Timeout(now)))??;
        Ok(())
    }

    /// One step of the drain loop. Call until it returns [`Step::Timeout`] after every
    /// mutation (str0m's single-mutation rule).
    pub fn poll(&mut self) -> Result<Step, SessionError> {
        let out = guard(self, |rtc| rtc.poll_output())??;
        Ok(match out {
            Output::Transmit(t) => Step::Transmit(t),
            Output::Event(e) => Step::Event(e),
            Output::Timeout(t) => Step::Timeout(t),
        })
    }

    /// The (mid, rid) an incoming SSRC belongs to.
    pub fn rx_stream(&mut self, ssrc: Ssrc) -> Option<(Mid, Option<Rid>)> {
        if let Some((_, mid, rid)) = self.rx_streams.iter().find(|(s, _, _)| *s == ssrc) {
            return Some((*mid, *rid));
        }
        let found = guard(self, |rtc| {
            rtc.direct_api()
                .stream_rx(&ssrc)
                .map(|s| (s.mid(), s.rid()))
        })
        .ok()
        .flatten()?;
        if self.rx_streams.len() >= MAX_RX_STREAMS {
            self.rx_streams.remove(0);
        }
        self.rx_streams.push((ssrc, found.0, found.1));
        Some(found)
    }

    /// The codec an incoming payload type stands for.
    pub fn codec_of(&self, pt: Pt) -> Option<PayloadParams> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .cloned()
    }

    /// Our payload type for `codec` on m-line `mid`, among those negotiated there. H.264 also
    /// matches packetization mode and profile, since a decoder cannot switch those.
    pub fn send_pt(&self, mid: Mid, codec: &PayloadParams) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let want = codec.spec();
        let candidates = || {
            self.rtc
                .codec_config()
                .params()
                .iter()
                .filter(|p| media.remote_pts().contains(&p.pt()))
                .filter(move |p| p.spec().codec == want.codec)
        };
        if want.codec != Codec::H264 {
            return candidates().map(|p| p.pt()).next();
        }
        let same = |p: &&PayloadParams| {
            p.spec().format.packetization_mode == want.format.packetization_mode
        };
        let profile = |p: &&PayloadParams| {
            p.spec().format.profile_level_id.map(|v| v >> 8)
                == want.format.profile_level_id.map(|v| v >> 8)
        };
        candidates()
            .filter(same)
            .find(profile)
            .or_else(|| candidates().find(same))
            .map(|p| p.pt())
    }

    /// The codec the client will most likely send on `mid`: the first payload type it
    /// negotiated there (browsers send their first preference). The router corrects it from
    /// the first packet if the client picks another.
    pub fn negotiated_codec(&self, mid: Mid) -> Option<PayloadParams> {
        let media = self.rtc.media(mid)?;
        media.remote_pts().iter().find_map(|pt| {
            self.codec_of(*pt)
                .filter(|p| !matches!(p.spec().codec, Codec::Rtx | Codec::Red))
        })
    }

    /// The kind and direction (ours) of an m-line.
    pub fn media(&self, mid: Mid) -> Option<(str0m::media::MediaKind, str0m::media::Direction)> {
        self.rtc.media(mid).map(|m| (m.kind(), m.direction()))
    }

    /// The simulcast rids the client sends on `mid`, in the order it declared them.
    pub fn recv_rids(&self, mid: Mid) -> Vec<Rid> {
        match self.rtc.media(mid).map(|m| m.rids_rx()) {
            Some(str0m::media::Rids::Specific(rids)) => rids.clone(),
            _ => Vec::new(),
        }
    }

    /// Direct access for the router (writing RTP, requesting keyframes, BWE targets).
    pub fn with_rtc<T>(&mut self, f: impl FnOnce(&mut Rtc) -> T) -> Result<T, SessionError> {
        guard(self, f)
    }

    /// Soft ICE restart for an ICE-lite server (WHIP/WHEP PATCH): new local credentials,
    /// the client's new remote ones. The nominated pair keeps carrying media meanwhile.
    pub fn set_ice_credentials(
        &mut self,
        local: IceCreds,
        remote: IceCreds,
    ) -> Result<(), SessionError> {
        let ufrag = local.ufrag.clone();
        guard(self, |rtc| {
            let mut api = rtc.direct_api();
            api.set_local_ice_credentials(local);
            api.set_remote_ice_credentials(remote);
        })?;
        self.ufrag = ufrag;
        Ok(())
    }

    /// Starts closing (RTCP BYE, DTLS close_notify); drain afterwards.
    pub fn close(&mut self) {
        let _ = guard(self, |rtc| rtc.close());
    }
}

/// The video codecs an edge forwards, in its own preference order.
pub const VIDEO_CODECS: [Codec; 3] = [Codec::Vp8, Codec::H264, Codec::Vp9];

/// Reorders the payload types of each answer m-line to follow the offer's order for the same
/// mid. str0m lists codecs in its configured order; a browser sends the answer's first codec,
/// so without this a client that prefers VP9 or H.264 (Safari, `setCodecPreferences`) would
/// send VP8. Only the order changes, never the set.
pub fn follow_offer_order(offer: &str, answer: &str) -> String {
    let offer_sections = sections(offer);
    let mut out = String::with_capacity(answer.len());
    for section in sections(answer) {
        let mid = section_mid(section);
        let offered = offer_sections.iter().find(|o| section_mid(o) == mid);
        match (mid, offered) {
            (Some(_), Some(offered)) => out.push_str(&reorder_mline(section, offered)),
            _ => out.push_str(section),
        }
    }
    out
}

/// Splits an SDP into the session part and its m-sections, keeping line endings.
fn sections(sdp: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = sdp.match_indices("\nm=").map(|(i, _)| i + 1).collect();
    starts.insert(0, 0);
    starts.push(sdp.len());
    starts.windows(2).map(|w| &sdp[w[0]..w[1]]).collect()
}

fn section_mid(section: &str) -> Option<&str> {
    section
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
}

/// Payload type → codec name, from a section's `a=rtpmap` lines.
fn rtpmaps(section: &str) -> Vec<(&str, &str)> {
    section
        .lines()
        .filter_map(|l| {
            let (pt, rest) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            Some((pt, rest.split('/').next()?))
        })
        .collect()
}

fn name_of<'a>(map: &[(&str, &'a str)], pt: &str) -> Option<&'a str> {
    map.iter().find(|(p, _)| *p == pt).map(|(_, n)| *n)
}

fn reorder_mline(section: &str, offered: &str) -> String {
    let Some((mline, rest)) = section.split_once('\n') else {
        return section.to_owned();
    };
    let (mline, cr) = match mline.strip_suffix('\r') {
        Some(m) => (m, "\r"),
        None => (mline, ""),
    };
    let fields: Vec<&str> = mline.split(' ').collect();
    let offered_pts: Vec<&str> = offered
        .lines()
        .next()
        .map(|l| l.trim_end().split(' ').skip(3).collect())
        .unwrap_or_default();
    if fields.len() <= 3 || offered_pts.is_empty() {
        return section.to_owned();
    }
    let (ours, theirs) = (rtpmaps(section), rtpmaps(offered));
    // Rank by the same payload type in the offer, else by the first offered one with the
    // same codec name; unknown ones keep their place at the end. Each key is computed once.
    let rank = |pt: &str| {
        offered_pts.iter().position(|o| *o == pt).or_else(|| {
            let name = name_of(&ours, pt)?;
            offered_pts
                .iter()
                .position(|o| name_of(&theirs, o).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        })
    };
    let mut pts: Vec<(usize, &str)> = fields[3..]
        .iter()
        .map(|pt| (rank(pt).unwrap_or(usize::MAX), *pt))
        .collect();
    pts.sort_by_key(|(r, _)| *r);
    let pts: Vec<&str> = pts.into_iter().map(|(_, pt)| pt).collect();
    format!("{} {}{cr}\n{rest}", fields[..3].join(" "), pts.join(" "))
}

/// str0m's parser errors span lines and carry a pointer offset; a client needs the gist.
fn tidy_parse_error(raw: &str) -> String {
    raw.lines()
        .map(|l| match l.find(" at PointerOffset(") {
            Some(i) => &l[..i],
            None => l,
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fresh ICE credentials: ufrag 8 and password 24 characters from `[a-zA-Z0-9]`.
pub fn ice_creds(rng: &mut impl rand::Rng) -> IceCreds {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    };
    IceCreds {
        ufrag: pick(8),
        pass: pick(24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_follows_the_offered_codec_order() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 98 99 96 97\r\na=mid:1\r\n\
                     a=rtpmap:98 VP9/90000\r\na=rtpmap:99 rtx/90000\r\n\
                     a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";
        let answer = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\na=mid:1\r\n\
                      a=rtpmap:96 VP8/90000\r\na=rtpmap:98 VP9/90000\r\n";
        let fixed = follow_offer_order(offer, answer);
        assert!(
            fixed.contains("m=video 9 UDP/TLS/RTP/SAVPF 98 99 96 97\r\n"),
            "{fixed}"
        );
        assert_eq!(fixed.len(), answer.len());
        assert!(fixed.starts_with("v=0\r\ns=-\r\n") && fixed.ends_with("VP9/90000\r\n"));
        // Nothing to follow: unchanged.
        assert_eq!(follow_offer_order("v=0\r\n", answer), answer);
    }

    #[test]
    fn parse_errors_read_as_one_clean_line() {
        let raw = "SDP parse: Parse error at PointerOffset(0x7fa3a0009bb3)\nUnexpected end of input\nExpected `o`\nsdp line\n";
        assert_eq!(
            tidy_parse_error(raw),
            "SDP parse: Parse error; Unexpected end of input; Expected `o`; sdp line"
        );
    }
}
