// The tile stage: one large "featured" tile plus a strip of thumbnails.
//
// The layout decides what each tile needs, and so what we ask the edge for: the featured
// tile asks for a high simulcast layer (max_height 720), thumbnails for the lowest (180), and
// thumbnails scrolled out of view ask for nothing at all. That is how a 100-person meeting
// stays within a laptop's downlink. The DOM is keyed by tile so that re-rendering never
// restarts a playing <video>.

import { icon, avatarColor, initials } from './icons.js';

/** Heights asked of the edge, per tile role. */
export const FEATURED_HEIGHT = 720;
export const FEATURED_SCREEN_HEIGHT = 1080;
export const THUMB_HEIGHT = 180;
/** Thumbnails that may show video at once; the others show avatars. */
const MAX_VIDEO_THUMBS = 24;

/**
 * @typedef {object} Model
 * @property {{id:string,name:string,micMuted:boolean,cameraTrack:MediaStreamTrack|null,presenting:boolean}} self
 * @property {Array<{id:string,name:string,identity:string}>} participants  remote, join order
 * @property {Array<object>} tracks  remote tracks (docs/signaling.md `track`)
 * @property {string|null} speakerId         loudest participant right now (ring)
 * @property {string|null} featuredSpeakerId speaker to feature (held a little to avoid flicker)
 * @property {string|null} pinned            tile key pinned by the user
 * @property {(trackId: string) => MediaStreamTrack|null} trackFor  the slot track showing it
 */

export class Layout {
  /**
   * @param {HTMLElement} root  the .stage element, holding .featured and .thumbs
   * @param {{onPin(key: string): void, onStopPresenting(): void, onVisibilityChange(): void}} hooks
   */
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.featuredEl = root.querySelector('.featured');
    this.thumbsEl = root.querySelector('.thumbs');
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
    this.featuredKey = null;
    this.hidden = new Set(); // thumbnail keys scrolled out of view
    this.observer = new IntersectionObserver((entries) => this.#onIntersect(entries), {
      root: this.thumbsEl,
      threshold: 0.01,
    });
  }

  /** Re-renders from the model. Cheap: only changed nodes are touched. */
  update(model) {
    const specs = tileSpecs(model);
    const featured = chooseFeatured(specs, model);
    this.featuredKey = featured;
    const seen = new Set();
    for (const spec of specs) {
      seen.add(spec.key);
      let tile = this.tiles.get(spec.key);
      if (!tile) {
        tile = new Tile(spec.key, this.hooks);
        this.tiles.set(spec.key, tile);
      }
      tile.update(spec, {
        featured: spec.key === featured,
        pinned: spec.key === model.pinned,
        speaking: !!spec.participantId && spec.participantId === model.speakerId,
        track: spec.localTrack ?? (spec.videoTrackId ? model.trackFor(spec.videoTrackId) : null),
      });
    }
    for (const [key, tile] of this.tiles) {
      if (seen.has(key)) continue;
      this.observer.unobserve(tile.el);
      tile.el.remove();
      this.tiles.delete(key);
      this.hidden.delete(key);
    }
    this.#place(specs, featured);
  }

  #place(specs, featured) {
    const thumbs = specs.filter((s) => s.key !== featured);
    const solo = thumbs.length === 0;
    this.root.classList.toggle('solo', solo);
    this.root.classList.toggle('spotlight', !solo);
    this.root.style.setProperty('--thumb-count', String(thumbs.length));
    this.root.dataset.thumbCols = thumbs.length > 6 ? '2' : '1';
    const f = this.tiles.get(featured);
    if (f && f.el.parentElement !== this.featuredEl) {
      this.observer.unobserve(f.el);
      this.hidden.delete(featured);
      this.featuredEl.append(f.el);
      f.resume();
    }
    // Keep thumbnails in model order; move only what is out of place.
    let prev = null;
    for (const spec of thumbs) {
      const tile = this.tiles.get(spec.key);
      const want = prev ? prev.nextSibling : this.thumbsEl.firstChild;
      if (tile.el !== want) {
        const fresh = tile.el.parentElement !== this.thumbsEl;
        this.thumbsEl.insertBefore(tile.el, want);
        tile.resume();
        if (fresh) this.observer.observe(tile.el);
      }
      prev = tile.el;
    }
  }

  #onIntersect(entries) {
    let changed = false;
    for (const e of entries) {
      const key = e.target.dataset.key;
      if (!e.isIntersecting && !this.hidden.has(key)) {
        this.hidden.add(key);
        changed = true;
      } else if (e.isIntersecting && this.hidden.delete(key)) {
        changed = true;
      }
    }
    if (changed) this.hooks.onVisibilityChange();
  }

  /**
   * What to subscribe to for the current layout: remote video track id → max height.
   * Pass the same model as to update().
   */
  desiredVideo(model) {
    const out = new Map();
    let thumbs = 0;
    for (const spec of tileSpecs(model)) {
      if (!spec.videoTrackId) continue;
      if (spec.key === this.featuredKey) {
        out.set(spec.videoTrackId, spec.kind === 'screen' ? FEATURED_SCREEN_HEIGHT : FEATURED_HEIGHT);
      } else if (!this.hidden.has(spec.key) && thumbs < MAX_VIDEO_THUMBS) {
        out.set(spec.videoTrackId, THUMB_HEIGHT);
        thumbs += 1;
      }
    }
    return out;
  }

  /** Plain-object view for tests: which tile is where and what it shows. */
  describe() {
    return [...this.tiles.values()].map((t) => ({
      key: t.key,
      featured: t.key === this.featuredKey,
      participantId: t.spec?.participantId ?? null,
      videoTrackId: t.spec?.videoTrackId ?? null,
      hasVideo: t.el.classList.contains('has-video'),
    }));
  }
}

/** The tiles the model calls for, in display order (self first, then screens, then people). */
function tileSpecs(model) {
  const specs = [];
  const { self } = model;
  specs.push({
    key: 'self',
    kind: 'self',
    participantId: self.id,
    name: self.name,
    label: `${self.name} (You)`,
    localTrack: self.cameraTrack,
    mirrored: true,
    micMuted: self.micMuted,
  });
  if (self.presenting) {
    specs.push({ key: 'self-screen', kind: 'presenting', participantId: null, name: self.name, label: 'Your presentation' });
  }
  const names = new Map(model.participants.map((p) => [p.id, p.name || p.identity || 'Guest']));
  const byOwner = new Map();
  for (const t of model.tracks) {
    if (!byOwner.has(t.participant_id)) byOwner.set(t.participant_id, []);
    byOwner.get(t.participant_id).push(t);
  }
  for (const t of model.tracks) {
    if (t.kind !== 'video' || t.source !== 'screen') continue;
    const name = names.get(t.participant_id) ?? 'Guest';
    specs.push({
      key: `s:${t.id}`,
      kind: 'screen',
      participantId: t.participant_id,
      name,
      label: `${name} is presenting`,
      videoTrackId: t.muted ? null : t.id,
    });
  }
  for (const p of model.participants) {
    const own = byOwner.get(p.id) ?? [];
    const cam = own.find((t) => t.kind === 'video' && t.source !== 'screen');
    const mic = own.find((t) => t.kind === 'audio');
    const name = names.get(p.id);
    specs.push({
      key: `p:${p.id}`,
      kind: 'camera',
      participantId: p.id,
      name,
      label: name,
      videoTrackId: cam && !cam.muted ? cam.id : null,
      micMuted: !mic || mic.muted,
    });
  }
  return specs;
}

/** Pinned tile, else the newest screen share, else the speaker, else the first other person. */
function chooseFeatured(specs, model) {
  if (model.pinned && specs.some((s) => s.key === model.pinned)) return model.pinned;
  const screens = specs.filter((s) => s.kind === 'screen');
  if (screens.length) return screens[screens.length - 1].key;
  const people = specs.filter((s) => s.kind === 'camera');
  const speaker = people.find((s) => s.participantId === model.featuredSpeakerId);
  if (speaker) return speaker.key;
  if (people.length) return people[0].key;
  return 'self';
}

/** One tile's DOM. */
class Tile {
  constructor(key, hooks) {
    this.key = key;
    this.spec = null;
    this.track = null;
    const el = document.createElement('div');
    el.className = 'tile';
    el.dataset.key = key;
    el.tabIndex = 0;
    el.innerHTML = `
      <div class="avatar"><span class="avatar-disc"></span></div>
      <video autoplay playsinline muted></video>
      <div class="presenting-card" hidden>
        ${icon('present', 'big')}
        <p>You are presenting to everyone</p>
        <button type="button" class="pill danger stop-presenting">Stop presenting</button>
      </div>
      <button type="button" class="tile-pin" aria-label="Pin">${icon('pin')}</button>
      <div class="tile-label"><span class="tile-mic">${icon('micOff')}</span><span class="tile-name"></span></div>`;
    this.el = el;
    this.video = el.querySelector('video');
    this.disc = el.querySelector('.avatar-disc');
    this.nameEl = el.querySelector('.tile-name');
    this.pinBtn = el.querySelector('.tile-pin');
    el.addEventListener('click', (ev) => {
      if (ev.target.closest('.stop-presenting')) return hooks.onStopPresenting();
      hooks.onPin(key);
    });
    el.addEventListener('keydown', (ev) => {
      if (ev.target !== el) return; // keys on the inner button are the button's
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        hooks.onPin(key);
      }
    });
  }

  update(spec, { featured, pinned, speaking, track }) {
    const prev = this.spec;
    this.spec = spec;
    const el = this.el;
    el.classList.toggle('featured', featured);
    el.classList.toggle('pinned', pinned);
    el.classList.toggle('speaking', speaking);
    el.classList.toggle('mirrored', !!spec.mirrored);
    el.classList.toggle('screen', spec.kind === 'screen');
    el.classList.toggle('mic-muted', !!spec.micMuted);
    el.querySelector('.presenting-card').hidden = spec.kind !== 'presenting';
    if (!prev || prev.label !== spec.label) {
      this.nameEl.textContent = spec.label;
      el.setAttribute('aria-label', spec.label);
    }
    if (!prev || prev.name !== spec.name) {
      this.disc.textContent = initials(spec.name);
      this.disc.style.background = avatarColor(spec.participantId ?? spec.key);
    }
    this.pinBtn.setAttribute('aria-label', pinned ? 'Unpin' : 'Pin');
    this.pinBtn.title = pinned ? 'Unpin' : 'Pin to the main view';
    this.#attach(track);
  }

  /** Shows `track` (or the avatar when null). The has-video class waits for a real frame. */
  #attach(track) {
    if (track === this.track) return;
    this.track = track;
    this.el.classList.remove('has-video');
    if (!track) {
      this.video.srcObject = null;
      return;
    }
    this.video.srcObject = new MediaStream([track]);
    this.video.play().catch(() => {});
    const shown = track;
    const onFrame = () => {
      if (this.track === shown) this.el.classList.add('has-video');
    };
    if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(onFrame);
    else this.video.addEventListener('loadeddata', onFrame, { once: true });
  }

  /** Moving a <video> in the DOM may pause it; nudge it back. */
  resume() {
    if (this.track && this.video.paused) this.video.play().catch(() => {});
  }
}
