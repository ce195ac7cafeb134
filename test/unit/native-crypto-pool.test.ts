// The packet path's fork-join pool (native/src/crypto_pool.cc) through cryptoPoolCheck: every run
// must call its function exactly once per index and be complete when it returns, whatever the
// number of workers, for sizes below the parallel threshold, around chunk boundaries and at
// random, over thousands of back-to-back runs (stale workers from one run must never touch the
// next).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/wireguard/native.ts';
import { xorshiftRandom } from './helpers.ts';

const { cryptoPoolCheck } = native();
const EDGES = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 45, 64, 65, 1023, 1024, 4096];

for (const workers of [0, 1, 3]) {
  test(`CryptoPool with ${workers} worker(s): every index exactly once, edge sizes and 3,000 random runs`, () => {
    const rand = xorshiftRandom(0xc0ffee + workers);
    const sizes = [...EDGES, ...Array.from({ length: 3000 }, () => Math.floor(rand() * 300))];
    const failed = cryptoPoolCheck(workers, sizes);
    assert.equal(failed, -1, failed >= 0 ? `run ${failed} (size ${sizes[failed]}) missed or repeated an index` : '');
  });
}

test('CryptoPool: pools are created and destroyed repeatedly without hanging', () => {
  for (let i = 0; i < 50; i++) assert.equal(cryptoPoolCheck(2, [100, 3, 100]), -1);
});
