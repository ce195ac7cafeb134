// Under a flood of initiations that carry a valid mac1, the responder must switch to cookies:
// answer with cookie replies instead of doing Diffie-Hellman, rate-limit per source, and still let
// a real peer through once it echoes the cookie in mac2. Run with weft-wg as the responder and
// both weft-wg and Debian's wireguard-go as the real initiator (the latter proves the cookie
// exchange interoperates).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { NetLab, nodeBin, repoRoot, waitFor } from './harness.ts';
import { socketPath, weftWg, wireguardGo, type WgImpl } from './impl.ts';
import { WgPair } from './wgpair.ts';
import { readStats } from './uapi-client.ts';

for (const initiator of [weftWg, wireguardGo] as WgImpl[]) {
  describe(`handshake flood against weft-wg, real initiator ${initiator.name}`, () => {
    const lab = NetLab.create();
    after(() => lab.cleanup());

    test('cookie replies go out, and the real peer still completes a handshake', async () => {
      const pair = await WgPair.create(lab, { initiator, responder: weftWg });
      const { a, b } = pair;
      // The attacker uses a second address in A's namespace: its own rate-limit bucket.
      await lab.exec(a.ns, ['ip', 'addr', 'add', '192.168.77.66/24', 'dev', a.veth]);
      const flood = lab.spawn(a.ns, [nodeBin, path.join(repoRoot, 'test/netns/handshake-flood.ts'), JSON.stringify({
        host: b.underlay.v4, port: b.listenPort, bind: '192.168.77.66', responderPublicKey: b.publicKey, rate: 20_000, maxSeconds: 25,
      })]);
      let floodOut = '';
      flood.stdout!.on('data', (d) => (floodOut += d));
      const floodDone = new Promise((r) => flood.once('exit', r));
      // Let the flood build up before the real peer tries.
      await waitFor('responder under load', async () => (await readStats(socketPath(b.ifname))).handshake_cookie_replies_sent! > 0n, 10_000, 100);
      // The real initiator needs a cookie round trip and one REKEY_TIMEOUT retry: ~5–10 s.
      await pair.waitPing(a, b.tunnel.v4, 22_000);
      const s = await readStats(socketPath(b.ifname));
      flood.kill('SIGTERM');
      await floodDone;
      const report = JSON.parse(floodOut.trim().split('\n').pop() || '{}') as { sent: number; cookieReplies: number };
      assert.ok(report.cookieReplies > 0, `the flooder got cookie replies: ${floodOut}`);
      assert.ok(s.handshake_cookie_replies_sent! > 0n);
      assert.ok(s.handshake_initiations_accepted! >= 1n, 'the real initiation was accepted');
      // After the flood, the device is still fully responsive.
      await pair.waitPing(a, b.tunnel.v4, 5000);
    });
  });
}
