import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { createHash } from 'node:crypto';
import { CookieChecker, CookieGenerator } from '../../src/wireguard/cookie.ts';
import { generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';
import { buildInitiation, buildResponse, parseCookieReply } from '../../src/wireguard/messages.ts';

const T0 = 1_000_000;
const SRC = Uint8Array.of(192, 168, 13, 37, 10, 10, 10);
const rand = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

function keyPair() {
  const sk = generatePrivateKey();
  return publicKeyOf(sk);
}

function initiation(): Uint8Array {
  return buildInitiation({ sender: 0x01020304, ephemeral: rand(32), encryptedStatic: rand(48), encryptedTimestamp: rand(28) });
}

test('mac1 is MAC(HASH("mac1----" || receiver public key), message up to mac1)', () => {
  const pk = keyPair();
  const msg = initiation();
  new CookieGenerator(pk).addMacs(msg, T0);
  // Recomputed from the definition (reference §4.4) with independent hashing calls.
  const key = createHash('blake2s256').update('mac1----').update(pk).digest();
  const expected = blake2s(msg.subarray(0, 116), { key, dkLen: 16 });
  assert.deepEqual(msg.subarray(116, 132), expected);
  assert.ok(msg.subarray(132).every((b) => b === 0), 'no cookie yet: mac2 zero');
});

test('mac1 validates; tampering or the wrong receiver key fails', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);
  for (const msg of [initiation(), buildResponse({ sender: 1, receiver: 2, ephemeral: rand(32), encryptedNothing: rand(16) })]) {
    gen.addMacs(msg, T0);
    assert.ok(checker.checkMac1(msg));
    for (const i of [0, 5, 20, msg.length - 33, msg.length - 32, msg.length - 17]) {
      const bad = Uint8Array.from(msg);
      bad[i]! ^= 0x20;
      assert.equal(checker.checkMac1(bad), false, `byte ${i}`);
    }
    // mac2 is not covered by mac1
    const mac2Changed = Uint8Array.from(msg);
    mac2Changed[msg.length - 1]! ^= 1;
    assert.ok(checker.checkMac1(mac2Changed));
    assert.equal(new CookieChecker(keyPair()).checkMac1(msg), false);
  }
  assert.equal(new CookieChecker(null).checkMac1(initiation()), false, 'no local key');
  assert.equal(checker.checkMac1(new Uint8Array(31)), false, 'too short');
});

test('setLocalPublicKey switches which mac1 is valid', () => {
  const a = keyPair();
  const b = keyPair();
  const checker = new CookieChecker(null);
  const msg = initiation();
  new CookieGenerator(b).addMacs(msg, T0);
  assert.equal(checker.checkMac1(msg), false);
  checker.setLocalPublicKey(a);
  assert.equal(checker.checkMac1(msg), false);
  checker.setLocalPublicKey(b);
  assert.ok(checker.checkMac1(msg));
  checker.setLocalPublicKey(null);
  assert.equal(checker.checkMac1(msg), false);
});

test('under load: cookie reply -> consumeReply -> next addMacs carries a mac2 the checker accepts', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);

  const first = initiation();
  gen.addMacs(first, T0);
  assert.ok(checker.checkMac1(first));
  assert.equal(checker.checkMac2(first, SRC, T0), false, 'no cookie yet');

  const reply = checker.createReply(first, 0x01020304, SRC, T0);
  assert.equal(reply.length, 64);
  assert.equal(parseCookieReply(reply)!.receiver, 0x01020304);
  assert.ok(gen.hasCookie(T0) === false);
  assert.ok(gen.consumeReply(reply, T0 + 10));
  assert.ok(gen.hasCookie(T0 + 10));

  const second = initiation();
  gen.addMacs(second, T0 + 20);
  assert.ok(second.subarray(132).some((b) => b !== 0), 'mac2 written');
  assert.ok(checker.checkMac1(second));
  assert.ok(checker.checkMac2(second, SRC, T0 + 20));
  // mac2 is bound to the source address and to the message
  assert.equal(checker.checkMac2(second, Uint8Array.of(192, 168, 13, 37, 10, 10, 11), T0 + 20), false);
  const tampered = Uint8Array.from(second);
  tampered[50]! ^= 1;
  assert.equal(checker.checkMac2(tampered, SRC, T0 + 20), false);
});

test('a cookie reply only decrypts with the mac1 it answers, and only once', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);
  const sent = initiation();
  gen.addMacs(sent, T0);
  // Reply computed for a different message (different mac1 as associated data).
  const other = initiation();
  new CookieGenerator(pk).addMacs(other, T0);
  assert.equal(gen.consumeReply(checker.createReply(other, 1, SRC, T0), T0), false, 'wrong AAD');
  // Reply encrypted by a responder with another public key.
  const stranger = new CookieChecker(keyPair());
  assert.equal(gen.consumeReply(stranger.createReply(sent, 1, SRC, T0), T0), false, 'wrong key');
  // Tampered reply.
  const reply = checker.createReply(sent, 1, SRC, T0);
  const bad = Uint8Array.from(reply);
  bad[40]! ^= 1;
  assert.equal(gen.consumeReply(bad, T0), false, 'tampered');
  assert.equal(gen.consumeReply(reply.subarray(0, 63), T0), false, 'short');
  assert.ok(gen.consumeReply(reply, T0));
  assert.equal(gen.consumeReply(reply, T0), false, 'replayed');
  // Without any message sent, nothing can be consumed.
  assert.equal(new CookieGenerator(pk).consumeReply(reply, T0), false);
});

test('a held cookie stops producing mac2 after 120 s', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);
  const m = initiation();
  gen.addMacs(m, T0);
  assert.ok(gen.consumeReply(checker.createReply(m, 1, SRC, T0), T0));

  const early = initiation();
  gen.addMacs(early, T0 + 119_999);
  assert.ok(early.subarray(132).some((b) => b !== 0));

  const late = initiation();
  gen.addMacs(late, T0 + 120_000);
  assert.ok(late.subarray(132).every((b) => b === 0), 'expired cookie: mac2 zero');
  assert.equal(gen.hasCookie(T0 + 120_000), false);
});

test('the responder secret rotates after 120 s: old cookies stop validating, new replies work', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);
  const m1 = initiation();
  gen.addMacs(m1, T0);
  assert.ok(gen.consumeReply(checker.createReply(m1, 1, SRC, T0), T0));

  // The generator trusts its cookie for 120 s from receipt; received at T0 + 60 s here, so it is
  // still sending mac2 at T0 + 150 s, but the responder's secret (made at T0) has expired.
  const gen2 = new CookieGenerator(pk);
  const m2 = initiation();
  gen2.addMacs(m2, T0 + 60_000);
  assert.ok(gen2.consumeReply(checker.createReply(m2, 1, SRC, T0 + 60_000), T0 + 60_000));
  const m3 = initiation();
  gen2.addMacs(m3, T0 + 119_000);
  assert.ok(checker.checkMac2(m3, SRC, T0 + 119_000), 'within secret lifetime');
  assert.equal(checker.checkMac2(m3, SRC, T0 + 120_000), false, 'secret expired');
  const m4 = initiation();
  gen2.addMacs(m4, T0 + 150_000);
  assert.ok(m4.subarray(132).some((b) => b !== 0), 'generator still uses its cookie');
  assert.equal(checker.checkMac2(m4, SRC, T0 + 150_000), false);

  // A fresh reply under the new secret restores mac2.
  assert.ok(gen2.consumeReply(checker.createReply(m4, 1, SRC, T0 + 150_000), T0 + 150_000));
  const m5 = initiation();
  gen2.addMacs(m5, T0 + 150_001);
  assert.ok(checker.checkMac2(m5, SRC, T0 + 150_001));
  // ... and the old secret's cookie (held by `gen`, still inside its own 120 s) no longer matches.
  const m6 = initiation();
  gen.addMacs(m6, T0 + 100);
  assert.equal(checker.checkMac2(m6, SRC, T0 + 150_001), false);
});

// Port of wireguard-go device/cookie_test.go TestCookieMAC1: the same fixed messages of various
// lengths (mac1/mac2 are the last 32 bytes whatever the length) and the same source encodings.
test('wireguard-go cookie_test.go scenario', () => {
  const pk = keyPair();
  const gen = new CookieGenerator(pk);
  const checker = new CookieChecker(pk);
  const src = Uint8Array.of(192, 168, 13, 37, 10, 10, 10);
  const h = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

  const checkMac1 = (msg: Uint8Array) => {
    gen.addMacs(msg, T0);
    assert.ok(checker.checkMac1(msg), 'MAC1 generation/verification');
    assert.equal(checker.checkMac2(msg, src, T0), false, 'no MAC2 before a cookie');
  };
  checkMac1(
    h(`99bba5fc99aa83bd7b00c59a4cb9cf624023f38ed8d062645db28013dacec69161d630f132b3a2f47b43b5a7e2b1f56c
       746bb0cd1f94867bc8fb92ed549b44f5c87db78eff49c4e8397c19e0601951f8e48e02f17f1dcc8eb007fff8af7f6682
       83cc7cfa80db8153adf7d80c10e020fde80b3f9015cd93ad0bd50ccc8856e43f`),
  );
  checkMac1(
    h(`33e72a849fff576c2dc32de1f55c9756b893c27dd441dd7a4a593b50dd7a7a8c9b96af553ceb6d0b130b9798b340c3cc
       b85733456e8b092b812ed2b9660b9305`),
  );
  checkMac1(h('9b96af553ceb6d0b130b9798b340c3ccb85733456e8b092b812ed2b9660b9305'));

  const exchange = h(
    `6dd7c32eb076d8df30657d623ef89ae8e73c64a37848daf525612853793286 9fa0279569b6bad0a2f868eaa862f2fd1b
     e0b480e56b3a169e35f6a8f24f9a7be9770bc2b4edbaf922c30397429f797427fef9066e973aa68fc9570a544c644ae2
     4fa1ce959b23a92b859342b0a553edeb632af16d46cb2f618ce1e8fa6720806d`,
  );
  gen.addMacs(exchange, T0);
  const reply = checker.createReply(exchange, 1377, src, T0);
  assert.ok(gen.consumeReply(reply, T0), 'consume cookie reply');

  const checkMac2 = (msg: Uint8Array) => {
    gen.addMacs(msg, T0);
    assert.ok(checker.checkMac1(msg));
    assert.ok(checker.checkMac2(msg, src, T0));
    msg[5]! ^= 0x20;
    assert.equal(checker.checkMac1(msg), false);
    assert.equal(checker.checkMac2(msg, src, T0), false);
    msg[5]! ^= 0x20;
    assert.equal(checker.checkMac2(msg, Uint8Array.of(192, 168, 13, 37, 40, 1), T0), false);
    assert.equal(checker.checkMac2(msg, Uint8Array.of(192, 168, 13, 38, 40, 1), T0), false);
  };
  checkMac2(
    h(`0331b99eb02a54a3c13fb49616b925153d3a82f95836863f132ffeb253208c3fbaebfb4b1b22026 92c90bcdccfcf85eb
       62666fe8e1a6a84ca004231542acfa38`),
  );
  checkMac2(
    h(`0e2f0ea92903e1f3240175ad16a56685ca66e0bdc634d884099a5814fb05daf590f50c4e2210c9850fe37735e96bc255
       3246ae25e0e3377a4b71ccfc91dfd6cafeeece3f77a2fd598e730a8d5c2414ca3891b82c8ca2657bbc49bcb558fce3d7
       02cff74c6091ed55e9f9fed1442c75f2b35d7b2756c0484fb0bae47dd0aacd3de350d2cfb9fa4b2dc6df3b329845e68f
       1c5ca2207d1c28c2d4a1e021528f1cd0629748bbf4a9cb35f207d350d8a9c59a0fbd37afe14519ee41f3f7e5e0303fbe
       3d3964007a1a515ee1700bb9775af0c48aa13a771ae0c20691d5e91cd3feab931a0a4cbbf0ffdcaa6173cb034b716864
       3d823141d78b227b7da1d5856df01baa`),
  );
});
