// One WireGuard peer as the control plane sees it: its configuration and its timers.
//
// The packet path (native) keeps the keypairs, the per-packet timestamps and the whole handshake:
// the Noise messages, the responder's replay and flood marks, cookies and receiver indices. This
// side decides when to initiate and what a completed handshake means for the timers, which are
// evaluated on a periodic tick from the native timestamps instead of being re-armed per packet
// (which would need one JS call per packet). Each rule below names the wireguard-go timer it
// stands for.
import {
  KEEPALIVE_TIMEOUT_MS,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from './constants.ts';
import type { NativeDevice } from './native.ts';
import type { Logger } from '../log.ts';
import { toBase64 } from './keys.ts';

/** What a peer needs from its device. */
export interface PeerHost {
  readonly native: NativeDevice;
  readonly log: Logger;
}

function jitter(): number {
  return Math.floor(Math.random() * REKEY_TIMEOUT_JITTER_MAX_MS);
}

export class Peer {
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly name: string;
  #presharedKey: Uint8Array = new Uint8Array(32);
  persistentKeepaliveInterval = 0;
  /** Endpoint set by configuration; the packet path may have learned a newer one (roaming). */
  configuredEndpoint: { address: string; port: number } | null = null;
  /** Wall-clock time of the last completed handshake, as `wg` shows it. */
  lastHandshake = { sec: 0n, nsec: 0n };

  private readonly host: PeerHost;
  private lastInitiationSentAt = -Infinity;
  /** retransmitHandshake timer: when to resend the initiation that got no answer. */
  private retransmitAt: number | null = null;
  private handshakeAttempts = 0;
  /** A `need-handshake` arrived that could not be acted on yet (REKEY_TIMEOUT between initiations). */
  private wantsHandshake = false;
  /** The last initiation could not be sent for want of an endpoint. */
  private unsentInitiation = false;
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
    host.native.addPeer(id, Buffer.from(publicKey));
  }

  get presharedKey(): Uint8Array {
    return this.#presharedKey;
  }

  set presharedKey(key: Uint8Array) {
    this.#presharedKey = Uint8Array.from(key);
    this.host.native.setPresharedKey(this.id, Buffer.from(key));
  }

  /** The packet path asked for a handshake (staged data, or a keypair due for rekey). */
  onNeedHandshake(now: number): void {
    this.wantsHandshake = true;
    this.maybeInitiate(now);
  }

  /**
   * Send a handshake initiation unless one went out less than REKEY_TIMEOUT ago. A retry keeps
   * counting attempts; a fresh attempt starts the count again (SendHandshakeInitiation). The
   * packet path builds and sends it on its handshake workers.
   */
  private maybeInitiate(now: number, isRetry = false): boolean {
    if (!isRetry && now - this.lastInitiationSentAt < REKEY_TIMEOUT_MS) return false;
    const queued = this.host.native.initiateHandshake(this.id);
    this.wantsHandshake = false;
    if (queued === 'no-key') return false;
    if (!isRetry) this.handshakeAttempts = 0;
    this.retransmitAt = now + REKEY_TIMEOUT_MS + jitter();
    const sent = queued === 'queued';
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

  /**
   * The packet path completed a handshake and installed its keypair (timersHandshakeComplete for
   * the initiator; the responder's completes with the key confirmation, onKeypairConfirmed).
   */
  onHandshakeComplete(initiator: boolean, now: number): void {
    this.lastHandshakeReceivedAt = now;
    this.zeroKeysAt = now + 3 * REJECT_AFTER_TIME_MS;
    if (initiator) this.handshakeDone();
    this.host.log.verbose(`${this.name} - ${initiator ? 'Received handshake response' : 'Received handshake initiation, sent response'}`);
  }

  /** The packet path promoted `next` on its first packet: the responder's handshake is complete. */
  onKeypairConfirmed(_now: number): void {
    this.handshakeDone();
  }

  private handshakeDone(): void {
    this.retransmitAt = null;
    this.unsentInitiation = false;
    this.handshakeAttempts = 0;
    this.wantsHandshake = false;
    const ms = performance.timeOrigin + performance.now();
    const sec = Math.floor(ms / 1000);
    this.lastHandshake = { sec: BigInt(sec), nsec: BigInt(Math.floor((ms - sec * 1000) * 1e6)) };
    this.host.log.verbose(`${this.name} - Handshake completed`);
  }

  /** Forget every session (private key change, give-up): zero keys and the handshake in the packet path. */
  expireSessions(): void {
    this.host.native.expireKeypairs(this.id);
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
        this.host.native.abandonHandshake(this.id);
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

  /** Remove the peer (keys, handshake, indices) from the packet path. */
  destroy(): void {
    this.host.native.removePeer(this.id);
  }
}
