// The executor driven through an injected command runner that answers with outputs captured from
// a test namespace (no command is ever run): what readState() returns, reconciled again, changes
// only what the kernel holds that a KernelState cannot express; invalid input never reaches the
// runner; batch refusals land in the report line by line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { batchOutcome, parseBatchErrors } from '../../src/kernel/batch.ts';
import type { CommandRunner } from '../../src/kernel/exec.ts';
import { normaliseState } from '../../src/kernel/desired.ts';
import { nftFingerprint } from '../../src/kernel/nft.ts';
import { readState, reconcile } from '../../src/kernel/reconcile.ts';
import { KernelStateError, type KernelState, type Ownership } from '../../src/kernel/types.ts';

const fixture = (name: string) => fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const owned: Ownership = { linkPrefix: 'weft-', routeProtocol: 250, ruleProtocol: 250, nftPrefix: 'weft' };
const natBody = 'chain pre {\n\ttype nat hook prerouting priority dstnat; policy accept;\n\tip daddr 10.70.0.0/16 dnat prefix to 10.0.0.0/16\n}';

/** Answers reads from fixtures; records everything else (writes) without running it. */
function fakeKernel(): { runner: CommandRunner; writes: string[] } {
  const writes: string[] = [];
  const ok = (stdout: string) => ({ stdout, stderr: '', code: 0 });
  const runner: CommandRunner = async (cmd, args, input) => {
    const a = args.join(' ');
    if (cmd === 'ip' && a === '-d -j addr show') return ok(fixture('kernel-addr.json'));
    if (cmd === 'ip' && a === '-N -j -d route show table all proto 250') return ok(fixture('kernel-routes.json'));
    if (cmd === 'ip' && a === '-4 -N -j rule show') return ok(fixture('kernel-rules4.json'));
    if (cmd === 'ip' && a === '-6 -N -j rule show') return ok(fixture('kernel-rules6.json'));
    if (cmd === 'bridge' && a === '-j fdb show dev weft-vx') return ok(fixture('kernel-fdb.json'));
    if (cmd === 'bridge' && a === '-j fdb show dev weft-r') return ok('[{"mac":"00:00:00:00:00:00","dst":"192.168.5.2","flags":["self"],"state":"permanent"}]');
    if (cmd === 'bridge' && a === '-j fdb show dev weft-m') return ok('[{"mac":"00:00:00:00:00:00","dst":"fd00:5::2","flags":["self"],"state":"permanent"}]');
    if (cmd === 'nft' && a === '-j list tables') return ok('{"nftables": [{"table": {"family": "ip", "name": "weft-nat", "handle": 2}}, {"table": {"family": "inet", "name": "foreign", "handle": 3}}]}');
    if (cmd === 'nft' && /^(-t )?list table ip weft-nat$/.test(a)) {
      return ok(`table ip weft-nat {\n\tcomment "weft:${nftFingerprint(natBody)}"\n${natBody.replace(/^/gm, '\t')}\n}\n`);
    }
    if (cmd === 'sh' && args[1]!.includes('for p do')) return ok(args.slice(3).map(() => 'ok\t1\0').join(''));
    writes.push(`${cmd} ${a}${input ? `\n${input}` : ''}`);
    return ok('');
  };
  return { runner, writes };
}

test('readState → reconcile changes only what a KernelState cannot express', async () => {
  const { runner, writes } = fakeKernel();
  const state = await readState({ owned, runner, sysctlKeys: ['net.ipv4.ip_forward'] });
  assert.deepEqual(
    state.links.map((l) => l.name),
    ['weft-vx', 'weft-r', 'weft-m'],
    'the veth weft-tun is not weft\'s',
  );
  assert.deepEqual(state.sysctls, { 'net.ipv4.ip_forward': '1' });
  assert.equal(state.nftTables.length, 1);
  assert.equal(state.nftTables[0]!.fingerprint, nftFingerprint(natBody));

  // A blackhole and a multipath route have no single device: not expressible, so not desired.
  const routes = state.routes.filter((r) => r.dev !== '');
  assert.equal(state.routes.length - routes.length, 2);
  const rules = state.rules.filter((r) => r.table !== 0); // likewise a goto rule
  const desired: KernelState = { ...state, routes, rules, nftTables: [{ family: 'ip', name: 'weft-nat', body: natBody }] };
  const report = await reconcile(desired, { owned, runner });
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.changed.sort(), [
    'link set weft-m up', // it is down in the captured namespace
    'route del 10.77.0.0/16 table 1800',
    'route del 10.78.0.0/16 table 1800',
    'route replace 10.85.0.0/16 table 1800 (drop metric.advmss=1200)',
    'rule del priority 1807 to 10.0.0.0/8 (not=null goto=1900)',
  ].sort());
  assert.ok(!writes.some((w) => w.startsWith('nft')), 'the nft table is unchanged: not reloaded');
  assert.ok(!writes.some((w) => w.startsWith('bridge')), 'fdb unchanged');
  assert.ok(!writes.some((w) => w.startsWith('sh')), 'no sysctl written');
});

test('invalid desired state throws before any command runs', async () => {
  const { runner, writes } = fakeKernel();
  let calls = 0;
  const counting: CommandRunner = (c, a, i) => {
    calls++;
    return runner(c, a, i);
  };
  const base: KernelState = { links: [], routes: [], rules: [], nftTables: [], sysctls: {} };
  const bad: Array<[Partial<KernelState>, RegExp]> = [
    [{ routes: [{ table: 1800, dst: '10.0.0.0/33', dev: 'x' }] }, /routes\[0\]\.dst "10\.0\.0\.0\/33" is not a CIDR/],
    [{ routes: [{ table: 1800, dst: '10.0.0.0/8', dev: 'x' }, { table: 1800, dst: '10.0.0.0/8', dev: 'y' }] }, /listed twice/],
    [{ nftTables: [{ family: 'ip', name: 'other', body: '' }] }, /owned prefix/],
    [{ nftTables: [{ family: 'ip', name: 'weft-a', body: '}' }] }, /closes a brace/],
    [{ sysctls: { 'net/../../etc': '1' } }, /sysctl key/],
    [{ sysctls: { 'net.ipv4.ip_forward': '1\n2' } }, /single line/],
    [
      {
        links: [
          { kind: 'vxlan', name: 'weft-a', id: 1, port: 4789, local: '10.0.0.1', mtu: 1400, addresses: [] },
          { kind: 'vxlan', name: 'weft-b', id: 1, port: 4789, local: '10.0.0.1', mtu: 1400, addresses: [] },
        ],
      },
      /share VNI 1/,
    ],
  ];
  for (const [change, msg] of bad) {
    await assert.rejects(reconcile({ ...base, ...change }, { owned, runner: counting }), (e: unknown) => e instanceof KernelStateError && msg.test(e.message));
  }
  await assert.rejects(reconcile(base, { owned: { ...owned, routeProtocol: 3 }, runner: counting }), /routeProtocol/);
  assert.equal(calls, 0);
  assert.deepEqual(writes, []);
});

test('identical duplicates are merged', () => {
  const s = normaliseState(
    {
      links: [],
      routes: [
        { table: 1800, dst: '10.0.0.0/8', dev: 'x' },
        { table: 1800, dst: '10.0.0.0/8', dev: 'x' },
      ],
      rules: [
        { priority: 1, table: 2 },
        { priority: 1, table: 2 },
      ],
      nftTables: [],
      sysctls: {},
    },
    owned,
  );
  assert.equal(s.routes.length, 1);
  assert.equal(s.rules.length, 1);
});

test('batch errors are matched to their lines; a fatal parse error fails every later line', () => {
  const stderr = 'Cannot find device "nosuch"\nCommand failed -:2\nError: Nexthop has invalid gateway.\nCommand failed -:3\n';
  assert.deepEqual([...parseBatchErrors(stderr).byLine], [
    [2, 'Cannot find device "nosuch"'],
    [3, 'Error: Nexthop has invalid gateway.'],
  ]);
  const ops = ['a', 'b', 'c', 'd'].map((x) => ({ line: x, what: x }));
  assert.deepEqual(batchOutcome(ops, { stdout: '', stderr, code: 1 }), {
    done: ['a', 'd'],
    errors: ['b: Cannot find device "nosuch"', 'c: Error: Nexthop has invalid gateway.'],
  });
  const fatal = batchOutcome(ops, { stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:1\nError: argument "abc" is wrong\n', code: 255 });
  assert.deepEqual(fatal.done, []);
  assert.equal(fatal.errors.length, 4);
  assert.match(fatal.errors[3]!, /d: not applied \(Error: argument "abc" is wrong\)/);
  const unstarted = batchOutcome(ops, { stdout: '', stderr: 'spawn ip ENOENT\n', code: -1 });
  assert.equal(unstarted.errors.length, 4);
});
