// Route normalisation and diff, on `ip -N -j -d route show table all proto 250` output captured from
// a test namespace (test/unit/fixtures/kernel-routes.json) and on hand-made states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { diffRoutes, normaliseRoute, parseRoutes, routeKey, routeOps, routeToSpec, type KernelRoute } from '../../src/kernel/routes.ts';
import { KernelStateError } from '../../src/kernel/types.ts';

const fixture = JSON.parse(fs.readFileSync(new URL('./fixtures/kernel-routes.json', import.meta.url), 'utf8')) as unknown[];
const parsed = parseRoutes(fixture);
const byDst = (dst: string, table = 1800) => parsed.find((r) => r.dst === dst && r.table === table);

test('parse: table numbers, default and host destinations, gateway, onlink, mtu, prefsrc, metric', () => {
  assert.deepEqual(byDst('10.70.0.0/16'), { family: 4, table: 1800, dst: '10.70.0.0/16', metric: 0, tos: 0, via: '100.126.100.1', dev: 'weft-vx', onlink: false });
  assert.deepEqual(byDst('10.71.0.0/16'), { family: 4, table: 1800, dst: '10.71.0.0/16', metric: 0, tos: 0, via: '100.126.100.1', dev: 'weft-vx', onlink: true, mtu: 1300 });
  assert.equal(byDst('10.72.0.0/16', 254)?.src, '100.126.100.11');
  assert.equal(byDst('10.73.0.0/16', 254)?.metric, 5);
  assert.ok(byDst('0.0.0.0/0'), '"default" is 0.0.0.0/0');
  assert.ok(byDst('10.79.1.2/32'), 'a bare address is a /32');
  assert.ok(byDst('10.75.0.0/16', 255), 'table local is 255');
  const v6 = parsed.find((r) => r.dst === 'fd00:70::/48');
  assert.deepEqual(v6, { family: 6, table: 1800, dst: 'fd00:70::/48', metric: 1024, tos: 0, dev: 'va', onlink: false });
  assert.ok(parsed.find((r) => r.dst === 'fd00:72::5/128'));
});

test('parse: attributes weft never sets are kept as `extra`', () => {
  assert.match(byDst('10.77.0.0/16')?.extra ?? '', /type=6/, 'blackhole');
  assert.match(byDst('10.78.0.0/16')?.extra ?? '', /nexthops=/, 'multipath');
  assert.match(byDst('10.85.0.0/16')?.extra ?? '', /metric\.advmss=1200/);
  assert.equal(byDst('10.85.0.0/16')?.mtu, 1400);
});

test('the same routes in kernel shape and desired shape compare equal', () => {
  const desired = [
    normaliseRoute({ table: 1800, dst: '10.70.0.0/16', via: '100.126.100.1', dev: 'weft-vx' }, 'r0'),
    normaliseRoute({ table: 1800, dst: '10.71.0.0/16', via: '100.126.100.1', dev: 'weft-vx', onlink: true, mtu: 1300 }, 'r1'),
    normaliseRoute({ table: 'main', dst: '10.72.0.0/16', dev: 'weft-vx', src: '100.126.100.11' }, 'r2'),
    normaliseRoute({ table: 254, dst: '10.73.0.0/16', via: '100.126.100.1', dev: 'weft-vx', metric: 5 }, 'r3'),
    normaliseRoute({ table: 1800, dst: '0.0.0.0/0', via: '100.126.100.1', dev: 'weft-vx' }, 'r4'),
    normaliseRoute({ table: 1800, dst: '10.79.1.2', dev: 'weft-vx' }, 'r5'),
    normaliseRoute({ table: 1800, dst: 'fd00:0070:0::/48', dev: 'va' }, 'r6'),
  ];
  const current = parsed.filter((r) => desired.some((d) => routeKey(d) === routeKey(r)));
  assert.equal(current.length, desired.length);
  const plan = diffRoutes(desired, current);
  assert.deepEqual(plan, { add: [], replace: [], del: [] });
});

test('diff: add missing, replace changed (only that one), delete stale and weird ones', () => {
  const desired = [
    normaliseRoute({ table: 1800, dst: '10.70.0.0/16', via: '100.126.100.1', dev: 'weft-vx', mtu: 1350 }, 'a'),
    normaliseRoute({ table: 1800, dst: '10.71.0.0/16', via: '100.126.100.1', dev: 'weft-vx', onlink: true, mtu: 1300 }, 'b'),
    normaliseRoute({ table: 1800, dst: '10.77.0.0/16', dev: 'weft-vx' }, 'c'),
    normaliseRoute({ table: 1900, dst: '10.200.0.0/16', dev: 'weft-vx' }, 'd'),
  ];
  const plan = diffRoutes(desired, parsed);
  assert.deepEqual(plan.add.map((r) => r.dst), ['10.200.0.0/16']);
  assert.deepEqual(
    plan.replace.map((r) => [r.want.dst, r.why]),
    [
      ['10.70.0.0/16', ['mtu - → 1350']],
      ['10.77.0.0/16', ['dev - → weft-vx', 'drop type=6']],
    ],
  );
  assert.equal(plan.del.length, parsed.length - 3);
  assert.ok(!plan.del.some((r) => r.dst === '10.71.0.0/16'));
  const ops = routeOps(plan, 250);
  assert.equal(ops.length, plan.del.length + 3);
  assert.ok(ops.findIndex((o) => o.line.startsWith('route del')) < ops.findIndex((o) => o.line.startsWith('route add')), 'deletes come first');
  assert.equal(
    ops.find((o) => o.line.startsWith('route replace 10.70.0.0/16'))?.line,
    'route replace 10.70.0.0/16 table 1800 metric 0 proto 250 via 100.126.100.1 dev weft-vx mtu 1350',
  );
  assert.equal(ops.find((o) => o.line.startsWith('route add'))?.line, 'route add 10.200.0.0/16 table 1900 metric 0 proto 250 dev weft-vx');
  assert.equal(ops.find((o) => o.line.startsWith('route add'))?.what, 'route add 10.200.0.0/16 table 1900');
  const del6 = ops.find((o) => o.line.startsWith('route del fd00:72::5/128'));
  assert.equal(del6?.line, 'route del fd00:72::5/128 table 1800 metric 1024 proto 250 dev va');
});

test('metric is part of the key: a different metric is another route', () => {
  const a: KernelRoute = normaliseRoute({ table: 10, dst: '10.1.0.0/16', dev: 'x' }, 'a');
  const b: KernelRoute = normaliseRoute({ table: 10, dst: '10.1.0.0/16', dev: 'x', metric: 10 }, 'b');
  const plan = diffRoutes([b], [a]);
  assert.deepEqual([plan.add.length, plan.replace.length, plan.del.length], [1, 0, 1]);
});

test('routeToSpec is the inverse of normaliseRoute', () => {
  const spec = { table: 1800, dst: '10.71.0.0/16', via: '100.126.100.1', dev: 'weft-vx', onlink: true, mtu: 1300 } as const;
  assert.deepEqual(routeToSpec(normaliseRoute({ ...spec }, 'r')), spec);
  assert.deepEqual(routeToSpec(normaliseRoute({ table: 'main', dst: '10.0.0.0/8', dev: 'x', metric: 3 }, 'r')), { table: 'main', dst: '10.0.0.0/8', dev: 'x', metric: 3 });
});

test('invalid routes throw a clear KernelStateError', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ table: 1800, dst: '10.0.0.1/16', dev: 'x' }, /host bits set; the network is 10\.0\.0\.0\/16/],
    [{ table: 1800, dst: '10.0.0.0/33', dev: 'x' }, /not a CIDR/],
    [{ table: 1800, dst: 'banana', dev: 'x' }, /not a CIDR/],
    [{ table: 0, dst: '10.0.0.0/8', dev: 'x' }, /table must be an integer/],
    [{ table: 'other', dst: '10.0.0.0/8', dev: 'x' }, /table/],
    [{ table: 1800, dst: '10.0.0.0/8', dev: 'bad dev' }, /not a valid interface name/],
    [{ table: 1800, dst: '10.0.0.0/8', dev: 'x\nroute flush' }, /not a valid interface name/],
    [{ table: 1800, dst: '10.0.0.0/8', dev: 'x', via: 'fd00::1' }, /same address family/],
    [{ table: 1800, dst: '10.0.0.0/8', dev: 'x', mtu: 20 }, /mtu must be an integer 68\.\.65535/],
    [{ table: 1800, dst: '10.0.0.0/8', dev: 'x', onlink: true }, /onlink needs a gateway/],
  ];
  for (const [spec, msg] of bad) {
    assert.throws(() => normaliseRoute(spec as never, 'routes[0]'), (e: unknown) => e instanceof KernelStateError && msg.test(e.message), JSON.stringify(spec));
  }
});
