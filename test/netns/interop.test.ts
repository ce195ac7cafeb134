// Interoperability: two devices in two namespaces, configured only with `wg`, for every pair of the
// implementation matrix (see impl.ts; WEFT_TEST_IMPL_ONLY=wireguard-go proves the suite itself).
// Side A initiates (it alone knows the other's endpoint); B learns A's endpoint from the handshake.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, run } from './harness.ts';
import { pairLabel, pairMatrix, type ImplPair } from './impl.ts';
import { WgPair, formatEndpoint, type Side } from './wgpair.ts';

async function assertTunnelPings(pair: WgPair, from: Side): Promise<void> {
  const to = pair.other(from);
  for (const fam of ['v4', 'v6'] as const) {
    await pair.waitPing(from, to.tunnel[fam], 10_000);
    const r = await pair.ping(from, to.tunnel[fam], { count: 3 });
    assert.equal(r.received, 3, `ping ${from.label}→${to.label} ${to.tunnel[fam]}: ${r.received}/3 replies`);
  }
}

async function assertHandshakeAndCounters(pair: WgPair): Promise<void> {
  for (const s of [pair.a, pair.b]) {
    const peer = await pair.peerOf(s);
    assert.ok(peer, `${s.label} (${s.impl.name}) lists the other side as a peer`);
    assert.ok(peer.latestHandshake > 0, `${s.label} latest handshake > 0 (got ${peer.latestHandshake})`);
    assert.ok(Math.abs(peer.latestHandshake - Date.now() / 1000) < 300, `${s.label} latest handshake is recent (${peer.latestHandshake})`);
    assert.ok(peer.rxBytes > 0, `${s.label} rx bytes > 0`);
    assert.ok(peer.txBytes > 0, `${s.label} tx bytes > 0`);
  }
}

function interopSuite(p: ImplPair): void {
  describe(`interop over IPv4 outer: ${pairLabel(p)}`, () => {
    const lab = NetLab.create();
    let pair: WgPair;
    before(async () => {
      pair = await WgPair.create(lab, { initiator: p.initiator, responder: p.responder, outer: 'v4' });
    });
    after(() => lab.cleanup());

    test('configuration through wg is reported back by wg show', async () => {
      const a = await pair.dump(pair.a);
      const b = await pair.dump(pair.b);
      assert.equal(a.publicKey, pair.a.publicKey);
      assert.equal(a.privateKey, pair.a.privateKey);
      assert.equal(a.listenPort, pair.a.listenPort);
      assert.equal(b.listenPort, pair.b.listenPort);
      assert.equal(a.peers.length, 1);
      assert.equal(a.peers[0]!.publicKey, pair.b.publicKey);
      assert.equal(a.peers[0]!.endpoint, formatEndpoint(pair.b.underlay.v4, pair.b.listenPort));
      assert.deepEqual([...a.peers[0]!.allowedIps].sort(), [`${pair.b.tunnel.v4}/32`, `${pair.b.tunnel.v6}/128`].sort());
      assert.equal(b.peers[0]!.endpoint, null, 'responder has no endpoint before the handshake');
      assert.equal(b.peers[0]!.latestHandshake, 0);
    });

    test('ping v4 and v6 inside the tunnel, both directions', async () => {
      await assertTunnelPings(pair, pair.a);
      await assertTunnelPings(pair, pair.b);
    });

    test('wg show: handshake and byte counters on both sides; responder learned the endpoint', async () => {
      await assertHandshakeAndCounters(pair);
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, formatEndpoint(pair.a.underlay.v4, pair.a.listenPort));
    });

    test('iperf3 TCP 2 s both directions', async (t) => {
      for (const reverse of [false, true]) {
        const r = await pair.iperf(pair.b.tunnel.v4, { seconds: 2, reverse });
        t.diagnostic(`${reverse ? 'B→A' : 'A→B'} ${(r.bitsPerSecond / 1e6).toFixed(0)} Mbit/s, ${r.retransmits} retransmits`);
        assert.ok(r.bitsPerSecond > 0, `bitrate ${reverse ? 'B→A' : 'A→B'} > 0`);
      }
    });

    test('showconf → setconf / syncconf round trip keeps the configuration', async () => {
      for (const s of [pair.a, pair.b]) {
        const original = (await pair.wg(s, ['showconf', s.ifname])).stdout;
        assert.match(original, new RegExp(`PrivateKey = ${escape(s.privateKey)}`));
        assert.match(original, new RegExp(`ListenPort = ${s.listenPort}`));
        const file = path.join(pair.dir, `${s.ifname}-orig.conf`);
        fs.writeFileSync(file, original, { mode: 0o600 });
        // setconf with one extra allowed IP: the change must show, the rest must stay.
        const modified = original.replace(/^(AllowedIPs = .*)$/m, '$1, 10.77.55.0/24');
        assert.notEqual(modified, original);
        const modFile = path.join(pair.dir, `${s.ifname}-mod.conf`);
        fs.writeFileSync(modFile, modified, { mode: 0o600 });
        await pair.wg(s, ['setconf', s.ifname, modFile]);
        const afterSet = (await pair.wg(s, ['showconf', s.ifname])).stdout;
        assert.equal(normalizeConf(afterSet), normalizeConf(modified), `${s.label}: showconf after setconf equals the file`);
        // setconf replaced the peer (fresh session state): the reset side initiates.
        await pair.waitPing(s, pair.other(s).tunnel.v4, 15_000);
        // syncconf back to the original: only the difference is applied, the session survives.
        const prior = await pair.peerOf(s);
        await pair.wg(s, ['syncconf', s.ifname, file]);
        const afterSync = (await pair.wg(s, ['showconf', s.ifname])).stdout;
        assert.equal(normalizeConf(afterSync), normalizeConf(original), `${s.label}: showconf after syncconf equals the original`);
        const peer = await pair.peerOf(s);
        assert.equal(peer?.latestHandshake, prior?.latestHandshake, `${s.label}: syncconf kept the session (same handshake time)`);
        await pair.waitPing(s, pair.other(s).tunnel.v4, 5_000);
      }
      await assertTunnelPings(pair, pair.a);
    });

    test('roaming: initiator underlay address changes, responder follows', async (t) => {
      const newAddr = '192.168.77.11';
      const t0 = Date.now();
      await pair.changeUnderlay(pair.a, 'v4', newAddr);
      // wireguard-go 0.0.20220316 keeps sending from the vanished source address until its
      // handshake retry (~15 s); allow for that, and report how long it took.
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 30_000);
      t.diagnostic(`traffic resumed ${Date.now() - t0} ms after the address change`);
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, formatEndpoint(newAddr, pair.a.listenPort), 'responder reports the new endpoint');
      await assertTunnelPings(pair, pair.b);
    });

    test('roaming: initiator listen port changes (wg set listen-port), responder follows', async () => {
      const newPort = pair.a.listenPort + 100;
      await pair.wg(pair.a, ['set', pair.a.ifname, 'listen-port', String(newPort)]);
      pair.a.listenPort = newPort;
      assert.equal((await pair.dump(pair.a)).listenPort, newPort);
      await pair.waitPing(pair.a, pair.b.tunnel.v6, 15_000);
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, formatEndpoint(pair.a.underlay.v4, newPort), 'responder reports the new port');
      await assertTunnelPings(pair, pair.b);
    });

    for (const which of ['A', 'B'] as const) {
      test(`private key change on ${which} → new handshake, traffic flows`, async () => {
        const s = which === 'A' ? pair.a : pair.b;
        const o = pair.other(s);
        await pair.rotateKey(s);
        assert.equal((await pair.dump(s)).publicKey, s.publicKey, `${which} reports the new public key`);
        await pair.waitPing(pair.a, pair.b.tunnel.v4, 20_000);
        await assertTunnelPings(pair, pair.a);
        await assertTunnelPings(pair, pair.b);
        const peer = await pair.peerOf(o);
        assert.ok(peer, `${o.label} has a peer with ${which}'s new key`);
        assert.ok(peer.latestHandshake > 0, 'handshake with the new key');
        assert.ok(peer.rxBytes > 0);
        assert.equal((await pair.dump(o)).peers.length, 1, 'old key is gone');
      });
    }

    test('preshared key: matching keys handshake, a mismatched key does not', async () => {
      const [psk, wrong] = await Promise.all([run('wg', ['genpsk']), run('wg', ['genpsk'])]).then((r) => r.map((x) => x.stdout.trim()));
      // Peers are re-created so the next handshake starts from scratch with the key in question.
      const repeer = async (pskA: string, pskB: string) => {
        for (const [s, key] of [[pair.a, pskA], [pair.b, pskB]] as const) {
          const o = pair.other(s);
          const endpoint = s === pair.a ? ['endpoint', formatEndpoint(o.underlay.v4, o.listenPort)] : [];
          await pair.wg(s, ['set', s.ifname, 'peer', o.publicKey, 'remove']);
          await pair.wg(s, ['set', s.ifname, 'peer', o.publicKey, 'preshared-key', pair.keyFile(key!), ...endpoint, 'allowed-ips', `${o.tunnel.v4}/32,${o.tunnel.v6}/128`]);
        }
      };
      await repeer(psk!, psk!);
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000);
      assert.equal((await pair.peerOf(pair.a))?.presharedKey, psk);
      assert.equal((await pair.peerOf(pair.b))?.presharedKey, psk);
      await repeer(psk!, wrong!);
      const r = await pair.ping(pair.a, pair.b.tunnel.v4, { count: 4, interval: 0.5, waitSec: 1, deadlineSec: 4 });
      assert.equal(r.received, 0, 'no session when the preshared keys differ');
      assert.equal((await pair.peerOf(pair.a))?.latestHandshake, 0, 'the initiator never completed a handshake');
      await repeer(psk!, psk!);
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000);
    });

    test('removing the peer stops traffic', async () => {
      await pair.wg(pair.b, ['set', pair.b.ifname, 'peer', pair.a.publicKey, 'remove']);
      assert.equal((await pair.dump(pair.b)).peers.length, 0);
      const r = await pair.ping(pair.a, pair.b.tunnel.v4, { count: 3, waitSec: 1, deadlineSec: 3 });
      assert.ok(r.transmitted >= 3, 'pings were sent');
      assert.equal(r.received, 0, 'no replies once B removed A');
      const r6 = await pair.ping(pair.a, pair.b.tunnel.v6, { count: 2, waitSec: 1, deadlineSec: 2 });
      assert.equal(r6.received, 0, 'no v6 replies once B removed A');
      assert.ok(pair.a.device.running() && pair.b.device.running(), 'both devices still running');
    });
  });

  describe(`interop over IPv6 outer: ${pairLabel(p)}`, () => {
    const lab = NetLab.create();
    let pair: WgPair;
    before(async () => {
      pair = await WgPair.create(lab, { initiator: p.initiator, responder: p.responder, outer: 'v6' });
    });
    after(() => lab.cleanup());

    test('ping v4 and v6 inside the tunnel, both directions', async () => {
      assert.equal((await pair.peerOf(pair.a))?.endpoint, formatEndpoint(pair.b.underlay.v6, pair.b.listenPort));
      await assertTunnelPings(pair, pair.a);
      await assertTunnelPings(pair, pair.b);
    });

    test('wg show: handshake, counters, bracketed IPv6 endpoint learned', async () => {
      await assertHandshakeAndCounters(pair);
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, `[${pair.a.underlay.v6}]:${pair.a.listenPort}`);
    });

    test('iperf3 TCP 2 s both directions', async (t) => {
      for (const reverse of [false, true]) {
        const r = await pair.iperf(pair.b.tunnel.v6, { seconds: 2, reverse });
        t.diagnostic(`${reverse ? 'B→A' : 'A→B'} ${(r.bitsPerSecond / 1e6).toFixed(0)} Mbit/s`);
        assert.ok(r.bitsPerSecond > 0);
      }
    });

    test('roaming: initiator IPv6 underlay address changes, responder follows', async (t) => {
      const newAddr = 'fd00:77::11';
      const t0 = Date.now();
      await pair.changeUnderlay(pair.a, 'v6', newAddr);
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 30_000);
      t.diagnostic(`traffic resumed ${Date.now() - t0} ms after the address change`);
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, formatEndpoint(newAddr, pair.a.listenPort));
      await assertTunnelPings(pair, pair.b);
    });
  });
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** showconf text as a set of significant lines per section, order-insensitive inside lists. */
function normalizeConf(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\w+)\s*=\s*(.*)$/.exec(l);
      if (!m) return l;
      const value = m[1] === 'AllowedIPs' ? m[2]!.split(',').map((x) => x.trim()).sort().join(', ') : m[2]!;
      return `${m[1]} = ${value}`;
    })
    .join('\n');
}

for (const p of pairMatrix()) interopSuite(p);
