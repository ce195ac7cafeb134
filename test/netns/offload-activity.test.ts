// The offloads are really in use: a TCP transfer through weft-wg travels as TSO super-packets read
// from the TUN, UDP GSO runs on the send side, UDP GRO runs on the receive side and merged TUN
// writes (the stats=1 counters); with WEFT_WG_OFFLOADS=0 none of them move and the transfer still
// works. Guards against the path silently falling back to one packet per system call (a kernel
// refusing TUNSETOFFLOAD, a socket option lost in a refactor).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetLab } from './harness.ts';
import { socketPath, weftWg, weftWgNoOffloads, type WgImpl } from './impl.ts';
import { readStats } from './uapi-client.ts';
import { IperfServer, WgPair } from './wgpair.ts';

const OFFLOAD_COUNTERS = ['tun_rx_super_packets', 'udp_tx_gso_runs', 'udp_rx_gro_runs', 'tun_tx_super_packets'] as const;

async function transferCounters(lab: NetLab, impl: WgImpl, tag: string, prepare?: (pair: WgPair) => Promise<void>, underlayMtu?: number) {
  const pair = await WgPair.create(lab, { initiator: impl, responder: impl, outer: 'v4', tag, mtu: underlayMtu });
  await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000);
  await prepare?.(pair);
  const [a0, b0] = [await readStats(socketPath(pair.a.ifname)), await readStats(socketPath(pair.b.ifname))];
  const tcp = await new IperfServer(lab, pair.b.ns, 5298).run(pair.a.ns, pair.b.tunnel.v4, { seconds: 2 });
  const [a1, b1] = [await readStats(socketPath(pair.a.ifname)), await readStats(socketPath(pair.b.ifname))];
  const grew = (after: Record<string, bigint>, before: Record<string, bigint>, k: string) => Number((after[k] ?? 0n) - (before[k] ?? 0n));
  return {
    tcp,
    // Data flows A→B: A reads super-packets and sends runs; B receives runs and writes merged.
    sender: { tun_rx_super_packets: grew(a1, a0, 'tun_rx_super_packets'), udp_tx_gso_runs: grew(a1, a0, 'udp_tx_gso_runs') },
    receiver: { udp_rx_gro_runs: grew(b1, b0, 'udp_rx_gro_runs'), tun_tx_super_packets: grew(b1, b0, 'tun_tx_super_packets') },
    segments: grew(a1, a0, 'tun_rx_packets'),
    udpTxErrors: grew(a1, a0, 'udp_tx_errors'),
  };
}

describe('offload activity on a TCP transfer', () => {
  const lab = NetLab.create();
  after(() => lab.cleanup());

  test('weft-wg: super-packets from the TUN, GSO runs out, GRO runs in, merged TUN writes', async (t) => {
    const r = await transferCounters(lab, weftWg, 'x');
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.tcp.bitsPerSecond > 0, 'the transfer ran');
    for (const [k, v] of Object.entries({ ...r.sender, ...r.receiver })) assert.ok(v > 0, `${k} grew (${v})`);
    // Most segments must have come as part of super-packets, not one per read.
    assert.ok(r.sender.tun_rx_super_packets * 4 < r.segments, `super-packets carry several segments each (${r.sender.tun_rx_super_packets} reads, ${r.segments} segments)`);
  });

  test('WEFT_WG_OFFLOADS=0: the same transfer with one packet per system call', async (t) => {
    const r = await transferCounters(lab, weftWgNoOffloads, 'y');
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.tcp.bitsPerSecond > 0, 'the transfer ran');
    for (const k of OFFLOAD_COUNTERS) assert.equal({ ...r.sender, ...r.receiver }[k], 0, `${k} did not move`);
  });

  test('datagrams that arrive one by one (no GSO past the sender\'s veth) are still merged for the TUN', async (t) => {
    // With TX checksum offload off on A's veth, the kernel cuts A's GSO runs in software before
    // the veth, so B receives single datagrams (no GRO runs). The coalescer works on what one
    // recvmmsg batch holds, so B must still write merged super-packets, and nothing is lost.
    const r = await transferCounters(lab, weftWg, 'z', async (pair) => {
      await lab.exec(pair.a.ns, ['ethtool', '-K', pair.a.veth, 'tx', 'off']);
    });
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.tcp.bitsPerSecond > 0, 'the transfer ran');
    assert.equal(r.receiver.udp_rx_gro_runs, 0, 'B received the datagrams one by one');
    assert.ok(r.receiver.tun_tx_super_packets > 0, 'B still merged segments into super-packets');
    assert.equal(r.udpTxErrors, 0, 'A lost no datagram on the way out');
  });

  test('an underlay MTU below the tunnel\'s: the kernel refuses GSO runs for that route, datagrams go singly and TCP flows', async (t) => {
    // Tunnel MTU 1420 makes 1480-byte outer datagrams; over a 1400-byte underlay every full run is
    // refused (EMSGSIZE, EINVAL on older kernels). Each refused run must be resent one datagram at
    // a time (the kernel then fragments them) instead of being lost, or bulk TCP stalls.
    const r = await transferCounters(lab, weftWg, 'm', undefined, 1400);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.tcp.bitsPerSecond > 100e6, `bulk TCP flows (${(r.tcp.bitsPerSecond / 1e9).toFixed(2)} Gbit/s)`);
    assert.equal(r.udpTxErrors, 0, 'no datagram was lost to the refused runs');
  });
});
