// VXLAN link and FDB diffs on `ip -d -j addr show` / `bridge -j fdb show` output captured from a
// test namespace, and on hand-made states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fdbOps, parseFloodEntries } from '../../src/kernel/fdb.ts';
import { diffLinks, linkToSpec, normaliseLink, parseLinks, type KernelLink } from '../../src/kernel/links.ts';
import { KernelStateError, type VxlanLink } from '../../src/kernel/types.ts';

const load = (name: string) => JSON.parse(fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as unknown[];
const links = parseLinks(load('kernel-addr.json'), 'weft-');
const link = (name: string) => links.find((l) => l.name === name)!;

const vx: VxlanLink = { kind: 'vxlan', name: 'weft-vx', id: 42, port: 4789, local: '192.168.5.1', dev: 'va', mtu: 1400, addresses: ['100.126.100.11/24'], fdb: ['192.168.5.9', '192.168.5.10', '192.168.5.11'] };

test('parse: only prefixed links; vxlan identity, IPv6 local/remote, addresses without link-local', () => {
  assert.deepEqual(
    links.map((l) => [l.name, l.kind]).sort(),
    [
      ['weft-m', 'vxlan'],
      ['weft-r', 'vxlan'],
      ['weft-tun', 'veth'],
      ['weft-vx', 'vxlan'],
    ],
  );
  assert.deepEqual(link('weft-vx'), { name: 'weft-vx', kind: 'vxlan', id: 42, port: 4789, local: '192.168.5.1', dev: 'va', mtu: 1400, up: true, addresses: ['100.126.100.11/24'] });
  assert.deepEqual(link('weft-r'), { name: 'weft-r', kind: 'vxlan', id: 43, port: 4790, local: '192.168.5.1', remote: '192.168.5.2', mtu: 1500, up: true, addresses: ['100.127.0.1/30'] });
  assert.deepEqual(link('weft-m'), { name: 'weft-m', kind: 'vxlan', id: 44, port: 4789, local: 'fd00:5::1', remote: 'fd00:5::2', mtu: 1300, up: false, addresses: ['fd00:99::1/64'] });
});

test('an unchanged link needs nothing; foreign links with the prefix are neither deleted nor replaced', () => {
  const want = normaliseLink(vx, 'weft-', 'l');
  const plan = diffLinks([want], [link('weft-vx'), link('weft-tun')]);
  assert.deepEqual(plan.ops, []);
  const conflict = diffLinks([{ ...want, name: 'weft-tun' }], [link('weft-tun')]);
  assert.deepEqual(conflict.ops, []);
  assert.match(conflict.conflicts[0]!, /weft-tun: a veth link weft does not own/);
});

test('mtu, addresses and up state are fixed one by one; stale vxlan links are deleted first', () => {
  const want = normaliseLink({ ...vx, mtu: 1380, addresses: ['100.126.100.12/24', 'fd00:1::1/64'] }, 'weft-', 'l');
  const down: KernelLink = { ...link('weft-vx'), up: false };
  const plan = diffLinks([want], [down, link('weft-r'), link('weft-tun')]);
  assert.deepEqual(
    plan.ops.map((o) => o.line),
    [
      'link del dev weft-r',
      'link set dev weft-vx mtu 1380',
      'addr del 100.126.100.11/24 dev weft-vx',
      'addr add 100.126.100.12/24 dev weft-vx',
      'addr add fd00:1::1/64 dev weft-vx nodad',
      'link set dev weft-vx up',
    ],
  );
  assert.equal(plan.ops[1]!.what, 'link set weft-vx mtu 1400 → 1380');
  assert.equal(plan.fresh.size, 0);
});

test('changed identity (id, port, local, remote, dev) recreates the link; a missing one is created', () => {
  for (const change of [{ id: 7 }, { port: 4800 }, { local: '192.168.5.3' }, { remote: '192.168.5.2' }, { dev: 'vb' }]) {
    const plan = diffLinks([normaliseLink({ ...vx, ...change }, 'weft-', 'l')], [link('weft-vx')]);
    assert.equal(plan.ops[0]!.line, 'link del dev weft-vx', JSON.stringify(change));
    assert.match(plan.ops[0]!.what, /recreate: /);
    assert.match(plan.ops[1]!.line, /^link add weft-vx mtu 1400 type vxlan /);
    assert.ok(plan.fresh.has('weft-vx'));
  }
  const create = diffLinks([normaliseLink({ ...vx, remote: '192.168.5.2', fdb: [] }, 'weft-', 'l')], []);
  assert.deepEqual(
    create.ops.map((o) => o.line),
    [
      'link add weft-vx mtu 1400 type vxlan id 42 dstport 4789 local 192.168.5.1 remote 192.168.5.2 dev va',
      'addr add 100.126.100.11/24 dev weft-vx',
      'link set dev weft-vx up',
    ],
  );
});

test('fdb: all-zero-MAC entries only; diff appends and deletes', () => {
  const have = parseFloodEntries(load('kernel-fdb.json'));
  assert.deepEqual(have, ['192.168.5.10', '192.168.5.11', '192.168.5.9']);
  const want = normaliseLink(vx, 'weft-', 'l');
  assert.deepEqual(fdbOps('weft-vx', want.fdb, have), []);
  const changed = normaliseLink({ ...vx, fdb: ['192.168.5.9', '192.168.5.12'] }, 'weft-', 'l');
  assert.deepEqual(
    fdbOps('weft-vx', changed.fdb, have).map((o) => o.line),
    [
      'fdb del 00:00:00:00:00:00 dev weft-vx dst 192.168.5.10',
      'fdb del 00:00:00:00:00:00 dev weft-vx dst 192.168.5.11',
      'fdb append 00:00:00:00:00:00 dev weft-vx dst 192.168.5.12',
    ],
  );
  // A remote is an fdb entry the kernel makes itself: it is part of the desired set.
  assert.deepEqual(normaliseLink({ ...vx, remote: '192.168.5.2', fdb: undefined }, 'weft-', 'l').fdb, ['192.168.5.2']);
});

test('linkToSpec gives back the desired shape', () => {
  assert.deepEqual(linkToSpec(link('weft-vx'), ['192.168.5.10', '192.168.5.11', '192.168.5.9']), { ...vx, fdb: ['192.168.5.10', '192.168.5.11', '192.168.5.9'] });
  assert.deepEqual(linkToSpec(link('weft-r'), ['192.168.5.2']), { kind: 'vxlan', name: 'weft-r', id: 43, port: 4790, local: '192.168.5.1', remote: '192.168.5.2', mtu: 1500, addresses: ['100.127.0.1/30'] });
});

test('invalid links throw', () => {
  const bad: Array<[Partial<VxlanLink> & Record<string, unknown>, RegExp]> = [
    [{ name: 'vx0' }, /does not start with the owned prefix/],
    [{ name: 'weft-much-too-long' }, /not a valid interface name/],
    [{ id: 1 << 24 }, /id must be an integer 0\.\.16777215/],
    [{ port: 0 }, /port/],
    [{ local: '192.168.5' }, /not an IPv4 or IPv6 address/],
    [{ remote: 'fd00::1' }, /same address family/],
    [{ addresses: ['100.126.100.11'] }, /prefix length/],
    [{ fdb: ['x'] }, /fdb\[0\]/],
    [{ kind: 'veth' as 'vxlan' }, /kind must be "vxlan"/],
    [{ mtu: 70000 }, /mtu/],
  ];
  for (const [change, msg] of bad) {
    assert.throws(() => normaliseLink({ ...vx, ...change } as VxlanLink, 'weft-', 'links[0]'), (e: unknown) => e instanceof KernelStateError && msg.test(e.message), JSON.stringify(change));
  }
});
