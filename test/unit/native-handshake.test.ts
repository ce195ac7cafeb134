// The handshake path's C++ (native/src/handshake/: noise.cc, cookie.cc) through the addon's test
// hooks, checked against the TypeScript implementation of the protocol (noise.ts, cookie.ts), which
// is itself checked step by step against the specification in noise.test.ts and against
// wireguard-go's vectors in cookie.test.ts. Both directions of every exchange, tampering, and bad
// arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { native } from '../../src/wireguard/native.ts';
import { dh, generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';
import { consumeInitiation, consumeResponse, createInitiation, createResponse } from '../../src/wireguard/noise.ts';
import type { NoisePeer, StaticIdentity } from '../../src/wireguard/noise.ts';
import { CookieChecker as TsChecker, CookieGenerator as TsGenerator } from '../../src/wireguard/cookie.ts';
import { buildInitiation } from '../../src/wireguard/messages.ts';
import { tai64n } from '../../src/wireguard/tai64n.ts';

const hooks = native().handshakeTest;
const T0 = 1_000_000;

function identity(): StaticIdentity {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}
const buf = (a: Uint8Array) => Buffer.from(a);
const tsPeer = (local: StaticIdentity, remote: StaticIdentity, psk: Uint8Array): NoisePeer => ({
  remoteStatic: remote.publicKey,
  presharedKey: psk,
  precomputedStaticStatic: dh(local.privateKey, remote.publicKey),
});

for (const withPsk of [false, true]) {
  const label = withPsk ? 'with a preshared key' : 'without a preshared key';

  test(`TypeScript initiator, native responder: same session keys (${label})`, () => {
    for (let i = 0; i < 20; i++) {
      const alice = identity();
      const bob = identity();
      const psk = withPsk ? Uint8Array.from(randomBytes(32)) : new Uint8Array(32);
      const ts = tai64n();
      const init = createInitiation(alice, tsPeer(alice, bob, psk), 0x1234 + i, ts)!;
      const r = hooks.respond(buf(bob.privateKey), buf(alice.publicKey), buf(psk), init.message, 0xabcd0000 + i);
      assert.ok(r, 'native responder accepted the initiation');
      assert.deepEqual(new Uint8Array(r.remoteStatic), alice.publicKey);
      assert.deepEqual(new Uint8Array(r.timestamp), ts);
      assert.equal(r.remoteIndex, 0x1234 + i);
      assert.equal(r.localIndex, 0xabcd0000 + i);
      assert.equal(r.response.length, 92);
      assert.ok(r.response.subarray(60).every((b) => b === 0), 'macs left for cookie.cc');
      const keys = consumeResponse(alice, tsPeer(alice, bob, psk), init.state, r.response);
      assert.ok(keys, 'TypeScript initiator accepted the native response');
      assert.deepEqual(new Uint8Array(r.sendKey), keys.receiveKey);
      assert.deepEqual(new Uint8Array(r.receiveKey), keys.sendKey);
      assert.equal(keys.remoteIndex, 0xabcd0000 + i);
    }
  });

  test(`native initiator, TypeScript responder: same session keys (${label})`, () => {
    for (let i = 0; i < 20; i++) {
      const alice = identity();
      const bob = identity();
      const psk = withPsk ? Uint8Array.from(randomBytes(32)) : new Uint8Array(32);
      const initiator = new hooks.Initiator(buf(alice.privateKey), buf(bob.publicKey), buf(psk));
      const ts = tai64n();
      const msg = initiator.initiate(0x5150 + i, ts)!;
      assert.equal(msg.length, 148);
      const consumed = consumeInitiation(bob, msg, (k) => (Buffer.from(k).equals(buf(alice.publicKey)) ? tsPeer(bob, alice, psk) : null));
      assert.ok(consumed, 'TypeScript responder accepted the native initiation');
      assert.deepEqual(consumed.timestamp, ts);
      const resp = createResponse(bob, tsPeer(bob, alice, psk), consumed.state, 0x7777)!;
      const keys = initiator.finish(resp.message);
      assert.ok(keys, 'native initiator accepted the response');
      assert.deepEqual(new Uint8Array(keys.sendKey), resp.keys.receiveKey);
      assert.deepEqual(new Uint8Array(keys.receiveKey), resp.keys.sendKey);
      assert.equal(keys.localIndex, 0x5150 + i);
      assert.equal(keys.remoteIndex, 0x7777);
      assert.equal(initiator.finish(resp.message), null, 'an initiation is answered once');
    }
  });
}

test('mismatched preshared keys: the native side refuses the response, or the TS side the native one', () => {
  const alice = identity();
  const bob = identity();
  const initiator = new hooks.Initiator(buf(alice.privateKey), buf(bob.publicKey), randomBytes(32));
  const msg = initiator.initiate(1, tai64n())!;
  const consumed = consumeInitiation(bob, msg, () => tsPeer(bob, alice, new Uint8Array(32)))!;
  const resp = createResponse(bob, tsPeer(bob, alice, new Uint8Array(32)), consumed.state, 2)!;
  assert.equal(initiator.finish(resp.message), null);
});

test('native responder refuses tampered initiations, the wrong peer, and a low-order peer key', () => {
  const alice = identity();
  const bob = identity();
  const psk = new Uint8Array(32);
  const init = createInitiation(alice, tsPeer(alice, bob, psk), 9, tai64n())!;
  for (const at of [4, 8, 20, 40, 60, 87, 88, 100, 115]) {
    const bad = Buffer.from(init.message);
    bad[at]! ^= 0x01;
    const r = hooks.respond(buf(bob.privateKey), buf(alice.publicKey), buf(psk), bad, 1);
    if (at < 8) assert.ok(r, 'the sender index is not authenticated by the AEADs (mac1 covers it)');
    else assert.equal(r, null, `byte ${at} flipped`);
  }
  const carol = identity();
  assert.equal(hooks.respond(buf(bob.privateKey), buf(carol.publicKey), buf(psk), init.message, 1), null, 'another peer');
  const zero = Buffer.alloc(32);
  assert.equal(new hooks.Initiator(buf(alice.privateKey), zero, zero).initiate(1, tai64n()), null, 'low-order peer key');
  const lowOrder = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
  assert.equal(new hooks.Initiator(buf(alice.privateKey), lowOrder, zero).initiate(1, tai64n()), null, 'low-order point of order 8');
});

test('a forged response leaves the native initiator able to take the genuine one', () => {
  const alice = identity();
  const bob = identity();
  const psk = new Uint8Array(32);
  const initiator = new hooks.Initiator(buf(alice.privateKey), buf(bob.publicKey), buf(psk));
  const msg = initiator.initiate(42, tai64n())!;
  const consumed = consumeInitiation(bob, msg, () => tsPeer(bob, alice, psk))!;
  const resp = createResponse(bob, tsPeer(bob, alice, psk), consumed.state, 43)!;
  const forged = Buffer.from(resp.message);
  forged[50]! ^= 0xff;
  assert.equal(initiator.finish(forged), null);
  const wrongReceiver = Buffer.from(resp.message);
  wrongReceiver.writeUInt32LE(41, 8);
  assert.equal(initiator.finish(wrongReceiver), null);
  assert.ok(initiator.finish(resp.message));
});

test('mac1: native checker and TypeScript generator agree, and the other way round', () => {
  const bob = identity();
  const msg = buildInitiation({ sender: 7, ephemeral: randomBytes(32), encryptedStatic: randomBytes(48), encryptedTimestamp: randomBytes(28) });
  const nativeChecker = new hooks.CookieChecker(buf(bob.publicKey));
  const tsGen = new TsGenerator(bob.publicKey);
  const m1 = Uint8Array.from(msg);
  tsGen.addMacs(m1, T0);
  assert.ok(nativeChecker.checkMac1(m1));
  assert.equal(new hooks.CookieChecker(buf(identity().publicKey)).checkMac1(m1), false, 'another receiver key');
  assert.equal(new hooks.CookieChecker(null).checkMac1(m1), false, 'no key: nothing is valid');
  const m2 = new hooks.CookieGenerator(buf(bob.publicKey)).addMacs(msg, T0);
  assert.ok(new TsChecker(bob.publicKey).checkMac1(m2));
  assert.deepEqual(new Uint8Array(m2), m1, 'the same mac1, and mac2 zero without a cookie');
  for (const at of [0, 5, 60, 115, 116, 131]) {
    const bad = Buffer.from(m2);
    bad[at]! ^= 0x80;
    assert.equal(nativeChecker.checkMac1(bad), false, `byte ${at}`);
  }
});

test('cookie exchange: native responder with a TypeScript initiator', () => {
  const bob = identity();
  const checker = new hooks.CookieChecker(buf(bob.publicKey));
  const gen = new TsGenerator(bob.publicKey);
  const msg = buildInitiation({ sender: 0x0badcafe, ephemeral: randomBytes(32), encryptedStatic: randomBytes(48), encryptedTimestamp: randomBytes(28) });
  gen.addMacs(msg, T0);
  assert.equal(checker.checkMac2(msg, '192.0.2.7', 51820, T0), false, 'no secret yet');
  const reply = checker.createReply(msg, '192.0.2.7', 51820, T0)!;
  assert.equal(reply.length, 64);
  assert.equal(reply.readUInt32LE(0), 3);
  assert.equal(reply.readUInt32LE(4), 0x0badcafe, 'addressed to the sender index');
  assert.ok(gen.consumeReply(reply, T0), 'the TypeScript initiator decrypts the native cookie');
  const next = Uint8Array.from(msg);
  gen.addMacs(next, T0 + 10);
  assert.ok(checker.checkMac2(next, '192.0.2.7', 51820, T0 + 10));
  assert.equal(checker.checkMac2(next, '192.0.2.7', 51821, T0 + 10), false, 'bound to the port');
  assert.equal(checker.checkMac2(next, '192.0.2.8', 51820, T0 + 10), false, 'bound to the address');
  assert.equal(checker.checkMac2(next, '192.0.2.7', 51820, T0 + 120_000), false, 'the secret expires after 120 s');
});

test('cookie exchange: TypeScript responder with a native initiator', () => {
  const bob = identity();
  const src = Uint8Array.of(198, 51, 100, 1, 0x1f, 0x90);
  const checker = new TsChecker(bob.publicKey);
  const gen = new hooks.CookieGenerator(buf(bob.publicKey));
  const msg = buildInitiation({ sender: 99, ephemeral: randomBytes(32), encryptedStatic: randomBytes(48), encryptedTimestamp: randomBytes(28) });
  const sent = gen.addMacs(msg, T0);
  const reply = checker.createReply(sent, 99, src, T0);
  const tampered = Buffer.from(reply);
  tampered[40]! ^= 1;
  assert.equal(gen.consumeReply(tampered, T0), false, 'a tampered reply is refused');
  assert.ok(gen.consumeReply(reply, T0), 'the native initiator decrypts the TypeScript cookie');
  assert.equal(gen.consumeReply(reply, T0), false, 'a mac1 is answered once');
  const again = gen.addMacs(msg, T0 + 1000);
  assert.ok(checker.checkMac2(again, src, T0 + 1000));
  const stale = gen.addMacs(msg, T0 + 120_000);
  assert.ok(stale.subarray(132).every((b) => b === 0), 'no mac2 from a cookie older than 120 s');
});

test('a cookie reply only decrypts against the mac1 it answers', () => {
  const bob = identity();
  const checker = new hooks.CookieChecker(buf(bob.publicKey));
  const gen = new hooks.CookieGenerator(buf(bob.publicKey));
  const mk = () => buildInitiation({ sender: 5, ephemeral: randomBytes(32), encryptedStatic: randomBytes(48), encryptedTimestamp: randomBytes(28) });
  const first = gen.addMacs(mk(), T0);
  const reply = checker.createReply(first, '2001:db8::1', 4000, T0)!;
  gen.addMacs(mk(), T0); // a newer message went out: the reply answers the old one
  assert.equal(gen.consumeReply(reply, T0), false);
});

test('bad arguments to the handshake hooks throw instead of crashing', () => {
  const k = Buffer.alloc(32, 1);
  const cases: (() => unknown)[] = [
    () => new hooks.Initiator(Buffer.alloc(31), k, k),
    () => new hooks.Initiator(k, k, Buffer.alloc(33)),
    () => new hooks.Initiator(k, Buffer.alloc(32, 9), k).initiate(-1, tai64n()),
    () => new hooks.Initiator(k, Buffer.alloc(32, 9), k).initiate(1, Buffer.alloc(11)),
    () => new hooks.Initiator(k, Buffer.alloc(32, 9), k).finish(Buffer.alloc(91)),
    () => hooks.respond(k, k, k, Buffer.alloc(147), 1),
    () => hooks.respond(k, k, k, Buffer.alloc(149), 1),
    () => new hooks.CookieChecker(Buffer.alloc(3)),
    () => new hooks.CookieChecker(k).checkMac1(Buffer.alloc(39)),
    () => new hooks.CookieChecker(k).checkMac2(Buffer.alloc(148), 'not an address', 1, T0),
    () => new hooks.CookieChecker(k).createReply(Buffer.alloc(148), '192.0.2.1', 70000, T0),
    () => new hooks.CookieGenerator(k).consumeReply(Buffer.alloc(63), T0),
    () => new hooks.RateLimiter(0),
    () => new hooks.RateLimiter().allow('192.0.2.1', 1, -5),
  ];
  for (const [i, f] of cases.entries()) assert.throws(f, (e: Error) => e instanceof TypeError || e instanceof RangeError || (e as NodeJS.ErrnoException).code === 'EINVAL', `case ${i}`);
  // Garbage of the right size is refused, not trusted.
  assert.equal(hooks.respond(k, Buffer.alloc(32, 9), k, randomBytes(148), 1), null);
  assert.equal(new hooks.CookieGenerator(k).consumeReply(randomBytes(64), T0), false);
});
