// The controller against hostile or broken Peerings (the trust boundary between clusters): an
// announcement can never steer traffic outside the remap pools, and one bad Peering never stops
// the controller from serving, and deleting, the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/index.ts';
import type { ApplyInput, Resource } from '../../src/store/types.ts';
import { PeeringController } from '../../src/control/controller.ts';
import { API_VERSION, Kinds, type ClusterNetworkSpec, type FabricPeerSpec, type PeeringSpec, type PeeringStatus } from '../../src/control/resources.ts';
import { conditionOf } from '../../src/control/status.ts';
import { contains, parseCidr } from '../../src/ipam/cidr.ts';
import { DEFAULT_POOLS } from '../../src/ipam/index.ts';
import { clusterA, randomPublicKey, remotePeering as remote } from './fabric-fixtures.ts';
import { silentLogger } from '../../src/log.ts';

const cluster: ClusterNetworkSpec = { ...clusterA(), gatewayEndpoint: { host: '203.0.113.1', port: 0 } };

/** A memory store whose FabricPeer writes for the names in `failFor` fail (a store outage for one object). */
class FlakyStore extends MemoryStore {
  readonly failFor = new Set<string>();
  override async apply<R extends Resource>(obj: ApplyInput): Promise<R> {
    if (obj.kind === Kinds.FabricPeer && this.failFor.has(obj.metadata.name)) throw new Error(`injected: cannot write FabricPeer ${obj.metadata.name}`);
    return super.apply<R>(obj);
  }
}

async function setup(spec: ClusterNetworkSpec = cluster) {
  const store = new FlakyStore();
  await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec });
  await store.updateStatus(Kinds.ClusterNetwork, 'local', { gatewayPublicKey: randomPublicKey() });
  const controller = new PeeringController(store, { log: silentLogger });
  const peer = (name: string, s: PeeringSpec) => store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name }, spec: s });
  const fabric = async (name: string) => (await store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, name))?.spec;
  const status = async (name: string) => (await store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, name))?.status;
  return { store, controller, peer, fabric, status };
}

const inDefaultPools = (cidr: string) => DEFAULT_POOLS.some((p) => contains(parseCidr(p), parseCidr(cidr)));

test('a remote announcing public ranges gets them placed in the pools: no route to 8.8.8.8 or a cloud range', async () => {
  const { controller, peer, fabric, status } = await setup();
  await peer('dns', remote('dns', { remotePodCIDR: '8.8.8.0/24', remoteExternalCIDR: '52.94.0.0/24' }));
  await controller.reconcile();
  const f = (await fabric('dns'))!;
  assert.ok(f, 'served');
  for (const remap of [f.podCIDRRemap, f.externalCIDRRemap]) assert.ok(inDefaultPools(remap), `${remap} lies in the pools`);
  assert.notEqual(f.podCIDRRemap, '8.8.8.0/24');
  assert.equal((await status('dns'))!.podCIDRRemap, f.podCIDRRemap);
});

test('an oversized announcement is refused with a reason; the good peering beside it is served', async () => {
  const { controller, peer, fabric, status } = await setup();
  await peer('b', remote('b'));
  await peer('big', remote('big', { remotePodCIDR: '8.0.0.0/8' }));
  await controller.reconcile();
  assert.ok(await fabric('b'));
  assert.equal(await fabric('big'), undefined);
  const v = conditionOf(await status('big'), 'Valid')!;
  assert.equal(v.reason, 'TooLarge');
  assert.match(v.message, /8\.0\.0\.0\/8 is larger than this cluster accepts/);
});

test('the pools and the size limit come from the ClusterNetwork', async () => {
  const { controller, peer, fabric, status } = await setup({ ...cluster, remapPools: ['100.64.0.0/10', '172.16.0.0/12'], maxRemoteCIDRSize: 13 });
  await peer('b', remote('b', { remotePodCIDR: '10.128.0.0/13' }));
  await peer('c', remote('c', { remotePodCIDR: '10.192.0.0/12' }));
  await controller.reconcile();
  const f = (await fabric('b'))!;
  for (const remap of [f.podCIDRRemap, f.externalCIDRRemap]) assert.ok(['100.64.0.0/10', '172.16.0.0/12'].some((p) => contains(parseCidr(p), parseCidr(remap))), `${remap} in the configured pools`);
  assert.equal(conditionOf(await status('c'), 'Valid')!.reason, 'TooLarge', 'a /12 is more than this cluster takes (/13)');
});

test('a gateway node IP outside the first node CIDR is refused (it used to stop every reconcile); the others are served and deletable', async () => {
  const { store, controller, peer, fabric, status } = await setup();
  await peer('b', remote('b'));
  await peer('odd', remote('odd', { remoteGatewayNodeIP: '192.168.200.1' }));
  await peer('size', remote('size', { remoteExternalCIDR: '10.1.0.0/16' }));
  await controller.reconcile();
  assert.ok(await fabric('b'), 'b served');
  assert.match(conditionOf(await status('odd'), 'Valid')!.message, /remoteGatewayNodeIP 192\.168\.200\.1 is not in remoteNodeCIDRs\[0\]/);
  assert.match(conditionOf(await status('size'), 'Valid')!.message, /must be the size of remoteNodeCIDRs\[0\]/);
  for (const name of ['odd', 'b']) {
    await store.delete(Kinds.Peering, name);
    await controller.reconcile();
    assert.equal(await store.get(Kinds.Peering, name), undefined, `${name} deleted (finalizer removed)`);
  }
  assert.equal(await fabric('b'), undefined);
});

test('tunnel names come from the slot: ids that agree in their first 15 characters do not clash', async () => {
  const { controller, peer, fabric } = await setup();
  await peer('provider-east-1', remote('provider-east-1'));
  await peer('provider-east-1x', remote('provider-east-1x', { remotePodCIDR: '10.5.0.0/16' }));
  await controller.reconcile();
  const names = [(await fabric('provider-east-1'))!.interfaceName, (await fabric('provider-east-1x'))!.interfaceName];
  assert.deepEqual(names.sort(), ['wg-0', 'wg-1']);
});

test('a Peering not named after its remote cluster is refused (it cannot take over another peering)', async () => {
  const { controller, peer, fabric, status } = await setup();
  await peer('victim', remote('victim'));
  await peer('a-first', remote('victim'));
  await controller.reconcile();
  assert.ok(await fabric('victim'));
  assert.equal(await fabric('a-first'), undefined);
  assert.match(conditionOf(await status('a-first'), 'Valid')!.message, /named after its remote cluster: name a-first but remoteClusterId victim/);
});

test('a failure while serving one peering is shown on it, and the others are still served', async () => {
  const { store, controller, peer, fabric, status } = await setup();
  store.failFor.add('b');
  await peer('b', remote('b'));
  await peer('c', remote('c', { remotePodCIDR: '10.6.0.0/16' }));
  await controller.reconcile();
  assert.ok(await fabric('c'), 'c served after b failed');
  const v = conditionOf(await status('b'), 'Valid')!;
  assert.equal(v.reason, 'InternalError');
  assert.match(v.message, /injected: cannot write FabricPeer b/);
  assert.equal((await status('b'))!.phase, 'Error');
  store.failFor.clear();
  await controller.reconcile();
  assert.ok(await fabric('b'), 'b served once the store works again');
  assert.equal(conditionOf(await status('b'), 'Valid')!.reason, 'Accepted');
});
