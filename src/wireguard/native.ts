// The boundary between the TypeScript control plane and the native packet path (native/).
//
// The addon owns the TUN file descriptor, the UDP socket and the threads that move data packets:
// TUN read -> allowed-IPs lookup -> ChaCha20-Poly1305 -> UDP send, and UDP receive -> index lookup
// -> decrypt -> replay window -> source check -> TUN write. It also owns everything an
// unauthenticated sender can trigger: handshake messages are checked (mac1; under load mac2,
// cookie replies, a per-source rate limit) on the UDP thread and their Noise work is done by the
// process's handshake workers, which install the keypairs and send the responses. JavaScript never
// sees a data packet or a handshake message. It drives the addon with a handful of synchronous
// calls (keys, peers, endpoints, allowed IPs, "initiate now") and receives batched events
// (handshake complete, "this peer needs a handshake", key confirmation, device gone) through one
// thread-safe callback.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Events delivered from the packet threads, in batches, on the JS thread. */
export type NativeEvent =
  /**
   * A handshake completed and its keypair is installed: `initiator` true when our initiation was
   * answered (the keypair is current), false when we answered one (it waits in `next` for the
   * initiator's first packet, then `keypair-confirmed` follows).
   */
  | { kind: 'handshake-complete'; peer: number; initiator: boolean }
  /**
   * A packet was staged for `peer` with no usable current keypair, or the current keypair asks
   * for a rekey (on send: counter >= REKEY_AFTER_MESSAGES on either side, or, initiator only, age
   * >= REKEY_AFTER_TIME; on receive, initiator only: age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT -
   * REKEY_TIMEOUT). Deduplicated: raised at most once until the next keypair installation or
   * `requestHandshakeAgain` for that peer.
   */
  | { kind: 'need-handshake'; peer: number }
  /** The responder's `next` keypair was promoted by the first packet received under it. */
  | { kind: 'keypair-confirmed'; peer: number }
  /** The TUN device was deleted (read returned EBADFD/EIO) or a thread hit an unrecoverable error. */
  | { kind: 'device-gone'; reason: string };

/** Per-peer figures the control plane needs for `wg show` and for its timers. */
export interface NativePeerState {
  txBytes: bigint;
  rxBytes: bigint;
  /** Current endpoint as learned (roaming updates it), or null. IPv6 without brackets. */
  endpoint: { address: string; port: number } | null;
  /** Monotonic milliseconds (same clock as `NativeDevice.now()`); 0 when never. */
  lastAuthSent: number;
  lastAuthReceived: number;
  /** First non-keepalive data packet sent since the last authenticated packet received; 0 if none. */
  firstDataSentSinceAuthReceived: number;
  /** First non-keepalive data packet received since the last authenticated packet sent; 0 if none. */
  firstDataReceivedSinceAuthSent: number;
  /** Whether a current keypair exists (usable for sending). */
  hasCurrentKeypair: boolean;
  /** Number of packets staged waiting for a keypair. */
  staged: number;
}

/** Global drop and traffic counters of the packet path. All monotonically increasing. */
export interface NativeCounters {
  tunRxPackets: bigint;
  tunTxPackets: bigint;
  udpRxPackets: bigint;
  udpTxPackets: bigint;
  /** Datagrams dropped: unknown type, wrong size for its type, shorter than a header. */
  dropMalformed: bigint;
  /** Type-4 packets whose receiver index is unknown. */
  dropUnknownIndex: bigint;
  /** Type-4 packets that failed authentication. */
  dropDecrypt: bigint;
  /** Type-4 packets rejected by the replay window or over REJECT_AFTER_MESSAGES. */
  dropReplay: bigint;
  /** Decrypted packets whose inner source is not allowed for the sending peer, or bad inner header. */
  dropSourceCheck: bigint;
  /** Decrypted packets whose inner IP header was invalid. */
  dropInnerMalformed: bigint;
  /** TUN packets with no peer for their destination (an ICMP unreachable is sent, rate limited). */
  dropNoPeer: bigint;
  /** TUN packets dropped because the staging queue of a peer was full (oldest dropped). */
  dropStagedOverflow: bigint;
  /** Handshake messages dropped because the process's handshake queue was full. */
  dropHandshakeQueue: bigint;
  /** Keypairs too old (REJECT_AFTER_TIME) or exhausted for the packet at hand. */
  dropExpiredKey: bigint;
  /** ICMP/ICMPv6 destination-unreachable replies written to the TUN. */
  icmpUnreachableSent: bigint;
  /** Data for a peer with a keypair but no endpoint. */
  dropNoEndpoint: bigint;
  /** Datagrams the kernel refused (no route, no socket bound...). */
  udpTxErrors: bigint;
  /** Packets the TUN refused. */
  tunTxErrors: bigint;
  /** TUN reads that were TCP super-packets (TSO), split into more than one segment. */
  tunRxSuperPackets: bigint;
  /** TUN writes that merged more than one received segment. */
  tunTxSuperPackets: bigint;
  /** UDP sends that carried more than one datagram (UDP GSO). */
  udpTxGsoRuns: bigint;
  /** UDP receives that carried more than one datagram (UDP GRO). */
  udpRxGroRuns: bigint;
  /** Initiations answered (authenticated, fresh timestamp, not flooding). */
  handshakeInitiationsAccepted: bigint;
  /** Responses to our initiations that completed the handshake. */
  handshakeResponsesAccepted: bigint;
  /** Cookie replies that answered one of our messages and decrypted. */
  handshakeCookieRepliesAccepted: bigint;
  /** Cookie replies we sent (under load, to a message without a valid mac2). */
  handshakeCookieRepliesSent: bigint;
  /** Type 1/2 messages whose mac1 was wrong (or we have no private key). */
  handshakeDropBadMac1: bigint;
  /** Type 1/2 messages over the per-source rate under load. */
  handshakeDropRateLimited: bigint;
  /** Messages that did not decrypt, named no known peer, or hit a degenerate DH. */
  handshakeDropUnknownPeerOrBadCrypto: bigint;
  /** Initiations whose timestamp was not newer than the last accepted one (replays). */
  handshakeDropReplayedTimestamp: bigint;
  /** Initiations within 20 ms of the last accepted one from the same peer. */
  handshakeDropInitiationFlood: bigint;
  /** Responses and cookie replies addressed to no handshake of ours. */
  handshakeDropUnknownIndex: bigint;
  /** Cookie replies to one of our messages that did not decrypt (or answered an older message). */
  handshakeDropBadCookieReply: bigint;
  /** handshake-complete events dropped because JavaScript had 1024 waiting (its timers recover). */
  handshakeEventsDropped: bigint;
}

export interface KeypairSpec {
  /** Our sender index for this session (the remote puts it in type-4 `receiver`). */
  localIndex: number;
  /** The remote's sender index (we put it in type-4 `receiver`). */
  remoteIndex: number;
  sendKey: Buffer; // 32 bytes
  receiveKey: Buffer; // 32 bytes
  /** Initiator keypairs become current at once; responder keypairs wait in `next` for confirmation. */
  initiator: boolean;
}

export interface NativeDevice {
  /** Interface name as the kernel knows it (after creation). */
  readonly name: string;
  /** Monotonic clock in milliseconds, the one used by NativePeerState. */
  now(): number;
  /** Start the packet threads. Call once, after the event callback is wired. */
  start(): void;
  /** Stop threads, close the TUN and the sockets. Idempotent. Does not delete the interface. */
  close(): void;

  /**
   * (Re)bind the UDP socket: port 0 picks a free port. Dual-stack IPv6 socket when the namespace
   * has IPv6, else IPv4 only. Returns the bound port. Throws an Error with `code` = 'EADDRINUSE'
   * (or another errno name) and leaves the previous socket in place on failure.
   */
  bind(port: number): number;
  /** SO_MARK on the UDP socket(s); 0 clears. Throws with `code` on failure. */
  setFwmark(mark: number): void;
  /** MTU of the TUN as configured now (read from the kernel, cached briefly). */
  mtu(): number;

  /**
   * Our static private key (32 bytes, clamped natively), or null to remove it. Every peer's
   * static-static secret is recomputed; mac1 and cookie keys follow.
   */
  setPrivateKey(privateKey: Buffer | null): void;
  /** A peer with its static public key (32 bytes). Throws (code EEXIST) for a taken id or key. */
  addPeer(peer: number, publicKey: Buffer): void;
  /** The peer's preshared key (32 bytes; all zero: none). */
  setPresharedKey(peer: number, presharedKey: Buffer): void;
  /**
   * Queue a handshake initiation to the peer for the handshake workers (one at a time per peer).
   * Nothing is queued when the peer has no endpoint ('no-endpoint') or no static-static secret
   * ('no-key': we have no private key, or theirs is a low-order point).
   */
  initiateHandshake(peer: number): 'queued' | 'no-endpoint' | 'no-key';
  /** Forget the initiation in flight (attempts gave up): a late response to it is refused. */
  abandonHandshake(peer: number): void;
  /** Removes the peer, its keypairs, staged packets and allowed IPs. */
  removePeer(peer: number): void;
  setEndpoint(peer: number, address: string, port: number): void;
  clearEndpoint(peer: number): void;
  /**
   * Allowed-IPs edits, batched: `records` is a sequence of 18-byte records
   * [family 4|6][prefix length][16 address bytes, IPv4 in the first 4]. Inserting a prefix owned by
   * another peer moves it to this peer.
   */
  insertAllowedIps(peer: number, records: Buffer): void;
  removeAllowedIps(peer: number, records: Buffer): void;
  clearAllowedIps(peer: number): void;

  /**
   * Install a keypair derived elsewhere and flush staged packets when it is usable. The device
   * installs its own handshakes' keypairs; this is for tests of the packet path alone.
   */
  installKeypair(peer: number, keypair: KeypairSpec): void;
  /** Drop every keypair of the peer (zeroing keys), its initiation in flight and its staged packets. */
  expireKeypairs(peer: number): void;
  /** Drop staged packets only (handshake attempts gave up). */
  clearStaged(peer: number): void;
  /** Allow a new `need-handshake` event for this peer (after JS decided not to act on one). */
  requestHandshakeAgain(peer: number): void;
  /**
   * Send a keepalive (empty transport packet) with the current keypair. Returns false when there
   * is no usable keypair (in which case a `need-handshake` event follows, as for staged data).
   */
  sendKeepalive(peer: number): boolean;
  /** Send a datagram to the peer's endpoint, counted as sent to it. False when it has none. */
  sendToPeer(peer: number, data: Buffer): boolean;
  /** Send a datagram to an address. */
  sendTo(address: string, port: number, data: Buffer): void;

  peerState(peer: number): NativePeerState;
  counters(): NativeCounters;

  // ---- TEST ONLY -------------------------------------------------------------------------------
  // Hooks for the key-lifetime tests (test/netns/key-lifetime.test.ts): they move the state the
  // packet path's timers read, so REKEY_AFTER_TIME (120 s), REJECT_AFTER_TIME (180 s), the
  // initiator's receive-side rekey (165 s), REKEY_AFTER_MESSAGES (2^60) and REJECT_AFTER_MESSAGES
  // (2^64 - 2^13 - 1) can be reached without waiting. The control plane never calls them; weft-wg
  // only reaches them through the control socket's `test=1` operation, which answers errno=-22
  // unless the daemon was started with WEFT_WG_TEST_HOOKS=1.

  /**
   * TEST ONLY. Move the creation time of every keypair of the peer (previous, current, next) `ms`
   * milliseconds into the past, as if they were that much older. Throws (code ENOENT) for an
   * unknown peer; a peer without keypairs is left as it is.
   */
  testAgeKeypairs(peer: number, ms: number): void;
  /**
   * TEST ONLY. Set the counter the current keypair uses for its next transport message (the
   * counters after it follow on). Returns false when the peer has no current keypair.
   */
  testSetSendCounter(peer: number, counter: bigint): boolean;
}

export interface NativeModule {
  /**
   * Open (creating if needed) the TUN device `name` in the caller's network namespace, set its
   * MTU to `mtu`, and prepare (not start) the packet threads. `onEvents` receives batches.
   * `offloads` (default true): TSO/checksum offload on the TUN with segment split and coalesce,
   * UDP GSO/GRO on the socket, each where the kernel has it; false: one packet per system call.
   * `cryptoThreads` (default -1, automatic: one per core beyond two, at most 4): extra threads per
   * direction that seal/open a batch's packets beside the packet thread; 0: none.
   */
  createDevice(
    name: string,
    mtu: number,
    onEvents: (events: NativeEvent[]) => void,
    options?: { offloads?: boolean; cryptoThreads?: number },
  ): NativeDevice;
  /**
   * Test hooks over the same C++ code the packet path uses, so unit tests exercise the real thing.
   * ReplayWindow: validate(counter) returns true if the counter is fresh and records it.
   */
  ReplayWindow: new () => { validate(counter: bigint): boolean; reset(): void };
  /**
   * The packet path's cryptokey routing table on its own (no device). Records are encoded as for
   * `insertAllowedIps` (see encodePrefixes). Peer ids must be >= 1: lookup answers 0 for "no peer".
   */
  AllowedIpsTable: new () => {
    /** Give the prefixes to `peer`; a prefix owned by another peer moves. */
    insert(peer: number, records: Buffer): void;
    /** Remove the prefixes `peer` owns; a prefix owned by another peer is left alone. */
    remove(peer: number, records: Buffer): void;
    /** Remove every prefix of `peer`. */
    clear(peer: number): void;
    /** Longest-prefix match: the owning peer, or 0. `address` is 4 (family 4) or 16 (family 6) bytes. */
    lookup(family: 4 | 6, address: Uint8Array): number;
    /** Number of prefixes in the table. */
    size(): number;
  };
  /** One-shot AEAD with the packet path's implementation (for known-answer tests). */
  aeadSeal(key: Buffer, counter: bigint, plaintext: Buffer): Buffer;
  aeadOpen(key: Buffer, counter: bigint, ciphertext: Buffer): Buffer | null;
  /**
   * The segments the device encrypts for one TUN read with this virtio-net header (offload.h):
   * a TSO super-packet cut at gsoSize with headers and checksums fixed, or the packet with its
   * partial checksum completed. null: malformed (the device drops and counts it).
   */
  gsoSplit(header: VnetHeader, packet: Buffer): Buffer[] | null;
  /**
   * The TUN writes (header + packet) the device makes for one batch of decrypted packets;
   * `refuseMerged`: as if the TUN rejected every super-packet (only accepted writes are listed).
   */
  groCoalesce(packets: Buffer[], options?: { refuseMerged?: boolean }): { header: VnetHeader; packet: Buffer }[];
  /**
   * Runs the packet path's CryptoPool (`workers` extra threads) once per entry of `sizes` and
   * answers -1 when every run processed each index exactly once, else the first failing run.
   */
  cryptoPoolCheck(workers: number, sizes: number[]): number;
  /**
   * The handshake path's C++ (native/src/handshake/) on its own, for known-answer tests,
   * cross-checks against the TypeScript protocol code (noise.ts, cookie.ts) and bad input. Time
   * is injected as milliseconds of the caller's choosing.
   */
  handshakeTest: HandshakeTestHooks;
}

export interface NativeSessionKeys {
  sendKey: Buffer;
  receiveKey: Buffer;
  localIndex: number;
  remoteIndex: number;
}

export interface HandshakeTestHooks {
  /** An initiator's handshake with one peer: message 1, then the keys from message 2 (null: refused). */
  Initiator: new (localPrivateKey: Buffer, remotePublicKey: Buffer, presharedKey: Buffer) => {
    initiate(localIndex: number, timestamp: Uint8Array): Buffer | null;
    finish(response: Uint8Array): NativeSessionKeys | null;
  };
  /** The responder's work on message 1 from the peer with `remotePublicKey`: message 2 and the keys, or null. */
  respond(
    localPrivateKey: Buffer,
    remotePublicKey: Buffer,
    presharedKey: Buffer,
    initiation: Uint8Array,
    localIndex: number,
  ): (NativeSessionKeys & { remoteStatic: Buffer; timestamp: Buffer; response: Buffer }) | null;
  /** The device's mac1/mac2 checks and cookie replies, keyed by our public key (null: none). */
  CookieChecker: new (publicKey: Buffer | null) => {
    checkMac1(message: Uint8Array): boolean;
    checkMac2(message: Uint8Array, address: string, port: number, nowMs: number): boolean;
    createReply(message: Uint8Array, address: string, port: number, nowMs: number): Buffer | null;
  };
  /** A peer's mac1/mac2 writer and cookie-reply reader, keyed by the peer's public key. */
  CookieGenerator: new (remotePublicKey: Buffer) => {
    addMacs(message: Uint8Array, nowMs: number): Buffer;
    consumeReply(reply: Uint8Array, nowMs: number): boolean;
  };
  /** The per-source limiter the handshake workers share (20/s, burst 5, IPv6 by /64). */
  RateLimiter: new (maxEntries?: number) => { allow(address: string, port: number, nowMs: number): boolean; size(): number };
  /** The process's handshake workers. */
  workers(): { threads: number; queued: number; capacity: number };
}

/** struct virtio_net_hdr as the TUN reads and writes it (IFF_VNET_HDR). */
export interface VnetHeader {
  /** 1: NEEDS_CSUM (the checksum at csumStart + csumOffset is partial). */
  flags: number;
  /** 0 none, 1 TCPv4, 4 TCPv6 (| 0x80 ECN). */
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const addonPath = path.resolve(here, '../../native/build/Release/weft_native.node');

let loaded: NativeModule | undefined;
/** Load the addon once; a clear error says how to build it when it is missing. */
export function native(): NativeModule {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)(addonPath) as NativeModule;
  } catch (err) {
    throw new Error(`weft native addon not loadable at ${addonPath} (run bin/setup): ${(err as Error).message}`);
  }
  return loaded;
}

/** Encode prefixes for insertAllowedIps/removeAllowedIps. */
export function encodePrefixes(prefixes: readonly { family: 4 | 6; bits: number; bytes: Uint8Array }[]): Buffer {
  const out = Buffer.alloc(prefixes.length * 18);
  prefixes.forEach((p, i) => {
    const o = i * 18;
    out[o] = p.family;
    out[o + 1] = p.bits;
    out.set(p.bytes.subarray(0, p.family === 4 ? 4 : 16), o + 2);
  });
  return out;
}
