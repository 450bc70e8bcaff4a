// The broadcast viewer: WHEP playback (draft-ietf-wish-whep) of a meeting or WHIP broadcast.
//
// One POST of a recvonly audio + video offer to /v1/whep/<meeting>; the 201 carries the
// answer (with the edge's host candidates, so no trickle is needed) and the session URL in
// Location, which we DELETE when the page goes away. 404/409 mean "not live yet": we wait
// and retry, honouring Retry-After. If the connection dies later we start over.

import { icon } from './icons.js';
import { tokenFromHash, devToken, randomSlug } from './token.js';

const $ = (sel) => document.querySelector(sel);

/** Retry delays while waiting for a broadcast (ms), then every RETRY_STEADY_MS. */
const RETRY_MS = [1000, 2000, 4000];
const RETRY_STEADY_MS = 5000;
/** Upper bound on a server's Retry-After we are willing to honour. */
const RETRY_AFTER_MAX_MS = 30_000;
/** ICE candidates are included when ready within this long (the edge does not need them). */
const GATHER_WAIT_MS = 1000;
/** A connection `disconnected` for this long is given up and restarted. */
const DISCONNECTED_GRACE_MS = 5000;
/** No new frame for this long: tell the viewer the broadcast paused. */
const STALL_MS = 4000;
/** Connected but no frame yet after this long: nothing is live yet (the edge admits viewers
 * before the broadcast starts and begins sending when it does). */
const IDLE_MS = 2500;
const STATS_MS = 1000;

const state = {
  meeting: new URLSearchParams(location.search).get('meeting')?.trim() || '',
  linkToken: tokenFromHash(),
  token: null,
  phase: 'connecting', // connecting | waiting (retrying) | idle (connected, nothing live) | playing | stalled | error | form
  sessionUrl: null,
  attempts: 0,
  sessions: 0,
  lastFrames: 0,
  lastFrameAt: 0,
  stats: null,
};

let pc = null;
let retryTimer = null;
let statsTimer = null;
let disconnectTimer = null;
let prevStats = null;

function setPhase(phase, title, text) {
  state.phase = phase;
  $('#player').dataset.state = phase;
  if (title != null) $('#overlay-title').textContent = title;
  $('#overlay-text').textContent = text ?? '';
  $('#btn-retry').hidden = phase !== 'waiting' && phase !== 'error';
  $('#watch-form').hidden = phase !== 'form';
}

async function token() {
  if (state.linkToken) return state.linkToken;
  if (!state.token) {
    state.token = await devToken({ meeting: state.meeting, identity: randomSlug('viewer'), name: 'Viewer', role: 'subscriber' });
  }
  return state.token;
}

/** One attempt at a WHEP session. Schedules the next attempt itself when it fails. */
async function start() {
  clearTimeout(retryTimer);
  await stop();
  state.attempts += 1;
  if (state.phase !== 'waiting') setPhase('connecting', 'Connecting…', state.meeting);
  let bearer;
  try {
    bearer = await token();
  } catch (err) {
    return setPhase('error', 'Cannot watch this broadcast', err.message);
  }
  const conn = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  pc = conn;
  conn.addTransceiver('audio', { direction: 'recvonly' });
  conn.addTransceiver('video', { direction: 'recvonly' });
  const stream = new MediaStream();
  conn.ontrack = (ev) => {
    stream.addTrack(ev.track);
    const video = $('#video');
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(() => {});
  };
  conn.onconnectionstatechange = () => onConnectionState(conn);
  await conn.setLocalDescription(await conn.createOffer());
  await waitForGathering(conn, GATHER_WAIT_MS);
  if (pc !== conn) return;

  const endpoint = new URL(`/v1/whep/${encodeURIComponent(state.meeting)}`, location.href);
  let res;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${bearer}` },
      body: conn.localDescription.sdp,
    });
  } catch (err) {
    return retry(null, 'Cannot reach the server', `Retrying… (${err.message})`);
  }
  if (pc !== conn) return;
  if (res.status === 201) {
    const loc = res.headers.get('Location');
    state.sessionUrl = loc ? new URL(loc, endpoint).href : null;
    state.sessions += 1;
    try {
      await conn.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    } catch (err) {
      return setPhase('error', 'Playback failed', `The server's answer was not usable: ${err.message}`);
    }
    state.attempts = 0;
    startStats(conn);
    return;
  }
  if (res.status === 404 || res.status === 409) {
    return retry(res, 'Waiting for the broadcast to start…', 'This page will start playing as soon as it is live.');
  }
  if (res.status === 503 || res.status === 429) {
    return retry(res, 'The server is busy', 'Retrying in a moment…');
  }
  if ((res.status === 401 || res.status === 403) && !state.linkToken && state.token) {
    state.token = null; // a dev token may have expired; one fresh try
    if (state.attempts < 2) return start();
  }
  const detail = (await res.text().catch(() => '')).slice(0, 300);
  const why = res.status === 401 || res.status === 403 ? 'You are not allowed to watch this broadcast.' : `The server said ${res.status}.`;
  setPhase('error', 'Cannot play this broadcast', detail ? `${why} ${detail}` : why);
}

/** Waits (Retry-After, else backoff) and tries again, keeping the viewer informed. */
function retry(res, title, text) {
  const i = Math.max(0, state.attempts - 1);
  let delay = RETRY_MS[i] ?? RETRY_STEADY_MS;
  const after = res?.headers.get('Retry-After');
  if (after) {
    const secs = Number(after);
    const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(after) - Date.now();
    if (ms > 0) delay = Math.min(ms, RETRY_AFTER_MAX_MS);
  }
  stop();
  setPhase('waiting', title, text);
  retryTimer = setTimeout(start, delay);
}

function onConnectionState(conn) {
  if (conn !== pc) return;
  const s = conn.connectionState;
  clearTimeout(disconnectTimer);
  if (s === 'failed') {
    retry(null, 'Connection lost', 'Reconnecting…');
  } else if (s === 'disconnected') {
    disconnectTimer = setTimeout(() => conn === pc && retry(null, 'Connection lost', 'Reconnecting…'), DISCONNECTED_GRACE_MS);
  }
}

/** Ends the current session: DELETE the session URL (best effort) and close. */
async function stop({ keepalive = false } = {}) {
  clearInterval(statsTimer);
  clearTimeout(disconnectTimer);
  const url = state.sessionUrl;
  state.sessionUrl = null;
  if (pc) {
    pc.close();
    pc = null;
  }
  if (url) {
    const headers = state.token || state.linkToken ? { Authorization: `Bearer ${state.linkToken || state.token}` } : {};
    await fetch(url, { method: 'DELETE', headers, keepalive }).catch(() => {});
  }
}

function startStats(conn) {
  prevStats = null;
  state.lastFrames = 0;
  state.lastFrameAt = performance.now();
  clearInterval(statsTimer);
  statsTimer = setInterval(() => pollStats(conn).catch(() => {}), STATS_MS);
}

async function pollStats(conn) {
  if (conn !== pc) return;
  const s = await collectStats(conn);
  state.stats = s;
  const now = performance.now();
  if (s.video.framesDecoded > state.lastFrames) {
    state.lastFrames = s.video.framesDecoded;
    state.lastFrameAt = now;
    if (state.phase !== 'playing') setPhase('playing');
  } else if (state.phase === 'connecting' && conn.connectionState === 'connected' && now - state.lastFrameAt > IDLE_MS) {
    setPhase('idle', 'Waiting for the broadcast to start…', 'This page will start playing as soon as it is live.');
  } else if (state.phase === 'playing' && now - state.lastFrameAt > STALL_MS) {
    setPhase('stalled', 'The broadcast paused', 'Playback resumes by itself when the broadcaster is back.');
  }
  const kbps = prevStats ? ((s.bytes - prevStats.bytes) * 8) / (now - prevStats.at) : null;
  prevStats = { bytes: s.bytes, at: now };
  renderStats(s, kbps);
}

/** Plain numbers from getStats (also the test hook). */
async function collectStats(conn = pc) {
  const out = { video: { framesDecoded: 0 }, audio: {}, bytes: 0, rttMs: null };
  if (!conn) return out;
  const report = await conn.getStats();
  const codecs = new Map();
  for (const r of report.values()) if (r.type === 'codec') codecs.set(r.id, r.mimeType);
  for (const r of report.values()) {
    if (r.type === 'inbound-rtp') {
      out.bytes += r.bytesReceived ?? 0;
      const k = r.kind === 'video' ? 'video' : 'audio';
      Object.assign(out[k], {
        codec: codecs.get(r.codecId) ?? null,
        packetsReceived: r.packetsReceived ?? 0,
        packetsLost: r.packetsLost ?? 0,
        jitterMs: r.jitter != null ? r.jitter * 1000 : null,
        ...(k === 'video'
          ? {
              framesDecoded: r.framesDecoded ?? 0,
              framesDropped: r.framesDropped ?? 0,
              frameWidth: r.frameWidth ?? null,
              frameHeight: r.frameHeight ?? null,
              fps: r.framesPerSecond ?? null,
              keyFramesDecoded: r.keyFramesDecoded ?? 0,
            }
          : {}),
      });
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      const pair = report.get(r.selectedCandidatePairId);
      if (pair?.currentRoundTripTime != null) out.rttMs = pair.currentRoundTripTime * 1000;
    }
  }
  return out;
}

function renderStats(s, kbps) {
  const panel = $('#stats');
  if (panel.hidden) return;
  const v = s.video;
  const loss = (x) => (x.packetsReceived ? `${((100 * x.packetsLost) / (x.packetsReceived + x.packetsLost)).toFixed(2)}%` : '—');
  const rows = [
    ['Resolution', v.frameWidth ? `${v.frameWidth}×${v.frameHeight}` : '—'],
    ['Frame rate', v.fps != null ? `${Math.round(v.fps)} fps` : '—'],
    ['Frames decoded', String(v.framesDecoded ?? 0)],
    ['Video codec', v.codec?.replace('video/', '') ?? '—'],
    ['Audio codec', s.audio.codec?.replace('audio/', '') ?? '—'],
    ['Bitrate', kbps != null ? `${Math.round(kbps)} kbit/s` : '—'],
    ['Packet loss', `${loss(v)} video · ${loss(s.audio)} audio`],
    ['Jitter', v.jitterMs != null ? `${v.jitterMs.toFixed(1)} ms` : '—'],
    ['Round trip', s.rttMs != null ? `${Math.round(s.rttMs)} ms` : '—'],
  ];
  panel.replaceChildren(
    ...rows.map(([k, val]) => {
      const row = document.createElement('div');
      const a = document.createElement('span');
      const b = document.createElement('span');
      a.textContent = k;
      b.textContent = val;
      row.append(a, b);
      return row;
    }),
  );
}

function waitForGathering(conn, ms) {
  if (conn.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      conn.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => conn.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, ms);
    conn.addEventListener('icegatheringstatechange', check);
  });
}

function initUi() {
  const video = $('#video');
  const unmute = $('#btn-unmute');
  // Browsers only autoplay muted video; sound needs one click.
  unmute.innerHTML = `${icon('volumeOff')}<span>Click to unmute</span>`;
  video.addEventListener('playing', () => {
    unmute.hidden = !video.muted;
  });
  unmute.addEventListener('click', () => {
    video.muted = false;
    video.play().catch(() => {});
    unmute.hidden = true;
  });
  $('#btn-stats').innerHTML = icon('info');
  $('#btn-stats').addEventListener('click', () => {
    const panel = $('#stats');
    panel.hidden = !panel.hidden;
    $('#btn-stats').setAttribute('aria-pressed', String(!panel.hidden));
    if (state.stats) renderStats(state.stats, null);
  });
  $('#btn-fullscreen').innerHTML = icon('fullscreen');
  $('#btn-fullscreen').addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else $('#player').requestFullscreen?.().catch(() => {});
  });
  $('#btn-retry').addEventListener('click', () => {
    state.attempts = 0;
    start();
  });
  $('#watch-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const m = $('#meeting-input').value.trim();
    if (!m) return;
    const url = new URL(location.href);
    url.searchParams.set('meeting', m);
    history.replaceState(null, '', url);
    begin(m);
  });
  addEventListener('pagehide', () => {
    clearTimeout(retryTimer);
    stop({ keepalive: true });
  });
}

function begin(meeting) {
  state.meeting = meeting;
  $('#title').textContent = meeting;
  document.title = `${meeting} – Arbor Live`;
  start();
}

window.arbor = {
  state,
  get pc() {
    return pc;
  },
  stats: () => collectStats(),
};

initUi();
if (state.meeting) {
  begin(state.meeting);
} else {
  setPhase('form', 'Watch a live broadcast', 'Enter the name of the broadcast to watch.');
}
