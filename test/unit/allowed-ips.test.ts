import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowedIps } from '../../src/wireguard/allowed-ips.ts';
import { formatPrefix, maskBytes, prefixKey } from '../../src/wireguard/prefix.ts';
import type { Prefix } from '../../src/wireguard/prefix.ts';
import { addressOf as addr, prefixOf as p, xorshiftRandom } from './helpers.ts';

// ---- helpers ----

function ip4(a: number, b: number, c: number, d: number): Uint8Array {
  return Uint8Array.of(a, b, c, d);
}

/** An IPv6 address from four big-endian 32-bit words, as the kernel selftest writes them. */
function ip6(a: number, b: number, c: number, d: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  [a, b, c, d].forEach((w, i) => view.setUint32(i * 4, w >>> 0, false));
  return out;
}

/** A prefix whose host bits may be set ("maskself is required" cases in the kernel selftest). */
function raw(family: 4 | 6, bytes: Uint8Array, bits: number): Prefix {
  return { family, bits, bytes };
}




/** Bit-by-bit containment test, the slow and obvious way. */
function contains(prefix: Prefix, address: Uint8Array): boolean {
  for (let i = 0; i < prefix.bits; i++) {
    const mask = 0x80 >> (i & 7);
    if ((prefix.bytes[i >> 3]! & mask) !== (address[i >> 3]! & mask)) return false;
  }
  return true;
}

/** The obviously correct reference: a flat list scanned linearly (the kernel's "horrible" table). */
class NaiveTable<T> {
  entries = new Map<string, { prefix: Prefix; value: T }>();

  insert(prefix: Prefix, value: T): void {
    const masked = { ...prefix, bytes: maskBytes(prefix.bytes, prefix.bits) };
    const key = prefixKey(masked);
    if (this.entries.get(key)?.value === value) return; // re-insertion by the owner changes nothing
    this.entries.delete(key); // a moved prefix goes to the end of its new owner's list
    this.entries.set(key, { prefix: masked, value });
  }

  remove(prefix: Prefix, value: T): boolean {
    const key = prefixKey({ ...prefix, bytes: maskBytes(prefix.bytes, prefix.bits) });
    const e = this.entries.get(key);
    if (!e || e.value !== value) return false;
    this.entries.delete(key);
    return true;
  }

  removeValue(value: T): void {
    for (const [k, e] of this.entries) if (e.value === value) this.entries.delete(k);
  }

  lookup(family: 4 | 6, address: Uint8Array): T | undefined {
    let best: { prefix: Prefix; value: T } | undefined;
    for (const e of this.entries.values()) {
      if (e.prefix.family !== family || (best && e.prefix.bits <= best.prefix.bits)) continue;
      if (contains(e.prefix, address)) best = e;
    }
    return best?.value;
  }

  prefixesOf(value: T): string[] {
    return [...this.entries.values()].filter((e) => e.value === value).map((e) => formatPrefix(e.prefix));
  }
}

// ---- the kernel selftest/allowedips.c cases ----

test('kernel selftest: overlapping prefixes, /0, host routes, moves, masking', () => {
  const t = new AllowedIps<string>();
  const insert = (family: 4 | 6, v: string, bytes: Uint8Array, bits: number) => t.insert(raw(family, bytes, bits), v);
  insert(4, 'a', ip4(192, 168, 4, 0), 24);
  insert(4, 'b', ip4(192, 168, 4, 4), 32);
  insert(4, 'c', ip4(192, 168, 0, 0), 16);
  insert(4, 'd', ip4(192, 95, 5, 64), 27);
  insert(4, 'c', ip4(192, 95, 5, 65), 27); // replaces the previous entry; host bits must be masked
  insert(6, 'd', ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128);
  insert(6, 'c', ip6(0x26075300, 0x60006b00, 0, 0), 64);
  insert(4, 'e', ip4(0, 0, 0, 0), 0);
  insert(6, 'e', ip6(0, 0, 0, 0), 0);
  insert(6, 'f', ip6(0, 0, 0, 0), 0); // replaces the previous entry
  insert(6, 'g', ip6(0x24046800, 0, 0, 0), 32);
  insert(6, 'h', ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 64);
  insert(6, 'a', ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 128);
  insert(6, 'c', ip6(0x24446800, 0x40e40800, 0xdeaebeef, 0x0defbeef), 128);
  insert(6, 'b', ip6(0x24446800, 0xf0e40800, 0xeeaebeef, 0), 98);
  insert(4, 'g', ip4(64, 15, 112, 0), 20);
  insert(4, 'h', ip4(64, 15, 123, 211), 25);
  insert(4, 'a', ip4(10, 0, 0, 0), 25);
  insert(4, 'b', ip4(10, 0, 0, 128), 25);
  insert(4, 'a', ip4(10, 1, 0, 0), 30);
  insert(4, 'b', ip4(10, 1, 0, 4), 30);
  insert(4, 'c', ip4(10, 1, 0, 8), 29);
  insert(4, 'd', ip4(10, 1, 0, 16), 29);

  const cases: [string, 4 | 6, Uint8Array][] = [
    ['a', 4, ip4(192, 168, 4, 20)],
    ['a', 4, ip4(192, 168, 4, 0)],
    ['b', 4, ip4(192, 168, 4, 4)],
    ['c', 4, ip4(192, 168, 200, 182)],
    ['c', 4, ip4(192, 95, 5, 68)],
    ['e', 4, ip4(192, 95, 5, 96)],
    ['d', 6, ip6(0x26075300, 0x60006b00, 0, 0xc05f0543)],
    ['c', 6, ip6(0x26075300, 0x60006b00, 0, 0xc02e01ee)],
    ['f', 6, ip6(0x26075300, 0x60006b01, 0, 0)],
    ['g', 6, ip6(0x24046800, 0x40040806, 0, 0x1006)],
    ['g', 6, ip6(0x24046800, 0x40040806, 0x1234, 0x5678)],
    ['f', 6, ip6(0x240467ff, 0x40040806, 0x1234, 0x5678)],
    ['f', 6, ip6(0x24046801, 0x40040806, 0x1234, 0x5678)],
    ['h', 6, ip6(0x24046800, 0x40040800, 0x1234, 0x5678)],
    ['h', 6, ip6(0x24046800, 0x40040800, 0, 0)],
    ['h', 6, ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010)],
    ['a', 6, ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)],
    ['g', 4, ip4(64, 15, 116, 26)],
    ['g', 4, ip4(64, 15, 127, 3)],
    ['g', 4, ip4(64, 15, 123, 1)],
    ['h', 4, ip4(64, 15, 123, 128)],
    ['h', 4, ip4(64, 15, 123, 129)],
    ['a', 4, ip4(10, 0, 0, 52)],
    ['b', 4, ip4(10, 0, 0, 220)],
    ['a', 4, ip4(10, 1, 0, 2)],
    ['b', 4, ip4(10, 1, 0, 6)],
    ['c', 4, ip4(10, 1, 0, 10)],
    ['d', 4, ip4(10, 1, 0, 20)],
  ];
  cases.forEach(([want, family, address], i) => {
    assert.equal(t.lookup(family, address), want, `case ${i + 1}: ${Buffer.from(address).toString('hex')}`);
  });

  // Host routes across the whole first octet, then removal by owner.
  for (const first of [1, 64, 128, 192, 255]) t.insert(raw(4, ip4(first, 0, 0, 0), 32), 'a');
  t.removeValue('a');
  for (const first of [1, 64, 128, 192, 255]) assert.notEqual(t.lookup(4, ip4(first, 0, 0, 0)), 'a');
  assert.deepEqual(t.prefixesOf('a'), []);
});

test('kernel selftest: nested prefixes of one owner are all removed', () => {
  const t = new AllowedIps<string>();
  t.insert(p('192.168.0.0/16'), 'a');
  t.insert(p('192.168.0.0/24'), 'a');
  t.removeValue('a');
  assert.equal(t.lookup(4, ip4(192, 168, 0, 1)), undefined);
  assert.equal(t.size, 0);
});

test('kernel selftest: 128 host routes differing in one bit each, then cleared', () => {
  const t = new AllowedIps<string>();
  for (let i = 0; i < 128; i++) {
    const bytes = new Uint8Array(16).fill(0xff);
    // Clear bit (i % 64) of the low 64 bits when i < 64, of the high 64 bits otherwise.
    const bit = i % 64;
    const half = i < 64 ? 8 : 0;
    bytes[half + 7 - (bit >> 3)]! &= ~(1 << (bit & 7));
    t.insert(raw(6, bytes, 128), 'a');
  }
  assert.equal(t.size, 128);
  assert.equal(t.lookup(6, new Uint8Array(16).fill(0xff)), undefined, 'all-ones itself was never inserted');
  t.removeValue('a');
  assert.equal(t.size, 0);
  assert.equal(t.nodeCount(), 0);
});

test('kernel selftest: listing a peer returns masked prefixes', () => {
  const t = new AllowedIps<string>();
  t.insert(raw(4, ip4(192, 95, 5, 93), 27), 'a');
  t.insert(raw(6, ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128), 'a');
  t.insert(raw(4, ip4(10, 1, 0, 20), 29), 'a');
  t.insert(raw(6, ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83), 'a');
  t.insert(raw(6, ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21), 'a');
  const listed = t.prefixesOf('a').map((x) => `${x.family}|${Buffer.from(x.bytes).toString('hex')}/${x.bits}`);
  assert.deepEqual(listed, [
    `4|${Buffer.from(ip4(192, 95, 5, 64)).toString('hex')}/27`,
    `6|${Buffer.from(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543)).toString('hex')}/128`,
    `4|${Buffer.from(ip4(10, 1, 0, 16)).toString('hex')}/29`,
    `6|${Buffer.from(ip6(0x26075300, 0x6d8a6bf8, 0xdab1e000, 0)).toString('hex')}/83`,
    `6|${Buffer.from(ip6(0x26075000, 0, 0, 0)).toString('hex')}/21`,
  ]);
});

// ---- behaviour the device relies on ----

test('/0, /32 and /128 boundaries', () => {
  const t = new AllowedIps<string>();
  t.insert(p('0.0.0.0/0'), 'default4');
  t.insert(p('::/0'), 'default6');
  t.insert(p('203.0.113.7/32'), 'host4');
  t.insert(p('2001:db8::7/128'), 'host6');
  assert.equal(t.lookup(...addr('203.0.113.7')), 'host4');
  assert.equal(t.lookup(...addr('203.0.113.6')), 'default4');
  assert.equal(t.lookup(...addr('255.255.255.255')), 'default4');
  assert.equal(t.lookup(...addr('2001:db8::7')), 'host6');
  assert.equal(t.lookup(...addr('2001:db8::8')), 'default6');
  assert.equal(t.lookup(...addr('::')), 'default6');
  // Families never mix, even for "the same" bytes.
  const v4 = new AllowedIps<string>();
  v4.insert(p('0.0.0.0/0'), 'x');
  assert.equal(v4.lookup(6, new Uint8Array(16)), undefined);
  assert.equal(v4.lookup(...addr('::ffff:1.2.3.4')), undefined);
  // Wrong-length addresses find nothing rather than reading out of bounds.
  assert.equal(t.lookup(4, new Uint8Array(16)), undefined);
  assert.equal(t.lookup(6, new Uint8Array(4)), undefined);
  // Removing the default leaves the host route alone.
  assert.ok(t.remove(p('0.0.0.0/0'), 'default4'));
  assert.equal(t.lookup(...addr('203.0.113.6')), undefined);
  assert.equal(t.lookup(...addr('203.0.113.7')), 'host4');
});

test('moving ownership: insert by another value moves the prefix, remove needs the owner', () => {
  const t = new AllowedIps<string>();
  t.insert(p('10.0.0.0/8'), 'a');
  t.insert(p('10.1.0.0/16'), 'a');
  t.insert(p('10.0.0.0/8'), 'b');
  assert.equal(t.lookup(...addr('10.9.9.9')), 'b');
  assert.equal(t.lookup(...addr('10.1.9.9')), 'a');
  assert.deepEqual(t.prefixesOf('a').map(formatPrefix), ['10.1.0.0/16']);
  assert.deepEqual(t.prefixesOf('b').map(formatPrefix), ['10.0.0.0/8']);
  assert.equal(t.size, 2);
  assert.equal(t.remove(p('10.0.0.0/8'), 'a'), false, 'no longer a\'s');
  assert.equal(t.lookup(...addr('10.9.9.9')), 'b');
  assert.equal(t.remove(p('10.0.0.0/9'), 'b'), false, 'not an exact match');
  assert.ok(t.remove(p('10.0.0.0/8'), 'b'));
  assert.equal(t.remove(p('10.0.0.0/8'), 'b'), false, 'already gone');
  assert.equal(t.lookup(...addr('10.9.9.9')), undefined);
  assert.equal(t.lookup(...addr('10.1.9.9')), 'a');
  // Re-inserting by the same owner is a no-op.
  t.insert(p('10.1.0.0/16'), 'a');
  assert.equal(t.size, 1);
  assert.deepEqual([...t.values()], ['a']);
});

test('prefixesOf keeps insertion order; a prefix moved back goes last', () => {
  const t = new AllowedIps<number>();
  const texts = ['10.0.0.0/8', 'fd00::/8', '192.168.1.0/24', '0.0.0.0/0', '2001:db8::/32', '10.0.0.1/32'];
  for (const x of texts) t.insert(p(x), 1);
  assert.deepEqual(t.prefixesOf(1).map(formatPrefix), texts);
  t.insert(p('192.168.1.0/24'), 2);
  t.insert(p('192.168.1.0/24'), 1);
  assert.deepEqual(t.prefixesOf(1).map(formatPrefix), [...texts.filter((x) => x !== '192.168.1.0/24'), '192.168.1.0/24']);
  // The listing is a copy: mutating it does not touch the table.
  t.prefixesOf(1)[0]!.bytes.fill(0xff);
  assert.equal(t.lookup(...addr('10.2.3.4')), 1);
  // And the table does not alias the caller's bytes.
  const mine = p('172.16.0.0/12');
  t.insert(mine, 3);
  mine.bytes.fill(0);
  assert.equal(t.lookup(...addr('172.20.0.1')), 3);
  assert.equal(t.countOf(1), texts.length);
});

test('invalid prefixes are refused loudly', () => {
  const t = new AllowedIps<string>();
  assert.throws(() => t.insert({ family: 4, bits: 33, bytes: new Uint8Array(4) }, 'x'), RangeError);
  assert.throws(() => t.insert({ family: 6, bits: 64, bytes: new Uint8Array(4) }, 'x'), RangeError);
  assert.throws(() => t.insert({ family: 4, bits: -1, bytes: new Uint8Array(4) }, 'x'), RangeError);
  assert.equal(t.size, 0);
});

// ---- randomised comparison against the naive table ----

function randomBytesFrom(rand: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/** Keep the first `keep` bits of `base`, randomise the rest (clustered prefixes, as the kernel does). */
function mutate(rand: () => number, base: Uint8Array, keep: number): Uint8Array {
  const out = randomBytesFrom(rand, base.length);
  for (let i = 0; i < base.length * 8 && i < keep; i++) {
    const mask = 0x80 >> (i & 7);
    out[i >> 3] = (out[i >> 3]! & ~mask) | (base[i >> 3]! & mask);
  }
  return out;
}

function compareLookups<T>(t: AllowedIps<T>, naive: NaiveTable<T>, rand: () => number, probes: Prefix[], rounds: number, label: string) {
  for (let i = 0; i < rounds; i++) {
    let family: 4 | 6;
    let address: Uint8Array;
    if (i % 2 === 0 && probes.length > 0) {
      // Near a known prefix: keep its network bits (or a few less), randomise the host part.
      const base = probes[Math.floor(rand() * probes.length)]!;
      family = base.family;
      address = mutate(rand, base.bytes, Math.max(0, base.bits - Math.floor(rand() * 4)));
    } else {
      family = rand() < 0.5 ? 4 : 6;
      address = randomBytesFrom(rand, family === 4 ? 4 : 16);
    }
    const want = naive.lookup(family, address);
    const got = t.lookup(family, address);
    if (got !== want) {
      assert.fail(`${label}: lookup ${Buffer.from(address).toString('hex')} gave ${String(got)}, naive ${String(want)}`);
    }
  }
}

test('randomised: thousands of v4/v6 prefixes across many values agree with the naive table', () => {
  const seed = Number(process.env.ALLOWEDIPS_SEED ?? Date.now() % 1_000_000);
  const rand = xorshiftRandom(seed);
  const label = `seed ${seed}`;
  const values = Array.from({ length: 64 }, (_, i) => `peer${i}`);
  const pick = () => values[Math.floor(rand() * values.length)]!;
  const t = new AllowedIps<string>();
  const naive = new NaiveTable<string>();
  const inserted: Prefix[] = [];

  const add = (family: 4 | 6, bytes: Uint8Array, bits: number) => {
    const prefix = { family, bits, bytes: maskBytes(bytes, bits) };
    const v = pick();
    t.insert(prefix, v);
    naive.insert(prefix, v);
    inserted.push(prefix);
  };
  for (let i = 0; i < 150; i++) {
    const base4 = randomBytesFrom(rand, 4);
    add(4, base4, 1 + Math.floor(rand() * 32));
    for (let j = 0; j < 10; j++) add(4, mutate(rand, base4, Math.floor(rand() * 32)), 1 + Math.floor(rand() * 32));
    const base6 = randomBytesFrom(rand, 16);
    add(6, base6, 1 + Math.floor(rand() * 128));
    for (let j = 0; j < 10; j++) add(6, mutate(rand, base6, Math.floor(rand() * 128)), 1 + Math.floor(rand() * 128));
  }
  assert.equal(t.size, naive.entries.size, label);
  compareLookups(t, naive, rand, inserted, 6_000, `${label} after insert`);

  // Remove a third of the prefixes, some with the wrong owner (must be refused).
  for (let i = 0; i < inserted.length; i += 3) {
    const prefix = inserted[i]!;
    const owner = rand() < 0.8 ? naive.entries.get(prefixKey(prefix))?.value : pick();
    if (owner === undefined) continue;
    assert.equal(t.remove(prefix, owner), naive.remove(prefix, owner), `${label} remove ${formatPrefix(prefix)}`);
  }
  assert.equal(t.size, naive.entries.size, label);
  compareLookups(t, naive, rand, inserted, 6_000, `${label} after remove`);

  // Move a batch of prefixes to other owners, then drop a few owners entirely.
  for (let i = 1; i < inserted.length; i += 5) {
    const v = pick();
    t.insert(inserted[i]!, v);
    naive.insert(inserted[i]!, v);
  }
  for (const v of values.slice(0, 16)) {
    t.removeValue(v);
    naive.removeValue(v);
  }
  assert.equal(t.size, naive.entries.size, label);
  compareLookups(t, naive, rand, inserted, 6_000, `${label} after moves`);
  for (const v of values) assert.deepEqual(t.prefixesOf(v).map(formatPrefix), naive.prefixesOf(v), `${label} prefixesOf ${v}`);

  assert.ok(t.nodeCount() < 2 * t.size, `${label}: ${t.nodeCount()} nodes for ${t.size} prefixes`);
  // Remove everything that is left and check the trie is truly empty.
  for (const v of values) t.removeValue(v);
  assert.equal(t.size, 0);
  assert.equal(t.nodeCount(), 0, 'no dead branch points left behind');
  compareLookups(t, new NaiveTable<string>(), rand, inserted, 2_000, `${label} empty`);
});

test('randomised: interleaved inserts and removals of individual prefixes', () => {
  const seed = Number(process.env.ALLOWEDIPS_SEED ?? (Date.now() + 1) % 1_000_000);
  const rand = xorshiftRandom(seed);
  const t = new AllowedIps<number>();
  const naive = new NaiveTable<number>();
  const live: Prefix[] = [];
  for (let step = 0; step < 6_000; step++) {
    if (live.length > 0 && rand() < 0.4) {
      const i = Math.floor(rand() * live.length);
      const prefix = live[i]!;
      live.splice(i, 1);
      const owner = naive.entries.get(prefixKey(prefix))?.value;
      if (owner !== undefined) assert.equal(t.remove(prefix, owner), naive.remove(prefix, owner));
    } else {
      const family: 4 | 6 = rand() < 0.5 ? 4 : 6;
      const width = family === 4 ? 32 : 128;
      // Short prefixes over a small space so that nesting and collisions are frequent.
      const bytes = randomBytesFrom(rand, width / 8);
      bytes[0] = 10;
      const bits = Math.min(width, 8 + Math.floor(rand() * 12));
      const prefix = { family, bits, bytes: maskBytes(bytes, bits) };
      const v = Math.floor(rand() * 8);
      t.insert(prefix, v);
      naive.insert(prefix, v);
      live.push(prefix);
    }
    if (step % 500 === 0) {
      compareLookups(t, naive, rand, live, 500, `seed ${seed} step ${step}`);
      assert.ok(t.nodeCount() <= 2 * t.size, `seed ${seed} step ${step}: ${t.nodeCount()} nodes for ${t.size}`);
    }
  }
  assert.equal(t.size, naive.entries.size);
  compareLookups(t, naive, rand, live, 5_000, `seed ${seed} final`);
});

// ---- scale ----

test('scale: 130,000 prefixes for one value insert, look up, list and remove quickly', (ctx) => {
  const t = new AllowedIps<string>();
  const prefixes: Prefix[] = [];
  // Distinct /32s in 10.0.0.0/8, /28s in 100.64.0.0/10 and IPv6 /64s in fd00:1234::/32.
  for (let i = 0; i < 100_000; i++) {
    prefixes.push({ family: 4, bits: 32, bytes: Uint8Array.of(10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff) });
  }
  for (let i = 0; i < 20_000; i++) {
    prefixes.push({ family: 4, bits: 28, bytes: Uint8Array.of(100, 64 + (i >> 12), (i >> 4) & 0xff, (i & 0xf) << 4) });
  }
  for (let i = 0; i < 10_000; i++) {
    const bytes = new Uint8Array(16);
    bytes.set([0xfd, 0x00, 0x12, 0x34, (i >> 8) & 0xff, i & 0xff], 0);
    prefixes.push({ family: 6, bits: 64, bytes });
  }
  assert.equal(prefixes.length, 130_000);

  let start = performance.now();
  for (const prefix of prefixes) t.insert(prefix, 'peer');
  const insertMs = performance.now() - start;
  assert.equal(t.size, 130_000);

  // Probe addresses are built into two reused buffers so the timing measures the table, not the
  // allocation of 130,000 typed arrays.
  const probe4 = new Uint8Array(4);
  const probe6 = new Uint8Array(16);
  start = performance.now();
  for (let i = 0; i < 130_000; i++) {
    const prefix = prefixes[i]!;
    const address = prefix.family === 4 ? probe4 : probe6;
    address.set(prefix.bytes);
    if (prefix.bits !== 32) address[address.length - 1]! |= 0x05; // a host inside the prefix
    if (t.lookup(prefix.family, address) !== 'peer') assert.fail(`lookup ${formatPrefix(prefix)}`);
  }
  const lookupMs = performance.now() - start;
  assert.equal(t.lookup(...addr('10.255.0.1')), undefined, 'outside every prefix');
  assert.equal(t.lookup(...addr('100.128.0.1')), undefined);

  start = performance.now();
  const listed = t.prefixesOf('peer');
  const listMs = performance.now() - start;
  assert.equal(listed.length, 130_000);
  assert.deepEqual(listed[0], prefixes[0]);
  assert.deepEqual(listed[129_999], prefixes[129_999]);

  start = performance.now();
  t.removeValue('peer');
  const removeMs = performance.now() - start;
  assert.equal(t.size, 0);
  assert.equal(t.nodeCount(), 0);
  assert.equal(t.lookup(...addr('10.0.0.1')), undefined);

  ctx.diagnostic(`insert ${insertMs.toFixed(0)} ms, lookup ${lookupMs.toFixed(0)} ms, list ${listMs.toFixed(0)} ms, remove ${removeMs.toFixed(0)} ms`);
  // Timings are reported, not asserted: speed targets live in bench/, and this machine is shared.
});
