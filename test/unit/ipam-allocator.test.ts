import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POOLS, Ipam } from '../../src/ipam/allocator.ts';
import type { IpamConfig, IpamSnapshot } from '../../src/ipam/allocator.ts';
import { IpamError } from '../../src/ipam/errors.ts';
import { contains, overlaps, parseCidr } from '../../src/ipam/cidr.ts';

// ---- helpers ----

const BASE: IpamConfig = {
  podCIDR: '10.0.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  nodeCIDRs: ['192.168.10.0/24'],
};

function rejects(fn: () => unknown, reason: string, message?: RegExp): IpamError {
  let caught: IpamError | undefined;
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof IpamError, `expected IpamError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    caught = err;
    return true;
  });
  return caught!;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function localRanges(config: IpamConfig): string[] {
  return [config.podCIDR, config.serviceCIDR, ...config.nodeCIDRs, ...(config.reserved ?? [])];
}

/** Every range the snapshot routes locally: our external CIDR and each peer's stand-ins. */
function standIns(s: IpamSnapshot): string[] {
  const out = s.externalCIDR ? [s.externalCIDR] : [];
  for (const p of Object.values(s.peers)) {
    out.push(p.podRemap);
    if (p.externalRemap) out.push(p.externalRemap);
  }
  return out;
}

/** The fabric invariant: stand-ins pairwise disjoint and clear of every local range. */
function assertDisjoint(ipam: Ipam, config: IpamConfig): void {
  const ranges = standIns(ipam.snapshot());
  for (let i = 0; i < ranges.length; i++) {
    for (const local of localRanges(config)) {
      assert.ok(!overlaps(parseCidr(ranges[i]), parseCidr(local)), `${ranges[i]} overlaps local ${local}`);
    }
    for (let j = i + 1; j < ranges.length; j++) {
      assert.ok(!overlaps(parseCidr(ranges[i]), parseCidr(ranges[j])), `${ranges[i]} overlaps ${ranges[j]}`);
    }
  }
}

function bitsOf(cidr: string): number {
  return parseCidr(cidr).bits;
}

// ---- the common case ----

test('three clusters all on 10.0.0.0/16: every cluster gets distinct, clear remaps for the other two', () => {
  const names = ['a', 'b', 'c'];
  const ipams = new Map(names.map((n) => [n, new Ipam(BASE)]));
  // Each cluster announces its own external CIDR to the others.
  const externals = new Map(names.map((n) => [n, ipams.get(n)!.externalCIDR()]));
  for (const self of names) {
    const ipam = ipams.get(self)!;
    const remaps: string[] = [];
    for (const peer of names.filter((n) => n !== self)) {
      const pod = ipam.remapPodCIDR(peer, '10.0.0.0/16');
      const ext = ipam.remapExternalCIDR(peer, externals.get(peer)!);
      assert.notEqual(pod, '10.0.0.0/16', 'the real CIDR collides with the local pod CIDR');
      assert.equal(bitsOf(pod), 16);
      assert.equal(bitsOf(ext), bitsOf(externals.get(peer)!));
      remaps.push(pod, ext);
    }
    assert.equal(new Set(remaps).size, remaps.length, `remaps in ${self} are distinct: ${remaps.join(' ')}`);
    assertDisjoint(ipam, BASE);
  }
  // Concretely (lowest free aligned block, pool order): external 10.1/16, then 10.2, 10.3, ...
  const a = ipams.get('a')!;
  assert.equal(a.externalCIDR(), '10.1.0.0/16');
  assert.deepEqual(a.lookup('b'), { podRemap: '10.2.0.0/16', externalRemap: '10.3.0.0/16' });
  assert.deepEqual(a.lookup('c'), { podRemap: '10.4.0.0/16', externalRemap: '10.5.0.0/16' });
});

test('the real CIDR is kept when it collides with nothing local', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.50.0.0/16'), '10.50.0.0/16');
  assert.equal(ipam.remapPodCIDR('c', '172.20.0.0/14'), '172.20.0.0/14');
  // Outside the pools is fine too: it is the peer's real range, nothing was allocated.
  assert.equal(ipam.remapPodCIDR('d', '100.64.0.0/16'), '100.64.0.0/16');
  assert.equal(ipam.remapExternalCIDR('b', '10.60.0.0/16'), '10.60.0.0/16');
  assertDisjoint(ipam, BASE);
});

test('two peers announcing the same free CIDR: only the first keeps it', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.50.0.0/16'), '10.50.0.0/16');
  const c = ipam.remapPodCIDR('c', '10.50.0.0/16');
  assert.notEqual(c, '10.50.0.0/16');
  assert.equal(c, '10.1.0.0/16');
  // A real CIDR inside someone else's kept real CIDR is also a clash.
  assert.equal(ipam.remapPodCIDR('d', '10.50.128.0/17'), '10.2.0.0/17');
  assertDisjoint(ipam, BASE);
});

test('a real CIDR clashing with any local range or stand-in is remapped', () => {
  const config: IpamConfig = { ...BASE, reserved: ['10.200.0.0/16'] };
  const ipam = new Ipam(config);
  const external = ipam.externalCIDR();
  assert.equal(external, '10.1.0.0/16');
  const clashes: Array<[string, string]> = [
    ['pod', '10.0.0.0/16'],
    ['inside pod', '10.0.128.0/20'],
    ['service', '10.100.0.0/16'],
    ['node', '192.168.0.0/16'],
    ['reserved', '10.200.0.0/20'],
    ['our external', '10.1.0.0/16'],
  ];
  for (const [why, real] of clashes) {
    const remap = ipam.remapPodCIDR(`peer-${why}`, real);
    assert.notEqual(remap, real, why);
    assert.equal(bitsOf(remap), bitsOf(real), `${why}: same size`);
  }
  // Another peer's remap (not its real CIDR): peer-pod was given 10.2.0.0/16.
  assert.equal(ipam.lookup('peer-pod')?.podRemap, '10.2.0.0/16');
  assert.notEqual(ipam.remapPodCIDR('x', '10.2.0.0/16'), '10.2.0.0/16');
  assertDisjoint(ipam, config);
});

test('remaps have the same size as the real CIDR and are aligned', () => {
  const ipam = new Ipam({ ...BASE, maxRemoteCIDRSize: 8 });
  for (const [id, real] of [
    ['p24', '10.0.5.0/24'],
    ['p20', '10.0.16.0/20'],
    ['p12', '10.96.0.0/12'],
    ['p30', '10.0.0.8/30'],
    ['p9', '10.0.0.0/9'],
  ] as const) {
    const remap = ipam.remapPodCIDR(id, real);
    assert.equal(bitsOf(remap), bitsOf(real), `${id}: ${remap}`);
    parseCidr(remap); // strict parse: host bits clear, i.e. aligned
  }
  assert.equal(ipam.lookup('p24')?.podRemap, '10.1.0.0/24');
  assert.equal(ipam.lookup('p20')?.podRemap, '10.1.16.0/20');
  assert.equal(ipam.lookup('p12')?.podRemap, '10.16.0.0/12');
  assert.equal(ipam.lookup('p30')?.podRemap, '10.1.1.0/30');
  // 10.0.0.0/9 holds the pod and service CIDRs, 10.128.0.0/9 is free.
  assert.equal(ipam.lookup('p9')?.podRemap, '10.128.0.0/9');
  assertDisjoint(ipam, { ...BASE, maxRemoteCIDRSize: 8 });
});

test('pools are tried in order', () => {
  const config: IpamConfig = { ...BASE, pools: ['172.16.0.0/12', '10.0.0.0/8'], maxRemoteCIDRSize: 8 };
  const ipam = new Ipam(config);
  assert.equal(ipam.externalCIDR(), '172.16.0.0/16');
  assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/16'), '172.17.0.0/16');
  // A /11 does not fit in 172.16.0.0/12 once a /16 is used: next pool.
  assert.equal(ipam.remapPodCIDR('c', '10.96.0.0/11'), '10.32.0.0/11');
});

// ---- idempotence and re-announcement ----

test('idempotent per peer; a different announcement re-allocates and frees the old block', () => {
  const ipam = new Ipam(BASE);
  const first = ipam.remapPodCIDR('b', '10.0.0.0/16');
  const before = JSON.stringify(ipam.snapshot());
  for (let i = 0; i < 3; i++) assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/16'), first);
  assert.equal(JSON.stringify(ipam.snapshot()), before);

  const ext = ipam.remapExternalCIDR('b', '10.1.0.0/16');
  assert.equal(ipam.remapExternalCIDR('b', '10.1.0.0/16'), ext);

  // Re-announce a different pod CIDR (different size): a new block. The peer's own old block
  // counts as free, so the lowest /20 is the start of it.
  assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/20'), '10.1.0.0/20');
  assert.equal(ipam.lookup('b')?.externalRemap, ext, 'the external remap is untouched');
  assert.equal(ipam.snapshot().peers.b?.remotePodCIDR, '10.0.0.0/20');
  // Re-announcing a free real CIDR keeps it, and the old block goes back to the pool.
  assert.equal(ipam.remapPodCIDR('b', '10.77.0.0/16'), '10.77.0.0/16');
  assert.equal(ipam.remapPodCIDR('c', '10.0.0.0/16'), first, 'the old block went back to the pool');
  assertDisjoint(ipam, BASE);
});

test('a repeated announcement keeps its block even when a lower one has been freed', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/16'), '10.1.0.0/16');
  assert.equal(ipam.remapPodCIDR('c', '10.0.0.0/16'), '10.2.0.0/16');
  assert.equal(ipam.remapExternalCIDR('c', '10.1.0.0/16'), '10.3.0.0/16');
  ipam.release('b');
  assert.equal(ipam.remapPodCIDR('c', '10.0.0.0/16'), '10.2.0.0/16');
  assert.equal(ipam.remapExternalCIDR('c', '10.1.0.0/16'), '10.3.0.0/16');
  // Also across a restart.
  const restored = new Ipam(BASE, clone(ipam.snapshot()));
  assert.equal(restored.remapPodCIDR('c', '10.0.0.0/16'), '10.2.0.0/16');
  assert.equal(restored.remapExternalCIDR('c', '10.1.0.0/16'), '10.3.0.0/16');
  // A newcomer gets the freed block.
  assert.equal(restored.remapPodCIDR('d', '10.0.0.0/16'), '10.1.0.0/16');
});

test('re-announcing a clashing CIDR of the same size may reuse the peer\'s own block', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/16'), '10.1.0.0/16');
  // The peer renumbers to the service range: still clashing, same size, own old block is free.
  assert.equal(ipam.remapPodCIDR('b', '10.96.0.0/16'), '10.1.0.0/16');
  assert.equal(ipam.snapshot().peers.b?.remotePodCIDR, '10.96.0.0/16');
  // Renumbering to the peer's own stand-in is not a clash with itself.
  assert.equal(ipam.remapPodCIDR('b', '10.1.0.0/16'), '10.1.0.0/16');
});

test('external CIDR: allocated once, avoids stand-ins, needs the peer\'s pod CIDR first', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.1.0.0/16'), '10.1.0.0/16');
  const ext = ipam.externalCIDR();
  assert.equal(ext, '10.2.0.0/16');
  assert.equal(ipam.externalCIDR(), ext);
  ipam.release('b');
  assert.equal(ipam.externalCIDR(), ext, 'never moves once allocated');
  rejects(() => ipam.remapExternalCIDR('nobody', '10.9.0.0/16'), 'UnknownPeer', /remapPodCIDR first/);
  ipam.remapPodCIDR('c', '10.9.0.0/16');
  rejects(() => ipam.remapExternalCIDR('c', '10.9.0.0/24'), 'Overlap', /its own pod CIDR/);
  ipam.remapExternalCIDR('c', '10.8.0.0/16');
  rejects(() => ipam.remapPodCIDR('c', '10.8.0.0/20'), 'Overlap', /its own external CIDR/);
  assert.deepEqual(ipam.lookup('c'), { podRemap: '10.9.0.0/16', externalRemap: '10.8.0.0/16' });
});

test('release frees the ranges; releasing an unknown peer is a no-op', () => {
  const ipam = new Ipam(BASE);
  const b = ipam.remapPodCIDR('b', '10.0.0.0/16');
  ipam.remapExternalCIDR('b', '10.1.0.0/16');
  ipam.release('b');
  ipam.release('b');
  ipam.release('never-seen');
  assert.equal(ipam.lookup('b'), undefined);
  assert.deepEqual(ipam.snapshot().peers, {});
  assert.equal(ipam.remapPodCIDR('c', '10.0.0.0/16'), b);
});

// ---- snapshots ----

test('snapshot round trip: a new Ipam gives identical answers, including after release and re-allocation', () => {
  const live = new Ipam(BASE);
  live.externalCIDR();
  for (const id of ['b', 'c', 'd', 'e']) live.remapPodCIDR(id, '10.0.0.0/16');
  live.remapExternalCIDR('b', '10.1.0.0/16');
  live.remapExternalCIDR('d', '10.1.0.0/16');
  live.remapPodCIDR('f', '10.150.0.0/16');
  live.release('c'); // leaves a hole
  live.remapPodCIDR('e', '10.0.0.0/20'); // re-allocation leaves another
  const saved = JSON.stringify(live.snapshot());

  const restored = new Ipam(BASE, JSON.parse(saved) as IpamSnapshot);
  assert.equal(JSON.stringify(restored.snapshot()), saved);
  assert.equal(restored.externalCIDR(), live.externalCIDR());
  for (const id of ['b', 'c', 'd', 'e', 'f']) assert.deepEqual(restored.lookup(id), live.lookup(id), id);
  // Same calls again are no-ops on both.
  assert.equal(restored.remapPodCIDR('b', '10.0.0.0/16'), live.remapPodCIDR('b', '10.0.0.0/16'));
  assert.equal(restored.remapExternalCIDR('d', '10.1.0.0/16'), live.remapExternalCIDR('d', '10.1.0.0/16'));
  // New work fills the holes identically on both.
  for (const [id, cidr] of [
    ['g', '10.0.0.0/16'],
    ['h', '10.0.0.0/20'],
    ['b', '10.0.0.0/24'],
    ['c', '10.0.0.0/16'],
  ] as const) {
    assert.equal(restored.remapPodCIDR(id, cidr), live.remapPodCIDR(id, cidr), `${id} ${cidr}`);
  }
  assert.equal(JSON.stringify(restored.snapshot()), JSON.stringify(live.snapshot()));
  assertDisjoint(restored, BASE);
});

test('snapshot ordering is stable regardless of allocation order', () => {
  const one = new Ipam(BASE);
  const two = new Ipam(BASE);
  one.remapPodCIDR('zeta', '10.40.0.0/16');
  one.remapPodCIDR('alpha', '10.41.0.0/16');
  two.remapPodCIDR('alpha', '10.41.0.0/16');
  two.remapPodCIDR('zeta', '10.40.0.0/16');
  assert.equal(JSON.stringify(one.snapshot()), JSON.stringify(two.snapshot()));
  assert.deepEqual(Object.keys(one.snapshot().peers), ['alpha', 'zeta']);
});

test('a peer id that is an object-prototype name stays an ordinary key', () => {
  const ipam = new Ipam(BASE);
  ipam.remapPodCIDR('__proto__', '10.0.0.0/16');
  ipam.remapPodCIDR('constructor', '10.0.0.0/16');
  const snap = ipam.snapshot();
  assert.deepEqual(Object.keys(snap.peers).sort(), ['__proto__', 'constructor']);
  const restored = new Ipam(BASE, JSON.parse(JSON.stringify(snap)) as IpamSnapshot);
  assert.deepEqual(restored.lookup('__proto__'), ipam.lookup('__proto__'));
  assert.deepEqual(restored.lookup('constructor'), ipam.lookup('constructor'));
});

function sampleSnapshot(): IpamSnapshot {
  const ipam = new Ipam(BASE);
  ipam.externalCIDR(); // 10.1.0.0/16
  ipam.remapPodCIDR('b', '10.0.0.0/16'); // 10.2.0.0/16
  ipam.remapExternalCIDR('b', '10.1.0.0/16'); // 10.3.0.0/16
  ipam.remapPodCIDR('c', '10.50.0.0/16'); // kept
  return ipam.snapshot();
}

test('a snapshot that no longer fits a changed config is rejected with a reason', () => {
  const snap = sampleSnapshot();
  assert.equal(snap.peers.b?.podRemap, '10.2.0.0/16');
  // A new reserved range now covers peer b's remap.
  rejects(
    () => new Ipam({ ...BASE, reserved: ['10.2.128.0/17'] }, clone(snap)),
    'SnapshotConflict',
    /stand-in 10\.2\.0\.0\/16 of peer "b".*reserved range 10\.2\.128\.0\/17/,
  );
  // The pod CIDR grew over our external CIDR.
  rejects(() => new Ipam({ ...BASE, podCIDR: '10.0.0.0/15' }, clone(snap)), 'SnapshotConflict', /external CIDR 10\.1\.0\.0\/16/);
  // A new node network over a kept real CIDR.
  rejects(() => new Ipam({ ...BASE, nodeCIDRs: ['10.50.3.0/24'] }, clone(snap)), 'SnapshotConflict', /peer "c"/);
  // The service CIDR moved over an external remap.
  rejects(() => new Ipam({ ...BASE, serviceCIDR: '10.3.0.0/16' }, clone(snap)), 'SnapshotConflict', /external CIDR stand-in 10\.3\.0\.0\/16/);
  // Pools no longer contain allocated remaps.
  rejects(() => new Ipam({ ...BASE, pools: ['172.16.0.0/12'] }, clone(snap)), 'SnapshotConflict', /outside every configured pool/);
  // The external CIDR size changed.
  rejects(() => new Ipam({ ...BASE, externalPrefixLength: 20 }, clone(snap)), 'SnapshotConflict', /externalPrefixLength is 20/);
  // The unchanged config still loads it.
  assert.deepEqual(new Ipam(BASE, clone(snap)).snapshot(), snap);
  // A kept real CIDR outside the pools is not a conflict.
  const kept = clone(snap);
  kept.peers.d = { remotePodCIDR: '100.64.0.0/16', podRemap: '100.64.0.0/16', remoteExternalCIDR: null, externalRemap: null };
  assert.equal(new Ipam(BASE, kept).lookup('d')?.podRemap, '100.64.0.0/16');
});

test('a malformed or self-contradicting snapshot is rejected as InvalidSnapshot', () => {
  const mutate = (fn: (s: Record<string, any>) => void): IpamSnapshot => {
    const s = clone(sampleSnapshot()) as Record<string, any>;
    fn(s);
    return s as IpamSnapshot;
  };
  const cases: Array<[string, IpamSnapshot | unknown]> = [
    ['not an object', 'hello'],
    ['null', null],
    ['version 2', mutate((s) => (s.version = 2))],
    ['no peers', mutate((s) => delete s.peers)],
    ['peers is a list', mutate((s) => (s.peers = []))],
    ['external host bits', mutate((s) => (s.externalCIDR = '10.1.0.1/16'))],
    ['remap garbage', mutate((s) => (s.peers.b.podRemap = 'nope'))],
    ['remap size differs', mutate((s) => (s.peers.b.podRemap = '10.2.0.0/17'))],
    ['remote pod /32', mutate((s) => (s.peers.b.remotePodCIDR = '10.0.0.1/32'))],
    ['half an external', mutate((s) => (s.peers.b.externalRemap = null))],
    ['missing external fields', mutate((s) => delete s.peers.c.remoteExternalCIDR)],
    ['two stand-ins overlap', mutate((s) => (s.peers.c.podRemap = '10.2.0.0/16'))],
    ['stand-in inside our external', mutate((s) => ((s.peers.c.remotePodCIDR = '10.1.4.0/24'), (s.peers.c.podRemap = '10.1.4.0/24')))],
    ['remote pod/external overlap', mutate((s) => (s.peers.b.remoteExternalCIDR = '10.0.0.0/16'))],
    ['IPv6', mutate((s) => (s.peers.b.podRemap = 'fd00::/16'))],
    ['empty peer id', mutate((s) => (s.peers[''] = s.peers.c))],
  ];
  for (const [why, snap] of cases) {
    const err = rejects(() => new Ipam(BASE, snap as IpamSnapshot), 'InvalidSnapshot');
    assert.match(err.message, /snapshot/, why);
  }
});

// ---- exhaustion ----

test('pool exhaustion: clear error, nothing lost, and a release makes room', () => {
  const config: IpamConfig = { ...BASE, pools: ['10.0.0.0/14'] }; // 10.0-10.3, 10.0 is the pod CIDR
  const ipam = new Ipam(config);
  assert.equal(ipam.remapPodCIDR('b', '10.0.0.0/16'), '10.1.0.0/16');
  assert.equal(ipam.remapPodCIDR('c', '10.0.0.0/16'), '10.2.0.0/16');
  assert.equal(ipam.remapPodCIDR('d', '10.0.0.0/16'), '10.3.0.0/16');
  const before = JSON.stringify(ipam.snapshot());
  rejects(() => ipam.remapPodCIDR('e', '10.0.0.0/16'), 'PoolExhausted', /no free \/16 block.*10\.0\.0\.0\/14.*peer "e".*local pod CIDR/);
  rejects(() => ipam.externalCIDR(), 'PoolExhausted', /our external CIDR/);
  // A failing re-announcement keeps the old allocation.
  rejects(() => ipam.remapPodCIDR('b', '10.0.0.0/15'), 'PoolExhausted');
  assert.equal(JSON.stringify(ipam.snapshot()), before, 'failures change nothing');
  assert.equal(ipam.lookup('e'), undefined);
  assert.equal(ipam.lookup('b')?.podRemap, '10.1.0.0/16');
  // Smaller blocks still fit where nothing was allocated? No: the pool is full.
  rejects(() => ipam.remapPodCIDR('f', '10.0.0.0/24'), 'PoolExhausted');
  // A real CIDR that clashes with nothing is still not kept outside the pools.
  rejects(() => ipam.remapPodCIDR('f', '10.50.0.0/24'), 'PoolExhausted', /10\.50\.0\.0\/24 lies outside the remap pools/);
  ipam.release('c');
  assert.equal(ipam.remapPodCIDR('e', '10.0.0.0/16'), '10.2.0.0/16');
});

test('a clashing /8 cannot be remapped in the default pools; no pools at all means nothing can be placed', () => {
  const ipam = new Ipam({ ...BASE, maxRemoteCIDRSize: 8 });
  rejects(() => ipam.remapPodCIDR('b', '10.0.0.0/8'), 'PoolExhausted', /\/8/);
  const none = new Ipam({ ...BASE, pools: [] });
  rejects(() => none.remapPodCIDR('b', '10.5.0.0/16'), 'PoolExhausted', /none configured/);
  rejects(() => none.remapPodCIDR('c', '10.0.0.0/16'), 'PoolExhausted', /none configured/);
  rejects(() => none.externalCIDR(), 'PoolExhausted');
});

// ---- bad input ----

test('bad remote CIDRs are rejected with a reason and change nothing', () => {
  const ipam = new Ipam(BASE);
  ipam.remapPodCIDR('b', '10.0.0.0/16');
  const before = JSON.stringify(ipam.snapshot());
  const cases: Array<[string, string, RegExp]> = [
    ['10.0.0.1/16', 'InvalidCIDR', /host bits set.*10\.0\.0\.0\/16/],
    ['0.0.0.0/0', 'InvalidCIDR', /between \/8 and \/30/],
    ['10.0.0.0/7', 'InvalidCIDR', /between \/8 and \/30/],
    ['8.0.0.0/7', 'InvalidCIDR', /between \/8 and \/30/],
    ['10.0.0.1/32', 'InvalidCIDR', /between \/8 and \/30/],
    ['10.0.0.0/31', 'InvalidCIDR', /between \/8 and \/30/],
    ['garbage', 'InvalidCIDR', /not an IPv4 address|no prefix length/],
    ['', 'InvalidCIDR', /no prefix length/],
    ['10.0.0.0', 'InvalidCIDR', /no prefix length/],
    ['300.0.0.0/8', 'InvalidCIDR', /0-255/],
    ['0.0.0.0/8', 'InvalidCIDR', /"this network"/],
    ['0.0.0.0/16', 'InvalidCIDR', /"this network"/],
    ['127.0.0.0/8', 'InvalidCIDR', /loopback/],
    ['169.254.0.0/16', 'InvalidCIDR', /link-local/],
    ['224.0.0.0/8', 'InvalidCIDR', /multicast/],
    ['240.0.0.0/8', 'InvalidCIDR', /240\.0\.0\.0\/4/],
    ['fd00::/48', 'Unsupported', /IPv6/],
  ];
  for (const [cidr, reason, message] of cases) {
    rejects(() => ipam.remapPodCIDR('b', cidr), reason, message);
    rejects(() => ipam.remapPodCIDR('new', cidr), reason, message);
    rejects(() => ipam.remapExternalCIDR('b', cidr), reason, message);
  }
  // The message names the peer and what it announced, for the status condition.
  rejects(() => ipam.remapPodCIDR('gpu-cloud', '10.0.0.1/16'), 'InvalidCIDR', /pod CIDR of peer "gpu-cloud"/);
  rejects(() => ipam.remapPodCIDR('', '10.0.0.0/16'), 'InvalidPeer');
  rejects(() => ipam.remapPodCIDR(undefined as unknown as string, '10.0.0.0/16'), 'InvalidPeer');
  assert.equal(JSON.stringify(ipam.snapshot()), before);
});

test('bad configs are rejected with a reason', () => {
  rejects(() => new Ipam({ ...BASE, serviceCIDR: '10.0.128.0/17' }), 'Overlap', /podCIDR 10\.0\.0\.0\/16 overlaps serviceCIDR/);
  rejects(() => new Ipam({ ...BASE, podCIDR: '10.0.0.0/8' }), 'Overlap');
  rejects(() => new Ipam({ ...BASE, podCIDR: '10.0.0.1/16' }), 'InvalidCIDR', /podCIDR.*host bits/);
  rejects(() => new Ipam({ ...BASE, serviceCIDR: 'nope' }), 'InvalidCIDR', /serviceCIDR/);
  rejects(() => new Ipam({ ...BASE, podCIDR: 'fd00::/48' }), 'Unsupported');
  rejects(() => new Ipam({ ...BASE, nodeCIDRs: ['192.168.10.1/24'] }), 'InvalidCIDR', /nodeCIDRs\[0\]/);
  rejects(() => new Ipam({ ...BASE, nodeCIDRs: '192.168.10.0/24' as unknown as string[] }), 'InvalidConfig');
  rejects(() => new Ipam({ ...BASE, reserved: ['0.0.0.0/0'] }), 'InvalidCIDR', /every address/);
  rejects(() => new Ipam({ ...BASE, pools: ['10.0.0.0/8', '10.128.0.0/9'] }), 'Overlap', /pools/);
  rejects(() => new Ipam({ ...BASE, pools: ['10.0.0.0/8', 'x'] }), 'InvalidCIDR', /pools\[1\]/);
  for (const len of [7, 31, 16.5, NaN, '16' as unknown as number]) {
    rejects(() => new Ipam({ ...BASE, externalPrefixLength: len }), 'InvalidConfig', /externalPrefixLength/);
  }
  rejects(() => new Ipam(null as unknown as IpamConfig), 'InvalidConfig');
  // The boundaries are accepted.
  assert.equal(new Ipam({ ...BASE, externalPrefixLength: 30 }).externalCIDR(), '10.1.0.0/30');
  assert.equal(new Ipam({ ...BASE, nodeCIDRs: [] }).remapPodCIDR('b', '192.168.10.0/24'), '192.168.10.0/24');
});

test('a snapshot whose empty peer map came back as null (how an API server stores it) restores as no peers', () => {
  const ipam = new Ipam(BASE);
  const stored = { ...clone(ipam.snapshot()), peers: null } as unknown as ReturnType<Ipam['snapshot']>;
  const restored = new Ipam(BASE, stored);
  assert.deepEqual(restored.snapshot().peers, {});
  assert.equal(restored.externalCIDR(), ipam.externalCIDR());
  assert.throws(() => new Ipam(BASE, { ...clone(ipam.snapshot()), peers: [] } as unknown as ReturnType<Ipam['snapshot']>), /"peers" must be an object/);
});

// ---- hostile announcements: remote ranges live only in the pools ----

test('a public range is never kept: it is placed in a pool (no hijack of 8.8.8.8 or a VPC resolver)', () => {
  const ipam = new Ipam(BASE);
  for (const [id, real] of [['dns', '8.8.8.0/24'], ['wide', '8.0.0.0/12'], ['cloud', '52.94.0.0/16'], ['api', '34.120.0.0/14']] as const) {
    const remap = ipam.remapPodCIDR(id, real);
    assert.notEqual(remap, real, `${id}: ${real} kept`);
    assert.ok(DEFAULT_POOLS.some((p) => contains(parseCidr(p), parseCidr(remap))), `${id}: ${real} → ${remap}, outside the default pools`);
    assert.equal(bitsOf(remap), bitsOf(real));
  }
  assertDisjoint(ipam, BASE);
});

test('a private range that clashes with nothing is kept; 100.64.0.0/10 (CGNAT space) is a default pool', () => {
  const ipam = new Ipam(BASE);
  assert.equal(ipam.remapPodCIDR('b', '10.244.0.0/16'), '10.244.0.0/16');
  assert.equal(ipam.remapPodCIDR('c', '100.72.0.0/16'), '100.72.0.0/16');
  assert.ok(DEFAULT_POOLS.includes('100.64.0.0/10'));
});

test('an announcement larger than maxRemoteCIDRSize (default /12) is refused with a reason and changes nothing', () => {
  const ipam = new Ipam(BASE);
  ipam.remapPodCIDR('b', '10.0.0.0/16');
  const before = JSON.stringify(ipam.snapshot());
  rejects(() => ipam.remapPodCIDR('x', '8.0.0.0/8'), 'TooLarge', /8\.0\.0\.0\/8 is larger than this cluster accepts.*\/12 at most/);
  rejects(() => ipam.remapPodCIDR('b', '10.0.0.0/11'), 'TooLarge');
  rejects(() => ipam.remapExternalCIDR('b', '172.0.0.0/11'), 'TooLarge');
  assert.equal(JSON.stringify(ipam.snapshot()), before);
  assert.equal(new Ipam({ ...BASE, maxRemoteCIDRSize: 10 }).remapPodCIDR('b', '10.128.0.0/10'), '10.128.0.0/10');
  rejects(() => new Ipam({ ...BASE, maxRemoteCIDRSize: 7 }), 'InvalidConfig', /maxRemoteCIDRSize/);
});

test('a snapshot from before the pool rule: a peer kept outside the pools is dropped on load and placed anew; the others stay', () => {
  const snap: IpamSnapshot = {
    version: 1,
    externalCIDR: '10.1.0.0/16',
    peers: {
      evil: { remotePodCIDR: '8.0.0.0/12', podRemap: '8.0.0.0/12', remoteExternalCIDR: null, externalRemap: null },
      good: { remotePodCIDR: '10.0.0.0/16', podRemap: '10.2.0.0/16', remoteExternalCIDR: '10.3.0.0/24', externalRemap: '10.3.0.0/24' },
    },
  };
  const ipam = new Ipam(BASE, snap);
  assert.match(ipam.droppedOnLoad().join('\n'), /8\.0\.0\.0\/12 of peer "evil" lies outside the remap pools/);
  assert.equal(ipam.lookup('evil'), undefined);
  assert.deepEqual(ipam.lookup('good'), { podRemap: '10.2.0.0/16', externalRemap: '10.3.0.0/24' });
  assert.notEqual(ipam.remapPodCIDR('evil', '8.0.0.0/12'), '8.0.0.0/12');
});
