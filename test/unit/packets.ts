// Packet builder, parser and checksum reference for test/unit/native-offload.test.ts.
//
// Deliberately written from the RFCs (791, 793, 768, 8200, 1071) and not from the native code, so
// the offload tests compare the packet path against an independent implementation: IPv4 (with or
// without options, DF, fragments) and IPv6 (optionally with a hop-by-hop header) carrying TCP
// (with options) or UDP, the internet checksum and the pseudo-header, the segmentation a TSO
// super-packet must be cut into, and the super-packet a run of segments coalesces into.

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMP = 1;

// ---- checksums ------------------------------------------------------------------------------------

/** Fold a 32-bit-or-wider running sum to 16 bits with end-around carry (RFC 1071). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with a
 * zero), added to `initial`, folded, not complemented.
 */
export function onesSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  return fold(sum);
}

/** The folded pseudo-header sum (RFC 793 / RFC 8200 section 8.1) for an upper-layer length. */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  // IPv6's 32-bit length and 24 zero bits + next header add up to the same 16-bit words as IPv4's
  // zero byte + protocol and 16-bit length whenever the length fits in 16 bits; writing the IPv6
  // form out keeps the reference literal.
  let sum = onesSum(src) + onesSum(dst) + protocol;
  sum += src.length === 16 ? Math.floor(length / 0x10000) + (length & 0xffff) : length;
  return fold(sum);
}

/** The value a checksum field must hold so that the covered bytes sum to 0xffff. */
export function complement(sum: number): number {
  return ~fold(sum) & 0xffff;
}

// ---- building -------------------------------------------------------------------------------------

/** The IP layer of a packet. Defaults are those of an ordinary TCP connection. */
export interface IpFields {
  family: 4 | 6;
  src: Uint8Array; // 4 or 16 bytes
  dst: Uint8Array;
  /** IPv4 TTL / IPv6 hop limit. Default 64. */
  ttl?: number;
  /** IPv4 TOS / IPv6 traffic class. Default 0. */
  tos?: number;
  /** IPv4 identification. Default 0. */
  id?: number;
  /** IPv4 don't-fragment bit. Default true. */
  df?: boolean;
  /** IPv4 more-fragments bit and fragment offset (in 8-byte units). Default none. */
  moreFragments?: boolean;
  fragmentOffset?: number;
  /** IPv4 options, a multiple of 4 bytes. */
  ipOptions?: Uint8Array;
  /** IPv6 flow label (20 bits). Default 0. */
  flowLabel?: number;
  /** IPv6: put an 8-byte hop-by-hop options header (PadN) before the upper layer. */
  hopByHop?: boolean;
}

export interface TcpSegment extends IpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** TCP options, a multiple of 4 bytes. */
  options?: Uint8Array;
  /** The low nibble of the data-offset byte: reserved bits and AccECN's AE (0x01). Default 0. */
  reserved?: number;
  payload: Uint8Array;
}

/**
 * How the transport checksum field is filled: `full` a valid checksum; `partial` the folded
 * pseudo-header sum (what the kernel leaves for CHECKSUM_PARTIAL); `corrupt` a valid checksum with
 * bits flipped; a number is written as it is.
 */
export type ChecksumMode = 'full' | 'partial' | 'corrupt' | number;

export function ipHeaderLength(ip: IpFields): number {
  return ip.family === 4 ? 20 + (ip.ipOptions?.length ?? 0) : 40 + (ip.hopByHop ? 8 : 0);
}

/** An IP packet around `upper` (an upper-layer message of `protocol`); IPv4 header checksum valid. */
export function ipPacket(ip: IpFields, protocol: number, upper: Uint8Array): Buffer {
  const hlen = ipHeaderLength(ip);
  const out = Buffer.alloc(hlen + upper.length);
  if (ip.family === 4) {
    const options = ip.ipOptions ?? new Uint8Array();
    if (options.length % 4 !== 0) throw new Error('IPv4 options must be a multiple of 4 bytes');
    out[0] = 0x40 | (hlen / 4);
    out[1] = ip.tos ?? 0;
    out.writeUInt16BE(out.length, 2);
    out.writeUInt16BE((ip.id ?? 0) & 0xffff, 4);
    const fragment = ((ip.df ?? true) ? 0x4000 : 0) | (ip.moreFragments ? 0x2000 : 0) | (ip.fragmentOffset ?? 0);
    out.writeUInt16BE(fragment, 6);
    out[8] = ip.ttl ?? 64;
    out[9] = protocol;
    out.set(ip.src, 12);
    out.set(ip.dst, 16);
    out.set(options, 20);
    out.writeUInt16BE(complement(onesSum(out.subarray(0, hlen))), 10);
  } else {
    const tc = ip.tos ?? 0;
    out.writeUInt32BE(((6 << 28) | (tc << 20) | (ip.flowLabel ?? 0)) >>> 0, 0);
    out.writeUInt16BE(out.length - 40, 4);
    out[6] = ip.hopByHop ? 0 : protocol;
    out[7] = ip.ttl ?? 64;
    out.set(ip.src, 8);
    out.set(ip.dst, 24);
    if (ip.hopByHop) {
      // Next header, length 0 (8 bytes), then a PadN option filling the remaining 6 bytes.
      out.set([protocol, 0, 1, 4, 0, 0, 0, 0], 40);
    }
  }
  out.set(upper, hlen);
  return out;
}

function fillChecksum(packet: Buffer, ip: IpFields, protocol: number, at: number, mode: ChecksumMode): void {
  const hlen = ipHeaderLength(ip);
  const upper = packet.subarray(hlen);
  const pseudo = pseudoHeaderSum(ip.src, ip.dst, protocol, upper.length);
  let value: number;
  if (typeof mode === 'number') value = mode;
  else if (mode === 'partial') value = pseudo;
  else {
    upper.writeUInt16BE(0, at);
    value = complement(onesSum(upper, pseudo));
    if (protocol === PROTO_UDP && value === 0) value = 0xffff; // RFC 768: 0 means "no checksum"
    if (mode === 'corrupt') value ^= 0x5a5a;
  }
  upper.writeUInt16BE(value, at);
}

export function tcpHeaderLength(seg: TcpSegment): number {
  return 20 + (seg.options?.length ?? 0);
}

/** A TCP packet; urgent pointer 0. */
export function tcpPacket(seg: TcpSegment, checksum: ChecksumMode = 'full'): Buffer {
  const options = seg.options ?? new Uint8Array();
  if (options.length % 4 !== 0) throw new Error('TCP options must be a multiple of 4 bytes');
  const thlen = 20 + options.length;
  const tcp = Buffer.alloc(thlen + seg.payload.length);
  tcp.writeUInt16BE(seg.sport, 0);
  tcp.writeUInt16BE(seg.dport, 2);
  tcp.writeUInt32BE(seg.seq >>> 0, 4);
  tcp.writeUInt32BE(seg.ack >>> 0, 8);
  tcp[12] = ((thlen / 4) << 4) | ((seg.reserved ?? 0) & 0x0f);
  tcp[13] = seg.flags;
  tcp.writeUInt16BE(seg.window, 14);
  tcp.set(options, 20);
  tcp.set(seg.payload, thlen);
  const packet = ipPacket(seg, PROTO_TCP, tcp);
  fillChecksum(packet, seg, PROTO_TCP, 16, checksum);
  return packet;
}

export function udpPacket(
  ip: IpFields,
  sport: number,
  dport: number,
  payload: Uint8Array,
  checksum: ChecksumMode = 'full',
): Buffer {
  const udp = Buffer.alloc(8 + payload.length);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(udp.length, 4);
  udp.set(payload, 8);
  const packet = ipPacket(ip, PROTO_UDP, udp);
  fillChecksum(packet, ip, PROTO_UDP, 6, checksum);
  return packet;
}

/** An ICMP (IPv4) echo request; its checksum covers the message only. */
export function icmpEcho(ip: IpFields, ident: number, sequence: number, payload: Uint8Array): Buffer {
  const icmp = Buffer.alloc(8 + payload.length);
  icmp[0] = 8;
  icmp.writeUInt16BE(ident, 4);
  icmp.writeUInt16BE(sequence, 6);
  icmp.set(payload, 8);
  icmp.writeUInt16BE(complement(onesSum(icmp)), 2);
  return ipPacket(ip, PROTO_ICMP, icmp);
}

/** NOP, NOP, timestamp (kind 8, length 10): the options Linux puts on every established segment. */
export function timestampOption(tsval: number, tsecr: number): Uint8Array {
  const o = Buffer.alloc(12);
  o[0] = 1;
  o[1] = 1;
  o[2] = 8;
  o[3] = 10;
  o.writeUInt32BE(tsval >>> 0, 4);
  o.writeUInt32BE(tsecr >>> 0, 8);
  return o;
}

// ---- reference segmentation and coalescing --------------------------------------------------------

/**
 * What a TSO super-packet must become, segment by segment: payload cut into `gsoSize` chunks, seq
 * advanced by the bytes before each chunk, IPv4 ID advanced by one per segment (both wrapping),
 * FIN and PSH only on the last segment, CWR only on the first, everything else copied.
 */
export function referenceSegments(superSeg: TcpSegment, gsoSize: number): TcpSegment[] {
  const out: TcpSegment[] = [];
  const total = superSeg.payload.length;
  const count = Math.max(1, Math.ceil(total / gsoSize));
  for (let i = 0; i < count; i++) {
    const first = i === 0;
    const last = i === count - 1;
    let flags = superSeg.flags & ~(FIN | PSH | CWR);
    if (last) flags |= superSeg.flags & (FIN | PSH);
    if (first) flags |= superSeg.flags & CWR;
    out.push({
      ...superSeg,
      id: ((superSeg.id ?? 0) + i) & 0xffff,
      seq: (superSeg.seq + i * gsoSize) >>> 0,
      flags,
      payload: superSeg.payload.subarray(i * gsoSize, Math.min(total, (i + 1) * gsoSize)),
    });
  }
  return out;
}

/**
 * The super-packet a run of coalescable segments becomes: the first segment's headers, every
 * payload in order, PSH added when the last segment had it, the checksum in CHECKSUM_PARTIAL form.
 */
export function referenceSuperPacket(segs: readonly TcpSegment[]): Buffer {
  const first = segs[0]!;
  const lastPsh = segs[segs.length - 1]!.flags & PSH;
  return tcpPacket(
    { ...first, flags: first.flags | lastPsh, payload: Buffer.concat(segs.map((s) => s.payload)) },
    'partial',
  );
}

// ---- parsing --------------------------------------------------------------------------------------

/** The fields of a TCP packet the tests look at, read straight from the bytes. */
export interface TcpView {
  family: 4 | 6;
  /** version, addresses and ports: identifies the connection direction. */
  flowKey: string;
  ipHeaderLength: number;
  tcpHeaderLength: number;
  id: number; // IPv4 only (0 for IPv6)
  seq: number;
  ack: number;
  flags: number;
  window: number;
  options: Buffer;
  payload: Buffer;
  /** IPv4 header checksum verifies (always true for IPv6). */
  ipChecksumOk: boolean;
  /** The TCP checksum verifies over the pseudo-header and the whole segment. */
  tcpChecksumOk: boolean;
  /** The TCP checksum field holds the folded pseudo-header sum (CHECKSUM_PARTIAL form). */
  tcpChecksumPartial: boolean;
}

/**
 * Parse an IPv4 or IPv6 packet carrying TCP directly (no IPv6 extension headers). Lengths come
 * from the IP header. Null for anything else or anything truncated.
 */
export function parseTcp(packet: Uint8Array): TcpView | null {
  const b = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  if (b.length < 1) return null;
  const version = b[0]! >> 4;
  let hlen: number;
  let totalLength: number;
  let src: Buffer;
  let dst: Buffer;
  let id = 0;
  let ipChecksumOk = true;
  if (version === 4) {
    if (b.length < 20) return null;
    hlen = (b[0]! & 0x0f) * 4;
    totalLength = b.readUInt16BE(2);
    if (hlen < 20 || b[9] !== PROTO_TCP || totalLength > b.length || totalLength < hlen) return null;
    id = b.readUInt16BE(4);
    src = b.subarray(12, 16);
    dst = b.subarray(16, 20);
    ipChecksumOk = onesSum(b.subarray(0, hlen)) === 0xffff;
  } else if (version === 6) {
    if (b.length < 40 || b[6] !== PROTO_TCP) return null;
    hlen = 40;
    totalLength = 40 + b.readUInt16BE(4);
    if (totalLength > b.length) return null;
    src = b.subarray(8, 24);
    dst = b.subarray(24, 40);
  } else {
    return null;
  }
  const tcp = b.subarray(hlen, totalLength);
  if (tcp.length < 20) return null;
  const thlen = (tcp[12]! >> 4) * 4;
  if (thlen < 20 || thlen > tcp.length) return null;
  const pseudo = pseudoHeaderSum(src, dst, PROTO_TCP, tcp.length);
  const sport = tcp.readUInt16BE(0);
  const dport = tcp.readUInt16BE(2);
  return {
    family: version === 4 ? 4 : 6,
    flowKey: `${version} ${src.toString('hex')}:${sport} ${dst.toString('hex')}:${dport}`,
    ipHeaderLength: hlen,
    tcpHeaderLength: thlen,
    id,
    seq: tcp.readUInt32BE(4),
    ack: tcp.readUInt32BE(8),
    flags: tcp[13]!,
    window: tcp.readUInt16BE(14),
    options: tcp.subarray(20, thlen),
    payload: tcp.subarray(thlen),
    ipChecksumOk,
    tcpChecksumOk: onesSum(tcp, pseudo) === 0xffff,
    tcpChecksumPartial: tcp.readUInt16BE(16) === pseudo,
  };
}

const FLAG_NAMES: [number, string][] = [
  [CWR, 'CWR'],
  [ECE, 'ECE'],
  [URG, 'URG'],
  [ACK, 'ACK'],
  [PSH, 'PSH'],
  [RST, 'RST'],
  [SYN, 'SYN'],
  [FIN, 'FIN'],
];

/** One line about a packet for failure messages: enough to see which field went wrong. */
export function describePacket(packet: Uint8Array): string {
  const t = parseTcp(packet);
  if (!t) {
    const head = Buffer.from(packet.subarray(0, 48)).toString('hex');
    return `non-TCP ${packet.length} bytes ${head}${packet.length > 48 ? '...' : ''}`;
  }
  const flags = FLAG_NAMES.filter(([bit]) => t.flags & bit).map(([, name]) => name).join('|') || '0';
  const ip = t.family === 4 ? `IPv4 id=${t.id} ipcsum=${t.ipChecksumOk ? 'ok' : 'BAD'}` : 'IPv6';
  const csum = t.tcpChecksumOk ? 'ok' : t.tcpChecksumPartial ? 'partial' : 'BAD';
  return (
    `${ip} len=${packet.length} TCP seq=${t.seq} ack=${t.ack} flags=${flags} win=${t.window} ` +
    `opts=${t.options.toString('hex') || '-'} payload=${t.payload.length} csum=${csum}`
  );
}
