// The one RTCPeerConnection of a meeting: what we publish, the receive slots, negotiation.
//
// Protocol rules this module follows (docs/signaling.md):
// - Only the client offers, and one offer at a time: a change while an offer is in flight
//   marks the session dirty and is negotiated right after the answer lands.
// - Every offer states, in `publish`, each m-line we send on. Turning the camera off sets its
//   transceiver `inactive` and drops it from `publish`; that unpublishes it.
// - Receiving uses slots: pools of recvonly transceivers, bound to tracks with `subscribe`.
//   A free slot is reused before a new one is added; adding one costs a renegotiation, so we
//   add a few spare ones at a time.

/** Camera simulcast: quarter, half and full resolution (rids as the edge expects). */
export const CAMERA_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];
/** Screen share: one layer; text needs sharpness more than frame rate. */
const SCREEN_ENCODINGS = [{ maxBitrate: 2_500_000, maxFramerate: 15 }];

/**
 * The codecs we can publish video in (`?codec=` on the page), by the name used there. The
 * edge forwards all three; receiving needs nothing chosen (see reserveSlots).
 */
export const VIDEO_CODECS = { vp8: 'video/VP8', vp9: 'video/VP9', h264: 'video/H264' };
export const DEFAULT_VIDEO_CODEC = 'vp8';

/**
 * The send encodings for `codec`. Every codec keeps the three rid layers: Chromium does
 * simulcast with VP8, H.264 and VP9. VP9 needs a `scalabilityMode` on the encodings for
 * that: without one, Chromium takes VP9 with several encodings as its legacy SVC mode and
 * sends one stream, on the first encoding only (measured in Chromium 156: rid q alone,
 * 320×180), so no viewer could get a bigger layer. L1T3 is what Chromium does for VP8
 * simulcast anyway (one spatial layer, three temporal layers per encoding).
 *
 * H.264 simulcast gets a lower frame rate on the quarter layer (15 fps; thumbnails do not
 * need more). Besides saving bits, layers that differ make Chromium encode each layer with
 * its own OpenH264 encoder (SimulcastEncoderAdapter). When all layers are alike it uses one
 * OpenH264 encoder for all of them, and that one ignores the quarter layer's cap: measured
 * in Chromium 156, 550 kbps at 320×180 for a 150 kbps cap (the other layers stay under
 * theirs), which pushes the publisher past its bandwidth estimate, so Chromium drops the
 * full layer. With one encoder per layer each stays near its cap (~110 kbps).
 *
 * Each encoding also names its codec (`RTCRtpEncodingParameters.codec`, one of
 * RTCRtpSender.getCapabilities()): the browser then sends that codec whatever order the
 * answer lists the codecs in. setCodecPreferences alone only orders our offer, and a browser
 * sends the answer's first codec, which the answerer may reorder (RFC 3264 §6.1 only
 * recommends keeping the offer's order). The edge's answer lists VP8 first whatever we
 * offer, while it takes our offer's first codec as the track's codec: without `codec` here,
 * a VP9 or H.264 preference would send VP8 labelled as the other codec, and no viewer could
 * decode it. Browsers without the member ignore it and fall back to the answer's order.
 */
export function encodingsFor(codec, encodings, sendCodec = sendCapability(codec)) {
  const simulcast = encodings.length > 1;
  return encodings.map((e) => ({
    ...e,
    ...(codec === 'vp9' ? { scalabilityMode: 'L1T3' } : {}),
    ...(codec === 'h264' && simulcast ? { maxFramerate: e.maxFramerate ?? (e.rid === 'q' ? 15 : 30) } : {}),
    ...(sendCodec ? { codec: sendCodec } : {}),
  }));
}

/** Spare slots added with each growth, so the next joiner does not cost a renegotiation. */
const SLOT_HEADROOM = 2;
/** Upper bounds on the slot pools (every remote audio track needs its own slot); 128 in all, the edge's default `max_slots`. */
const MAX_SLOTS = { audio: 96, video: 32 };
/** How long to wait for the ICE candidates to be gathered before sending an offer. */
const GATHER_WAIT_MS = 1000;
/** An answer that does not arrive in this long (on an open socket) fails the negotiation. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Consecutive failed negotiations retried before giving up until the next change. */
const MAX_NEGOTIATION_RETRIES = 3;

/**
 * @typedef {object} Slot
 * @property {string} mid
 * @property {'audio'|'video'} kind
 * @property {RTCRtpTransceiver} transceiver
 * @property {MediaStreamTrack} track   what the slot plays, whichever remote track it shows
 * @property {string|null} trackId      the remote track bound with `subscribe`, or null if free
 * @property {number|undefined} maxHeight  the size last asked for (video)
 * @property {{rid:string,width:number,height:number}|null} layer  from `layer_changed`
 */

export class MediaSession {
  /**
   * @param {object} o
   * @param {RTCIceServer[]} [o.iceServers]  from `joined.ice_servers`; none on a plain edge
   * @param {{send(msg: object): boolean, isOpen: boolean}} o.signaling
   * @param {HTMLElement} o.audioRoot  where the <audio> elements of audio slots live
   * @param {() => void} o.onChange    slots or bindings changed (re-render, reconcile again)
   * @param {(err: Error) => void} o.onError
   * @param {keyof VIDEO_CODECS} [o.videoCodec]  the codec to publish camera and screen in
   */
  constructor({ iceServers, signaling, audioRoot, onChange, onError, videoCodec = DEFAULT_VIDEO_CODEC }) {
    this.pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      iceServers: Array.isArray(iceServers) ? iceServers : [],
    });
    this.signaling = signaling;
    this.audioRoot = audioRoot;
    this.onChange = onChange;
    this.onError = onError;
    /** What we publish video in: the codec asked for if this browser can encode it, else VP8. */
    this.videoCodec = sendableCodec(videoCodec);
    /** @type {Map<string, Slot>} negotiated slots by mid */
    this.slots = new Map();
    /** recvonly transceivers added but not negotiated yet */
    this.pending = [];
    this.mic = null; // { transceiver, track }
    this.camera = null;
    this.screen = null;
    this.dirty = false;
    this.running = null;
    this.awaiting = null; // { resolve, reject, sdp, publish } while an offer is in flight
    this.failures = 0;
    this.negotiations = 0;
    this.closed = false;
  }

  // ---- publishing ----

  /** Adds the microphone (negotiated with the next offer). */
  addMic(track, stream) {
    const transceiver = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.mic = { transceiver, track };
  }

  /** Adds the camera as 3-layer simulcast (negotiated with the next offer). */
  addCamera(track, stream) {
    this.camera = { transceiver: this.#addVideo(track, stream, CAMERA_ENCODINGS), track };
  }

  /** Starts sending the camera and negotiates; reuses the camera m-line if there is one. */
  async setCamera(track, stream) {
    if (this.camera) await reuse(this.camera, track, stream);
    else this.addCamera(track, stream);
    return this.requestNegotiation();
  }

  /** Stops sending the camera: the m-line goes inactive and leaves `publish` (unpublished). */
  async clearCamera() {
    if (!this.camera?.track) return;
    await this.camera.transceiver.sender.replaceTrack(null);
    this.camera.transceiver.direction = 'inactive';
    this.camera.track = null;
    return this.requestNegotiation();
  }

  /** Adds a screen capture as its own video track, `source: "screen"` (next offer). */
  addScreen(track, stream) {
    this.screen = { transceiver: this.#addVideo(track, stream, SCREEN_ENCODINGS), track };
  }

  /** A sendonly transceiver that publishes `track` in our video codec. */
  #addVideo(track, stream, encodings) {
    const init = { direction: 'sendonly', streams: [stream] };
    let transceiver;
    try {
      transceiver = this.pc.addTransceiver(track, { ...init, sendEncodings: encodingsFor(this.videoCodec, encodings) });
    } catch (err) {
      // A browser that refuses the codec or scalabilityMode on encodings: plain encodings,
      // the codec preferences still ask for our codec.
      console.warn('media: send encodings refused, retrying without codec and scalabilityMode', err);
      transceiver = this.pc.addTransceiver(track, { ...init, sendEncodings: encodings.map((e) => ({ ...e })) });
    }
    preferCodec(transceiver, this.videoCodec);
    return transceiver;
  }

  /** Publishes a screen capture and negotiates; reuses the m-line of an earlier share. */
  async setScreen(track, stream) {
    if (this.screen && !this.screen.transceiver.stopped) await reuse(this.screen, track, stream);
    else this.addScreen(track, stream);
    return this.requestNegotiation();
  }

  async clearScreen() {
    if (!this.screen?.track) return;
    await this.screen.transceiver.sender.replaceTrack(null);
    this.screen.transceiver.direction = 'inactive';
    this.screen.track = null;
    return this.requestNegotiation();
  }

  /** The `publish` list of an offer: every m-line we send on, by mid (valid after setLocal). */
  publishList() {
    const out = [];
    const entry = (pub, source) => {
      const mid = pub?.transceiver.mid;
      if (!pub?.track || mid == null) return;
      const item = { mid, source };
      if (pub.track.kind === 'video') {
        const { width, height } = pub.track.getSettings();
        if (width && height) Object.assign(item, { width, height });
      }
      out.push(item);
    };
    entry(this.mic, 'microphone');
    entry(this.camera, 'camera');
    entry(this.screen, 'screen');
    return out;
  }

  // ---- negotiation ----

  /**
   * Negotiates the current transceivers. Calls made while an offer is in flight coalesce into
   * one more round after it. Resolves when no change is left to negotiate.
   */
  requestNegotiation() {
    this.dirty = true;
    if (!this.running) {
      this.running = this.#negotiateWhileDirty().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async #negotiateWhileDirty() {
    while (this.dirty && !this.closed) {
      this.dirty = false;
      try {
        await this.#negotiateOnce();
        this.failures = 0;
      } catch (err) {
        if (this.closed) return;
        this.failures += 1;
        this.onError(err);
        if (err.code !== 'sdp_invalid' && this.failures <= MAX_NEGOTIATION_RETRIES) {
          await sleep(500 * this.failures);
          this.dirty = true;
        }
      }
    }
  }

  async #negotiateOnce() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    // The edge is ICE-lite and learns our address from our checks, but candidates in the
    // offer cost nothing on loopback and help any full-ICE peer.
    await waitForGathering(this.pc, GATHER_WAIT_MS);
    const sdp = this.pc.localDescription.sdp;
    const publish = this.publishList();
    let answerSdp;
    try {
      answerSdp = await new Promise((resolve, reject) => {
        this.awaiting = { resolve, reject, sdp, publish, timer: null };
        this.#armAnswerTimer();
        this.signaling.send({ type: 'offer', sdp, publish });
        // If the socket is down the offer goes out again on `resumed` (resendOffer).
      });
    } catch (err) {
      await this.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
      if (err.code === 'sdp_invalid') {
        // The edge refused this shape; do not offer the new slots again.
        for (const p of this.pending) p.transceiver.stop();
        this.pending = [];
      }
      throw err;
    } finally {
      clearTimeout(this.awaiting?.timer);
      this.awaiting = null;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    this.negotiations += 1;
    this.#adoptNegotiatedSlots();
  }

  #armAnswerTimer() {
    const waiting = this.awaiting;
    clearTimeout(waiting.timer);
    waiting.timer = setTimeout(() => {
      if (this.awaiting !== waiting) return;
      // While the socket is down the offer cannot be answered; resume resends it.
      if (!this.signaling.isOpen) return this.#armAnswerTimer();
      waiting.reject(Object.assign(new Error('The server did not answer our offer.'), { code: 'answer_timeout' }));
    }, ANSWER_TIMEOUT_MS);
  }

  /** Routes the edge's `answer`. */
  handleAnswer(sdp) {
    if (!this.awaiting) {
      console.warn('media: answer without an offer in flight; ignored');
      return;
    }
    this.awaiting.resolve(sdp);
  }

  /** Routes an `sdp_invalid` error: it refuses the offer in flight. */
  handleOfferError(msg) {
    this.awaiting?.reject(Object.assign(new Error(`The server refused our offer: ${msg.message || msg.code}`), { code: msg.code }));
  }

  /** After a resume: the socket is new, so an offer still waiting for its answer goes again. */
  resendOffer() {
    if (!this.awaiting) return;
    const { sdp, publish } = this.awaiting;
    this.signaling.send({ type: 'offer', sdp, publish });
    this.#armAnswerTimer();
  }

  #adoptNegotiatedSlots() {
    const still = [];
    for (const p of this.pending) {
      const { transceiver } = p;
      const mid = transceiver.mid;
      if (mid == null) {
        still.push(p);
        continue;
      }
      if (transceiver.stopped || transceiver.currentDirection === 'inactive') continue; // refused
      const slot = {
        mid,
        kind: p.kind,
        transceiver,
        track: transceiver.receiver.track,
        trackId: null,
        maxHeight: undefined,
        layer: null,
        audio: null,
      };
      if (p.kind === 'audio') slot.audio = this.#audioElement(slot.track, mid);
      this.slots.set(mid, slot);
    }
    this.pending = still;
    this.onChange();
  }

  #audioElement(track, mid) {
    const el = document.createElement('audio');
    el.autoplay = true;
    el.dataset.mid = mid;
    el.srcObject = new MediaStream([track]);
    this.audioRoot.append(el);
    el.play().catch(() => {}); // autoplay is allowed: the user clicked Join
    return el;
  }

  // ---- receive slots ----

  /**
   * Adds recvonly slots up front (before the first offer), so the first answer has room.
   * Slots get no codec preferences: they offer every codec this browser decodes (VP8, VP9,
   * H.264, …), since one slot shows whichever track it is bound to, in whatever codec its
   * publisher chose.
   */
  reserveSlots(kind, count) {
    const have = this.#count(kind);
    const add = Math.max(0, Math.min(count, MAX_SLOTS[kind] - have));
    for (let i = 0; i < add; i++) {
      const transceiver = this.pc.addTransceiver(kind, { direction: 'recvonly' });
      this.pending.push({ kind, transceiver });
    }
    return add;
  }

  #count(kind) {
    let n = this.pending.filter((p) => p.kind === kind).length;
    for (const s of this.slots.values()) if (s.kind === kind) n++;
    return n;
  }

  /**
   * Makes the slot bindings match `desired` (track id → {kind, maxHeight}): unsubscribes
   * what is no longer wanted, resizes what changed, subscribes the rest into free slots and
   * grows the pools (with a renegotiation) when slots run out. Idempotent; call it after any
   * change. Does nothing while the socket is down: `resumed` brings the edge's bindings back.
   */
  reconcile(desired) {
    if (!this.signaling.isOpen || this.closed) return;
    let changed = false;
    const bound = new Map();
    for (const slot of this.slots.values()) {
      if (!slot.trackId) continue;
      const want = desired.get(slot.trackId);
      if (!want || want.kind !== slot.kind || bound.has(slot.trackId)) {
        this.signaling.send({ type: 'unsubscribe', mid: slot.mid });
        this.#unbind(slot);
        changed = true;
        continue;
      }
      bound.set(slot.trackId, slot);
      if (slot.kind === 'video' && want.maxHeight !== slot.maxHeight) {
        this.signaling.send({ type: 'update_subscription', mid: slot.mid, ...sizeFields(want.maxHeight) });
        slot.maxHeight = want.maxHeight;
        changed = true;
      }
    }
    const deficit = { audio: 0, video: 0 };
    for (const [trackId, want] of desired) {
      if (bound.has(trackId)) continue;
      const slot = this.#freeSlot(want.kind);
      if (!slot) {
        deficit[want.kind] += 1;
        continue;
      }
      const msg = { type: 'subscribe', track_id: trackId, mid: slot.mid };
      if (want.kind === 'video') Object.assign(msg, sizeFields(want.maxHeight));
      this.signaling.send(msg);
      slot.trackId = trackId;
      slot.maxHeight = want.kind === 'video' ? want.maxHeight : undefined;
      slot.layer = null;
      changed = true;
    }
    for (const kind of ['audio', 'video']) this.#grow(kind, deficit[kind]);
    if (changed) this.onChange();
  }

  #freeSlot(kind) {
    for (const slot of this.slots.values()) if (slot.kind === kind && !slot.trackId) return slot;
    return null;
  }

  #unbind(slot) {
    slot.trackId = null;
    slot.maxHeight = undefined;
    slot.layer = null;
  }

  #grow(kind, missing) {
    const waiting = this.pending.filter((p) => p.kind === kind).length;
    const need = missing - waiting;
    if (need <= 0) return; // the slots on their way will do; reconcile runs again after
    if (this.reserveSlots(kind, need + SLOT_HEADROOM) > 0) this.requestNegotiation();
  }

  /** Restores bindings from `resumed.subscriptions`: after a resume the edge's view wins. */
  adoptSubscriptions(subscriptions) {
    const byMid = new Map((subscriptions || []).map((s) => [String(s.mid), s.track_id]));
    for (const slot of this.slots.values()) {
      const trackId = byMid.get(slot.mid) ?? null;
      if (trackId !== slot.trackId) {
        slot.trackId = trackId;
        slot.layer = null;
      }
      // Sizes are not in the snapshot: forget them so reconcile re-sends what the layout wants.
      slot.maxHeight = undefined;
    }
    this.onChange();
  }

  /** Records a `layer_changed` from the edge. */
  handleLayerChanged({ mid, rid, width, height }) {
    const slot = this.slots.get(String(mid));
    if (slot) slot.layer = { rid, width, height };
  }

  /** Frees slots that show a track the edge says is gone (it no longer sends into them). */
  forgetTrack(trackId) {
    for (const slot of this.slots.values()) {
      if (slot.trackId === trackId) {
        this.signaling.send({ type: 'unsubscribe', mid: slot.mid });
        this.#unbind(slot);
      }
    }
  }

  /** The slot currently bound to `trackId`, or null. */
  slotOf(trackId) {
    for (const slot of this.slots.values()) if (slot.trackId === trackId) return slot;
    return null;
  }

  /** Plain-object view of the slots (test hook, debug panel). */
  describeSlots() {
    return [...this.slots.values()].map((s) => ({
      mid: s.mid,
      kind: s.kind,
      trackId: s.trackId,
      maxHeight: s.maxHeight ?? null,
      layer: s.layer,
    }));
  }

  /**
   * Per-slot receive stats plus send and transport stats, as plain objects. Inbound streams
   * are matched to slots by `mid`, which Chromium reports on `inbound-rtp`.
   */
  async stats() {
    const report = await this.pc.getStats();
    const inbound = [];
    const outbound = [];
    let transport = null;
    const byTrackIdent = new Map([...this.slots.values()].map((s) => [s.track.id, s]));
    const codecs = new Map();
    for (const r of report.values()) if (r.type === 'codec') codecs.set(r.id, r.mimeType);
    for (const r of report.values()) {
      if (r.type === 'inbound-rtp') {
        const slot = this.slots.get(r.mid) ?? byTrackIdent.get(r.trackIdentifier);
        inbound.push({
          mid: slot?.mid ?? r.mid ?? null,
          kind: r.kind,
          trackId: slot?.trackId ?? null,
          maxHeight: slot?.maxHeight ?? null,
          layer: slot?.layer ?? null,
          codec: codecs.get(r.codecId) ?? null,
          packetsReceived: r.packetsReceived ?? 0,
          packetsLost: r.packetsLost ?? 0,
          bytesReceived: r.bytesReceived ?? 0,
          jitter: r.jitter ?? null,
          framesDecoded: r.framesDecoded ?? 0,
          framesPerSecond: r.framesPerSecond ?? null,
          frameWidth: r.frameWidth ?? null,
          frameHeight: r.frameHeight ?? null,
          keyFramesDecoded: r.keyFramesDecoded ?? 0,
          audioLevel: r.audioLevel ?? null,
        });
      } else if (r.type === 'outbound-rtp') {
        outbound.push({
          mid: r.mid ?? null,
          kind: r.kind,
          rid: r.rid ?? null,
          codec: codecs.get(r.codecId) ?? null,
          bytesSent: r.bytesSent ?? 0,
          packetsSent: r.packetsSent ?? 0,
          framesEncoded: r.framesEncoded ?? 0,
          frameWidth: r.frameWidth ?? null,
          frameHeight: r.frameHeight ?? null,
          qualityLimitationReason: r.qualityLimitationReason ?? null,
          active: r.active ?? null,
        });
      } else if (r.type === 'transport' && r.selectedCandidatePairId) {
        const pair = report.get(r.selectedCandidatePairId);
        transport = {
          dtlsState: r.dtlsState,
          rttMs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
          availableOutgoingBitrate: pair?.availableOutgoingBitrate ?? null,
          bytesReceived: pair?.bytesReceived ?? null,
          bytesSent: pair?.bytesSent ?? null,
        };
      }
    }
    return { inbound, outbound, transport, report };
  }

  close() {
    this.closed = true;
    this.awaiting?.reject(Object.assign(new Error('closed'), { code: 'closed' }));
    for (const s of this.slots.values()) s.audio?.remove();
    this.slots.clear();
    this.pending = [];
    try {
      this.pc.close();
    } catch {
      // already closed
    }
  }
}

/** Puts `track` back on a sender m-line that was set inactive. */
async function reuse(pub, track, stream) {
  await pub.transceiver.sender.replaceTrack(track);
  pub.transceiver.sender.setStreams?.(stream);
  pub.transceiver.direction = 'sendonly';
  pub.track = track;
}

/** `max_height` plus a matching 16:9 `max_width` (0 pauses the slot). */
function sizeFields(maxHeight) {
  if (maxHeight == null) return {};
  return { max_width: Math.round((maxHeight * 16) / 9), max_height: maxHeight };
}

/**
 * The codec to publish in: `wanted` if this browser can encode it, else VP8 (with a warning:
 * the page still works, only in the default codec).
 */
function sendableCodec(wanted) {
  const name = Object.hasOwn(VIDEO_CODECS, wanted) ? wanted : DEFAULT_VIDEO_CODEC;
  if (name !== wanted) console.warn(`media: unknown video codec ${JSON.stringify(wanted)}; using ${name}`);
  const caps = globalThis.RTCRtpSender?.getCapabilities?.('video');
  if (!caps) return name; // cannot tell; negotiation decides
  const mime = VIDEO_CODECS[name].toLowerCase();
  if (caps.codecs.some((c) => c.mimeType.toLowerCase() === mime)) return name;
  console.warn(`media: this browser cannot encode ${VIDEO_CODECS[name]}; publishing ${VIDEO_CODECS[DEFAULT_VIDEO_CODEC]}`);
  return DEFAULT_VIDEO_CODEC;
}

/** The entry of RTCRtpSender.getCapabilities to send `codec` with (best codecRank), or null. */
function sendCapability(codec) {
  const caps = globalThis.RTCRtpSender?.getCapabilities?.('video');
  if (!caps) return null;
  const best = caps.codecs.filter((c) => codecRank(c, codec) < 3).sort((a, b) => codecRank(a, codec) - codecRank(b, codec))[0];
  return best ?? null;
}

/**
 * Where a codec capability goes when we publish in `codec`: 0 is the one we want, 3 is
 * another codec. For H.264, packetization-mode=1 Constrained Baseline (42e01f) comes first:
 * the profile every decoder has, and the mode that fragments large frames (mode 0 needs
 * one NAL unit per packet); then other mode-1 profiles, then mode 0.
 */
function codecRank(c, codec) {
  if (c.mimeType.toLowerCase() !== VIDEO_CODECS[codec].toLowerCase()) return 3;
  if (codec !== 'h264') return 0;
  const fmtp = Object.fromEntries((c.sdpFmtpLine ?? '').split(';').filter(Boolean).map((kv) => kv.split('=')));
  if (fmtp['packetization-mode'] !== '1') return 2;
  return fmtp['profile-level-id']?.toLowerCase() === '42e01f' ? 0 : 1;
}

/**
 * Puts `codec` first in the transceiver's codec list (in codecRank's order); every other
 * codec stays after it, so negotiation succeeds even if the other side lacks our favourite.
 * The offer's order is our preference; which codec is sent is decided by the answer's order
 * and by the encodings' `codec` (see encodingsFor).
 */
function preferCodec(transceiver, codec) {
  try {
    const caps = RTCRtpReceiver.getCapabilities('video');
    if (!caps || !transceiver.setCodecPreferences) return;
    // Array.prototype.sort is stable: within a rank the browser's own order is kept.
    transceiver.setCodecPreferences([...caps.codecs].sort((a, b) => codecRank(a, codec) - codecRank(b, codec)));
  } catch (err) {
    console.warn('media: could not set codec preferences', err);
  }
}

function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
