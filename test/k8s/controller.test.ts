// The real peering controller (src/control/controller.ts) on the Kubernetes store, against the
// in-process API server serving deploy/crds (or a real one, each component with its own
// ServiceAccount's token: test/k8s/test-apiserver.ts): a ClusterNetwork and a Peering become a FabricPeer
// with remaps; a Peering the controller refuses gets phase Error with the reason; one the CRD
// schema refuses never gets in (422 with the server's reason); deleting a Peering (held by the
// controller's finalizer) tears its FabricPeer down, then lets the Peering go.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { KubernetesStore } from '../../src/k8s/store.ts';
import { PeeringController, FINALIZER } from '../../src/control/controller.ts';
import { API_VERSION, Kinds, type ClusterNetworkSpec, type FabricPeerSpec, type IpamStateSpec, type PeeringSpec, type PeeringStatus } from '../../src/control/resources.ts';
import { isStoreError, type Resource, type WatchEvent } from '../../src/store/types.ts';
import { clusterA, randomPublicKey, remotePeering } from '../unit/fabric-fixtures.ts';
import { silentLogger, createLogger } from '../../src/log.ts';
import { skipOnReal, startTestApiServer, type TestApiServer } from './test-apiserver.ts';

const servers: TestApiServer[] = [];
// Each test's close() stops its server after the controller and the stores; this is for a test
// that failed before it could register that.
after(async () => {
  for (const s of servers) await s.close();
});

const key = randomPublicKey;
const remote = remotePeering;
const clusterSpec: ClusterNetworkSpec = { ...clusterA(), gatewayEndpoint: { host: '203.0.113.1', port: 0 } };

type Peering = Resource<PeeringSpec, PeeringStatus>;

async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setup() {
  const server = await startTestApiServer({ bookmarkIntervalMs: 1000 });
  servers.push(server);
  const load = (file: string) => {
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    return kc;
  };
  // A person's credentials for the CLI and the test's own reads.
  const kc = load(server.kubeconfig);
  // One store per component, each with its own field manager (and, on a real server, its own
  // ServiceAccount), as the deployments have them.
  const cli = new KubernetesStore({ kubeConfig: kc, fieldManager: 'weft-cli' });
  const gateway = new KubernetesStore({ kubeConfig: load(await server.kubeconfigFor('gateway')), fieldManager: 'weft-gateway' });
  const store = new KubernetesStore({ kubeConfig: load(await server.kubeconfigFor('controller')), fieldManager: 'weft-controller' });
  await cli.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: clusterSpec });
  const ownKey = key();
  await gateway.updateStatus(Kinds.ClusterNetwork, 'local', { gatewayPublicKey: ownKey });
  const controller = new PeeringController(store, { log: process.env.WEFT_TEST_LOG ? createLogger("verbose", "controller: ") : silentLogger, interfacePrefix: 'wg-a', resyncMs: 60_000 });
  const peer = (name: string, spec: PeeringSpec) => cli.apply<Peering>({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name }, spec });
  return { server, kube: kc, cli, store, controller, peer, ownKey, close: async () => {
    await controller.stop();
    for (const s of [cli, gateway, store]) await s.close();
    await server.close();
  } };
}

describe('PeeringController on the Kubernetes store', { timeout: 120_000 }, () => {
  it('turns a Peering into a FabricPeer with remaps, refuses a bad one with a reason, tears down on delete', async (t) => {
    const { server, kube, cli, store, controller, peer, close } = await setup();
    t.after(close);
    controller.start();

    // The cluster's own description gets its external CIDR.
    const cn = await until('ClusterNetwork external CIDR', async () => {
      const status = (await cli.get<Resource<ClusterNetworkSpec, { externalCIDR?: string; gatewayPublicKey?: string }>>(Kinds.ClusterNetwork, 'local'))?.status;
      return status?.externalCIDR ? status : undefined;
    });
    assert.match(cn.externalCIDR ?? '', /^\d+\.\d+\.\d+\.\d+\/24$/);
    assert.ok(cn.gatewayPublicKey, 'the controller merged its status with the gateway’s');

    await peer('b', remote('b'));
    const fp = await until('FabricPeer b', () => store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, 'b'));
    assert.equal(fp.metadata.namespace, 'weft-system');
    assert.equal(fp.spec.remotePodCIDR, '10.0.0.0/16');
    assert.notEqual(fp.spec.podCIDRRemap, '10.0.0.0/16', 'overlapping pod CIDR remapped');
    assert.match(fp.spec.podCIDRRemap, /^\d+\.\d+\.\d+\.\d+\/16$/);
    assert.equal(fp.spec.interfaceName, 'wg-a0', 'named after its slot');
    assert.equal(fp.spec.listenPort, 51820);
    const b = await until('Peering b status', async () => {
      const p = await cli.get<Peering>(Kinds.Peering, 'b');
      return p?.status?.podCIDRRemap ? p : undefined;
    });
    assert.equal(b.status!.podCIDRRemap, fp.spec.podCIDRRemap);
    assert.equal(b.status!.phase, 'Connecting');
    assert.deepEqual(b.metadata.finalizers, [FINALIZER]);
    const ipam = await until('IpamState', () => store.get<Resource<IpamStateSpec>>(Kinds.IpamState, 'local'));
    assert.ok(ipam.spec.snapshot, 'IPAM decisions persisted');

    // Who owns what: the CLI the spec it applied; the controller only its finalizer (a metadata
    // update: it must never co-own the spec the CLI wrote) and the status it wrote.
    const raw = (await server.getObject('peerings', 'b', 'weft-system'))!;
    const managed = (raw.metadata as { managedFields: { manager: string; operation: string; subresource?: string; fieldsV1: Record<string, Record<string, unknown>> }[] }).managedFields;
    const entry = (manager: string, op: string, sub?: string) => managed.find((m) => m.manager === manager && m.operation === op && m.subresource === sub);
    assert.ok(entry('weft-cli', 'Apply')?.fieldsV1['f:spec'], 'weft-cli applied the spec');
    const controllerMain = managed.filter((m) => m.manager === 'weft-controller' && m.subresource === undefined);
    assert.ok(controllerMain.some((m) => m.fieldsV1['f:metadata']?.['f:finalizers']), 'weft-controller set the finalizer');
    assert.ok(!controllerMain.some((m) => m.fieldsV1['f:spec']), 'weft-controller owns no spec field');
    assert.ok(entry('weft-controller', 'Update', 'status')?.fieldsV1['f:status'], 'weft-controller wrote status through /status');

    // A Peering the controller refuses: a cluster cannot peer with itself.
    await peer('a', remote('a'));
    const bad = await until('Peering a refused', async () => {
      const p = await cli.get<Peering>(Kinds.Peering, 'a');
      return p?.status?.phase === 'Error' ? p : undefined;
    });
    assert.equal(bad.status!.reason, 'InvalidPeering');
    assert.match(bad.status!.message ?? '', /remoteClusterId a is this cluster's own id/);
    assert.equal(await store.get(Kinds.FabricPeer, 'a'), undefined, 'nothing reaches the data plane');
    // And a Warning event about the Peering says why, once (not at every resync).
    const events = await until('a Warning event', async () => {
      const list = (await kube.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'weft-system' })).items.filter((e) => e.involvedObject.name === 'a');
      return list.length ? list : undefined;
    });
    assert.equal(events[0]!.type, 'Warning');
    assert.equal(events[0]!.reason, 'InvalidPeering');
    assert.equal(events[0]!.involvedObject.kind, 'Peering');
    assert.match(events[0]!.message ?? '', /this cluster's own id/);
    await controller.trigger();
    assert.equal((await kube.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'weft-system' })).items.filter((e) => e.involvedObject.name === 'a').length, 1);

    // A Peering the CRD schema refuses is not stored at all.
    await assert.rejects(peer('c', remote('c', { remotePodCIDR: '10.0.0.1/16' })), (err) => {
      assert.ok(isStoreError(err, 'Invalid'), String(err));
      assert.match(err.reason, /spec\.remotePodCIDR/);
      return true;
    });
    await assert.rejects(peer('d', remote('e')), (err) => isStoreError(err, 'Invalid') && /named after the remote cluster/.test(err.reason));
    assert.equal(await cli.get(Kinds.Peering, 'c'), undefined);

    // Deleting b: the finalizer holds it until the controller tore the FabricPeer down.
    const { resourceVersion } = await store.list(Kinds.Peering);
    const seen: { kind: string; type: string; rv: number }[] = [];
    const follow = async (kind: string) => {
      const w = store.watch<Resource>(kind, { resourceVersion });
      t.after(() => w.stop());
      for await (const ev of w.events as AsyncIterable<WatchEvent<Resource>>) {
        if (ev.type === 'BOOKMARK' || ev.object.metadata.name !== 'b') continue;
        seen.push({ kind, type: ev.type, rv: Number(ev.object.metadata.resourceVersion) });
        if (ev.type === 'DELETED') return;
      }
    };
    const watched = Promise.all([follow(Kinds.Peering), follow(Kinds.FabricPeer)]);
    await cli.delete(Kinds.Peering, 'b');
    const terminating = await cli.get<Peering>(Kinds.Peering, 'b');
    assert.ok(terminating?.metadata.deletionTimestamp, 'held by the finalizer');
    await until('Peering b gone', async () => (await cli.get(Kinds.Peering, 'b')) === undefined);
    assert.equal(await store.get(Kinds.FabricPeer, 'b'), undefined, 'FabricPeer torn down');
    await watched;
    const fabricGone = seen.find((e) => e.kind === Kinds.FabricPeer && e.type === 'DELETED')!;
    const peeringGone = seen.find((e) => e.kind === Kinds.Peering && e.type === 'DELETED')!;
    assert.ok(fabricGone.rv < peeringGone.rv, `FabricPeer deleted (rv ${fabricGone.rv}) before the Peering let go (rv ${peeringGone.rv})`);
    const ipamAfter = (await store.get<Resource<{ snapshot: { peers?: Record<string, unknown> } }>>(Kinds.IpamState, 'local'))!;
    assert.ok(!JSON.stringify(ipamAfter.spec.snapshot).includes('"b"'), 'b’s remaps released');
  });

  it('refuses a peering whose preshared-key Secret is missing, with a condition and a Warning event; accepts it once the Secret exists', async (t) => {
    const { kube, cli, store, controller, peer, close } = await setup();
    t.after(close);
    controller.start();
    await peer('b', remote('b', { presharedKeySecretRef: { name: 'weft-psk-b' } }));
    const refused = await until('refused for the Secret', async () => {
      const p = await cli.get<Peering>(Kinds.Peering, 'b');
      return p?.status?.phase === 'Error' ? p : undefined;
    });
    assert.equal(refused.status!.reason, 'SecretNotFound');
    assert.equal(await store.get(Kinds.FabricPeer, 'b'), undefined, 'nothing reaches the data plane');
    const events = await until('SecretNotFound event', async () => {
      const list = (await kube.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: 'weft-system' })).items.filter((e) => e.reason === 'SecretNotFound');
      return list.length ? list : undefined;
    });
    assert.equal(events[0]!.involvedObject.name, 'b');
    assert.equal(events[0]!.type, 'Warning');
    // The Secret arrives (core/v1, data base64 of `wg genpsk`): the peering is accepted.
    await kube.makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: 'weft-system',
      body: { metadata: { name: 'weft-psk-b' }, data: { presharedKey: Buffer.from(key()).toString('base64') } },
    });
    const fp = await until('FabricPeer b', () => store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, 'b'));
    assert.deepEqual(fp.spec.presharedKeySecretRef, { name: 'weft-psk-b' });
  });

  it('picks up Peerings written while it was down', async (t) => {
    const { store, controller, peer, close } = await setup();
    t.after(close);
    await peer('b', remote('b'));
    controller.start();
    await until('FabricPeer b', () => store.get(Kinds.FabricPeer, 'b'));
    await peer('c', remote('c', { remotePodCIDR: '10.2.0.0/16', remoteExternalCIDR: '10.3.0.0/24' }));
    const c = await until('FabricPeer c', () => store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, 'c'));
    assert.equal(c.spec.listenPort, 51821);
  });

  it('survives a watch expiring (410 Gone)', { skip: skipOnReal('compacts the history and ends every watch on demand') }, async (t) => {
    const { server, store, controller, peer, close } = await setup();
    t.after(close);
    await peer('b', remote('b'));
    controller.start();
    await until('FabricPeer b', () => store.get(Kinds.FabricPeer, 'b'));
    // History compacted and watches cut: the informer must re-list to see c.
    server.fake!.compactHistory();
    server.fake!.closeWatches();
    await peer('c', remote('c', { remotePodCIDR: '10.2.0.0/16', remoteExternalCIDR: '10.3.0.0/24' }));
    const c = await until('FabricPeer c', () => store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, 'c'));
    assert.equal(c.spec.listenPort, 51821);
  });

  it(
    'a remote re-announcing its node CIDRs replaces them (the controller co-owns no spec field: its finalizer applies are metadata-only)',
    async (t) => {
      const { cli, store, controller, peer, close } = await setup();
      t.after(close);
      controller.start();
      await peer('b', remote('b', { remoteNodeCIDRs: ['192.168.100.0/24'], remoteGatewayNodeIP: '192.168.100.254' }));
      await until('finalizer on b', async () => (await store.get(Kinds.Peering, 'b'))?.metadata.finalizers?.includes(FINALIZER));
      const spec = (await cli.get<Peering>(Kinds.Peering, 'b'))!.spec;
      const after = await peer('b', { ...spec, remoteNodeCIDRs: ['192.168.200.0/24'], remoteGatewayNodeIP: '192.168.200.254' });
      assert.deepEqual(after.spec.remoteNodeCIDRs, ['192.168.200.0/24']);
    },
  );

  it('makes no API write while nothing changes: comparisons are by data, not by key order', async (t) => {
    const { server, store, controller, peer, close } = await setup();
    t.after(close);
    controller.start();
    for (const name of ['b', 'c', 'd']) await peer(name, remote(name));
    await until('three FabricPeers', async () => (await store.list(Kinds.FabricPeer)).items.length === 3 || undefined);
    await until('three Peerings with remaps', async () => (await store.list<Peering>(Kinds.Peering)).items.every((p) => p.status?.podCIDRRemap) || undefined);
    await controller.trigger();
    const before = await server.writeCounts();
    for (let i = 0; i < 5; i++) await controller.trigger();
    const after = await server.writeCounts();
    const changed = [...after].filter(([k, v]) => v !== (before.get(k) ?? 0)).map(([k, v]) => `${k}: ${v - (before.get(k) ?? 0)}`);
    assert.deepEqual(changed, [], 'writes during 5 unchanged resyncs');
  });

  it('an IPAM snapshot with no peers stored as null (as a real server keeps an empty map) does not wedge it', async (t) => {
    const { cli, store, controller, peer, close } = await setup();
    t.after(close);
    await controller.trigger();
    const ipam = await until('IpamState', () => store.get<Resource<IpamStateSpec>>(Kinds.IpamState, 'local'));
    const snapshot = { ...(ipam.spec.snapshot as Record<string, unknown>), peers: null };
    await cli.apply({ kind: Kinds.IpamState, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: { snapshot } });
    await peer('b', remote('b'));
    await controller.trigger();
    assert.ok(await store.get(Kinds.FabricPeer, 'b'), 'the new peering is served');
    assert.deepEqual(controller.readiness(), { ready: true, detail: 'reconciled' });
  });

  it('is not ready, and says why, while IPAM refuses its snapshot', async (t) => {
    const { cli, controller, close } = await setup();
    t.after(close);
    await controller.trigger();
    assert.equal(controller.readiness().ready, true);
    await cli.apply({ kind: Kinds.IpamState, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: { snapshot: { version: 7, externalCIDR: null, peers: {} } } });
    await controller.trigger();
    const r = controller.readiness();
    assert.equal(r.ready, false);
    assert.match(r.detail, /IPAM refused .*unsupported version 7/);
  });
});
