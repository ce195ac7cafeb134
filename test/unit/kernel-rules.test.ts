// Rule normalisation and diff on `ip -N -j rule show` output captured from a test namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { diffRules, normaliseRule, parseRules, ruleOps, ruleToSpec } from '../../src/kernel/rules.ts';
import { KernelStateError } from '../../src/kernel/types.ts';

const load = (name: string) => JSON.parse(fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as unknown[];
const v4 = parseRules(load('kernel-rules4.json'), 4, 250);
const v6 = parseRules(load('kernel-rules6.json'), 6, 250);

test('parse keeps only rules with the owned protocol', () => {
  assert.deepEqual(
    v4.map((r) => r.priority),
    [1800, 1801, 1802, 1804, 1806, 1807, 1900],
  );
  assert.deepEqual(
    v6.map((r) => r.priority),
    [1800],
  );
});

test('parse normalises selectors: fwmask default, prefixes, host sources, iif, actions as extra', () => {
  const p = (n: number) => v4.find((r) => r.priority === n);
  assert.deepEqual(p(1800), { family: 4, priority: 1800, table: 1800, fwmark: 0x10, fwmask: 0xff });
  assert.deepEqual(p(1804), { family: 4, priority: 1804, table: 1800, fwmark: 0x10, fwmask: 0xffffffff });
  assert.deepEqual(p(1801), { family: 4, priority: 1801, table: 1800, to: '10.70.0.0/16' });
  assert.deepEqual(p(1802), { family: 4, priority: 1802, table: 1800, from: '10.0.0.0/16', iif: 'va' });
  assert.deepEqual(p(1806), { family: 4, priority: 1806, table: 1800, from: '10.0.0.5/32' });
  assert.match(p(1807)?.extra ?? '', /not=null/);
  assert.match(p(1807)?.extra ?? '', /goto=1900/);
  assert.deepEqual(v6[0], { family: 6, priority: 1800, table: 1800, to: 'fd00:70::/48' });
});

test('desired rules equal to the kernel ones produce no change; others are added and deleted', () => {
  const desired = [
    normaliseRule({ priority: 1800, table: 1800, fwmark: 0x10, fwmask: 0xff }, 'a'),
    normaliseRule({ priority: 1804, table: 1800, fwmark: 0x10 }, 'b'),
    normaliseRule({ priority: 1801, table: 1800, to: '10.70.0.0/16' }, 'c'),
    normaliseRule({ priority: 1802, table: 1800, from: '10.0.0.0/16', iif: 'va' }, 'd'),
    normaliseRule({ priority: 1806, table: 1800, from: '10.0.0.5' }, 'e'),
    normaliseRule({ priority: 1900, table: 1801 }, 'f'),
  ];
  const plan = diffRules(desired, v4);
  assert.deepEqual(
    plan.add.map((r) => r.priority),
    [1900],
  );
  assert.deepEqual(
    plan.del.map((r) => r.priority),
    [1807, 1900],
  );
  const ops = ruleOps(plan, 250);
  assert.deepEqual(
    ops.map((o) => o.line),
    ['rule del priority 1807 to 10.0.0.0/8 protocol 250', 'rule del priority 1900 table 1800 protocol 250', 'rule add priority 1900 table 1801 protocol 250'],
  );
  assert.deepEqual(
    ops.map((o) => o.what),
    ['rule del priority 1807 to 10.0.0.0/8 (not=null goto=1900)', 'rule del priority 1900 table 1800', 'rule add priority 1900 table 1801'],
  );
  assert.deepEqual(diffRules(desired.slice(0, 5), v4.filter((r) => r.priority < 1807)), { add: [], del: [] });
});

test('rendered selectors', () => {
  const r = normaliseRule({ priority: 7, table: 9, fwmark: 0x10, fwmask: 0xff, from: '10.0.0.0/8', to: '10.1.0.0/16', iif: 'eth0' }, 'r');
  assert.deepEqual(ruleOps({ add: [r], del: [] }, 250)[0], {
    line: 'rule add priority 7 from 10.0.0.0/8 to 10.1.0.0/16 fwmark 0x10/0xff iif eth0 table 9 protocol 250',
    what: 'rule add priority 7 from 10.0.0.0/8 to 10.1.0.0/16 fwmark 0x10/0xff iif eth0 table 9',
  });
  assert.deepEqual(ruleToSpec(r), { priority: 7, table: 9, fwmark: 0x10, fwmask: 0xff, from: '10.0.0.0/8', to: '10.1.0.0/16', iif: 'eth0' });
  assert.equal(normaliseRule({ priority: 1, table: 2, fwmark: 1, family: 6 }, 'r').family, 6);
  assert.equal(normaliseRule({ priority: 1, table: 2, to: 'fd00::/8' }, 'r').family, 6);
});

test('invalid rules throw', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ priority: -1, table: 1 }, /priority/],
    [{ priority: 1, table: 1, fwmask: 0xff }, /fwmask needs fwmark/],
    [{ priority: 1, table: 1, fwmark: 2 ** 32 }, /fwmark/],
    [{ priority: 1, table: 1, to: '10.0.0.1/8' }, /host bits/],
    [{ priority: 1, table: 1, to: '10.0.0.0/8', from: 'fd00::/8' }, /mixes IPv4 and IPv6/],
    [{ priority: 1, table: 1, iif: 'a b' }, /interface name/],
  ];
  for (const [spec, msg] of bad) {
    assert.throws(() => normaliseRule(spec as never, 'rules[0]'), (e: unknown) => e instanceof KernelStateError && msg.test(e.message), JSON.stringify(spec));
  }
});
