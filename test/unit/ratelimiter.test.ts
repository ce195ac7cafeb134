// The per-source rate limiter of the handshake path (native/src/handshake/ratelimiter.cc), through
// the addon's test hooks, with injected time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../../src/wireguard/native.ts';

const { RateLimiter: NativeRateLimiter } = native().handshakeTest;

/** The limiter with the port fixed: only the address counts. */
class RateLimiter {
  #rl: InstanceType<typeof NativeRateLimiter>;
  constructor(options: { maxEntries?: number } = {}) {
    this.#rl = new NativeRateLimiter(options.maxEntries);
  }
  allow(address: string, nowMs: number): boolean {
    return this.#rl.allow(address, 51820, nowMs);
  }
  size(): number {
    return this.#rl.size();
  }
}

/** Whether two sources share one bucket: draining one leaves nothing for the other. */
function shareBucket(a: string, b: string): boolean {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) rl.allow(a, T0);
  return !rl.allow(b, T0);
}

const T0 = 5_000_000;
const COST_MS = 1000 / 20;

test('burst of 5, then refused', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) assert.ok(rl.allow('192.0.2.1', T0), `packet ${i + 1}`);
  assert.equal(rl.allow('192.0.2.1', T0), false);
  assert.equal(rl.allow('192.0.2.1', T0 + COST_MS - 1), false, 'not quite one token yet');
});

test('refills at 20 packets per second, capped at the burst', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) rl.allow('198.51.100.7', T0);
  // Sustained: exactly one packet every 50 ms for 3 seconds.
  let t = T0;
  for (let i = 0; i < 60; i++) {
    t += COST_MS;
    assert.ok(rl.allow('198.51.100.7', t), `tick ${i}`);
    assert.equal(rl.allow('198.51.100.7', t), false, `second packet in tick ${i}`);
  }
  // A long pause refills to 5, not more.
  t += 10_000;
  let allowed = 0;
  for (let i = 0; i < 20; i++) if (rl.allow('198.51.100.7', t)) allowed++;
  assert.equal(allowed, 5);
});

// wireguard-go ratelimiter/ratelimiter_test.go, with injected time instead of sleeps, over the same
// mix of IPv4 and IPv6 sources (each its own bucket).
test('wireguard-go ratelimiter_test.go sequence', () => {
  const ips = [
    '127.0.0.1',
    '192.168.1.1',
    '172.167.2.3',
    '97.231.252.215',
    '248.97.91.167',
    '188.208.233.47',
    '104.2.183.179',
    '72.129.46.120',
    '2001:0db8:0a0b:12f0:0000:0000:0000:0001',
    'f5c2:818f:c052:655a:9860:b136:6894:25f0',
    'b2d7:15ab:48a7:b07c:a541:f144:a9fe:54fc',
    'a47b:786e:1671:a22b:d6f9:4ab0:abc7:c918',
    'ea1e:d155:7f7a:98fb:2bf5:9483:80f6:5445',
    '3f0e:54a2:f5b4:cd19:a21d:58e1:3746:84c4',
  ];
  const steps: { allowed: boolean; waitMs: number; text: string }[] = [];
  for (let i = 0; i < 5; i++) steps.push({ allowed: true, waitMs: 0, text: 'initial burst' });
  steps.push({ allowed: false, waitMs: 0, text: 'after burst' });
  steps.push({ allowed: true, waitMs: COST_MS, text: 'filling tokens for single packet' });
  steps.push({ allowed: false, waitMs: 0, text: 'not having refilled enough' });
  steps.push({ allowed: true, waitMs: 2 * COST_MS, text: 'filling tokens for two packet burst' });
  steps.push({ allowed: true, waitMs: 0, text: 'second packet in 2 packet burst' });
  steps.push({ allowed: false, waitMs: 0, text: 'packet following 2 packet burst' });

  const rl = new RateLimiter();
  let now = T0;
  steps.forEach((step, i) => {
    now += step.waitMs;
    for (const ip of ips) assert.equal(rl.allow(ip, now), step.allowed, `${ip} step ${i} (${step.text})`);
  });
  assert.equal(rl.size(), ips.length);
});

test('separate sources are independent', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) assert.ok(rl.allow('10.0.0.1', T0));
  assert.equal(rl.allow('10.0.0.1', T0), false);
  for (let i = 0; i < 5; i++) assert.ok(rl.allow('10.0.0.2', T0), 'neighbour unaffected');
  assert.ok(rl.allow('2001:db8::1', T0));
  assert.equal(rl.size(), 3);
});

test('IPv6 sources in the same /64 share a bucket; other /64s do not', () => {
  const rl = new RateLimiter();
  const sameNet = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:9', '2001:db8:1:2:abcd::'];
  for (const a of sameNet) assert.ok(rl.allow(a, T0), a);
  assert.equal(rl.allow('2001:db8:1:2::77', T0), false, 'sixth packet from the same /64');
  assert.ok(rl.allow('2001:db8:1:3::1', T0), 'next /64 is separate');
  assert.equal(rl.size(), 2);
  assert.ok(shareBucket('2001:db8:1:2::1', '2001:db8:1:2:8000::'));
  // '::' placed in the upper half must be expanded before cutting at 64 bits.
  assert.equal(shareBucket('2001:db8:1:2::1', '2001:db8:1::2:0:0:1'), false);
  assert.ok(shareBucket('2001:db8:0:0:1::', '2001:db8::1:2:3:4'));
});

test('IPv4-mapped IPv6 sources share the IPv4 bucket; IPv4 is keyed by the full address', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 3; i++) assert.ok(rl.allow('203.0.113.9', T0));
  for (let i = 0; i < 2; i++) assert.ok(rl.allow('::ffff:203.0.113.9', T0));
  assert.equal(rl.allow('203.0.113.9', T0), false);
  assert.ok(rl.allow('203.0.113.10', T0));
});

test('garbage collection forgets idle sources without changing decisions', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 1000; i++) rl.allow(`10.1.${i >> 8}.${i & 255}`, T0);
  assert.equal(rl.size(), 1000);
  // Half of them stay active.
  for (let i = 0; i < 500; i++) rl.allow(`10.1.${i >> 8}.${i & 255}`, T0 + 900);
  rl.allow('10.9.9.9', T0 + 1_000); // triggers the periodic sweep
  assert.equal(rl.size(), 501, 'idle half forgotten, active half and the newcomer kept');
  rl.allow('10.9.9.8', T0 + 5_000); // the next sweep forgets everyone idle for a second
  assert.equal(rl.size(), 1);
  // A forgotten source starts over with a full burst, exactly as if it had been remembered.
  for (let i = 0; i < 5; i++) assert.ok(rl.allow('10.1.0.1', T0 + 5_000));
  assert.equal(rl.allow('10.1.0.1', T0 + 5_000), false);
});

test('table size is bounded: new sources are refused when full', () => {
  const rl = new RateLimiter({ maxEntries: 3 });
  assert.ok(rl.allow('10.0.0.1', T0));
  assert.ok(rl.allow('10.0.0.2', T0));
  assert.ok(rl.allow('10.0.0.3', T0));
  assert.equal(rl.allow('10.0.0.4', T0), false);
  assert.ok(rl.allow('10.0.0.1', T0), 'known sources still served');
  assert.ok(rl.allow('10.0.0.4', T0 + 1_000), 'room after GC');
});

test('time going backwards does not mint tokens', () => {
  const rl = new RateLimiter();
  for (let i = 0; i < 5; i++) rl.allow('10.0.0.1', T0);
  assert.equal(rl.allow('10.0.0.1', T0 - 10_000), false);
  assert.equal(rl.allow('10.0.0.1', T0 - 10_000 + 49), false);
  assert.ok(rl.allow('10.0.0.1', T0 - 10_000 + 50));
});
