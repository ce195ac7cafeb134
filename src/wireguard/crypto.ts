// WireGuard's cryptographic primitives (reference §4.1), as small pure functions over Uint8Array.
//
// Node's OpenSSL does the heavy lifting where it can (BLAKE2s-256, HMAC-BLAKE2s, ChaCha20-Poly1305,
// X25519): it is several times faster than pure JavaScript. OpenSSL exposes BLAKE2s only with a
// 32-byte digest and no key, and has no XChaCha20, so the keyed 16-byte MAC and the cookie AEAD come
// from @noble. All outputs are fresh arrays the caller may keep or wipe.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  randomInt,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { AEAD_TAG_SIZE, KEY_SIZE, MAC_SIZE, XAEAD_NONCE_SIZE } from './constants.ts';

const EMPTY = new Uint8Array(0);

/** A plain Uint8Array view of a Buffer (no copy), so callers compare like with like. */
function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

// ---- Hashing ----

/** HASH: BLAKE2s-256 of the concatenation of `parts`. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const part of parts) h.update(part);
  return view(h.digest());
}

/** MAC: keyed BLAKE2s with a 16-byte digest (not a truncated BLAKE2s-256: the digest length is a parameter). */
export function mac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2s(data, { key, dkLen: MAC_SIZE });
}

/** HMAC-BLAKE2s (RFC 2104 with BLAKE2s-256, 64-byte block). Note: not BLAKE2s's own keyed mode. */
export function hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  return view(createHmac('blake2s256', key).update(data).digest());
}

/**
 * HKDF-style KDF from the Noise spec: prk = HMAC(key, input); t1 = HMAC(prk, 0x01);
 * t(i) = HMAC(prk, t(i-1) || i). Returns t1..tn.
 */
function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmac(key, input);
  const out: Uint8Array[] = [];
  let previous: Uint8Array = EMPTY;
  for (let i = 1; i <= n; i++) {
    const block = new Uint8Array(previous.length + 1);
    block.set(previous, 0);
    block[previous.length] = i;
    previous = hmac(prk, block);
    block.fill(0);
    out.push(previous);
  }
  prk.fill(0);
  return out;
}

export function kdf1(key: Uint8Array, input: Uint8Array): [Uint8Array] {
  const [t1] = kdf(1, key, input) as [Uint8Array];
  return [t1];
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const [t1, t2] = kdf(2, key, input) as [Uint8Array, Uint8Array];
  return [t1, t2];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const [t1, t2, t3] = kdf(3, key, input) as [Uint8Array, Uint8Array, Uint8Array];
  return [t1, t2, t3];
}

// ---- AEAD ----

/** ChaCha20-Poly1305 (RFC 7539) with an explicit 12-byte nonce; returns ciphertext || tag. */
export function chachaPolySeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(body.length + AEAD_TAG_SIZE);
  out.set(body, 0);
  out.set(tag, body.length);
  return out;
}

/** Inverse of chachaPolySeal; null when the input is too short or authentication fails. */
export function chachaPolyOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_SIZE) return null;
  const bodyLength = ciphertext.length - AEAD_TAG_SIZE;
  try {
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_SIZE });
    decipher.setAAD(aad, { plaintextLength: bodyLength });
    decipher.setAuthTag(ciphertext.subarray(bodyLength));
    const body = decipher.update(ciphertext.subarray(0, bodyLength));
    decipher.final(); // throws when the tag does not verify
    return view(body);
  } catch {
    return null;
  }
}

/** WireGuard's AEAD nonce: 4 zero bytes then the 64-bit counter, little-endian. */
export function aeadNonce(counter: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, BigInt.asUintN(64, counter), true);
  return nonce;
}

export function aeadSeal(key: Uint8Array, counter: bigint, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return chachaPolySeal(key, aeadNonce(counter), plaintext, aad);
}

export function aeadOpen(key: Uint8Array, counter: bigint, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array | null {
  return chachaPolyOpen(key, aeadNonce(counter), ciphertext, aad);
}

/** XChaCha20-Poly1305 with a 24-byte nonce (cookie replies only); returns ciphertext || tag. */
export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  if (nonce.length !== XAEAD_NONCE_SIZE) throw new RangeError('XChaCha20-Poly1305 nonce must be 24 bytes');
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (nonce.length !== XAEAD_NONCE_SIZE || key.length !== KEY_SIZE || ciphertext.length < AEAD_TAG_SIZE) return null;
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

// ---- X25519 ----

// OpenSSL takes raw X25519 keys most cheaply as DER: a fixed ASN.1 header followed by the 32 bytes.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_X25519_PREFIX, privateKey]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

/** Returns a clamped copy: the low 3 bits cleared (cofactor), bit 255 cleared, bit 254 set. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  const out = Uint8Array.from(key);
  out[0]! &= 248;
  out[31] = (out[31]! & 127) | 64;
  return out;
}

export function generatePrivateKey(): Uint8Array {
  const raw = randomBytes(KEY_SIZE);
  const key = clampPrivateKey(raw);
  raw.fill(0);
  return key;
}

export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_SIZE) throw new RangeError('X25519 private key must be 32 bytes');
  const spki = createPublicKey(privateKeyObject(privateKey)).export({ format: 'der', type: 'spki' });
  return Uint8Array.from(spki.subarray(spki.length - KEY_SIZE));
}

// Importing a raw X25519 key into OpenSSL (DER -> KeyObject) costs about twice the exchange itself,
// and a responder's handshake uses its static private key and the peer's static public key every
// time. KeyObjects are therefore remembered per key array (the device's identity, each peer's
// key, an ephemeral used twice in one message) and checked on every use against a fingerprint of
// the array's bytes, in case it was changed in place (e.g. wiped). For private keys the fingerprint
// is a SHA-256 digest, so the cache keeps no second copy of a secret. Weak keys: entries go when
// their arrays do.
interface CachedKey {
  fingerprint: Buffer;
  key: KeyObject;
}
type KeyCache = WeakMap<Uint8Array, CachedKey>;
const privateKeyObjects: KeyCache = new WeakMap();
const publicKeyObjects: KeyCache = new WeakMap();
const digest = (raw: Uint8Array): Buffer => createHash('sha256').update(raw).digest();
const copy = (raw: Uint8Array): Buffer => Buffer.from(raw);

function cachedKeyObject(
  cache: KeyCache,
  raw: Uint8Array,
  make: (raw: Uint8Array) => KeyObject,
  fingerprint: (raw: Uint8Array) => Buffer,
): KeyObject {
  const hit = cache.get(raw);
  const print = fingerprint(raw);
  if (hit && hit.fingerprint.equals(print)) return hit.key;
  const key = make(raw);
  cache.set(raw, { fingerprint: print, key });
  return key;
}

/**
 * X25519(privateKey, publicKey). Null when the result is all zeros: the public key is of low order
 * (or otherwise degenerate) and the "shared" secret would be known to everyone. OpenSSL already
 * refuses to derive in that case; the explicit check keeps the guarantee independent of it.
 */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  if (privateKey.length !== KEY_SIZE || publicKey.length !== KEY_SIZE) return null;
  let shared: Buffer;
  try {
    shared = diffieHellman({
      privateKey: cachedKeyObject(privateKeyObjects, privateKey, privateKeyObject, digest),
      publicKey: cachedKeyObject(publicKeyObjects, publicKey, publicKeyObject, copy),
    });
  } catch {
    return null;
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? null : view(shared);
}

/** A uniformly random uint32 (session indices). */
export function randomIndex(): number {
  return randomInt(0, 0x1_0000_0000);
}
