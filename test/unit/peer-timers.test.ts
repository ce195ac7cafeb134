// The timer rules of a peer (reference §4.5), evaluated against a recording packet path: which
// initiations, keepalives, give-ups and key wipes happen at which instants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Peer, type PeerHost } from '../../src/wireguard/peer.ts';
import { generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';
import type { NativeDevice, NativePeerState } from '../../src/wireguard/native.ts';
import { silentLogger } from '../../src/log.ts';

class RecordingPath {
  calls: { at: number; what: string; size?: number; initiator?: boolean }[] = [];
  clock = 1_000_000;
  state: NativePeerState = {
    txBytes: 0n,
    rxBytes: 0n,
    endpoint: { address: '192.0.2.1', port: 51820 },
    lastAuthSent: 0,
    lastAuthReceived: 0,
    firstDataSentSinceAuthReceived: 0,
    firstDataReceivedSinceAuthSent: 0,
    hasCurrentKeypair: false,
    staged: 0,
  };
  record(what: string, extra: object = {}) {
    this.calls.push({ at: this.clock, what, ...extra });
  }
  count(what: string) {
    return this.calls.filter((c) => c.what === what).length;
  }
  asNative(): NativeDevice {
    const self = this;
    const partial: Partial<NativeDevice> = {
      name: 'fake0',
      now: () => self.clock,
      addPeer: () => self.record('addPeer'),
      removePeer: () => self.record('removePeer'),
      setPresharedKey: () => self.record('setPresharedKey'),
      // The packet path builds and sends the 148-byte initiation on its handshake workers.
      initiateHandshake: () => (self.record('initiate'), self.state.endpoint ? 'queued' : 'no-endpoint'),
      abandonHandshake: () => self.record('abandonHandshake'),
      sendKeepalive: () => {
        self.record('keepalive');
        // As the packet path does: a keepalive sent is an authenticated packet sent.
        if (self.state.hasCurrentKeypair) {
          self.state.lastAuthSent = self.clock;
          self.state.firstDataReceivedSinceAuthSent = 0;
        }
        return self.state.hasCurrentKeypair;
      },
      expireKeypairs: () => self.record('expireKeypairs'),
      clearStaged: () => self.record('clearStaged'),
      requestHandshakeAgain: () => self.record('requestHandshakeAgain'),
      peerState: () => ({ ...self.state }),
    };
    return partial as NativeDevice;
  }
}

function setup() {
  const path = new RecordingPath();
  const remotePriv = generatePrivateKey();
  const host: PeerHost = { native: path.asNative(), log: silentLogger };
  const peer = new Peer(host, 1, publicKeyOf(remotePriv));
  /** Advance the clock in 100 ms ticks, as the device does. */
  const run = (ms: number) => {
    for (let t = 0; t < ms; t += 100) {
      path.clock += 100;
      peer.tick(path.clock);
    }
  };
  return { path, peer, host, run };
}

test('one initiation per REKEY_TIMEOUT, retried with jitter, given up after 18 retries, keys wiped 540 s later', () => {
  const { path, peer, run } = setup();
  peer.onNeedHandshake(path.clock);
  assert.equal(path.count('initiate'), 1);
  peer.onNeedHandshake(path.clock + 10); // more staged data: no second initiation
  run(4900);
  assert.equal(path.count('initiate'), 1, 'nothing before 5 s');
  run(500); // 5.0–5.4 s: the retry with up to 333 ms jitter
  assert.equal(path.count('initiate'), 2);
  run(200_000);
  // 1 initial + 18 retries, then give up: staged packets dropped, a new need allowed.
  assert.equal(path.count('initiate'), 19);
  assert.equal(path.count('clearStaged'), 1);
  assert.equal(path.count('abandonHandshake'), 1, 'a late response to the last attempt is refused');
  assert.ok(path.count('requestHandshakeAgain') >= 1);
  const gaveUpAt = path.calls.find((c) => c.what === 'clearStaged')!.at;
  const firstAt = path.calls.find((c) => c.what === 'initiate')!.at;
  assert.ok(gaveUpAt - firstAt >= 19 * 5000 && gaveUpAt - firstAt <= 19 * 5334 + 100, `gave up after ${gaveUpAt - firstAt} ms`);
  assert.equal(path.count('expireKeypairs'), 0);
  run(540_000 - (path.clock - gaveUpAt) + 200);
  assert.equal(path.count('expireKeypairs'), 1, 'key material zeroed 3 × REJECT_AFTER_TIME after giving up');
});

test('passive keepalive 10 s after data arrives with nothing sent back', () => {
  const { path, run } = setup();
  path.state.hasCurrentKeypair = true;
  path.state.firstDataReceivedSinceAuthSent = path.clock;
  run(9_900);
  assert.equal(path.count('keepalive'), 0);
  run(200);
  assert.equal(path.count('keepalive'), 1);
});

test('new handshake 15 s (+jitter) after data sent with nothing heard back, once per silence', () => {
  const { path, run } = setup();
  path.state.hasCurrentKeypair = true;
  path.state.firstDataSentSinceAuthReceived = path.clock;
  run(14_900);
  assert.equal(path.count('initiate'), 0);
  run(600);
  assert.equal(path.count('initiate'), 1);
});

test('persistent keepalive after the configured interval of silence, and at once when turned on', () => {
  const { path, peer, run } = setup();
  path.state.hasCurrentKeypair = true;
  peer.setPersistentKeepalive(25, path.clock);
  assert.equal(path.count('keepalive'), 1, 'turning it on sends one at once');
  path.state.lastAuthSent = path.clock;
  run(24_800);
  assert.equal(path.count('keepalive'), 1);
  run(300);
  assert.equal(path.count('keepalive'), 2);
});

test('a completed handshake (as initiator) stops retries and arms the key-zeroing timer', () => {
  const { path, peer, run } = setup();
  peer.onNeedHandshake(path.clock);
  peer.onHandshakeComplete(true, path.clock);
  run(30_000);
  assert.equal(path.count('initiate'), 1, 'no retries after completion');
  assert.ok(peer.lastHandshake.sec > 0n);
  run(540_000);
  assert.equal(path.count('expireKeypairs'), 1, 'keys zeroed 3 × REJECT_AFTER_TIME after the last handshake');
});

test('as responder the handshake completes with the key confirmation', () => {
  const { path, peer } = setup();
  peer.onHandshakeComplete(false, path.clock);
  assert.equal(peer.lastHandshake.sec, 0n, 'not complete before the initiator used the keypair');
  peer.onKeypairConfirmed(path.clock);
  assert.ok(peer.lastHandshake.sec > 0n);
});

test('no initiation without an endpoint holds back the next one: it goes out when one is configured', () => {
  const { path, peer } = setup();
  path.state.endpoint = null;
  peer.onNeedHandshake(path.clock);
  assert.equal(path.count('initiate'), 1);
  path.state.endpoint = { address: '192.0.2.1', port: 51820 };
  path.clock += 100;
  peer.onEndpointConfigured(path.clock);
  assert.equal(path.count('initiate'), 2, 'at once, not after REKEY_TIMEOUT');
});
