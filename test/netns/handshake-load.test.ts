// Under a flood of initiations that carry a valid mac1, the responder must switch to cookies:
// answer with cookie replies instead of doing Diffie-Hellman, rate-limit per source, and still let
// a real peer through once it echoes the cookie in mac2. The flood is handled in the addon's
// threads, so the control socket keeps answering. Run with weft-wg as the responder and both
// weft-wg and Debian's wireguard-go as the real initiator (the latter proves the cookie exchange
// interoperates), then with the flood spread over ten devices of one process (the gateway's
// shape), which share one budget: a per-port rate that one device alone would take without
// cookies still puts every device under load.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, repoRoot, sleep, waitFor } from './harness.ts';
import { socketPath, startDevice, weftWg, wireguardGo, type WgImpl } from './impl.ts';
import { WgPair, pingFrom } from './wgpair.ts';
import { readStats, uapi } from './uapi-client.ts';
import type { FloodReport } from './handshake-flood.ts';
import { generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';
import { toBase64 } from '../../src/wireguard/keys.ts';

const FLOOD = path.join(repoRoot, 'test/netns/handshake-flood.ts');
const DEVICE_HOST = path.join(repoRoot, 'test/netns/fixtures/device-host.ts');


function startFlood(lab: NetLab, ns: string, config: object): { child: ChildProcess; report: () => Promise<FloodReport> } {
  const child = lab.spawn(ns, [nodeBin, FLOOD, JSON.stringify(config)]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const done = new Promise((r) => child.once('exit', r));
  return {
    child,
    async report() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await done;
      return JSON.parse(out.trim().split('\n').pop() || '{}') as FloodReport;
    },
  };
}

/**
 * Control-socket round trips (`get=1`) to every socket, one after another, until stopped; the
 * slowest answer in ms. A socket that does not answer at all fails the test (uapi's own bound).
 */
function sampleControlSockets(sockets: string[]): { stop: () => Promise<{ maxMs: number; samples: number }> } {
  let running = true;
  let maxMs = 0;
  let samples = 0;
  const loop = (async () => {
    while (running) {
      for (const s of sockets) {
        const t0 = performance.now();
        const reply = await uapi(s, 'get=1\n\n');
        maxMs = Math.max(maxMs, performance.now() - t0);
        samples++;
        assert.match(reply, /errno=0\n\n$/);
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxMs, samples };
    },
  };
}

for (const initiator of [weftWg, wireguardGo] as WgImpl[]) {
  describe(`handshake flood against weft-wg, real initiator ${initiator.name}`, () => {
    const lab = NetLab.create();
    after(() => lab.cleanup());

    test('cookie replies go out, the control socket answers within 1 s, and the real peer still completes a handshake', async () => {
      const pair = await WgPair.create(lab, { initiator, responder: weftWg });
      const { a, b } = pair;
      // The attacker uses a second address in A's namespace: its own rate-limit bucket.
      await lab.exec(a.ns, ['ip', 'addr', 'add', '192.168.77.66/24', 'dev', a.veth]);
      const flood = startFlood(lab, a.ns, {
        targets: [{ host: b.underlay.v4, port: b.listenPort, publicKey: b.publicKey }], binds: ['192.168.77.66'], rate: 20_000, maxSeconds: 25,
      });
      // Let the flood build up before the real peer tries.
      await waitFor('responder under load', async () => (await readStats(socketPath(b.ifname))).handshake_cookie_replies_sent! > 0n, 10_000, 100);
      const sampler = sampleControlSockets([socketPath(b.ifname)]);
      // The real initiator needs a cookie round trip and one REKEY_TIMEOUT retry: ~5–10 s.
      await pair.waitPing(a, b.tunnel.v4, 22_000);
      const control = await sampler.stop();
      const s = await readStats(socketPath(b.ifname));
      const report = await flood.report();
      assert.ok(report.cookieReplies > 0, `the flooder got cookie replies: ${JSON.stringify(report)}`);
      assert.ok(s.handshake_cookie_replies_sent! > 0n);
      assert.ok(s.handshake_initiations_accepted! >= 1n, 'the real initiation was accepted');
      assert.ok(control.samples > 0);
      assert.ok(control.maxMs < 1000, `control socket answered within ${control.maxMs.toFixed(0)} ms during the flood`);
      // After the flood, the device is still fully responsive.
      await pair.waitPing(a, b.tunnel.v4, 5000);
    });
  });
}

describe('handshake flood spread over ten devices of one process', () => {
  const lab = NetLab.create();
  after(() => lab.cleanup());
  const DEVICES = 10;
  const PER_PORT_RATE = 600; // below the 1,000/s at which one device alone would demand cookies

  test('every device demands cookies, every control socket answers within 1 s, a real peer gets through', async () => {
    const nsA = await lab.namespace('sa');
    const nsB = await lab.namespace('sb');
    const [vethA] = await lab.veth(nsA, nsB, { a: ['192.168.78.1/24'], b: ['192.168.78.2/24'] });
    const binds = Array.from({ length: 8 }, (_, i) => `192.168.78.${100 + i}`);
    for (const addr of binds) await lab.exec(nsA, ['ip', 'addr', 'add', `${addr}/24`, 'dev', vethA]);

    // B: one process, ten devices; device 0 has a real peer in A.
    const names = Array.from({ length: DEVICES }, () => lab.ifname('wh'));
    const host = lab.spawn(nsB, [nodeBin, DEVICE_HOST, ...names]);
    let hostOut = '';
    host.stdout!.on('data', (d) => (hostOut += d));
    host.stderr!.on('data', (d) => (hostOut += d));
    await waitFor('device host ready', () => hostOut.includes('ready'), 30_000);
    const peerKey = generatePrivateKey();
    const keys = names.map(() => generatePrivateKey());
    const ports: number[] = [];
    const keyFile = (k: Uint8Array) => lab.exec(nsB, ['sh', '-c', `umask 077; f=$(mktemp); echo ${toBase64(k)} > $f; echo $f`]);
    for (const [i, name] of names.entries()) {
      const f = (await keyFile(keys[i]!)).stdout.trim();
      const peerArgs = i === 0 ? ['peer', toBase64(publicKeyOf(peerKey)), 'allowed-ips', '10.78.0.1/32'] : [];
      await lab.exec(nsB, ['wg', 'set', name, 'private-key', f, 'listen-port', String(52000 + i), ...peerArgs]);
      await lab.exec(nsB, ['rm', '-f', f]);
      ports.push(52000 + i);
    }
    await lab.exec(nsB, ['ip', 'addr', 'add', '10.78.0.2/24', 'dev', names[0]!]);
    await lab.exec(nsB, ['ip', 'link', 'set', names[0]!, 'up']);

    // A: the real peer, a weft-wg of its own.
    const peerIf = lab.ifname('wr');
    await startDevice(lab, nsA, weftWg, peerIf);
    const pf = (await lab.exec(nsA, ['sh', '-c', `umask 077; f=$(mktemp); echo ${toBase64(peerKey)} > $f; echo $f`])).stdout.trim();
    await lab.exec(nsA, ['wg', 'set', peerIf, 'private-key', pf, 'peer', toBase64(publicKeyOf(keys[0]!)), 'endpoint', `192.168.78.2:${ports[0]}`, 'allowed-ips', '10.78.0.2/32']);
    await lab.exec(nsA, ['rm', '-f', pf]);
    await lab.exec(nsA, ['ip', 'addr', 'add', '10.78.0.1/24', 'dev', peerIf]);
    await lab.exec(nsA, ['ip', 'link', 'set', peerIf, 'up']);

    const flood = startFlood(lab, nsA, {
      targets: names.map((_, i) => ({ host: '192.168.78.2', port: ports[i], publicKey: toBase64(publicKeyOf(keys[i]!)) })),
      binds,
      rate: PER_PORT_RATE * DEVICES,
      maxSeconds: 30,
    });
    const sockets = names.map(socketPath);
    await waitFor(
      'every device under load',
      async () => {
        for (const s of sockets) if ((await readStats(s)).handshake_cookie_replies_sent! === 0n) return false;
        return true;
      },
      15_000,
      200,
    );
    const sampler = sampleControlSockets(sockets);
    // A cookie round trip and one REKEY_TIMEOUT retry, as above.
    await waitFor('real peer through the flood', async () => (await pingFrom(lab, nsA, '10.78.0.2', { count: 1 })).received > 0, 22_000, 200);
    const control = await sampler.stop();
    const report = await flood.report();
    const stats = await Promise.all(sockets.map(readStats));
    assert.ok(report.rate <= PER_PORT_RATE * DEVICES * 1.1, `per-port rate stayed below one device's own threshold: ${JSON.stringify(report)}`);
    for (const [i, s] of stats.entries()) {
      assert.ok(s.handshake_cookie_replies_sent! > 0n, `device ${i} demanded cookies`);
      assert.ok(report.cookieRepliesByPort[String(ports[i])]! > 0, `the flooder heard cookies from port ${ports[i]}`);
    }
    assert.ok(stats[0]!.handshake_initiations_accepted! >= 1n, 'the real initiation was accepted');
    assert.equal(stats.slice(1).reduce((n, s) => n + s.handshake_initiations_accepted!, 0n), 0n, 'nothing else was answered');
    assert.ok(control.maxMs < 1000, `every control socket answered within ${control.maxMs.toFixed(0)} ms during the flood (${control.samples} samples)`);
    host.kill('SIGTERM');
    await waitFor('device host gone', () => host.exitCode !== null || host.signalCode !== null, 10_000);
  });
});
