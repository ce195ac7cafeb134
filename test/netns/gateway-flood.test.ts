// A gateway with two tunnels under a handshake flood, on the Kubernetes API with two gateway
// replicas and leader election (test/netns/flood-mesh.ts: the lab's three-cluster topology, full
// mesh, the real controllers, gateways and node agents on in-process fake API servers, and an
// attacker namespace on the WAN switch).
//
// The handshake path lives in the addon with one process-wide budget (native/src/handshake/
// workers.h), so a flood of mac1-valid initiations spread over both of a's tunnel ports must be
// answered with cookie replies on native threads while the gateway's JavaScript thread goes on
// with its work. For the whole flood (~20 s at the highest rate one generator reaches): both of a's
// peerings stay Connected and keep being probed, pods of a reach pods of b and c, the Lease holder
// does not change (the standby never becomes ready), reconciles keep completing without errors,
// /healthz and /metrics keep answering, and both tunnels sent cookie replies.
//
// Every bound is generous (several times the normal period): it tells a stalled or failing gateway
// from a working one, not a fast machine from a slow one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { run, waitFor } from './harness.ts';
import { readStats } from './uapi-client.ts';
import { ACTIVE_IDENTITY, FloodMesh, histogramQuantile, percentileOf, type Observation } from './flood-mesh.ts';

/** The flood runs at the rate one generator process reaches (measured first), at most this. */
const MAX_RATE = 50_000;
const FLOOD_SECONDS = 20;
/**
 * The leader elector's default (client-go's): renewed every 5 s, given up after 10 s without a
 * renewal. A gateway whose JavaScript thread the flood stalls loses it; a merely busy machine does
 * not. (The deployment's 5 s Lease is measured by bench/gateway-flood.ts.)
 */
const LEASE_MS = 15_000;

function summary(o: Observation): string {
  const lat = (r: string) => `${r}: probe median ${percentileOf(o.peerings[r]!.latencyMs, 50)} ms, ${o.peerings[r]!.probesAnswered} probes answered, longest gap ${o.peerings[r]!.longestProbeGapMs} ms`;
  const ping = (r: string) => {
    const p = o.pings[r]!;
    return `${r}: ${p.received}/${p.sent} answered, median ${percentileOf(p.rttMs, 50)} ms`;
  };
  const h = o.reconciles.histogram;
  return [
    `${o.seconds.toFixed(1)} s; peerings ${lat('b')}; ${lat('c')}`,
    `reconciles ${o.reconciles.ok} ok / ${o.reconciles.errors} errors, mean ${h.count ? ((h.sum / h.count) * 1000).toFixed(0) : '—'} ms, p90 ≤ ${histogramQuantile(h, 90)} s, longest gap ${o.reconciles.longestGapMs} ms; event loop lag max ${o.eventLoopLagMaxMs.toFixed(0)} ms`,
    `healthz ${o.healthz.samples} samples, ${o.healthz.failures} failures, max ${Math.max(0, ...o.healthz.latencyMs).toFixed(0)} ms; lease holders ${o.lease.holders.join(',')}, ${o.lease.renewals} renewals, max gap ${o.lease.maxRenewGapMs} ms`,
    `pings ${ping('b')}; ${ping('c')}; sweeps ${o.sweeps.rounds} rounds, ${o.sweeps.failures.length} failed pairs`,
    `tunnel counters ${JSON.stringify(o.counters)}; gateway CPU ${o.gatewayCpuSeconds.toFixed(2)} s (busiest threads ${o.busyThreads.map((x) => `${x.cpuSeconds.toFixed(1)} s`).join(', ')}); JS thread ran ${o.jsThread.runMs.toFixed(0)} ms, waited for a CPU ${o.jsThread.waitMs.toFixed(0)} ms (worst second ${o.jsThread.worstSecondWaitMs.toFixed(0)} ms)`,
    ...['b', 'c'].flatMap((r) => [...o.peerings[r]!.notConnected.map((x) => `a→${r} ${x.phase}/${x.reason} at ${x.atMs} ms`), ...o.remoteViews[r]!.notConnected.map((x) => `${r}→a ${x.phase}/${x.reason} at ${x.atMs} ms`)]),
  ].join('\n');
}

describe('gateway under a handshake flood on both tunnel ports (Kubernetes mode, 2 replicas, Lease)', () => {
  let mesh: FloodMesh | undefined;
  // The harness's own signal handler removes its NetLabs and exits; ours runs first and removes
  // the lab's namespaces and every process inside them synchronously.
  const onSignal = () => mesh?.closeSync();
  const log: string[] = [];

  before(async () => {
    process.prependListener('SIGINT', onSignal);
    process.prependListener('SIGTERM', onSignal);
    await FloodMesh.create({ leaseMs: LEASE_MS, log: (l) => log.push(l) }, (m) => (mesh = m));
  });

  after(async () => {
    await mesh?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });

  test('both peerings stay Connected, pods reach b and c, the Lease stays, reconciles run, cookies go out', async (t) => {
    const m = mesh!;
    for (const l of log) t.diagnostic(l);
    try {
      // What the attacker aims at: a's two tunnel ports and a's public key, from the resources,
      // checked against the devices themselves (`wg show` of each interface in a's gateway namespace).
      const gwNs = m.plan('a').gateway.namespace;
      const publicKey = (await m.clusterNetwork('a'))?.status?.gatewayPublicKey;
      assert.ok(publicKey, 'a published its gateway key');
      const tunnels = await m.tunnels();
      assert.equal(tunnels.length, 2);
      for (const tn of tunnels) {
        const show = (what: string) => run('ip', ['netns', 'exec', gwNs, 'wg', 'show', tn.interfaceName, what]).then((r) => r.stdout.trim());
        assert.equal(Number(await show('listen-port')), tn.port, `${tn.interfaceName} listens on its FabricPeer port`);
        assert.equal(await show('public-key'), publicKey);
        assert.equal((await readStats(tn.socket)).errno, 0n);
      }
      assert.notEqual(tunnels[0]!.port, tunnels[1]!.port);
      assert.equal((await m.lease()).holder, ACTIVE_IDENTITY);
      const leaseBefore = await m.lease();

      const idle = await m.observe(5);
      t.diagnostic(`idle:\n${summary(idle)}`);
      assert.deepEqual(idle.sweeps.failures, [], 'pods reach b and c before the flood');

      const ports = tunnels.map((tn) => tn.port);
      const rate = Math.round(0.95 * (await m.calibrateFlood(ports, publicKey, MAX_RATE)));
      t.diagnostic(`the generator reaches ${rate} initiations/s here`);
      const cookies0 = await Promise.all(tunnels.map(async (tn) => (await readStats(tn.socket)).handshake_cookie_replies_sent!));
      const flood = m.startFlood(ports, publicKey, { rate, maxSeconds: FLOOD_SECONDS });
      const floodEnded = new Promise((r) => flood.child.once('exit', r));
      await waitFor('both tunnels demanding cookies', async () => {
        for (const [i, tn] of tunnels.entries()) if (!((await readStats(tn.socket)).handshake_cookie_replies_sent! > cookies0[i]!)) return false;
        return true;
      }, 15_000, 100);
      const o = await m.observe(FLOOD_SECONDS + 15, floodEnded);
      const report = await flood.report();
      t.diagnostic(`flood: ${JSON.stringify(report)}`);
      t.diagnostic(`under the flood:\n${summary(o)}`);

      // The flood was real: both ports hammered, both tunnels answered with cookie replies.
      assert.ok(o.seconds >= 10, `observed ${o.seconds} s of flood`);
      assert.ok(report.sent > 0 && report.rate > 2000, `the flood ran well above the under-load threshold (1,000/s): ${JSON.stringify(report)}`);
      for (const tn of tunnels) {
        assert.ok((o.counters[tn.interfaceName]!.handshake_cookie_replies_sent ?? 0) > 0, `${tn.interfaceName} sent cookie replies: ${JSON.stringify(o.counters[tn.interfaceName])}`);
        assert.ok((report.cookieRepliesByPort[String(tn.port)] ?? 0) > 0, `the attacker heard cookies from port ${tn.port}`);
      }

      // Both of a's peerings Connected in every sample, and the gateway's probes kept running and
      // being answered (the status is written only on changes, so a stalled gateway would leave a
      // stale "Connected" behind: the probes are read from its /metrics).
      for (const r of ['b', 'c']) {
        const p = o.peerings[r]!;
        assert.deepEqual(p.notConnected, [], `a→${r} stayed Connected (${p.samples} samples)`);
        assert.ok(p.probesAnswered >= 3, `a→${r}: the probe kept being answered (${p.probesAnswered} answered)`);
        assert.ok(p.longestProbeGapMs < 10_000, `a→${r}: a probe answered at least every 10 s (longest gap ${p.longestProbeGapMs} ms)`);
        assert.deepEqual(o.remoteViews[r]!.notConnected, [], `${r}→a stayed Connected`);
      }

      // Pods of a reach pods of b and c across the flooded tunnels.
      assert.ok(o.sweeps.rounds >= 1, 'at least one full ping sweep during the flood');
      assert.deepEqual(o.sweeps.failures, [], 'every pod of a reached every pod of b and c in every sweep');
      for (const r of ['b', 'c']) {
        const p = o.pings[r]!;
        assert.ok(p.sent > 0 && p.received * 2 >= p.sent, `a/n1-p1 → ${r}/n1-p1: ${p.received} of ${p.sent} pings answered`);
      }

      // The Lease: one holder throughout, renewed, no transition; the standby never ready.
      assert.deepEqual(o.lease.holders, [ACTIVE_IDENTITY], 'the Lease holder did not change');
      assert.equal(o.lease.transitionsAfter, leaseBefore.transitions, 'no Lease transition');
      assert.ok(o.lease.renewals >= 2, `the active replica kept renewing (${o.lease.renewals} renewals)`);
      assert.ok(o.activeAlive, 'the active replica is still running');
      assert.ok(o.standbyReady.samples > 0 && o.standbyReady.ready === 0, 'the standby stayed a standby');

      // The JavaScript thread kept working: reconciles completed without errors, /healthz and
      // /metrics answered every time.
      assert.ok(o.reconciles.ok >= 3, `reconciles kept completing (${o.reconciles.ok} during the flood)`);
      assert.equal(o.reconciles.errors, 0, 'no reconcile failed');
      assert.ok(o.reconciles.longestGapMs < 15_000, `a reconcile completed at least every 15 s (longest gap ${o.reconciles.longestGapMs} ms)`);
      assert.equal(o.reconciles.scrapeFailures, 0, `/metrics answered every scrape (${o.reconciles.scrapes})`);
      assert.ok(o.healthz.samples > 0 && o.healthz.failures === 0, `/healthz answered within 5 s every time (${o.healthz.samples} samples)`);

      // And afterwards: everything still there.
      for (const r of ['b', 'c'] as const) assert.equal((await m.peering('a', r))?.status?.phase, 'Connected');
      assert.equal((await m.lease()).holder, ACTIVE_IDENTITY);
      const after = await m.observe(4);
      assert.deepEqual(after.sweeps.failures, [], 'pods reach b and c after the flood');
    } catch (err) {
      t.diagnostic(m.logs());
      throw err;
    }
  });
});
