// The connection-quality indicator (signal bars + a tooltip with the numbers).
//
// Two opinions are combined and the worse one wins: the edge's (`connection_quality`, from its
// downlink estimate and the loss it sees) and ours (RTT and loss from pc.getStats()). Either
// side can see trouble the other cannot: the edge sees our uplink, we see our downlink.

import { bars } from './icons.js';

const POLL_MS = 2000;
const LEVELS = { unknown: 0, poor: 1, good: 3, excellent: 4 };
const LABELS = { unknown: 'Connecting…', poor: 'Poor', good: 'Good', excellent: 'Excellent' };

/** Our own verdict from round-trip time (ms) and loss (0..1). */
export function localVerdict(rttMs, loss) {
  if (rttMs == null && loss == null) return 'unknown';
  const r = rttMs ?? 0;
  const l = loss ?? 0;
  if (r < 150 && l < 0.02) return 'excellent';
  if (r < 300 && l < 0.08) return 'good';
  return 'poor';
}

function worse(a, b) {
  if (a === 'unknown') return b;
  if (b === 'unknown') return a;
  return LEVELS[a] <= LEVELS[b] ? a : b;
}

export class QualityIndicator {
  /** @param {HTMLElement} el  the .quality element: a button plus a .quality-pop tooltip */
  constructor(el) {
    this.el = el;
    this.barsEl = el.querySelector('.quality-bars');
    this.pop = el.querySelector('.quality-pop');
    this.server = { quality: 'unknown', downlinkBps: null };
    this.local = { rttMs: null, lossIn: null, lossOut: null, recvBps: null, sendBps: null };
    this.prev = null;
    this.timer = null;
    this.render();
  }

  /** Starts polling `getStats` of `media` (a MediaSession). */
  start(media) {
    this.stop();
    this.media = media;
    this.prev = null;
    this.timer = setInterval(() => this.#poll().catch(() => {}), POLL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** A `connection_quality` message. */
  setServer(quality, downlinkBps) {
    this.server = { quality: LEVELS[quality] != null ? quality : 'unknown', downlinkBps: downlinkBps ?? null };
    this.render();
  }

  get verdict() {
    return worse(this.server.quality, localVerdict(this.local.rttMs, this.#loss()));
  }

  #loss() {
    const { lossIn, lossOut } = this.local;
    if (lossIn == null && lossOut == null) return null;
    return Math.max(lossIn ?? 0, lossOut ?? 0);
  }

  async #poll() {
    const media = this.media;
    if (!media || media.closed) return;
    const { report, transport } = await media.stats();
    let recvBytes = 0;
    let sentBytes = 0;
    let received = 0;
    let lost = 0;
    const fractions = [];
    for (const r of report.values()) {
      if (r.type === 'inbound-rtp') {
        recvBytes += r.bytesReceived ?? 0;
        received += r.packetsReceived ?? 0;
        lost += Math.max(0, r.packetsLost ?? 0);
      } else if (r.type === 'outbound-rtp') {
        sentBytes += r.bytesSent ?? 0;
      } else if (r.type === 'remote-inbound-rtp' && r.fractionLost != null) {
        fractions.push(r.fractionLost);
      }
    }
    const now = performance.now();
    const cur = { now, recvBytes, sentBytes, received, lost };
    const prev = this.prev;
    this.prev = cur;
    this.local.rttMs = transport?.rttMs ?? null;
    this.local.lossOut = fractions.length ? Math.max(...fractions) : null;
    if (prev) {
      const secs = (now - prev.now) / 1000;
      const dRecv = cur.received - prev.received;
      const dLost = cur.lost - prev.lost;
      this.local.lossIn = dRecv + dLost > 0 ? Math.max(0, dLost) / (dRecv + dLost) : null;
      this.local.recvBps = secs > 0 ? ((cur.recvBytes - prev.recvBytes) * 8) / secs : null;
      this.local.sendBps = secs > 0 ? ((cur.sentBytes - prev.sentBytes) * 8) / secs : null;
    }
    this.render();
  }

  render() {
    const v = this.verdict;
    this.el.dataset.quality = v;
    this.barsEl.innerHTML = bars(LEVELS[v]);
    const { rttMs, lossIn, lossOut, recvBps, sendBps } = this.local;
    const rows = [
      ['Connection', LABELS[v]],
      ['Round trip', rttMs != null ? `${Math.round(rttMs)} ms` : '—'],
      ['Loss (in / out)', `${pct(lossIn)} / ${pct(lossOut)}`],
      ['Receiving', rate(recvBps)],
      ['Sending', rate(sendBps)],
      ['Server estimate', rate(this.server.downlinkBps)],
    ];
    this.pop.replaceChildren(
      ...rows.map(([k, val]) => {
        const row = document.createElement('div');
        const dt = document.createElement('span');
        const dd = document.createElement('span');
        dt.textContent = k;
        dd.textContent = val;
        row.append(dt, dd);
        return row;
      }),
    );
    this.el.setAttribute('aria-label', `Connection quality: ${LABELS[v]}`);
  }

  /** Plain numbers for the test hook. */
  describe() {
    return { verdict: this.verdict, server: { ...this.server }, local: { ...this.local } };
  }
}

function pct(x) {
  return x == null ? '—' : `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

function rate(bps) {
  if (bps == null) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}
