// Three Chromium participants in one meeting, through the real web client (edge/web).
//
// Checks, in order (later steps build on earlier ones, so they share one meeting):
// video from everyone to everyone, simulcast layers by tile size, screen share, chat,
// socket resume with media unaffected, and leaving.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser,
  joinMeeting,
  waitFor,
  snapshot,
  inbound,
  trackOf,
  expectDecoding,
  dumpPages,
  sleep,
  stepper,
} from './helpers.mjs';

const MEETING = 'e2e';

test('three-person meeting', { timeout: 240_000 }, async (t) => {
  const env = await launchBrowser();
  const people = [];
  const { step, state } = stepper(t);
  t.after(async () => {
    if (state.failed) await dumpPages('meeting', people);
    await env.close();
  });
  try {
    for (const name of ['Alice', 'Bob', 'Carol']) people.push(await joinMeeting(env.browser, { meeting: MEETING, name }));
  } catch (err) {
    state.failed = true;
    if (err.page) people.push(err.page);
    throw err;
  }
  const [alice, bob, carol] = people;
  const others = (p) => people.filter((q) => q !== p);

  await step('everyone sees the two others and decodes their camera', async () => {
    for (const p of people) {
      const ids = await waitFor(
        async () => {
          const ids = await Promise.all(others(p).map((q) => trackOf(p, q.selfId, 'camera')));
          return ids.every(Boolean) ? ids : false;
        },
        { message: `${p.label} to learn both other camera tracks` },
      );
      const stats = await expectDecoding(p, ids);
      console.log(`${p.label} decodes`, ids.map((id) => `${id}: ${stats.get(id).frameWidth}x${stats.get(id).frameHeight}`).join(', '));
    }
  }, { critical: true });

  await step('the connection-quality indicator has a verdict', async () => {
    const q = await waitFor(
      async () => {
        const q = await alice.page.evaluate(() => window.arbor.quality());
        return q.verdict !== 'unknown' && q.local.rttMs != null ? q : false;
      },
      { message: "Alice's quality indicator to have stats" },
    );
    console.log('quality', JSON.stringify(q));
    assert.equal(await alice.page.getAttribute('#quality', 'data-quality'), q.verdict);
  });

  await step('each participant subscribes to every remote audio track', async () => {
    for (const p of people) {
      await waitFor(
        async () => {
          const snap = await snapshot(p);
          const audio = snap.tracks.filter((t) => t.kind === 'audio').map((t) => t.id);
          const bound = new Set(snap.slots.filter((s) => s.kind === 'audio').map((s) => s.trackId));
          const stats = await inbound(p);
          const flowing = stats.filter((s) => s.kind === 'audio' && s.trackId && s.packetsReceived > 0);
          return audio.length === 2 && audio.every((id) => bound.has(id)) && flowing.length === 2;
        },
        { message: `${p.label} to receive audio from both others` },
      );
    }
    // The fake microphones beep, so somebody is the active speaker: a tile gets the ring.
    await waitFor(() => alice.page.$('.tile.speaking'), { message: 'a speaking ring on one of Alice\'s tiles' });
  });

  await step('the pinned (large) tile gets a higher layer than the thumbnail', async () => {
    // Pin Bob on Alice's page: Bob's camera is asked at max_height 720, Carol's at 180.
    await alice.page.click(`.tile[data-key="p:${bob.selfId}"]`);
    const bobCam = await trackOf(alice, bob.selfId, 'camera');
    const carolCam = await trackOf(alice, carol.selfId, 'camera');
    const slots = await waitFor(
      async () => {
        const s = (await snapshot(alice)).slots;
        const big = s.find((x) => x.trackId === bobCam);
        const small = s.find((x) => x.trackId === carolCam);
        return big?.maxHeight === 720 && small?.maxHeight === 180 ? { big, small } : false;
      },
      { message: 'Alice to ask 720 for Bob and 180 for Carol' },
    );
    assert.ok(slots.big && slots.small);
    // Layers switch on a keyframe and simulcast layers start as the sender's bandwidth
    // estimate allows: give it time, compare decoded frame heights.
    const heights = await waitFor(
      async () => {
        const stats = await inbound(alice);
        const big = stats.find((x) => x.trackId === bobCam);
        const small = stats.find((x) => x.trackId === carolCam);
        if (!big?.frameHeight || !small?.frameHeight) return false;
        return big.frameHeight > small.frameHeight ? { big: big.frameHeight, small: small.frameHeight } : false;
      },
      { timeout: 30_000, message: "Bob's decoded frame height (pinned) to exceed Carol's (thumbnail)" },
    );
    console.log(`pinned tile ${heights.big}p, thumbnail ${heights.small}p`);
    assert.ok(heights.small <= 240, `thumbnail should be a low layer, got ${heights.small}p`);
    await expectDecoding(alice, [bobCam, carolCam]);
  });

  await step('a screen share appears as a new track that the others decode', async () => {
    await alice.page.click('#btn-screen');
    await waitFor(() => alice.page.evaluate(() => window.arbor.state.presenting), { message: 'Alice to be presenting' });
    for (const p of [bob, carol]) {
      const screen = await waitFor(() => trackOf(p, alice.selfId, 'screen'), { message: `${p.label} to see Alice's screen track` });
      const camera = await trackOf(p, alice.selfId, 'camera');
      assert.notEqual(screen, camera, 'the screen is its own track');
      // The newest share takes the stage, so it is asked at full size.
      await waitFor(async () => (await snapshot(p)).featured === `s:${screen}`, { message: `${p.label} to feature the screen` });
      await expectDecoding(p, [screen]);
    }
    await alice.page.click('#btn-screen'); // stop presenting
    for (const p of [bob, carol]) {
      await waitFor(async () => !(await trackOf(p, alice.selfId, 'screen')), {
        message: `${p.label} to see Alice's screen track go away`,
      });
    }
  });

  await step('a chat message reaches the two others', async () => {
    const text = `hello from Alice ${Date.now()}`;
    await alice.page.click('#btn-chat');
    await alice.page.fill('#chat-panel textarea', text);
    await alice.page.press('#chat-panel textarea', 'Enter');
    for (const p of [bob, carol]) {
      await waitFor(
        () => p.page.evaluate((t) => [...document.querySelectorAll('#chat-panel .chat-text')].some((el) => el.textContent === t), text),
        { message: `${p.label} to show Alice's message` },
      );
    }
    // The sender's copy is confirmed by the echo (no longer "Sending…").
    await waitFor(() => alice.page.evaluate(() => document.querySelectorAll('#chat-panel .chat-msg.pending').length === 0), {
      message: "Alice's message to be confirmed",
    });
  });

  await step('a dropped socket resumes and media keeps flowing', async () => {
    const ids = await Promise.all(others(bob).map((q) => trackOf(bob, q.selfId, 'camera')));
    const before = await snapshot(bob);
    const negotiationsBefore = before.negotiations;
    await bob.page.evaluate(() => window.arbor.dropSocket());
    await waitFor(
      async () => {
        const s = await snapshot(bob);
        return s.resumes === before.resumes + 1 && s.socket === 'open';
      },
      { timeout: 15_000, message: 'Bob to resume' },
    );
    const events = await bob.page.evaluate(() => window.arbor.state.events.map((e) => e.type));
    assert.ok(events.includes('resumed'), 'the edge answered resume with resumed');
    const after = await snapshot(bob);
    assert.equal(after.joins, before.joins, 'resumed, not joined again');
    assert.equal(after.self.id, before.self.id, 'same participant');
    assert.ok(after.negotiations >= negotiationsBefore, 'same PeerConnection (negotiation count kept)');
    // Bindings came back from `resumed.subscriptions` and video never stopped.
    for (const id of ids) assert.ok(after.slots.some((s) => s.trackId === id), `slot for ${id} kept after resume`);
    await expectDecoding(bob, ids);
    // The new socket carries signaling: a chat message from Bob arrives.
    const text = `Bob is back ${Date.now()}`;
    await bob.page.click('#btn-chat');
    await bob.page.fill('#chat-panel textarea', text);
    await bob.page.press('#chat-panel textarea', 'Enter');
    await waitFor(
      () => carol.page.evaluate((t) => [...document.querySelectorAll('#chat-panel .chat-text')].some((el) => el.textContent === t), text),
      { message: "Carol to get Bob's message sent after the resume" },
    );
  });

  await step(
    'muting the microphone shows the muted icon to the others',
    async () => {
      await carol.page.click('#btn-mic');
      try {
        for (const p of [alice, bob]) {
          await waitFor(
            async () => {
              const mic = (await snapshot(p)).tracks.find((t) => t.participant_id === carol.selfId && t.kind === 'audio');
              return mic?.muted === true;
            },
            { timeout: 5000, message: `${p.label} to see Carol's microphone muted (track_muted)` },
          );
          assert.ok(await p.page.$(`.tile.mic-muted[data-key="p:${carol.selfId}"]`), 'muted icon on the tile');
        }
      } finally {
        await carol.page.click('#btn-mic');
      }
    },
  );

  await step('a refused resume falls back to a fresh join', async () => {
    const before = await snapshot(bob);
    // A wrong secret makes the edge answer resume_failed, as after the grace period.
    await bob.page.evaluate(() => {
      window.arbor.signaling.resumeSecret = 'not-the-secret';
      window.arbor.dropSocket();
    });
    const after = await waitFor(
      async () => {
        const s = await snapshot(bob);
        return s.joins === before.joins + 1 && s.phase === 'meeting' && s.socket === 'open' ? s : false;
      },
      { timeout: 15_000, message: 'Bob to join again after resume_failed' },
    );
    const events = await bob.page.evaluate(() => window.arbor.state.events.map((e) => e.code ?? e.type));
    assert.ok(events.includes('resume_failed'), 'the edge refused the resume');
    assert.notEqual(after.self.id, before.self.id, 'a new participant');
    bob.selfId = after.self.id;
    const ids = await Promise.all(others(bob).map((q) => trackOf(bob, q.selfId, 'camera')));
    await expectDecoding(bob, ids);
    // And the others see the new Bob's camera.
    for (const p of [alice, carol]) {
      const id = await waitFor(() => trackOf(p, bob.selfId, 'camera'), { message: `${p.label} to see the new Bob's camera` });
      await expectDecoding(p, [id]);
    }
  });

  await step('leaving removes the participant for the others', async () => {
    await carol.page.click('#btn-leave');
    await waitFor(() => carol.page.isVisible('#end-screen'), { message: 'Carol to see the end screen' });
    for (const p of [alice, bob]) {
      await waitFor(async () => !(await snapshot(p)).participants.some((q) => q.id === carol.selfId), {
        message: `${p.label} to see Carol leave`,
      });
      await waitFor(async () => !(await p.page.$(`.tile[data-key="p:${carol.selfId}"]`)), {
        message: `${p.label} to drop Carol's tile`,
      });
    }
    // Carol's camera slot is free again on Alice's side.
    await sleep(200);
    const s = await snapshot(alice);
    assert.ok(!s.slots.some((x) => x.trackId && !s.tracks.some((t) => t.id === x.trackId)), 'no slot shows a gone track');
  });
});
