// The text protocol spoken on the control socket (wireguard.com/xplatform), without any I/O:
// framing a byte stream into operations, parsing a `set` body into a SetRequest, and formatting a
// DeviceSnapshot as the `get` reply. The server feeds bytes in and writes strings out.
//
// Unlike wireguard-go, which applies each `set` line as it reads it, a set is parsed and validated
// whole first, so a bad line answers an errno and changes nothing. The body is still read up to its
// terminating empty line, so the connection stays in step for the next operation.
import { isZero, parseHexKey, toHex } from '../keys.ts';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../prefix.ts';
import type { PeerSet, SetRequest, DeviceSnapshot } from './types.ts';
import { Errno, UapiError } from './types.ts';

/** No valid line comes close (the longest is an IPv6 endpoint with a zone); bounds buffering. */
export const MAX_LINE_BYTES = 4096;
/** Generous: 130k allowed IPs are about 4 MiB. Bounds what one connection can make us hold. */
export const MAX_SET_BYTES = 64 * 1024 * 1024;

/** What the stream parser produces, in order; the server answers each one in that order. */
export type UapiOperation =
  | { kind: 'get' }
  /** weft's extension: `stats=1` answers the device's drop and traffic counters (wg never sends it). */
  | { kind: 'stats' }
  | { kind: 'set'; request: SetRequest }
  /** TEST ONLY, weft's extension: `test=1` (see parseTestBody). */
  | { kind: 'test'; request: TestRequest }
  /**
   * Answer `errno=<-errno>`. With `close`, the stream cannot be trusted any more (unknown
   * command, a line or body over the limits, a set cut short by EOF): the parser has stopped and
   * the server should end the connection after replying.
   */
  | { kind: 'error'; errno: number; message: string; close: boolean };

/** Reply line for an operation's outcome; wireguard-go writes errnos negated, `wg` negates back. */
export function formatErrno(errno: number): string {
  return `errno=${errno === 0 ? 0 : -Math.abs(errno)}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// set

/** Strict decimal in [0, max]: digits only (leading zeros allowed, as Go's ParseUint allows). */
function parseDecimal(text: string, max: number): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

/** Keep error messages (which end up in logs) short and printable whatever the client sent. */
function quote(text: string): string {
  const shown = text.length > 64 ? `${text.slice(0, 64)}...` : text;
  return JSON.stringify(shown);
}

function invalid(message: string): UapiError {
  return new UapiError(Errno.EINVAL, message);
}

/**
 * `1.2.3.4:51820` or `[2001:db8::1]:51820` (optionally `[fe80::1%eth0]:51820`), as Go's
 * netip.ParseAddrPort takes them: IPv6 only in brackets, IPv4 never in brackets, no hostnames
 * (`wg` resolves names before it writes the line). The address comes back in canonical form.
 */
export function parseEndpoint(text: string): { address: string; port: number } | null {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return null;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return null;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  const port = parseDecimal(portText, 0xffff);
  if (port === null) return null;
  let zone = '';
  const percent = host.indexOf('%');
  if (percent >= 0) {
    zone = host.slice(percent + 1);
    host = host.slice(0, percent);
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(zone)) return null;
  }
  const addr = parseAddress(host);
  if (!addr) return null;
  const bracketed = text.startsWith('[');
  if ((addr.family === 6) !== bracketed) return null;
  if (zone && addr.family !== 6) return null;
  return { address: formatAddress(addr.family, addr.bytes) + (zone ? `%${zone}` : ''), port };
}

/**
 * Collects one `set` body line by line. The first error is kept and later lines are skipped (the
 * caller still has to read up to the empty line); `finish` returns the request or throws it.
 */
export class SetBodyParser {
  #request: SetRequest = { replacePeers: false, peers: [] };
  /** The peer the lines currently apply to; null while still in the device section. */
  #peer: PeerSet | null = null;
  /** After `remove=true` wireguard-go turns the peer into a dummy: later lines are checked, not kept. */
  #peerRemoved = false;
  #error: UapiError | null = null;

  line(text: string): void {
    if (this.#error) return;
    try {
      this.#line(text);
    } catch (err) {
      this.#error = err instanceof UapiError ? err : new UapiError(Errno.EIO, String(err));
    }
  }

  /** The parsed request; throws the first error met. */
  finish(): SetRequest {
    if (this.#error) throw this.#error;
    return this.#request;
  }

  #line(text: string): void {
    const eq = text.indexOf('=');
    // wireguard-go answers a line without '=' with -EPROTO and anything else malformed with -EINVAL.
    if (eq < 0) throw new UapiError(Errno.EPROTO, `line without '=': ${quote(text)}`);
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);

    if (key === 'public_key') {
      const publicKey = parseHexKey(value);
      if (!publicKey) throw invalid(`invalid public_key ${quote(value)}`);
      this.#peer = { publicKey, remove: false, updateOnly: false, allowedIps: [] };
      this.#peerRemoved = false;
      this.#request.peers.push(this.#peer);
      return;
    }
    if (this.#peer) this.#peerLine(this.#peer, key, value);
    else this.#deviceLine(key, value);
  }

  #deviceLine(key: string, value: string): void {
    const req = this.#request;
    switch (key) {
      case 'private_key': {
        const k = parseHexKey(value);
        if (!k) throw invalid(`invalid private_key`); // never echo a secret into a log
        req.privateKey = k;
        return;
      }
      case 'listen_port': {
        const port = parseDecimal(value, 0xffff);
        if (port === null) throw invalid(`invalid listen_port ${quote(value)}`);
        req.listenPort = port;
        return;
      }
      case 'fwmark': {
        const mark = parseDecimal(value, 0xffffffff);
        if (mark === null) throw invalid(`invalid fwmark ${quote(value)}`);
        req.fwmark = mark;
        return;
      }
      case 'replace_peers':
        if (value !== 'true') throw invalid(`invalid replace_peers ${quote(value)}`);
        req.replacePeers = true;
        return;
      default:
        // Includes peer keys before any public_key and device keys nobody knows.
        throw invalid(`invalid device key ${quote(key)}`);
    }
  }

  #peerLine(peer: PeerSet, key: string, value: string): void {
    // Every line is validated even for a removed peer, as wireguard-go does for its dummy peer;
    // only the effect is dropped.
    const keep = !this.#peerRemoved;
    switch (key) {
      case 'update_only':
        if (value !== 'true') throw invalid(`invalid update_only ${quote(value)}`);
        if (keep) peer.updateOnly = true;
        return;
      case 'remove':
        if (value !== 'true') throw invalid(`invalid remove ${quote(value)}`);
        peer.remove = true;
        this.#peerRemoved = true;
        return;
      case 'preshared_key': {
        const k = parseHexKey(value);
        if (!k) throw invalid(`invalid preshared_key`);
        if (keep) peer.presharedKey = k;
        return;
      }
      case 'endpoint': {
        const endpoint = parseEndpoint(value);
        if (!endpoint) throw invalid(`invalid endpoint ${quote(value)}`);
        if (keep) peer.endpoint = endpoint;
        return;
      }
      case 'persistent_keepalive_interval': {
        const secs = parseDecimal(value, 0xffff);
        if (secs === null) throw invalid(`invalid persistent_keepalive_interval ${quote(value)}`);
        if (keep) peer.persistentKeepaliveInterval = secs;
        return;
      }
      case 'replace_allowed_ips':
        if (value !== 'true') throw invalid(`invalid replace_allowed_ips ${quote(value)}`);
        if (keep) peer.allowedIps.push({ op: 'replace' });
        return;
      case 'allowed_ip': {
        // `-<prefix>` removes one entry (wireguard-go 256bcbd / wireguard-tools 0788f90, 2025).
        const remove = value.startsWith('-');
        const prefix = parseAllowedIp(remove ? value.slice(1) : value);
        if (!prefix) throw invalid(`invalid allowed_ip ${quote(value)}`);
        if (keep) peer.allowedIps.push(remove ? { op: 'remove', prefix } : { op: 'add', prefix });
        return;
      }
      case 'protocol_version':
        if (value !== '1') throw invalid(`invalid protocol_version ${quote(value)}`);
        return;
      default:
        throw invalid(`invalid peer key ${quote(key)}`);
    }
  }
}

/**
 * `addr/bits` as Go's netip.ParsePrefix takes it: the length is required, has no leading zeros,
 * and the address has no zone. Host bits are cleared (parsePrefix masks).
 */
function parseAllowedIp(text: string) {
  const slash = text.indexOf('/');
  if (slash < 0 || text.includes('%')) return null;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text.slice(slash + 1))) return null;
  return parsePrefix(text);
}

/** Parse a whole set body (the lines after `set=1`, up to an empty line or the end of `text`). */
export function parseSetBody(text: string): SetRequest {
  const parser = new SetBodyParser();
  for (const line of text.split('\n')) {
    if (line === '') break;
    parser.line(line);
  }
  return parser.finish();
}

// ---------------------------------------------------------------------------------------------
// test (TEST ONLY)
//
// weft's `test=1` operation reaches the packet path's test hooks (native.ts, "TEST ONLY") so the
// key-lifetime tests see 120/165/180-second and 2^60/2^64 message limits without waiting:
//
//   test=1
//   peer=<hex public key>
//   age_keypairs_ms=<decimal>      move the creation time of the peer's keypairs back
//   send_counter=<decimal < 2^64>  the current keypair's next send counter
//   (more peer= sections)
//   <empty line>
//
// Lines apply in order to the last `peer=`. The framing is always understood (so the connection
// stays in step), but a device applies it only when its hooks were enabled at start (weft-wg:
// WEFT_WG_TEST_HOOKS=1); otherwise the answer is errno=-22 and nothing changes.

export interface TestPeerOp {
  publicKey: Uint8Array;
  ageKeypairsMs?: number;
  sendCounter?: bigint;
}

export interface TestRequest {
  peers: TestPeerOp[];
}

/** What a device offers for `test=1` (TEST ONLY); UapiDevice implementations may add it. */
export interface UapiTestHooks {
  /** Apply a validated request; throw UapiError (EINVAL when hooks are disabled). */
  applyTest(request: TestRequest): void;
}

/** The native hook takes at most 10^12 ms (about 31 years). */
const MAX_TEST_AGE_MS = 1e12;

class TestBodyParser {
  #request: TestRequest = { peers: [] };
  #error: UapiError | null = null;

  line(text: string): void {
    if (this.#error) return;
    const eq = text.indexOf('=');
    if (eq < 0) {
      this.#error = new UapiError(Errno.EPROTO, `line without '=': ${quote(text)}`);
      return;
    }
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    const peer = this.#request.peers.at(-1);
    if (key === 'peer') {
      const publicKey = parseHexKey(value);
      if (!publicKey) this.#error = invalid(`invalid peer ${quote(value)}`);
      else this.#request.peers.push({ publicKey });
    } else if (!peer) {
      this.#error = invalid(`test key ${quote(key)} before any peer=`);
    } else if (key === 'age_keypairs_ms') {
      const ms = parseDecimal(value, MAX_TEST_AGE_MS);
      if (ms === null) this.#error = invalid(`invalid age_keypairs_ms ${quote(value)}`);
      else peer.ageKeypairsMs = ms;
    } else if (key === 'send_counter') {
      const counter = /^[0-9]{1,20}$/.test(value) ? BigInt(value) : null;
      if (counter === null || counter >= 1n << 64n) this.#error = invalid(`invalid send_counter ${quote(value)}`);
      else peer.sendCounter = counter;
    } else {
      this.#error = invalid(`invalid test key ${quote(key)}`);
    }
  }

  finish(): TestRequest {
    if (this.#error) throw this.#error;
    return this.#request;
  }
}

/** Parse a whole `test=1` body (the lines after `test=1`, up to an empty line or the end). */
export function parseTestBody(text: string): TestRequest {
  const parser = new TestBodyParser();
  for (const line of text.split('\n')) {
    if (line === '') break;
    parser.line(line);
  }
  return parser.finish();
}

// ---------------------------------------------------------------------------------------------
// framing

const NEWLINE = 0x0a;

/**
 * Turns the bytes of one connection, delivered in chunks split anywhere, into operations. Lines
 * are decoded as latin1 so one byte is one character and no byte sequence can throw; anything
 * outside ASCII then fails validation like any other bad value.
 */
export class UapiStreamParser {
  readonly #maxLineBytes: number;
  readonly #maxSetBytes: number;
  /** A line not yet terminated: the pieces of earlier chunks (joined once, when it completes). */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #state: 'command' | 'get' | 'stats' | 'set' | 'test' | 'closed' = 'command';
  #set: SetBodyParser | null = null;
  #test: TestBodyParser | null = null;
  #setBytes = 0;

  constructor(limits: { maxLineBytes?: number; maxSetBytes?: number } = {}) {
    this.#maxLineBytes = limits.maxLineBytes ?? MAX_LINE_BYTES;
    this.#maxSetBytes = limits.maxSetBytes ?? MAX_SET_BYTES;
  }

  /** True once a fatal error was produced; further input is ignored. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  push(chunk: Uint8Array): UapiOperation[] {
    const out: UapiOperation[] = [];
    if (this.closed) return out;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    // `closed` (a getter) rather than #state: a fatal line inside the loop changes the state.
    while (!this.closed) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl < 0) break;
      let line: string;
      if (this.#partialBytes > 0) {
        this.#partial.push(buf.subarray(start, nl));
        const joined = Buffer.concat(this.#partial, this.#partialBytes + (nl - start));
        this.#partial = [];
        this.#partialBytes = 0;
        if (joined.length > this.#maxLineBytes) {
          this.#fatalTooLong(out);
          break;
        }
        line = joined.toString('latin1');
      } else {
        if (nl - start > this.#maxLineBytes) {
          this.#fatalTooLong(out);
          break;
        }
        line = buf.toString('latin1', start, nl);
      }
      start = nl + 1;
      this.#line(line, out);
    }
    if (!this.closed && start < buf.length) {
      const rest = buf.subarray(start);
      // Copy: the caller may reuse its chunk buffer.
      this.#partial.push(Buffer.from(rest));
      this.#partialBytes += rest.length;
      if (this.#partialBytes > this.#maxLineBytes) this.#fatalTooLong(out);
    }
    return out;
  }

  /** The peer closed its side. A set cut short is not applied (it may be missing lines). */
  end(): UapiOperation[] {
    const out: UapiOperation[] = [];
    if (this.#state === 'set' || this.#state === 'test') {
      this.#fatal(out, Errno.EPROTO, `${this.#state} operation not terminated by an empty line`);
    }
    // An unterminated command or a get without its empty line gets no answer, as in wireguard-go.
    this.#state = 'closed';
    this.#partial = [];
    this.#partialBytes = 0;
    return out;
  }

  #line(line: string, out: UapiOperation[]): void {
    switch (this.#state) {
      case 'command':
        if (line === 'get=1') this.#state = 'get';
        else if (line === 'stats=1') this.#state = 'stats';
        else if (line === 'set=1') {
          this.#state = 'set';
          this.#set = new SetBodyParser();
          this.#setBytes = 0;
        } else if (line === 'test=1') {
          this.#state = 'test';
          this.#test = new TestBodyParser();
          this.#setBytes = 0;
        } else {
          // wireguard-go drops the connection without a word; we also say why (-EINVAL) first.
          this.#fatal(out, Errno.EINVAL, `invalid operation ${quote(line)}`);
        }
        return;
      case 'get':
      case 'stats': {
        const kind = this.#state;
        this.#state = 'command';
        // A get takes no arguments: anything else means the client speaks another protocol, so
        // answer once and close, as wireguard-go does, instead of reading its lines as commands.
        if (line === '') out.push({ kind });
        else this.#fatal(out, Errno.EINVAL, `trailing characters after ${kind}=1`);
        return;
      }
      case 'set': {
        const set = this.#set!;
        if (line === '') {
          this.#state = 'command';
          this.#set = null;
          try {
            out.push({ kind: 'set', request: set.finish() });
          } catch (err) {
            const e = err as UapiError;
            out.push({ kind: 'error', errno: e.errno, message: e.message, close: false });
          }
          return;
        }
        this.#setBytes += line.length + 1;
        if (this.#setBytes > this.#maxSetBytes) {
          this.#fatal(out, Errno.EIO, `set body larger than ${this.#maxSetBytes} bytes`);
          return;
        }
        set.line(line);
        return;
      }
      case 'test': {
        const test = this.#test!;
        if (line === '') {
          this.#state = 'command';
          this.#test = null;
          try {
            out.push({ kind: 'test', request: test.finish() });
          } catch (err) {
            const e = err as UapiError;
            out.push({ kind: 'error', errno: e.errno, message: e.message, close: false });
          }
          return;
        }
        this.#setBytes += line.length + 1;
        if (this.#setBytes > this.#maxLineBytes) {
          this.#fatal(out, Errno.EIO, `test body larger than ${this.#maxLineBytes} bytes`);
          return;
        }
        test.line(line);
        return;
      }
      case 'closed':
        return;
    }
  }

  // wireguard-go's line scanner fails an over-long line as a read error: -EIO.
  #fatalTooLong(out: UapiOperation[]): void {
    this.#fatal(out, Errno.EIO, `line longer than ${this.#maxLineBytes} bytes`);
  }

  #fatal(out: UapiOperation[], errno: number, message: string): void {
    out.push({ kind: 'error', errno, message, close: true });
    this.#state = 'closed';
    this.#set = null;
    this.#test = null;
    this.#partial = [];
    this.#partialBytes = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// get

/**
 * The `get` reply, wireguard-go's keys in wireguard-go's order, ending with `errno=0` and the
 * empty line, cut into strings of roughly `chunkChars` so a large reply (130k allowed IPs) is
 * neither one giant string nor one write per line.
 */
export function* formatGetReply(snapshot: DeviceSnapshot, chunkChars = 64 * 1024): Generator<string> {
  let parts: string[] = [];
  let size = 0;
  const add = (line: string): string | null => {
    parts.push(line);
    size += line.length;
    if (size < chunkChars) return null;
    const chunk = parts.join('');
    parts = [];
    size = 0;
    return chunk;
  };
  const lines = getLines(snapshot);
  for (const line of lines) {
    const chunk = add(line);
    if (chunk !== null) yield chunk;
  }
  parts.push(formatErrno(0));
  yield parts.join('');
}

function* getLines(s: DeviceSnapshot): Generator<string> {
  // Omitted when unset, like wireguard-go (which omits an all-zero key).
  if (s.privateKey && !isZero(s.privateKey)) yield `private_key=${toHex(s.privateKey)}\n`;
  if (s.listenPort !== 0) yield `listen_port=${s.listenPort}\n`;
  if (s.fwmark !== 0) yield `fwmark=${s.fwmark}\n`;
  for (const p of s.peers) {
    yield `public_key=${toHex(p.publicKey)}\n` +
      `preshared_key=${toHex(p.presharedKey)}\n` +
      'protocol_version=1\n' +
      (p.endpoint ? `endpoint=${formatEndpoint(p.endpoint)}\n` : '') +
      `last_handshake_time_sec=${p.lastHandshakeTimeSec}\n` +
      `last_handshake_time_nsec=${p.lastHandshakeTimeNsec}\n` +
      `tx_bytes=${p.txBytes}\n` +
      `rx_bytes=${p.rxBytes}\n` +
      `persistent_keepalive_interval=${p.persistentKeepaliveInterval}\n`;
    for (const prefix of p.allowedIps) yield `allowed_ip=${formatPrefix(prefix)}\n`;
  }
}

/** `1.2.3.4:51820` or `[2001:db8::1]:51820`. */
export function formatEndpoint(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** The whole `get` reply as one string (tests, small devices). */
export function formatGet(snapshot: DeviceSnapshot): string {
  return [...formatGetReply(snapshot)].join('');
}

/** The `stats=1` reply: one `name=value` line per counter, then the errno line. */
export function formatStats(counters: Record<string, number | bigint>): string {
  let out = '';
  for (const [name, value] of Object.entries(counters)) out += `${name}=${value}\n`;
  return out + formatErrno(0);
}
