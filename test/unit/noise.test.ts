import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  aeadOpen,
  aeadSeal,
  dh,
  generatePrivateKey,
  hash,
  kdf1,
  kdf2,
  kdf3,
  publicKeyOf,
} from '../../src/wireguard/crypto.ts';
import { buildInitiation, parseInitiation, parseResponse } from '../../src/wireguard/messages.ts';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  INITIAL_CHAINING_KEY,
  INITIAL_HASH,
} from '../../src/wireguard/noise.ts';
import type { NoisePeer, StaticIdentity } from '../../src/wireguard/noise.ts';
import { tai64n } from '../../src/wireguard/tai64n.ts';

function identity(): StaticIdentity {
  const privateKey = generatePrivateKey();
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

function peerOf(local: StaticIdentity, remote: StaticIdentity, psk: Uint8Array = new Uint8Array(32)): NoisePeer {
  return { remoteStatic: remote.publicKey, presharedKey: psk, precomputedStaticStatic: dh(local.privateKey, remote.publicKey) };
}

const sameKey = (a: Uint8Array) => (k: Uint8Array) => Buffer.from(a).equals(k);

/** Runs a full handshake; returns both sides' keys or throws at the failing step. */
function handshake(pskInitiator?: Uint8Array, pskResponder?: Uint8Array) {
  const alice = identity();
  const bob = identity();
  const bobAtAlice = peerOf(alice, bob, pskInitiator);
  const aliceAtBob = peerOf(bob, alice, pskResponder);
  const ts = tai64n();
  const init = createInitiation(alice, bobAtAlice, 0x1111, ts);
  assert.ok(init, 'createInitiation');
  assert.equal(init.message.length, 148);
  const consumed = consumeInitiation(bob, init.message, (k) => (sameKey(alice.publicKey)(k) ? aliceAtBob : null));
  assert.ok(consumed, 'consumeInitiation');
  assert.deepEqual(consumed.remoteStatic, alice.publicKey);
  assert.deepEqual(consumed.timestamp, ts);
  assert.equal(consumed.state.remoteIndex, 0x1111);
  const resp = createResponse(bob, aliceAtBob, consumed.state, 0x2222);
  assert.ok(resp, 'createResponse');
  assert.equal(resp.message.length, 92);
  const aliceKeys = consumeResponse(alice, bobAtAlice, init.state, resp.message);
  return { alice, bob, bobAtAlice, aliceAtBob, init, resp, aliceKeys };
}

test('full handshake with random keys yields mirrored transport keys', () => {
  for (let i = 0; i < 10; i++) {
    const { resp, aliceKeys } = handshake();
    assert.ok(aliceKeys, 'consumeResponse');
    const bobKeys = resp.keys;
    assert.deepEqual(aliceKeys.sendKey, bobKeys.receiveKey);
    assert.deepEqual(aliceKeys.receiveKey, bobKeys.sendKey);
    assert.notDeepEqual(aliceKeys.sendKey, aliceKeys.receiveKey);
    assert.equal(aliceKeys.localIndex, 0x1111);
    assert.equal(aliceKeys.remoteIndex, 0x2222);
    assert.equal(bobKeys.localIndex, 0x2222);
    assert.equal(bobKeys.remoteIndex, 0x1111);
    // The keys work for transport data in both directions.
    const packet = aeadSeal(aliceKeys.sendKey, 0n, Uint8Array.of(1, 2, 3), new Uint8Array(0));
    assert.deepEqual(aeadOpen(bobKeys.receiveKey, 0n, packet, new Uint8Array(0)), Uint8Array.of(1, 2, 3));
  }
});

test('handshake with a matching preshared key succeeds and differs from no PSK', () => {
  const psk = Uint8Array.from(randomBytes(32));
  const { resp, aliceKeys } = handshake(psk, psk);
  assert.ok(aliceKeys);
  assert.deepEqual(aliceKeys.sendKey, resp.keys.receiveKey);
});

test('mismatched preshared keys fail at the response', () => {
  const { aliceKeys } = handshake(Uint8Array.from(randomBytes(32)), Uint8Array.from(randomBytes(32)));
  assert.equal(aliceKeys, null);
  const { aliceKeys: oneSided } = handshake(Uint8Array.from(randomBytes(32)), new Uint8Array(32));
  assert.equal(oneSided, null);
});

test('tampering with any byte of the initiation body fails consumeInitiation', () => {
  const alice = identity();
  const bob = identity();
  const init = createInitiation(alice, peerOf(alice, bob), 5, tai64n())!;
  const lookup = () => peerOf(bob, alice);
  // Bytes 4..116: sender index (not authenticated by Noise itself, mac1 covers it), ephemeral,
  // encrypted static and encrypted timestamp. Flipping any ephemeral or ciphertext byte must fail.
  for (let i = 8; i < 116; i++) {
    const bad = Uint8Array.from(init.message);
    bad[i]! ^= 0x01;
    assert.equal(consumeInitiation(bob, bad, lookup), null, `byte ${i}`);
  }
  assert.ok(consumeInitiation(bob, init.message, lookup));
});

test('tampering with the response fails consumeResponse, and does not spoil the handshake', () => {
  const { alice, bobAtAlice, init, resp } = (() => {
    const alice = identity();
    const bob = identity();
    const bobAtAlice = peerOf(alice, bob);
    const init = createInitiation(alice, bobAtAlice, 77, tai64n())!;
    const consumed = consumeInitiation(bob, init.message, () => peerOf(bob, alice))!;
    const resp = createResponse(bob, peerOf(bob, alice), consumed.state, 88)!;
    return { alice, bobAtAlice, init, resp };
  })();
  for (let i = 12; i < 60; i++) {
    const bad = Uint8Array.from(resp.message);
    bad[i]! ^= 0x80;
    assert.equal(consumeResponse(alice, bobAtAlice, init.state, bad), null, `byte ${i}`);
  }
  const keys = consumeResponse(alice, bobAtAlice, init.state, resp.message);
  assert.ok(keys, 'genuine response still accepted after forgeries');
  assert.deepEqual(keys.sendKey, resp.keys.receiveKey);
  // A handshake state is single-use: a replayed response is refused.
  assert.equal(consumeResponse(alice, bobAtAlice, init.state, resp.message), null);
});

test('unknown peer, or a lookup that answers for another key, fails', () => {
  const alice = identity();
  const bob = identity();
  const mallory = identity();
  const init = createInitiation(alice, peerOf(alice, bob), 1, tai64n())!;
  assert.equal(consumeInitiation(bob, init.message, () => null), null);
  assert.equal(consumeInitiation(bob, init.message, () => peerOf(bob, mallory)), null);
  // Sent to the wrong responder: the static key does not decrypt.
  assert.equal(consumeInitiation(mallory, init.message, () => peerOf(mallory, alice)), null);
});

test('low-order peer key: createInitiation refuses, consumeInitiation refuses', () => {
  const alice = identity();
  const zeroKey = new Uint8Array(32);
  const lowOrderPeer: NoisePeer = { remoteStatic: zeroKey, presharedKey: new Uint8Array(32), precomputedStaticStatic: dh(alice.privateKey, zeroKey) };
  assert.equal(lowOrderPeer.precomputedStaticStatic, null);
  assert.equal(createInitiation(alice, lowOrderPeer, 1, tai64n()), null);
  // Even with a (bogus) precomputed value, the ephemeral-static DH refuses the low-order key.
  assert.equal(createInitiation(alice, { ...lowOrderPeer, precomputedStaticStatic: new Uint8Array(32).fill(1) }, 1, tai64n()), null);

  // Responder: a peer entry whose precomputed DH is null is never accepted.
  const bob = identity();
  const init = createInitiation(alice, peerOf(alice, bob), 1, tai64n())!;
  assert.equal(consumeInitiation(bob, init.message, () => ({ ...peerOf(bob, alice), precomputedStaticStatic: null })), null);
  // An initiation carrying a low-order ephemeral is refused.
  const parsed = parseInitiation(init.message)!;
  const forged = buildInitiation({ ...parsed, ephemeral: zeroKey });
  assert.equal(consumeInitiation(bob, forged, () => peerOf(bob, alice)), null);
});

test('response with the wrong receiver index fails', () => {
  const alice = identity();
  const bob = identity();
  const bobAtAlice = peerOf(alice, bob);
  const init = createInitiation(alice, bobAtAlice, 1000, tai64n())!;
  const consumed = consumeInitiation(bob, init.message, () => peerOf(bob, alice))!;
  const resp = createResponse(bob, peerOf(bob, alice), consumed.state, 2000)!;
  assert.equal(parseResponse(resp.message)!.receiver, 1000);
  const misaddressed = Uint8Array.from(resp.message);
  new DataView(misaddressed.buffer).setUint32(8, 1001, true);
  assert.equal(consumeResponse(alice, bobAtAlice, init.state, misaddressed), null);
  assert.ok(consumeResponse(alice, bobAtAlice, init.state, resp.message));
});

test('responder state is single-use and bound to its peer', () => {
  const alice = identity();
  const bob = identity();
  const carol = identity();
  const init = createInitiation(alice, peerOf(alice, bob), 1, tai64n())!;
  const consumed = consumeInitiation(bob, init.message, () => peerOf(bob, alice))!;
  assert.equal(createResponse(bob, peerOf(bob, carol), consumed.state, 2), null, 'other peer');
  assert.ok(createResponse(bob, peerOf(bob, alice), consumed.state, 2));
  assert.equal(createResponse(bob, peerOf(bob, alice), consumed.state, 3), null, 'second use');
});

test('mac fields are left zero for cookie.ts', () => {
  const { init, resp } = handshake();
  assert.ok(init.message.subarray(116).every((b) => b === 0));
  assert.ok(resp.message.subarray(60).every((b) => b === 0));
});

// An independent walk through reference §4.3, written in the test from the specification, plays
// the initiator with a known ephemeral key against the module's responder. It catches mistakes that
// a symmetric implementation would make identically on both sides (wrong mixing order, wrong key
// from a KDF, swapped transport keys).
test('module responder agrees with a step-by-step initiator from the specification', () => {
  const alice = identity();
  const bob = identity();
  const psk = Uint8Array.from(randomBytes(32));
  const ephemeralPrivate = generatePrivateKey();
  const ephemeralPublic = publicKeyOf(ephemeralPrivate);
  const timestamp = tai64n();

  let c = INITIAL_CHAINING_KEY;
  let h = hash(INITIAL_HASH, bob.publicKey);
  [c] = kdf1(c, ephemeralPublic);
  h = hash(h, ephemeralPublic);
  let k: Uint8Array;
  [c, k] = kdf2(c, dh(ephemeralPrivate, bob.publicKey)!);
  const encryptedStatic = aeadSeal(k, 0n, alice.publicKey, h);
  h = hash(h, encryptedStatic);
  [c, k] = kdf2(c, dh(alice.privateKey, bob.publicKey)!);
  const encryptedTimestamp = aeadSeal(k, 0n, timestamp, h);
  h = hash(h, encryptedTimestamp);
  const message = buildInitiation({ sender: 42, ephemeral: ephemeralPublic, encryptedStatic, encryptedTimestamp });

  const aliceAtBob = peerOf(bob, alice, psk);
  const consumed = consumeInitiation(bob, message, () => aliceAtBob);
  assert.ok(consumed);
  assert.deepEqual(consumed.timestamp, timestamp);
  const resp = createResponse(bob, aliceAtBob, consumed.state, 43)!;
  const r = parseResponse(resp.message)!;
  assert.equal(r.sender, 43);
  assert.equal(r.receiver, 42);

  [c] = kdf1(c, r.ephemeral);
  h = hash(h, r.ephemeral);
  [c] = kdf1(c, dh(ephemeralPrivate, r.ephemeral)!);
  [c] = kdf1(c, dh(alice.privateKey, r.ephemeral)!);
  let tau: Uint8Array;
  [c, tau, k] = kdf3(c, psk);
  h = hash(h, tau);
  assert.deepEqual(aeadOpen(k, 0n, r.encryptedNothing, h), new Uint8Array(0));
  const [initiatorSend, initiatorReceive] = kdf2(c, new Uint8Array(0));
  assert.deepEqual(resp.keys.receiveKey, initiatorSend);
  assert.deepEqual(resp.keys.sendKey, initiatorReceive);
});

// The mirror image: the module's initiator against a step-by-step responder.
test('module initiator agrees with a step-by-step responder from the specification', () => {
  const alice = identity();
  const bob = identity();
  const psk = Uint8Array.from(randomBytes(32));
  const bobAtAlice = peerOf(alice, bob, psk);
  const timestamp = tai64n();
  const init = createInitiation(alice, bobAtAlice, 7, timestamp)!;
  const m = parseInitiation(init.message)!;
  assert.equal(m.sender, 7);

  let c = INITIAL_CHAINING_KEY;
  let h = hash(INITIAL_HASH, bob.publicKey);
  [c] = kdf1(c, m.ephemeral);
  h = hash(h, m.ephemeral);
  let k: Uint8Array;
  [c, k] = kdf2(c, dh(bob.privateKey, m.ephemeral)!);
  assert.deepEqual(aeadOpen(k, 0n, m.encryptedStatic, h), alice.publicKey);
  h = hash(h, m.encryptedStatic);
  [c, k] = kdf2(c, dh(bob.privateKey, alice.publicKey)!);
  assert.deepEqual(aeadOpen(k, 0n, m.encryptedTimestamp, h), timestamp);
  h = hash(h, m.encryptedTimestamp);

  const responderEphemeralPrivate = generatePrivateKey();
  const responderEphemeral = publicKeyOf(responderEphemeralPrivate);
  [c] = kdf1(c, responderEphemeral);
  h = hash(h, responderEphemeral);
  [c] = kdf1(c, dh(responderEphemeralPrivate, m.ephemeral)!);
  [c] = kdf1(c, dh(responderEphemeralPrivate, alice.publicKey)!);
  let tau: Uint8Array;
  [c, tau, k] = kdf3(c, psk);
  h = hash(h, tau);
  const encryptedNothing = aeadSeal(k, 0n, new Uint8Array(0), h);
  const [initiatorSend, initiatorReceive] = kdf2(c, new Uint8Array(0));

  const response = new Uint8Array(92);
  response[0] = 2;
  const view = new DataView(response.buffer);
  view.setUint32(4, 99, true);
  view.setUint32(8, 7, true);
  response.set(responderEphemeral, 12);
  response.set(encryptedNothing, 44);
  const keys = consumeResponse(alice, bobAtAlice, init.state, response);
  assert.ok(keys);
  assert.deepEqual(keys.sendKey, initiatorSend);
  assert.deepEqual(keys.receiveKey, initiatorReceive);
  assert.equal(keys.remoteIndex, 99);
  assert.equal(keys.localIndex, 7);
});
