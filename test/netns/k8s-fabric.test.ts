// weft on the Kubernetes API: the real `weft controller` and `weft gateway` processes, configured
// only with a kubeconfig (the API server is the in-process fake that follows the real API's
// semantics), running in network namespaces. Two clusters are peered with
// `weft peer --kubeconfig A --remote-kubeconfig B` and unpeered with `weft unpeer`; a cluster with
// two gateway replicas fails over through its Lease when the active one dies.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, nodeBin, repoRoot, run, waitFor } from './harness.ts';
import { bridgeApi, type ApiBridge } from './api-bridge.ts';
import { startFakeApiServer, type FakeApiServer } from '../k8s/apiserver.ts';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';
import { KubernetesStore } from '../../src/k8s/store.ts';
import { API_VERSION, Kinds, type ClusterNetworkSpec, type ClusterNetworkStatus, type PeeringStatus } from '../../src/control/resources.ts';
import type { Resource } from '../../src/store/types.ts';
import { generatePrivateKey } from '../../src/wireguard/crypto.ts';

const weft = path.join(repoRoot, 'bin/weft');

function clusterSpec(id: string, wan: string): ClusterNetworkSpec {
  return {
    clusterId: id,
    podCIDR: '10.0.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    nodeCIDRs: ['192.168.100.0/24'],
    fabricCIDR: '100.126.0.0/16',
    vxlanId: 4242,
    vxlanPort: 4789,
    gatewayEndpoint: { host: wan, port: 0 },
    gatewayNodeIP: '192.168.100.254',
    underlayMtu: 1500,
    wanMtu: 1500,
  };
}

interface Cluster {
  api: FakeApiServer;
  store: KubernetesStore;
  keyFile: string;
  bridge: ApiBridge;
}

async function cluster(lab: NetLab, id: string, wan: string, nodes: Record<string, string>, namespaces: string[]): Promise<Cluster> {
  const api = await startFakeApiServer();
  const bridge = await bridgeApi(lab, api.url);
  for (const ns of namespaces) await bridge.into(ns);
  const store = new KubernetesStore({ kubeConfig: loadKubeConfig({ kubeconfig: api.kubeconfig }).kubeConfig, fieldManager: 'weft-test' });
  await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: clusterSpec(id, wan) });
  for (const [name, ip] of Object.entries(nodes)) api.setNode(name, { internalIP: ip, podCIDRs: [] });
  // Every gateway replica mounts the same key Secret.
  const keyFile = path.join(lab.tempDir(`key-${id}`), 'privatekey');
  fs.writeFileSync(keyFile, Buffer.from(generatePrivateKey()).toString('base64') + '\n', { mode: 0o600 });
  return { api, store, keyFile, bridge };
}

function startGateway(lab: NetLab, ns: string, c: Cluster, node: string) {
  return lab.spawn(ns, [weft, 'gateway', '--kubeconfig', c.api.kubeconfig, '--key', c.keyFile, '--metrics-port', '9091'], {
    env: { ...process.env, NODE_NAME: node, POD_NAME: `${node}-gw`, WEFT_LEASE_DURATION_MS: '2000', LOG_LEVEL: 'error' },
  });
}

async function readyz(lab: NetLab, ns: string): Promise<number> {
  const r = await lab.exec(ns, [nodeBin, '-e', "fetch('http://127.0.0.1:9091/readyz').then((r) => console.log(r.status)).catch(() => console.log(0))"]);
  return Number(r.stdout.trim());
}

describe('Kubernetes mode: weft peer / unpeer between two clusters', () => {
  const lab = NetLab.create();
  const clusters: Cluster[] = [];
  after(async () => {
    await lab.cleanup();
    for (const c of clusters) {
      await c.store.close();
      await c.bridge.close();
      await c.api.close();
    }
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
    lab.spawn(nodeNs[0]!, [weft, 'agent', '--kubeconfig', a.api.kubeconfig, '--metrics-port', '0'], { env: { ...process.env, NODE_NAME: 'n1', LOG_LEVEL: 'error' } });
    clusters.push(a, b);
    for (const [ns, c, node] of [[gwA, a, 'gwa'], [gwB, b, 'gwb']] as const) {
      lab.spawn(ns, [weft, 'controller', '--kubeconfig', c.api.kubeconfig, '--metrics-port', '0'], { env: { ...process.env, LOG_LEVEL: 'error' } });
      startGateway(lab, ns, c, node);
    }
    const t0 = Date.now();
    const out = await run(weft, ['peer', '--kubeconfig', a.api.kubeconfig, '--remote-kubeconfig', b.api.kubeconfig, '--timeout', '40'], { timeoutMs: 60_000 });
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
    await run(weft, ['unpeer', '--kubeconfig', a.api.kubeconfig, '--remote-kubeconfig', b.api.kubeconfig], { timeoutMs: 60_000 });
    for (const [c, remote, ns] of [[a, 'b', gwA], [b, 'a', gwB]] as const) {
      assert.equal(await c.store.get(Kinds.Peering, remote), undefined, 'Peering gone (after the finalizer)');
      assert.equal(await c.store.get(Kinds.FabricPeer, remote), undefined);
      await waitFor('tunnel removed', async () => !(await lab.exec(ns, ['nft', 'list', 'tables'])).stdout.includes(`weft_${remote}`), 10_000);
    }
  });
});

describe('Kubernetes mode: gateway high availability through a Lease', () => {
  const lab = NetLab.create();
  let c: Cluster | undefined;
  after(async () => {
    await lab.cleanup();
    await c?.store.close();
    await c?.bridge.close();
    await c?.api.close();
  });

  test('one replica is active, the standby is not ready; killing the active one hands over within the lease', async (t) => {
    const n1 = await lab.namespace('h1');
    const n2 = await lab.namespace('h2');
    await lab.veth(n1, n2, { a: ['192.168.100.201/24'], b: ['192.168.100.202/24'] });
    c = await cluster(lab, 'a', '203.0.113.1', { node1: '192.168.100.201', node2: '192.168.100.202' }, [n1, n2]);
    lab.spawn(n1, [weft, 'controller', '--kubeconfig', c.api.kubeconfig, '--metrics-port', '0'], { env: { ...process.env, LOG_LEVEL: 'error' } });
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
