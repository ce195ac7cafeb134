// The responder's load decision: cookies instead of Diffie-Hellman once handshake messages arrive
// faster than UNDER_LOAD_RATE_PER_SECOND, even in small batches; not under ordinary rates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HandshakeReceiver, UNDER_LOAD_RATE_PER_SECOND } from '../../src/wireguard/handshake-receiver.ts';
import { IndexTable } from '../../src/wireguard/index-table.ts';
import { generatePrivateKey, hash, mac, publicKeyOf } from '../../src/wireguard/crypto.ts';
import type { NativeDevice } from '../../src/wireguard/native.ts';
import type { IndexEntry } from '../../src/wireguard/peer.ts';
import { silentLogger } from '../../src/log.ts';

function setup() {
  const priv = generatePrivateKey();
  const identity = { privateKey: priv, publicKey: publicKeyOf(priv) };
  const sent: Buffer[] = [];
  const native = { sendTo: (_a: string, _p: number, data: Buffer) => void sent.push(data) } as unknown as NativeDevice;
  const rx = new HandshakeReceiver({ native, indices: new IndexTable<IndexEntry>(), log: silentLogger, identity: () => identity, peerByPublicKey: () => undefined });
  rx.cookieChecker.setLocalPublicKey(identity.publicKey);
  const mac1Key = hash(Buffer.from('mac1----'), identity.publicKey);
  /** An initiation from nobody we know, with a valid mac1 and no cookie (what a flood looks like). */
  const initiation = () => {
    const m = randomBytes(148);
    m.writeUInt32LE(1, 0);
    m.set(mac(mac1Key, m.subarray(0, 116)), 116);
    m.fill(0, 132);
    return { data: m, address: '192.0.2.7', port: 40000 };
  };
  return { rx, sent, initiation };
}

test('an ordinary rate of initiations gets the full handshake treatment, no cookies', () => {
  const { rx, sent, initiation } = setup();
  for (let i = 0; i < 20; i++) rx.processBatch([initiation()], 1000 + i * 50);
  assert.equal(sent.length, 0);
  assert.equal(rx.counters.dropUnknownPeerOrBadCrypto, 20, 'each one was decrypted (and failed: unknown peer)');
});

test('more than UNDER_LOAD_RATE_PER_SECOND messages in a second, even one by one, switches to cookie replies', () => {
  const { rx, sent, initiation } = setup();
  let t = 5000;
  for (let i = 0; i < UNDER_LOAD_RATE_PER_SECOND; i++) rx.processBatch([initiation()], (t += 0.5));
  assert.equal(sent.length, 0, 'not yet under load at the threshold');
  rx.processBatch([initiation()], (t += 0.5));
  assert.equal(sent.length, 1, 'the message past the threshold is answered with a cookie reply');
  assert.equal(sent[0]!.length, 64);
  assert.equal(sent[0]![0], 3);
  assert.equal(rx.counters.cookieRepliesSent, 1);
  // Still under load for a second after the burst, then back to normal.
  rx.processBatch([initiation()], t + 900);
  assert.equal(sent.length, 2);
  rx.processBatch([initiation()], t + 2500);
  assert.equal(sent.length, 2);
});
