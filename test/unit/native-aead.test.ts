// The packet path's ChaCha20-Poly1305 (native aead.cc through aeadSeal/aeadOpen): WireGuard's form
// (nonce = 4 zero bytes || little-endian 64-bit counter, no associated data, tag appended).
// RFC 7539 section 2.8.2 needs a non-zero nonce prefix and associated data, which WireGuard's form
// cannot express, so the RFC vector pins the two reference implementations (Node's OpenSSL and
// @noble/ciphers), and the native code is checked against them: one known answer in WireGuard's
// form, and random keys, counters and sizes in both directions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { native } from '../../src/wireguard/native.ts';

const { aeadSeal, aeadOpen } = native();

const RFC_KEY = Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex');
const RFC_TEXT = Buffer.from(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

function wgNonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

function nodeSeal(key: Buffer, counter: bigint, text: Buffer): Buffer {
  const c = crypto.createCipheriv('chacha20-poly1305', key, wgNonce(counter), { authTagLength: 16 });
  return Buffer.concat([c.update(text), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Buffer, counter: bigint, sealed: Buffer): Buffer | null {
  try {
    const d = crypto.createDecipheriv('chacha20-poly1305', key, wgNonce(counter), { authTagLength: 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return null;
  }
}

function randomCounter(): bigint {
  const edges = [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 60n, 2n ** 64n - 2n ** 13n - 2n, 2n ** 64n - 1n];
  return Math.random() < 0.3 ? edges[Math.floor(Math.random() * edges.length)]! : crypto.randomBytes(8).readBigUInt64LE();
}

test('RFC 7539 2.8.2 pins the reference implementations', () => {
  const nonce = Buffer.from('070000004041424344454647', 'hex');
  const aad = Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex');
  const expected =
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
    '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
    '3ff4def08e4b7a9de576d26586cec64b6116' +
    '1ae10b594f09e26a7e902ecbd0600691'; // tag
  const c = crypto.createCipheriv('chacha20-poly1305', RFC_KEY, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: RFC_TEXT.length });
  assert.equal(Buffer.concat([c.update(RFC_TEXT), c.final(), c.getAuthTag()]).toString('hex'), expected);
  assert.equal(Buffer.from(chacha20poly1305(RFC_KEY, nonce, aad).encrypt(RFC_TEXT)).toString('hex'), expected);
});

test('known answer in WireGuard form (RFC key and text, counter = LE bytes 40..47)', () => {
  const counter = 0x4746454443424140n;
  const expected =
    'a479cb54628946d6f4042a8e384ef4bd2fbc7330b8be55eb2d8dc18aaa51d66a8ec1f8d3619a258db0ac56956015b7b4' +
    '937e9b8e6aa957b3dc0214d803d77660aabc913092971da8f207171ce7843608162e2e759d8efc25d8d0936990af63c8' +
    '20ba87e8a955b5c8274ef7d10f6fafd04647fa6775577a1a250dcc2df37e95e46c4a';
  // The references agree on it ...
  assert.equal(Buffer.from(chacha20poly1305(RFC_KEY, wgNonce(counter)).encrypt(RFC_TEXT)).toString('hex'), expected);
  assert.equal(nodeSeal(RFC_KEY, counter, RFC_TEXT).toString('hex'), expected);
  // ... and so does the packet path, both ways.
  assert.equal(aeadSeal(RFC_KEY, counter, RFC_TEXT).toString('hex'), expected);
  assert.deepEqual(aeadOpen(RFC_KEY, counter, Buffer.from(expected, 'hex')), RFC_TEXT);
});

test('random keys, counters and sizes agree with Node crypto both ways', () => {
  for (let i = 0; i < 300; i++) {
    const key = crypto.randomBytes(32);
    const counter = randomCounter();
    const size = i < 40 ? i : Math.floor(Math.random() * (i % 10 === 0 ? 65_000 : 1_600));
    const text = crypto.randomBytes(size);
    const ours = aeadSeal(key, counter, text);
    assert.equal(ours.length, size + 16);
    assert.ok(ours.equals(nodeSeal(key, counter, text)), `seal mismatch: size ${size}, counter ${counter}`);
    assert.deepEqual(nodeOpen(key, counter, ours), text);
    const theirs = nodeSeal(key, counter, text);
    assert.deepEqual(aeadOpen(key, counter, theirs), text, `open mismatch: size ${size}, counter ${counter}`);
  }
});

test('tampering, wrong key or counter and short input give null', () => {
  const key = crypto.randomBytes(32);
  const text = crypto.randomBytes(100);
  const sealed = aeadSeal(key, 7n, text);
  for (const at of [0, 1, 50, 99, 100, 107, 115]) {
    for (const bit of [0, 7]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 1 << bit;
      assert.equal(aeadOpen(key, 7n, bad), null, `flip byte ${at} bit ${bit}`);
    }
  }
  assert.equal(aeadOpen(key, 8n, sealed), null);
  assert.equal(aeadOpen(key, 7n + (1n << 32n), sealed), null); // the whole 64-bit counter is in the nonce
  const other = Buffer.from(key);
  other[31]! ^= 0x80;
  assert.equal(aeadOpen(other, 7n, sealed), null);
  assert.equal(aeadOpen(key, 7n, sealed.subarray(0, sealed.length - 1)), null);
  assert.equal(aeadOpen(key, 7n, sealed.subarray(0, 15)), null);
  assert.equal(aeadOpen(key, 7n, Buffer.alloc(0)), null);
  assert.deepEqual(aeadOpen(key, 7n, sealed), text); // the original still opens
});

test('empty plaintext (keepalive) is a bare tag', () => {
  const key = crypto.randomBytes(32);
  const sealed = aeadSeal(key, 0n, Buffer.alloc(0));
  assert.equal(sealed.length, 16);
  assert.ok(sealed.equals(nodeSeal(key, 0n, Buffer.alloc(0))));
  const opened = aeadOpen(key, 0n, sealed);
  assert.ok(opened !== null && opened.length === 0);
  sealed[3]! ^= 1;
  assert.equal(aeadOpen(key, 0n, sealed), null);
});

test('argument checking', () => {
  assert.throws(() => aeadSeal(Buffer.alloc(31), 0n, Buffer.alloc(1)), RangeError);
  assert.throws(() => aeadSeal(Buffer.alloc(32), -1n, Buffer.alloc(1)), RangeError);
  assert.throws(() => aeadSeal(Buffer.alloc(32), 0n, 'text' as unknown as Buffer), TypeError);
  assert.throws(() => aeadOpen(Buffer.alloc(33), 0n, Buffer.alloc(16)), RangeError);
  // A plain Uint8Array is accepted where the contract says Buffer.
  const u8 = (n: number) => new Uint8Array(n) as unknown as Buffer;
  assert.equal(aeadSeal(u8(32), 1n, u8(3)).length, 19);
});
