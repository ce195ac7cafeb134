// The native cryptokey routing table (native/src/allowed_ips.cc, the code the packet path looks
// up on every packet, reached here through the addon's AllowedIpsTable test class) against the
// TypeScript trie (src/wireguard/allowed-ips.ts, itself checked against a naive table in
// allowed-ips.test.ts). Randomised runs are seeded: WEFT_TEST_SEED=<n> replays one, and every
// failure message carries the seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AllowedIps } from '../../src/wireguard/allowed-ips.ts';
import { encodePrefixes, native } from '../../src/wireguard/native.ts';
import type { Prefix } from '../../src/wireguard/prefix.ts';
import { addressOf as a, prefixOf as p, xorshiftRandom } from './helpers.ts';

type Table = InstanceType<ReturnType<typeof native>['AllowedIpsTable']>;

const newTable = (): Table => new (native().AllowedIpsTable)();


function seedFor(salt: number): number {
  const fixed = process.env.WEFT_TEST_SEED;
  return fixed !== undefined ? Number(fixed) >>> 0 : (Math.floor(Math.random() * 2 ** 32) ^ salt) >>> 0;
}



/** The same edits applied to both tables, and lookups compared. */
class Pair {
  readonly ts = new AllowedIps<number>();
  readonly nat = newTable();
  readonly context: string;

  constructor(context = '') {
    this.context = context;
  }

  insert(peer: number, prefixes: Prefix[]): void {
    for (const prefix of prefixes) this.ts.insert(prefix, peer);
    this.nat.insert(peer, encodePrefixes(prefixes));
  }

  remove(peer: number, prefixes: Prefix[]): void {
    for (const prefix of prefixes) this.ts.remove(prefix, peer);
    this.nat.remove(peer, encodePrefixes(prefixes));
  }

  clear(peer: number): void {
    this.ts.removeValue(peer);
    this.nat.clear(peer);
  }

  /** Compare one lookup; returns the peer (0 = none). */
  check(family: 4 | 6, address: Uint8Array, why = ''): number {
    const expected = this.ts.lookup(family, address) ?? 0;
    const actual = this.nat.lookup(family, address);
    if (actual !== expected) {
      assert.fail(`${this.context} lookup ${formatAddr(family, address)}${why ? ` (${why})` : ''}: native ${actual}, TypeScript ${expected}`);
    }
    return actual;
  }

  checkSize(): void {
    assert.equal(this.nat.size(), this.ts.size, `${this.context} table sizes`);
  }
}

function formatAddr(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return [...bytes].join('.');
  return Buffer.from(bytes).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
}

// ---- fixed cases ------------------------------------------------------------------------------

test('edge cases: /0, /32, /128, nested prefixes of different peers, and removal of the middle one', () => {
  const t = new Pair();
  // Nothing yet: every lookup misses.
  assert.equal(t.check(...a('1.2.3.4')), 0);
  assert.equal(t.check(...a('::')), 0);
  t.insert(1, [p('0.0.0.0/0')]);
  t.insert(2, [p('10.0.0.0/8')]);
  t.insert(3, [p('10.1.0.0/16')]);
  t.insert(4, [p('10.1.2.0/24')]);
  t.insert(5, [p('10.1.2.3/32')]);
  t.insert(6, [p('::/0'), p('2001:db8::/32')]);
  t.insert(7, [p('2001:db8::1/128'), p('2001:db8:0:1::/64')]);
  const expect4: [string, number][] = [
    ['10.1.2.3', 5], ['10.1.2.4', 4], ['10.1.2.255', 4], ['10.1.3.0', 3], ['10.1.255.255', 3], ['10.2.0.0', 2],
    ['10.255.255.255', 2], ['11.0.0.0', 1], ['9.255.255.255', 1], ['0.0.0.0', 1], ['255.255.255.255', 1],
  ];
  for (const [addr, peer] of expect4) assert.equal(t.check(...a(addr)), peer, addr);
  const expect6: [string, number][] = [
    ['2001:db8::1', 7], ['2001:db8::2', 6], ['2001:db8:0:1::5', 7], ['2001:db8:0:1:ffff:ffff:ffff:ffff', 7],
    ['2001:db8:0:2::', 6], ['2001:db9::', 6], ['::', 6], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6],
    // IPv4-mapped IPv6 is an IPv6 address: the IPv4 table has no say.
    ['::ffff:10.1.2.3', 6],
  ];
  for (const [addr, peer] of expect6) assert.equal(t.check(...a(addr)), peer, addr);
  // The families are separate tables: removing ::/0 leaves 0.0.0.0/0 alone.
  t.remove(6, [p('::/0')]);
  assert.equal(t.check(...a('::')), 0);
  assert.equal(t.check(...a('11.0.0.0')), 1);
  // Removing the middle of a chain exposes the next shorter prefix.
  t.remove(3, [p('10.1.0.0/16')]);
  assert.equal(t.check(...a('10.1.3.0')), 2);
  assert.equal(t.check(...a('10.1.2.3')), 5);
  t.checkSize();
});

test('moves: a prefix given to another peer moves; the old owner removing it is a no-op; clear takes only its own', () => {
  const t = new Pair();
  t.insert(1, [p('192.168.0.0/16'), p('fd00::/8')]);
  t.insert(2, [p('192.168.0.0/16'), p('fd00::/8')]);
  assert.equal(t.check(...a('192.168.1.1')), 2);
  assert.equal(t.check(...a('fd12::1')), 2);
  t.remove(1, [p('192.168.0.0/16'), p('fd00::/8')]);
  assert.equal(t.check(...a('192.168.1.1')), 2, 'removal by the former owner changed nothing');
  assert.equal(t.check(...a('fd12::1')), 2);
  t.clear(1);
  assert.equal(t.check(...a('192.168.1.1')), 2, 'clearing the former owner changed nothing');
  t.checkSize();
  // Moving back and forth inside one batch: the last insert wins.
  t.insert(3, [p('192.168.0.0/16'), p('10.0.0.0/8')]);
  t.insert(4, [p('10.0.0.0/8'), p('192.168.0.0/16'), p('10.0.0.0/8')]);
  assert.equal(t.check(...a('192.168.1.1')), 4);
  assert.equal(t.check(...a('10.0.0.1')), 4);
  t.clear(4);
  assert.equal(t.check(...a('192.168.1.1')), 0);
  assert.equal(t.check(...a('10.0.0.1')), 0);
  assert.equal(t.check(...a('fd12::1')), 2);
  // Inserting again for the same peer is idempotent.
  t.insert(2, [p('fd00::/8'), p('fd00::/8')]);
  t.checkSize();
  assert.equal(t.nat.size(), 1);
});

test('host bits in the records are ignored, on insert and on remove', () => {
  const t = new Pair();
  const dirty4: Prefix = { family: 4, bits: 20, bytes: Uint8Array.of(172, 16, 15, 255) }; // 172.16.0.0/20
  const dirty6: Prefix = { family: 6, bits: 65, bytes: Uint8Array.from(Buffer.from('20010db8000000017fffffffffffffff', 'hex')) };
  t.insert(9, [dirty4, dirty6]);
  assert.equal(t.check(...a('172.16.0.1')), 9);
  assert.equal(t.check(...a('172.16.15.255')), 9);
  assert.equal(t.check(...a('172.16.16.0')), 0);
  assert.equal(t.check(...a('2001:db8:0:1::')), 9);
  assert.equal(t.check(...a('2001:db8:0:1:7fff:ffff:ffff:ffff')), 9);
  assert.equal(t.check(...a('2001:db8:0:1:8000::')), 0);
  // The same prefixes written with other host bits remove them.
  t.remove(9, [p('172.16.0.0/20'), { family: 6, bits: 65, bytes: Uint8Array.from(Buffer.from('20010db8000000010000000000000001', 'hex')) }]);
  assert.equal(t.nat.size(), 0);
  assert.equal(t.check(...a('172.16.0.1')), 0);
});

test('bad arguments are refused loudly', () => {
  const t = newTable();
  const good = encodePrefixes([p('10.0.0.0/8')]);
  assert.throws(() => t.insert(0, good), RangeError, 'peer 0 means "none"');
  assert.throws(() => t.insert(1, good.subarray(0, 17)), RangeError);
  const v4bits33 = Buffer.from(good);
  v4bits33[1] = 33;
  assert.throws(() => t.insert(1, v4bits33), RangeError);
  const family5 = Buffer.from(good);
  family5[0] = 5;
  assert.throws(() => t.insert(1, family5), RangeError);
  assert.throws(() => t.lookup(4, new Uint8Array(16)), RangeError);
  assert.throws(() => t.lookup(6, new Uint8Array(4)), RangeError);
  assert.throws(() => t.lookup(5 as 4, new Uint8Array(4)), RangeError);
  assert.equal(t.size(), 0, 'nothing was inserted by the refused calls');
});

// ---- randomised -------------------------------------------------------------------------------

/** Random prefixes concentrated in a few regions so that they nest and overlap a lot. */
function generator(rand: () => number) {
  const int = (n: number) => Math.floor(rand() * n);
  const v4Regions = [[10], [10, 1], [172, 16], [192, 168, 1], [100, 64]];
  const v6Regions = ['2001:db8::', 'fd00::', 'fd00:1:2:3::', '2001:db8:0:1:2:3::', '::ffff:0:0'].map((t) => a(t)[1]);
  // Mostly long prefixes: a short one covers most lookups and would hide the misses (/0 has its
  // own cases above).
  const bits = (max: number) => {
    const r = rand();
    if (r < 0.001) return 1 + int(max / 4); // rare short prefixes
    if (r < 0.15) return max; // host routes
    return Math.ceil(max / 4) + int(max - Math.ceil(max / 4) + 1);
  };
  const address = (family: 4 | 6): Uint8Array => {
    if (family === 4) {
      const out = Uint8Array.from({ length: 4 }, () => int(256));
      if (rand() < 0.85) {
        const region = v4Regions[int(v4Regions.length)]!;
        out.set(region);
        // Keep the next byte small too, so /17../32 prefixes meet.
        if (region.length < 4 && rand() < 0.7) out[region.length] = int(4);
      }
      return out;
    }
    const out = Uint8Array.from({ length: 16 }, () => int(256));
    if (rand() < 0.85) {
      const region = v6Regions[int(v6Regions.length)]!;
      const keep = 4 + int(10);
      out.set(region.subarray(0, keep));
      if (rand() < 0.7) out[keep] = int(4);
    }
    return out;
  };
  /** A prefix with random host bits (both tables must mask them away). */
  const prefix = (family: 4 | 6): Prefix => ({ family, bits: bits(family === 4 ? 32 : 128), bytes: address(family) });
  /** An address inside `pr` (random host bits), or its first or last address, or one past the last. */
  const near = (pr: Prefix): Uint8Array => {
    const out = Uint8Array.from(pr.bytes);
    const width = out.length * 8;
    const mode = int(4);
    for (let i = pr.bits; i < width; i++) {
      const bit = mode === 0 ? 0 : mode === 1 || mode === 3 ? 1 : int(2);
      const m = 0x80 >> (i & 7);
      out[i >> 3] = bit ? out[i >> 3]! | m : out[i >> 3]! & ~m;
    }
    if (mode === 3) {
      // last + 1, carrying
      for (let j = out.length - 1; j >= 0; j--) {
        out[j] = (out[j]! + 1) & 0xff;
        if (out[j] !== 0) break;
      }
    }
    return out;
  };
  return { int, prefix, address, near };
}

function randomised(seed: number, opts: { rounds: number; peers: number; insertsPerRound: number; lookupsPerRound: number }) {
  const rand = xorshiftRandom(seed);
  const g = generator(rand);
  const t = new Pair(`seed=${seed} (WEFT_TEST_SEED=${seed} replays it):`);
  const known: Prefix[] = [];
  const pick = () => known[g.int(known.length)]!;
  const peer = () => 1 + g.int(opts.peers);
  let lookups = 0;
  let hits = 0;
  for (let round = 0; round < opts.rounds; round++) {
    // Inserts, in batches of 1..64 for one peer, both families mixed in one batch.
    for (let n = 0; n < opts.insertsPerRound; ) {
      const batch: Prefix[] = [];
      const size = 1 + g.int(64);
      for (let i = 0; i < size; i++) batch.push(g.prefix(rand() < 0.5 ? 4 : 6));
      t.insert(peer(), batch);
      known.push(...batch);
      n += size;
    }
    // Moves: known prefixes (possibly with other host bits) given to another peer.
    for (let i = 0; i < opts.insertsPerRound / 8; i++) {
      const pr = pick();
      t.insert(peer(), [{ ...pr, bytes: g.near(pr) }]);
    }
    // Removals by a random peer (often not the owner: a no-op), and by the owner.
    for (let i = 0; i < opts.insertsPerRound / 4; i++) {
      const pr = pick();
      const owner = t.ts.lookup(pr.family, pr.bytes);
      t.remove(rand() < 0.5 && owner !== undefined ? owner : peer(), [pr]);
    }
    // Now and then a peer loses everything.
    if (rand() < 0.5) t.clear(peer());
    t.checkSize();
    for (let i = 0; i < opts.lookupsPerRound; i++, lookups++) {
      if (rand() < 0.6 && known.length) {
        const pr = pick();
        if (t.check(pr.family, g.near(pr), `round ${round}, near a known prefix`)) hits++;
      } else {
        const family = rand() < 0.5 ? 4 : 6;
        if (t.check(family, g.address(family), `round ${round}, random address`)) hits++;
      }
    }
  }
  // Empty it peer by peer: every lookup then misses.
  for (let id = 1; id <= opts.peers; id++) t.clear(id);
  assert.equal(t.nat.size(), 0, `${t.context} empty after clearing every peer`);
  for (let i = 0; i < 200; i++) {
    const family = rand() < 0.5 ? 4 : 6;
    assert.equal(t.check(family, g.address(family)), 0);
  }
  return { prefixes: known.length, lookups, hits };
}

test('randomised: thousands of v4/v6 prefixes over many peers, moves, removals and clears, every lookup agrees', (ctx) => {
  const seed = seedFor(0x5eed);
  ctx.diagnostic(`seed ${seed} (WEFT_TEST_SEED=${seed} to replay)`);
  const r = randomised(seed, { rounds: 12, peers: 300, insertsPerRound: 1500, lookupsPerRound: 4000 });
  ctx.diagnostic(`${r.prefixes} prefixes inserted, ${r.lookups} lookups compared, ${r.hits} found a peer`);
});

test('randomised: few peers, dense overlaps (every move and removal matters)', (ctx) => {
  const seed = seedFor(0xd15e);
  ctx.diagnostic(`seed ${seed} (WEFT_TEST_SEED=${seed} to replay)`);
  const r = randomised(seed, { rounds: 40, peers: 4, insertsPerRound: 200, lookupsPerRound: 1500 });
  ctx.diagnostic(`${r.prefixes} prefixes inserted, ${r.lookups} lookups compared, ${r.hits} found a peer`);
});
