import test from 'node:test';
import { launchBrowser, joinMeeting, sleep, inbound, trackOf } from './helpers.mjs';
test('debug', async () => {
  const env = await launchBrowser();
  const codec = process.env.DBG_CODEC ?? 'vp9';
  const p = await joinMeeting(env.browser, { meeting: 'dbg', name: 'Pub', params: { codec } });
  const v = await joinMeeting(env.browser, { meeting: 'dbg', name: 'View' });
  const v2 = await joinMeeting(env.browser, { meeting: 'dbg', name: 'View2' });
  if (process.env.DBG_PIN) {
    await v.page.evaluate((k) => window.arbor.pin(k), `p:${p.selfId}`);
    await v2.page.evaluate((k) => window.arbor.pin(k), `p:${v.selfId}`);
    await p.page.evaluate((k) => window.arbor.pin(k), `p:${v.selfId}`);
  }
  for (let i = 0; i < 15; i++) {
    await sleep(1000);
    const s = await p.page.evaluate(async () => { const r = await window.arbor.pc.getStats(); const mid = window.arbor.media.camera.transceiver.mid; return [...r.values()].filter((x) => x.type === 'outbound-rtp' && x.mid === mid).map((o) => [o.rid, o.framesEncoded, o.keyFramesEncoded, o.frameHeight, o.qualityLimitationReason, Math.round(o.bytesSent/1000), Math.round(o.retransmittedBytesSent/1000), o.nackCount, o.pliCount, o.firCount]); });
    const bwe = await p.page.evaluate(() => window.arbor.stats().then((s) => Math.round(s.transport?.availableOutgoingBitrate / 1000)));
    console.log(i, bwe, JSON.stringify(s));
  }
  for (const x of [v, v2]) { const id = await trackOf(x, p.selfId, 'camera'); const r = await x.page.evaluate(async (id) => { const r = await window.arbor.pc.getStats(); return [...r.values()].filter((y) => y.type === 'inbound-rtp' && y.kind === 'video').map((y) => [y.mid, y.framesDecoded, y.keyFramesDecoded, y.frameHeight, y.nackCount, y.pliCount, y.firCount, y.packetsLost]); }, id); console.log(x.label, id, JSON.stringify(r), JSON.stringify(await x.page.evaluate(() => window.arbor.slots()))); }
  await env.close();
});
