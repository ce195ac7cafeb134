// Small helpers several unit tests share.
import assert from 'node:assert/strict';
import { parseAddress, parsePrefix, type Prefix } from '../../src/wireguard/prefix.ts';

/** Seeded PRNG (xorshift32) in [0, 1), so a failing randomised run can be replayed from its seed. */
export function xorshiftRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** A prefix from text; the test fails when it does not parse. */
export function prefixOf(text: string): Prefix {
  const prefix = parsePrefix(text);
  assert.ok(prefix, text);
  return prefix;
}

/** An address as (family, bytes); the test fails when it does not parse. */
export function addressOf(text: string): [4 | 6, Uint8Array] {
  const a = parseAddress(text);
  assert.ok(a, text);
  return [a.family, a.bytes];
}
