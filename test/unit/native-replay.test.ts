// The native replay window (RFC 6479, 128 x 64-bit blocks, window 8128) against the sequences of
// the kernel's drivers/net/wireguard/selftest/counter.c and wireguard-go's replay/replay_test.go.
// The native window rejects counters >= REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1 (whitepaper,
// wireguard-go); the sequences only depend on that limit through the relative cases 25-33.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/wireguard/native.ts';

const WINDOW = 8128n; // (128 - 1) * 64
const REJECT = 2n ** 64n - 2n ** 13n - 1n;
const LIM = WINDOW + 1n;

function checker() {
  const w = new (native().ReplayWindow)();
  let n = 0;
  const T = (counter: bigint, expected: boolean) => {
    n++;
    assert.equal(w.validate(counter), expected, `case ${n}: validate(${counter}) should be ${expected}`);
  };
  return { w, T, reset: () => ((n = 0), w.reset()) };
}

test('kernel counter.c / replay_test.go: the 34 explicit cases', () => {
  const { T } = checker();
  T(0n, true); /*  1 */
  T(1n, true); /*  2 */
  T(1n, false); /*  3 */
  T(9n, true); /*  4 */
  T(8n, true); /*  5 */
  T(7n, true); /*  6 */
  T(7n, false); /*  7 */
  T(LIM, true); /*  8 */
  T(LIM - 1n, true); /*  9 */
  T(LIM - 1n, false); /* 10 */
  T(LIM - 2n, true); /* 11 */
  T(2n, true); /* 12 */
  T(2n, false); /* 13 */
  T(LIM + 16n, true); /* 14 */
  T(3n, false); /* 15 */
  T(LIM + 16n, false); /* 16 */
  T(LIM * 4n, true); /* 17 */
  T(LIM * 4n - (LIM - 1n), true); /* 18 */
  T(10n, false); /* 19 */
  T(LIM * 4n - LIM, false); /* 20 */
  T(LIM * 4n - (LIM + 1n), false); /* 21 */
  T(LIM * 4n - (LIM - 2n), true); /* 22 */
  T(LIM * 4n + 1n - LIM, false); /* 23 */
  T(0n, false); /* 24 */
  T(REJECT, false); /* 25 */
  T(REJECT - 1n, true); /* 26 */
  T(REJECT, false); /* 27 */
  T(REJECT - 1n, false); /* 28 */
  T(REJECT - 2n, true); /* 29 */
  T(REJECT + 1n, false); /* 30 */
  T(REJECT + 2n, false); /* 31 */
  T(REJECT - 2n, false); /* 32 */
  T(REJECT - 3n, true); /* 33 */
  T(0n, false); /* 34 */
});

test('window-edge loops (kernel counter.c)', () => {
  const { T, reset } = checker();

  reset();
  for (let i = 1n; i <= WINDOW; i++) T(i, true);
  T(0n, true);
  T(0n, false);

  reset();
  for (let i = 2n; i <= WINDOW + 1n; i++) T(i, true);
  T(1n, true);
  T(0n, false);

  reset();
  for (let i = WINDOW + 1n; i-- > 0n; ) T(i, true);

  reset();
  for (let i = WINDOW + 2n; i-- > 1n; ) T(i, true);
  T(0n, false);

  reset();
  for (let i = WINDOW + 1n; i-- > 1n; ) T(i, true);
  T(WINDOW + 1n, true);
  T(0n, false);

  reset();
  for (let i = WINDOW + 1n; i-- > 1n; ) T(i, true);
  T(0n, true);
  T(WINDOW + 1n, true);
});

test('bulk tests (wireguard-go replay_test.go)', () => {
  const { T, reset } = checker();

  reset(); // 1
  for (let i = 1n; i <= WINDOW; i++) T(i, true);
  T(0n, true);
  T(0n, false);

  reset(); // 2
  for (let i = 2n; i <= WINDOW + 1n; i++) T(i, true);
  T(1n, true);
  T(0n, false);

  reset(); // 3
  for (let i = WINDOW + 1n; i > 0n; i--) T(i, true);

  reset(); // 4
  for (let i = WINDOW + 2n; i > 1n; i--) T(i, true);
  T(0n, false);

  reset(); // 5
  for (let i = WINDOW; i > 0n; i--) T(i, true);
  T(WINDOW + 1n, true);
  T(0n, false);

  reset(); // 6
  for (let i = WINDOW; i > 0n; i--) T(i, true);
  T(0n, true);
  T(WINDOW + 1n, true);
});

test('exact window edge and jumps over the whole ring', () => {
  const { T, reset } = checker();
  reset();
  T(10_000n, true);
  T(10_000n - WINDOW, true); // exactly WINDOW behind: still inside
  T(10_000n - WINDOW - 1n, false); // one further: too old
  T(10_000n - WINDOW, false); // and the accepted one is remembered
  // A jump far beyond the ring clears every block: older counters in the new window are fresh.
  T(1n << 40n, true);
  T((1n << 40n) - 64n, true);
  T((1n << 40n) - 64n, false);
  T(10_000n, false);
});

test('argument checking', () => {
  const w = new (native().ReplayWindow)();
  assert.throws(() => w.validate(-1n), RangeError);
  assert.throws(() => w.validate(2n ** 64n), RangeError);
  assert.throws(() => w.validate('1' as unknown as bigint), TypeError);
  assert.equal(w.validate(2n ** 64n - 1n), false); // >= REJECT_AFTER_MESSAGES
});
