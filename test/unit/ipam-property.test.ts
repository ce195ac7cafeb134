// Randomized property test for the allocator: many peers announcing random (often identical,
// often clashing) CIDRs, re-announcing, releasing, and restarting from the snapshot. After every
// step the fabric invariants are checked against an independent brute-force model:
//   - no stand-in overlaps another stand-in or any local range;
//   - every stand-in has the size of the real CIDR and lies in a pool, whatever was announced
//     (public ranges included: no announcement can be routed outside the pools);
//   - the real CIDR is kept exactly when it lies in a pool and clashes with nothing;
//   - an announcement larger than a /12 (the default maxRemoteCIDRSize) is refused;
//   - otherwise the stand-in is the lowest free aligned block in pool order (checked when the
//     pools hold few enough candidate blocks to enumerate);
//   - a failing call changes nothing; a repeated call changes nothing; a restart changes nothing.
// Seeded, so any failure names the seed and step and replays exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipam } from '../../src/ipam/allocator.ts';
import type { IpamConfig, IpamSnapshot } from '../../src/ipam/allocator.ts';
import { IpamError } from '../../src/ipam/errors.ts';
import { xorshiftRandom as rng } from './helpers.ts';

// ---- an independent model of ranges (deliberately not reusing src/ipam/cidr.ts) ----

interface Range {
  start: number;
  bits: number;
}

function parse(text: string): Range {
  const [addr, len] = text.split('/') as [string, string];
  const start = addr.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
  return { start, bits: Number(len) };
}

function format(r: Range): string {
  const o = [24, 16, 8, 0].map((shift) => Math.floor(r.start / 2 ** shift) % 256);
  return `${o.join('.')}/${r.bits}`;
}

const size = (bits: number): number => 2 ** (32 - bits);
const last = (r: Range): number => r.start + size(r.bits) - 1;
const overlap = (a: Range, b: Range): boolean => a.start <= last(b) && b.start <= last(a);
const inside = (outer: Range, inner: Range): boolean => inner.start >= outer.start && last(inner) <= last(outer);


// ---- the scenario ----

const CONFIG: IpamConfig = {
  podCIDR: '10.0.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  nodeCIDRs: ['192.168.10.0/24', '172.18.0.0/16'],
  reserved: ['10.250.0.0/16', '100.64.0.0/24'],
};
const POOLS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].map(parse);
const MAX_REMOTE_BITS = 12;
const LOCAL = [CONFIG.podCIDR, CONFIG.serviceCIDR, ...CONFIG.nodeCIDRs, ...CONFIG.reserved!].map(parse);
const SPECIAL = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map(parse);

/** Where clusters' pod CIDRs come from in practice: mostly 10/8, sometimes elsewhere. */
const REGIONS: Array<[Range, number]> = [
  [parse('10.0.0.0/8'), 0.6],
  [parse('172.16.0.0/12'), 0.15],
  [parse('192.168.0.0/16'), 0.1],
  [parse('100.64.0.0/10'), 0.1],
  [parse('0.0.0.0/0'), 0.05],
];
const LENGTHS = [8, 11, 12, 14, 16, 16, 16, 16, 17, 18, 20, 22, 24, 24, 26, 28, 30];
const POPULAR = ['10.0.0.0/16', '10.0.0.0/16', '10.244.0.0/16', '10.42.0.0/16', '172.16.0.0/16', '192.168.0.0/16', '10.1.0.0/16'];

function randomCidr(rand: () => number): string {
  if (rand() < 0.3) return POPULAR[Math.floor(rand() * POPULAR.length)]!;
  for (;;) {
    let pick = rand();
    let region = REGIONS[0]![0];
    for (const [r, weight] of REGIONS) {
      region = r;
      if ((pick -= weight) < 0) break;
    }
    const bits = LENGTHS[Math.floor(rand() * LENGTHS.length)]!;
    const address = region.start + Math.floor(rand() * size(region.bits));
    const cidr = { start: address - (address % size(bits)), bits };
    if (!SPECIAL.some((s) => overlap(s, cidr))) return format(cidr);
  }
}

interface StandIn {
  range: Range;
  owner: string; // "external" or "<peer>/pod" or "<peer>/external"
}

function standIns(s: IpamSnapshot): StandIn[] {
  const out: StandIn[] = s.externalCIDR ? [{ range: parse(s.externalCIDR), owner: 'external' }] : [];
  for (const [id, p] of Object.entries(s.peers)) {
    out.push({ range: parse(p.podRemap), owner: `${id}/pod` });
    if (p.externalRemap) out.push({ range: parse(p.externalRemap), owner: `${id}/external` });
  }
  return out;
}

function checkInvariants(s: IpamSnapshot, where: string): void {
  const all = standIns(s);
  for (let i = 0; i < all.length; i++) {
    const a = all[i]!;
    // (Messages are built only on failure: formatting them eagerly dominates the run time.)
    for (const l of [...LOCAL, ...SPECIAL]) {
      if (overlap(a.range, l)) assert.fail(`${where}: ${a.owner} ${format(a.range)} overlaps local ${format(l)}`);
    }
    for (let j = i + 1; j < all.length; j++) {
      const b = all[j]!;
      if (overlap(a.range, b.range)) assert.fail(`${where}: ${a.owner} ${format(a.range)} overlaps ${b.owner} ${format(b.range)}`);
    }
  }
  if (s.externalCIDR) {
    const e = parse(s.externalCIDR);
    assert.equal(e.bits, 16, where);
    assert.ok(POOLS.some((p) => inside(p, e)), `${where}: external ${s.externalCIDR} outside the pools`);
  }
  for (const [id, p] of Object.entries(s.peers)) {
    const pairs: Array<[string | null, string | null]> = [[p.remotePodCIDR, p.podRemap], [p.remoteExternalCIDR, p.externalRemap]];
    for (const [real, remap] of pairs) {
      if (real === null || remap === null) {
        assert.equal(real, remap, `${where}: ${id} half an external`);
        continue;
      }
      const r = parse(real);
      const m = parse(remap);
      assert.equal(m.bits, r.bits, `${where}: ${id} ${remap} is not the size of ${real}`);
      assert.equal(m.start % size(m.bits), 0, `${where}: ${id} ${remap} unaligned`);
      if (!POOLS.some((pool) => inside(pool, m))) assert.fail(`${where}: ${id} ${remap} (for ${real}) outside the pools`);
    }
  }
}

/** What a new stand-in for (peer, kind) must avoid, from the state before the call. */
function takenBefore(s: IpamSnapshot, owner: string | null): Range[] {
  return [...LOCAL, ...SPECIAL, ...standIns(s).filter((x) => x.owner !== owner).map((x) => x.range)];
}

/** Brute-force lowest free aligned block in pool order; undefined when too many to enumerate. */
function lowestFree(bits: number, taken: Range[]): Range | null | undefined {
  const candidates = POOLS.reduce((n, p) => n + (bits >= p.bits ? size(p.bits) / size(bits) : 0), 0);
  if (candidates > 1200) return undefined;
  for (const pool of POOLS) {
    if (bits < pool.bits) continue;
    for (let start = pool.start; start <= last(pool); start += size(bits)) {
      const c = { start, bits };
      if (!taken.some((t) => overlap(t, c))) return c;
    }
  }
  return null;
}

interface Stats {
  kept: number;
  remapped: number;
  bruteForced: number;
  exhausted: number;
  overlapRejected: number;
  outsidePools: number;
  tooLarge: number;
  released: number;
  restarts: number;
}

function run(seed: number, steps: number, stats: Stats): void {
  const rand = rng(seed);
  const ids = Array.from({ length: 70 }, (_, i) => `cluster-${i}`);
  const lastAnnounce = new Map<string, { kind: 'pod' | 'external'; cidr: string }>();
  let ipam = new Ipam(CONFIG);

  for (let step = 0; step < steps; step++) {
    const before = ipam.snapshot();
    const beforeJson = JSON.stringify(before);
    const id = ids[Math.floor(rand() * ids.length)]!;
    const roll = rand();
    const where = `seed ${seed} step ${step}`;

    if (roll < 0.04) {
      ipam.externalCIDR();
    } else if (roll < 0.12) {
      ipam.release(id);
      lastAnnounce.delete(id);
      assert.equal(ipam.lookup(id), undefined, where);
      stats.released++;
    } else if (roll < 0.17) {
      ipam = new Ipam(CONFIG, JSON.parse(beforeJson) as IpamSnapshot);
      assert.equal(JSON.stringify(ipam.snapshot()), beforeJson, `${where}: restart changed the state`);
      stats.restarts++;
    } else if (roll < 0.25) {
      // Idempotence: the peer repeats its last announcement.
      const prev = lastAnnounce.get(id);
      if (prev) {
        const key = prev.kind === 'pod' ? 'podRemap' : 'externalRemap';
        const answer = prev.kind === 'pod' ? ipam.remapPodCIDR(id, prev.cidr) : ipam.remapExternalCIDR(id, prev.cidr);
        assert.equal(answer, before.peers[id]?.[key], `${where}: repeat gave a different answer`);
        assert.equal(JSON.stringify(ipam.snapshot()), beforeJson, `${where}: repeat changed the state`);
      }
    } else {
      const kind = roll < 0.75 ? 'pod' : 'external';
      const real = randomCidr(rand);
      const owner = `${id}/${kind}`;
      const taken = takenBefore(before, owner);
      const outsidePools = !POOLS.some((pool) => inside(pool, parse(real)));
      const clashes = outsidePools || taken.some((t) => overlap(t, parse(real)));
      try {
        const answer = kind === 'pod' ? ipam.remapPodCIDR(id, real) : ipam.remapExternalCIDR(id, real);
        lastAnnounce.set(id, { kind, cidr: real });
        if (parse(real).bits < MAX_REMOTE_BITS) assert.fail(`${where}: ${real} is larger than a /${MAX_REMOTE_BITS} but was accepted as ${answer}`);
        const prevReal = kind === 'pod' ? before.peers[id]?.remotePodCIDR : before.peers[id]?.remoteExternalCIDR;
        if (prevReal === real) {
          // Same announcement: same answer, whatever else happened meanwhile.
          assert.equal(answer, kind === 'pod' ? before.peers[id]?.podRemap : before.peers[id]?.externalRemap, where);
        } else if (!clashes) {
          assert.equal(answer, real, `${where}: ${real} clashes with nothing but was remapped to ${answer}`);
          stats.kept++;
        } else {
          assert.notEqual(answer, real, `${where}: ${real} clashes or lies outside the pools but was kept`);
          if (outsidePools) stats.outsidePools++;
          const expected = lowestFree(parse(real).bits, taken);
          if (expected !== undefined) {
            assert.equal(answer, expected && format(expected), `${where}: ${real} -> ${answer} is not the lowest free block`);
            stats.bruteForced++;
          }
          stats.remapped++;
        }
      } catch (err) {
        if (!(err instanceof IpamError)) throw err;
        assert.equal(JSON.stringify(ipam.snapshot()), beforeJson, `${where}: failed call (${err.message}) changed the state`);
        if (err.reason === 'TooLarge') {
          assert.ok(parse(real).bits < MAX_REMOTE_BITS, `${where}: ${real} refused as too large: ${err.message}`);
          stats.tooLarge++;
        } else if (err.reason === 'PoolExhausted') {
          assert.ok(clashes, `${where}: ${real} clashes with nothing, yet: ${err.message}`);
          const expected = lowestFree(parse(real).bits, taken);
          assert.ok(expected === undefined || expected === null, `${where}: ${format(expected ?? parse(real))} was free, yet: ${err.message}`);
          stats.exhausted++;
        } else if (err.reason === 'UnknownPeer') {
          assert.equal(kind, 'external', where);
          assert.equal(before.peers[id], undefined, where);
        } else if (err.reason === 'Overlap') {
          const p = before.peers[id];
          const other = kind === 'pod' ? p?.remoteExternalCIDR : p?.remotePodCIDR;
          assert.ok(other && overlap(parse(other), parse(real)), `${where}: unexpected ${err.message}`);
          stats.overlapRejected++;
        } else {
          assert.fail(`${where}: unexpected ${err.reason}: ${err.message}`);
        }
      }
    }
    checkInvariants(ipam.snapshot(), where);
  }
  // Finally a restart from the last state answers every lookup the same way.
  const restored = new Ipam(CONFIG, JSON.parse(JSON.stringify(ipam.snapshot())) as IpamSnapshot);
  for (const id of ids) assert.deepEqual(restored.lookup(id), ipam.lookup(id), `seed ${seed}: ${id} after restart`);
}

test('randomized: many peers with random CIDRs never produce overlapping ranges', (t) => {
  const stats: Stats = { kept: 0, remapped: 0, bruteForced: 0, exhausted: 0, overlapRejected: 0, outsidePools: 0, tooLarge: 0, released: 0, restarts: 0 };
  for (const seed of [1, 2, 3, 0xbeef, 20260101, 424242]) run(seed, 1500, stats);
  // The generator must actually reach every branch, or the properties prove little.
  t.diagnostic(`exercised: ${JSON.stringify(stats)}`);
  for (const [name, count] of Object.entries(stats)) assert.ok(count > 0, `never exercised: ${name} (${JSON.stringify(stats)})`);
});
