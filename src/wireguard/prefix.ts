// IP prefixes as WireGuard's allowed IPs use them: family, length, and the address bytes with the
// host bits cleared (the kernel and wireguard-go both store the masked form, and `wg` shows it).
import net from 'node:net';

export interface Prefix {
  family: 4 | 6;
  bits: number;
  /** 4 bytes for IPv4, 16 for IPv6, host bits zero. */
  bytes: Uint8Array;
}

/** Parse an address into its bytes; null when it is not an IPv4 or IPv6 literal. */
export function parseAddress(text: string): { family: 4 | 6; bytes: Uint8Array } | null {
  const kind = net.isIP(text);
  if (kind === 4) {
    const parts = text.split('.').map(Number);
    return { family: 4, bytes: Uint8Array.from(parts) };
  }
  if (kind === 6) {
    // Let the socket layer normalise "::ffff:1.2.3.4", "::" and friends through SocketAddress.
    const sa = new net.SocketAddress({ address: text, family: 'ipv6' });
    const words = expandIPv6(sa.address);
    if (!words) return null;
    const bytes = new Uint8Array(16);
    words.forEach((w, i) => {
      bytes[2 * i] = w >> 8;
      bytes[2 * i + 1] = w & 0xff;
    });
    return { family: 6, bytes };
  }
  return null;
}

function expandIPv6(text: string): number[] | null {
  let head = text;
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = text.slice(lastColon + 1).split('.').map(Number);
    tailV4 = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1) + (text.endsWith('::' + text.slice(lastColon + 1)) ? '' : '0');
    if (head.endsWith(':0')) head = head.slice(0, -2);
  }
  const want = 8 - tailV4.length;
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? want - left.length - right.length : 0;
  const words = [...left, ...new Array<number>(Math.max(fill, 0)).fill(0), ...right, ...tailV4];
  return words.length === 8 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff) ? words : null;
}

/** Format address bytes the way `wg` prints them (dotted quad, or RFC 5952 IPv6). */
export function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (length >= 2) of zero words, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** Clear the host bits of `bytes` beyond `bits` (returns a new array). */
export function maskBytes(bytes: Uint8Array, bits: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i]! &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/** Parse "addr/len" (or a bare address, meaning a host prefix). Null when malformed. */
export function parsePrefix(text: string): Prefix | null {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseAddress(addrText);
  if (!addr) return null;
  const max = addr.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText)) return null;
    bits = Number(lenText);
    if (bits > max) return null;
  }
  return { family: addr.family, bits, bytes: maskBytes(addr.bytes, bits) };
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.bytes)}/${p.bits}`;
}

export function prefixKey(p: Prefix): string {
  return `${p.family}|${p.bits}|${Buffer.from(p.bytes).toString('hex')}`;
}
