//! The worker's media path: routing packets, choosing layers, keyframe requests, speakers.

use std::time::Instant;

use relay_proto::{MeetingId, ParticipantId, TrackId};
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};

use super::Worker;
use crate::cascade::Upstream;
use crate::meeting::Role;
use crate::router::keyframe::Decision;
use crate::router::layers::{self, SlotView};
use crate::router::rewrite::Vp8Ids;
use crate::router::{Track, Verdict, h264, vp8};
use crate::signal::{Kind, LeaveReason, Quality, ServerMsg, Source, Speaker};
use crate::speaker;

/// One packet entering the router: from a local publisher's session, or from a tree
/// neighbour over the backbone. Sequence numbers are extended (64-bit) in the publisher's
/// own number space, whichever way the packet came.
#[derive(Debug)]
pub(super) struct Inbound<'a> {
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: &'a [u8],
    pub header_len: usize,
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    pub video_orientation: Option<str0m::rtp::VideoOrientation>,
    /// When it entered this edge (for the added-latency histogram).
    pub received: Instant,
}

/// What the router learned from one packet's payload.
#[derive(Debug, Clone, Copy, Default)]
struct PayloadInfo {
    keyframe_start: bool,
    size: Option<(u32, u32)>,
    vp8: Option<vp8::Vp8Info>,
}

fn inspect(codec: Option<Codec>, kind: Kind, payload: &[u8]) -> PayloadInfo {
    if kind == Kind::Audio {
        return PayloadInfo {
            keyframe_start: true,
            ..Default::default()
        };
    }
    match codec {
        Some(Codec::Vp8) => match vp8::parse(payload) {
            Some(v) => PayloadInfo {
                keyframe_start: v.keyframe_start,
                size: v.size,
                vp8: Some(v),
            },
            None => PayloadInfo::default(),
        },
        Some(Codec::H264) => PayloadInfo {
            keyframe_start: h264::starts_keyframe(payload),
            ..Default::default()
        },
        Some(Codec::Vp9) => PayloadInfo {
            keyframe_start: str0m::format::detect_vp9_keyframe(payload),
            ..Default::default()
        },
        _ => PayloadInfo::default(),
    }
}

impl Worker {
    /// A packet from a local publisher: find its track and layer, then fan it out.
    pub(super) fn route(&mut self, now: Instant, from: ParticipantId, pkt: &RtpPacket) {
        self.stats.rtp_in += 1;
        self.stats.rtp_bytes_in += pkt.payload.len() as u64;
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let meeting = p.admission.meeting.clone();
        let Some(session) = p.session.as_mut() else {
            return;
        };
        let Some((mid, rid)) = session.rx_stream(pkt.header.ssrc) else {
            return;
        };
        let params = session.codec_of(pkt.header.payload_type);
        let Some(tid) = p.published_track(mid) else {
            return;
        };
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return;
        };
        let Some(track) = m.tracks.get_mut(&tid) else {
            return;
        };
        // The first packet tells the codec for sure: the publisher may not send its first
        // negotiated preference. Slots re-pick their payload type when it changes.
        if let Some(params) = params
            && track.params.as_ref().is_none_or(|p| p.pt() != params.pt())
        {
            track.codec = Some(params.spec().codec);
            track.params = Some(params);
            for (sub, mid) in &track.subscribers {
                if let Some(slot) = self
                    .participants
                    .get_mut(sub)
                    .and_then(|p| p.slot_mut(*mid))
                {
                    slot.pt = None;
                }
            }
            // Neighbours learn the real codec too (announcements are idempotent).
            let peers: Vec<_> = track.downstream.iter().map(|d| d.peer.clone()).collect();
            for peer in peers {
                self.announce_to(now, &meeting, tid, &peer);
            }
        }
        let Some(track) = self
            .meetings
            .get_mut(&meeting)
            .and_then(|m| m.tracks.get_mut(&tid))
        else {
            return;
        };
        let Some(layer) = track.layer_index(rid.as_ref()) else {
            return;
        };
        let ext = &pkt.header.ext_vals;
        let inbound = Inbound {
            seq: *pkt.seq_no,
            timestamp: pkt.header.timestamp,
            marker: pkt.header.marker,
            payload_type: *pkt.header.payload_type,
            payload: &pkt.payload,
            header_len: pkt.header.header_len,
            audio_level: ext.audio_level,
            voice_activity: ext.voice_activity,
            video_orientation: ext.video_orientation,
            received: pkt.timestamp,
        };
        self.fan_out(now, &meeting, tid, layer, &inbound);
    }

    /// One packet of one layer of a track, local or relayed: update the layer, then write it
    /// into every slot bound to the track and relay it to every neighbour that subscribed.
    pub(super) fn fan_out(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        tid: TrackId,
        layer_idx: usize,
        pkt: &Inbound<'_>,
    ) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        let Some(track) = m.tracks.get_mut(&tid) else {
            return;
        };
        let info = inspect(track.codec, track.kind, pkt.payload);
        let Some(layer) = track.layers.get_mut(layer_idx) else {
            return;
        };
        layer.last_packet = Some(now);
        layer.rate.add(now, pkt.payload.len() + pkt.header_len);
        let mut resized = false;
        if info.keyframe_start && track.kind == Kind::Video {
            layer.gate.on_keyframe();
            if let Some((w, h)) = info.size {
                resized = (layer.width, layer.height) != (w, h);
                layer.width = w;
                layer.height = h;
            }
        }
        if track.kind == Kind::Audio
            && let Some(level) = pkt.audio_level
        {
            m.levels
                .entry(tid)
                .or_default()
                .handle_level(now, level.saturating_abs());
        }
        if resized {
            for (sub, _) in &track.subscribers {
                if let Some(sp) = self.participants.get_mut(sub) {
                    sp.alloc_dirty = true;
                }
            }
        }
        super::relay::relay_media(&mut self.relay, &mut self.stats, track, layer_idx, pkt);
        let latency_us = now.saturating_duration_since(pkt.received).as_micros() as u64;
        // Borrowed out for the fan-out instead of cloned per packet: nothing below changes
        // subscriptions (session events only queue until `settle`).
        let subscribers = std::mem::take(&mut track.subscribers);
        for &(sub, slot_mid) in &subscribers {
            if self.forward(now, sub, slot_mid, tid, layer_idx, pkt, info) {
                self.stats.rtp_forwarded += 1;
                self.stats.rtp_bytes_forwarded += pkt.payload.len() as u64;
                self.stats.record_latency(latency_us);
            }
        }
        if let Some(t) = self
            .meetings
            .get_mut(meeting)
            .and_then(|m| m.tracks.get_mut(&tid))
        {
            t.subscribers = subscribers;
        }
    }

    /// Writes one packet into one subscriber slot, if the slot's verdict says so.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        now: Instant,
        sub: ParticipantId,
        slot_mid: Mid,
        tid: TrackId,
        layer: usize,
        pkt: &Inbound<'_>,
        info: PayloadInfo,
    ) -> bool {
        let Some(p) = self.participants.get_mut(&sub) else {
            return false;
        };
        let meeting = &p.admission.meeting;
        let Some(track) = self.meetings.get(meeting).and_then(|m| m.tracks.get(&tid)) else {
            return false;
        };
        let Some(session) = p.session.as_mut() else {
            return false;
        };
        let Some(slot) = p.slots.iter_mut().find(|s| s.mid == slot_mid) else {
            return false;
        };
        if slot.track != Some(tid) {
            return false;
        }
        let verdict = slot.verdict(layer, info.keyframe_start);
        if verdict == Verdict::Drop {
            return false;
        }
        if slot.pt.is_none() {
            slot.pt = track
                .params
                .as_ref()
                .and_then(|pp| session.send_pt(slot_mid, pp));
        }
        let Some(pt) = slot.pt else {
            return false;
        };
        let ids = info.vp8.map_or(Vp8Ids::default(), |v| Vp8Ids {
            picture_id: v.picture_id.map(|(p, _)| p),
            tl0_pic_idx: v.tl0_pic_idx,
        });
        let in_seq = pkt.seq;
        let out = if verdict == Verdict::Switch {
            let previous = slot.cur.replace(layer);
            let out = slot.rewriter.switch(now, in_seq, pkt.timestamp, ids);
            if previous.is_some() {
                let up =
                    track.layers[layer].height > previous.map_or(0, |i| track.layers[i].height);
                if up {
                    self.stats.layer_switches_up += 1;
                } else {
                    self.stats.layer_switches_down += 1;
                }
            }
            Some(out)
        } else {
            slot.rewriter.rewrite(now, in_seq, pkt.timestamp, ids)
        };
        let Some(out) = out else {
            return false;
        };
        let mut ext = ExtensionValues::default();
        if slot.kind == Kind::Audio {
            ext.audio_level = pkt.audio_level;
            ext.voice_activity = pkt.voice_activity;
        } else {
            ext.video_orientation = pkt.video_orientation;
        }
        let mut write = RtpWrite::new(
            pt,
            out.seq.into(),
            out.ts,
            pkt.received,
            pkt.payload.to_vec(),
        )
        .marker(pkt.marker)
        .ext_vals(ext)
        .nackable(slot.kind == Kind::Video);
        if let (Some(v), Some(pic)) = (info.vp8, out.picture_id)
            && let Ok(desc) = Vp8Descriptor::parse(pkt.payload)
        {
            let short = v.picture_id.is_some_and(|(_, wide)| !wide);
            let mut b = desc
                .patch()
                .picture_id(if short { pic & 0x7f } else { pic });
            if let Some(t) = out.tl0_pic_idx {
                b = b.tl0_pic_idx(t);
            }
            if let Ok(patch) = b.build() {
                write = write.vp8_patch(patch);
            }
        }
        let report = (slot.cur != slot.reported && slot.kind == Kind::Video).then(|| {
            slot.reported = slot.cur;
            let l = &track.layers[layer];
            ServerMsg::LayerChanged {
                mid: slot_mid.to_string(),
                rid: l.rid.map(|r| r.to_string()),
                width: l.width,
                height: l.height,
            }
        });
        let written = session.with_rtc(|rtc| {
            rtc.direct_api()
                .stream_tx_by_mid(slot_mid, None)
                .map(|tx| tx.write_rtp(write))
                .is_some()
        });
        // str0m's pacer releases a written packet only from a timeout, so run it now rather
        // than through the timer set and the shell's loop: the packet leaves in this input's
        // batch, and the subscriber's session is polled once instead of twice.
        let timed_out = matches!(written, Ok(true)) && session.handle_timeout(now).is_err();
        if let Some(msg) = report
            && p.role == Role::Meeting
        {
            self.send(sub, msg);
        }
        if timed_out {
            self.doom(sub, LeaveReason::Timeout);
        }
        self.drain(sub);
        matches!(written, Ok(true))
    }

    /// Recomputes which layer each of a subscriber's video slots should get, asks for
    /// keyframes where a switch is wanted and tells str0m's BWE what to probe for.
    pub(super) fn allocate(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.alloc_dirty = false;
        let Some(m) = self.meetings.get(&p.admission.meeting) else {
            return;
        };
        // Slots in priority order: largest requested size first.
        let mut order: Vec<usize> = (0..p.slots.len())
            .filter(|&i| p.slots[i].track.is_some())
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(p.slots[i].max_height.unwrap_or(u32::MAX)));
        let mut views = Vec::new();
        let mut layer_orders = Vec::new();
        for &i in &order {
            let slot = &p.slots[i];
            let Some(track) = slot.track.and_then(|t| m.tracks.get(&t)) else {
                continue;
            };
            if slot.kind == Kind::Audio {
                continue;
            }
            let lo = track.layers_by_height();
            let current = slot.want.and_then(|w| lo.iter().position(|&x| x == w));
            views.push((
                i,
                SlotView {
                    layers: track.layer_views(now, &lo),
                    max_height: slot.max_height,
                    current,
                },
            ));
            layer_orders.push(lo);
        }
        let slot_views: Vec<SlotView> = views.iter().map(|(_, v)| v.clone()).collect();
        let choice = layers::allocate(&slot_views, p.downlink_bps);
        let desired: u64 = slot_views
            .iter()
            .filter_map(|v| {
                layers::best_for_size(&v.layers, v.max_height).map(|i| v.layers[i].bitrate_bps)
            })
            .sum();
        let mut requests = Vec::new();
        for ((i, _), (c, lo)) in views.iter().zip(choice.iter().zip(&layer_orders)) {
            let want = c.map(|k| lo[k]);
            let slot = &mut p.slots[*i];
            if slot.set_want(want)
                && let (Some(tid), Some(w)) = (slot.track, want)
            {
                requests.push((tid, w));
            }
        }
        for slot in p.slots.iter_mut().filter(|s| s.kind == Kind::Audio) {
            if slot.track.is_some() && slot.want.is_none() {
                slot.set_want(Some(0));
            }
        }
        // Tell str0m's estimator what we send (`minimum`: it pads up to that) and what we
        // would like to (`desired`: it probes toward that). A subscriber with no video gets
        // no targets: padding an idle session costs CPU and its downlink for nothing.
        let chosen: u64 = views
            .iter()
            .zip(&choice)
            .filter_map(|((_, v), c)| c.map(|k| v.layers[k].bitrate_bps))
            .sum();
        if desired > 0
            && let Some(s) = p.session.as_mut()
        {
            let min = str0m::bwe::Bitrate::bps(chosen);
            let want = str0m::bwe::Bitrate::bps(desired.max(chosen));
            let _ = s.with_rtc(|rtc| rtc.bwe().set_bitrate(min, want));
        }
        self.drain(id);
        let meeting = self.participants[&id].admission.meeting.clone();
        // Remote tracks: subscribe upstream to the new layers before asking for keyframes.
        let mut remote: Vec<TrackId> = self.participants[&id]
            .slots
            .iter()
            .filter_map(|s| s.track)
            .collect();
        remote.sort();
        remote.dedup();
        for tid in remote {
            self.refresh_demand(&meeting, tid);
        }
        for (tid, layer) in requests {
            self.request_keyframe(now, &meeting, tid, layer);
        }
    }

    /// Asks a track's publisher for a keyframe on one layer, through the layer's gate.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        tid: TrackId,
        layer: usize,
    ) {
        let Some(track) = self
            .meetings
            .get_mut(meeting)
            .and_then(|m| m.tracks.get_mut(&tid))
        else {
            return;
        };
        if track.kind != Kind::Video {
            return;
        }
        let Some(l) = track.layers.get_mut(layer) else {
            return;
        };
        match l.gate.request(now) {
            Decision::Send => {
                let (owner, upstream, rid) = (track.owner, track.upstream.clone(), l.rid);
                self.send_keyframe_request(meeting, owner, &upstream, layer, rid);
            }
            Decision::Merged => self.stats.keyframe_requests_merged += 1,
        }
    }

    /// Sends a keyframe request toward a track's source: a PLI to a local publisher, or a
    /// `KeyframeRequest` to the neighbour the track comes from (whose own gate merges it
    /// again).
    fn send_keyframe_request(
        &mut self,
        meeting: &MeetingId,
        owner: ParticipantId,
        upstream: &Upstream,
        layer: usize,
        rid: Option<str0m::media::Rid>,
    ) {
        match upstream {
            Upstream::Local { mid } => self.send_pli(owner, *mid, rid),
            Upstream::Remote { peer, flow, .. } => {
                self.stats.keyframe_requests_sent += 1;
                let msg = relay_proto::Control::KeyframeRequest {
                    meeting: meeting.clone(),
                    flow: *flow,
                    layer: layer as u8,
                };
                self.relay.control(&mut self.stats, peer, msg);
            }
        }
    }

    fn send_pli(&mut self, owner: ParticipantId, mid: Mid, rid: Option<str0m::media::Rid>) {
        let Some(s) = self
            .participants
            .get_mut(&owner)
            .and_then(|p| p.session.as_mut())
        else {
            return;
        };
        let sent = s.with_rtc(|rtc| {
            rtc.direct_api()
                .stream_rx_by_mid(mid, rid)
                .map(|rx| rx.request_keyframe(KeyframeRequestKind::Pli))
                .is_some()
        });
        if matches!(sent, Ok(true)) {
            self.stats.keyframe_requests_sent += 1;
        }
        self.drain(owner);
    }

    /// Sends merged keyframe requests whose rate-limit interval has passed.
    pub(super) fn service_keyframe_gates(&mut self, now: Instant) {
        let mut due = Vec::new();
        for m in self.meetings.values_mut() {
            for t in m.tracks.values_mut() {
                for (i, l) in t.layers.iter_mut().enumerate() {
                    if l.gate.handle_timeout(now) == Decision::Send {
                        due.push((m.id.clone(), t.owner, t.upstream.clone(), i, l.rid));
                    }
                }
            }
        }
        for (meeting, owner, upstream, layer, rid) in due {
            self.send_keyframe_request(&meeting, owner, &upstream, layer, rid);
        }
    }

    /// A subscriber asked for a keyframe on one of its slots (PLI/FIR from the browser).
    pub(super) fn on_keyframe_request(&mut self, now: Instant, id: ParticipantId, mid: Mid) {
        self.stats.keyframe_requests_received += 1;
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let Some(slot) = p.slots.iter().find(|s| s.mid == mid) else {
            return;
        };
        let (Some(tid), Some(layer)) = (slot.track, slot.cur.or(slot.want)) else {
            return;
        };
        let meeting = p.admission.meeting.clone();
        self.request_keyframe(now, &meeting, tid, layer);
    }

    /// A publisher's layer paused or resumed: its subscribers re-choose layers.
    pub(super) fn on_stream_paused(&mut self, id: ParticipantId, mid: Mid) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let Some(tid) = p.published_track(mid) else {
            return;
        };
        let subs: Vec<ParticipantId> = self
            .meetings
            .get(&p.admission.meeting)
            .and_then(|m| m.tracks.get(&tid))
            .map(|t| t.subscribers.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default();
        for s in subs {
            if let Some(sp) = self.participants.get_mut(&s) {
                sp.alloc_dirty = true;
            }
        }
    }

    pub(super) fn on_egress_stats(
        &mut self,
        id: ParticipantId,
        s: &str0m::stats::MediaEgressStats,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if let Some(slot) = p.slot_mut(s.mid) {
            let delta = s.nacks.saturating_sub(slot.nacks_seen);
            slot.nacks_seen = s.nacks;
            self.stats.nacks_received += delta;
        }
    }

    /// Adds a track to a meeting and announces it.
    pub(crate) fn publish(&mut self, now: Instant, meeting: &MeetingId, track: Track) {
        let info = track.info();
        let (tid, owner) = (track.id, track.owner);
        let Upstream::Local { mid } = track.upstream else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&owner) {
            p.published.push((mid, tid));
        }
        let mut neighbours = Vec::new();
        if let Some(m) = self.meetings.get_mut(meeting) {
            m.tracks.insert(tid, track);
            neighbours = m.links.neighbours.clone();
        }
        // The owner hears about its own track too: that is how it learns the id it mutes by.
        self.broadcast(meeting, None, &ServerMsg::TrackPublished { track: info });
        self.refresh_whep(meeting);
        for n in &neighbours {
            self.announce_to(now, meeting, tid, n);
        }
    }

    /// Removes a track: its subscriber slots go dark and everyone is told.
    pub(crate) fn unpublish(&mut self, _now: Instant, meeting: &MeetingId, tid: TrackId) {
        let Some(track) = self.meetings.get_mut(meeting).and_then(|m| {
            m.levels.remove(&tid);
            m.tracks.remove(&tid)
        }) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&track.owner) {
            p.published.retain(|(_, t)| *t != tid);
        }
        self.withdraw_track(meeting, &track);
        for (sub, mid) in &track.subscribers {
            if let Some(slot) = self
                .participants
                .get_mut(sub)
                .and_then(|p| p.slot_mut(*mid))
            {
                slot.bind(None);
            }
        }
        self.broadcast(
            meeting,
            None,
            &ServerMsg::TrackUnpublished { track_id: tid },
        );
        self.refresh_whep(meeting);
    }

    /// Removes one slot from a track's subscriber list.
    pub(crate) fn detach_subscriber(
        &mut self,
        meeting: &MeetingId,
        tid: TrackId,
        sub: ParticipantId,
        mid: Mid,
    ) {
        if let Some(t) = self
            .meetings
            .get_mut(meeting)
            .and_then(|m| m.tracks.get_mut(&tid))
        {
            t.subscribers.retain(|s| *s != (sub, mid));
        }
    }

    /// Re-ranks each meeting's speakers and announces changes in the order.
    pub(super) fn rank_speakers(&mut self, now: Instant) {
        let mut announce = Vec::new();
        for m in self.meetings.values_mut() {
            let levels = m
                .levels
                .iter()
                .filter_map(|(tid, meter)| m.tracks.get(tid).map(|t| (t.owner, meter.level(now))));
            let ranked = speaker::rank(levels);
            let order: Vec<ParticipantId> = ranked.iter().map(|(p, _)| *p).collect();
            if order != m.speakers {
                m.speakers = order;
                let speakers = ranked
                    .into_iter()
                    .map(|(participant_id, level)| Speaker {
                        participant_id,
                        level: (level * 100.0).round() / 100.0,
                    })
                    .collect();
                announce.push((m.id.clone(), ServerMsg::ActiveSpeakers { speakers }));
            }
        }
        for (meeting, msg) in announce {
            self.broadcast(&meeting, None, &msg);
        }
    }

    /// Connection quality from the downlink estimate and reported loss; sent on change.
    pub(super) fn assess_quality(&mut self) {
        let mut changed = Vec::new();
        for p in self.participants.values_mut() {
            let Some(bps) = p.downlink_bps else { continue };
            let q = if p.loss > 0.10 || bps < 300_000 {
                Quality::Poor
            } else if p.loss > 0.03 || bps < 1_000_000 {
                Quality::Good
            } else {
                Quality::Excellent
            };
            if p.quality != Some(q) && p.role == Role::Meeting {
                p.quality = Some(q);
                changed.push((p.id, q, bps));
            }
        }
        for (id, quality, downlink_bps) in changed {
            self.send(
                id,
                ServerMsg::ConnectionQuality {
                    quality,
                    downlink_bps,
                },
            );
        }
    }

    /// Points every WHEP viewer of a meeting at the meeting's featured tracks: the latest
    /// broadcast (WHIP) video, else a screen share, else the first camera; audio from the
    /// same participant when it has some.
    pub(crate) fn refresh_whep(&mut self, meeting: &MeetingId) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let viewers: Vec<ParticipantId> = m
            .participants
            .iter()
            .copied()
            .filter(|p| {
                self.participants
                    .get(p)
                    .is_some_and(|p| p.role == Role::Whep)
            })
            .collect();
        if viewers.is_empty() {
            return;
        }
        let role_of = |t: &Track| self.participants.get(&t.owner).map(|p| p.role);
        let mut videos: Vec<&Track> = m
            .tracks
            .values()
            .filter(|t| t.kind == Kind::Video)
            .collect();
        videos.sort_by_key(|t| {
            (
                role_of(t) != Some(Role::Whip),
                t.source != Source::Screen,
                self.participants.get(&t.owner).map(|p| p.info.joined_at_ms),
                t.id,
            )
        });
        let video = videos.first().map(|t| t.id);
        let owner = videos.first().map(|t| t.owner);
        let mut audios: Vec<&Track> = m
            .tracks
            .values()
            .filter(|t| t.kind == Kind::Audio)
            .collect();
        audios.sort_by_key(|t| (Some(t.owner) != owner, t.id));
        let audio = audios.first().map(|t| t.id);
        for v in viewers {
            self.bind_whep(v, video, audio);
        }
    }
}
