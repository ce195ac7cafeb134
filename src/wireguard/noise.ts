// The WireGuard handshake: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, step by step as in reference §4.3
// (whitepaper §5.4, wireguard-go `noise-protocol.go`). This module is pure: it turns keys and
// messages into messages and session keys. Everything stateful around it lives in the device:
// index tables, the replay and flood checks on the returned timestamp, mac1/mac2 (cookie.ts) and
// keypair slots.
//
// The devices run the native twin of this file (native/src/handshake/noise.cc); this TypeScript one is
// the reference the native code is cross-checked against (test/unit/native-handshake.test.ts)
// and the protocol peer of the benchmarks' load generators.
//
// Naming: C is the chaining key, H the running hash, as in the paper.
import { aeadOpen, aeadSeal, dh, generatePrivateKey, hash, kdf1, kdf2, kdf3, publicKeyOf } from './crypto.ts';
import { CONSTRUCTION, IDENTIFIER, KEY_SIZE, TAI64N_SIZE } from './constants.ts';
import { buildInitiation, buildResponse, parseInitiation, parseResponse } from './messages.ts';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);
const EMPTY = new Uint8Array(0);

/** C_i = HASH(CONSTRUCTION). */
export const INITIAL_CHAINING_KEY: Uint8Array = hash(ascii(CONSTRUCTION));
/** H_i = HASH(C_i || IDENTIFIER). */
export const INITIAL_HASH: Uint8Array = hash(INITIAL_CHAINING_KEY, ascii(IDENTIFIER));

export interface StaticIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface NoisePeer {
  remoteStatic: Uint8Array;
  /** 32 zero bytes when the peer has no preshared key. */
  presharedKey: Uint8Array;
  /** dh(local.privateKey, remoteStatic); null means a low-order key: never handshake with it. */
  precomputedStaticStatic: Uint8Array | null;
}

/** What the initiator keeps between sending an initiation and receiving the response. */
export interface InitiatorState {
  readonly localIndex: number;
}

/** What the responder keeps between consuming an initiation and creating the response. */
export interface ResponderState {
  readonly remoteIndex: number;
  readonly remoteStatic: Uint8Array;
}

export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
  localIndex: number;
  remoteIndex: number;
}

// The concrete states. Private fields keep the secrets out of reach of everything but this module;
// each state is good for exactly one successful use, after which its secrets are wiped (a second
// response to the same initiation, or a second response created from one initiation, is refused,
// as in wireguard-go's handshake state machine).

class Initiator implements InitiatorState {
  readonly localIndex: number;
  #chainingKey: Uint8Array;
  #hash: Uint8Array;
  #ephemeralPrivate: Uint8Array;
  #used = false;

  constructor(localIndex: number, chainingKey: Uint8Array, hashValue: Uint8Array, ephemeralPrivate: Uint8Array) {
    this.localIndex = localIndex;
    this.#chainingKey = chainingKey;
    this.#hash = hashValue;
    this.#ephemeralPrivate = ephemeralPrivate;
  }

  static secrets(state: InitiatorState): { chainingKey: Uint8Array; hash: Uint8Array; ephemeralPrivate: Uint8Array } | null {
    if (!(state instanceof Initiator) || state.#used) return null;
    return { chainingKey: state.#chainingKey, hash: state.#hash, ephemeralPrivate: state.#ephemeralPrivate };
  }

  static finish(state: InitiatorState): void {
    if (!(state instanceof Initiator)) return;
    state.#used = true;
    state.#chainingKey.fill(0);
    state.#hash.fill(0);
    state.#ephemeralPrivate.fill(0);
  }
}

class Responder implements ResponderState {
  readonly remoteIndex: number;
  readonly remoteStatic: Uint8Array;
  #chainingKey: Uint8Array;
  #hash: Uint8Array;
  #remoteEphemeral: Uint8Array;
  #used = false;

  constructor(
    remoteIndex: number,
    remoteStatic: Uint8Array,
    chainingKey: Uint8Array,
    hashValue: Uint8Array,
    remoteEphemeral: Uint8Array,
  ) {
    this.remoteIndex = remoteIndex;
    this.remoteStatic = remoteStatic;
    this.#chainingKey = chainingKey;
    this.#hash = hashValue;
    this.#remoteEphemeral = remoteEphemeral;
  }

  static secrets(state: ResponderState): { chainingKey: Uint8Array; hash: Uint8Array; remoteEphemeral: Uint8Array } | null {
    if (!(state instanceof Responder) || state.#used) return null;
    return { chainingKey: state.#chainingKey, hash: state.#hash, remoteEphemeral: state.#remoteEphemeral };
  }

  static finish(state: ResponderState): void {
    if (!(state instanceof Responder)) return;
    state.#used = true;
    state.#chainingKey.fill(0);
    state.#hash.fill(0);
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

function wipe(...arrays: (Uint8Array | null | undefined)[]): void {
  for (const a of arrays) a?.fill(0);
}

/** H = HASH(H_i || responder's static public key): the starting hash both sides compute. */
function initialHash(responderStatic: Uint8Array): Uint8Array {
  return hash(INITIAL_HASH, responderStatic);
}

/**
 * Initiator, message 1. Null when the peer's key is unusable (low-order static or ephemeral DH).
 * `timestamp` is the 12-byte TAI64N label (tai64n.ts). mac1/mac2 are left zero.
 */
export function createInitiation(
  local: StaticIdentity,
  peer: NoisePeer,
  localIndex: number,
  timestamp: Uint8Array,
): { message: Uint8Array; state: InitiatorState } | null {
  if (peer.precomputedStaticStatic === null || timestamp.length !== TAI64N_SIZE) return null;

  let h = initialHash(peer.remoteStatic);
  const ephemeralPrivate = generatePrivateKey();
  const ephemeralPublic = publicKeyOf(ephemeralPrivate);

  let [c] = kdf1(INITIAL_CHAINING_KEY, ephemeralPublic);
  h = hash(h, ephemeralPublic);

  // es: DH(E_i, S_r)
  const es = dh(ephemeralPrivate, peer.remoteStatic);
  if (es === null) {
    wipe(ephemeralPrivate, c);
    return null;
  }
  let key: Uint8Array;
  [c, key] = kdf2(c, es);
  wipe(es);
  const encryptedStatic = aeadSeal(key, 0n, local.publicKey, h);
  wipe(key);
  h = hash(h, encryptedStatic);

  // ss: DH(S_i, S_r), precomputed by the caller
  [c, key] = kdf2(c, peer.precomputedStaticStatic);
  const encryptedTimestamp = aeadSeal(key, 0n, timestamp, h);
  wipe(key);
  h = hash(h, encryptedTimestamp);

  const message = buildInitiation({ sender: localIndex, ephemeral: ephemeralPublic, encryptedStatic, encryptedTimestamp });
  return { message, state: new Initiator(localIndex, c, h, ephemeralPrivate) };
}

/**
 * Responder, message 1. Decrypts the initiator's static key, asks `lookup` for that peer, and
 * decrypts the timestamp. Null on any failure. The caller must still check the timestamp against
 * the peer's last one (strictly greater) and the initiation rate before trusting the handshake.
 * mac1/mac2 are not checked here (cookie.ts).
 */
export function consumeInitiation(
  local: StaticIdentity,
  message: Uint8Array,
  lookup: (remoteStatic: Uint8Array) => NoisePeer | null,
): { remoteStatic: Uint8Array; timestamp: Uint8Array; state: ResponderState } | null {
  const msg = parseInitiation(message);
  if (msg === null) return null;

  let h = initialHash(local.publicKey);
  const ephemeral = Uint8Array.from(msg.ephemeral);
  let [c] = kdf1(INITIAL_CHAINING_KEY, ephemeral);
  h = hash(h, ephemeral);

  // es: DH(S_r, E_i)
  const es = dh(local.privateKey, ephemeral);
  if (es === null) return null;
  let key: Uint8Array;
  [c, key] = kdf2(c, es);
  wipe(es);
  const remoteStatic = aeadOpen(key, 0n, msg.encryptedStatic, h);
  wipe(key);
  if (remoteStatic === null || remoteStatic.length !== KEY_SIZE) {
    wipe(c);
    return null;
  }
  h = hash(h, msg.encryptedStatic);

  const peer = lookup(remoteStatic);
  if (peer === null || peer.precomputedStaticStatic === null || !equal(peer.remoteStatic, remoteStatic)) {
    wipe(c);
    return null;
  }

  // ss
  [c, key] = kdf2(c, peer.precomputedStaticStatic);
  const timestamp = aeadOpen(key, 0n, msg.encryptedTimestamp, h);
  wipe(key);
  if (timestamp === null || timestamp.length !== TAI64N_SIZE) {
    wipe(c);
    return null;
  }
  h = hash(h, msg.encryptedTimestamp);

  return { remoteStatic, timestamp, state: new Responder(msg.sender, remoteStatic, c, h, ephemeral) };
}

/** Transport keys: (T_send, T_recv) = KDF2(C, ε) from the initiator's point of view. */
function deriveKeys(c: Uint8Array): [Uint8Array, Uint8Array] {
  return kdf2(c, EMPTY);
}

/**
 * The part of message 2 both sides compute identically once they have the four DH results:
 * C = KDF1(C, E_r^pub); H = HASH(H || E_r^pub); C = KDF1(C, ee); C = KDF1(C, se);
 * (C, τ, k) = KDF3(C, psk); H = HASH(H || τ). Returns the new C and H and the key for enc_empty.
 */
function mixResponse(
  chainingKey: Uint8Array,
  hashValue: Uint8Array,
  responderEphemeral: Uint8Array,
  ee: Uint8Array,
  se: Uint8Array,
  presharedKey: Uint8Array,
): { c: Uint8Array; h: Uint8Array; key: Uint8Array } {
  let [c] = kdf1(chainingKey, responderEphemeral);
  let h = hash(hashValue, responderEphemeral);
  let next: Uint8Array;
  [next] = kdf1(c, ee);
  wipe(c);
  c = next;
  [next] = kdf1(c, se);
  wipe(c);
  c = next;
  const [c2, tau, key] = kdf3(c, presharedKey);
  wipe(c);
  h = hash(h, tau);
  wipe(tau);
  return { c: c2, h, key };
}

/** Responder, message 2. Null when the state was already used, belongs to another peer, or a DH is degenerate. */
export function createResponse(
  local: StaticIdentity,
  peer: NoisePeer,
  state: ResponderState,
  localIndex: number,
): { message: Uint8Array; keys: SessionKeys } | null {
  void local; // the responder's static key was consumed in consumeInitiation; kept for symmetry
  const secrets = Responder.secrets(state);
  if (secrets === null || !equal(peer.remoteStatic, state.remoteStatic)) return null;
  if (peer.presharedKey.length !== KEY_SIZE) return null;

  const ephemeralPrivate = generatePrivateKey();
  const ephemeralPublic = publicKeyOf(ephemeralPrivate);
  const ee = dh(ephemeralPrivate, secrets.remoteEphemeral); // DH(E_r, E_i)
  const se = dh(ephemeralPrivate, peer.remoteStatic); // DH(E_r, S_i)
  wipe(ephemeralPrivate);
  if (ee === null || se === null) {
    wipe(ee, se);
    return null;
  }
  const { c, h: h1, key } = mixResponse(secrets.chainingKey, secrets.hash, ephemeralPublic, ee, se, peer.presharedKey);
  wipe(ee, se);
  const encryptedNothing = aeadSeal(key, 0n, EMPTY, h1);
  wipe(key);
  // The transcript would end with H = HASH(H || enc_empty), but nothing is derived from that
  // final hash, so it is not computed.
  wipe(h1);

  const [initiatorSend, initiatorReceive] = deriveKeys(c);
  wipe(c);
  Responder.finish(state);

  const message = buildResponse({ sender: localIndex, receiver: state.remoteIndex, ephemeral: ephemeralPublic, encryptedNothing });
  return {
    message,
    keys: { sendKey: initiatorReceive, receiveKey: initiatorSend, localIndex, remoteIndex: state.remoteIndex },
  };
}

/**
 * Initiator, message 2. Null unless the response is addressed to this handshake (receiver ===
 * state.localIndex), decrypts, and the state is unused. A failed attempt leaves the state intact,
 * so a forged response cannot spoil the genuine one.
 */
export function consumeResponse(
  local: StaticIdentity,
  peer: NoisePeer,
  state: InitiatorState,
  message: Uint8Array,
): SessionKeys | null {
  const msg = parseResponse(message);
  if (msg === null || msg.receiver !== state.localIndex) return null;
  const secrets = Initiator.secrets(state);
  if (secrets === null || peer.presharedKey.length !== KEY_SIZE) return null;

  const responderEphemeral = msg.ephemeral;
  const ee = dh(secrets.ephemeralPrivate, responderEphemeral); // DH(E_i, E_r)
  const se = dh(local.privateKey, responderEphemeral); // DH(S_i, E_r)
  if (ee === null || se === null) {
    wipe(ee, se);
    return null;
  }
  const { c, h, key } = mixResponse(secrets.chainingKey, secrets.hash, responderEphemeral, ee, se, peer.presharedKey);
  wipe(ee, se);
  const nothing = aeadOpen(key, 0n, msg.encryptedNothing, h);
  wipe(key, h);
  if (nothing === null || nothing.length !== 0) {
    wipe(c);
    return null;
  }

  const [sendKey, receiveKey] = deriveKeys(c);
  wipe(c);
  Initiator.finish(state);
  return { sendKey, receiveKey, localIndex: state.localIndex, remoteIndex: msg.sender };
}

/** Convenience for callers building a NoisePeer: the static-static DH, null for low-order keys. */
export function precomputeStaticStatic(local: StaticIdentity, remoteStatic: Uint8Array): Uint8Array | null {
  return dh(local.privateKey, remoteStatic);
}

/** 32 zero bytes: "no preshared key". */
export function noPresharedKey(): Uint8Array {
  return new Uint8Array(KEY_SIZE);
}
