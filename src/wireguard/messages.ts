// Wire formats of the four WireGuard messages (reference §4.2). Integers are little-endian; the
// first byte is the type and the next three are reserved and must be zero. Handshake messages
// (types 1-3) have one exact size each: anything else is dropped before any cryptography runs, so
// a malformed datagram costs nothing. Parsers return views into the input (no copies).
import {
  AEAD_TAG_SIZE,
  KEY_SIZE,
  MAC_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TYPE_COOKIE_REPLY,
  MESSAGE_TYPE_INITIATION,
  MESSAGE_TYPE_RESPONSE,
  MESSAGE_TYPE_TRANSPORT,
  COOKIE_SIZE,
  TAI64N_SIZE,
  XAEAD_NONCE_SIZE,
} from './constants.ts';

// ---- Offsets ----

export const INITIATION_SENDER_OFFSET = 4;
export const INITIATION_EPHEMERAL_OFFSET = 8;
export const INITIATION_STATIC_OFFSET = 40;
export const INITIATION_STATIC_SIZE = KEY_SIZE + AEAD_TAG_SIZE; // 48
export const INITIATION_TIMESTAMP_OFFSET = 88;
export const INITIATION_TIMESTAMP_SIZE = TAI64N_SIZE + AEAD_TAG_SIZE; // 28
export const INITIATION_MAC1_OFFSET = 116;
export const INITIATION_MAC2_OFFSET = 132;

export const RESPONSE_SENDER_OFFSET = 4;
export const RESPONSE_RECEIVER_OFFSET = 8;
export const RESPONSE_EPHEMERAL_OFFSET = 12;
export const RESPONSE_EMPTY_OFFSET = 44;
export const RESPONSE_EMPTY_SIZE = AEAD_TAG_SIZE; // 16
export const RESPONSE_MAC1_OFFSET = 60;
export const RESPONSE_MAC2_OFFSET = 76;

export const COOKIE_REPLY_RECEIVER_OFFSET = 4;
export const COOKIE_REPLY_NONCE_OFFSET = 8;
export const COOKIE_REPLY_COOKIE_OFFSET = 32;
export const COOKIE_REPLY_COOKIE_SIZE = COOKIE_SIZE + AEAD_TAG_SIZE; // 32

export const TRANSPORT_RECEIVER_OFFSET = 4;
export const TRANSPORT_COUNTER_OFFSET = 8;
export const TRANSPORT_CONTENT_OFFSET = MESSAGE_TRANSPORT_HEADER_SIZE;

// ---- Shapes ----

export interface Initiation {
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface Response {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReply {
  receiver: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}

export interface TransportHeader {
  receiver: number;
  counter: bigint;
}

function dataView(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

function reservedZero(data: Uint8Array): boolean {
  return data[1] === 0 && data[2] === 0 && data[3] === 0;
}

/**
 * The message type (1-4) when the datagram starts with a known type and zero reserved bytes,
 * otherwise null. Says nothing about the size: the parsers check that.
 */
export function messageType(data: Uint8Array): number | null {
  if (data.length < 4 || !reservedZero(data)) return null;
  const type = data[0]!;
  return type >= MESSAGE_TYPE_INITIATION && type <= MESSAGE_TYPE_TRANSPORT ? type : null;
}

function hasHeader(data: Uint8Array, type: number, size: number): boolean {
  return data.length === size && data[0] === type && reservedZero(data);
}

export function parseInitiation(data: Uint8Array): Initiation | null {
  if (!hasHeader(data, MESSAGE_TYPE_INITIATION, MESSAGE_INITIATION_SIZE)) return null;
  return {
    sender: dataView(data).getUint32(INITIATION_SENDER_OFFSET, true),
    ephemeral: data.subarray(INITIATION_EPHEMERAL_OFFSET, INITIATION_EPHEMERAL_OFFSET + KEY_SIZE),
    encryptedStatic: data.subarray(INITIATION_STATIC_OFFSET, INITIATION_STATIC_OFFSET + INITIATION_STATIC_SIZE),
    encryptedTimestamp: data.subarray(
      INITIATION_TIMESTAMP_OFFSET,
      INITIATION_TIMESTAMP_OFFSET + INITIATION_TIMESTAMP_SIZE,
    ),
    mac1: data.subarray(INITIATION_MAC1_OFFSET, INITIATION_MAC1_OFFSET + MAC_SIZE),
    mac2: data.subarray(INITIATION_MAC2_OFFSET, INITIATION_MAC2_OFFSET + MAC_SIZE),
  };
}

export function parseResponse(data: Uint8Array): Response | null {
  if (!hasHeader(data, MESSAGE_TYPE_RESPONSE, MESSAGE_RESPONSE_SIZE)) return null;
  const view = dataView(data);
  return {
    sender: view.getUint32(RESPONSE_SENDER_OFFSET, true),
    receiver: view.getUint32(RESPONSE_RECEIVER_OFFSET, true),
    ephemeral: data.subarray(RESPONSE_EPHEMERAL_OFFSET, RESPONSE_EPHEMERAL_OFFSET + KEY_SIZE),
    encryptedNothing: data.subarray(RESPONSE_EMPTY_OFFSET, RESPONSE_EMPTY_OFFSET + RESPONSE_EMPTY_SIZE),
    mac1: data.subarray(RESPONSE_MAC1_OFFSET, RESPONSE_MAC1_OFFSET + MAC_SIZE),
    mac2: data.subarray(RESPONSE_MAC2_OFFSET, RESPONSE_MAC2_OFFSET + MAC_SIZE),
  };
}

export function parseCookieReply(data: Uint8Array): CookieReply | null {
  if (!hasHeader(data, MESSAGE_TYPE_COOKIE_REPLY, MESSAGE_COOKIE_REPLY_SIZE)) return null;
  return {
    receiver: dataView(data).getUint32(COOKIE_REPLY_RECEIVER_OFFSET, true),
    nonce: data.subarray(COOKIE_REPLY_NONCE_OFFSET, COOKIE_REPLY_NONCE_OFFSET + XAEAD_NONCE_SIZE),
    encryptedCookie: data.subarray(COOKIE_REPLY_COOKIE_OFFSET, COOKIE_REPLY_COOKIE_OFFSET + COOKIE_REPLY_COOKIE_SIZE),
  };
}

/** Receiver index and counter of a transport message (at least 32 bytes: header + tag). */
export function parseTransportHeader(data: Uint8Array): TransportHeader | null {
  if (data.length < MESSAGE_TRANSPORT_MIN_SIZE || data[0] !== MESSAGE_TYPE_TRANSPORT || !reservedZero(data)) {
    return null;
  }
  const view = dataView(data);
  return {
    receiver: view.getUint32(TRANSPORT_RECEIVER_OFFSET, true),
    counter: view.getBigUint64(TRANSPORT_COUNTER_OFFSET, true),
  };
}

// ---- Builders ----

function put(out: Uint8Array, offset: number, size: number, value: Uint8Array | undefined, name: string): void {
  if (value === undefined) return;
  if (value.length !== size) throw new RangeError(`${name} must be ${size} bytes, got ${value.length}`);
  out.set(value, offset);
}

function checkIndex(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${name} must be a uint32`);
  return value;
}

/** A 148-byte initiation; mac1/mac2 default to zero (cookie.ts fills them in). */
export function buildInitiation(fields: {
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1?: Uint8Array;
  mac2?: Uint8Array;
}): Uint8Array {
  const out = new Uint8Array(MESSAGE_INITIATION_SIZE);
  out[0] = MESSAGE_TYPE_INITIATION;
  dataView(out).setUint32(INITIATION_SENDER_OFFSET, checkIndex(fields.sender, 'sender'), true);
  put(out, INITIATION_EPHEMERAL_OFFSET, KEY_SIZE, fields.ephemeral, 'ephemeral');
  put(out, INITIATION_STATIC_OFFSET, INITIATION_STATIC_SIZE, fields.encryptedStatic, 'encryptedStatic');
  put(out, INITIATION_TIMESTAMP_OFFSET, INITIATION_TIMESTAMP_SIZE, fields.encryptedTimestamp, 'encryptedTimestamp');
  put(out, INITIATION_MAC1_OFFSET, MAC_SIZE, fields.mac1, 'mac1');
  put(out, INITIATION_MAC2_OFFSET, MAC_SIZE, fields.mac2, 'mac2');
  return out;
}

/** A 92-byte response; mac1/mac2 default to zero. */
export function buildResponse(fields: {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1?: Uint8Array;
  mac2?: Uint8Array;
}): Uint8Array {
  const out = new Uint8Array(MESSAGE_RESPONSE_SIZE);
  out[0] = MESSAGE_TYPE_RESPONSE;
  const view = dataView(out);
  view.setUint32(RESPONSE_SENDER_OFFSET, checkIndex(fields.sender, 'sender'), true);
  view.setUint32(RESPONSE_RECEIVER_OFFSET, checkIndex(fields.receiver, 'receiver'), true);
  put(out, RESPONSE_EPHEMERAL_OFFSET, KEY_SIZE, fields.ephemeral, 'ephemeral');
  put(out, RESPONSE_EMPTY_OFFSET, RESPONSE_EMPTY_SIZE, fields.encryptedNothing, 'encryptedNothing');
  put(out, RESPONSE_MAC1_OFFSET, MAC_SIZE, fields.mac1, 'mac1');
  put(out, RESPONSE_MAC2_OFFSET, MAC_SIZE, fields.mac2, 'mac2');
  return out;
}

/** A 64-byte cookie reply. */
export function buildCookieReply(fields: { receiver: number; nonce: Uint8Array; encryptedCookie: Uint8Array }): Uint8Array {
  const out = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  out[0] = MESSAGE_TYPE_COOKIE_REPLY;
  dataView(out).setUint32(COOKIE_REPLY_RECEIVER_OFFSET, checkIndex(fields.receiver, 'receiver'), true);
  put(out, COOKIE_REPLY_NONCE_OFFSET, XAEAD_NONCE_SIZE, fields.nonce, 'nonce');
  put(out, COOKIE_REPLY_COOKIE_OFFSET, COOKIE_REPLY_COOKIE_SIZE, fields.encryptedCookie, 'encryptedCookie');
  return out;
}

/** A transport message: header followed by `sealed` (ciphertext || tag, at least 16 bytes). */
export function buildTransport(receiver: number, counter: bigint, sealed: Uint8Array): Uint8Array {
  if (sealed.length < AEAD_TAG_SIZE) throw new RangeError('sealed payload must include the 16-byte tag');
  const out = new Uint8Array(MESSAGE_TRANSPORT_HEADER_SIZE + sealed.length);
  out[0] = MESSAGE_TYPE_TRANSPORT;
  const view = dataView(out);
  view.setUint32(TRANSPORT_RECEIVER_OFFSET, checkIndex(receiver, 'receiver'), true);
  view.setBigUint64(TRANSPORT_COUNTER_OFFSET, BigInt.asUintN(64, counter), true);
  out.set(sealed, TRANSPORT_CONTENT_OFFSET);
  return out;
}

/**
 * Where mac1 and mac2 sit in a message that carries them. They are always the last 32 bytes, which
 * is how both wireguard-go and the kernel locate them; for types 1 and 2 this gives 116/132 and
 * 60/76. Null for messages too short to hold them.
 */
export function macOffsets(message: Uint8Array): { mac1: number; mac2: number } | null {
  if (message.length < 2 * MAC_SIZE) return null;
  return { mac1: message.length - 2 * MAC_SIZE, mac2: message.length - MAC_SIZE };
}
