// The kernel reconciler against a real kernel, in two test namespaces joined by a veth pair (the
// VXLAN underlay): a full state is applied, re-applying it changes nothing, hand-made drift is
// repaired exactly, single changes stay single, foreign state is left alone, teardown removes all
// of weft's state and only that, the overlay passes traffic, and 55,000 routes reconcile in one go.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetLab } from './harness.ts';
import { readState, reconcile, teardown } from '../../src/kernel/index.ts';
import { KernelStateError, type KernelState, type Ownership, type RouteSpec, type VxlanLink } from '../../src/kernel/types.ts';
import { normaliseRoute, routeToSpec } from '../../src/kernel/routes.ts';
import { normaliseRule, ruleToSpec } from '../../src/kernel/rules.ts';

const owned: Ownership = { linkPrefix: 'weft-', routeProtocol: 250, ruleProtocol: 250, nftPrefix: 'weft' };
const A_UNDERLAY = '192.168.77.1';
const B_UNDERLAY = '192.168.77.2';

const natBody = `
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16
  }
`;
const filterBody = `
  set peers {
    type ipv4_addr
    elements = { 10.0.0.1, 10.0.0.2 }
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr @peers counter accept
  }
  chain output {
    type filter hook output priority filter; policy accept;
    counter
  }
`;

function vxlans(local: string, remote: string, dev: string, overlay: string, p2p: string): VxlanLink[] {
  return [
    { kind: 'vxlan', name: 'weft-vx', id: 42, port: 4789, local, dev, mtu: 1400, addresses: [overlay], fdb: [remote] },
    { kind: 'vxlan', name: 'weft-p2p', id: 43, port: 4790, local, remote, mtu: 1450, addresses: [p2p] },
  ];
}

function stateA(underlayDev: string): KernelState {
  return {
    links: vxlans(A_UNDERLAY, B_UNDERLAY, underlayDev, '100.126.100.1/24', '100.127.0.1/30'),
    routes: [
      { table: 1800, dst: '10.70.0.0/16', via: '100.126.100.2', dev: 'weft-vx' },
      { table: 1800, dst: '10.71.0.0/16', via: '100.126.100.2', dev: 'weft-vx', mtu: 1300 },
      { table: 'main', dst: '10.72.0.0/16', dev: 'weft-vx' },
      { table: 1801, dst: '10.73.0.0/16', via: '100.126.100.2', dev: 'weft-vx', onlink: true },
      { table: 1800, dst: '10.74.0.0/16', dev: 'weft-vx', src: '100.126.100.1' },
      { table: 1800, dst: '10.75.1.2', dev: underlayDev },
      { table: 1800, dst: 'fd00:70::/48', dev: underlayDev },
    ],
    rules: [
      { priority: 1800, table: 1800, fwmark: 0x10, fwmask: 0xff },
      { priority: 1801, table: 1800, to: '10.70.0.0/16' },
      { priority: 1802, table: 1801, from: '10.0.0.0/16', iif: underlayDev },
      { priority: 1803, table: 1800, to: 'fd00:70::/48' },
    ],
    nftTables: [
      { family: 'ip', name: 'weft-nat', body: natBody },
      { family: 'inet', name: 'weft-filter', body: filterBody },
    ],
    sysctls: { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.weft-vx.rp_filter': '2' },
  };
}

const canonRoutes = (rs: RouteSpec[]) => rs.map((r, i) => JSON.stringify(routeToSpec(normaliseRoute(r, `r${i}`)))).sort();
const canonRules = (rs: KernelState['rules']) => rs.map((r, i) => JSON.stringify(ruleToSpec(normaliseRule(r, `r${i}`)))).sort();

describe('kernel reconciler', () => {
  const lab = NetLab.create();
  let nsA: string;
  let nsB: string;
  let ifA: string;
  let ifB: string;
  let desired: KernelState;
  const ip = (ns: string, ...args: string[]) => lab.exec(ns, ['ip', ...args]).then((r) => r.stdout);
  const apply = (state: KernelState = desired) => reconcile(state, { netns: nsA, owned });

  before(async () => {
    nsA = await lab.namespace('ka');
    nsB = await lab.namespace('kb');
    [ifA, ifB] = await lab.veth(nsA, nsB, { a: [`${A_UNDERLAY}/24`, 'fd00:77::1/64'], b: [`${B_UNDERLAY}/24`] });
    desired = stateA(ifA);
    // State weft does not own, some of it in weft's tables and with weft's prefixes.
    await lab.exec(nsA, ['ip', 'route', 'add', '10.80.0.0/16', 'dev', ifA, 'table', '1800']);
    await lab.exec(nsA, ['ip', 'route', 'add', '10.90.0.0/16', 'dev', ifA, 'proto', 'static']);
    await lab.exec(nsA, ['ip', 'rule', 'add', 'priority', '1805', 'to', '10.80.0.0/16', 'table', '1800']);
    await lab.exec(nsA, ['ip', 'link', 'add', 'weft-tun', 'type', 'veth', 'peer', 'name', 'weft-tunp']);
    await lab.exec(nsA, ['nft', '-f', '-'], { input: 'table inet foreign {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n' });
  });
  after(() => lab.cleanup());

  test('a full state is applied and reads back as desired', async () => {
    const report = await apply();
    assert.deepEqual(report.errors, []);
    assert.ok(report.changed.length >= 20, report.changed.join('\n'));
    const got = await readState({ netns: nsA, owned, sysctlKeys: Object.keys(desired.sysctls) });
    const sortFdb = (l: VxlanLink) => ({ ...l, ...(l.fdb ? { fdb: [...l.fdb].sort() } : {}) });
    assert.deepEqual(got.links.map(sortFdb), desired.links.map(sortFdb));
    assert.deepEqual(canonRoutes(got.routes), canonRoutes(desired.routes));
    assert.deepEqual(canonRules(got.rules), canonRules(desired.rules));
    assert.deepEqual(got.nftTables.map((t) => `${t.family} ${t.name}`).sort(), ['inet weft-filter', 'ip weft-nat']);
    assert.match(got.nftTables.find((t) => t.name === 'weft-nat')!.body, /dnat prefix to 10\.0\.0\.0\/16/);
    assert.deepEqual(got.sysctls, desired.sysctls);
  });

  test('re-applying the same state changes nothing', async () => {
    const before = await lab.exec(nsA, ['nft', '-j', 'list', 'tables']);
    for (let i = 0; i < 2; i++) assert.deepEqual(await apply(), { changed: [], errors: [] });
    // Not even a reload of an unchanged nft table: its handle stays the same.
    assert.equal((await lab.exec(nsA, ['nft', '-j', 'list', 'tables'])).stdout, before.stdout);
  });

  test('the VXLAN links pass traffic between the namespaces', async () => {
    const b = await reconcile(
      { links: vxlans(B_UNDERLAY, A_UNDERLAY, ifB, '100.126.100.2/24', '100.127.0.2/30'), routes: [], rules: [], nftTables: [], sysctls: {} },
      { netns: nsB, owned },
    );
    assert.deepEqual(b.errors, []);
    for (const dst of ['100.126.100.2', '100.127.0.2']) {
      const r = await lab.exec(nsA, ['ping', '-c', '3', '-i', '0.2', '-W', '2', dst], { allowFail: true });
      assert.equal(r.code, 0, `ping ${dst}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, / 0% packet loss/);
    }
  });

  test('drift is repaired exactly: a route, a rule, an fdb entry, an nft table, a sysctl', async () => {
    const cases: Array<[string, string[], string[]]> = [
      ['route', ['ip', 'route', 'del', '10.70.0.0/16', 'table', '1800'], ['route add 10.70.0.0/16 table 1800']],
      ['IPv6 route', ['ip', '-6', 'route', 'del', 'fd00:70::/48', 'table', '1800'], ['route add fd00:70::/48 table 1800']],
      ['rule', ['ip', 'rule', 'del', 'priority', '1801'], ['rule add priority 1801 to 10.70.0.0/16 table 1800']],
      ['IPv6 rule', ['ip', '-6', 'rule', 'del', 'priority', '1803'], ['rule add priority 1803 to fd00:70::/48 table 1800 (IPv6)']],
      ['fdb entry', ['bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'weft-vx', 'dst', B_UNDERLAY], [`fdb append ${B_UNDERLAY} dev weft-vx`]],
      ['nft table', ['nft', 'delete', 'table', 'inet', 'weft-filter'], ['nft load table inet weft-filter']],
      // The fingerprint comment survives this; the listing (read anyway, counters ignored) does not.
      ['nft rule', ['nft', 'flush', 'chain', 'ip', 'weft-nat', 'prerouting'], ['nft replace table ip weft-nat (contents changed by hand)']],
      ['sysctl', ['sh', '-c', 'echo 0 > /proc/sys/net/ipv4/conf/weft-vx/rp_filter'], ['sysctl net.ipv4.conf.weft-vx.rp_filter = 2 (was 0)']],
      ['address', ['ip', 'addr', 'del', '100.127.0.1/30', 'dev', 'weft-p2p'], ['addr add 100.127.0.1/30 dev weft-p2p']],
      ['link state', ['ip', 'link', 'set', 'weft-p2p', 'down'], ['link set weft-p2p up']],
      ['link mtu', ['ip', 'link', 'set', 'weft-p2p', 'mtu', '1300'], ['link set weft-p2p mtu 1300 → 1450']],
    ];
    for (const [what, cmd, expected] of cases) {
      await lab.exec(nsA, cmd);
      await lab.exec(nsA, ['ping', '-c', '1', '-W', '1', '100.126.100.2'], { allowFail: true }); // counters move
      assert.deepEqual(await apply(), { changed: expected, errors: [] }, what);
      assert.deepEqual(await apply(), { changed: [], errors: [] }, `${what}, again`);
    }
  });

  test('a deleted link comes back with exactly its own state', async () => {
    await lab.exec(nsA, ['ip', 'link', 'del', 'weft-p2p']);
    assert.deepEqual(await apply(), {
      changed: [
        `link add weft-p2p (vxlan id 43 port 4790 local ${A_UNDERLAY} remote ${B_UNDERLAY})`,
        'addr add 100.127.0.1/30 dev weft-p2p',
        'link set weft-p2p up',
      ],
      errors: [],
    });
    // The fabric link carries routes and a per-link sysctl: they come back with it.
    await lab.exec(nsA, ['ip', 'link', 'del', 'weft-vx']);
    const r = await apply();
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.changed.sort(), [
      'addr add 100.126.100.1/24 dev weft-vx',
      `fdb append ${B_UNDERLAY} dev weft-vx`,
      `link add weft-vx (vxlan id 42 port 4789 local ${A_UNDERLAY})`,
      'link set weft-vx up',
      'route add 10.70.0.0/16 table 1800',
      'route add 10.71.0.0/16 table 1800',
      'route add 10.72.0.0/16 table main',
      'route add 10.73.0.0/16 table 1801',
      'route add 10.74.0.0/16 table 1800',
      'sysctl net.ipv4.conf.weft-vx.rp_filter = 2 (was 0)',
    ]);
    assert.deepEqual(await apply(), { changed: [], errors: [] });
    const ping = await lab.exec(nsA, ['ping', '-c', '2', '-i', '0.2', '-W', '2', '100.126.100.2'], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout);
  });

  test('changing one route changes only that route; a changed link identity recreates the link', async () => {
    desired.routes[1] = { ...desired.routes[1]!, mtu: 1350 };
    assert.deepEqual(await apply(), { changed: ['route replace 10.71.0.0/16 table 1800 (mtu 1300 → 1350)'], errors: [] });
    assert.match(await ip(nsA, 'route', 'show', '10.71.0.0/16', 'table', '1800'), /mtu 1350/);
    const p2p = desired.links[1]!;
    desired.links[1] = { ...p2p, port: 4791 };
    const r = await apply();
    assert.deepEqual(r.errors, []);
    assert.equal(r.changed[0], 'link del weft-p2p (recreate: port 4790 → 4791)');
    assert.match(await ip(nsA, '-d', 'link', 'show', 'weft-p2p'), /dstport 4791/);
    desired.links[1] = p2p;
    assert.equal((await apply()).changed[0], 'link del weft-p2p (recreate: port 4791 → 4790)');
  });

  test('removing state from the desired set deletes it', async () => {
    const removed = desired.routes.splice(4, 1)[0]!;
    assert.deepEqual(await apply(), { changed: ['route del 10.74.0.0/16 table 1800'], errors: [] });
    const rule = desired.rules.splice(0, 1)[0]!;
    const table = desired.nftTables.splice(1, 1)[0]!;
    assert.deepEqual(await apply(), { changed: ['rule del priority 1800 fwmark 0x10/0xff table 1800', 'nft delete table inet weft-filter'], errors: [] });
    desired.routes.push(removed);
    desired.rules.push(rule);
    desired.nftTables.push(table);
    assert.equal((await apply()).changed.length, 3);
  });

  test('a changed nft body reloads only that table, atomically', async () => {
    const t = desired.nftTables[0]!;
    desired.nftTables[0] = { ...t, body: t.body.replace('10.70.0.0/16', '10.76.0.0/16') };
    const r = await apply();
    assert.equal(r.changed.length, 1);
    assert.match(r.changed[0]!, /^nft replace table ip weft-nat \(fingerprint [0-9a-f]{12} → [0-9a-f]{12}\)$/);
    assert.match((await lab.exec(nsA, ['nft', 'list', 'table', 'ip', 'weft-nat'])).stdout, /10\.76\.0\.0\/16/);
    // A body nft refuses leaves the loaded table in place and says why.
    desired.nftTables[0] = { ...t, body: 'chain c {\n  this is not nft\n}' };
    const bad = await apply();
    assert.deepEqual(bad.changed, []);
    assert.match(bad.errors[0]!, /^nft replace table ip weft-nat .*: .*syntax error/);
    assert.match((await lab.exec(nsA, ['nft', 'list', 'table', 'ip', 'weft-nat'])).stdout, /10\.76\.0\.0\/16/);
    desired.nftTables[0] = t;
    assert.equal((await apply()).changed.length, 1);
  });

  test('kernel refusals are reported per item and do not stop the rest', async () => {
    const state: KernelState = {
      ...desired,
      routes: [
        ...desired.routes,
        { table: 'main', dst: '10.90.0.0/16', dev: 'weft-vx' }, // a foreign route has this key
        { table: 1800, dst: '10.91.0.0/16', dev: 'nosuchdev' },
        { table: 1800, dst: '10.92.0.0/16', dev: 'weft-vx' },
      ],
    };
    const r = await apply(state);
    assert.deepEqual(r.changed, ['route add 10.92.0.0/16 table 1800']);
    assert.equal(r.errors.length, 2, r.errors.join('\n'));
    assert.match(r.errors[0]!, /^route add 10\.90\.0\.0\/16 table main: .*File exists/);
    assert.match(r.errors[1]!, /^route add 10\.91\.0\.0\/16 table 1800: .*nosuchdev/);
    assert.match(await ip(nsA, 'route', 'show', '10.90.0.0/16'), /dev v\S+ proto static/, 'the foreign route is untouched');
    assert.deepEqual(await apply(), { changed: ['route del 10.92.0.0/16 table 1800'], errors: [] });
  });

  test('invalid input throws and touches nothing', async () => {
    const routesBefore = await ip(nsA, '-j', 'route', 'show', 'table', 'all');
    await assert.rejects(apply({ ...desired, routes: [{ table: 1800, dst: '10.0.0.1/16', dev: 'weft-vx' }] }), KernelStateError);
    await assert.rejects(apply({ ...desired, links: [{ ...desired.links[0]!, name: 'eth9' }] }), /owned prefix/);
    assert.equal(await ip(nsA, '-j', 'route', 'show', 'table', 'all'), routesBefore);
  });

  test('foreign state is untouched; teardown removes all of weft\'s state and nothing else', async () => {
    const foreign = async () => ({
      route: await ip(nsA, 'route', 'show', 'table', '1800', '10.80.0.0/16'),
      rule: await ip(nsA, 'rule', 'show', 'priority', '1805'),
      veth: await ip(nsA, 'link', 'show', 'weft-tun'),
      nft: (await lab.exec(nsA, ['nft', 'list', 'table', 'inet', 'foreign'])).stdout,
    });
    const f = await foreign();
    assert.match(f.route, /10\.80\.0\.0\/16/);
    assert.match(f.rule, /1805/);
    assert.match(f.veth, /weft-tun/);
    const report = await teardown({ netns: nsA, owned });
    assert.deepEqual(report.errors, []);
    assert.ok(report.changed.includes('link del weft-vx') && report.changed.includes('nft delete table ip weft-nat'), report.changed.join('\n'));
    const left = await readState({ netns: nsA, owned });
    assert.deepEqual({ ...left, sysctls: {} }, { links: [], routes: [], rules: [], nftTables: [], sysctls: {} });
    assert.deepEqual(await foreign(), f);
    assert.deepEqual(await teardown({ netns: nsA, owned }), { changed: [], errors: [] }, 'teardown is idempotent');
  });
});

describe('kernel reconciler at scale', () => {
  const lab = NetLab.create();
  let ns: string;
  let dev: string;
  before(async () => {
    ns = await lab.namespace('kscale');
    const other = await lab.namespace('kscale2');
    [dev] = await lab.veth(ns, other, { a: ['192.168.78.1/24'] });
  });
  after(() => lab.cleanup());

  test('5,000 + 50,000 routes in one reconcile; the second one changes nothing', async (t) => {
    const routes: RouteSpec[] = [];
    const host = (i: number) => `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    for (let i = 0; i < 5_000; i++) routes.push({ table: 1800, dst: `10.${100 + (i >> 8)}.${i & 255}.0/24`, via: '192.168.78.2', dev });
    for (let i = 0; i < 50_000; i++) routes.push({ table: 1801, dst: host(i), dev });
    const state: KernelState = { links: [], routes, rules: [{ priority: 1800, table: 1800, to: '10.0.0.0/8' }], nftTables: [], sysctls: {} };
    const time = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
      const t0 = performance.now();
      const v = await fn();
      return [v, (performance.now() - t0) / 1000];
    };

    const [first, s1] = await time(() => reconcile(state, { netns: ns, owned }));
    assert.deepEqual(first.errors, []);
    assert.equal(first.changed.length, 55_001);
    const count = await lab.exec(ns, ['sh', '-c', 'ip -4 route show table all proto 250 | wc -l']);
    assert.equal(Number(count.stdout.trim()), 55_000);

    const [second, s2] = await time(() => reconcile(state, { netns: ns, owned }));
    assert.deepEqual(second, { changed: [], errors: [] });

    routes[123] = { ...routes[123]!, mtu: 1300 };
    routes.splice(40_000, 1);
    const [third, s3] = await time(() => reconcile(state, { netns: ns, owned }));
    assert.deepEqual(third.errors, []);
    assert.equal(third.changed.length, 2);

    const [down, s4] = await time(() => teardown({ netns: ns, owned }));
    assert.deepEqual(down.errors, []);
    assert.equal(down.changed.length, 55_000);
    t.diagnostic(`55,000 routes: first reconcile ${s1.toFixed(2)} s, unchanged ${s2.toFixed(2)} s, 2 changes ${s3.toFixed(2)} s, teardown ${s4.toFixed(2)} s`);
  });
});
