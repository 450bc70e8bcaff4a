//! One synthetic meeting participant: one str0m `Rtc` (one PeerConnection, as the protocol
//! wants) carrying the [`Publisher`]'s `sendonly` m-lines and the [`Subscriber`]'s `recvonly`
//! slots.
//!
//! The client either offers (the Arbor protocol, and a publisher joining Janus) with
//! [`Client::create_offer`] / [`Client::accept_answer`], or answers a peer's offer (a Janus
//! subscriber) with [`Client::accept_offer`], whose m-lines become recv slots.
//!
//! Sans-IO, in str0m's call shape: feed [`Client::handle_input`] with datagrams and timeouts,
//! then drain [`Client::poll_output`] until it returns [`Output::Timeout`]. The client keeps
//! str0m's single-mutation rule internally: every mutation of the `Rtc` (an input, one written
//! RTP packet, a PLI, an SDP change) is followed by a full drain of str0m's outputs, whose
//! datagrams are queued here for the caller.
//!
//! str0m runs in RTP mode because its frame-mode VP8 packetizer writes no PictureID, which
//! browsers always send and SFUs must rewrite; see [`crate::vp8`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Rtc};

use crate::error::ClientError;
use crate::media::{AudioConfig, VideoConfig};
use crate::protocol::{ClientMsg, Kind, Publication};
use crate::publisher::{Publisher, PublisherStats};
use crate::slot::SlotStats;
use crate::srtp::{self, NegotiatedProfile, SrtpProfile};
use crate::stamp::Epoch;
use crate::subscriber::{MAX_SLOTS, Subscriber};
use crate::throttle::ThrottleStats;

/// Datagrams queued for the caller at most; past it the newest are dropped and counted.
pub const MAX_QUEUED_TRANSMITS: usize = 8192;
/// Client events queued at most.
const MAX_QUEUED_EVENTS: usize = 256;

/// What a client sends and receives.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Display name sent with `join` (the driver uses it).
    pub name: Option<String>,
    /// Seeds every random choice (SSRC-independent: sequence/timestamp origins, frame sizes).
    pub seed: u64,
    /// The shared reference for one-way latency.
    pub epoch: Epoch,
    /// Stamped into every frame so subscribers can tell publishers apart.
    pub source_id: u32,
    /// The camera; `None` publishes no video.
    pub video: Option<VideoConfig>,
    /// The microphone; `None` publishes no audio.
    pub audio: Option<AudioConfig>,
    /// Video recv slots in the first offer.
    pub video_slots: usize,
    /// Audio recv slots in the first offer.
    pub audio_slots: usize,
    /// How often str0m reports ingress/egress statistics (loss, NACKs, jitter); `None` is off.
    pub stats_interval: Option<Duration>,
    /// Enables str0m's send-side BWE and pacer with this start rate; `None` sends unpaced.
    pub bwe_initial_bps: Option<u64>,
    /// The SRTP profile the session must use: the client closes it if DTLS negotiated another
    /// one ([`ClientEvent::SrtpRefused`]). str0m cannot narrow what it offers or accepts, so
    /// this is a check, not a preference (see [`crate::srtp`]). `None` accepts any.
    pub srtp_profile: Option<SrtpProfile>,
}

impl ClientConfig {
    /// A participant publishing the default camera (q/h/f) and a silent microphone, with no
    /// recv slots.
    pub fn new(epoch: Epoch) -> Self {
        ClientConfig {
            name: None,
            seed: 0,
            epoch,
            source_id: 0,
            video: Some(VideoConfig::default()),
            audio: Some(AudioConfig::default()),
            video_slots: 0,
            audio_slots: 0,
            stats_interval: Some(Duration::from_secs(1)),
            bwe_initial_bps: None,
            srtp_profile: None,
        }
    }

    /// A participant that only receives.
    pub fn subscriber(epoch: Epoch, video_slots: usize, audio_slots: usize) -> Self {
        ClientConfig {
            video: None,
            audio: None,
            video_slots,
            audio_slots,
            ..Self::new(epoch)
        }
    }
}

/// An input to [`Client::handle_input`].
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Time passed (a timeout fired).
    Timeout,
    /// A UDP datagram arrived.
    Datagram {
        /// Sender.
        source: SocketAddr,
        /// Our socket address it arrived on.
        destination: SocketAddr,
        /// Its bytes.
        contents: &'a [u8],
    },
}

/// An output of [`Client::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// Send this datagram.
    Transmit(Transmit),
    /// Nothing more now; call `handle_input(_, Input::Timeout)` at this instant.
    Timeout(Instant),
}

/// Connection-level happenings, from [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// ICE and DTLS are up; media flows.
    Connected,
    /// The ICE state changed.
    IceState(IceConnectionState),
    /// The remote closed DTLS or SCTP.
    Closed,
    /// DTLS negotiated another SRTP profile than [`ClientConfig::srtp_profile`]; the client
    /// closed the session.
    SrtpRefused {
        /// The pinned profile.
        required: SrtpProfile,
        /// What the handshake picked (`None`: a profile str0m cannot name).
        negotiated: Option<SrtpProfile>,
    },
}

/// An offer to send as an `offer` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The SDP.
    pub sdp: String,
    /// The m-lines we send on.
    pub publish: Vec<Publication>,
}

impl Offer {
    /// The `offer` message.
    pub fn to_msg(&self) -> ClientMsg {
        ClientMsg::Offer {
            sdp: self.sdp.clone(),
            publish: self.publish.clone(),
        }
    }
}

/// Which m-line is what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mids {
    /// The sendonly microphone.
    pub audio: Option<Mid>,
    /// The sendonly simulcast camera.
    pub video: Option<Mid>,
    /// Video recv slots, in creation order.
    pub video_slots: Vec<Mid>,
    /// Audio recv slots, in creation order.
    pub audio_slots: Vec<Mid>,
}

/// Counters only the tokio driver knows (left at their defaults by the sans-IO client).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriverStats {
    /// The current downlink limit.
    pub downlink_limit_bps: Option<u64>,
    /// What the downlink throttle passed and dropped.
    pub downlink: ThrottleStats,
    /// Datagrams the socket refused to send.
    pub udp_send_errors: u64,
    /// Inputs str0m rejected.
    pub input_errors: u64,
    /// Server messages that did not parse.
    pub bad_server_messages: u64,
    /// Whether the signaling socket is still open.
    pub signaling_open: bool,
}

/// A snapshot of everything measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientStats {
    /// ICE+DTLS up.
    pub connected: bool,
    /// From client creation to connect.
    pub connect_time: Option<Duration>,
    /// The send side.
    pub publisher: PublisherStats,
    /// Every recv slot.
    pub slots: Vec<SlotStats>,
    /// str0m's TWCC estimate of our uplink (with `bwe_initial_bps`).
    pub uplink_estimate_bps: Option<u64>,
    /// Round-trip time from str0m's peer stats.
    pub rtt: Option<Duration>,
    /// The SRTP profile the DTLS handshake negotiated.
    pub srtp_profile: Option<SrtpProfile>,
    /// Datagrams dropped because the caller did not poll.
    pub transmits_dropped: u64,
    /// Datagrams str0m could not even classify.
    pub bad_datagrams: u64,
    /// Filled by the tokio driver.
    pub driver: DriverStats,
}

/// One synthetic participant.
#[derive(Debug)]
pub struct Client {
    rtc: Rtc,
    created: Instant,
    publisher: Publisher,
    subscriber: Subscriber,
    pending: Option<SdpPendingOffer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    rtc_timeout: Instant,
    connected_at: Option<Instant>,
    uplink_estimate: Option<Bitrate>,
    rtt: Option<Duration>,
    transmits_dropped: u64,
    bad_datagrams: u64,
    initial_slots: (usize, usize),
    srtp: NegotiatedProfile,
    srtp_required: Option<SrtpProfile>,
}

impl Client {
    /// A client that has offered nothing yet.
    pub fn new(now: Instant, config: ClientConfig) -> Self {
        let mut builder = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_stats_interval(config.stats_interval)
            .set_crypto_provider(Arc::new(srtp::crypto_provider()));
        if let Some(bps) = config.bwe_initial_bps {
            builder = builder.enable_bwe(Some(Bitrate::bps(bps)));
        }
        let mut rtc = builder.build(now);
        // The build created the session's DTLS on this thread, with the recording provider.
        let srtp = srtp::take_created().unwrap_or_default();
        // str0m's ICE agent schedules no check before it has seen the time once. Without this
        // first timeout, a client nothing else wakes (a publisher whose full-ICE peer waits
        // for our checks, as Janus does) would never start. A fresh `Rtc` cannot refuse it.
        let _ = rtc.handle_input(str0m::Input::Timeout(now));
        Client {
            rtc,
            created: now,
            publisher: Publisher::new(
                config.video,
                config.audio,
                config.source_id,
                config.epoch,
                config.seed,
            ),
            subscriber: Subscriber::new(config.epoch),
            pending: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rtc_timeout: now,
            connected_at: None,
            uplink_estimate: None,
            rtt: None,
            transmits_dropped: 0,
            bad_datagrams: 0,
            initial_slots: (config.video_slots, config.audio_slots),
            srtp,
            srtp_required: config.srtp_profile,
        }
    }

    /// Read access to the peer connection (mutating it directly would bypass the drain rule).
    pub fn rtc(&self) -> &Rtc {
        &self.rtc
    }

    /// The sending role.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The receiving role.
    pub fn subscriber(&self) -> &Subscriber {
        &self.subscriber
    }

    /// Which m-line is what.
    pub fn mids(&self) -> Mids {
        Mids {
            audio: self.publisher.audio_mid(),
            video: self.publisher.video_mid(),
            video_slots: self.subscriber.mids(Kind::Video),
            audio_slots: self.subscriber.mids(Kind::Audio),
        }
    }

    /// ICE+DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected_at.is_some()
    }

    /// str0m still considers the session alive.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Adds a local host candidate (the UDP socket the driver bound), before the first offer.
    pub fn add_local_candidate(
        &mut self,
        now: Instant,
        addr: SocketAddr,
    ) -> Result<(), ClientError> {
        let c = Candidate::host(addr, "udp").map_err(|e| ClientError::Candidate(e.to_string()))?;
        if self.rtc.add_local_candidate(c).is_none() {
            return Err(ClientError::Candidate(format!("{addr} rejected")));
        }
        self.after_mutation(now)
    }

    /// The first offer: publisher m-lines plus the configured recv slots.
    pub fn create_offer(&mut self, now: Instant) -> Result<Offer, ClientError> {
        let (video, audio) = self.initial_slots;
        self.initial_slots = (0, 0);
        self.offer(now, video, audio)
    }

    /// A re-offer adding recv slots (more people joined).
    pub fn add_slots(
        &mut self,
        now: Instant,
        video: usize,
        audio: usize,
    ) -> Result<Offer, ClientError> {
        self.offer(now, video, audio)
    }

    fn offer(
        &mut self,
        now: Instant,
        video_slots: usize,
        audio_slots: usize,
    ) -> Result<Offer, ClientError> {
        if self.pending.is_some() {
            return Err(ClientError::OfferPending);
        }
        let existing =
            self.subscriber.mids(Kind::Video).len() + self.subscriber.mids(Kind::Audio).len();
        if existing + video_slots + audio_slots > MAX_SLOTS {
            return Err(ClientError::TooManySlots { max: MAX_SLOTS });
        }
        let mut change = self.rtc.sdp_api();
        let mut audio_mid = self.publisher.audio_mid();
        let mut video_mid = self.publisher.video_mid();
        if audio_mid.is_none() && self.publisher.has_audio() {
            audio_mid =
                Some(change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        }
        if let (None, Some(v)) = (video_mid, self.publisher.video_config()) {
            let simulcast = if v.simulcast {
                let mut simulcast = Simulcast::new();
                for l in &v.layers {
                    simulcast.add_send_layer(SimulcastLayer::new(&l.rid));
                }
                Some(simulcast)
            } else if v.layers.len() == 1 {
                None
            } else {
                return Err(ClientError::VideoConfig(format!(
                    "{} layers without simulcast (one layer is needed)",
                    v.layers.len()
                )));
            };
            video_mid = Some(change.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                None,
                None,
                simulcast,
            ));
        }
        let mut slots = vec![];
        for _ in 0..video_slots {
            slots.push((
                change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None),
                Kind::Video,
            ));
        }
        for _ in 0..audio_slots {
            slots.push((
                change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None),
                Kind::Audio,
            ));
        }
        let applied = change.apply();
        self.after_mutation(now)?;
        let (offer, pending) = applied.ok_or(ClientError::NothingToOffer)?;
        self.pending = Some(pending);
        self.publisher.set_mids(audio_mid, video_mid);
        for (mid, kind) in slots {
            self.subscriber.add_slot(mid, kind);
        }
        Ok(Offer {
            sdp: offer.to_sdp_string(),
            publish: self.publisher.publications(),
        })
    }

    /// Applies the edge's answer to the pending offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), ClientError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let pending = self.pending.take().ok_or(ClientError::NoPendingOffer)?;
        let result = self.rtc.sdp_api().accept_answer(pending, answer);
        self.after_mutation(now)?;
        result?;
        self.publisher.handle_negotiated(&self.rtc);
        Ok(())
    }

    /// Answers the peer's offer (the peer sends; Janus offers its subscribers the feed's
    /// streams): every m-line we receive on becomes a recv slot that expects media at once,
    /// so time to first frame counts from here. Returns the answer SDP.
    pub fn accept_offer(&mut self, now: Instant, sdp: &str) -> Result<String, ClientError> {
        if self.pending.is_some() {
            return Err(ClientError::OfferPending);
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| ClientError::BadOffer(e.to_string()))?;
        let result = self.rtc.sdp_api().accept_offer(offer);
        self.after_mutation(now)?;
        let answer = result?.to_sdp_string();
        // str0m announces new media only once SRTP is up, so the answer names them.
        for mid in sdp_mids(&answer) {
            let Some(media) = self.rtc.media(mid) else {
                continue;
            };
            let kind = match media.kind() {
                MediaKind::Audio => Kind::Audio,
                MediaKind::Video => Kind::Video,
            };
            if !media.direction().is_receiving() || self.subscriber.slot(mid).is_some() {
                continue;
            }
            if !self.subscriber.add_slot(mid, kind) {
                return Err(ClientError::TooManySlots { max: MAX_SLOTS });
            }
            self.subscriber.set_expecting(now, mid, true);
        }
        Ok(answer)
    }

    /// Whether an offer awaits its answer.
    pub fn has_pending_offer(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds a datagram or a timeout. A timeout also runs [`Client::tick`].
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), ClientError> {
        match input {
            Input::Timeout => {
                self.rtc.handle_input(str0m::Input::Timeout(now))?;
                self.drain(now)?;
                self.tick(now)
            }
            Input::Datagram {
                source,
                destination,
                contents,
            } => {
                let Ok(contents) = contents.try_into() else {
                    self.bad_datagrams += 1;
                    return Ok(());
                };
                let receive = Receive {
                    proto: Protocol::Udp,
                    source,
                    destination,
                    contents,
                };
                self.rtc.handle_input(str0m::Input::Receive(now, receive))?;
                self.drain(now)
            }
        }
    }

    /// Writes the media frames due by `now` and runs the slots' time-driven checks.
    pub fn tick(&mut self, now: Instant) -> Result<(), ClientError> {
        while let Some(p) = self.publisher.poll_packet(now) {
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(p.mid, p.rid) else {
                self.publisher.note_unsendable();
                continue;
            };
            let write = RtpWrite::new(p.pt, p.seq, p.ts, p.wallclock, p.payload)
                .marker(p.marker)
                .ext_vals(p.ext)
                .nackable(p.nackable);
            tx.write_rtp(write);
            self.after_mutation(now)?;
        }
        self.subscriber.handle_timeout(now);
        self.flush_plis(now)
    }

    /// Sends a PLI for slot `mid` now (tests; slots also ask for keyframes by themselves).
    pub fn request_keyframe(&mut self, now: Instant, mid: Mid) -> Result<(), ClientError> {
        if !self.subscriber.force_pli(mid) {
            return Err(ClientError::UnknownSlot(mid.to_string()));
        }
        self.flush_plis(now)
    }

    /// Forces a keyframe on our own layer `rid` (all layers if `None`), as if a PLI came in.
    pub fn force_keyframe(&mut self, rid: Option<&str>) {
        self.publisher.request_keyframe(rid);
    }

    /// Tells slot `mid` whether media should be flowing (subscribed with a non-zero size), for
    /// time-to-first-frame and freeze accounting.
    pub fn set_expecting(
        &mut self,
        now: Instant,
        mid: Mid,
        expecting: bool,
    ) -> Result<(), ClientError> {
        if self.subscriber.set_expecting(now, mid, expecting) {
            Ok(())
        } else {
            Err(ClientError::UnknownSlot(mid.to_string()))
        }
    }

    /// Switches the microphone between speaking and silent levels.
    pub fn set_speaking(&mut self, speaking: bool) {
        self.publisher.set_speaking(speaking);
    }

    /// The next datagram to send, or when to call again.
    pub fn poll_output(&mut self) -> Output {
        if let Some(t) = self.transmits.pop_front() {
            return Output::Transmit(t);
        }
        let t = [
            self.publisher.poll_timeout(),
            self.subscriber.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .fold(self.rtc_timeout, Instant::min);
        Output::Timeout(t)
    }

    /// The next connection-level event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// A snapshot of everything measured.
    pub fn stats(&mut self, now: Instant) -> ClientStats {
        ClientStats {
            connected: self.is_connected(),
            connect_time: self.connected_at.map(|t| t.duration_since(self.created)),
            publisher: self.publisher.stats(),
            slots: self.subscriber.stats(now),
            uplink_estimate_bps: self.uplink_estimate.map(|b| b.as_u64()),
            rtt: self.rtt,
            transmits_dropped: self.transmits_dropped,
            bad_datagrams: self.bad_datagrams,
            srtp_profile: self.srtp.profile(),
            driver: DriverStats::default(),
        }
    }

    /// Sends the PLIs slots asked for; each is a mutation followed by a drain.
    fn flush_plis(&mut self, now: Instant) -> Result<(), ClientError> {
        while let Some(mid) = self.subscriber.poll_pli(now) {
            let mut api = self.rtc.direct_api();
            let Some(rx) = api.stream_rx_by_mid(mid, None) else {
                continue;
            };
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.after_mutation(now)?;
        }
        Ok(())
    }

    /// Drains after a mutation; if str0m wants time to pass `now` (freshly queued RTP needs a
    /// timeout to be stamped and sent), feeds it at once so packets leave in this call.
    fn after_mutation(&mut self, now: Instant) -> Result<(), ClientError> {
        self.drain(now)?;
        if self.rtc_timeout <= now {
            self.rtc.handle_input(str0m::Input::Timeout(now))?;
            self.drain(now)?;
        }
        Ok(())
    }

    fn drain(&mut self, now: Instant) -> Result<(), ClientError> {
        loop {
            match self.rtc.poll_output()? {
                str0m::Output::Timeout(t) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                str0m::Output::Transmit(t) => {
                    if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
                        self.transmits_dropped += 1;
                    } else {
                        self.transmits.push_back(t);
                    }
                }
                str0m::Output::Event(e) => self.handle_event(now, e),
            }
        }
    }

    fn push_event(&mut self, e: ClientEvent) {
        if self.events.len() < MAX_QUEUED_EVENTS {
            self.events.push_back(e);
        }
    }

    fn handle_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => {
                if let Some(required) = self.srtp_required {
                    let negotiated = self.srtp.profile();
                    if negotiated != Some(required) {
                        // No media under another cipher than the one being compared.
                        self.rtc.disconnect();
                        self.push_event(ClientEvent::SrtpRefused {
                            required,
                            negotiated,
                        });
                        return;
                    }
                }
                self.connected_at.get_or_insert(now);
                self.publisher.start(now);
                self.push_event(ClientEvent::Connected);
            }
            Event::IceConnectionStateChange(s) => self.push_event(ClientEvent::IceState(s)),
            Event::Closed => self.push_event(ClientEvent::Closed),
            Event::RtpPacket(p) => {
                let ssrc = p.header.ssrc;
                let idx = match self.subscriber.slot_for_ssrc(ssrc) {
                    Some(i) => Some(i),
                    None => {
                        let mid = self.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
                        mid.and_then(|m| self.subscriber.map_ssrc(ssrc, m))
                    }
                };
                if let Some(idx) = idx {
                    self.subscriber
                        .handle_rtp(now, idx, *p.seq_no, &p.header, &p.payload);
                }
            }
            Event::KeyframeRequest(req) => self.publisher.handle_keyframe_request(&req),
            Event::MediaIngressStats(s) => self.subscriber.handle_ingress_stats(&s),
            Event::MediaEgressStats(s) => self.publisher.handle_egress_stats(&s),
            Event::PeerStats(s) => self.rtt = s.rtt.or(self.rtt),
            Event::StreamPaused(p) => self.subscriber.handle_paused(p.mid, p.paused),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                self.uplink_estimate = Some(estimate);
            }
            _ => {}
        }
    }
}

/// The `a=mid:` values of an SDP, in m-line order (bounded: one per possible slot).
fn sdp_mids(sdp: &str) -> impl Iterator<Item = Mid> + '_ {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .take(MAX_SLOTS + 2)
        .map(Mid::from)
}
