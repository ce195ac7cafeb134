// IPv4 CIDR arithmetic on plain numbers. An address is an unsigned 32-bit value held in a JS
// number (0 .. 2^32-1, always exact in a double); a CIDR is its network address and length. Sizes
// and ends are computed with multiplication, never with `<<`, so /0 and 255.x.x.x never go
// negative.
//
// Parsing is strict on purpose: configuration and peer announcements are the only inputs, and a
// silently "fixed" 10.0.0.1/16 or 010.0.0.0/16 would hide a mistake that surfaces much later as a
// routing collision.
import { parseAddress } from '../wireguard/prefix.ts';
import { IpamError } from './errors.ts';

export interface Cidr {
  /** Network address as an unsigned 32-bit number; host bits are zero. */
  readonly start: number;
  /** Prefix length, 0..32. */
  readonly bits: number;
}

const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const LENGTH = /^(?:0|[1-9]\d?)$/;

function rejectIPv6(text: string, what: string): void {
  const addrText = text.includes('/') ? text.slice(0, text.indexOf('/')) : text;
  if (text.includes(':') && parseAddress(addrText)?.family === 6) {
    throw new IpamError('Unsupported', `${what} ${JSON.stringify(text)} is IPv6; IPAM supports IPv4 only`);
  }
}

/** Parse a dotted-quad IPv4 address. No leading zeros, no whitespace, exactly four octets. */
export function parseIPv4(text: unknown, what = 'address'): number {
  if (typeof text !== 'string') throw new IpamError('InvalidCIDR', `${what} must be a string, got ${typeof text}`);
  rejectIPv6(text, what);
  const parts = text.split('.');
  if (parts.length !== 4) {
    throw new IpamError('InvalidCIDR', `${what} ${JSON.stringify(text)} is not an IPv4 address (expected four dot-separated octets)`);
  }
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part) || Number(part) > 255) {
      const why = /^0\d+$/.test(part) ? 'leading zeros are ambiguous' : 'each octet must be 0-255';
      throw new IpamError('InvalidCIDR', `${what} ${JSON.stringify(text)} is not an IPv4 address (${why})`);
    }
    value = value * 256 + Number(part);
  }
  return value;
}

export function formatIPv4(value: number): string {
  return `${Math.floor(value / 2 ** 24) % 256}.${Math.floor(value / 2 ** 16) % 256}.${Math.floor(value / 2 ** 8) % 256}.${value % 256}`;
}

/**
 * Parse "a.b.c.d/len" strictly: the length is required, and the address must be the network
 * address (host bits set is an error naming the network that was probably meant).
 */
export function parseCidr(text: unknown, what = 'CIDR'): Cidr {
  if (typeof text !== 'string') throw new IpamError('InvalidCIDR', `${what} must be a string, got ${text === null ? 'null' : typeof text}`);
  rejectIPv6(text, what);
  const slash = text.indexOf('/');
  if (slash < 0) {
    throw new IpamError('InvalidCIDR', `${what} ${JSON.stringify(text)} has no prefix length (expected a.b.c.d/len)`);
  }
  const lenText = text.slice(slash + 1);
  if (!LENGTH.test(lenText) || Number(lenText) > 32) {
    throw new IpamError('InvalidCIDR', `${what} ${JSON.stringify(text)} has an invalid prefix length (expected 0-32)`);
  }
  const bits = Number(lenText);
  const address = parseIPv4(text.slice(0, slash), what);
  const size = blockSize(bits);
  const start = address - (address % size);
  if (start !== address) {
    throw new IpamError(
      'InvalidCIDR',
      `${what} ${JSON.stringify(text)} has host bits set; the network address is ${formatCidr({ start, bits })}`,
    );
  }
  return { start, bits };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.start)}/${cidr.bits}`;
}

/** Number of addresses in a block of prefix length `bits`. */
export function blockSize(bits: number): number {
  return 2 ** (32 - bits);
}

export function cidrSize(cidr: Cidr): number {
  return blockSize(cidr.bits);
}

/** Last address of the block. */
export function cidrLast(cidr: Cidr): number {
  return cidr.start + cidrSize(cidr) - 1;
}

export function sameCidr(a: Cidr, b: Cidr): boolean {
  return a.start === b.start && a.bits === b.bits;
}

/** Whether `inner` lies entirely inside `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.start >= outer.start && cidrLast(inner) <= cidrLast(outer);
}

export function containsAddress(cidr: Cidr, address: number): boolean {
  return address >= cidr.start && address <= cidrLast(cidr);
}

/** Whether two blocks share at least one address (for CIDRs: one contains the other). */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.start <= cidrLast(b) && b.start <= cidrLast(a);
}

/** Smallest multiple of `size` that is >= `value`. */
function alignUp(value: number, size: number): number {
  return Math.ceil(value / size) * size;
}

/**
 * The lowest block of prefix length `bits` inside `pool` that overlaps none of `taken`, or null.
 * Blocks are aligned to their own size, so the answer is always a valid CIDR.
 *
 * Runs in O(n log n) for n taken ranges, independent of how many candidate blocks the pool holds:
 * the taken ranges are merged into disjoint sorted intervals and the candidate jumps past each
 * interval it hits.
 */
export function firstFreeBlock(pool: Cidr, bits: number, taken: readonly Cidr[]): Cidr | null {
  if (!Number.isInteger(bits) || bits < pool.bits || bits > 32) return null;
  const size = blockSize(bits);
  const poolLast = cidrLast(pool);
  const intervals = mergeIntervals(taken.filter((t) => overlaps(t, pool)));
  let candidate = pool.start;
  let i = 0;
  while (candidate + size - 1 <= poolLast) {
    while (i < intervals.length && intervals[i]!.last < candidate) i++;
    const next = intervals[i];
    if (next === undefined || next.first > candidate + size - 1) return { start: candidate, bits };
    candidate = alignUp(next.last + 1, size);
  }
  return null;
}

interface Interval {
  first: number;
  last: number;
}

/** Sort and merge into disjoint intervals with strictly increasing starts and ends. */
function mergeIntervals(blocks: readonly Cidr[]): Interval[] {
  const sorted = blocks.map((b) => ({ first: b.start, last: cidrLast(b) })).sort((a, b) => a.first - b.first);
  const out: Interval[] = [];
  for (const iv of sorted) {
    const prev = out[out.length - 1];
    if (prev && iv.first <= prev.last + 1) prev.last = Math.max(prev.last, iv.last);
    else out.push({ ...iv });
  }
  return out;
}

/** Ranges no allocation may ever use and no peer may announce. */
export const SPECIAL_RANGES: ReadonlyArray<{ cidr: Cidr; what: string }> = [
  { cidr: { start: 0, bits: 8 }, what: '"this network" range 0.0.0.0/8' },
  { cidr: { start: 127 * 2 ** 24, bits: 8 }, what: 'loopback range 127.0.0.0/8' },
  { cidr: { start: 169 * 2 ** 24 + 254 * 2 ** 16, bits: 16 }, what: 'link-local range 169.254.0.0/16' },
  { cidr: { start: 224 * 2 ** 24, bits: 4 }, what: 'multicast range 224.0.0.0/4' },
  { cidr: { start: 240 * 2 ** 24, bits: 4 }, what: 'reserved range 240.0.0.0/4 (includes broadcast)' },
];

/** The special range `cidr` touches, if any. */
export function specialRangeOverlapping(cidr: Cidr): string | undefined {
  return SPECIAL_RANGES.find((s) => overlaps(s.cidr, cidr))?.what;
}
