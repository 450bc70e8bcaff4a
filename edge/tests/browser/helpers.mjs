// Shared pieces of the Chromium end-to-end tests: launching Chromium the way this machine
// needs it (see /work/shared/notes/browser-tests.md), tokens, polling, and reading the
// page's test hooks (`window.arbor`, see edge/web/app.js and watch.js).
//
// These run inside the network namespace that run.sh creates: the edge listens on
// 127.0.1.1 (or, with `run.sh --cluster`, `arbor up` runs an origin and three edges on
// 127.0.0.1, 127.0.1.1, 127.0.2.1, 127.0.3.1) and everything stays on loopback.

import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const EDGE_URL = process.env.ARBOR_EDGE_URL ?? 'http://127.0.1.1:7880';
export const CHROMIUM = process.env.ARBOR_CHROMIUM ?? '/usr/lib/chromium/chromium';
export const ARTIFACTS = process.env.ARBOR_BROWSER_ARTIFACTS ?? path.join(os.tmpdir(), 'arbor-browser-artifacts');

/**
 * Every flag is there for a reason (browser-tests.md): loopback ICE, fake devices with the
 * permission granted (else candidates hide behind mDNS), no lookups outside 127/8.
 */
function chromiumArgs(userDataDir) {
  return [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--mute-audio',
    `--user-data-dir=${userDataDir}`,
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.*',
    '--allow-loopback-in-peer-connection',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    // With ignoreDefaultArgs Playwright does not add its transport flag; without it the
    // launch hangs for 60 s.
    '--remote-debugging-pipe',
  ];
}

/** Launches Chromium with a fresh profile. Call close() when done (it removes the profile). */
export async function launchBrowser() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'arbor-chromium-'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: chromiumArgs(userDataDir),
    timeout: 30_000,
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A token from the edge's dev endpoint (enabled in run.sh's config and by `arbor up`).
 * `edgeUrl` picks the edge in a cluster.
 */
export async function devToken({ meeting, identity, name = identity, role = 'publisher', edgeUrl = EDGE_URL }) {
  const res = await fetch(`${edgeUrl}/v1/dev/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ meeting, identity, name, role }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /v1/dev/token: ${res.status} ${text}`);
  const { token } = JSON.parse(text);
  if (typeof token !== 'string') throw new Error(`POST /v1/dev/token: no token in ${text}`);
  return token;
}

/**
 * Polls `fn` until it returns a truthy value, and returns that value. On timeout, throws with
 * `message` and the last value seen (or the last error), which is what one needs to debug.
 */
export async function waitFor(fn, { timeout = 20_000, interval = 250, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const seen = lastErr ? `last error: ${lastErr.stack || lastErr}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${message}; ${seen}`);
    }
    await sleep(interval);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Opens a page and keeps its console and errors, printed if the test fails (dumpPage).
 * Each participant gets its own context: separate storage, as separate people would have.
 */
export async function openPage(browser, url, { label, viewport = { width: 1280, height: 720 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${label}] console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[${label}] pageerror: ${e.stack || e.message}`));
  page.on('requestfailed', (r) => log.push(`[${label}] requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(url);
  return { label, context, page, log };
}

/**
 * Joins meeting `meeting` as `name` through the lobby, like a person would. `params` adds
 * page parameters (e.g. `{ codec: 'vp9' }`); `edgeUrl` picks the edge whose page is opened
 * (in a cluster); `label` names the page in logs and artifacts (default `name`).
 */
export async function joinMeeting(browser, { meeting, name, params = {}, edgeUrl = EDGE_URL, label = name }) {
  const query = new URLSearchParams({ meeting, ...params });
  const p = await openPage(browser, `${edgeUrl}/?${query}`, { label });
  await p.page.fill('#name-input', name);
  await p.page.click('#join-button');
  await waitFor(() => p.page.evaluate(() => window.arbor.state.phase === 'meeting'), {
    timeout: 15_000,
    message: `${name} to be in the meeting (join error: see page log)`,
  }).catch(async (err) => {
    const joinError = await p.page.textContent('#join-error').catch(() => '');
    // The page goes with the error so that the caller can dump its log and screenshot.
    throw Object.assign(new Error(`${err.message}; join error shown: ${JSON.stringify(joinError)}`), { page: p });
  });
  p.selfId = await p.page.evaluate(() => window.arbor.state.self.id);
  return p;
}

/** The page's plain snapshot (participants, tracks, slots, counters). */
export function snapshot(p) {
  return p.page.evaluate(() => window.arbor.snapshot());
}

/** Receive stats per slot from the page's hook. */
export async function inbound(p) {
  const s = await p.page.evaluate(() => window.arbor.stats());
  return s.inbound;
}

/** The remote video track ids of `owner` (a participant id) that `p` knows, by source. */
export async function trackOf(p, ownerId, source) {
  const snap = await snapshot(p);
  return snap.tracks.find((t) => t.participant_id === ownerId && t.kind === 'video' && t.source === source)?.id ?? null;
}

/**
 * Asserts that `p` decodes each of `trackIds`: each is bound to a slot whose framesDecoded
 * rises over `windowMs`. Waits up to `timeout` for them to start. Returns the last stats.
 */
export async function expectDecoding(p, trackIds, { windowMs = 2000, timeout = 25_000 } = {}) {
  const byTrack = (stats) => new Map(stats.filter((s) => s.kind === 'video' && s.trackId).map((s) => [s.trackId, s]));
  let before = null;
  return waitFor(
    async () => {
      const a = byTrack(await inbound(p));
      if (!trackIds.every((id) => (a.get(id)?.framesDecoded ?? 0) > 0)) {
        before = a;
        return false;
      }
      await sleep(windowMs);
      const b = byTrack(await inbound(p));
      before = b;
      const rising = trackIds.every((id) => b.get(id).framesDecoded > a.get(id).framesDecoded);
      return rising ? b : false;
    },
    {
      timeout,
      interval: 200,
      message: `${p.label} to decode video of ${trackIds.join(', ')}`,
    },
  ).catch((err) => {
    throw new Error(`${err.message}\n  slots at the end: ${JSON.stringify([...(before?.values() ?? [])])}`);
  });
}

/** Writes a screenshot and the console log of each page (on failure) and prints the logs. */
export async function dumpPages(name, pages) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const p of pages) {
    if (!p) continue;
    const base = path.join(ARTIFACTS, `${name}-${p.label}`.replace(/[^\w.-]+/g, '_'));
    await p.page.screenshot({ path: `${base}.png` }).catch(() => {});
    const state = await p.page
      .evaluate(() => JSON.stringify({ snapshot: window.arbor?.snapshot?.(), events: window.arbor?.state?.events }, null, 1))
      .catch((e) => `unavailable: ${e.message}`);
    fs.writeFileSync(`${base}.log`, `${p.log.join('\n')}\n\nstate:\n${state}\n`);
    console.log(`---- ${p.label}: console (last 60 lines), artifacts in ${base}.{png,log}`);
    console.log(p.log.slice(-60).join('\n'));
  }
}

/**
 * Steps of one scenario as sub-tests of `t`. A failing step marks the scenario failed (so
 * its pages are dumped); a failing `critical` step skips the steps after it, which depend
 * on it. Returns the `step` function and the shared `state`.
 */
export function stepper(t) {
  const state = { failed: false, blocked: false };
  const step = (name, fn, { critical = false } = {}) =>
    t.test(name, async (st) => {
      if (state.blocked) return st.skip('an earlier step that this one needs failed');
      try {
        await fn();
      } catch (err) {
        state.failed = true;
        state.blocked ||= critical;
        throw err;
      }
    });
  return { step, state };
}

/**
 * The cluster that `run.sh --cluster` started: `arbor up`'s `cluster.json` (path in
 * ARBOR_CLUSTER_JSON), with `edge(id)` to look an edge up. Throws if there is none, which
 * means the test was run without `--cluster`.
 */
export function loadCluster() {
  const file = process.env.ARBOR_CLUSTER_JSON;
  if (!file) throw new Error('ARBOR_CLUSTER_JSON is not set: run this test with `run.sh --cluster <path-to-arbor>`');
  const cluster = JSON.parse(fs.readFileSync(file, 'utf8'));
  return {
    ...cluster,
    edge(id) {
      const e = cluster.edges.find((x) => x.id === id);
      if (!e) throw new Error(`no edge ${id} in ${file} (edges: ${cluster.edges.map((x) => x.id).join(', ')})`);
      return e;
    },
  };
}

/** `GET <origin api_url><path>` with the cluster's API key (HTTP Basic), parsed as JSON. */
export async function originGet(cluster, path) {
  const auth = Buffer.from(`${cluster.api_key}:${cluster.api_secret}`).toString('base64');
  const res = await fetch(`${cluster.origin.api_url}${path}`, { headers: { Authorization: `Basic ${auth}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Waits until the origin's tree of `meeting` (`GET /v1/meetings/{m}/tree`) satisfies `ok`
 * (given the tree: `{ epoch, links: [[a, b], …] }`) and returns it.
 */
export function waitForTree(cluster, meeting, ok, message) {
  return waitFor(
    async () => {
      const tree = await originGet(cluster, `/meetings/${encodeURIComponent(meeting)}/tree`);
      if (ok(tree)) return tree;
      throw new Error(`tree: ${JSON.stringify(tree)}`);
    },
    { timeout: 15_000, message },
  );
}

/** Whether a tree's links connect edges `a` and `b` directly. */
export function treeLinks(tree, a, b) {
  return tree.links.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
}

/**
 * Audio receive stats straight from the page's RTCPeerConnection (`window.arbor.pc`, on the
 * meeting page and on watch.html): `[{ mid, packetsReceived, totalAudioEnergy }]`.
 */
export function audioInbound(p) {
  return p.page.evaluate(async () => {
    const pc = window.arbor.pc;
    if (!pc) return [];
    const out = [];
    for (const r of (await pc.getStats()).values()) {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        out.push({ mid: r.mid ?? null, packetsReceived: r.packetsReceived ?? 0, totalAudioEnergy: r.totalAudioEnergy ?? 0 });
      }
    }
    return out;
  });
}

/**
 * Asserts that the meeting page `p` hears each of `trackIds` (remote audio tracks): each is
 * bound to a slot whose packetsReceived and totalAudioEnergy (sound, not just packets: the
 * fake microphone beeps) both rise. Returns the last sample per track.
 */
export async function expectAudio(p, trackIds, { timeout = 20_000 } = {}) {
  const first = new Map();
  let last = new Map();
  return waitFor(
    async () => {
      const mids = new Map((await inbound(p)).filter((s) => s.kind === 'audio' && s.trackId).map((s) => [s.mid, s.trackId]));
      last = new Map((await audioInbound(p)).filter((a) => mids.has(a.mid)).map((a) => [mids.get(a.mid), a]));
      for (const [id, a] of last) if (!first.has(id) && a.packetsReceived > 0) first.set(id, a);
      const rising = (id) => {
        const [a, b] = [first.get(id), last.get(id)];
        return a && b && b.packetsReceived > a.packetsReceived && b.totalAudioEnergy > a.totalAudioEnergy;
      };
      return trackIds.every(rising) ? last : false;
    },
    { timeout, interval: 500, message: `${p.label} to hear ${trackIds.join(', ')}` },
  ).catch((err) => {
    throw new Error(`${err.message}\n  first: ${JSON.stringify([...first])}\n  last: ${JSON.stringify([...last])}`);
  });
}

/** The static ffmpeg (with the WHIP muxer) that run.sh installs from imageio-ffmpeg. */
export function ffmpegPath() {
  if (process.env.ARBOR_FFMPEG) return process.env.ARBOR_FFMPEG;
  return execFileSync('python3', ['-c', 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())']).toString().trim();
}

/**
 * Starts ffmpeg publishing a 640x360 test pattern (H.264 baseline) and a 440 Hz tone (Opus)
 * to the WHIP endpoint `url` with `token`. Returns `{ proc, log }`: `proc.exitInfo` is set once
 * it exits, `log` keeps its last 400 lines of output. Stop it with stopProcess.
 */
export function startWhipPublisher(url, token) {
  const args = [
    '-hide_banner', '-loglevel', 'info', '-nostdin',
    '-re', '-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=30',
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-profile:v', 'baseline', '-tune', 'zerolatency', '-bf', '0', '-g', '30', '-pix_fmt', 'yuv420p',
    '-c:a', 'libopus', '-ar', '48000', '-ac', '2',
    '-f', 'whip', '-authorization', token,
    url,
  ];
  const proc = spawn(ffmpegPath(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  proc.stderr.on('data', (d) => {
    log.push(...d.toString().split(/\r?\n|\r/).filter(Boolean));
    if (log.length > 400) log.splice(0, log.length - 400);
  });
  proc.exitInfo = null;
  proc.on('exit', (code, signal) => {
    proc.exitInfo = { code, signal };
  });
  return { proc, log };
}

/** SIGINT (ffmpeg then ends the stream and sends its DELETE), SIGKILL after 3 s. */
export async function stopProcess(proc) {
  if (proc.exitInfo) return;
  proc.kill('SIGINT');
  for (let i = 0; i < 30 && !proc.exitInfo; i++) await sleep(100);
  if (!proc.exitInfo) proc.kill('SIGKILL');
}
