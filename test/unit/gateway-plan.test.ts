import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planGateway, probeSource, probeTarget, validatePeer, validatePeers, PlanError } from '../../src/gateway/plan.ts';
import { acceptPeers } from '../../src/gateway/validate.ts';
import type { GatewayPlanInput } from '../../src/gateway/plan.ts';
import { nftTableName, nftTableText } from '../../src/gateway/nat.ts';
import type { FabricPeerSpec } from '../../src/control/resources.ts';
import { clusterA, EXTERNAL_A, nodesA, peerB, peerC, podsA } from './fabric-fixtures.ts';
import { xorshiftRandom } from './helpers.ts';

function input(extra: Partial<GatewayPlanInput> = {}): GatewayPlanInput {
  return { cluster: clusterA(), externalCIDR: EXTERNAL_A, nodes: nodesA(), pods: podsA(), peers: [peerB(), peerC()], underlayDev: 'eth0', ...extra };
}

function planError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PlanError, `expected a PlanError, got ${String(err)}`);
    assert.ok(err.reasons.length > 0);
    return err.reasons.join('\n');
  }
  assert.fail('expected the plan to be refused');
}

/** A deterministic shuffle (the shared seeded PRNG), so a failure reproduces. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rand = xorshiftRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('three-cluster mesh from A: one tunnel per peer with distinct interface, port, mark and table', () => {
  const plan = planGateway(input());
  assert.deepEqual(plan.wireguard, [
    {
      interfaceName: 'wg-b',
      listenPort: 51820,
      mtu: 1440, // IPv4 WAN: 1500 - 60
      peer: {
        publicKey: peerB().remotePublicKey,
        endpoint: { host: '203.0.113.2', port: 51820 },
        allowedIPs: ['10.0.0.0/16', '10.201.0.0/24'], // the REAL remote ranges
        persistentKeepalive: 25,
      },
    },
    {
      interfaceName: 'wg-c',
      listenPort: 51821,
      mtu: 1420, // IPv6 WAN: 1500 - 80
      peer: {
        publicKey: peerC().remotePublicKey,
        endpoint: { host: '2001:db8::3', port: 51820 },
        allowedIPs: ['10.0.0.0/16', '10.202.0.0/24'],
        persistentKeepalive: 25,
      },
    },
  ]);
  const k = plan.kernel;
  assert.deepEqual(k.rules, [
    { priority: 1000, table: 1900, fwmark: 0x1000 },
    { priority: 1001, table: 1901, fwmark: 0x1001 },
    { priority: 1500, table: 1800, iif: 'wg-b' },
    { priority: 1501, table: 1800, iif: 'wg-c' },
  ]);
  assert.deepEqual(
    k.routes.filter((r) => r.table === 1900 || r.table === 1901),
    [
      { table: 1900, dst: '0.0.0.0/0', dev: 'wg-b' },
      { table: 1901, dst: '0.0.0.0/0', dev: 'wg-c' },
    ],
  );
  assert.deepEqual(
    k.nftTables.map((t) => [t.family, t.name]),
    [
      ['ip', 'weft_b'],
      ['ip', 'weft_cluster_c'],
    ],
  );
});

test('VXLAN link of the gateway: no remote, every other node in the flood list', () => {
  const k = planGateway(input()).kernel;
  assert.deepEqual(k.links, [
    {
      kind: 'vxlan',
      name: 'weft-vx',
      id: 4242,
      port: 4789,
      local: '192.168.100.254',
      dev: 'eth0',
      mtu: 1450,
      addresses: ['100.126.100.254/16'],
      fdb: ['192.168.100.11', '192.168.100.12'],
    },
  ]);
  assert.ok(!('remote' in k.links[0]!));
});

test('routes to local pods: one per node podCIDR, a /32 only for the pod outside its node podCIDR', () => {
  const k = planGateway(input()).kernel;
  const fabric = { dev: 'weft-vx', onlink: true };
  assert.deepEqual(
    k.routes.filter((r) => r.table === 'main' && r.dev === 'weft-vx'),
    [
      { table: 'main', dst: '10.0.1.0/24', via: '100.126.100.11', ...fabric },
      { table: 'main', dst: '10.0.2.0/24', via: '100.126.100.12', ...fabric },
      { table: 'main', dst: '10.0.9.9/32', via: '100.126.100.12', ...fabric },
    ],
  );
  // Nothing for the gateway's own node (10.0.254.0/24), host-network, pending or IPv6 pod CIDRs.
  assert.ok(!k.routes.some((r) => r.dst.startsWith('10.0.254.') || r.dst.startsWith('192.168.100.11/') && r.table === 'main'));
  assert.ok(!k.routes.some((r) => r.dst.includes(':')));
});

test('a pod whose IP another node podCIDR covers gets a /32 to its own node', () => {
  const pods = [...podsA(), { name: 'moved', nodeName: 'n1', podIP: '10.0.2.50' }, { name: 'ongw', nodeName: 'n2', podIP: '10.0.254.9' }];
  const main = planGateway(input({ pods })).kernel.routes.filter((r) => r.table === 'main' && r.dev === 'weft-vx');
  assert.deepEqual(
    main.filter((r) => r.dst.endsWith('/32')).map((r) => [r.dst, r.via]),
    [
      ['10.0.2.50/32', '100.126.100.11'],
      ['10.0.9.9/32', '100.126.100.12'],
      ['10.0.254.9/32', '100.126.100.12'],
    ],
  );
});

test('the gateway reaches nodes over the fabric for traffic from the tunnels (table 1800)', () => {
  const k = planGateway(input()).kernel;
  assert.deepEqual(
    k.routes.filter((r) => r.table === 1800),
    [
      { table: 1800, dst: '192.168.100.11/32', via: '100.126.100.11', dev: 'weft-vx', onlink: true },
      { table: 1800, dst: '192.168.100.12/32', via: '100.126.100.12', dev: 'weft-vx', onlink: true },
    ],
  );
});

test("the gateway's own traffic to the remaps has a route (source: its node IP)", () => {
  const k = planGateway(input()).kernel;
  assert.deepEqual(
    k.routes.filter((r) => r.table === 'main' && r.dev !== 'weft-vx'),
    [
      { table: 'main', dst: '10.70.0.0/16', dev: 'wg-b', src: '192.168.100.254' },
      { table: 'main', dst: '10.71.0.0/16', dev: 'wg-c', src: '192.168.100.254' },
      { table: 'main', dst: '10.202.0.0/24', dev: 'wg-c', src: '192.168.100.254' },
      { table: 'main', dst: '10.203.0.0/24', dev: 'wg-b', src: '192.168.100.254' },
    ],
  );
});

test('nft tables hold the exact prefix NAT, marking and MSS statements', () => {
  const [b, c] = planGateway(input()).kernel.nftTables;
  const want: Array<[string, string[]]> = [
    [
      b!.body,
      [
        'iifname "weft-vx" ip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16',
        'iifname "weft-vx" ip daddr 10.203.0.0/24 dnat ip prefix to 10.201.0.0/24',
        'iifname "wg-b" ip daddr 10.200.0.0/24 dnat ip prefix to 192.168.100.0/24',
        'ip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16',
        'iifname "wg-b" ip saddr 10.0.0.0/16 snat ip prefix to 10.70.0.0/16',
        'iifname "wg-b" ip saddr 10.201.0.0/24 snat ip prefix to 10.203.0.0/24',
        'oifname "wg-b" ip saddr 192.168.100.0/24 snat ip prefix to 10.200.0.0/24',
        'oifname "wg-b" ip saddr 100.126.100.0/24 snat ip prefix to 10.200.0.0/24',
        'iifname "weft-vx" ip daddr { 10.70.0.0/16, 10.203.0.0/24 } ct mark set 0x00001000',
        'iifname "wg-b" ct mark set 0x00001000',
        'iifname != "wg-b" ct mark 0x00001000 meta mark set ct mark',
        'ct mark 0x00001000 meta mark set ct mark',
        'iifname "weft-vx" ip daddr { 10.70.0.0/16, 10.203.0.0/24 } ct zone set 1900',
        'iifname "wg-b" ct zone set 1900',
        'oifname "wg-b" tcp flags syn tcp option maxseg size set rt mtu',
        'iifname "wg-b" tcp flags syn tcp option maxseg size set rt mtu',
        'type nat hook prerouting priority dstnat',
        'type nat hook postrouting priority srcnat',
        'type route hook output priority mangle',
      ],
    ],
    [
      c!.body,
      [
        'iifname "weft-vx" ip daddr 10.71.0.0/16 dnat ip prefix to 10.0.0.0/16',
        'iifname "weft-vx" ip daddr 10.202.0.0/24 dnat ip prefix to 10.202.0.0/24',
        'iifname "wg-c" ip daddr 10.200.0.0/24 dnat ip prefix to 192.168.100.0/24',
        'iifname "wg-c" ip saddr 10.0.0.0/16 snat ip prefix to 10.71.0.0/16',
        'iifname != "wg-c" ct mark 0x00001001 meta mark set ct mark',
        'ct zone set 1901',
      ],
    ],
  ];
  for (const [body, lines] of want) for (const line of lines) assert.ok(body.includes(line), `missing: ${line}\n${body}`);
  // Never a range NAT, and a packet from the tunnel never gets the mark that routes into it.
  for (const t of [b!, c!]) {
    assert.ok(!/dnat to|snat to/.test(t.body));
    assert.ok(!/^\s*ct mark 0x[0-9a-f]+ meta mark set ct mark$/m.test(t.body.split('chain mark_output')[0]!));
  }
});

test('sysctls: forwarding on, reverse-path checks off everywhere translated sources arrive', () => {
  assert.deepEqual(planGateway(input()).kernel.sysctls, {
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.default.rp_filter': '0',
    'net.ipv4.conf.weft-vx.rp_filter': '0',
    'net.ipv4.conf.wg-b.rp_filter': '0',
    'net.ipv4.conf.wg-c.rp_filter': '0',
    'net.ipv4.ip_forward': '1',
  });
});

test('gateway without peers: fabric and pod routes only', () => {
  const k = planGateway(input({ peers: [] })).kernel;
  assert.equal(k.links.length, 1);
  assert.deepEqual(k.rules, []);
  assert.deepEqual(k.nftTables, []);
  assert.ok(k.routes.every((r) => r.dev === 'weft-vx'));
});

test('a peer whose endpoint is not known yet is planned with the worst-case MTU', () => {
  const plan = planGateway(input({ peers: [{ ...peerB(), remoteEndpoint: { host: '', port: 0 } }] }));
  assert.equal(plan.wireguard[0]!.mtu, 1420);
  assert.deepEqual(plan.wireguard[0]!.peer.endpoint, { host: '', port: 0 });
});

test('determinism: shuffled inputs give a byte-identical plan', () => {
  const reference = JSON.stringify(planGateway(input()));
  for (let seed = 1; seed <= 25; seed++) {
    const nodes = shuffled(nodesA(), seed).map((n) => ({ ...n, podCIDRs: shuffled(n.podCIDRs, seed + 100) }));
    const plan = planGateway(input({ nodes, pods: shuffled(podsA(), seed + 200), peers: shuffled([peerB(), peerC()], seed + 300) }));
    assert.equal(JSON.stringify(plan), reference, `seed ${seed}`);
  }
});

test('probe target: the remote gateway node IP through the remote external CIDR and our remap', () => {
  assert.equal(probeTarget(peerB(), '192.168.100.254', '192.168.100.0/24'), '10.203.0.254');
  assert.equal(probeTarget(peerC(), '192.168.100.254', '192.168.100.0/24'), '10.202.0.254');
  assert.throws(() => probeTarget(peerB(), '192.168.100.254', '192.168.0.0/16'), /prefix lengths differ/);
  assert.throws(() => probeTarget(peerB(), '192.168.1.254', '192.168.100.0/24'), /not inside/);
  assert.equal(probeSource(clusterA()), '192.168.100.254');
});

test('nft table names are sanitised and bounded', () => {
  assert.equal(nftTableName('b'), 'weft_b');
  assert.equal(nftTableName('cluster-c.eu'), 'weft_cluster_c_eu');
  const long = nftTableName('x'.repeat(200));
  assert.ok(long.length <= 64 && long.startsWith('weft_xxx'));
  assert.notEqual(nftTableName('x'.repeat(200)), nftTableName('x'.repeat(201)));
});

test('acceptPeers: a broken or hostile FabricPeer is left out with its reasons; the others are planned', () => {
  const hijack = { ...peerC(), remoteClusterId: 'evil', podCIDRRemap: '8.8.8.0/24', remotePodCIDR: '8.8.8.0/24', interfaceName: 'wg-e', listenPort: 51822, slot: 2, mark: 0x1002, table: 1902 };
  const clash = { ...peerC(), remoteClusterId: 'twin', interfaceName: 'wg-b', podCIDRRemap: '10.72.0.0/16', externalCIDRRemap: '10.204.0.0/24', listenPort: 51823, slot: 3, mark: 0x1003, table: 1903 };
  const { accepted, refused } = acceptPeers([peerB(), hijack, clash, peerC()], clusterA(), EXTERNAL_A);
  assert.deepEqual(accepted.map((p) => p.remoteClusterId), ['b', 'cluster-c']);
  assert.match(refused.join('\n'), /peering "evil": podCIDRRemap 8\.8\.8\.0\/24 lies outside the remap pools/);
  assert.match(refused.join('\n'), /peering "twin": interfaceName "wg-b" is used by peering "b" too/);
  // The plan of what is left is the plan of the good peers alone.
  assert.deepEqual(planGateway(input({ peers: accepted })), planGateway(input({ peers: [peerB(), peerC()] })));
  // The pools the ClusterNetwork names are the ones checked.
  assert.match(acceptPeers([peerB()], { ...clusterA(), remapPools: ['100.64.0.0/10'] }, EXTERNAL_A).refused.join('\n'), /10\.70\.0\.0\/16 lies outside the remap pools \(100\.64\.0\.0\/10\)/);
});

test('validation: good peers have no reasons', () => {
  assert.deepEqual(validatePeer(peerB(), clusterA(), EXTERNAL_A), []);
  assert.deepEqual(validatePeers([peerB(), peerC()], clusterA(), EXTERNAL_A), []);
  // The peer itself in `others` is not a collision.
  const b = peerB();
  assert.deepEqual(validatePeer(b, clusterA(), EXTERNAL_A, [b, peerC()]), []);
});

test('validation: every collision and malformed field is refused with a reason', () => {
  const bad = (change: Partial<FabricPeerSpec>, reason: RegExp, peers?: FabricPeerSpec[]) => {
    const list = peers ?? [peerB(), { ...peerC(), ...change }];
    const text = planError(() => planGateway(input({ peers: list })));
    assert.match(text, reason);
    assert.match(validatePeers(list, clusterA(), EXTERNAL_A).join('\n'), reason);
  };
  bad({ podCIDRRemap: '10.71.0.0/33' }, /invalid prefix length/);
  bad({ remotePodCIDR: 'banana' }, /remotePodCIDR "banana"/);
  bad({ externalCIDRRemap: '10.202.0.1/24' }, /host bits set/);
  bad({ podCIDRRemap: '10.0.0.0/16' }, /podCIDRRemap 10\.0\.0\.0\/16 overlaps the local pod CIDR/);
  bad({ externalCIDRRemap: '10.200.0.0/24' }, /overlaps our external CIDR/);
  bad({ externalCIDRRemap: '192.168.100.0/24' }, /overlaps the local node CIDR/);
  bad({ podCIDRRemap: '10.100.0.0/16' }, /overlaps the local service CIDR/);
  bad({ podCIDRRemap: '100.126.0.0/16' }, /overlaps the fabric CIDR/);
  bad({ podCIDRRemap: '10.70.0.0/16' }, /podCIDRRemap 10\.70\.0\.0\/16 overlaps peering "b"'s podCIDRRemap/);
  bad({ externalCIDRRemap: '10.203.0.0/24' }, /overlaps peering "b"'s externalCIDRRemap/);
  bad({ podCIDRRemap: '10.71.0.0/17' }, /differ in size/);
  bad({ mark: 0x1000 }, /mark 4096 is used by peering "b" too/);
  bad({ table: 1900 }, /table 1900 is used by peering "b" too/);
  bad({ table: 254 }, /table 254 is not usable/);
  bad({ table: 1800 }, /table 1800 is not usable/);
  bad({ mark: 0 }, /mark 0 is not/);
  bad({ interfaceName: 'wg-b' }, /interfaceName "wg-b" is used by peering "b" too/);
  bad({ interfaceName: 'weft-cluster-c-x' }, /longer than 15 characters/);
  bad({ interfaceName: 'wg c' }, /may only hold/);
  bad({ interfaceName: 'weft-vx' }, /reserved/);
  bad({ listenPort: 51820 }, /listenPort 51820 is used by peering "b" too/);
  bad({ listenPort: 4789 }, /VXLAN port/);
  bad({ listenPort: 70000 }, /not a UDP port/);
  bad({ remotePublicKey: 'nope' }, /not a base64 WireGuard public key/);
  bad({ remoteEndpoint: { host: 'gw.example.com', port: 51820 } }, /not an IP address/);
  bad({ remoteClusterId: 'b' }, /remoteClusterId is used by another peering/);
  bad({}, /nft table name weft_x_y/, [{ ...peerB(), remoteClusterId: 'x-y' }, { ...peerC(), remoteClusterId: 'x_y' }]);
});

test('validation: cluster, node and pod problems refuse the gateway plan', () => {
  assert.match(planError(() => planGateway(input({ externalCIDR: '10.200.0.0/16' }))), /differ in size/);
  assert.match(planError(() => planGateway(input({ externalCIDR: '10.0.200.0/24' }))), /overlaps/);
  assert.match(planError(() => planGateway(input({ cluster: { ...clusterA(), fabricCIDR: '100.126.0.0/25' } }))), /smaller than node CIDR/);
  assert.match(planError(() => planGateway(input({ cluster: { ...clusterA(), wanMtu: 600 } }))), /WireGuard MTU/);
  assert.match(planError(() => planGateway(input({ cluster: { ...clusterA(), gatewayNodeIP: '10.9.9.9' } }))), /in none of the node CIDRs/);
  const nodes = [...nodesA(), { name: 'n3', internalIP: '192.168.100.11', podCIDRs: [] }];
  assert.match(planError(() => planGateway(input({ nodes }))), /same internalIP 192\.168\.100\.11/);
  assert.match(planError(() => planGateway(input({ nodes: [...nodesA(), { name: 'n4', internalIP: '172.16.0.4', podCIDRs: [] }] }))), /in none of the node CIDRs/);
  assert.match(planError(() => planGateway(input({ nodes: [...nodesA(), { name: 'n5', internalIP: '192.168.100.15', podCIDRs: ['10.0.5.0/33'] }] }))), /podCIDR/);
  assert.match(planError(() => planGateway(input({ underlayDev: 'wg-b' }))), /underlay device/);
});

function nftAvailable(): string | undefined {
  try {
    execFileSync('nft', ['--version'], { stdio: 'pipe' });
  } catch {
    return 'nft is not installed';
  }
  if (process.getuid?.() !== 0) return 'nft -c needs CAP_NET_ADMIN';
  return undefined;
}

test('nft -c accepts every generated table (check mode only)', { skip: nftAvailable() }, () => {
  const plan = planGateway(input());
  const noPeersYet = planGateway(input({ peers: [{ ...peerB(), remoteEndpoint: { host: '', port: 0 } }] }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-nft-'));
  try {
    const tables = [...plan.kernel.nftTables, ...noPeersYet.kernel.nftTables];
    tables.forEach((t, i) => {
      const file = path.join(dir, `t${i}.nft`);
      fs.writeFileSync(file, nftTableText(t));
      execFileSync('nft', ['-c', '-f', file], { stdio: 'pipe' });
    });
    // All of one gateway's tables in one transaction, as an atomic apply would send them.
    const all = path.join(dir, 'all.nft');
    fs.writeFileSync(all, plan.kernel.nftTables.map(nftTableText).join('\n'));
    execFileSync('nft', ['-c', '-f', all], { stdio: 'pipe' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
