// run.sh mode: cluster
//
// Real clients across the cascade, against the cluster that `run.sh --cluster` starts with
// `arbor up` (an origin and the edges eu-1, us-1, ap-1 in three regions, backbone links
// through impairment proxies that add 20–75 ms each way). Every client talks to one edge
// only, so whatever it receives from a client on another edge came over the QUIC backbone.
//
// 1. A meeting: Chromium on eu-1's page and Chromium on us-1's page see and hear each other,
//    and the origin's tree for the meeting links the two edges.
// 2. A broadcast: ffmpeg publishes over WHIP (H.264 + Opus) to eu-1; watch.html in Chromium
//    plays it over WHEP from us-1 and from ap-1.

import test from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser,
  joinMeeting,
  openPage,
  devToken,
  waitFor,
  snapshot,
  expectDecoding,
  expectAudio,
  audioInbound,
  dumpPages,
  sleep,
  stepper,
  loadCluster,
  waitForTree,
  treeLinks,
  startWhipPublisher,
  stopProcess,
} from './helpers.mjs';

const cluster = loadCluster();
const [EU, US, AP] = ['eu-1', 'us-1', 'ap-1'].map((id) => cluster.edge(id));

/** The value of the sample `series` (a name, with its labels if it has any) in Prometheus text. */
function metric(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `) || (!series.includes('{') && l.startsWith(`${series}{`)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** The remote track of `owner` of this kind that `p` knows (camera for video). */
async function remoteTrack(p, owner, kind) {
  const snap = await snapshot(p);
  return snap.tracks.find((t) => t.participant_id === owner.selfId && t.kind === kind && (kind === 'audio' || t.source === 'camera'))?.id ?? null;
}

test('a meeting across two regions: eu-1 and us-1', { timeout: 150_000 }, async (t) => {
  const MEETING = 'cascade-call';
  const env = await launchBrowser();
  const people = [];
  const { step, state } = stepper(t);
  t.after(async () => {
    if (state.failed) await dumpPages('cascade-call', people);
    await env.close();
  });
  try {
    for (const [name, edge] of [['Alice', EU], ['Bob', US]]) {
      const p = await joinMeeting(env.browser, { meeting: MEETING, name, edgeUrl: edge.http_url, label: `${name}@${edge.id}` });
      p.edge = edge;
      people.push(p);
    }
  } catch (err) {
    state.failed = true;
    if (err.page) people.push(err.page);
    throw err;
  }
  const [alice, bob] = people;
  const other = (p) => (p === alice ? bob : alice);

  await step('each stays on the edge of its region (no redirect)', async () => {
    for (const p of people) {
      const url = await p.page.evaluate(() => window.arbor.signaling?.url ?? null);
      assert.ok(url?.startsWith(p.edge.ws_url), `${p.label} signals over ${url}, not ${p.edge.ws_url}`);
      assert.ok(p.page.url().startsWith(p.edge.http_url), `${p.label} is on ${p.page.url()}`);
    }
  }, { critical: true });

  await step("the origin's tree for the meeting links eu-1 and us-1", async () => {
    const tree = await waitForTree(cluster, MEETING, (tr) => treeLinks(tr, EU.id, US.id), 'a tree linking eu-1 and us-1');
    console.log('tree', JSON.stringify(tree));
    assert.ok(tree.epoch != null);
  });

  await step("each decodes the other's camera through the cascade", async () => {
    await Promise.all(
      people.map(async (p) => {
        const id = await waitFor(() => remoteTrack(p, other(p), 'video'), { message: `${p.label} to learn ${other(p).label}'s camera` });
        const s = (await expectDecoding(p, [id])).get(id);
        console.log(`${p.label} decodes ${other(p).label}'s camera: ${s.codec} ${s.frameWidth}x${s.frameHeight}, ${s.framesDecoded} frames`);
        assert.ok(s.frameWidth > 0 && s.frameHeight > 0);
      }),
    );
  }, { critical: true });

  await step("each hears the other's microphone through the cascade", async () => {
    await Promise.all(
      people.map(async (p) => {
        const id = await waitFor(() => remoteTrack(p, other(p), 'audio'), { message: `${p.label} to learn ${other(p).label}'s microphone` });
        const a = (await expectAudio(p, [id])).get(id);
        console.log(`${p.label} hears ${other(p).label}: ${a.packetsReceived} packets, energy ${a.totalAudioEnergy.toFixed(4)}`);
      }),
    );
  });
});

test('a broadcast: WHIP on eu-1, WHEP viewers on us-1 and ap-1', { timeout: 150_000 }, async (t) => {
  const MEETING = 'cascade-live';
  const env = await launchBrowser();
  const viewers = [];
  let ffmpeg = null;
  const { step, state } = stepper(t);
  t.after(async () => {
    if (ffmpeg) await stopProcess(ffmpeg.proc);
    if (state.failed) {
      await dumpPages('cascade-live', viewers);
      console.log(`---- ffmpeg (exit ${JSON.stringify(ffmpeg?.proc.exitInfo)}, last 80 lines)`);
      console.log(ffmpeg?.log.slice(-80).join('\n'));
    }
    await env.close();
  });

  await step('ffmpeg publishes to eu-1 over WHIP', async () => {
    const token = await devToken({ meeting: MEETING, identity: 'ffmpeg', edgeUrl: EU.http_url });
    ffmpeg = startWhipPublisher(`${EU.whip_url}/${encodeURIComponent(MEETING)}`, token);
    await waitFor(
      async () => {
        if (ffmpeg.proc.exitInfo) throw new Error(`ffmpeg exited: ${JSON.stringify(ffmpeg.proc.exitInfo)}\n${ffmpeg.log.slice(-30).join('\n')}`);
        // (arbor_whip_sessions would say it directly, but the edge never sets that gauge.)
        const m = await (await fetch(`${EU.http_url}/metrics`)).text();
        return metric(m, 'arbor_http_resources_created_total{edge="eu-1",type="whip"}') >= 1 && metric(m, 'arbor_rtp_packets_received_total') > 0;
      },
      { timeout: 20_000, message: 'eu-1 to accept the WHIP session and receive its RTP' },
    );
  }, { critical: true });

  await step('watch.html on us-1 and on ap-1 plays it', async () => {
    for (const edge of [US, AP]) {
      viewers.push(await openPage(env.browser, `${edge.http_url}/watch.html?meeting=${encodeURIComponent(MEETING)}`, { label: `viewer@${edge.id}` }));
    }
    await Promise.all(
      viewers.map((v) =>
        waitFor(
          async () => {
            if (ffmpeg.proc.exitInfo) throw new Error(`ffmpeg exited: ${JSON.stringify(ffmpeg.proc.exitInfo)}`);
            return (await v.page.evaluate(() => window.arbor.state.phase)) === 'playing';
          },
          { timeout: 45_000, message: `${v.label} to start playing` },
        ),
      ),
    );
  }, { critical: true });

  await step('both viewers decode 640x360 H.264 and, unmuted, play the Opus tone', async () => {
    // The page starts muted (browsers autoplay only muted video) and Chromium measures the
    // audio energy of what it plays out, so the viewer clicks "unmute" as a person would.
    for (const v of viewers) {
      await v.page.click('#btn-unmute', { timeout: 5000 });
      assert.equal(await v.page.evaluate(() => document.querySelector('#video').muted), false);
    }
    const stats = (v) => v.page.evaluate(() => window.arbor.stats());
    const before = await Promise.all(viewers.map(async (v) => ({ video: (await stats(v)).video, audio: await audioInbound(v) })));
    await sleep(2000);
    for (const [i, v] of viewers.entries()) {
      const s = await stats(v);
      const audio = await audioInbound(v);
      const [a0, a1] = [before[i].audio[0], audio[0]];
      console.log(`${v.label} video ${JSON.stringify(s.video)} audio ${JSON.stringify(audio)}`);
      assert.ok(s.video.framesDecoded > before[i].video.framesDecoded, `${v.label}: framesDecoded rises (${before[i].video.framesDecoded} → ${s.video.framesDecoded})`);
      assert.match(s.video.codec ?? '', /H264/i, `${v.label} decodes H.264`);
      assert.equal(s.video.frameWidth, 640);
      assert.equal(s.video.frameHeight, 360);
      assert.match(s.audio.codec ?? '', /opus/i, `${v.label} receives Opus`);
      assert.ok(a0 && a1 && a1.packetsReceived > a0.packetsReceived, `${v.label}: audio packets rise`);
      assert.ok(a1.totalAudioEnergy > a0.totalAudioEnergy, `${v.label}: the tone has energy`);
    }
  });

  await step("the origin's tree spans eu-1, us-1 and ap-1", async () => {
    const spans = (tr) => {
      const on = new Set(tr.links.flat());
      return [EU, US, AP].every((e) => on.has(e.id)) && tr.links.length === 2;
    };
    const tree = await waitForTree(cluster, MEETING, spans, 'a tree over the three edges');
    console.log('tree', JSON.stringify(tree));
  });
});
