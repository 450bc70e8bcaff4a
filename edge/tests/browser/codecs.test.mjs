// Publishing in VP9 and in H.264 (`?codec=` on the web client) to viewers that publish VP8.
//
// For each codec, in its own meeting: one participant publishes in that codec, two default
// (VP8) participants join. Each viewer must decode the publisher's camera, in that codec
// (the inbound-rtp stat's codec), and a pinned tile must get a higher simulcast layer than
// a thumbnail of the same camera. The publisher must still decode the viewers' VP8.
// One Chromium for both codecs; the meetings run one after the other.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, joinMeeting, waitFor, snapshot, inbound, trackOf, expectDecoding, dumpPages } from './helpers.mjs';

const CODECS = [
  { param: 'vp9', mime: 'video/VP9', label: 'VP9' },
  { param: 'h264', mime: 'video/H264', label: 'H.264' },
];

let env;
before(async () => {
  env = await launchBrowser();
});
after(async () => {
  await env?.close();
});

/** The page's own stats hook: { inbound, outbound, transport }. */
function pageStats(p) {
  return p.page.evaluate(() => window.arbor.stats());
}

for (const codec of CODECS) {
  test(`${codec.label} publisher, VP8 viewers`, { timeout: 120_000 }, async (t) => {
    const people = [];
    let failed = false;
    let blocked = false;
    const close = async () => {
      if (failed) await dumpPages(`codecs-${codec.param}`, people);
      await Promise.all(people.map((p) => p.context.close().catch(() => {})));
    };
    const step = (name, fn, { critical = false, todo } = {}) =>
      t.test(name, { todo }, async (st) => {
        if (blocked) return st.skip('an earlier step that this one needs failed');
        try {
          await fn();
        } catch (err) {
          failed ||= !todo;
          blocked ||= critical;
          throw err;
        }
      });

    const meeting = `codecs-${codec.param}`;
    try {
      people.push(await joinMeeting(env.browser, { meeting, name: 'Pub', params: { codec: codec.param } }));
      for (const name of ['View1', 'View2']) people.push(await joinMeeting(env.browser, { meeting, name }));
    } catch (err) {
      failed = true;
      if (err.page) people.push(err.page);
      await close();
      throw err;
    }
    const [pub, view1, view2] = people;
    try {
      await step(`this Chromium can encode ${codec.label}`, async () => {
        // Checked, not assumed: Chromium builds without an H.264 encoder exist.
        const send = await pub.page.evaluate(() => RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType));
        assert.ok(
          send.some((m) => m.toLowerCase() === codec.mime.toLowerCase()),
          `${codec.label} encode is unavailable in this Chromium: RTCRtpSender.getCapabilities('video') lists ${[...new Set(send)].join(', ')}`,
        );
        const { videoCodec } = await snapshot(pub);
        assert.deepEqual(videoCodec, { asked: codec.param, publishing: codec.param });
      }, { critical: true });

      await step(`the publisher sends its camera in ${codec.label}, three simulcast layers`, async () => {
        const layers = await waitFor(
          async () => {
            const mid = await pub.page.evaluate(() => window.arbor.media.camera.transceiver.mid);
            const out = (await pageStats(pub)).outbound.filter((o) => o.mid === mid && o.kind === 'video');
            const sending = out.filter((o) => o.framesEncoded > 0);
            if (sending.length === 3 && sending.every((o) => o.codec)) return out;
            // Thrown, not returned: waitFor reports the last error, so a failure shows the layers.
            throw new Error(`camera outbound-rtp (mid ${mid}): ${JSON.stringify(out)}`);
          },
          { message: `${pub.label} to encode three camera layers` },
        );
        console.log(`${codec.label} publisher layers:`, layers.map((o) => `${o.rid} ${o.codec} ${o.frameWidth}x${o.frameHeight}`).join(', '));
        for (const o of layers) assert.equal(o.codec, codec.mime, `layer ${o.rid} is sent in ${o.codec}`);
        assert.deepEqual(layers.map((o) => o.rid).sort(), ['f', 'h', 'q']);
      }, { critical: true });

      await step(
        `the edge's answer lists ${codec.label} first on the camera m-line, as offered`,
        async () => {
          const first = await pub.page.evaluate(() => {
            const mid = window.arbor.media.camera.transceiver.mid;
            const section = window.arbor.pc.remoteDescription.sdp.split(/\r\n(?=m=)/).find((m) => m.includes(`\r\na=mid:${mid}\r\n`));
            const pt = section.split('\r\n')[0].split(' ')[3];
            return section.match(new RegExp(`a=rtpmap:${pt} ([^/]+)/`))?.[1];
          });
          assert.equal(`video/${first}`, codec.mime, `the answer's first codec (the one a browser sends unless told otherwise) is ${first}`);
        },
        {
          // Known edge bug: str0m writes the answer's codecs in the edge's configured order
          // (VP8, H.264, VP9), not the offer's. The client works around it by naming the
          // codec on its send encodings (edge/web/media.js, encodingsFor).
          todo: 'the edge answers in its own codec order (VP8 first)',
        },
      );

      await step(`both viewers decode the ${codec.label} camera`, async () => {
        for (const v of [view1, view2]) {
          const id = await waitFor(() => trackOf(v, pub.selfId, 'camera'), { message: `${v.label} to learn ${pub.label}'s camera` });
          const stats = await expectDecoding(v, [id]);
          const s = stats.get(id);
          console.log(`${v.label} decodes ${pub.label}'s camera: ${s.codec} ${s.frameWidth}x${s.frameHeight}`);
          assert.equal(s.codec, codec.mime, `${v.label} receives ${pub.label}'s camera in ${s.codec}`);
        }
      }, { critical: true });

      await step(`the ${codec.label} publisher decodes the viewers' VP8`, async () => {
        const ids = await waitFor(
          async () => {
            const ids = await Promise.all([view1, view2].map((v) => trackOf(pub, v.selfId, 'camera')));
            return ids.every(Boolean) ? ids : false;
          },
          { message: `${pub.label} to learn both viewers' cameras` },
        );
        const stats = await expectDecoding(pub, ids);
        for (const id of ids) assert.equal(stats.get(id).codec, 'video/VP8');
      });

      await step(`a pinned tile gets a higher ${codec.label} layer than a thumbnail`, async () => {
        // View1 pins the publisher (asks max_height 720); View2 pins View1, so the publisher
        // is a thumbnail there (180). Same camera, two layers.
        const camera = await trackOf(view1, pub.selfId, 'camera');
        await view1.page.click(`.tile[data-key="p:${pub.selfId}"]`);
        await view2.page.click(`.tile[data-key="p:${view1.selfId}"]`);
        for (const [v, want] of [[view1, 720], [view2, 180]]) {
          await waitFor(async () => (await snapshot(v)).slots.find((s) => s.trackId === camera)?.maxHeight === want, {
            message: `${v.label} to ask ${want} for ${pub.label}'s camera`,
          });
        }
        // Layers switch on a keyframe, and the top layers start as the sender's bandwidth
        // estimate allows: give it time, compare decoded frame heights.
        const heights = await waitFor(
          async () => {
            const big = (await inbound(view1)).find((s) => s.trackId === camera);
            const small = (await inbound(view2)).find((s) => s.trackId === camera);
            if (!big?.frameHeight || !small?.frameHeight) return false;
            return big.frameHeight > small.frameHeight ? { big, small } : false;
          },
          { timeout: 30_000, message: `${pub.label}'s camera to be decoded taller pinned (${view1.label}) than as a thumbnail (${view2.label})` },
        );
        console.log(`${codec.label}: pinned ${heights.big.frameHeight}p (${heights.big.codec}), thumbnail ${heights.small.frameHeight}p (${heights.small.codec})`);
        assert.ok(heights.small.frameHeight <= 240, `thumbnail should be a low layer, got ${heights.small.frameHeight}p`);
        // Still decoding after the switch, still in the publisher's codec.
        for (const v of [view1, view2]) {
          const s = (await expectDecoding(v, [camera])).get(camera);
          assert.equal(s.codec, codec.mime);
        }
      });
    } finally {
      await close();
    }
  });
}
