// Publishing in VP9 and in H.264 (`?codec=` on the web client) to viewers that publish VP8.
//
// For each codec, in its own meeting: one participant publishes in that codec, two default
// (VP8) participants join. The publisher must send its camera in that codec, in three
// simulcast encodings; each viewer must decode it in that codec (the inbound-rtp stat's
// codec); a pinned tile must get a higher layer than a thumbnail of the same camera (the
// edge's `layer_changed`), and the decoded frames must have that layer's height; the
// publisher must still decode the viewers' VP8. One Chromium for both codecs; the meetings
// run one after the other.

import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, joinMeeting, waitFor, snapshot, inbound, trackOf, expectDecoding, dumpPages, stepper } from './helpers.mjs';

const CODECS = [
  { param: 'vp9', mime: 'video/VP9', label: 'VP9' },
  {
    param: 'h264',
    mime: 'video/H264',
    label: 'H.264',
    // Known edge bug: after an H.264 layer switch the viewer keeps decoding at the old
    // layer's size (e.g. 180p or 360p while the edge says it sends rid f, 720p, and the bytes
    // are the f layer's). The edge starts the new layer at the packet with the IDR (str0m's
    // detect_h264_keyframe looks for NAL type 5 only) and drops the STAP-A with SPS and PPS
    // that comes just before it in the same access unit. Every
    // layer has its own SPS/PPS with the same ids, so the decoder reads the new layer's IDR
    // with the old layer's SPS. It lasts until a keyframe arrives whole, which with stable
    // pins can take long. Remove this once the edge switches H.264 layers at the SPS.
  },
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

/** What a publisher encodes, per simulcast layer (for failure messages). */
async function describeSent(p) {
  const out = (await pageStats(p)).outbound.filter((o) => o.kind === 'video' && o.rid);
  return out.map((o) => `${o.rid} ${o.frameHeight}p ${o.framesEncoded} frames (limited by ${o.qualityLimitationReason})`).join(', ');
}

for (const codec of CODECS) {
  test(`${codec.label} publisher, VP8 viewers`, { timeout: 120_000 }, async (t) => {
    const people = [];
    const { step, state } = stepper(t);
    const close = async () => {
      if (state.failed) await dumpPages(`codecs-${codec.param}`, people);
      await Promise.all(people.map((p) => p.context.close().catch(() => {})));
    };

    const meeting = `codecs-${codec.param}`;
    try {
      // All three at once: joining is not what this test is about.
      const joins = await Promise.allSettled([
        joinMeeting(env.browser, { meeting, name: 'Pub', params: { codec: codec.param } }),
        joinMeeting(env.browser, { meeting, name: 'View1' }),
        joinMeeting(env.browser, { meeting, name: 'View2' }),
      ]);
      for (const j of joins) if (j.status === 'fulfilled') people.push(j.value);
      const err = joins.find((j) => j.status === 'rejected')?.reason;
      if (err) throw err;
    } catch (err) {
      state.failed = true;
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

      // Pins first, and they stay: View1 pins the publisher (asks max_height 720), View2 pins
      // View1, so the publisher is a thumbnail there (180); the publisher pins View1. Same
      // camera, two layers. Without pins the stage follows the active speaker, which flips
      // all the time (the fake microphones all beep): every flip switches layers, every
      // switch asks the publisher for a keyframe, and H.264 keyframes on every layer are
      // what most often knocked the publisher's bandwidth estimate down in trial runs.
      await step('the viewers pin their tiles', async () => {
        for (const [v, target] of [[view1, pub], [view2, view1], [pub, view1]]) {
          const tile = `.tile[data-key="p:${target.selfId}"]`;
          await waitFor(() => v.page.$(tile), { message: `${v.label} to show ${target.label}'s tile` });
          await v.page.click(tile);
          await waitFor(async () => (await snapshot(v)).pinned === `p:${target.selfId}`, { message: `${v.label} to pin ${target.label}` });
        }
      }, { critical: true });

      await step(`the publisher sends its camera in ${codec.label}, in three simulcast encodings`, async () => {
        // All three encodings exist in the codec; at least q and h encode. The top layer
        // (f, 720p) starts only once the publisher's bandwidth estimate allows it, and with
        // H.264 on this loopback setup the estimate sometimes stays near 1 Mbps for more than
        // 20 s after a burst of keyframes; that is Chromium's congestion control, not the
        // codec's simulcast, so it is not required here.
        const layers = await waitFor(
          async () => {
            const mid = await pub.page.evaluate(() => window.arbor.media.camera.transceiver.mid);
            const out = (await pageStats(pub)).outbound.filter((o) => o.mid === mid && o.kind === 'video');
            const sending = out.filter((o) => o.framesEncoded > 0);
            if (out.length === 3 && out.every((o) => o.codec) && sending.length >= 2) return out;
            // Thrown, not returned: waitFor reports the last error, so a failure shows the layers.
            throw new Error(`camera outbound-rtp (mid ${mid}): ${JSON.stringify(out)}`);
          },
          { message: `${pub.label} to encode its camera layers` },
        );
        console.log(
          `${codec.label} publisher layers:`,
          layers.map((o) => `${o.rid} ${o.codec} ${o.framesEncoded ? `${o.frameWidth}x${o.frameHeight}` : 'not started'}`).join(', '),
        );
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
      );

      await step(`both viewers decode the ${codec.label} camera`, async () => {
        await Promise.all(
          [view1, view2].map(async (v) => {
            const id = await waitFor(() => trackOf(v, pub.selfId, 'camera'), { message: `${v.label} to learn ${pub.label}'s camera` });
            const s = (await expectDecoding(v, [id])).get(id);
            console.log(`${v.label} decodes ${pub.label}'s camera: ${s.codec} ${s.frameWidth}x${s.frameHeight}`);
            assert.equal(s.codec, codec.mime, `${v.label} receives ${pub.label}'s camera in ${s.codec}`);
          }),
        );
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

      let camera;
      await step(`the edge sends a pinned tile a higher ${codec.label} layer than a thumbnail`, async () => {
        camera = await trackOf(view1, pub.selfId, 'camera');
        for (const [v, want] of [[view1, 720], [view2, 180]]) {
          await waitFor(async () => (await snapshot(v)).slots.find((s) => s.trackId === camera)?.maxHeight === want, {
            message: `${v.label} to ask ${want} for ${pub.label}'s camera`,
          });
        }
        // The layer each slot gets, as the edge says in `layer_changed`. Top layers start as
        // the publisher's bandwidth estimate allows: give it time.
        const layers = await waitFor(
          async () => {
            const big = (await snapshot(view1)).slots.find((s) => s.trackId === camera)?.layer;
            const small = (await snapshot(view2)).slots.find((s) => s.trackId === camera)?.layer;
            if (big && small && big.height > small.height) return { big, small };
            throw new Error(`pinned gets ${JSON.stringify(big)}, thumbnail ${JSON.stringify(small)}; publisher sends ${await describeSent(pub)}`);
          },
          { timeout: 30_000, message: `the edge to send ${view1.label} (pinned) a taller layer than ${view2.label} (thumbnail)` },
        );
        console.log(`${codec.label}: edge sends pinned ${layers.big.rid} ${layers.big.height}p, thumbnail ${layers.small.rid} ${layers.small.height}p`);
        assert.ok(layers.small.height <= 240, `thumbnail should be a low layer, got ${layers.small.height}p`);
        // Still decoding after the switch, still in the publisher's codec.
        await Promise.all(
          [view1, view2].map(async (v) => {
            const s = (await expectDecoding(v, [camera])).get(camera);
            assert.equal(s.codec, codec.mime, `${v.label} still receives ${s.codec}`);
          }),
        );
      }, { critical: true });

      await step(
        `the decoded ${codec.label} frames have the sizes of the layers the edge sends`,
        async () => {
          // Pinned taller than thumbnail, and each as tall as the layer the edge says it sends
          // there (a decoder left on the previous layer's size would still pass the first).
          const seen = async (v) => {
            const layer = (await snapshot(v)).slots.find((s) => s.trackId === camera)?.layer ?? null;
            const s = (await inbound(v)).find((x) => x.trackId === camera);
            return { layer, frameHeight: s?.frameHeight ?? null, framesDecoded: s?.framesDecoded ?? 0, keyFramesDecoded: s?.keyFramesDecoded ?? 0 };
          };
          const heights = await waitFor(
            async () => {
              const [big, small] = await Promise.all([seen(view1), seen(view2)]);
              const match = [big, small].every((x) => x.layer && x.frameHeight === x.layer.height);
              if (match && big.frameHeight > small.frameHeight) return { big, small };
              throw new Error(`pinned ${JSON.stringify(big)}, thumbnail ${JSON.stringify(small)}; publisher sends ${await describeSent(pub)}`);
            },
            {
              timeout: 30_000,
              message: `${pub.label}'s camera to be decoded at the layer sizes the edge sends (pinned ${view1.label}, thumbnail ${view2.label})`,
            },
          );
          console.log(`${codec.label}: decoded pinned ${heights.big.frameHeight}p, thumbnail ${heights.small.frameHeight}p`);
        },
      );
    } finally {
      await close();
    }
  });
}
