// The peering controller on the in-memory store: decisions (remaps, slots), their persistence across
// a controller restart, refusals with reasons, and finalizer-driven teardown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/index.ts';
import type { Resource } from '../../src/store/types.ts';
import { PeeringController, FINALIZER } from '../../src/control/controller.ts';
import { API_VERSION, Kinds, type ClusterNetworkSpec, type FabricPeerSpec, type PeeringSpec, type PeeringStatus } from '../../src/control/resources.ts';
import { clusterA, randomPublicKey, remotePeering } from './fabric-fixtures.ts';
import { silentLogger } from '../../src/log.ts';

const key = randomPublicKey;
const ownKey = key();
const remote = remotePeering;
const cluster: ClusterNetworkSpec = { ...clusterA(), gatewayEndpoint: { host: '203.0.113.1', port: 0 } };

async function setup() {
  const store = new MemoryStore();
  await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: cluster });
  await store.updateStatus(Kinds.ClusterNetwork, 'local', { gatewayPublicKey: ownKey });
  const controller = new PeeringController(store, { log: silentLogger, interfacePrefix: 'wg-a' });
  const peer = (name: string, spec: PeeringSpec) => store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name }, spec });
  const fabric = async (name: string) => (await store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, name))?.spec;
  const status = async (name: string) => (await store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, name))?.status;
  return { store, controller, peer, fabric, status };
}

test('each peering gets a stable slot and a remap that avoids local ranges and other remaps', async () => {
  const { store, controller, peer, fabric, status } = await setup();
  await peer('b', remote('b'));
  await peer('c', remote('c'));
  await controller.reconcile();
  const b = (await fabric('b'))!;
  const c = (await fabric('c'))!;
  assert.deepEqual([b.slot, c.slot], [0, 1]);
  assert.deepEqual([b.listenPort, c.listenPort], [51820, 51821]);
  assert.notEqual(b.mark, c.mark);
  assert.notEqual(b.table, c.table);
  assert.equal(b.interfaceName, 'wg-a0', 'named after its slot');
  assert.notEqual(b.podCIDRRemap, c.podCIDRRemap);
  for (const remap of [b.podCIDRRemap, c.podCIDRRemap]) assert.notEqual(remap, '10.0.0.0/16', 'the local pod CIDR is never a remap');
  assert.equal((await status('b'))!.podCIDRRemap, b.podCIDRRemap);
  assert.equal((await status('b'))!.phase, 'Connecting', 'valid, not yet connected');
  assert.ok((await store.get(Kinds.Peering, 'b'))!.metadata.finalizers!.includes(FINALIZER));
  // The probe target is the remote gateway's node IP inside the remote external CIDR as seen here.
  assert.ok(b.probeTarget.endsWith('.254'));
  assert.ok((await store.get<Resource<unknown, { externalCIDR?: string }>>(Kinds.ClusterNetwork, 'local'))!.status!.externalCIDR);
});

test('decisions survive a controller restart (IPAM snapshot and slots are persisted)', async () => {
  const { store, controller, peer, fabric } = await setup();
  await peer('b', remote('b'));
  await peer('c', remote('c'));
  await controller.reconcile();
  const before = [await fabric('b'), await fabric('c')];
  const restarted = new PeeringController(store, { log: silentLogger, interfacePrefix: 'wg-a' });
  await restarted.reconcile();
  assert.deepEqual([await fabric('b'), await fabric('c')], before);
});

test('invalid, self and duplicate peerings are refused with a reason and get no FabricPeer', async () => {
  const { controller, peer, fabric, status } = await setup();
  await peer('b', remote('b'));
  await peer('bad', remote('x', { remotePodCIDR: '10.0.0.1/16', remotePublicKey: 'nope' }));
  await peer('self', remote('a'));
  await peer('twice', remote('b'));
  await peer('mine', remote('y', { remotePublicKey: ownKey }));
  await controller.reconcile();
  const bad = (await status('bad'))!;
  assert.equal(bad.phase, 'Error');
  assert.match(bad.message!, /remotePodCIDR 10\.0\.0\.1\/16/);
  assert.match(bad.message!, /remotePublicKey/);
  assert.match((await status('self'))!.message!, /this cluster's own id/);
  assert.match((await status('twice'))!.message!, /already connects to cluster b/);
  assert.match((await status('mine'))!.message!, /own gateway key/);
  for (const n of ['bad', 'self', 'twice', 'mine']) assert.equal(await fabric(n), undefined, `${n}: nothing for the data plane`);
  assert.ok(await fabric('b'));
});

test('deleting a peering tears down its FabricPeer, releases its remap and slot, then lets the peering go', async () => {
  const { store, controller, peer, fabric } = await setup();
  await peer('b', remote('b'));
  await controller.reconcile();
  const b = (await fabric('b'))!;
  await store.delete(Kinds.Peering, 'b');
  assert.ok((await store.get(Kinds.Peering, 'b'))!.metadata.deletionTimestamp, 'held by the finalizer');
  await controller.reconcile();
  assert.equal(await fabric('b'), undefined);
  assert.equal(await store.get(Kinds.Peering, 'b'), undefined, 'finalizer removed, object gone');
  await peer('c', remote('c'));
  await controller.reconcile();
  const c = (await fabric('c'))!;
  assert.equal(c.slot, b.slot, 'the slot is free again');
  assert.equal(c.podCIDRRemap, b.podCIDRRemap, 'the remap is free again');
});
