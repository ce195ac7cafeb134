// Known answers for every primitive WireGuard uses. Vectors come from published sources (named
// beside each), never from this implementation's own output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake2s } from '@noble/hashes/blake2.js';
import {
  aeadNonce,
  aeadOpen,
  aeadSeal,
  chachaPolyOpen,
  chachaPolySeal,
  clampPrivateKey,
  dh,
  generatePrivateKey,
  hash,
  hmac,
  kdf1,
  kdf2,
  kdf3,
  mac,
  publicKeyOf,
  randomIndex,
  xaeadOpen,
  xaeadSeal,
} from '../../src/wireguard/crypto.ts';
import { INITIAL_CHAINING_KEY, INITIAL_HASH } from '../../src/wireguard/noise.ts';
import { KDF_VECTORS, LOW_ORDER_POINTS } from './crypto-vectors.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);


test('KDF1/KDF2/KDF3 match wireguard-go kdf_test.go', () => {
  for (const v of KDF_VECTORS) {
    const key = hex(v.key);
    const input = hex(v.input);
    assert.deepEqual(kdf3(key, input).map(toHex), [v.t0, v.t1, v.t2]);
    assert.deepEqual(kdf2(key, input).map(toHex), [v.t0, v.t1]);
    assert.deepEqual(kdf1(key, input).map(toHex), [v.t0]);
  }
});

test('C_i and H_i match the reference constants (§4.1)', () => {
  assert.equal(toHex(INITIAL_CHAINING_KEY), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  assert.equal(toHex(INITIAL_HASH), '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
});

test('HASH is BLAKE2s-256 (RFC 7693 appendix B "abc") and hashes the concatenation', () => {
  assert.equal(toHex(hash(ascii('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  assert.deepEqual(hash(ascii('a'), ascii('bc')), hash(ascii('abc')));
  assert.deepEqual(hash(), hash(new Uint8Array(0)));
});

test('MAC is keyed BLAKE2s with a 16-byte digest, not a truncation of BLAKE2s-256', () => {
  const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  // The oracle (noble's RFC 7693 code) is pinned on both parameters MAC depends on: keying, by
  // the first keyed vector of blake2.net blake2s-kat.txt, and the digest length, by the published
  // BLAKE2s-128 hash of the empty string.
  assert.equal(toHex(blake2s(new Uint8Array(0), { key })), '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49');
  assert.equal(toHex(blake2s(new Uint8Array(0), { dkLen: 16 })), '64550d6ffe2c0a01a14aba1eade0200c');
  const data = ascii('handshake bytes');
  const out = mac(key, data);
  assert.equal(out.length, 16);
  assert.deepEqual(out, blake2s(data, { key, dkLen: 16 }));
  // BLAKE2s encodes the digest length in its parameter block, so the 16-byte MAC differs from the
  // first 16 bytes of the 32-byte keyed hash.
  assert.notDeepEqual(out, blake2s(data, { key, dkLen: 32 }).subarray(0, 16));
  const otherKey = Uint8Array.from(key);
  otherKey[0]! ^= 1;
  assert.notDeepEqual(mac(otherKey, data), out);
});

test('HMAC-BLAKE2s follows RFC 2104 with a 64-byte block', () => {
  // Built by hand from the RFC 2104 definition on top of BLAKE2s-256: H((K^opad) || H((K^ipad) || m)).
  const key = ascii('key');
  const data = ascii('The quick brown fox jumps over the lazy dog');
  const block = new Uint8Array(64);
  block.set(key);
  const ipad = block.map((b) => b ^ 0x36);
  const opad = block.map((b) => b ^ 0x5c);
  const expected = blake2s(Uint8Array.from([...opad, ...blake2s(Uint8Array.from([...ipad, ...data]))]));
  assert.deepEqual(hmac(key, data), expected);
});

// RFC 7539 §2.8.2
const SUNSCREEN = ascii(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);
const RFC_KEY = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
const RFC_AAD = hex('50515253c0c1c2c3c4c5c6c7');

test('ChaCha20-Poly1305 matches RFC 7539 §2.8.2', () => {
  const nonce = hex('070000004041424344454647');
  const expected = hex(
    `d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
     1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
     3ff4def08e4b7a9de576d26586cec64b6116 1ae10b594f09e26a7e902ecbd0600691`,
  );
  const sealed = chachaPolySeal(RFC_KEY, nonce, SUNSCREEN, RFC_AAD);
  assert.deepEqual(sealed, expected);
  assert.deepEqual(chachaPolyOpen(RFC_KEY, nonce, expected, RFC_AAD), SUNSCREEN);
  const tampered = Uint8Array.from(expected);
  tampered[10]! ^= 1;
  assert.equal(chachaPolyOpen(RFC_KEY, nonce, tampered, RFC_AAD), null);
  assert.equal(chachaPolyOpen(RFC_KEY, nonce, expected, hex('50515253c0c1c2c3c4c5c6c8')), null);
  assert.equal(chachaPolyOpen(RFC_KEY, nonce, expected.subarray(0, 15), RFC_AAD), null);
});

test('WireGuard AEAD nonce is 4 zero bytes then the counter little-endian', () => {
  assert.equal(toHex(aeadNonce(0x0102030405060708n)), '000000000807060504030201');
  assert.equal(toHex(aeadNonce(2n ** 64n - 1n)), '00000000ffffffffffffffff');
  // Cross-check the whole seal against an independent implementation fed the explicit nonce.
  const counter = 0x1122334455667788n;
  const nonce = hex('000000008877665544332211');
  const expected = chacha20poly1305(RFC_KEY, nonce, RFC_AAD).encrypt(SUNSCREEN);
  assert.deepEqual(aeadSeal(RFC_KEY, counter, SUNSCREEN, RFC_AAD), expected);
  assert.deepEqual(aeadOpen(RFC_KEY, counter, expected, RFC_AAD), SUNSCREEN);
  assert.equal(aeadOpen(RFC_KEY, counter + 1n, expected, RFC_AAD), null);
  // Empty plaintext (keepalives, enc_empty): just a 16-byte tag.
  const empty = aeadSeal(RFC_KEY, 0n, new Uint8Array(0), RFC_AAD);
  assert.equal(empty.length, 16);
  assert.deepEqual(aeadOpen(RFC_KEY, 0n, empty, RFC_AAD), new Uint8Array(0));
});

test('XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha-03 A.3.1', () => {
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const expected = hex(
    `bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
     ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
     21f9664c97637da9768812f615c68b13b52e c0875924c1c7987947deafd8780acf49`,
  );
  assert.deepEqual(xaeadSeal(RFC_KEY, nonce, SUNSCREEN, RFC_AAD), expected);
  assert.deepEqual(xaeadOpen(RFC_KEY, nonce, expected, RFC_AAD), SUNSCREEN);
  const tampered = Uint8Array.from(expected);
  tampered[tampered.length - 1]! ^= 0x80;
  assert.equal(xaeadOpen(RFC_KEY, nonce, tampered, RFC_AAD), null);
  assert.equal(xaeadOpen(RFC_KEY, nonce, expected, new Uint8Array(0)), null);
  assert.equal(xaeadOpen(RFC_KEY, nonce.subarray(0, 12), expected, RFC_AAD), null);
});

test('X25519 matches RFC 7748 §6.1', () => {
  const alicePrivate = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePublic = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  const bobPrivate = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.deepEqual(publicKeyOf(alicePrivate), alicePublic);
  assert.deepEqual(publicKeyOf(bobPrivate), bobPublic);
  assert.equal(toHex(dh(alicePrivate, bobPublic)!), shared);
  assert.equal(toHex(dh(bobPrivate, alicePublic)!), shared);
});

test('X25519 scalar multiplication matches RFC 7748 §5.2 vector 1', () => {
  const scalar = hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
  const u = hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c');
  assert.equal(toHex(dh(scalar, u)!), 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
});

test('dh returns null for low-order public keys (all-zero shared secret)', () => {
  const priv = generatePrivateKey();
  // Points of order 1, 2, 4 and 8 on Curve25519 and their non-canonical encodings (the list the
  // kernel's curve25519 selftest and libsodium's blocklist use).
  const lowOrder = LOW_ORDER_POINTS;
  for (const p of lowOrder) assert.equal(dh(priv, hex(p)), null, p);
  assert.equal(dh(priv, new Uint8Array(31)), null, 'wrong length');
  assert.notEqual(dh(priv, publicKeyOf(generatePrivateKey())), null);
});

test('clamping clears the cofactor bits and bit 255, sets bit 254, and copies', () => {
  const raw = new Uint8Array(32).fill(0xff);
  const clamped = clampPrivateKey(raw);
  assert.equal(clamped[0], 0xf8);
  assert.equal(clamped[31], 0x7f);
  assert.ok(clamped.subarray(1, 31).every((b) => b === 0xff));
  assert.equal(raw[0], 0xff, 'input untouched');
  const zero = clampPrivateKey(new Uint8Array(32));
  assert.equal(zero[0], 0);
  assert.equal(zero[31], 0x40);
  for (let i = 0; i < 50; i++) {
    const k = generatePrivateKey();
    assert.equal(k.length, 32);
    assert.equal(k[0]! & 7, 0);
    assert.equal(k[31]! & 0xc0, 0x40);
  }
  // X25519 clamps internally, so a key and its clamped form share a public key.
  const unclamped = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  assert.deepEqual(publicKeyOf(clampPrivateKey(unclamped)), publicKeyOf(unclamped));
});

test('random keys agree on a shared secret; randomIndex is a uint32', () => {
  const a = generatePrivateKey();
  const b = generatePrivateKey();
  assert.notDeepEqual(a, b);
  assert.deepEqual(dh(a, publicKeyOf(b)), dh(b, publicKeyOf(a)));
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const x = randomIndex();
    assert.ok(Number.isInteger(x) && x >= 0 && x <= 0xffffffff);
    seen.add(x);
  }
  assert.ok(seen.size > 990, 'indices look random');
});

test('dh follows key arrays changed in place (its KeyObject cache re-checks the bytes)', () => {
  const [a, b, c, d] = [generatePrivateKey(), generatePrivateKey(), generatePrivateKey(), generatePrivateKey()];
  const priv = Uint8Array.from(a);
  const pub = publicKeyOf(c);
  const first = dh(priv, pub);
  priv.set(b);
  assert.deepEqual(dh(priv, pub), dh(Uint8Array.from(b), pub), 'the private key array was rewritten');
  pub.set(publicKeyOf(d));
  assert.deepEqual(dh(priv, pub), dh(Uint8Array.from(b), publicKeyOf(d)), 'the public key array was rewritten');
  assert.notDeepEqual(first, dh(priv, pub));
});
