// Lease-based leader election (src/k8s/leader.ts) with two candidates on the in-process API server
// (or a real one, as the gateway's ServiceAccount, which may hold only the Lease weft-gateway):
// exactly one leads; a leader that stops renewing is replaced once its lease expires (not before);
// a graceful release hands over at once; a leader cut off from the API steps down before the
// standby takes over. The Lease carries what client-go writes (MicroTime with six digits: the API
// server refuses Date's three).
import { after, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/k8s/leader.ts';
import { startTestApiServer, type TestApiServer } from './test-apiserver.ts';

const servers: TestApiServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

const LEASE_MS = 2000;
/** The one Lease deploy/rbac.yaml lets the gateway read and renew (each test has its own server). */
const LEASE = 'weft-gateway';

interface Candidate {
  elector: LeaderElector;
  kc: KubeConfig;
  log: { at: number; event: 'started' | 'stopped' }[];
}

async function setup(t: TestContext) {
  const leaseName = LEASE;
  const server = await startTestApiServer({ bookmarkIntervalMs: 0 });
  servers.push(server);
  const gatewayConfig = await server.kubeconfigFor('gateway');
  const candidates: Candidate[] = [];
  let overlap = false;
  const make = (identity: string): Candidate => {
    const kc = new KubeConfig();
    kc.loadFromFile(gatewayConfig);
    const c: Candidate = { kc, log: [], elector: undefined as unknown as LeaderElector };
    c.elector = new LeaderElector({
      kubeConfig: kc,
      namespace: 'weft-system',
      name: leaseName,
      identity,
      leaseDurationMs: LEASE_MS,
      onStartedLeading: () => {
        c.log.push({ at: Date.now(), event: 'started' });
        if (candidates.some((o) => o !== c && o.elector.isLeader)) overlap = true;
      },
      onStoppedLeading: () => c.log.push({ at: Date.now(), event: 'stopped' }),
    });
    candidates.push(c);
    return c;
  };
  const a = make('gateway-a');
  const b = make('gateway-b');
  t.after(async () => {
    for (const c of candidates) await c.elector.stop({ release: false });
    await server.close();
  });
  const leader = () => candidates.filter((c) => c.elector.isLeader);
  const lease = async () => (await server.getObject('leases', leaseName, 'weft-system')) as { spec: Record<string, unknown> } | undefined;
  return { server, a, b, leader, lease, overlap: () => overlap };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

describe('leader election on a Lease', { timeout: 120_000 }, () => {
  it('elects one leader; a stopped (crashed) leader is replaced once its lease expires, not before', async (t) => {
    const { a, b, leader, lease, overlap } = await setup(t);
    a.elector.start();
    await until('a leads', () => a.elector.isLeader, 5000);
    b.elector.start();
    // b campaigns for a while and must not win while a renews.
    await new Promise((r) => setTimeout(r, LEASE_MS * 1.5));
    assert.deepEqual(leader().map((c) => c.elector.identity), ['gateway-a']);
    assert.equal(b.elector.leader, 'gateway-a', 'the standby knows who leads');
    const l = (await lease())!;
    assert.equal(l.spec.holderIdentity, 'gateway-a');
    assert.equal(l.spec.leaseDurationSeconds, LEASE_MS / 1000);
    assert.match(String(l.spec.renewTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime, six digits');

    const killedAt = Date.now();
    await a.elector.stop({ release: false }); // no release: as if the process died
    assert.equal(a.elector.isLeader, false);
    const failover = await until('b takes over', () => b.elector.isLeader, LEASE_MS * 3);
    t.diagnostic(`failover after the leader stopped renewing: ${failover} ms (lease ${LEASE_MS} ms)`);
    assert.ok(failover >= LEASE_MS - LEASE_MS / 3 - 100, `took over after ${failover} ms: before the lease could have expired`);
    // At most: b notices a's last renewal up to one retry (with jitter) after it was written, waits
    // the lease duration from then, and acts at its next retry; plus 500 ms for the requests.
    assert.ok(failover <= LEASE_MS + 2 * (LEASE_MS / 5) * 1.2 + 500, `took over after ${failover} ms: too slow`);
    assert.ok(b.log[0]!.at >= killedAt);
    assert.equal((await lease())!.spec.holderIdentity, 'gateway-b');
    assert.equal((await lease())!.spec.leaseTransitions, 1);
    assert.equal(overlap(), false, 'never two leaders');
  });

  it('hands over at once when the leader releases the lease', async (t) => {
    const { a, b, lease, overlap } = await setup(t);
    a.elector.start();
    await until('a leads', () => a.elector.isLeader, 5000);
    b.elector.start();
    await new Promise((r) => setTimeout(r, LEASE_MS / 2));
    assert.equal(b.elector.isLeader, false);
    const stoppedAt = Date.now();
    await a.elector.stop();
    assert.deepEqual(a.log.map((e) => e.event), ['started', 'stopped']);
    const handover = await until('b takes over', () => b.elector.isLeader, LEASE_MS * 2);
    t.diagnostic(`handover after a graceful release: ${Date.now() - stoppedAt} ms (lease ${LEASE_MS} ms)`);
    assert.ok(handover < LEASE_MS / 2, `took ${handover} ms: a released lease is taken at the next try, not after expiry`);
    assert.equal((await lease())!.spec.holderIdentity, 'gateway-b');
    assert.equal(overlap(), false);
  });

  it('a leader cut off from the API steps down before the standby takes over', async (t) => {
    const { a, b, overlap } = await setup(t);
    a.elector.start();
    await until('a leads', () => a.elector.isLeader, 5000);
    b.elector.start();
    await new Promise((r) => setTimeout(r, LEASE_MS / 2));
    // a's requests now fail (401): it cannot renew.
    const user = a.kc.getCurrentUser() as { token?: string };
    user.token = 'revoked';
    await until('b takes over', () => b.elector.isLeader, LEASE_MS * 3);
    const stepDown = a.log.find((e) => e.event === 'stopped');
    assert.ok(stepDown, 'a stepped down');
    assert.ok(stepDown.at <= b.log[0]!.at, `a stepped down ${b.log[0]!.at - stepDown.at} ms before b started`);
    t.diagnostic(`cut-off leader stepped down ${b.log[0]!.at - stepDown.at} ms before the standby took over`);
    assert.equal(overlap(), false);
  });

  it('a leader whose API requests hang steps down on time, before the standby takes over', async (t) => {
    const { a, b, overlap } = await setup(t);
    a.elector.start();
    await until('a leads', () => a.elector.isLeader, 5000);
    b.elector.start();
    await new Promise((r) => setTimeout(r, LEASE_MS / 2));
    // a's requests now never get an answer (a partition that drops packets, or an API server that
    // stalls): only a's own clock can tell it that its lease is running out.
    a.kc.applySecurityAuthentication = () => new Promise<void>(() => {});
    await until('b takes over', () => b.elector.isLeader, LEASE_MS * 3);
    const stepDown = a.log.find((e) => e.event === 'stopped');
    assert.ok(stepDown, 'a stepped down');
    assert.ok(stepDown.at <= b.log[0]!.at, `a stepped down ${b.log[0]!.at - stepDown.at} ms before b started`);
    t.diagnostic(`hung leader stepped down ${b.log[0]!.at - stepDown.at} ms before the standby took over`);
    assert.equal(overlap(), false);
  });
});
