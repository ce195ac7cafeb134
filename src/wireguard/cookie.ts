// mac1, mac2 and cookie replies (reference §4.4, whitepaper §5.4.4 and §5.4.7).
// The devices run the native twin of this file (native/src/handshake/cookie.cc); this TypeScript one is
// the reference the native code is cross-checked against (test/unit/native-handshake.test.ts)
// and the protocol peer of the benchmarks' load generators.
//
// mac1 proves the sender knows the receiver's public key, so handshake messages from scanners are
// dropped after one cheap keyed hash, before any Diffie-Hellman. Under load, the responder also
// demands mac2, keyed with a "cookie" that is a MAC of the sender's address under a secret that
// rotates every two minutes; a sender without a valid cookie gets a cookie reply instead of a
// handshake, which proves it can receive at the address it claims before it may cost us a DH.
//
// The MACs always occupy the last 32 bytes of the message (mac1 then mac2), which is how the
// kernel and wireguard-go locate them; for the exact-size initiation (148) and response (92) that
// is offsets 116/132 and 60/76.
import { randomBytes } from 'node:crypto';
import { hash, mac, xaeadOpen, xaeadSeal } from './crypto.ts';
import { COOKIE_REFRESH_TIME_MS, LABEL_COOKIE, LABEL_MAC1, MAC_SIZE, XAEAD_NONCE_SIZE } from './constants.ts';
import { buildCookieReply, macOffsets, parseCookieReply } from './messages.ts';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const MAC1_LABEL = ascii(LABEL_MAC1);
const COOKIE_LABEL = ascii(LABEL_COOKIE);

/** HASH(LABEL_MAC1 || public key): the key of mac1 for messages sent to that public key. */
export function mac1Key(publicKey: Uint8Array): Uint8Array {
  return hash(MAC1_LABEL, publicKey);
}

/** HASH(LABEL_COOKIE || public key): the key that encrypts cookie replies sent by that public key. */
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  return hash(COOKIE_LABEL, publicKey);
}

function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/**
 * Responder side: one per device, keyed by our own public key. Holds the rotating cookie secret.
 * Time is injected (`nowMs`, any monotonic millisecond clock) so behaviour is testable.
 */
export class CookieChecker {
  #mac1Key: Uint8Array | null = null;
  #cookieKey: Uint8Array | null = null;
  #secret = new Uint8Array(32);
  /** When the secret was generated; null until the first cookie reply (no mac2 can be valid before). */
  #secretSetAt: number | null = null;

  constructor(localPublicKey: Uint8Array | null) {
    this.setLocalPublicKey(localPublicKey);
  }

  /** Changing the key invalidates every mac1 computed for the old one; the cookie secret is kept. */
  setLocalPublicKey(publicKey: Uint8Array | null): void {
    this.#mac1Key = publicKey === null ? null : mac1Key(publicKey);
    this.#cookieKey = publicKey === null ? null : cookieKey(publicKey);
  }

  /** mac1 of a type 1 or type 2 message. False when we have no key (nobody can address us). */
  checkMac1(message: Uint8Array): boolean {
    const offsets = macOffsets(message);
    if (this.#mac1Key === null || offsets === null) return false;
    const expected = mac(this.#mac1Key, message.subarray(0, offsets.mac1));
    return equalConstantTime(expected, message.subarray(offsets.mac1, offsets.mac2));
  }

  /**
   * mac2 for a sender at `source` (any stable encoding of address and port). False when no
   * secret is current: after COOKIE_REFRESH_TIME every outstanding cookie is void, and the sender
   * gets a fresh one with the next cookie reply.
   */
  checkMac2(message: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    const offsets = macOffsets(message);
    if (offsets === null || !this.#secretCurrent(nowMs)) return false;
    const cookie = mac(this.#secret, source);
    const expected = mac(cookie, message.subarray(0, offsets.mac2));
    cookie.fill(0);
    return equalConstantTime(expected, message.subarray(offsets.mac2, offsets.mac2 + MAC_SIZE));
  }

  /**
   * A 64-byte cookie reply for `message` (whose mac1 the caller has checked), addressed to
   * `receiverIndex` (the message's sender index). The cookie is encrypted with the message's mac1
   * as associated data, so only the sender of that very message can use the reply.
   */
  createReply(message: Uint8Array, receiverIndex: number, source: Uint8Array, nowMs: number): Uint8Array {
    const offsets = macOffsets(message);
    if (this.#cookieKey === null) throw new Error('cookie reply needs a local public key');
    if (offsets === null) throw new RangeError('message too short to carry mac1/mac2');
    if (!this.#secretCurrent(nowMs)) {
      this.#secret.fill(0);
      this.#secret = Uint8Array.from(randomBytes(32));
      this.#secretSetAt = nowMs;
    }
    const cookie = mac(this.#secret, source);
    const nonce = Uint8Array.from(randomBytes(XAEAD_NONCE_SIZE));
    const encryptedCookie = xaeadSeal(this.#cookieKey, nonce, cookie, message.subarray(offsets.mac1, offsets.mac2));
    cookie.fill(0);
    return buildCookieReply({ receiver: receiverIndex, nonce, encryptedCookie });
  }

  #secretCurrent(nowMs: number): boolean {
    return this.#secretSetAt !== null && nowMs - this.#secretSetAt < COOKIE_REFRESH_TIME_MS;
  }
}

/**
 * Initiator side: one per peer, keyed by the peer's public key. Writes mac1 (and mac2 while a
 * recent cookie is held) into outgoing handshake messages and accepts cookie replies.
 */
export class CookieGenerator {
  #mac1Key: Uint8Array;
  #cookieKey: Uint8Array;
  #cookie: Uint8Array | null = null;
  #cookieSetAt = 0;
  /** mac1 of the last message sent: the associated data a genuine cookie reply must carry. */
  #lastMac1: Uint8Array | null = null;

  constructor(remotePublicKey: Uint8Array) {
    this.#mac1Key = mac1Key(remotePublicKey);
    this.#cookieKey = cookieKey(remotePublicKey);
  }

  /** Fill mac1 and mac2 of `message` in place (mac2 is zero unless a cookie younger than 120 s is held). */
  addMacs(message: Uint8Array, nowMs: number): void {
    const offsets = macOffsets(message);
    if (offsets === null) throw new RangeError('message too short to carry mac1/mac2');
    const mac1 = mac(this.#mac1Key, message.subarray(0, offsets.mac1));
    message.set(mac1, offsets.mac1);
    this.#lastMac1 = mac1;

    if (this.#cookie !== null && nowMs - this.#cookieSetAt < COOKIE_REFRESH_TIME_MS) {
      message.set(mac(this.#cookie, message.subarray(0, offsets.mac2)), offsets.mac2);
    } else {
      if (this.#cookie !== null) {
        this.#cookie.fill(0);
        this.#cookie = null;
      }
      message.fill(0, offsets.mac2, offsets.mac2 + MAC_SIZE);
    }
  }

  /**
   * Decrypt a cookie reply against the mac1 we last sent and keep the cookie. False when the
   * reply is malformed, answers nothing we sent, or does not authenticate. A reply is consumed
   * once: the same mac1 cannot be answered twice.
   */
  consumeReply(reply: Uint8Array, nowMs: number): boolean {
    const parsed = parseCookieReply(reply);
    if (parsed === null || this.#lastMac1 === null) return false;
    const cookie = xaeadOpen(this.#cookieKey, parsed.nonce, parsed.encryptedCookie, this.#lastMac1);
    if (cookie === null) return false;
    this.#cookie?.fill(0);
    this.#cookie = cookie;
    this.#cookieSetAt = nowMs;
    this.#lastMac1 = null;
    return true;
  }

  /** Whether a cookie young enough to produce mac2 is held (for diagnostics and tests). */
  hasCookie(nowMs: number): boolean {
    return this.#cookie !== null && nowMs - this.#cookieSetAt < COOKIE_REFRESH_TIME_MS;
  }
}
