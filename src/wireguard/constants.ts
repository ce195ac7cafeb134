// Every protocol number the WireGuard control plane depends on, in one place, with the unit in the
// name. Values follow the whitepaper and wireguard-go `device/constants.go` (reference §4.5); where
// the kernel differs, the comment says so and why we picked the value we did.

// ---- Message types (first byte of every datagram; the next three bytes are reserved, zero) ----

export const MESSAGE_TYPE_INITIATION = 1;
export const MESSAGE_TYPE_RESPONSE = 2;
export const MESSAGE_TYPE_COOKIE_REPLY = 3;
export const MESSAGE_TYPE_TRANSPORT = 4;

/** The four message types by name (a plain object, since enums are not erasable syntax). */
export const MessageType = {
  Initiation: MESSAGE_TYPE_INITIATION,
  Response: MESSAGE_TYPE_RESPONSE,
  CookieReply: MESSAGE_TYPE_COOKIE_REPLY,
  Transport: MESSAGE_TYPE_TRANSPORT,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

// ---- Message sizes (bytes). Types 1-3 must match exactly; type 4 is at least the header + tag ----

export const MESSAGE_INITIATION_SIZE = 148;
export const MESSAGE_RESPONSE_SIZE = 92;
export const MESSAGE_COOKIE_REPLY_SIZE = 64;
/** Header (16) + Poly1305 tag (16): an empty transport message is a keepalive. */
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16;
export const MESSAGE_TRANSPORT_MIN_SIZE = 32;
export const MESSAGE_KEEPALIVE_SIZE = MESSAGE_TRANSPORT_MIN_SIZE;

// ---- Primitive sizes (bytes) ----

export const KEY_SIZE = 32;
export const HASH_SIZE = 32;
export const MAC_SIZE = 16;
export const AEAD_TAG_SIZE = 16;
export const XAEAD_NONCE_SIZE = 24;
export const COOKIE_SIZE = 16;
export const TAI64N_SIZE = 12;

// ---- Key lifetimes ----

/** Initiator starts a new handshake once a keypair has sent this many messages. */
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
/** Hard limit on nonces per keypair (whitepaper / wireguard-go; the kernel subtracts its window). */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/** Initiator rekeys when sending on a keypair at least this old. */
export const REKEY_AFTER_TIME_MS = 120_000;
/** No keypair is used, for sending or receiving, after this age. */
export const REJECT_AFTER_TIME_MS = 180_000;
/** Give up retrying a handshake after this long (then drop staged packets). */
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** Retransmit an unanswered initiation after this long (plus jitter); also the minimum gap between initiations. */
export const REKEY_TIMEOUT_MS = 5_000;
/** Jitter added to REKEY_TIMEOUT is uniform in [0, this) ms: 0..333 (kernel HZ/3). */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
/** Passive keepalive: sent this long after receiving data when we had nothing to send back. */
export const KEEPALIVE_TIMEOUT_MS = 10_000;
/** Responder's cookie secret lifetime; also how long an initiator trusts a received cookie. */
export const COOKIE_REFRESH_TIME_MS = 120_000;
/** Retransmissions of one handshake attempt: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT. */
export const MAX_TIMER_HANDSHAKES = 18;
/**
 * The initiator, on receiving with a keypair this old, rekeys once so that a new session exists
 * before the old one hits REJECT_AFTER_TIME: 180 - 10 - 5 = 165 s.
 */
export const REKEY_AFTER_TIME_RECEIVING_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** Data sent but nothing received for this long (plus jitter): start a new handshake. */
export const NEW_HANDSHAKE_TIMEOUT_MS = KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS;
/** With no new handshake, every key of a peer is zeroed after 3 x REJECT_AFTER_TIME. */
export const ZERO_KEYS_AFTER_MS = 3 * REJECT_AFTER_TIME_MS;

// ---- Denial-of-service limits ----
// Enforced in the packet path, beside the code that applies them: native/src/handshake/workers.h
// (the process's handshake queue and under-load signal), ratelimiter.h (20 messages/s per source,
// burst 5) and device_handshake.cc (one accepted initiation per peer per 1/50 s).

// ---- Data path (for the native side and for whoever configures it) ----

/** RFC 6479 ring of 8192 bits minus one 64-bit block of redundancy. */
export const REPLAY_WINDOW_SIZE = 8128;
/** Packets queued per peer while waiting for a session (kernel MAX_STAGED_PACKETS). */
export const MAX_STAGED_PACKETS = 128;
/** Plaintext is padded to a multiple of this, capped at the MTU. */
export const PADDING_MULTIPLE = 16;
export const DEFAULT_MTU = 1420;
/** wireguard-go's peer limit. */
export const MAX_PEERS = 1 << 16;

// ---- Protocol labels (ASCII) ----

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';
