import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  buildCookieReply,
  buildInitiation,
  buildResponse,
  buildTransport,
  macOffsets,
  messageType,
  parseCookieReply,
  parseInitiation,
  parseResponse,
  parseTransportHeader,
} from '../../src/wireguard/messages.ts';

const rand = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

/** Distinct recognisable bytes, so that a field read from the wrong offset shows up. */
function pattern(length: number, start: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
}

test('messageType: known types with zero reserved bytes only', () => {
  for (const t of [1, 2, 3, 4]) assert.equal(messageType(Uint8Array.of(t, 0, 0, 0, 9, 9)), t);
  assert.equal(messageType(Uint8Array.of(0, 0, 0, 0)), null);
  assert.equal(messageType(Uint8Array.of(5, 0, 0, 0)), null);
  assert.equal(messageType(Uint8Array.of(1, 0, 0)), null, 'shorter than a header');
  assert.equal(messageType(Uint8Array.of(1, 0, 1, 0)), null, 'reserved byte set');
  assert.equal(messageType(Uint8Array.of(4, 0x80, 0, 0)), null);
});

test('initiation: exact layout (reference §4.2)', () => {
  const ephemeral = pattern(32, 0x10);
  const encryptedStatic = pattern(48, 0x40);
  const encryptedTimestamp = pattern(28, 0x80);
  const mac1 = pattern(16, 0xa0);
  const mac2 = pattern(16, 0xc0);
  const msg = buildInitiation({ sender: 0x11223344, ephemeral, encryptedStatic, encryptedTimestamp, mac1, mac2 });
  assert.equal(msg.length, 148);
  assert.deepEqual([...msg.subarray(0, 8)], [1, 0, 0, 0, 0x44, 0x33, 0x22, 0x11], 'type, reserved, sender LE');
  assert.deepEqual(msg.subarray(8, 40), ephemeral);
  assert.deepEqual(msg.subarray(40, 88), encryptedStatic);
  assert.deepEqual(msg.subarray(88, 116), encryptedTimestamp);
  assert.deepEqual(msg.subarray(116, 132), mac1);
  assert.deepEqual(msg.subarray(132, 148), mac2);

  const parsed = parseInitiation(msg)!;
  assert.equal(parsed.sender, 0x11223344);
  assert.deepEqual(parsed.ephemeral, ephemeral);
  assert.deepEqual(parsed.encryptedStatic, encryptedStatic);
  assert.deepEqual(parsed.encryptedTimestamp, encryptedTimestamp);
  assert.deepEqual(parsed.mac1, mac1);
  assert.deepEqual(parsed.mac2, mac2);
  assert.deepEqual(macOffsets(msg), { mac1: 116, mac2: 132 });
  // Views, not copies: cookie code relies on writing MACs in place.
  msg[120] = 0xee;
  assert.equal(parsed.mac1[4], 0xee);
});

test('initiation: wrong size, type or reserved bytes are rejected', () => {
  const msg = buildInitiation({ sender: 7, ephemeral: rand(32), encryptedStatic: rand(48), encryptedTimestamp: rand(28) });
  assert.ok(parseInitiation(msg));
  assert.equal(parseInitiation(msg.subarray(0, 147)), null);
  const longer = new Uint8Array(149);
  longer.set(msg);
  assert.equal(parseInitiation(longer), null);
  for (const i of [1, 2, 3]) {
    const bad = Uint8Array.from(msg);
    bad[i] = 1;
    assert.equal(parseInitiation(bad), null, `reserved byte ${i}`);
  }
  const wrongType = Uint8Array.from(msg);
  wrongType[0] = 2;
  assert.equal(parseInitiation(wrongType), null);
  assert.equal(parseInitiation(new Uint8Array(0)), null);
});

test('response: exact layout and strict parsing', () => {
  const ephemeral = pattern(32, 0x20);
  const encryptedNothing = pattern(16, 0x60);
  const mac1 = pattern(16, 0x90);
  const mac2 = pattern(16, 0xb0);
  const msg = buildResponse({ sender: 0xdeadbeef, receiver: 0x01020304, ephemeral, encryptedNothing, mac1, mac2 });
  assert.equal(msg.length, 92);
  assert.deepEqual([...msg.subarray(0, 12)], [2, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 0x04, 0x03, 0x02, 0x01]);
  assert.deepEqual(msg.subarray(12, 44), ephemeral);
  assert.deepEqual(msg.subarray(44, 60), encryptedNothing);
  assert.deepEqual(msg.subarray(60, 76), mac1);
  assert.deepEqual(msg.subarray(76, 92), mac2);
  const parsed = parseResponse(msg)!;
  assert.equal(parsed.sender, 0xdeadbeef);
  assert.equal(parsed.receiver, 0x01020304);
  assert.deepEqual(parsed.ephemeral, ephemeral);
  assert.deepEqual(parsed.encryptedNothing, encryptedNothing);
  assert.deepEqual(parsed.mac1, mac1);
  assert.deepEqual(parsed.mac2, mac2);
  assert.deepEqual(macOffsets(msg), { mac1: 60, mac2: 76 });

  assert.equal(parseResponse(msg.subarray(0, 91)), null);
  const longer = new Uint8Array(93);
  longer.set(msg);
  assert.equal(parseResponse(longer), null);
  const reserved = Uint8Array.from(msg);
  reserved[3] = 0xff;
  assert.equal(parseResponse(reserved), null);
  assert.equal(parseInitiation(msg), null, 'a response is not an initiation');
});

test('cookie reply: exact layout and strict parsing', () => {
  const nonce = pattern(24, 0x30);
  const encryptedCookie = pattern(32, 0x70);
  const msg = buildCookieReply({ receiver: 0xa1b2c3d4, nonce, encryptedCookie });
  assert.equal(msg.length, 64);
  assert.deepEqual([...msg.subarray(0, 8)], [3, 0, 0, 0, 0xd4, 0xc3, 0xb2, 0xa1]);
  assert.deepEqual(msg.subarray(8, 32), nonce);
  assert.deepEqual(msg.subarray(32, 64), encryptedCookie);
  const parsed = parseCookieReply(msg)!;
  assert.equal(parsed.receiver, 0xa1b2c3d4);
  assert.deepEqual(parsed.nonce, nonce);
  assert.deepEqual(parsed.encryptedCookie, encryptedCookie);
  assert.equal(parseCookieReply(msg.subarray(0, 63)), null);
  const longer = new Uint8Array(65);
  longer.set(msg);
  assert.equal(parseCookieReply(longer), null);
  const reserved = Uint8Array.from(msg);
  reserved[2] = 1;
  assert.equal(parseCookieReply(reserved), null);
});

test('transport header: receiver and 64-bit little-endian counter, at least 32 bytes', () => {
  const sealed = rand(16);
  const msg = buildTransport(0x0a0b0c0d, 0x0102030405060708n, sealed);
  assert.equal(msg.length, 32);
  assert.deepEqual([...msg.subarray(0, 16)], [4, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 8, 7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual(parseTransportHeader(msg), { receiver: 0x0a0b0c0d, counter: 0x0102030405060708n });
  const max = buildTransport(0xffffffff, 2n ** 64n - 1n, rand(100));
  assert.deepEqual(parseTransportHeader(max), { receiver: 0xffffffff, counter: 2n ** 64n - 1n });
  assert.equal(parseTransportHeader(msg.subarray(0, 31)), null, 'shorter than header + tag');
  const reserved = Uint8Array.from(msg);
  reserved[1] = 1;
  assert.equal(parseTransportHeader(reserved), null);
  const wrongType = Uint8Array.from(msg);
  wrongType[0] = 1;
  assert.equal(parseTransportHeader(wrongType), null);
});

test('builders refuse wrong field sizes and out-of-range indices', () => {
  const ok = { sender: 1, ephemeral: rand(32), encryptedStatic: rand(48), encryptedTimestamp: rand(28) };
  assert.throws(() => buildInitiation({ ...ok, ephemeral: rand(31) }), RangeError);
  assert.throws(() => buildInitiation({ ...ok, sender: 2 ** 32 }), RangeError);
  assert.throws(() => buildInitiation({ ...ok, sender: -1 }), RangeError);
  assert.throws(() => buildResponse({ sender: 1, receiver: 2, ephemeral: rand(32), encryptedNothing: rand(15) }), RangeError);
  assert.throws(() => buildCookieReply({ receiver: 1, nonce: rand(12), encryptedCookie: rand(32) }), RangeError);
  assert.throws(() => buildTransport(1, 0n, rand(15)), RangeError);
  // mac fields default to zero
  const msg = buildInitiation(ok);
  assert.ok(msg.subarray(116).every((b) => b === 0));
});

test('randomised round trips', () => {
  for (let i = 0; i < 200; i++) {
    const fields = {
      sender: randomBytes(4).readUInt32LE(0),
      receiver: randomBytes(4).readUInt32LE(0),
      ephemeral: rand(32),
      encryptedNothing: rand(16),
      mac1: rand(16),
      mac2: rand(16),
    };
    const parsed = parseResponse(buildResponse(fields))!;
    assert.equal(parsed.sender, fields.sender);
    assert.equal(parsed.receiver, fields.receiver);
    assert.deepEqual(parsed.ephemeral, fields.ephemeral);
    assert.deepEqual(parsed.mac2, fields.mac2);
  }
});
