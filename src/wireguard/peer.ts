// One WireGuard peer as the control plane sees it: its configuration, the handshake it may be
// running as initiator, the anti-replay state it keeps as responder, and its timers.
//
// The packet path (native) keeps the keypairs and the per-packet timestamps; the timers here are
// evaluated on a periodic tick from those timestamps instead of being re-armed per packet (which
// would need one JS call per packet). Each rule below names the wireguard-go timer it stands for.
import { CookieGenerator } from './cookie.ts';
import {
  KEEPALIVE_TIMEOUT_MS,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from './constants.ts';
import { createInitiation, type InitiatorState, type NoisePeer, type SessionKeys, type StaticIdentity } from './noise.ts';
import { tai64n } from './tai64n.ts';
import type { IndexTable } from './index-table.ts';
import type { NativeDevice } from './native.ts';
import type { Logger } from '../log.ts';
import { toBase64 } from './keys.ts';

/** What a local index stands for: a handshake we initiated, or a keypair in the packet path. */
export interface IndexEntry {
  kind: 'handshake' | 'keypair';
  peer: Peer;
}

/** What a peer needs from its device. */
export interface PeerHost {
  readonly native: NativeDevice;
  readonly indices: IndexTable<IndexEntry>;
  readonly log: Logger;
  identity(): StaticIdentity | null;
}

function jitter(): number {
  return Math.floor(Math.random() * REKEY_TIMEOUT_JITTER_MAX_MS);
}

export class Peer {
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly name: string;
  readonly cookies: CookieGenerator;
  presharedKey: Uint8Array = new Uint8Array(32);
  persistentKeepaliveInterval = 0;
  /** DH(our static, their static); null when there is no private key or their key is low-order. */
  precomputedStaticStatic: Uint8Array | null = null;
  /** Endpoint set by configuration; the packet path may have learned a newer one (roaming). */
  configuredEndpoint: { address: string; port: number } | null = null;

  /** Responder anti-replay: the greatest TAI64N accepted, and when (flood limit). */
  lastInitiationTimestamp: Uint8Array | null = null;
  lastInitiationConsumedAt = -Infinity;
  /** Wall-clock time of the last completed handshake, as `wg` shows it. */
  lastHandshake = { sec: 0n, nsec: 0n };

  private readonly host: PeerHost;
  private initiation: { state: InitiatorState; localIndex: number } | null = null;
  private lastInitiationSentAt = -Infinity;
  /** retransmitHandshake timer: when to resend the initiation that got no answer. */
  private retransmitAt: number | null = null;
  private handshakeAttempts = 0;
  /** A `need-handshake` arrived that could not be acted on yet (REKEY_TIMEOUT between initiations). */
  private wantsHandshake = false;
  /** The last initiation could not be sent for want of an endpoint. */
  private unsentInitiation = false;
  /** Mirror of the packet path's keypair slots, so their indices are freed when they rotate out. */
  private slots: { previous: number | null; current: number | null; next: number | null } = { previous: null, current: null, next: null };
  /** zeroKeyMaterial timer. */
  private zeroKeysAt: number | null = null;
  /** Last time an authenticated handshake message from this peer was processed. */
  private lastHandshakeReceivedAt = 0;
  /** The firstDataSent timestamp the newHandshake rule already acted upon. */
  private newHandshakeHandledFor = 0;
  private newHandshakeJitter = jitter();
  private lastPersistentAttemptAt = -Infinity;

  constructor(host: PeerHost, id: number, publicKey: Uint8Array) {
    this.host = host;
    this.id = id;
    this.publicKey = publicKey;
    this.name = `peer(${toBase64(publicKey).slice(0, 4)}…${toBase64(publicKey).slice(40, 44)})`;
    this.cookies = new CookieGenerator(publicKey);
    host.native.addPeer(id);
  }

  noisePeer(): NoisePeer {
    return { remoteStatic: this.publicKey, presharedKey: this.presharedKey, precomputedStaticStatic: this.precomputedStaticStatic };
  }

  /** The packet path asked for a handshake (staged data, or a keypair due for rekey). */
  onNeedHandshake(now: number): void {
    this.wantsHandshake = true;
    this.maybeInitiate(now);
  }

  /**
   * Send a handshake initiation unless one went out less than REKEY_TIMEOUT ago. A retry keeps
   * counting attempts; a fresh attempt starts the count again (SendHandshakeInitiation).
   */
  private maybeInitiate(now: number, isRetry = false): boolean {
    if (!isRetry && now - this.lastInitiationSentAt < REKEY_TIMEOUT_MS) return false;
    const identity = this.host.identity();
    if (!identity || !this.precomputedStaticStatic) {
      this.wantsHandshake = false;
      return false;
    }
    if (!isRetry) this.handshakeAttempts = 0;
    this.dropInitiation();
    const localIndex = this.host.indices.allocate({ kind: 'handshake', peer: this });
    const built = createInitiation(identity, this.noisePeer(), localIndex, tai64n());
    if (!built) {
      this.host.indices.free(localIndex);
      this.wantsHandshake = false;
      return false;
    }
    this.cookies.addMacs(built.message, now);
    this.initiation = { state: built.state, localIndex };
    this.wantsHandshake = false;
    this.retransmitAt = now + REKEY_TIMEOUT_MS + jitter();
    const sent = this.host.native.sendToPeer(this.id, Buffer.from(built.message));
    // An initiation that never left (no endpoint yet) does not hold back the next one: as soon as
    // an endpoint is configured, the handshake starts (see onEndpointConfigured).
    this.lastInitiationSentAt = sent ? now : -Infinity;
    this.unsentInitiation = !sent;
    this.host.log.verbose(`${this.name} - Sending handshake initiation${sent ? '' : ' (no endpoint)'}`);
    return true;
  }

  /** Configuration gave the peer an endpoint: start a handshake that was waiting for one. */
  onEndpointConfigured(now: number): void {
    if (this.unsentInitiation) this.maybeInitiate(now, true);
  }

  /** The in-flight initiation state for `localIndex`, if it is ours. */
  initiationFor(localIndex: number): InitiatorState | null {
    return this.initiation && this.initiation.localIndex === localIndex ? this.initiation.state : null;
  }

  private dropInitiation(): void {
    if (this.initiation) this.host.indices.free(this.initiation.localIndex);
    this.initiation = null;
  }

  /** Any authenticated handshake message from this peer (timersAnyAuthenticatedPacketReceived). */
  noteHandshakeReceived(now: number): void {
    this.lastHandshakeReceivedAt = now;
  }

  /** Our initiation was answered: install the keypair as current (timersHandshakeComplete). */
  completeAsInitiator(keys: SessionKeys, now: number): void {
    // The handshake index becomes the keypair's index: re-register it under the keypair.
    this.initiation = null;
    this.host.indices.set(keys.localIndex, { kind: 'keypair', peer: this });
    const stagedBefore = this.host.native.peerState(this.id).staged;
    this.host.native.installKeypair(this.id, {
      localIndex: keys.localIndex,
      remoteIndex: keys.remoteIndex,
      sendKey: Buffer.from(keys.sendKey),
      receiveKey: Buffer.from(keys.receiveKey),
      initiator: true,
    });
    if (this.slots.next !== null) {
      this.host.indices.free(this.slots.previous);
      this.slots.previous = this.slots.next;
      this.slots.next = null;
    } else {
      this.host.indices.free(this.slots.previous);
      this.slots.previous = this.slots.current;
    }
    this.slots.current = keys.localIndex;
    this.handshakeDone(now);
    this.sessionDerived(now);
    // Confirm the session to the responder at once unless staged data already does.
    if (stagedBefore === 0) this.host.native.sendKeepalive(this.id);
  }

  /** We answered an initiation: the keypair waits in `next` until the peer uses it. */
  installAsResponder(keys: SessionKeys, now: number): void {
    this.host.indices.free(this.slots.next);
    this.host.indices.free(this.slots.previous);
    this.slots.previous = null;
    this.slots.next = keys.localIndex;
    this.host.native.installKeypair(this.id, {
      localIndex: keys.localIndex,
      remoteIndex: keys.remoteIndex,
      sendKey: Buffer.from(keys.sendKey),
      receiveKey: Buffer.from(keys.receiveKey),
      initiator: false,
    });
    this.sessionDerived(now);
  }

  /** The packet path promoted `next` on its first packet: the responder's handshake is complete. */
  onKeypairConfirmed(now: number): void {
    if (this.slots.next !== null) {
      this.host.indices.free(this.slots.previous);
      this.slots.previous = this.slots.current;
      this.slots.current = this.slots.next;
      this.slots.next = null;
    }
    this.handshakeDone(now);
  }

  private handshakeDone(_now: number): void {
    this.retransmitAt = null;
    this.unsentInitiation = false;
    this.handshakeAttempts = 0;
    this.wantsHandshake = false;
    const ms = performance.timeOrigin + performance.now();
    const sec = Math.floor(ms / 1000);
    this.lastHandshake = { sec: BigInt(sec), nsec: BigInt(Math.floor((ms - sec * 1000) * 1e6)) };
    this.host.log.verbose(`${this.name} - Handshake completed`);
  }

  private sessionDerived(now: number): void {
    this.zeroKeysAt = now + 3 * REJECT_AFTER_TIME_MS;
  }

  /** Forget every session (private key change, peer key change, give-up): zero keys in the packet path. */
  expireSessions(): void {
    this.host.native.expireKeypairs(this.id);
    for (const k of ['previous', 'current', 'next'] as const) {
      this.host.indices.free(this.slots[k]);
      this.slots[k] = null;
    }
    this.dropInitiation();
    this.retransmitAt = null;
    this.zeroKeysAt = null;
    this.host.native.requestHandshakeAgain(this.id);
  }

  /** Turning persistent keepalive on sends one at once, as wireguard-go does. */
  setPersistentKeepalive(seconds: number, now: number): void {
    const was = this.persistentKeepaliveInterval;
    this.persistentKeepaliveInterval = seconds;
    if (seconds > 0 && was === 0) {
      this.lastPersistentAttemptAt = now;
      this.host.native.sendKeepalive(this.id);
    }
  }

  /** Evaluate every timer rule for this peer at `now` (monotonic ms). */
  tick(now: number): void {
    // retransmitHandshake: resend, or give up after MAX_TIMER_HANDSHAKES retries.
    if (this.retransmitAt !== null && now >= this.retransmitAt) {
      if (this.handshakeAttempts >= MAX_TIMER_HANDSHAKES) {
        this.host.log.verbose(`${this.name} - Handshake did not complete after ${this.handshakeAttempts + 1} attempts, giving up`);
        this.retransmitAt = null;
        this.dropInitiation();
        this.host.native.clearStaged(this.id);
        this.host.native.requestHandshakeAgain(this.id);
        if (this.zeroKeysAt === null) this.zeroKeysAt = now + 3 * REJECT_AFTER_TIME_MS;
      } else {
        this.handshakeAttempts++;
        this.host.log.verbose(`${this.name} - Handshake did not complete after ${REKEY_TIMEOUT_MS / 1000} seconds, retrying (try ${this.handshakeAttempts + 1})`);
        this.maybeInitiate(now, true);
      }
    }
    if (this.wantsHandshake && this.retransmitAt === null) this.maybeInitiate(now);

    const state = this.host.native.peerState(this.id);

    // newHandshake: data sent and nothing authenticated heard back for KEEPALIVE + REKEY_TIMEOUT.
    const sentAt = state.firstDataSentSinceAuthReceived;
    if (
      sentAt !== 0 &&
      sentAt !== this.newHandshakeHandledFor &&
      sentAt > this.lastHandshakeReceivedAt &&
      now - sentAt >= KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.newHandshakeJitter
    ) {
      this.newHandshakeHandledFor = sentAt;
      this.newHandshakeJitter = jitter();
      this.host.log.verbose(`${this.name} - Retrying handshake because we stopped hearing back after ${(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS) / 1000} seconds`);
      if (this.retransmitAt === null) this.maybeInitiate(now);
    }

    // sendKeepalive (passive): data received and nothing sent back for KEEPALIVE_TIMEOUT.
    const receivedAt = state.firstDataReceivedSinceAuthSent;
    if (receivedAt !== 0 && now - receivedAt >= KEEPALIVE_TIMEOUT_MS) this.host.native.sendKeepalive(this.id);

    // persistentKeepalive: the configured interval after the last authenticated traversal.
    if (this.persistentKeepaliveInterval > 0) {
      const interval = this.persistentKeepaliveInterval * 1000;
      const traversal = Math.max(state.lastAuthSent, state.lastAuthReceived, this.lastPersistentAttemptAt);
      if (now - traversal >= interval) {
        this.lastPersistentAttemptAt = now;
        this.host.native.sendKeepalive(this.id);
      }
    }

    // zeroKeyMaterial: no new session for 3 × REJECT_AFTER_TIME.
    if (this.zeroKeysAt !== null && now >= this.zeroKeysAt) {
      this.host.log.verbose(`${this.name} - Removing all keys, since we haven't received a new one in ${(3 * REJECT_AFTER_TIME_MS) / 1000} seconds`);
      this.expireSessions();
    }
  }

  /** Remove the peer from the packet path and free its indices. */
  destroy(): void {
    for (const k of ['previous', 'current', 'next'] as const) this.host.indices.free(this.slots[k]);
    this.dropInitiation();
    this.host.native.removePeer(this.id);
  }
}
