// Incoming handshake-class messages (initiation, response, cookie reply), in the order the packet
// path delivered them. Checks run cheapest first: mac1 (proves the sender knows our public key),
// then, only under load, mac2/cookie and the per-source rate limit, and only then the expensive
// Diffie-Hellman work of the Noise handshake.
import { CookieChecker } from './cookie.ts';
import {
  HANDSHAKE_INITIATION_RATE_MS,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  UNDER_LOAD_AFTER_MS,
  UNDER_LOAD_QUEUE_THRESHOLD,
} from './constants.ts';
import { consumeInitiation, consumeResponse, createResponse, type StaticIdentity } from './noise.ts';
import { RateLimiter } from './ratelimiter.ts';

/** Handshake messages per second beyond which the responder answers with cookies first. */
export const UNDER_LOAD_RATE_PER_SECOND = 1000;
import { compareTai64n } from './tai64n.ts';
import { parseAddress } from './prefix.ts';
import type { IndexTable } from './index-table.ts';
import type { NativeDevice } from './native.ts';
import type { IndexEntry, Peer } from './peer.ts';
import type { Logger } from '../log.ts';

export interface HandshakeHost {
  readonly native: NativeDevice;
  readonly indices: IndexTable<IndexEntry>;
  readonly log: Logger;
  identity(): StaticIdentity | null;
  peerByPublicKey(publicKey: Uint8Array): Peer | undefined;
}

/** Why handshake messages were dropped; exposed with the packet-path counters. */
export interface HandshakeCounters {
  initiationsAccepted: number;
  responsesAccepted: number;
  cookieRepliesAccepted: number;
  cookieRepliesSent: number;
  dropBadMac1: number;
  dropRateLimited: number;
  dropUnknownPeerOrBadCrypto: number;
  dropReplayedTimestamp: number;
  dropInitiationFlood: number;
  dropUnknownIndex: number;
}

export class HandshakeReceiver {
  readonly counters: HandshakeCounters = {
    initiationsAccepted: 0,
    responsesAccepted: 0,
    cookieRepliesAccepted: 0,
    cookieRepliesSent: 0,
    dropBadMac1: 0,
    dropRateLimited: 0,
    dropUnknownPeerOrBadCrypto: 0,
    dropReplayedTimestamp: 0,
    dropInitiationFlood: 0,
    dropUnknownIndex: 0,
  };
  readonly cookieChecker = new CookieChecker(null);
  private readonly rateLimiter = new RateLimiter();
  private readonly host: HandshakeHost;
  private underLoadUntil = -Infinity;
  private rateWindowStart = -Infinity;
  private rateCount = 0;

  constructor(host: HandshakeHost) {
    this.host = host;
  }

  /**
   * Process one batch. Under load when the batch (our queue depth, as wireguard-go measures it) is
   * deep, or when the message rate over the last second is beyond what a responder should ever
   * spend Diffie-Hellman on: the batch depth alone depends on how fast this thread drains it.
   */
  processBatch(batch: readonly { data: Buffer; address: string; port: number }[], now: number): void {
    if (now - this.rateWindowStart >= 1000) {
      this.rateWindowStart = now;
      this.rateCount = 0;
    }
    this.rateCount += batch.length;
    if (batch.length >= UNDER_LOAD_QUEUE_THRESHOLD || this.rateCount > UNDER_LOAD_RATE_PER_SECOND) this.underLoadUntil = now + UNDER_LOAD_AFTER_MS;
    const underLoad = now < this.underLoadUntil;
    for (const msg of batch) {
      try {
        this.processOne(msg.data, msg.address, msg.port, underLoad, now);
      } catch (err) {
        // A message can only be dropped, never take the device down.
        this.counters.dropUnknownPeerOrBadCrypto++;
        this.host.log.verbose(`handshake from ${msg.address}:${msg.port} dropped: ${(err as Error).message}`);
      }
    }
  }

  private processOne(data: Buffer, address: string, port: number, underLoad: boolean, now: number): void {
    if (data.length === MESSAGE_COOKIE_REPLY_SIZE) {
      const entry = this.host.indices.get(data.readUInt32LE(4));
      if (!entry) {
        this.counters.dropUnknownIndex++;
        return;
      }
      if (entry.peer.cookies.consumeReply(data, now)) this.counters.cookieRepliesAccepted++;
      else this.counters.dropUnknownPeerOrBadCrypto++;
      return;
    }

    const identity = this.host.identity();
    if (!identity || !this.cookieChecker.checkMac1(data)) {
      this.counters.dropBadMac1++;
      return;
    }
    if (underLoad) {
      const source = sourceBytes(address, port);
      if (!this.cookieChecker.checkMac2(data, source, now)) {
        const reply = this.cookieChecker.createReply(data, data.readUInt32LE(4), source, now);
        this.host.native.sendTo(address, port, Buffer.from(reply));
        this.counters.cookieRepliesSent++;
        return;
      }
      if (!this.rateLimiter.allow(address, now)) {
        this.counters.dropRateLimited++;
        return;
      }
    }

    if (data.length === MESSAGE_INITIATION_SIZE) this.initiation(identity, data, address, port, now);
    else if (data.length === MESSAGE_RESPONSE_SIZE) this.response(identity, data, address, port, now);
  }

  private initiation(identity: StaticIdentity, data: Buffer, address: string, port: number, now: number): void {
    let peer: Peer | undefined;
    const consumed = consumeInitiation(identity, data, (remoteStatic) => {
      peer = this.host.peerByPublicKey(remoteStatic);
      return peer ? peer.noisePeer() : null;
    });
    if (!consumed || !peer) {
      this.counters.dropUnknownPeerOrBadCrypto++;
      return;
    }
    // Replay: the timestamp must be strictly newer than the last accepted one from this peer.
    if (peer.lastInitiationTimestamp && compareTai64n(consumed.timestamp, peer.lastInitiationTimestamp) <= 0) {
      this.counters.dropReplayedTimestamp++;
      return;
    }
    // Flood: at most one accepted initiation per peer every 1/50 s.
    if (now - peer.lastInitiationConsumedAt <= HANDSHAKE_INITIATION_RATE_MS) {
      this.counters.dropInitiationFlood++;
      return;
    }
    peer.lastInitiationTimestamp = consumed.timestamp;
    peer.lastInitiationConsumedAt = now;
    peer.noteHandshakeReceived(now);
    this.host.native.setEndpoint(peer.id, address, port);

    const localIndex = this.host.indices.allocate({ kind: 'keypair', peer });
    const response = createResponse(identity, peer.noisePeer(), consumed.state, localIndex);
    if (!response) {
      this.host.indices.free(localIndex);
      this.counters.dropUnknownPeerOrBadCrypto++;
      return;
    }
    peer.cookies.addMacs(response.message, now);
    // Install before answering, so the initiator's first data packet finds the keypair.
    peer.installAsResponder(response.keys, now);
    this.host.native.sendToPeer(peer.id, Buffer.from(response.message));
    this.counters.initiationsAccepted++;
    this.host.log.verbose(`${peer.name} - Received handshake initiation, sent response`);
  }

  private response(identity: StaticIdentity, data: Buffer, address: string, port: number, now: number): void {
    const receiver = data.readUInt32LE(8);
    const entry = this.host.indices.get(receiver);
    const state = entry?.kind === 'handshake' ? entry.peer.initiationFor(receiver) : null;
    if (!entry || !state) {
      this.counters.dropUnknownIndex++;
      return;
    }
    const peer = entry.peer;
    const keys = consumeResponse(identity, peer.noisePeer(), state, data);
    if (!keys) {
      this.counters.dropUnknownPeerOrBadCrypto++;
      return;
    }
    peer.noteHandshakeReceived(now);
    this.host.native.setEndpoint(peer.id, address, port);
    peer.completeAsInitiator(keys, now);
    this.counters.responsesAccepted++;
    this.host.log.verbose(`${peer.name} - Received handshake response`);
  }
}

/** The responder's cookie is bound to the sender's address and port. */
function sourceBytes(address: string, port: number): Uint8Array {
  const parsed = parseAddress(address);
  const ip = parsed ? parsed.bytes : new Uint8Array(0);
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = port & 0xff;
  out[ip.length + 1] = port >> 8;
  return out;
}
