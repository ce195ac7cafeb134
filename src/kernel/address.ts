// Canonical text forms of IP addresses and prefixes, so desired state and what `ip -j` prints compare
// equal: "10.1.2.3" (a host route as iproute2 prints it) is "10.1.2.3/32", "default" is "0.0.0.0/0",
// IPv6 is RFC 5952 ("fd00:0::1/64" → "fd00::1/64").
import { formatAddress, maskBytes, parseAddress } from '../wireguard/prefix.ts';
import { KernelStateError } from './types.ts';

export type Family = 4 | 6;

const DOTTED = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function familyOf(address: string): Family | null {
  if (DOTTED.test(address)) return 4;
  return parseAddress(address)?.family === 6 ? 6 : null;
}

/** Canonical form of an address, or null when it is not an IPv4/IPv6 literal. */
export function canonicalAddress(text: string): string | null {
  if (DOTTED.test(text)) return text; // already canonical: the regexp forbids leading zeros
  const a = parseAddress(text);
  return a ? formatAddress(a.family, a.bytes) : null;
}

export interface ParsedPrefix {
  family: Family;
  /** Canonical "address/len". */
  text: string;
}

/**
 * Parse a prefix as iproute2 prints it or as a controller writes it: "a.b.c.d/len", a bare address
 * (host prefix) or "default". With `network`, host bits must be zero (a route/rule destination);
 * without it they are kept (an interface address). Null when malformed or when host bits are set.
 */
export function parsePrefixText(text: string, network: boolean, familyHint: Family = 4): ParsedPrefix | null {
  const v4 = IPV4_PREFIX.exec(text);
  if (v4) return parseIPv4Prefix(v4, network);
  if (text === 'default') return familyHint === 4 ? { family: 4, text: '0.0.0.0/0' } : { family: 6, text: '::/0' };
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddress(addrText);
  if (!a || (a.family === 4 && !DOTTED.test(addrText))) return null;
  const max = a.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^(?:0|[1-9]\d{0,2})$/.test(lenText)) return null;
    bits = Number(lenText);
    if (bits > max) return null;
  }
  if (network) {
    const masked = maskBytes(a.bytes, bits);
    if (!masked.every((b, i) => b === a.bytes[i])) return null;
  }
  return { family: a.family, text: `${formatAddress(a.family, a.bytes)}/${bits}` };
}

const IPV4_PREFIX = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

// The common case, without building byte arrays (route dumps hold tens of thousands of these).
function parseIPv4Prefix(m: RegExpExecArray, network: boolean): ParsedPrefix | null {
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const o = m[i]!;
    if ((o.length > 1 && o[0] === '0') || Number(o) > 255) return null;
    value = value * 256 + Number(o);
  }
  const bits = m[5] === undefined ? 32 : Number(m[5]);
  if (bits > 32 || (m[5] !== undefined && m[5].length > 1 && m[5][0] === '0')) return null;
  if (network && value % 2 ** (32 - bits) !== 0) return null;
  return { family: 4, text: `${m[1]}.${m[2]}.${m[3]}.${m[4]}/${bits}` };
}

/** Strict network prefix for desired state; throws a KernelStateError naming `what`. */
export function requireNetwork(text: unknown, what: string): ParsedPrefix {
  if (typeof text !== 'string') throw new KernelStateError(`${what} must be a CIDR string, got ${typeof text}`);
  const p = parsePrefixText(text, true);
  if (p) return p;
  const loose = parsePrefixText(text, false);
  if (loose) {
    const a = parseAddress(text.slice(0, text.indexOf('/')))!;
    const bits = Number(text.slice(text.indexOf('/') + 1));
    const net = `${formatAddress(a.family, maskBytes(a.bytes, bits))}/${bits}`;
    throw new KernelStateError(`${what} ${JSON.stringify(text)} has host bits set; the network is ${net}`);
  }
  throw new KernelStateError(`${what} ${JSON.stringify(text)} is not a CIDR (expected a.b.c.d/len or an IPv6 prefix)`);
}

/** Interface address "addr/len" (host bits are the point); the length is required. */
export function requireInterfaceAddress(text: unknown, what: string): ParsedPrefix {
  if (typeof text !== 'string' || !text.includes('/')) {
    throw new KernelStateError(`${what} ${JSON.stringify(text)} must be an address with a prefix length, e.g. 100.126.100.11/24`);
  }
  const p = parsePrefixText(text, false);
  if (!p) throw new KernelStateError(`${what} ${JSON.stringify(text)} is not an address/length`);
  return p;
}

export function requireAddress(text: unknown, what: string): { family: Family; text: string } {
  const c = typeof text === 'string' ? canonicalAddress(text) : null;
  if (c === null) throw new KernelStateError(`${what} ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  return { family: familyOf(c)!, text: c };
}
