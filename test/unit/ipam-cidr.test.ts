import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  blockSize,
  cidrLast,
  contains,
  containsAddress,
  firstFreeBlock,
  formatCidr,
  formatIPv4,
  overlaps,
  parseCidr,
  parseIPv4,
} from '../../src/ipam/cidr.ts';
import type { Cidr } from '../../src/ipam/cidr.ts';
import { IpamError } from '../../src/ipam/errors.ts';
import { xorshiftRandom as rng } from './helpers.ts';

function rejects(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof IpamError, `expected IpamError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('parseIPv4/formatIPv4 round trip at the edges of the address space', () => {
  for (const text of ['0.0.0.0', '255.255.255.255', '10.0.0.1', '128.0.0.0', '192.168.255.7', '1.2.3.4']) {
    assert.equal(formatIPv4(parseIPv4(text)), text);
  }
  assert.equal(parseIPv4('255.255.255.255'), 2 ** 32 - 1);
  assert.equal(parseIPv4('128.0.0.0'), 2 ** 31);
  assert.equal(parseIPv4('0.0.1.0'), 256);
});

test('parseCidr accepts network addresses of every length', () => {
  assert.deepEqual(parseCidr('10.0.0.0/16'), { start: 10 * 2 ** 24, bits: 16 });
  assert.deepEqual(parseCidr('0.0.0.0/0'), { start: 0, bits: 0 });
  assert.deepEqual(parseCidr('255.255.255.255/32'), { start: 2 ** 32 - 1, bits: 32 });
  assert.deepEqual(parseCidr('240.0.0.0/4'), { start: 240 * 2 ** 24, bits: 4 });
  for (const text of ['10.96.0.0/12', '172.16.0.0/12', '192.168.10.0/24', '10.0.0.4/30', '128.0.0.0/1']) {
    assert.equal(formatCidr(parseCidr(text)), text);
  }
});

test('parseCidr rejects host bits set and names the network that was meant', () => {
  rejects(() => parseCidr('10.0.0.1/16'), 'InvalidCIDR', /host bits set.*10\.0\.0\.0\/16/);
  rejects(() => parseCidr('10.97.0.0/12'), 'InvalidCIDR', /10\.96\.0\.0\/12/);
  rejects(() => parseCidr('255.255.255.255/0'), 'InvalidCIDR', /0\.0\.0\.0\/0/);
  rejects(() => parseCidr('10.0.0.3/31'), 'InvalidCIDR', /10\.0\.0\.2\/31/);
});

test('parseCidr rejects garbage with InvalidCIDR', () => {
  const bad: unknown[] = [
    '',
    '10.0.0.0',
    '10.0.0.0/',
    '10.0.0/16',
    '10.0.0.0.0/16',
    '10.0.0.256/24',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/016',
    '010.0.0.0/16',
    ' 10.0.0.0/16',
    '10.0.0.0/16 ',
    '10.0.0.0/1e1',
    '10.0.0.0/16/16',
    'a.b.c.d/8',
    '1.2.3.-4/32',
    '1.2.3.+4/32',
    '0x0a.0.0.0/8',
    '10..0.0/16',
    null,
    undefined,
    16,
    {},
  ];
  for (const text of bad) rejects(() => parseCidr(text), 'InvalidCIDR');
  rejects(() => parseCidr('010.0.0.0/16'), 'InvalidCIDR', /leading zeros/);
  rejects(() => parseCidr('10.0.0.0'), 'InvalidCIDR', /no prefix length/);
});

test('IPv6 is rejected as Unsupported, not as garbage', () => {
  for (const text of ['fd00::/64', '::/0', '2001:db8::/32', '::ffff:10.0.0.0/112']) {
    rejects(() => parseCidr(text), 'Unsupported', /IPv6/);
  }
  rejects(() => parseIPv4('fe80::1'), 'Unsupported');
  // A colon that does not make an IPv6 address is plain garbage.
  rejects(() => parseCidr('10.0.0.0:16'), 'InvalidCIDR');
});

test('size, last, contains, overlaps', () => {
  const a = parseCidr('10.0.0.0/8');
  const b = parseCidr('10.1.0.0/16');
  const c = parseCidr('11.0.0.0/8');
  const all = parseCidr('0.0.0.0/0');
  assert.equal(blockSize(0), 2 ** 32);
  assert.equal(blockSize(32), 1);
  assert.equal(formatIPv4(cidrLast(a)), '10.255.255.255');
  assert.equal(formatIPv4(cidrLast(all)), '255.255.255.255');
  assert.ok(contains(a, b));
  assert.ok(!contains(b, a));
  assert.ok(contains(a, a));
  assert.ok(contains(all, c));
  assert.ok(overlaps(a, b) && overlaps(b, a));
  assert.ok(!overlaps(a, c) && !overlaps(c, a));
  assert.ok(overlaps(all, c));
  // Adjacent blocks do not overlap.
  assert.ok(!overlaps(parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24')));
  assert.ok(containsAddress(b, parseIPv4('10.1.255.255')));
  assert.ok(!containsAddress(b, parseIPv4('10.2.0.0')));
});

test('firstFreeBlock: lowest aligned free block, skipping taken ranges of any size', () => {
  const pool = parseCidr('10.0.0.0/8');
  const taken = ['10.0.0.0/16', '10.96.0.0/12', '10.1.0.0/24'].map((t) => parseCidr(t));
  assert.equal(formatCidr(firstFreeBlock(pool, 16, taken)!), '10.2.0.0/16');
  assert.equal(formatCidr(firstFreeBlock(pool, 24, taken)!), '10.1.1.0/24');
  assert.equal(formatCidr(firstFreeBlock(pool, 12, taken)!), '10.16.0.0/12');
  assert.equal(formatCidr(firstFreeBlock(pool, 8, [])!), '10.0.0.0/8');
  assert.equal(firstFreeBlock(pool, 8, taken), null);
  // A block larger than the pool never fits.
  assert.equal(firstFreeBlock(parseCidr('192.168.0.0/16'), 12, []), null);
  // A taken range covering the whole pool leaves nothing.
  assert.equal(firstFreeBlock(parseCidr('10.5.0.0/16'), 24, [pool]), null);
  // The top of the address space works (no 32-bit overflow).
  const top = parseCidr('255.255.255.0/24');
  assert.equal(formatCidr(firstFreeBlock(top, 32, [parseCidr('255.255.255.0/25')])!), '255.255.255.128/32');
  assert.equal(firstFreeBlock(top, 25, [parseCidr('255.255.255.0/25'), parseCidr('255.255.255.128/25')]), null);
});


test('firstFreeBlock agrees with a brute-force scan on random inputs', () => {
  for (let seed = 1; seed <= 400; seed++) {
    const rand = rng(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const poolBits = 16 + int(6);
    // A random aligned pool inside 10.0.0.0/8.
    const pool: Cidr = { start: 10 * 2 ** 24 + int(2 ** (poolBits - 8)) * blockSize(poolBits), bits: poolBits };
    // Random taken blocks around and inside the pool.
    const taken: Cidr[] = [];
    for (let i = int(12); i > 0; i--) {
      const bits = poolBits - 2 + int(12);
      const size = blockSize(bits);
      const near = pool.start - blockSize(poolBits) + int(3 * blockSize(poolBits));
      taken.push({ start: Math.max(0, near - (near % size)), bits });
    }
    const bits = poolBits + int(8);
    const size = blockSize(bits);
    let expected: Cidr | null = null;
    for (let start = pool.start; start + size - 1 <= cidrLast(pool); start += size) {
      const candidate = { start, bits };
      if (!taken.some((t) => overlaps(t, candidate))) {
        expected = candidate;
        break;
      }
    }
    assert.deepEqual(firstFreeBlock(pool, bits, taken), expected, `seed ${seed}`);
  }
});
