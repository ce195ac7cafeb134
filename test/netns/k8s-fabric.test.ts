// weft on the Kubernetes API: the real `weft controller` and `weft gateway` processes, configured
// only with a kubeconfig (the API server is the in-process fake that follows the real API's
// semantics, or a real kube-apiserver where each daemon has its own ServiceAccount's token:
// test/k8s/test-apiserver.ts), running in network namespaces. Two clusters are peered with
// `weft peer --kubeconfig A --remote-kubeconfig B` and unpeered with `weft unpeer`; a cluster with
// two gateway replicas fails over through its Lease when the active one dies.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetLab, run, waitFor } from './harness.ts';
import { closeCluster, cluster, readyz, startGateway, weft, type Cluster } from './k8s-cluster.ts';
import { Kinds, type ClusterNetworkSpec, type ClusterNetworkStatus, type PeeringStatus } from '../../src/control/resources.ts';
import type { Resource } from '../../src/store/types.ts';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';
import { conditionOf } from '../../src/control/status.ts';
import { HEARTBEAT_MS, latencyMoved } from '../../src/gateway/status-report.ts';

/**
 * Watch a cluster's Peerings and its API writes from now on; end() says which writes happened
 * (by "VERB resource", Lease renewals and events left out) and, per Peering status change, whether
 * the gateway's reporting rules explain it.
 */
async function watchPeerings(c: Cluster) {
  const { items, resourceVersion } = await c.store.list<Resource<unknown, PeeringStatus>>(Kinds.Peering);
  const last = new Map(items.map((p) => [p.metadata.name, p.status]));
  const changes: { name: string; justified: boolean; what: string }[] = [];
  const w = c.store.watch<Resource<unknown, PeeringStatus>>(Kinds.Peering, { resourceVersion });
  const reading = (async () => {
    for await (const ev of w.events) {
      if (ev.type === 'BOOKMARK') continue;
      const name = ev.object.metadata.name;
      const before = last.get(name);
      const after = ev.object.status;
      last.set(name, after);
      if (ev.type !== 'MODIFIED' || JSON.stringify(before) === JSON.stringify(after)) continue;
      const verdict = (s: PeeringStatus | undefined) => `${conditionOf(s, 'Connected')?.status}/${conditionOf(s, 'Connected')?.reason}/${conditionOf(s, 'Valid')?.reason}`;
      const heartbeat = Date.parse(after?.lastHeartbeatTime ?? '') - Date.parse(before?.lastHeartbeatTime ?? '') >= HEARTBEAT_MS;
      const justified = verdict(before) !== verdict(after) || latencyMoved(before?.latencyMs, after?.latencyMs) || heartbeat;
      changes.push({ name, justified, what: `${verdict(before)} → ${verdict(after)}, latency ${before?.latencyMs} → ${after?.latencyMs}` });
    }
  })().catch(() => {});
  const w0 = await c.server.writeCounts();
  return {
    async end() {
      const w1 = await c.server.writeCounts();
      w.stop();
      await reading;
      const writes: Record<string, number> = {};
      for (const [k, v] of w1) if (v !== (w0.get(k) ?? 0) && !/leases|events/.test(k)) writes[k] = v - (w0.get(k) ?? 0);
      return { writes, changes };
    },
  };
}

describe('Kubernetes mode: weft peer / unpeer between two clusters', () => {
  const lab = NetLab.create();
  const clusters: Cluster[] = [];
  after(async () => {
    await lab.cleanup();
    for (const c of clusters) await closeCluster(c);
  });

  test('controllers and gateways on the API; weft peer connects both sides; weft unpeer tears down', async (t) => {
    const gwA = await lab.namespace('ka');
    const gwB = await lab.namespace('kb');
    await lab.veth(gwA, gwB, { a: ['203.0.113.1/24'], b: ['203.0.113.2/24'] });
    const nodeNs: string[] = [];
    for (const ns of [gwA, gwB]) {
      const peerNs = await lab.namespace(`${ns.slice(-2)}n`);
      nodeNs.push(peerNs);
      await lab.veth(ns, peerNs, { a: ['192.168.100.254/24'], b: ['192.168.100.11/24'] });
    }
    const a = await cluster(lab, 'a', '203.0.113.1', { gwa: '192.168.100.254', n1: '192.168.100.11' }, [gwA, nodeNs[0]!]);
    const b = await cluster(lab, 'b', '203.0.113.2', { gwb: '192.168.100.254' }, [gwB]);
    // A node agent of cluster a, as the DaemonSet runs it: NODE_NAME from the downward API.
    lab.spawn(nodeNs[0]!, [weft, 'agent', '--kubeconfig', a.kubeconfigs.agent, '--metrics-port', '0'], { env: { ...process.env, NODE_NAME: 'n1', LOG_LEVEL: 'error' } });
    clusters.push(a, b);
    // Tunnel interfaces (and so their control sockets) carry this run's id and the peering's slot:
    // runs never collide.
    // One prefix per cluster: both gateways share /var/run/wireguard, and both number from slot 0.
    const prefix = (c: string) => `w${lab.id}${c}`;
    for (const c of ['a', 'b']) for (const slot of [0, 1]) lab.trackSocket(`/var/run/wireguard/${prefix(c)}${slot}.sock`);
    for (const [ns, c, node] of [[gwA, a, 'gwa'], [gwB, b, 'gwb']] as const) {
      lab.spawn(ns, [weft, 'controller', '--kubeconfig', c.kubeconfigs.controller, '--metrics-port', '0', '--interface-prefix', prefix(node.slice(-1))], { env: { ...process.env, LOG_LEVEL: 'error' } });
      startGateway(lab, ns, c, node);
    }
    const t0 = Date.now();
    const out = await run(weft, ['peer', '--kubeconfig', a.kubeconfig, '--remote-kubeconfig', b.kubeconfig, '--timeout', '40'], { timeoutMs: 60_000 });
    t.diagnostic(`weft peer (both processes just started) took ${Date.now() - t0} ms: ${out.stdout.trim()}`);
    assert.match(out.stdout, /peered, connected,/);
    for (const [c, remote] of [[a, 'b'], [b, 'a']] as const) {
      const p = await c.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, remote);
      assert.equal(p?.status?.phase, 'Connected');
      assert.ok(p?.status?.podCIDRRemap, 'remap reported');
      assert.ok(await c.store.get(Kinds.FabricPeer, remote), 'FabricPeer for the data plane');
      const cn = await c.store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
      assert.equal(cn?.status?.gatewayNodeIP, '192.168.100.254', 'the active replica published its node');
    }
    assert.match((await lab.exec(gwA, ['wg', 'show'])).stdout, /latest handshake/);
    // The agent read its Node from the API and routes b's remapped pods over VXLAN to the gateway.
    const remapB = (await a.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, 'b'))!.status!.podCIDRRemap!;
    await waitFor('agent programmed n1', async () => (await lab.exec(nodeNs[0]!, ['ip', 'route', 'show', 'table', '1800'])).stdout.includes(remapB), 10_000);
    assert.match((await lab.exec(nodeNs[0]!, ['ip', '-d', 'link', 'show', 'weft-vx'])).stdout, /remote 192\.168\.100\.254 local 192\.168\.100\.11/);

    // Idle: a connected pair writes nothing to the API (Lease renewals and events aside). The probe
    // runs every second, but its result is written only when it changes (status-report.ts): every
    // Peering status change seen must be a verdict change, a latency that moved, or a heartbeat.
    const idle = await Promise.all([a, b].map((c) => watchPeerings(c)));
    const idleMs = 10_000;
    await new Promise((r) => setTimeout(r, idleMs));
    for (const i of [0, 1]) {
      const { writes, changes } = await idle[i]!.end();
      t.diagnostic(`cluster ${'ab'[i]} idle ${idleMs / 1000} s: writes ${JSON.stringify(writes)}; status changes ${JSON.stringify(changes)}`);
      const unexplained = changes.filter((x) => !x.justified);
      assert.deepEqual(unexplained, [], `cluster ${'ab'[i]}: every status write while idle had a reason`);
      const other = Object.entries(writes).filter(([k]) => !/peerings.*status/.test(k));
      assert.deepEqual(other, [], `cluster ${'ab'[i]}: no write but Peering status ones while idle`);
      const statusWrites = Object.entries(writes).reduce((n, [, v]) => n + v, 0);
      assert.ok(statusWrites <= changes.length, `cluster ${'ab'[i]}: ${statusWrites} status writes, each seen as a justified change`);
    }
    await run(weft, ['unpeer', '--kubeconfig', a.kubeconfig, '--remote-kubeconfig', b.kubeconfig], { timeoutMs: 60_000 });
    for (const [c, remote, ns] of [[a, 'b', gwA], [b, 'a', gwB]] as const) {
      assert.equal(await c.store.get(Kinds.Peering, remote), undefined, 'Peering gone (after the finalizer)');
      assert.equal(await c.store.get(Kinds.FabricPeer, remote), undefined);
      await waitFor('tunnel removed', async () => !(await lab.exec(ns, ['nft', 'list', 'tables'])).stdout.includes(`weft_${remote}`), 10_000);
    }

    // A peering whose remote never answers (here: a key nobody holds) turns Error/HandshakeFailed,
    // and the gateway says so in a Warning event.
    const { randomPublicKey, remotePeering } = await import('../unit/fabric-fixtures.ts');
    await a.store.apply({ kind: Kinds.Peering, apiVersion: 'weft.io/v1alpha1', metadata: { name: 'ghost' }, spec: remotePeering('ghost', { remotePublicKey: randomPublicKey(), remoteEndpoint: { host: '203.0.113.2', port: 51899 }, remotePodCIDR: '10.9.0.0/16', remoteExternalCIDR: '10.8.0.0/24' }) });
    const failed = await waitFor('HandshakeFailed', async () => {
      const st = (await a.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, 'ghost'))?.status;
      return st?.reason === 'HandshakeFailed' ? st : undefined;
    }, 30_000, 250);
    assert.equal(failed!.phase, 'Error');
    const { CoreV1Api } = await import('@kubernetes/client-node');
    const events = (await loadKubeConfig({ kubeconfig: a.kubeconfig }).kubeConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'weft-system' })).items;
    assert.ok(events.some((e) => e.reason === 'HandshakeFailed' && e.involvedObject.name === 'ghost' && e.type === 'Warning'), 'Warning event HandshakeFailed');
  });
});

describe('Kubernetes mode: gateway high availability through a Lease', () => {
  const lab = NetLab.create();
  let c: Cluster | undefined;
  after(async () => {
    await lab.cleanup();
    await closeCluster(c);
  });

  test('one replica is active, the standby is not ready; killing the active one hands over within the lease', async (t) => {
    const n1 = await lab.namespace('h1');
    const n2 = await lab.namespace('h2');
    await lab.veth(n1, n2, { a: ['192.168.100.201/24'], b: ['192.168.100.202/24'] });
    c = await cluster(lab, 'a', '203.0.113.1', { node1: '192.168.100.201', node2: '192.168.100.202' }, [n1, n2]);
    lab.spawn(n1, [weft, 'controller', '--kubeconfig', c.kubeconfigs.controller, '--metrics-port', '0', '--interface-prefix', `w${lab.id}`], { env: { ...process.env, LOG_LEVEL: 'error' } });
    const replicas = { node1: { ns: n1, ip: '192.168.100.201', proc: startGateway(lab, n1, c, 'node1') }, node2: { ns: n2, ip: '192.168.100.202', proc: startGateway(lab, n2, c, 'node2') } };
    const activeNode = async () => (await c!.store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local'))?.status?.gatewayNodeIP;
    const first = await waitFor('an active gateway', activeNode, 15_000, 50);
    const [activeName, standbyName] = first === replicas.node1.ip ? (['node1', 'node2'] as const) : (['node2', 'node1'] as const);
    const active = replicas[activeName];
    const standby = replicas[standbyName];
    await waitFor('active replica ready', async () => (await readyz(lab, active.ns)) === 200, 10_000, 100);
    assert.equal(await readyz(lab, standby.ns), 503, 'the standby is not ready (no traffic is sent to it)');
    assert.match((await lab.exec(active.ns, ['ip', '-d', 'link', 'show', 'weft-vx'])).stdout, new RegExp(`local ${active.ip}`), 'the active replica programmed its node');
    assert.notEqual((await lab.exec(standby.ns, ['ip', 'link', 'show', 'weft-vx'], { allowFail: true })).code, 0, 'the standby programs nothing');

    const killedAt = Date.now();
    active.proc.kill('SIGKILL');
    await waitFor('standby took over', async () => (await activeNode()) === standby.ip, 15_000, 25);
    const published = Date.now() - killedAt;
    await waitFor('standby programmed and ready', async () => (await readyz(lab, standby.ns)) === 200, 10_000, 50);
    const ready = Date.now() - killedAt;
    t.diagnostic(`failover with a 2 s lease: new active node published after ${published} ms, ready after ${ready} ms`);
    assert.match((await lab.exec(standby.ns, ['ip', '-d', 'link', 'show', 'weft-vx'])).stdout, new RegExp(`local ${standby.ip}`));
    assert.ok(published < 8000, `handover within a few lease durations (${published} ms)`);
  });
});
