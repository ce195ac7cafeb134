import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planAgent } from '../../src/fabric/plan.ts';
import { overlayIP, overlayImage, overlayImageClashes, OverlayError } from '../../src/fabric/overlay.ts';
import { PlanError } from '../../src/gateway/validate.ts';
import type { FabricPeerSpec } from '../../src/control/resources.ts';
import { clusterA, EXTERNAL_A, peerB, peerC } from './fabric-fixtures.ts';

const node = { name: 'n1', internalIP: '192.168.100.11', underlayDev: 'eth0' };

function plan(peers: FabricPeerSpec[], extra: Partial<Parameters<typeof planAgent>[0]> = {}) {
  return planAgent({ cluster: clusterA(), externalCIDR: EXTERNAL_A, node, peers, ...extra });
}

function planError(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PlanError, `expected a PlanError, got ${String(err)}`);
    return err.reasons;
  }
  assert.fail('expected the plan to be refused');
}

test('overlay address keeps the node IP bits below the fabric prefix', () => {
  assert.equal(overlayIP('192.168.100.11', '192.168.100.0/24', '100.126.0.0/16'), '100.126.100.11');
  assert.equal(overlayIP('192.168.100.254', '192.168.100.0/24', '100.126.0.0/16'), '100.126.100.254');
  // Fabric as large as the node CIDR: the node CIDR's host bits are all that is kept.
  assert.equal(overlayIP('192.168.100.11', '192.168.100.0/24', '100.126.7.0/24'), '100.126.7.11');
  assert.equal(overlayIP('10.1.2.3', '10.0.0.0/8', '100.0.0.0/8'), '100.1.2.3');
  assert.equal(overlayImage('192.168.100.0/24', '100.126.0.0/16'), '100.126.100.0/24');
});

test('overlay address: fabric smaller than the node CIDR, node outside its CIDR, bad input', () => {
  assert.throws(() => overlayIP('192.168.100.11', '192.168.100.0/24', '100.126.0.0/25'), (e: unknown) => e instanceof OverlayError && /smaller than node CIDR/.test(e.message));
  assert.throws(() => overlayIP('192.168.101.11', '192.168.100.0/24', '100.126.0.0/16'), /not in node CIDR/);
  assert.throws(() => overlayIP('192.168.100.x', '192.168.100.0/24', '100.126.0.0/16'), OverlayError);
  assert.throws(() => overlayIP('192.168.100.11', '192.168.100.0/24', '100.126.0.1/16'), /host bits set/);
  assert.throws(() => overlayIP('192.168.100.0', '192.168.100.0/24', '100.126.0.0/16'), /network address of node CIDR/);
  assert.throws(() => overlayIP('192.168.100.255', '192.168.100.0/24', '100.126.0.0/16'), /broadcast address of node CIDR/);
});

test('node CIDRs whose overlay images overlap are reported', () => {
  assert.deepEqual(overlayImageClashes(['192.168.100.0/24', '192.168.101.0/24'], '100.126.0.0/16'), []);
  const clash = overlayImageClashes(['192.168.100.0/24', '172.16.100.0/24'], '100.126.0.0/16');
  assert.equal(clash.length, 1);
  assert.match(clash[0]!, /100\.126\.100\.0\/24/);
});

test('agent with no peers: the link and the rule exist, the table is empty', () => {
  const k = plan([]);
  assert.deepEqual(k.links, [
    {
      kind: 'vxlan',
      name: 'weft-vx',
      id: 4242,
      port: 4789,
      local: '192.168.100.11',
      remote: '192.168.100.254',
      dev: 'eth0',
      mtu: 1450,
      addresses: ['100.126.100.11/16'],
    },
  ]);
  assert.deepEqual(k.routes, []);
  assert.deepEqual(k.rules, [{ priority: 1800, table: 1800 }]);
  assert.deepEqual(k.nftTables, []);
  assert.deepEqual(k.sysctls, { 'net.ipv4.conf.weft-vx.rp_filter': '2', 'net.ipv4.ip_forward': '1' });
  assert.ok(!('net.ipv4.conf.all.rp_filter' in k.sysctls), 'all.rp_filter is left alone');
});

test('agent with one peer: both remaps via the gateway overlay, path MTU, node IP as source', () => {
  const k = plan([peerB()]);
  const common = { table: 1800, via: '100.126.100.254', dev: 'weft-vx', onlink: true, mtu: 1440, src: '192.168.100.11' };
  assert.deepEqual(k.routes, [
    { ...common, dst: '10.70.0.0/16' },
    { ...common, dst: '10.203.0.0/24' },
  ]);
  assert.deepEqual(k.rules, [{ priority: 1800, table: 1800 }]);
});

test('agent with two peers: MTU per WAN family (B over IPv4, C over IPv6), sorted routes', () => {
  const k = plan([peerC(), peerB()]);
  assert.deepEqual(
    k.routes.map((r) => [r.dst, r.mtu]),
    [
      ['10.70.0.0/16', 1440],
      ['10.71.0.0/16', 1420],
      ['10.202.0.0/24', 1420],
      ['10.203.0.0/24', 1440],
    ],
  );
  assert.ok(k.routes.every((r) => r.table === 1800 && r.via === '100.126.100.254' && r.onlink === true));
  assert.equal(k.rules.length, 1);
  // A jumbo underlay does not raise the route MTU above the tunnel's.
  const jumbo = planAgent({ cluster: { ...clusterA(), underlayMtu: 9000 }, externalCIDR: EXTERNAL_A, node, peers: [peerB()] });
  assert.equal(jumbo.links[0]!.mtu, 8950);
  assert.ok(jumbo.routes.every((r) => r.mtu === 1440));
});

test('agent plans are deterministic whatever the peer order', () => {
  const a = JSON.stringify(plan([peerB(), peerC()]));
  const b = JSON.stringify(plan([peerC(), peerB()]));
  assert.equal(a, b);
});

test('agent refuses the gateway node, unknown node IPs and colliding peers', () => {
  assert.match(planError(() => plan([], { node: { ...node, internalIP: '192.168.100.254' } })).join('\n'), /hosts the gateway/);
  assert.match(planError(() => plan([], { node: { ...node, internalIP: '192.168.7.1' } })).join('\n'), /in none of the node CIDRs/);
  assert.match(planError(() => plan([], { node: { ...node, underlayDev: '' } })).join('\n'), /no underlay device/);
  assert.match(planError(() => plan([peerB(), { ...peerC(), podCIDRRemap: '10.70.0.0/16' }])).join('\n'), /overlaps peering "b"'s podCIDRRemap/);
  assert.match(planError(() => plan([], { externalCIDR: '10.200.0.0/16' })).join('\n'), /differ in size/);
});
