// Arbor Meet: the lobby, the meeting and the end screen, wired together.
//
// State flows one way: signaling messages and button clicks change `state`, then render()
// derives the tiles from it and asks the MediaSession to make the subscriptions match
// (media.reconcile). Nothing else subscribes or unsubscribes. That keeps the slot → track map
// right across joins, leaves, layout changes and socket resumes.

import { Signaling, signalingUrl } from './signaling.js';
import { MediaSession, VIDEO_CODECS, DEFAULT_VIDEO_CODEC } from './media.js';
import { Layout } from './layout.js';
import { ChatPanel } from './chat.js';
import { QualityIndicator } from './quality.js';
import { icon, avatarColor, initials } from './icons.js';
import { tokenFromHash, decodeClaims, devToken, randomSlug, randomMeetingCode } from './token.js';

const $ = (sel) => document.querySelector(sel);

/** Camera capture size: the top simulcast layer is this, the others 1/2 and 1/4 of it. */
const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
/** Spare receive slots reserved in the first offer, on top of what the snapshot needs. */
const INITIAL_SPARE_SLOTS = 2;
/** The featured speaker changes at most this often, so a cough does not flip the stage. */
const SPEAKER_HOLD_MS = 1500;
/** Join/leave toasts only in meetings up to this size; past it they are noise. */
const TOAST_MAX_PEOPLE = 12;
/** Received message types remembered for the test hook / debugging. */
const EVENT_LOG_MAX = 300;

/**
 * The codec we publish video in: `?codec=vp8|vp9|h264` (default VP8). Only what we send;
 * we receive every codec whatever this says.
 */
const VIDEO_CODEC = (() => {
  const asked = (new URLSearchParams(location.search).get('codec') || DEFAULT_VIDEO_CODEC).toLowerCase();
  if (Object.hasOwn(VIDEO_CODECS, asked)) return asked;
  console.warn(`unknown ?codec=${asked}; publishing ${DEFAULT_VIDEO_CODEC}`);
  return DEFAULT_VIDEO_CODEC;
})();

const FATAL_TITLES = {
  meeting_full: ['This meeting is full', 'Try again later, or ask the host to make room.'],
  overloaded: ['The server is busy', 'This edge is not taking new participants right now. Try again in a moment.'],
  token_expired: ['Your invitation has expired', 'Ask the meeting host for a new link.'],
  replaced: ['You joined from somewhere else', 'This tab left the meeting because you joined again with the same account.'],
};

/** Everything the UI shows, in one place (read by tests through window.arbor). */
const state = {
  phase: 'lobby', // lobby | joining | meeting | ended
  meeting: '',
  name: '',
  identity: sessionStorage.getItem('arbor.identity') || randomSlug('guest'),
  linkToken: tokenFromHash(),
  token: null,
  self: null,
  participants: new Map(), // remote participants by id
  tracks: new Map(), // remote tracks by id
  ownTracks: new Map(), // our published tracks as the edge names them: source → track id
  speakers: [],
  featuredSpeakerId: null,
  speakerSwitchedAt: 0,
  pinned: null,
  micOn: true,
  camOn: true,
  presenting: false,
  limits: {},
  joins: 0,
  resumes: 0,
  lastChatAt: 0,
  events: [],
};
sessionStorage.setItem('arbor.identity', state.identity);

/** Local capture: one stream holding whatever we currently capture. */
const local = { stream: new MediaStream(), mic: null, cam: null, screen: null, screenStream: null };

let signaling = null;
let media = null;
let layout = null;
let chat = null;
let quality = null;
let renderQueued = false;
let speakerTimer = null;

// ---------------------------------------------------------------- lobby

function initLobby() {
  const params = new URLSearchParams(location.search);
  const claims = state.linkToken ? decodeClaims(state.linkToken) : null;
  const room = claims?.video?.room;
  const meetingInput = $('#meeting-input');
  meetingInput.value = room || params.get('meeting') || randomMeetingCode();
  if (room) {
    // The token decides the meeting; the field only shows it.
    meetingInput.readOnly = true;
    $('#join-sub').textContent = 'You have an invitation to this meeting.';
  }
  $('#name-input').value = localStorage.getItem('arbor.name') || claims?.name || '';
  $('#watch-link').href = `./watch.html?meeting=${encodeURIComponent(meetingInput.value)}`;
  meetingInput.addEventListener('input', () => {
    $('#watch-link').href = `./watch.html?meeting=${encodeURIComponent(meetingInput.value.trim())}`;
  });
  $('#name-input').addEventListener('input', updatePreviewName);
  $('#preview-mic').addEventListener('click', () => toggleMic());
  $('#preview-cam').addEventListener('click', () => toggleCam());
  $('#join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    joinFromLobby();
  });
  updatePreviewName();
  renderDeviceButtons();
  previewReady = startPreview();
}

/** Settles when the lobby's camera and microphone have started (or failed to). */
let previewReady = Promise.resolve();

async function startPreview() {
  try {
    await acquire({ audio: state.micOn, video: state.camOn });
  } catch (err) {
    showJoinError(err.message);
  }
  attachPreview();
  startMicMeter();
}

function attachPreview() {
  const video = $('#preview-video');
  video.srcObject = local.cam ? new MediaStream([local.cam]) : null;
  $('.preview').dataset.cam = local.cam && state.camOn ? 'on' : 'off';
  $('.preview').dataset.mic = local.mic && state.micOn ? 'on' : 'off';
  if (!local.cam && state.camOn) $('.preview-off-text').textContent = 'Camera is starting…';
  else $('.preview-off-text').textContent = 'Camera is off';
}

function updatePreviewName() {
  const name = $('#name-input').value.trim();
  $('.preview-name').textContent = name;
  const disc = $('.preview-avatar');
  disc.textContent = initials(name || 'You');
  disc.style.background = avatarColor(state.identity);
}

/**
 * Gets the devices asked for. If both fail together, tries each alone so that a missing
 * camera does not also cost the microphone. Throws only when nothing asked for could start.
 */
async function acquire({ audio, video }) {
  const want = { audio: audio && !local.mic, video: video && !local.cam };
  if (!want.audio && !want.video) return;
  const attempts = want.audio && want.video ? [want, { audio: true }, { video: true }] : [want];
  let lastErr = null;
  for (const a of attempts) {
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        audio: a.audio ? MIC_CONSTRAINTS : false,
        video: a.video ? CAMERA_CONSTRAINTS : false,
      });
      for (const t of s.getTracks()) adoptLocalTrack(t);
      if ((!want.audio || local.mic) && (!want.video || local.cam)) return;
    } catch (err) {
      lastErr = err;
    }
  }
  if (!local.mic && !local.cam && lastErr) throw new Error(deviceErrorText(lastErr));
}

function adoptLocalTrack(track) {
  if (track.kind === 'audio') {
    local.mic = track;
    track.enabled = state.micOn;
  } else {
    local.cam = track;
  }
  local.stream.addTrack(track);
}

function dropLocalTrack(kind) {
  const t = kind === 'audio' ? local.mic : local.cam;
  if (!t) return;
  t.stop();
  local.stream.removeTrack(t);
  if (kind === 'audio') local.mic = null;
  else local.cam = null;
}

function deviceErrorText(err) {
  if (err?.name === 'NotAllowedError') return 'Camera and microphone are blocked. Allow them in the address bar to be seen and heard.';
  if (err?.name === 'NotFoundError') return 'No camera or microphone found. You can still join and watch.';
  if (err?.name === 'NotReadableError') return 'Your camera or microphone is in use by another app.';
  return `Could not start your camera or microphone (${err?.message || err}).`;
}

/** A tiny level meter on the preview, so people see their microphone works before joining. */
function startMicMeter() {
  if (!local.mic || startMicMeter.running) return;
  startMicMeter.running = true;
  let ctx;
  try {
    ctx = new AudioContext();
  } catch {
    return;
  }
  const source = ctx.createMediaStreamSource(new MediaStream([local.mic]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const dots = [...document.querySelectorAll('.mic-meter i')];
  const resume = () => ctx.resume().catch(() => {});
  document.addEventListener('pointerdown', resume, { once: true });
  const tick = () => {
    if (state.phase !== 'lobby') {
      ctx.close().catch(() => {});
      startMicMeter.running = false;
      return;
    }
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    const level = Math.min(1, peak / 64);
    dots.forEach((d, i) => {
      d.style.height = `${4 + Math.round(level * (i === 1 ? 16 : 10))}px`;
    });
    requestAnimationFrame(tick);
  };
  tick();
}

function showJoinError(text) {
  const el = $('#join-error');
  el.textContent = text || '';
  el.hidden = !text;
}

function setJoinBusy(busy) {
  const b = $('#join-button');
  b.disabled = busy;
  b.classList.toggle('busy', busy);
  b.querySelector('.label').textContent = busy ? 'Joining…' : 'Join now';
}

async function joinFromLobby() {
  const meeting = $('#meeting-input').value.trim();
  const name = $('#name-input').value.trim();
  if (!meeting) return showJoinError('Enter the name of the meeting to join.');
  if (!name) {
    $('#name-input').focus();
    return showJoinError('Enter your name: it is how others will see you.');
  }
  showJoinError('');
  localStorage.setItem('arbor.name', name);
  state.meeting = meeting;
  state.name = name;
  const url = new URL(location.href);
  url.searchParams.set('meeting', meeting);
  history.replaceState(null, '', url);
  setJoinBusy(true);
  try {
    // Join with the devices the preview is still starting (a quick click must not cost us
    // the camera: what is published is fixed by the first offer).
    await previewReady;
    await connect();
  } catch (err) {
    state.phase = 'lobby';
    showJoinError(err.message);
  } finally {
    setJoinBusy(false);
  }
}

/** The token for a join: the one from the link, or a fresh dev token. */
async function fetchToken() {
  if (state.linkToken) return state.linkToken;
  return devToken({ meeting: state.meeting, identity: state.identity, name: state.name, role: 'publisher' });
}

/** Opens the signaling socket and joins; the `joined` handler starts the meeting. */
async function connect() {
  state.phase = 'joining';
  const token = await fetchToken();
  state.token = token;
  signaling?.close();
  const s = new Signaling({
    url: signalingUrl(),
    onMessage: (msg) => s === signaling && handleMessage(msg),
    onStatus: (status, detail) => s === signaling && handleStatus(status, detail),
  });
  signaling = s;
  try {
    await s.join(token, state.name);
  } catch (err) {
    throw new Error(joinErrorText(err));
  }
}

function joinErrorText(err) {
  const code = err.code || '';
  if (FATAL_TITLES[code]) return FATAL_TITLES[code].join(' ');
  if (code.startsWith('token_')) return `The invitation was refused (${code.replace('token_', '').replace(/_/g, ' ')}).`;
  return err.message;
}

// ---------------------------------------------------------------- signaling

function handleMessage(msg) {
  if (msg.type !== 'pong') {
    state.events.push({ type: msg.type, at: Date.now(), ...(msg.code ? { code: msg.code } : {}) });
    if (state.events.length > EVENT_LOG_MAX) state.events.splice(0, state.events.length - EVENT_LOG_MAX);
  }
  switch (msg.type) {
    case 'joined':
      onJoined(msg);
      break;
    case 'resumed':
      onResumed(msg);
      break;
    case 'answer':
      media?.handleAnswer(msg.sdp);
      break;
    case 'participant_joined':
      onParticipantJoined(msg.participant);
      break;
    case 'participant_left':
      onParticipantLeft(msg.participant_id, msg.reason);
      break;
    case 'track_published':
      addTrack(msg.track);
      break;
    case 'track_unpublished':
      removeTrack(msg.track_id);
      break;
    case 'track_muted': {
      const t = state.tracks.get(msg.track_id);
      if (t) t.muted = !!msg.muted;
      break;
    }
    case 'active_speakers':
      onSpeakers(msg.speakers || []);
      break;
    case 'layer_changed':
      media?.handleLayerChanged(msg);
      break;
    case 'connection_quality':
      quality?.setServer(msg.quality, msg.downlink_bps);
      break;
    case 'chat':
      if (msg.message) chat.add(msg.message);
      break;
    case 'error':
      onError(msg);
      break;
    case 'pong':
      return;
    default:
      console.debug('signaling: unhandled message', msg.type);
  }
  scheduleRender();
}

function handleStatus(status) {
  const banner = $('#reconnect-banner');
  if (status === 'reconnecting' && state.phase === 'meeting') {
    banner.querySelector('.banner-text').textContent = 'Reconnecting…';
    banner.hidden = false;
  } else if (status === 'open') {
    banner.hidden = true;
  }
}

function meetingName(m) {
  if (typeof m === 'string') return m;
  return m?.name || m?.id || state.meeting;
}

function onJoined(msg) {
  state.self = msg.participant;
  state.meeting = meetingName(msg.meeting);
  state.limits = msg.limits || {};
  state.joins += 1;
  state.pinned = null;
  state.speakers = [];
  state.featuredSpeakerId = null;
  applySnapshot(msg, { fresh: true });
  chat.reset({ selfId: state.self.id, history: msg.chat, maxLen: state.limits.max_chat_len });
  showMeeting();
  startMedia(msg.ice_servers);
}

function onResumed(msg) {
  state.resumes += 1;
  state.self = msg.participant ?? state.self;
  state.limits = msg.limits || state.limits;
  applySnapshot(msg, { fresh: false });
  chat.reset({ selfId: state.self.id, history: msg.chat, maxLen: state.limits.max_chat_len });
  media?.adoptSubscriptions(msg.subscriptions);
  media?.resendOffer();
  // `mute` is state, not an event: say it again in case it was lost with the old socket.
  if (!state.micOn) sendMute('microphone', true);
}

/**
 * Replaces participants and tracks with a `joined`/`resumed` snapshot. Our own track ids are
 * kept across a resume (the snapshot lists "everyone else's" tracks and may not repeat ours).
 */
function applySnapshot(msg, { fresh }) {
  state.participants = new Map();
  for (const p of msg.participants || []) if (p.id !== state.self.id) state.participants.set(p.id, p);
  state.tracks = new Map();
  if (fresh) state.ownTracks = new Map();
  for (const t of msg.tracks || []) addTrack(t);
}

function onParticipantJoined(p) {
  if (!p || p.id === state.self?.id) return;
  state.participants.set(p.id, p);
  if (state.participants.size < TOAST_MAX_PEOPLE) toast(`${p.name || p.identity} joined`);
}

function onParticipantLeft(id, reason) {
  if (id === state.self?.id) {
    if (reason === 'replaced') endMeeting('replaced');
    return;
  }
  const p = state.participants.get(id);
  state.participants.delete(id);
  for (const [tid, t] of state.tracks) if (t.participant_id === id) removeTrack(tid);
  if (p && state.participants.size < TOAST_MAX_PEOPLE) {
    toast(`${p.name || p.identity} ${reason === 'timeout' ? 'lost their connection' : 'left'}`);
  }
}

function addTrack(track) {
  if (!track) return;
  if (track.participant_id === state.self?.id) {
    // Our own track, as the edge names it: needed to send `mute` for it.
    state.ownTracks.set(track.source, track.id);
    if (track.source === 'microphone' && !state.micOn && !track.muted) sendMute('microphone', true);
    return;
  }
  state.tracks.set(track.id, track);
}

function removeTrack(trackId) {
  for (const [source, id] of state.ownTracks) if (id === trackId) state.ownTracks.delete(source);
  if (!state.tracks.delete(trackId)) return;
  // The slot showing it goes dark; free it now (the protocol asks us to unsubscribe).
  media?.forgetTrack(trackId);
}

function onSpeakers(speakers) {
  state.speakers = speakers;
  const top = speakers[0]?.participant_id;
  if (!top || top === state.self?.id || !state.participants.has(top) || top === state.featuredSpeakerId) return;
  const wait = state.speakerSwitchedAt + SPEAKER_HOLD_MS - performance.now();
  clearTimeout(speakerTimer);
  if (wait > 0) {
    // Too soon after the last switch: look again when the hold ends.
    speakerTimer = setTimeout(() => {
      onSpeakers(state.speakers);
      scheduleRender();
    }, wait);
    return;
  }
  state.featuredSpeakerId = top;
  state.speakerSwitchedAt = performance.now();
}

function onError(msg) {
  const code = msg.code;
  if (code === 'resume_failed') {
    // The edge forgot us (grace period over, or it restarted): join again from scratch.
    rejoin();
    return;
  }
  if (code === 'sdp_invalid') {
    media?.handleOfferError(msg);
    return;
  }
  const chatError = code === 'chat_too_long' || code === 'rate_limited' ||
    (code === 'permission_denied' && Date.now() - state.lastChatAt < 5000);
  if (chatError) {
    chat.handleError(msg);
    return;
  }
  if (msg.fatal) {
    if (state.phase === 'meeting') endMeeting(code, msg.message);
    return; // in the lobby, the join promise reports it
  }
  console.warn('signaling error', msg);
  if (code === 'permission_denied') toast(msg.message || 'You are not allowed to do that in this meeting.', 'error');
}

function sendMute(source, muted) {
  const id = state.ownTracks.get(source);
  if (id) signaling?.send({ type: 'mute', track_id: id, muted });
}

// ---------------------------------------------------------------- media

function startMedia(iceServers) {
  media?.close();
  const m = new MediaSession({
    iceServers,
    signaling,
    audioRoot: $('#audio-sink'),
    videoCodec: VIDEO_CODEC,
    onChange: scheduleRender,
    onError: (err) => {
      console.warn('media', err);
      if (m === media) toast(err.message, 'error');
    },
  });
  media = m;
  if (local.mic) m.addMic(local.mic, local.stream);
  if (local.cam && state.camOn) m.addCamera(local.cam, local.stream);
  if (local.screen) m.addScreen(local.screen, local.screenStream);
  // Enough receive slots for everything in the snapshot, so the first answer is complete.
  let audio = 0;
  let video = 0;
  for (const t of state.tracks.values()) {
    if (t.kind === 'audio') audio++;
    else video++;
  }
  m.reserveSlots('audio', audio + INITIAL_SPARE_SLOTS);
  m.reserveSlots('video', video + INITIAL_SPARE_SLOTS);
  m.pc.addEventListener('connectionstatechange', () => {
    if (m !== media) return;
    if (m.pc.connectionState === 'failed' && state.phase === 'meeting') {
      toast('The media connection was lost. Rejoining…', 'error');
      rejoin();
    }
  });
  m.requestNegotiation();
  quality.start(m);
}

/** A fresh join after the edge forgot us; local capture and UI choices carry over. */
async function rejoin() {
  if (state.phase === 'ended') return;
  $('#reconnect-banner').hidden = false;
  media?.close();
  media = null;
  try {
    await connect();
  } catch (err) {
    endMeeting('rejoin_failed', err.message);
  }
}

async function toggleMic() {
  state.micOn = !state.micOn;
  if (state.micOn && !local.mic) {
    try {
      await acquire({ audio: true, video: false });
    } catch (err) {
      state.micOn = false;
      toast(err.message, 'error');
    }
    if (local.mic && media && !media.mic) {
      media.addMic(local.mic, local.stream);
      media.requestNegotiation();
    }
  }
  if (local.mic) local.mic.enabled = state.micOn;
  sendMute('microphone', !state.micOn);
  renderDeviceButtons();
  if (state.phase === 'lobby') attachPreview();
  scheduleRender();
}

/** Runs `fn` unless a previous run is still going (double clicks on device buttons). */
function once(fn) {
  let busy = false;
  return async (...args) => {
    if (busy) return;
    busy = true;
    try {
      await fn(...args);
    } finally {
      busy = false;
    }
  };
}

const toggleCam = once(async () => {
  state.camOn = !state.camOn;
  renderDeviceButtons();
  if (state.camOn) {
    try {
      await acquire({ audio: false, video: true });
    } catch (err) {
      state.camOn = false;
      toast(err.message, 'error');
    }
    if (state.camOn && local.cam) await media?.setCamera(local.cam, local.stream);
  } else {
    // Camera off means the light goes off: stop capturing and unpublish the track.
    const done = media?.clearCamera();
    dropLocalTrack('video');
    await done;
  }
  renderDeviceButtons();
  if (state.phase === 'lobby') attachPreview();
  scheduleRender();
});

const toggleScreen = once(async () => {
  if (state.presenting) return stopScreen();
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
  } catch (err) {
    if (err?.name !== 'NotAllowedError') toast(`Could not share your screen (${err.message}).`, 'error');
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  track.contentHint = 'detail';
  // The browser's own "Stop sharing" button ends the track.
  track.addEventListener('ended', () => stopScreen());
  local.screen = track;
  local.screenStream = stream;
  state.presenting = true;
  state.pinned = null;
  renderDeviceButtons();
  scheduleRender();
  await media?.setScreen(track, stream);
});

async function stopScreen() {
  if (!state.presenting) return;
  state.presenting = false;
  const track = local.screen;
  local.screen = null;
  local.screenStream = null;
  renderDeviceButtons();
  scheduleRender();
  await media?.clearScreen();
  track?.stop();
}

// ---------------------------------------------------------------- meeting screen

function showMeeting() {
  state.phase = 'meeting';
  $('#join-screen').hidden = true;
  $('#end-screen').hidden = true;
  $('#meeting-screen').hidden = false;
  $('#reconnect-banner').hidden = true;
  $('#meeting-name').textContent = state.meeting;
  document.title = `${state.meeting} – Arbor Meet`;
  const invite = `${location.origin}${location.pathname}?meeting=${encodeURIComponent(state.meeting)}`;
  $('#invite-link').textContent = invite;
  $('#invite-link').dataset.url = invite;
  renderDeviceButtons();
  scheduleRender();
}

function initMeetingUi() {
  layout = new Layout($('#stage'), {
    onPin: (key) => {
      state.pinned = state.pinned === key ? null : key;
      scheduleRender();
    },
    onStopPresenting: () => stopScreen(),
    onVisibilityChange: scheduleRender,
  });
  chat = new ChatPanel($('#chat-panel'), {
    send: (text) => {
      state.lastChatAt = Date.now();
      return signaling?.send({ type: 'chat', text }) ?? false;
    },
    onUnread: (n) => {
      const badge = $('#chat-badge');
      badge.textContent = n > 99 ? '99+' : String(n);
      badge.hidden = n === 0;
    },
    onClose: () => setChatOpen(false),
  });
  quality = new QualityIndicator($('#quality'));
  $('#chat-panel .chat-close').innerHTML = icon('close');
  $('#chat-panel .chat-send').innerHTML = icon('send');
  $('#copy-link').innerHTML = icon('link');
  $('#btn-leave').innerHTML = icon('leave');
  $('#btn-chat').insertAdjacentHTML('afterbegin', icon('chat'));
  $('#btn-mic').addEventListener('click', () => toggleMic());
  $('#btn-cam').addEventListener('click', () => toggleCam());
  $('#btn-screen').addEventListener('click', () => toggleScreen());
  $('#btn-chat').addEventListener('click', () => setChatOpen(!chat.isOpen));
  $('#btn-leave').addEventListener('click', () => leave());
  $('#btn-rejoin').addEventListener('click', () => rejoinFromEnd());
  $('#btn-home').addEventListener('click', () => {
    const codec = VIDEO_CODEC === DEFAULT_VIDEO_CODEC ? '' : `&codec=${VIDEO_CODEC}`;
    location.assign(`${location.pathname}?meeting=${encodeURIComponent(state.meeting)}${codec}${location.hash}`);
  });
  $('#copy-link').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('#invite-link').dataset.url);
      toast('Link copied');
    } catch {
      toast('Could not copy: select the link and copy it by hand.', 'error');
    }
  });
  if (!navigator.mediaDevices?.getDisplayMedia) $('#btn-screen').hidden = true;
  document.addEventListener('keydown', (ev) => {
    if (state.phase !== 'meeting' && state.phase !== 'lobby') return;
    if (!(ev.ctrlKey || ev.metaKey) || ev.altKey || ev.shiftKey) return;
    if (ev.key === 'd') {
      ev.preventDefault();
      toggleMic();
    } else if (ev.key === 'e') {
      ev.preventDefault();
      toggleCam();
    }
  });
  // Tell the edge right away when the tab goes, so others see us leave now, not at timeout.
  addEventListener('pagehide', () => {
    if (state.phase === 'meeting') signaling?.leave();
  });
  tickClock();
  setInterval(tickClock, 10_000);
}

function setChatOpen(open) {
  chat.setOpen(open);
  $('#btn-chat').setAttribute('aria-pressed', String(open));
}

function renderDeviceButtons() {
  const mic = state.micOn && (local.mic || state.phase === 'lobby');
  const cam = state.camOn;
  for (const [sel, on, onIcon, offIcon, what, key] of [
    ['#btn-mic', mic, 'mic', 'micOff', 'microphone', 'D'],
    ['#preview-mic', mic, 'mic', 'micOff', 'microphone', 'D'],
    ['#btn-cam', cam, 'cam', 'camOff', 'camera', 'E'],
    ['#preview-cam', cam, 'cam', 'camOff', 'camera', 'E'],
  ]) {
    const b = $(sel);
    b.innerHTML = icon(on ? onIcon : offIcon);
    b.classList.toggle('off', !on);
    b.setAttribute('aria-pressed', String(on));
    b.title = `Turn ${on ? 'off' : 'on'} ${what} (Ctrl+${key})`;
    b.setAttribute('aria-label', b.title);
  }
  const s = $('#btn-screen');
  s.innerHTML = icon(state.presenting ? 'stopPresent' : 'present');
  s.classList.toggle('active', state.presenting);
  s.setAttribute('aria-pressed', String(state.presenting));
  s.title = state.presenting ? 'Stop presenting' : 'Present now';
  s.setAttribute('aria-label', s.title);
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  // A task, not requestAnimationFrame: subscriptions must follow events in background tabs too.
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function buildModel() {
  return {
    self: {
      id: state.self.id,
      name: state.name || state.self.name || 'You',
      micMuted: !state.micOn || !local.mic,
      cameraTrack: state.camOn ? local.cam : null,
      presenting: state.presenting,
    },
    participants: [...state.participants.values()].sort((a, b) => (a.joined_at_ms ?? 0) - (b.joined_at_ms ?? 0)),
    tracks: [...state.tracks.values()],
    speakerId: state.speakers[0]?.participant_id ?? null,
    featuredSpeakerId: state.featuredSpeakerId,
    pinned: state.pinned,
    trackFor: (trackId) => media?.slotOf(trackId)?.track ?? null,
  };
}

/** Every remote audio track, and the video tracks the layout shows, at the size it shows them. */
function desiredSubscriptions(model) {
  const out = new Map();
  for (const t of model.tracks) if (t.kind === 'audio') out.set(t.id, { kind: 'audio' });
  for (const [id, maxHeight] of layout.desiredVideo(model)) out.set(id, { kind: 'video', maxHeight });
  return out;
}

function render() {
  if (state.phase !== 'meeting' || !state.self) return;
  const model = buildModel();
  layout.update(model);
  if (state.pinned && !layout.tiles.has(state.pinned)) state.pinned = null;
  media?.reconcile(desiredSubscriptions(model));
  const people = state.participants.size + 1;
  $('#people-count').innerHTML = `${icon('people')}<span>${people}</span>`;
  $('#people-count').title = `${people} ${people === 1 ? 'person' : 'people'} in the call`;
  $('#alone-card').hidden = state.participants.size > 0 || state.presenting;
}

// ---------------------------------------------------------------- leaving

function leave() {
  signaling?.leave();
  endMeeting('left');
}

/** Shows the end screen and releases everything (camera light off). */
function endMeeting(reason, detail) {
  if (state.phase === 'ended') return;
  state.phase = 'ended';
  if (reason !== 'left') signaling?.close();
  media?.close();
  media = null;
  quality.stop();
  clearTimeout(speakerTimer);
  if (local.screen) {
    local.screen.stop();
    local.screen = null;
    state.presenting = false;
  }
  dropLocalTrack('audio');
  dropLocalTrack('video');
  $('#meeting-screen').hidden = true;
  $('#end-screen').hidden = false;
  document.title = 'Arbor Meet';
  let [title, text] = ['You left the meeting', `You can rejoin ${state.meeting} any time.`];
  if (reason !== 'left') {
    [title, text] = FATAL_TITLES[reason] ??
      (String(reason).startsWith('token_')
        ? ['This invitation link is not valid', 'Ask the meeting host for a new link.']
        : ['You were disconnected', detail || 'The meeting could not continue.']);
  }
  $('#end-title').textContent = title;
  $('#end-detail').textContent = text;
  $('#end-icon').innerHTML = icon(reason === 'left' ? 'leave' : 'alert');
}

async function rejoinFromEnd() {
  const b = $('#btn-rejoin');
  b.disabled = true;
  try {
    await acquire({ audio: state.micOn, video: state.camOn });
  } catch (err) {
    toast(err.message, 'error');
  }
  try {
    await connect();
  } catch (err) {
    state.phase = 'ended';
    $('#end-title').textContent = 'Could not rejoin';
    $('#end-detail').textContent = err.message;
  } finally {
    b.disabled = false;
  }
}

// ---------------------------------------------------------------- bits

function toast(text, kind = 'info', ms = 4000) {
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = text;
  const box = $('#toasts');
  box.append(el);
  while (box.childElementCount > 4) box.firstElementChild.remove();
  setTimeout(() => el.remove(), ms);
}

function tickClock() {
  const t = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  for (const el of document.querySelectorAll('.clock')) el.textContent = t;
}

// ---------------------------------------------------------------- test hooks

// Read-only views for the end-to-end tests (and for debugging from the console). They add no
// behaviour the product does not have, except dropSocket(), which fakes a network fault.
window.arbor = {
  state,
  get pc() {
    return media?.pc ?? null;
  },
  get media() {
    return media;
  },
  get signaling() {
    return signaling;
  },
  slots: () => media?.describeSlots() ?? [],
  tiles: () => layout?.describe() ?? [],
  quality: () => quality?.describe() ?? null,
  async stats() {
    if (!media) return { inbound: [], outbound: [], transport: null };
    const { inbound, outbound, transport } = await media.stats();
    return { inbound, outbound, transport };
  },
  snapshot: () => ({
    phase: state.phase,
    self: state.self,
    participants: [...state.participants.values()],
    tracks: [...state.tracks.values()],
    ownTracks: Object.fromEntries(state.ownTracks),
    pinned: state.pinned,
    featured: layout?.featuredKey ?? null,
    socket: signaling?.status ?? null,
    joins: state.joins,
    resumes: state.resumes,
    negotiations: media?.negotiations ?? 0,
    // The codec asked for with ?codec= and the one we publish in (VP8 if this browser
    // cannot encode the one asked for).
    videoCodec: { asked: VIDEO_CODEC, publishing: media?.videoCodec ?? null },
    slots: media?.describeSlots() ?? [],
  }),
  pin: (key) => {
    state.pinned = key;
    scheduleRender();
  },
  dropSocket: () => signaling?.drop(),
};

initMeetingUi();
initLobby();
