import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareTai64n, decodeTai64n, tai64n } from '../../src/wireguard/tai64n.ts';

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('format: 8-byte big-endian 0x400000000000000a + unix seconds, then 4-byte big-endian nanoseconds', () => {
  // Epoch: seconds field is exactly the TAI64 base.
  assert.equal(toHex(tai64n(0)), '400000000000000a' + '00000000');
  // 2021-01-01T00:00:00Z = 1609459200 = 0x5fee6600.
  assert.equal(toHex(tai64n(1_609_459_200_000)), '400000005fee660a' + '00000000');
  // 1 s plus 500 ms: 500,000,000 ns = 0x1dcd6500, whitened to 0x1d000000.
  assert.equal(toHex(tai64n(1_500)), '400000000000000b' + '1d000000');
  assert.equal(tai64n().length, 12);
});

test('whitening clears the low 24 bits of the nanoseconds', () => {
  for (const ms of [1, 16, 17, 333, 999, 123_456_789]) {
    const label = tai64n(ms);
    assert.equal(label[9]! | label[10]! | label[11]!, 0, `ms=${ms}`);
    const decoded = decodeTai64n(label)!;
    const exactNs = (ms % 1000) * 1_000_000;
    assert.equal(decoded.nanoseconds, exactNs - (exactNs % 2 ** 24), `ms=${ms}`);
  }
  // Anything within the same 2^24 ns bucket gives the same label.
  assert.deepEqual(tai64n(0, 1_000_000_000n), tai64n(0, 1_000_000_000n + 16_777_215n));
  assert.notDeepEqual(tai64n(0, 1_000_000_000n), tai64n(0, 1_000_000_000n + 16_777_216n));
});

test('nanosecond input takes precedence and splits into seconds and nanoseconds', () => {
  const ns = 1_700_000_000_123_456_789n;
  const decoded = decodeTai64n(tai64n(0, ns))!;
  assert.equal(decoded.unixSeconds, 1_700_000_000n);
  assert.equal(decoded.nanoseconds, 123_456_789 - (123_456_789 % 2 ** 24));
  // Same instant given in milliseconds produces the same label (the lost sub-ms part is whitened away).
  assert.deepEqual(tai64n(1_700_000_000_123), tai64n(0, ns));
});

test('labels compare chronologically, byte-wise', () => {
  const base = 1_700_000_000_000;
  let previous = tai64n(base);
  for (let step = 1; step < 200; step++) {
    const current = tai64n(base + step * 17); // 17 ms > 2^24 ns, so each step is a new label
    assert.equal(compareTai64n(current, previous), 1, `step ${step}`);
    assert.equal(compareTai64n(previous, current), -1);
    previous = current;
  }
  assert.equal(compareTai64n(tai64n(base), tai64n(base)), 0);
  // Seconds dominate nanoseconds: x.999 < (x+1).000
  assert.equal(compareTai64n(tai64n(base + 999), tai64n(base + 1000)), -1);
  // Crossing a byte boundary of the seconds field still orders correctly.
  assert.equal(compareTai64n(tai64n(255_999), tai64n(256_000)), -1);
});

test('now() labels are non-decreasing', () => {
  const a = tai64n();
  const b = tai64n();
  assert.ok(compareTai64n(a, b) <= 0);
});
