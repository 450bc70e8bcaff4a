// Broadcast: ffmpeg publishes over WHIP (H.264 + Opus), Chromium plays it over WHEP through
// the web viewer (edge/web/watch.html).
//
// ffmpeg is the static build from the PyPI package imageio-ffmpeg (run.sh installs it and
// passes its path in ARBOR_FFMPEG). Its WHIP muxer sends no candidates, offers
// a=setup:passive and uses the first UDP candidate of the answer (browser-tests.md).

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  EDGE_URL, launchBrowser, openPage, devToken, waitFor, dumpPages, sleep, startWhipPublisher, stopProcess,
} from './helpers.mjs';

const MEETING = 'whep-e2e';

test('WHIP from ffmpeg, WHEP to Chromium', { timeout: 120_000 }, async (t) => {
  const token = await devToken({ meeting: MEETING, identity: 'ffmpeg', name: 'ffmpeg', role: 'publisher' });
  const env = await launchBrowser();
  let ffmpeg = null;
  let viewer = null;
  let failed = false;
  t.after(async () => {
    if (ffmpeg) await stopProcess(ffmpeg.proc);
    if (failed) {
      await dumpPages('whep', [viewer]);
      console.log('---- ffmpeg (last 80 lines)');
      console.log(ffmpeg?.log.slice(-80).join('\n'));
    }
    await env.close();
  });

  try {
    // A viewer who comes early is told to wait (whether the edge answers 404/409 and the page
    // retries, or admits it and sends nothing yet), then plays when the broadcast starts.
    viewer = await openPage(env.browser, `${EDGE_URL}/watch.html?meeting=${encodeURIComponent(MEETING)}`, { label: 'viewer' });
    await waitFor(
      async () => {
        const phase = await viewer.page.evaluate(() => window.arbor.state.phase);
        const title = await viewer.page.textContent('#overlay-title');
        return (phase === 'waiting' || phase === 'idle') && /waiting for the broadcast/i.test(title);
      },
      { timeout: 15_000, message: 'the viewer to say it is waiting for the broadcast' },
    );

    ffmpeg = startWhipPublisher(`${EDGE_URL}/v1/whip/${encodeURIComponent(MEETING)}`, token);
    const { proc, log } = ffmpeg;
    const playing = await waitFor(
      async () => {
        if (proc.exitInfo) throw new Error(`ffmpeg exited early: ${JSON.stringify(proc.exitInfo)}\n${log.slice(-30).join('\n')}`);
        const s = await viewer.page.evaluate(() => ({ phase: window.arbor.state.phase, sessions: window.arbor.state.sessions }));
        return s.phase === 'playing' ? s : false;
      },
      { timeout: 45_000, message: 'the viewer to start playing' },
    ).catch((err) => {
      if (proc.exitInfo) throw new Error(`ffmpeg exited: ${JSON.stringify(proc.exitInfo)}; ${err.message}`);
      throw err;
    });
    assert.ok(playing.sessions >= 1);

    const a = await viewer.page.evaluate(() => window.arbor.stats());
    await sleep(2000);
    const b = await viewer.page.evaluate(() => window.arbor.stats());
    console.log('viewer video', JSON.stringify(b.video), 'audio', JSON.stringify(b.audio));
    assert.ok(b.video.framesDecoded > a.video.framesDecoded, `framesDecoded rises (${a.video.framesDecoded} → ${b.video.framesDecoded})`);
    assert.match(b.video.codec ?? '', /H264/i, 'ffmpeg publishes H.264 and the viewer decodes it as such');
    assert.equal(b.video.frameWidth, 640);
    assert.equal(b.video.frameHeight, 360);
    assert.ok((b.audio.packetsReceived ?? 0) > (a.audio.packetsReceived ?? 0), 'Opus audio arrives too');
    assert.ok(await viewer.page.isVisible('#live-badge'));
  } catch (err) {
    failed = true;
    throw err;
  }
});
