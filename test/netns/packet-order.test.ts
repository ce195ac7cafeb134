// Packet order per peer through weft-wg's batched path, with the AEAD of each batch on the packet
// thread alone and spread over extra threads (WEFT_WG_CRYPTO_THREADS; crypto_pool.h). Every stage
// keeps order on its own (one TUN reader splits super-packets in sequence, nonces are reserved in
// sequence, a batch is sent only once all its seals are done, sendmmsg and UDP GSO runs keep
// datagram order, a received batch is opened in parallel but its replay window, confirmation and
// TUN writes run in arrival order, the coalescer writes items in order of first arrival); this
// checks the whole under load: numbered UDP datagrams over IPv4 and IPv6 while a TCP bulk
// transfer fills the same batches with TSO super-packets and GRO runs. A datagram that arrives
// after a higher-numbered one, twice, or a TCP receiver queueing segments out of order without
// any loss, is a reordering by the tunnel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { NetLab, nodeBin, repoRoot, waitFor } from './harness.ts';
import { weftWg } from './impl.ts';
import { IperfServer, WgPair } from './wgpair.ts';

const SCRIPT = path.join(repoRoot, 'test/netns/sequenced-udp.ts');
const COUNT = 20_000;

interface Summary {
  received: number;
  reordered: number;
  duplicates: number;
  highest: number;
}

/** TcpExtTCPOFOQueue of a namespace: segments its TCP receivers queued out of order. */
async function ofoQueued(lab: NetLab, ns: string): Promise<number> {
  const r = await lab.exec(ns, ['nstat', '-az', '-j', 'TcpExtTCPOFOQueue']);
  const j = JSON.parse(r.stdout) as { kernel?: Record<string, number> };
  return j.kernel?.TcpExtTCPOFOQueue ?? 0;
}

function orderSuite(label: string, env: Record<string, string>, tag: string): void {
  describe(`packet order per peer: weft-wg ↔ weft-wg under mixed load, ${label}`, () => {
    const lab = NetLab.create();
    let pair: WgPair;
    before(async () => {
      pair = await WgPair.create(lab, { initiator: weftWg, responder: weftWg, outer: 'v4', tag, env });
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000);
    });
    after(() => lab.cleanup());

    test('numbered datagrams (IPv4 and IPv6 inner) arrive in order beside a TCP bulk transfer', async (t) => {
      const { a, b } = pair;
      const flows = [
        { host: b.tunnel.v4, port: 6101 },
        { host: b.tunnel.v6, port: 6102 },
      ];
      const receivers = flows.map((f) => {
        const child = lab.spawn(b.ns, [nodeBin, SCRIPT, JSON.stringify({ mode: 'receive', ...f })]);
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        return { child, out: () => out };
      });
      await waitFor('receivers ready', () => receivers.every((r) => r.out().includes('"ready"')), 10_000);

      const ofo0 = await ofoQueued(lab, b.ns);
      const iperf = new IperfServer(lab, b.ns, 5299);
      const bulk = iperf.run(a.ns, b.tunnel.v4, { seconds: 4 });
      await new Promise((r) => setTimeout(r, 500)); // the TCP flow is at full speed before the datagrams
      const senders = await Promise.all(
        flows.map((f) => lab.exec(a.ns, [nodeBin, SCRIPT, JSON.stringify({ mode: 'send', ...f, count: COUNT, maxSeconds: 20 })], { timeoutMs: 40_000 })),
      );
      const tcp = await bulk;
      const ofo = (await ofoQueued(lab, b.ns)) - ofo0;

      for (const [i, s] of senders.entries()) {
        const sent = JSON.parse(s.stdout.trim().split('\n').pop()!) as { sent: number };
        assert.equal(sent.sent, COUNT, `flow ${i}: the sender sent everything`);
        await waitFor(`flow ${i} summary`, () => receivers[i]!.out().includes('"received"'), 10_000).catch(() => {
          if (receivers[i]!.child.pid) process.kill(receivers[i]!.child.pid, 'SIGTERM');
        });
        await waitFor(`flow ${i} summary after SIGTERM`, () => receivers[i]!.out().includes('"received"'), 5000);
        const sum = JSON.parse(receivers[i]!.out().trim().split('\n').pop()!) as Summary;
        const label = `${flows[i]!.host} (${JSON.stringify(sum)})`;
        assert.equal(sum.reordered, 0, `no datagram arrived after a higher-numbered one: ${label}`);
        assert.equal(sum.duplicates, 0, `no datagram arrived twice: ${label}`);
        // UDP may lose under this load (socket buffers), but most must arrive or order proves little.
        assert.ok(sum.received >= COUNT / 2, `most datagrams arrived: ${label}`);
        t.diagnostic(`${label}`);
      }
      assert.ok(tcp.bitsPerSecond > 0, 'the TCP transfer ran');
      // Out-of-order queueing also follows a loss, so it tells a reordering only when nothing was lost.
      if (tcp.retransmits === 0) assert.equal(ofo, 0, 'without any loss the TCP receiver never saw a segment out of order');
      else t.diagnostic(`TCP lost segments (${tcp.retransmits} retransmits), so its ${ofo} out-of-order segments are not evidence`);
      t.diagnostic(`TCP ${(tcp.bitsPerSecond / 1e9).toFixed(2)} Gbit/s, ${tcp.retransmits} retransmits, ${ofo} segments queued out of order`);
    });
  });
}

orderSuite('AEAD on the packet threads', { WEFT_WG_CRYPTO_THREADS: '0' }, 'o');
orderSuite('AEAD on 3 threads per direction', { WEFT_WG_CRYPTO_THREADS: '2' }, 'q');
