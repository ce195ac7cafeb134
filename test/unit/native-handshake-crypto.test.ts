// The native handshake primitives (native/src/crypto/, through the addon's `cryptoTest` hooks):
// BLAKE2s, HMAC-BLAKE2s and the Noise KDF, X25519, ChaCha20-Poly1305 with associated data,
// HChaCha20 and XChaCha20-Poly1305, TAI64N. Published vectors (named beside each) pin the code;
// where no published vector fits WireGuard's form, the native code is cross-checked against two
// independent implementations: @noble (pure JS) and Node's OpenSSL through src/wireguard/crypto.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { blake2s } from '@noble/hashes/blake2.js';
import { chacha20poly1305, hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { native } from '../../src/wireguard/native.ts';
import * as ts from '../../src/wireguard/crypto.ts';
import { decodeTai64n } from '../../src/wireguard/tai64n.ts';
import { KDF_VECTORS, LOW_ORDER_POINTS } from './crypto-vectors.ts';

/** native/src/crypto/test_hooks.h; not part of the NativeModule contract, hence declared here. */
interface CryptoTest {
  hash(a: Uint8Array, b?: Uint8Array): Buffer;
  blake2s(outLen: number, key: Uint8Array, ...parts: Uint8Array[]): Buffer;
  mac(key: Uint8Array, data: Uint8Array): Buffer;
  hmac(key: Uint8Array, data: Uint8Array): Buffer;
  kdf(n: number, key: Uint8Array, input: Uint8Array): Buffer[];
  x25519Public(privateKey: Uint8Array): Buffer;
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Buffer | null;
  x25519Generate(peerPublicKey: Uint8Array): { publicKey: Buffer; shared: Buffer | null };
  aeadSeal(key: Uint8Array, counter: bigint | number, plaintext: Uint8Array, ad: Uint8Array): Buffer;
  aeadOpen(key: Uint8Array, counter: bigint | number, sealed: Uint8Array, ad: Uint8Array): Buffer | null;
  hchacha20(key: Uint8Array, nonce: Uint8Array): Buffer;
  xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer;
  xaeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null;
  equal(a: Uint8Array, b: Uint8Array): boolean;
  randomBytes(n: number): Buffer;
  tai64nNow(): Buffer;
  aliasing(key: Uint8Array, data: Uint8Array): string[];
}

const c = (native() as unknown as { cryptoTest: CryptoTest }).cryptoTest;

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');
const counting = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff));
const random = (n: number): Buffer => crypto.randomBytes(n);
const randomInt = (max: number): number => crypto.randomInt(max + 1);

// Lengths around the 64-byte block boundaries, then random ones.
const EDGE_LENGTHS = [0, 1, 3, 31, 32, 33, 55, 56, 63, 64, 65, 116, 127, 128, 129, 191, 192, 255, 256, 1024, 1025];
const lengths = (count: number, max: number): number[] => [
  ...EDGE_LENGTHS,
  ...Array.from({ length: count - EDGE_LENGTHS.length }, () => randomInt(max)),
];

const KEY_00_1F = counting(32);

// ---- BLAKE2s ----

test('HASH is BLAKE2s-256: RFC 7693 appendix B ("abc") and the empty string', () => {
  assert.equal(toHex(c.hash(ascii('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  assert.equal(toHex(c.hash(Buffer.alloc(0))), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9');
  // HASH(a || b) in two parts, split anywhere, including empty halves.
  assert.deepEqual(c.hash(ascii('a'), ascii('bc')), c.hash(ascii('abc')));
  assert.deepEqual(c.hash(Buffer.alloc(0), ascii('abc')), c.hash(ascii('abc')));
  assert.deepEqual(c.hash(ascii('abc'), Buffer.alloc(0)), c.hash(ascii('abc')));
  assert.deepEqual(c.hash(ascii('abc'), undefined), c.hash(ascii('abc')));
});

test('BLAKE2s passes the RFC 7693 appendix E self-test (digest lengths 16/20/28/32, keyed and unkeyed)', () => {
  // RFC 7693 appendix E: inputs from a Fibonacci generator, the 48 digests hashed together.
  const sequence = (len: number, seed: number): Buffer => {
    const out = Buffer.alloc(len);
    let a = Math.imul(0xdead4bad, seed) >>> 0;
    let b = 1;
    for (let i = 0; i < len; i++) {
      const t = (a + b) >>> 0;
      a = b;
      b = t;
      out[i] = t >>> 24;
    }
    return out;
  };
  const digests: Buffer[] = [];
  for (const outLen of [16, 20, 28, 32]) {
    for (const inLen of [0, 3, 64, 65, 255, 1024]) {
      const input = sequence(inLen, inLen);
      digests.push(c.blake2s(outLen, Buffer.alloc(0), input));
      digests.push(c.blake2s(outLen, sequence(outLen, outLen), input));
    }
  }
  assert.equal(
    toHex(c.blake2s(32, Buffer.alloc(0), ...digests)),
    '6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe',
  );
});

test('keyed BLAKE2s-256 matches the BLAKE2 reference KAT (blake2s-kat.txt, key 00..1f, input 00..n-1)', () => {
  // Entries of the reference keyed KAT, chosen around the block boundaries; the key block makes
  // even the empty message a one-block hash.
  const kat: [number, string][] = [
    [0, '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49'],
    [1, '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1'],
    [63, 'c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd'],
    [64, '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4'],
    [65, '21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8'],
    [127, 'ddbfea75cc467882eb3483ce5e2e756a4f4701b76b445519e89f22d60fa86e06'],
    [128, '0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a'],
    [129, '46a73a8dd3e70f59d3942c01df599def783c9da82fd83222cd662b53dce7dbdf'],
    [255, '3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd'],
  ];
  for (const [len, expected] of kat) {
    assert.equal(toHex(c.blake2s(32, KEY_00_1F, counting(len))), expected, `length ${len}`);
    assert.equal(toHex(blake2s(counting(len), { key: KEY_00_1F })), expected, `noble agrees, length ${len}`);
  }
  // The KAT stops at 255 bytes; the whole 00..ff (256 bytes, four full blocks) against noble.
  assert.deepEqual(c.blake2s(32, KEY_00_1F, counting(256)), Buffer.from(blake2s(counting(256), { key: KEY_00_1F })));
});

test('MAC is keyed BLAKE2s with a 16-byte digest (not a truncated BLAKE2s-256)', () => {
  // noble pinned on the digest-length parameter by the published BLAKE2s-128 of the empty string.
  assert.equal(toHex(blake2s(new Uint8Array(0), { dkLen: 16 })), '64550d6ffe2c0a01a14aba1eade0200c');
  assert.equal(toHex(c.blake2s(16, Buffer.alloc(0))), '64550d6ffe2c0a01a14aba1eade0200c');
  for (const len of [0, 1, 63, 64, 65, 116, 255, 256]) {
    const msg = counting(len);
    const expected = Buffer.from(blake2s(msg, { key: KEY_00_1F, dkLen: 16 }));
    assert.deepEqual(c.mac(KEY_00_1F, msg), expected, `length ${len}`);
    assert.deepEqual(c.blake2s(16, KEY_00_1F, msg), expected);
    assert.deepEqual(c.mac(KEY_00_1F, msg), Buffer.from(ts.mac(KEY_00_1F, msg)));
    // The digest length is in the parameter block, so it changes every byte.
    assert.notDeepEqual(c.mac(KEY_00_1F, msg), c.blake2s(32, KEY_00_1F, msg).subarray(0, 16));
  }
  // Cookie MACs are keyed with a 16-byte cookie: a shorter key is its own parameter, not padding.
  const cookie = random(16);
  const msg = random(100);
  assert.deepEqual(c.mac(cookie, msg), Buffer.from(blake2s(msg, { key: cookie, dkLen: 16 })));
  assert.notDeepEqual(c.mac(cookie, msg), c.mac(Buffer.concat([cookie, Buffer.alloc(16)]), msg));
});

test('random BLAKE2s inputs, keys and digest lengths agree with noble, however the input is split', () => {
  for (const len of lengths(400, 1100)) {
    const msg = random(len);
    const key = random(randomInt(32));
    const outLen = 1 + randomInt(31);
    // noble takes no key as "no key", and refuses an empty one.
    const nobleKey = key.length > 0 ? key : undefined;
    const expected = Buffer.from(blake2s(msg, { key: nobleKey, dkLen: outLen }));
    assert.deepEqual(c.blake2s(outLen, key, msg), expected, `length ${len}, key ${key.length}, out ${outLen}`);
    // update() in random pieces (some empty) must not change the result.
    const parts: Buffer[] = [];
    for (let at = 0; at < len; ) {
      const n = Math.min(len - at, randomInt(len < 130 ? 70 : 200));
      parts.push(msg.subarray(at, at + n));
      at += n;
    }
    assert.deepEqual(c.blake2s(outLen, key, ...parts), expected, `split ${parts.map((p) => p.length)}`);
    assert.deepEqual(c.hash(msg), Buffer.from(blake2s(msg)));
    const cut = randomInt(len);
    assert.deepEqual(c.hash(msg.subarray(0, cut), msg.subarray(cut)), Buffer.from(ts.hash(msg)));
    assert.deepEqual(c.mac(key, msg), Buffer.from(blake2s(msg, { key: nobleKey, dkLen: 16 })));
  }
});

// ---- HMAC and KDF ----

test('HMAC-BLAKE2s is RFC 2104 with a 64-byte block, keys over 64 bytes hashed first', () => {
  // By hand from the RFC 2104 definition: H((K ^ opad) || H((K ^ ipad) || m)).
  const byHand = (key: Uint8Array, data: Uint8Array): Buffer => {
    const block = Buffer.alloc(64);
    block.set(key.length > 64 ? blake2s(key) : key);
    const inner = blake2s(Buffer.concat([block.map((b) => b ^ 0x36), data]));
    return Buffer.from(blake2s(Buffer.concat([block.map((b) => b ^ 0x5c), inner])));
  };
  const fox = ascii('The quick brown fox jumps over the lazy dog');
  assert.deepEqual(c.hmac(ascii('key'), fox), byHand(ascii('key'), fox));
  for (const keyLen of [0, 1, 16, 32, 63, 64, 65, 100, 128, 200]) {
    for (const dataLen of [0, 1, 33, 64, 65, 200]) {
      const key = random(keyLen);
      const data = random(dataLen);
      const expected = byHand(key, data);
      assert.deepEqual(c.hmac(key, data), expected, `key ${keyLen}, data ${dataLen}`);
      assert.deepEqual(c.hmac(key, data), crypto.createHmac('blake2s256', key).update(data).digest());
      assert.deepEqual(c.hmac(key, data), Buffer.from(ts.hmac(key, data)));
    }
  }
});


test('KDF1/KDF2/KDF3 match wireguard-go kdf_test.go', () => {
  for (const v of KDF_VECTORS) {
    // The native KDF takes the 32-byte chaining key of the handshake, and these vectors use short
    // keys. The key only enters as an HMAC key, which RFC 2104 zero-pads to the 64-byte block,
    // so a short key and the same key zero-padded to 32 bytes are the same HMAC key.
    const key = Buffer.alloc(32);
    hex(v.key).copy(key);
    const input = hex(v.input);
    assert.deepEqual(c.kdf(3, key, input).map(toHex), [v.t0, v.t1, v.t2]);
    assert.deepEqual(c.kdf(2, key, input).map(toHex), [v.t0, v.t1]);
    assert.deepEqual(c.kdf(1, key, input).map(toHex), [v.t0]);
    assert.deepEqual(ts.kdf3(hex(v.key), input).map(toHex), [v.t0, v.t1, v.t2], 'the padding argument holds');
  }
});

test('random KDF keys and inputs agree with src/wireguard/crypto.ts', () => {
  for (const len of lengths(200, 300)) {
    const key = random(32);
    const input = random(len);
    const [t1, t2, t3] = ts.kdf3(key, input);
    assert.deepEqual(c.kdf(3, key, input), [t1, t2, t3].map((t) => Buffer.from(t)), `input ${len}`);
    assert.deepEqual(c.kdf(2, key, input), [t1, t2].map((t) => Buffer.from(t)));
    assert.deepEqual(c.kdf(1, key, input), [Buffer.from(t1)]);
  }
});

test('C_i and H_i match the reference constants (§4.1)', () => {
  const ci = c.hash(ascii('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  assert.equal(toHex(ci), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
  assert.equal(
    toHex(c.hash(ci, ascii('WireGuard v1 zx2c4 Jason@zx2c4.com'))),
    '2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3',
  );
});

test('in-place calls (output over an input) give the same results as separate buffers', () => {
  for (const len of [0, 1, 16, 31, 32, 33, 64, 65, 116, 300]) {
    assert.deepEqual(c.aliasing(random(32), random(len)), [], `data length ${len}`);
  }
});

// ---- X25519 ----

test('X25519 matches RFC 7748 §6.1 (Alice and Bob) and §5.2 vector 1', () => {
  const alicePrivate = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePublic = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bobPrivate = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPublic = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.equal(toHex(c.x25519Public(alicePrivate)), alicePublic);
  assert.equal(toHex(c.x25519Public(bobPrivate)), bobPublic);
  assert.equal(toHex(c.x25519(alicePrivate, hex(bobPublic))!), shared);
  assert.equal(toHex(c.x25519(bobPrivate, hex(alicePublic))!), shared);
  // §5.2: an unclamped scalar (X25519 clamps it, as load() does) on a non-generator point.
  const scalar = hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
  const u = hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c');
  assert.equal(toHex(c.x25519(scalar, u)!), 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  // The inputs are not modified (load clamps a copy).
  assert.equal(toHex(scalar), 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');
});

test('X25519 with a low-order public key gives null (all-zero shared secret)', () => {
  // Points of order 1, 2, 4 and 8 and their non-canonical encodings (the list the kernel's
  // curve25519 selftest and libsodium's blocklist use, as in test/unit/crypto.test.ts), and the
  // same with bit 255 set, which X25519 ignores.
  const lowOrder = LOW_ORDER_POINTS;
  const withHighBit = lowOrder.map((p) => {
    const b = hex(p);
    b[31]! |= 0x80;
    return toHex(b);
  });
  for (let i = 0; i < 5; i++) {
    const priv = random(32);
    for (const p of [...lowOrder, ...withHighBit]) assert.equal(c.x25519(priv, hex(p)), null, p);
    const other = c.x25519Public(random(32));
    assert.notEqual(c.x25519(priv, other), null);
    assert.equal(c.x25519Generate(hex(lowOrder[2]!)).shared, null);
  }
});

test('random X25519 keys agree with Node crypto (src/wireguard/crypto.ts), both ways', () => {
  for (let i = 0; i < 100; i++) {
    const a = random(32);
    const b = random(32);
    const aPublic = c.x25519Public(a);
    assert.deepEqual(aPublic, Buffer.from(ts.publicKeyOf(a)));
    // Clamping happens at load: a key and its clamped form are the same key.
    assert.deepEqual(c.x25519Public(Buffer.from(ts.clampPrivateKey(a))), aPublic);
    const bPublic = Buffer.from(ts.publicKeyOf(b));
    const shared = c.x25519(a, bPublic);
    assert.ok(shared);
    assert.deepEqual(shared, Buffer.from(ts.dh(b, aPublic)!));
    // A public key with bit 255 set is the same point (RFC 7748 §5 masks it).
    const masked = Buffer.from(bPublic);
    masked[31]! |= 0x80;
    assert.deepEqual(c.x25519(a, masked), shared);
  }
});

test('X25519Key::generate makes distinct keys whose shared secret the peer computes too', () => {
  const peer = random(32);
  const peerPublic = c.x25519Public(peer);
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const { publicKey, shared } = c.x25519Generate(peerPublic);
    assert.equal(publicKey.length, 32);
    assert.ok(shared);
    assert.deepEqual(c.x25519(peer, publicKey), shared);
    seen.add(toHex(publicKey));
  }
  assert.equal(seen.size, 50);
});

// ---- ChaCha20-Poly1305 with associated data ----

// RFC 8439 §2.8.2
const RFC_KEY = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
const RFC_AAD = hex('50515253c0c1c2c3c4c5c6c7');
const SUNSCREEN = ascii(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

function wgNonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

function nodeSeal(key: Uint8Array, nonce: Uint8Array, text: Uint8Array, ad: Uint8Array): Buffer {
  const cipher = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(ad, { plaintextLength: text.length });
  return Buffer.concat([cipher.update(text), cipher.final(), cipher.getAuthTag()]);
}

test('ChaCha20-Poly1305 with associated data: RFC 8439 §2.8.2 pins the references, which pin ours', () => {
  const expected = hex(
    `d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
     1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
     3ff4def08e4b7a9de576d26586cec64b6116 1ae10b594f09e26a7e902ecbd0600691`,
  );
  // The RFC's nonce (07000000 40..47) has a non-zero prefix, which WireGuard's counter nonce cannot
  // express: the vector pins Node's OpenSSL and noble, and ours is checked against them with the
  // RFC's key, text and AAD under a WireGuard nonce.
  const rfcNonce = hex('070000004041424344454647');
  assert.deepEqual(nodeSeal(RFC_KEY, rfcNonce, SUNSCREEN, RFC_AAD), expected);
  assert.deepEqual(Buffer.from(chacha20poly1305(RFC_KEY, rfcNonce, RFC_AAD).encrypt(SUNSCREEN)), expected);
  const counter = 0x4746454443424140n;
  const reference = nodeSeal(RFC_KEY, wgNonce(counter), SUNSCREEN, RFC_AAD);
  assert.deepEqual(Buffer.from(chacha20poly1305(RFC_KEY, wgNonce(counter), RFC_AAD).encrypt(SUNSCREEN)), reference);
  assert.deepEqual(c.aeadSeal(RFC_KEY, counter, SUNSCREEN, RFC_AAD), reference);
  assert.deepEqual(c.aeadOpen(RFC_KEY, counter, reference, RFC_AAD), SUNSCREEN);
  // The associated data is authenticated, not encrypted: same ciphertext, different tag.
  const noAad = c.aeadSeal(RFC_KEY, counter, SUNSCREEN, Buffer.alloc(0));
  assert.deepEqual(noAad.subarray(0, SUNSCREEN.length), reference.subarray(0, SUNSCREEN.length));
  assert.notDeepEqual(noAad.subarray(SUNSCREEN.length), reference.subarray(SUNSCREEN.length));
  // A counter given as a Number is the same counter.
  assert.deepEqual(c.aeadSeal(RFC_KEY, 7, SUNSCREEN, RFC_AAD), c.aeadSeal(RFC_KEY, 7n, SUNSCREEN, RFC_AAD));
});

test('random keys, counters, texts and associated data agree with Node crypto both ways', () => {
  const counters = [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 60n, 2n ** 64n - 1n];
  for (const len of lengths(300, 1500)) {
    const key = random(32);
    const counter = Math.random() < 0.3 ? counters[randomInt(counters.length - 1)]! : random(8).readBigUInt64LE();
    const text = random(len);
    const ad = random([0, 16, 32, 33, 64][randomInt(4)]!);
    const reference = Buffer.from(ts.aeadSeal(key, counter, text, ad));
    assert.deepEqual(c.aeadSeal(key, counter, text, ad), reference, `length ${len}, ad ${ad.length}`);
    assert.deepEqual(c.aeadOpen(key, counter, reference, ad), text);
  }
});

test('a flipped bit in the ciphertext, tag or associated data, or a wrong key or counter, fails to open', () => {
  const key = random(32);
  const ad = random(32);
  for (const len of [0, 12, 32, 100]) {
    const text = random(len);
    const sealed = c.aeadSeal(key, 9n, text, ad);
    for (let at = 0; at < sealed.length; at += len > 32 ? 7 : 1) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 1 << (at % 8);
      assert.equal(c.aeadOpen(key, 9n, bad, ad), null, `length ${len}, flip byte ${at}`);
    }
    for (let at = 0; at < ad.length; at++) {
      const badAd = Buffer.from(ad);
      badAd[at]! ^= 0x80;
      assert.equal(c.aeadOpen(key, 9n, sealed, badAd), null, `ad byte ${at}`);
    }
    assert.equal(c.aeadOpen(key, 9n, sealed, ad.subarray(1)), null);
    assert.equal(c.aeadOpen(key, 9n, sealed, Buffer.alloc(0)), null);
    assert.equal(c.aeadOpen(key, 10n, sealed, ad), null);
    assert.equal(c.aeadOpen(key, 9n + 2n ** 63n, sealed, ad), null);
    const otherKey = Buffer.from(key);
    otherKey[0]! ^= 1;
    assert.equal(c.aeadOpen(otherKey, 9n, sealed, ad), null);
    assert.equal(c.aeadOpen(key, 9n, sealed.subarray(0, sealed.length - 1), ad), null);
    assert.deepEqual(c.aeadOpen(key, 9n, sealed, ad), text, 'the original still opens');
  }
  assert.equal(c.aeadOpen(key, 0n, Buffer.alloc(15), ad), null);
  assert.equal(c.aeadOpen(key, 0n, Buffer.alloc(0), ad), null);
});

// ---- HChaCha20 and XChaCha20-Poly1305 ----

test('HChaCha20 matches draft-irtf-cfrg-xchacha-03 §2.2.1', () => {
  const nonce = hex('000000090000004a0000000031415927');
  assert.equal(
    toHex(c.hchacha20(KEY_00_1F, nonce)),
    '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc',
  );
});

test('random HChaCha20 keys and nonces agree with noble', () => {
  const words = (b: Uint8Array): Uint32Array => new Uint32Array(Uint8Array.from(b).buffer);
  const sigma = words(ascii('expand 32-byte k'));
  for (let i = 0; i < 200; i++) {
    const key = random(32);
    const nonce = random(16);
    const out = new Uint32Array(8);
    hchacha(sigma, words(key), words(nonce), out);
    assert.deepEqual(c.hchacha20(key, nonce), Buffer.from(out.buffer));
  }
});

test('XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha-03 A.3.1', () => {
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
  const expected = hex(
    `bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
     ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
     21f9664c97637da9768812f615c68b13b52e c0875924c1c7987947deafd8780acf49`,
  );
  assert.deepEqual(c.xaeadSeal(RFC_KEY, nonce, SUNSCREEN, RFC_AAD), expected);
  assert.deepEqual(c.xaeadOpen(RFC_KEY, nonce, expected, RFC_AAD), SUNSCREEN);
  const tampered = Buffer.from(expected);
  tampered[tampered.length - 1]! ^= 0x80;
  assert.equal(c.xaeadOpen(RFC_KEY, nonce, tampered, RFC_AAD), null);
  assert.equal(c.xaeadOpen(RFC_KEY, nonce, expected, Buffer.alloc(0)), null);
});

test('random XChaCha20-Poly1305 inputs agree with noble and src/wireguard/crypto.ts; tampering fails', () => {
  for (const len of lengths(300, 1500)) {
    const key = random(32);
    const nonce = random(24);
    const text = random(len);
    const ad = random([0, 16, 32][randomInt(2)]!);
    const reference = Buffer.from(xchacha20poly1305(key, nonce, ad).encrypt(text));
    const sealed = c.xaeadSeal(key, nonce, text, ad);
    assert.deepEqual(sealed, reference, `length ${len}`);
    assert.deepEqual(sealed, Buffer.from(ts.xaeadSeal(key, nonce, text, ad)));
    assert.deepEqual(c.xaeadOpen(key, nonce, reference, ad), text);
    const bad = Buffer.from(sealed);
    bad[randomInt(bad.length - 1)]! ^= 1 << randomInt(7);
    assert.equal(c.xaeadOpen(key, nonce, bad, ad), null);
    // Every nonce byte matters: the first 16 choose the subkey, the last 8 are the nonce.
    const badNonce = Buffer.from(nonce);
    badNonce[randomInt(23)]! ^= 1;
    assert.equal(c.xaeadOpen(key, badNonce, sealed, ad), null);
    if (ad.length > 0) assert.equal(c.xaeadOpen(key, nonce, sealed, ad.subarray(0, ad.length - 1)), null);
  }
});

// ---- TAI64N, equal, randomBytes ----

test('tai64nNow: 12 bytes, the wall clock, whitened nanoseconds, increasing', async () => {
  const first = c.tai64nNow();
  assert.equal(first.length, 12);
  const decoded = decodeTai64n(first)!;
  assert.ok(Math.abs(Number(decoded.unixSeconds) - Date.now() / 1000) < 2, 'seconds are Unix time + 2^62 + 10');
  assert.equal(first.readBigUInt64BE(0) - decoded.unixSeconds, 0x400000000000000an);
  assert.ok(decoded.nanoseconds < 1e9);
  assert.equal(first.readUInt32BE(8) & 0xffffff, 0, 'low 24 bits of the nanoseconds are zero');
  await sleep(50);
  const second = c.tai64nNow();
  assert.equal(second.readUInt32BE(8) & 0xffffff, 0);
  // 50 ms is more than two 2^24 ns buckets, so the label has moved on.
  assert.equal(Buffer.compare(second, first), 1);
});

test('equal compares in full; randomBytes gives fresh bytes', () => {
  const a = random(32);
  assert.equal(c.equal(a, Buffer.from(a)), true);
  for (const at of [0, 15, 31]) {
    const b = Buffer.from(a);
    b[at]! ^= 0x01;
    assert.equal(c.equal(a, b), false, `byte ${at}`);
  }
  assert.equal(c.equal(Buffer.alloc(0), Buffer.alloc(0)), true);
  assert.equal(c.randomBytes(0).length, 0);
  const r = c.randomBytes(64);
  assert.equal(r.length, 64);
  assert.notDeepEqual(r, c.randomBytes(64));
});

// ---- Argument checking ----

test('every bad argument throws a TypeError or RangeError instead of crashing', () => {
  const k32 = Buffer.alloc(32);
  const notBytes: unknown[] = [undefined, null, 1, 'x', [1, 2], {}, new Uint16Array(16), new Uint8ClampedArray(32),
    new DataView(new ArrayBuffer(32)), new ArrayBuffer(32)];
  const anyC = c as unknown as Record<string, (...args: unknown[]) => unknown>;
  // [function, valid arguments]: each byte argument is replaced in turn by every non-bytes value.
  const calls: [string, unknown[]][] = [
    ['hash', [Buffer.alloc(3)]],
    ['blake2s', [32, Buffer.alloc(0), Buffer.alloc(3)]],
    ['mac', [k32, Buffer.alloc(3)]],
    ['hmac', [k32, Buffer.alloc(3)]],
    ['kdf', [2, k32, Buffer.alloc(3)]],
    ['x25519Public', [k32]],
    ['x25519', [k32, k32]],
    ['x25519Generate', [k32]],
    ['aeadSeal', [k32, 0n, Buffer.alloc(3), Buffer.alloc(0)]],
    ['aeadOpen', [k32, 0n, Buffer.alloc(16), Buffer.alloc(0)]],
    ['hchacha20', [k32, Buffer.alloc(16)]],
    ['xaeadSeal', [k32, Buffer.alloc(24), Buffer.alloc(3), Buffer.alloc(0)]],
    ['xaeadOpen', [k32, Buffer.alloc(24), Buffer.alloc(16), Buffer.alloc(0)]],
    ['equal', [k32, k32]],
    ['aliasing', [k32, Buffer.alloc(3)]],
  ];
  for (const [name, args] of calls) {
    assert.doesNotThrow(() => anyC[name]!(...args), name);
    args.forEach((arg, i) => {
      if (!(arg instanceof Uint8Array)) return;
      for (const bad of notBytes) {
        const badArgs = [...args];
        badArgs[i] = bad;
        assert.throws(() => anyC[name]!(...badArgs), TypeError, `${name} argument ${i} = ${String(bad)}`);
      }
    });
    // Missing arguments.
    for (let n = 0; n < args.length; n++) {
      if (name === 'blake2s' && n === 2) continue; // no parts is the empty message
      assert.throws(() => anyC[name]!(...args.slice(0, n)), TypeError, `${name} with ${n} arguments`);
    }
  }
  // Wrong lengths.
  const lengthErrors: [string, unknown[]][] = [
    ['kdf', [1, Buffer.alloc(31), Buffer.alloc(0)]],
    ['kdf', [1, Buffer.alloc(33), Buffer.alloc(0)]],
    ['mac', [Buffer.alloc(33), Buffer.alloc(0)]],
    ['blake2s', [32, Buffer.alloc(33)]],
    ['x25519Public', [Buffer.alloc(31)]],
    ['x25519', [k32, Buffer.alloc(33)]],
    ['x25519', [Buffer.alloc(0), k32]],
    ['x25519Generate', [Buffer.alloc(31)]],
    ['aeadSeal', [Buffer.alloc(16), 0n, Buffer.alloc(3), Buffer.alloc(0)]],
    ['aeadOpen', [Buffer.alloc(33), 0n, Buffer.alloc(16), Buffer.alloc(0)]],
    ['hchacha20', [k32, Buffer.alloc(24)]],
    ['hchacha20', [Buffer.alloc(16), Buffer.alloc(16)]],
    ['xaeadSeal', [k32, Buffer.alloc(12), Buffer.alloc(3), Buffer.alloc(0)]],
    ['xaeadOpen', [k32, Buffer.alloc(23), Buffer.alloc(16), Buffer.alloc(0)]],
    ['xaeadOpen', [Buffer.alloc(0), Buffer.alloc(24), Buffer.alloc(16), Buffer.alloc(0)]],
    ['equal', [k32, Buffer.alloc(31)]],
    ['aliasing', [Buffer.alloc(16), Buffer.alloc(3)]],
    ['hash', [Buffer.alloc(1024 * 1024 + 1)]],
    ['hmac', [Buffer.alloc(0), Buffer.alloc(1024 * 1024 + 1)]],
  ];
  for (const [name, args] of lengthErrors) assert.throws(() => anyC[name]!(...args), RangeError, `${name} lengths`);
  // Numbers: n, outLen, counters.
  for (const n of [0, 4, -1]) assert.throws(() => c.kdf(n, k32, Buffer.alloc(0)), RangeError, `kdf n = ${n}`);
  for (const n of [1.5, NaN, Infinity, '2', 2n]) assert.throws(() => anyC.kdf!(n, k32, Buffer.alloc(0)), TypeError);
  for (const n of [0, 33]) assert.throws(() => c.blake2s(n, Buffer.alloc(0)), RangeError, `outLen ${n}`);
  assert.throws(() => anyC.blake2s!('32', Buffer.alloc(0)), TypeError);
  for (const counter of [-1n, 2n ** 64n, -(2n ** 70n), -1, 2 ** 53]) {
    assert.throws(() => c.aeadSeal(k32, counter, Buffer.alloc(1), Buffer.alloc(0)), RangeError, String(counter));
    assert.throws(() => c.aeadOpen(k32, counter, Buffer.alloc(17), Buffer.alloc(0)), RangeError, String(counter));
  }
  for (const counter of [1.5, NaN, '1', null, undefined]) {
    assert.throws(() => anyC.aeadSeal!(k32, counter, Buffer.alloc(1), Buffer.alloc(0)), TypeError, String(counter));
  }
  for (const n of [-1, 65537]) assert.throws(() => c.randomBytes(n), RangeError);
  assert.throws(() => anyC.randomBytes!('8'), TypeError);
  // The largest valid values still work, and plain Uint8Arrays and subarray views are accepted.
  assert.equal(c.aeadSeal(k32, 2n ** 64n - 1n, new Uint8Array(3), new Uint8Array(0)).length, 19);
  const view = Buffer.from('xxabcxx').subarray(2, 5);
  assert.deepEqual(c.hash(new Uint8Array(view.buffer, view.byteOffset, 3)), c.hash(ascii('abc')));
  assert.equal(c.blake2s(1, new Uint8Array(32)).length, 1);
});
