// TUN offloads of the packet path (native offload.cc through gsoSplit/groCoalesce).
//
// With IFF_VNET_HDR and TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) a TUN read is a
// virtio_net_hdr plus a packet that may be a TCP super-packet of up to 64 KiB with its checksum
// left as the pseudo-header sum (CHECKSUM_PARTIAL). gsoSplit is what the device encrypts from one
// such read: MTU-sized segments with complete headers and checksums. groCoalesce is the way back:
// decrypted segments of one flow merged into one super-packet with a virtio_net_hdr for the
// kernel to take as GRO'd.
//
// Everything is checked against test/unit/packets.ts, an independent reference written from the
// RFCs: exact bytes for hand-picked cases (sizes, flags, options, wrap-arounds, the 65535 limit,
// malformed input, each reason two segments must not merge), then seeded random batches whose
// coalesced output must split back into exactly the segments that went in.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { native, type NativeModule, type VnetHeader } from '../../src/wireguard/native.ts';
import { addressOf, xorshiftRandom } from './helpers.ts';
import {
  ACK,
  CWR,
  ECE,
  FIN,
  PSH,
  RST,
  SYN,
  URG,
  complement,
  describePacket,
  icmpEcho,
  ipHeaderLength,
  ipPacket,
  onesSum,
  parseTcp,
  pseudoHeaderSum,
  referenceSegments,
  referenceSuperPacket,
  tcpHeaderLength,
  tcpPacket,
  timestampOption,
  udpPacket,
  type IpFields,
  type TcpSegment,
} from './packets.ts';

// ---- the native contract (src/wireguard/native.ts) ------------------------------------------------

type Offload = Pick<NativeModule, 'gsoSplit' | 'groCoalesce'>;

const NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;
const ZERO_HEADER: VnetHeader = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };

// Looked up at call time so that an addon built before offload.cc existed fails each test with
// this message instead of a TypeError (and nothing is skipped).
function offload(): Offload {
  const mod: Partial<Offload> = native();
  assert.equal(typeof mod.gsoSplit, 'function', 'native().gsoSplit is missing: run npm run build:native');
  assert.equal(typeof mod.groCoalesce, 'function', 'native().groCoalesce is missing: run npm run build:native');
  return mod as Offload;
}

/** gsoSplit, checking that it leaves its input alone (the contract returns copies). */
function split(header: VnetHeader, packet: Buffer): Buffer[] | null {
  const before = Buffer.from(packet);
  const out = offload().gsoSplit({ ...header }, packet);
  assert.ok(packet.equals(before), 'gsoSplit modified its input packet');
  return out;
}

interface Item {
  header: VnetHeader;
  packet: Buffer;
}

/** groCoalesce with its output normalised to exactly the six header fields and Buffers. */
function coalesce(packets: Buffer[], options?: { refuseMerged?: boolean }): Item[] {
  const before = packets.map((p) => Buffer.from(p));
  const out = offload().groCoalesce(packets, options);
  packets.forEach((p, i) => assert.ok(p.equals(before[i]!), `groCoalesce modified input packet ${i}`));
  return out.map(({ header, packet }) => ({
    header: {
      flags: header.flags,
      gsoType: header.gsoType,
      hdrLen: header.hdrLen,
      gsoSize: header.gsoSize,
      csumStart: header.csumStart,
      csumOffset: header.csumOffset,
    },
    packet: Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength),
  }));
}

// ---- building blocks ------------------------------------------------------------------------------

const [, A4] = addressOf('10.1.0.1');
const [, B4] = addressOf('10.2.0.7');
const [, A6] = addressOf('fd00:1::1');
const [, B6] = addressOf('fd00:2::7');

/**
 * Payload bytes as a function of the stream position (seq) and a per-flow tag, so consecutive
 * segments carry consecutive bytes and a payload in the wrong place shows in the checksum.
 */
function streamBytes(seq: number, length: number, tag = 0): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (Math.imul((seq + i) >>> 0, 0x9e3779b1) >>> 24) ^ tag;
  return out;
}

/** An established-connection IPv4 segment (timestamps on, DF set); fields overridable. */
function seg4(over: Partial<TcpSegment> = {}): TcpSegment {
  const seq = over.seq ?? 1_000_000;
  return {
    family: 4,
    src: A4,
    dst: B4,
    id: 0x1234,
    ttl: 64,
    sport: 43_210,
    dport: 443,
    seq,
    ack: 77_777,
    flags: ACK,
    window: 502,
    options: timestampOption(1000, 2000),
    payload: streamBytes(seq, over.payload?.length ?? 1448),
    ...over,
  };
}

function seg6(over: Partial<TcpSegment> = {}): TcpSegment {
  const seq = over.seq ?? 2_000_000;
  return {
    family: 6,
    src: A6,
    dst: B6,
    ttl: 64,
    flowLabel: 0xabcde,
    sport: 43_211,
    dport: 443,
    seq,
    ack: 88_888,
    flags: ACK,
    window: 502,
    options: timestampOption(3000, 4000),
    payload: streamBytes(seq, over.payload?.length ?? 1428),
    ...over,
  };
}

/** The segment that follows `prev` on the wire: next seq, next IPv4 ID, same size, plain ACK. */
function next(prev: TcpSegment, over: Partial<TcpSegment> = {}): TcpSegment {
  const seq = over.seq ?? (prev.seq + prev.payload.length) >>> 0;
  return {
    ...prev,
    seq,
    id: ((prev.id ?? 0) + 1) & 0xffff,
    flags: ACK,
    payload: streamBytes(seq, over.payload?.length ?? prev.payload.length),
    ...over,
  };
}

/** `count` back-to-back segments starting with `first`. */
function run(first: TcpSegment, count: number): TcpSegment[] {
  const out = [first];
  while (out.length < count) out.push(next(out[out.length - 1]!));
  return out;
}

function payloadOf(length: number, tag = 0): Buffer {
  return streamBytes(12_345, length, tag);
}

/** The virtio_net_hdr the kernel puts on a TSO super-packet made of `seg`. */
function tsoHeader(seg: TcpSegment, gsoSize: number): VnetHeader {
  const ipLen = ipHeaderLength(seg);
  return {
    flags: NEEDS_CSUM,
    gsoType: seg.family === 4 ? GSO_TCPV4 : GSO_TCPV6,
    hdrLen: ipLen + tcpHeaderLength(seg),
    gsoSize,
    csumStart: ipLen,
    csumOffset: 16,
  };
}

/** What groCoalesce must write for a run of two or more coalescable segments. */
function merged(segs: TcpSegment[]): Item {
  const first = segs[0]!;
  assert.ok(segs.length >= 2, 'a merged item needs two segments');
  return { header: tsoHeader(first, first.payload.length), packet: referenceSuperPacket(segs) };
}

/** What groCoalesce must write for a packet left on its own: no offload, the input bytes. */
function single(packet: Buffer): Item {
  return { header: ZERO_HEADER, packet };
}

function headerText(h: VnetHeader): string {
  return `{flags ${h.flags} type ${h.gsoType} hdrLen ${h.hdrLen} gso ${h.gsoSize} csum ${h.csumStart}+${h.csumOffset}}`;
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/**
 * Equal lists of packets or items, or a failure that lists both sides decoded, marking the entries
 * that differ and the first differing byte, so a mismatch reads as "which field", not as 64 KiB of
 * hex.
 */
function assertSameList<T>(
  what: string,
  actual: readonly T[],
  expected: readonly T[],
  same: (a: T, b: T) => boolean,
  text: (x: T) => string,
  bytes: (x: T) => Buffer,
): void {
  const bad = new Set<number>();
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === undefined || e === undefined || !same(a, e)) bad.add(i);
  }
  if (bad.size === 0) return;
  // Only the entries that differ, each with the one before it for context.
  const lines = [`${what}: got ${actual.length} entries, expected ${expected.length}; ${bad.size} differ`];
  for (let i = 0; i < Math.max(actual.length, expected.length) && lines.length < 30; i++) {
    if (!bad.has(i) && !bad.has(i + 1)) continue;
    const a = actual[i];
    const e = expected[i];
    if (!bad.has(i)) {
      lines.push(`   [${i}] same     ${a === undefined ? '-' : text(a)}`);
      continue;
    }
    const at = a !== undefined && e !== undefined ? ` (first byte difference at ${firstDifference(bytes(a), bytes(e))})` : '';
    lines.push(`!! [${i}] got      ${a === undefined ? '-' : text(a)}${at}`);
    lines.push(`!! [${i}] expected ${e === undefined ? '-' : text(e)}`);
  }
  assert.fail(lines.join('\n'));
}

function assertPackets(what: string, actual: Buffer[] | null, expected: Buffer[]): void {
  assert.ok(actual !== null, `${what}: gsoSplit returned null for a valid input`);
  assertSameList(what, actual, expected, (a, b) => a.equals(b), describePacket, (p) => p);
}

/** A refusal, or a failure naming what came back instead (not 64 KiB of array dump). */
function assertNull(what: string, actual: Buffer[] | null): void {
  if (actual === null) return;
  assert.fail(`${what}: expected null, got ${actual.length} packets:\n${actual.slice(0, 5).map(describePacket).join('\n')}`);
}

function sameHeader(a: VnetHeader, b: VnetHeader): boolean {
  return (
    a.flags === b.flags &&
    a.gsoType === b.gsoType &&
    a.hdrLen === b.hdrLen &&
    a.gsoSize === b.gsoSize &&
    a.csumStart === b.csumStart &&
    a.csumOffset === b.csumOffset
  );
}

function sameItem(a: Item, b: Item): boolean {
  return sameHeader(a.header, b.header) && a.packet.equals(b.packet);
}

function assertItems(what: string, actual: Item[], expected: Item[]): void {
  assertSameList(
    what,
    actual,
    expected,
    sameItem,
    (x) => `${headerText(x.header)} ${describePacket(x.packet)}`,
    (x) => x.packet,
  );
}

/** Recompute the IPv4 header checksum after a test edits the header on purpose. */
function fixIpv4Checksum(packet: Buffer): Buffer {
  const hlen = (packet[0]! & 0x0f) * 4;
  packet.writeUInt16BE(0, 10);
  packet.writeUInt16BE(complement(onesSum(packet.subarray(0, hlen))), 10);
  return packet;
}

// ---- gsoSplit: segmentation -----------------------------------------------------------------------

describe('gsoSplit cuts TSO super-packets like the reference segmentation', () => {
  // `count` is stated by hand so that the reference segmentation is itself checked.
  const cases: { name: string; seg: TcpSegment; gsoSize: number; count: number }[] = [
    { name: 'IPv4, payload not a multiple of gsoSize', seg: seg4({ payload: payloadOf(3000) }), gsoSize: 1448, count: 3 },
    { name: 'IPv6, payload not a multiple of gsoSize', seg: seg6({ payload: payloadOf(5000) }), gsoSize: 1428, count: 4 },
    { name: 'IPv4, payload an exact multiple of gsoSize', seg: seg4({ payload: payloadOf(4344) }), gsoSize: 1448, count: 3 },
    { name: 'payload exactly gsoSize: one segment', seg: seg4({ payload: payloadOf(1448) }), gsoSize: 1448, count: 1 },
    { name: 'payload below gsoSize: one segment', seg: seg6({ payload: payloadOf(100) }), gsoSize: 1428, count: 1 },
    { name: 'payload of 1 byte', seg: seg4({ payload: payloadOf(1) }), gsoSize: 1448, count: 1 },
    { name: 'gsoSize 1 with a 7-byte payload', seg: seg4({ payload: payloadOf(7) }), gsoSize: 1, count: 7 },
    { name: 'IPv6, gsoSize 1 with a 5-byte payload', seg: seg6({ payload: payloadOf(5) }), gsoSize: 1, count: 5 },
    { name: 'odd gsoSize (checksums over odd lengths)', seg: seg4({ payload: payloadOf(1000) }), gsoSize: 333, count: 4 },
    { name: 'without TCP options', seg: seg4({ options: undefined, payload: payloadOf(3000) }), gsoSize: 1460, count: 3 },
    {
      name: 'largest IPv4 packet (65535 bytes, timestamps)',
      seg: seg4({ payload: payloadOf(65535 - 20 - 32) }),
      gsoSize: 1448,
      count: 46,
    },
    {
      name: 'largest IPv4 packet (65535 bytes, no options)',
      seg: seg4({ options: undefined, payload: payloadOf(65535 - 40) }),
      gsoSize: 1460,
      count: 45,
    },
    {
      name: 'IPv6 packet of 65535 bytes',
      seg: seg6({ payload: payloadOf(65535 - 40 - 32) }),
      gsoSize: 1428,
      count: 46,
    },
    {
      name: 'IPv4 TOS, TTL and a clear DF bit are copied',
      seg: seg4({ tos: 0xb8, ttl: 3, df: false, payload: payloadOf(3000) }),
      gsoSize: 1448,
      count: 3,
    },
    {
      name: 'IPv6 traffic class, flow label and hop limit are copied',
      seg: seg6({ tos: 0xb8, flowLabel: 0xfffff, ttl: 1, payload: payloadOf(3000) }),
      gsoSize: 1428,
      count: 3,
    },
    {
      // csumStart is then 24; the options (router alert) are part of every segment's header.
      name: 'IPv4 header options are copied',
      seg: seg4({ ipOptions: Uint8Array.from([0x94, 0x04, 0x00, 0x00]), payload: payloadOf(3000) }),
      gsoSize: 1448,
      count: 3,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const expected = referenceSegments(c.seg, c.gsoSize).map((s) => tcpPacket(s));
      assert.equal(expected.length, c.count, 'reference segment count');
      assertPackets(c.name, split(tsoHeader(c.seg, c.gsoSize), tcpPacket(c.seg, 'partial')), expected);
    });
  }

  test('every segment fits gsoSize and carries valid IPv4 and TCP checksums', () => {
    // The same facts the reference encodes, read back from the native output with the parser
    // alone, so a shared mistake between reference and native code would still show.
    const seg = seg4({ payload: payloadOf(10_000) });
    const got = split(tsoHeader(seg, 1448), tcpPacket(seg, 'partial'));
    assert.ok(got);
    const views = got.map((p) => parseTcp(p));
    assert.deepEqual(
      views.map((v) => v?.payload.length),
      [1448, 1448, 1448, 1448, 1448, 1448, 1312],
    );
    views.forEach((v, i) => {
      assert.ok(v && v.ipChecksumOk && v.tcpChecksumOk, `checksums of segment ${i}`);
      assert.equal(got[i]!.readUInt16BE(2), got[i]!.length, `IPv4 total length of segment ${i}`);
    });
    assert.ok(Buffer.concat(views.map((v) => v!.payload)).equals(seg.payload), 'payload bytes in order');
  });

  test('FIN and PSH stay on the last segment only, CWR on the first only, ECE on all (IPv4, ECN type)', () => {
    const seg = seg4({ flags: ACK | PSH | FIN | CWR | ECE, payload: payloadOf(4000) });
    const got = split({ ...tsoHeader(seg, 1448), gsoType: GSO_TCPV4 | GSO_ECN }, tcpPacket(seg, 'partial'));
    assert.ok(got);
    assert.deepEqual(
      got.map((p) => parseTcp(p)?.flags),
      [ACK | ECE | CWR, ACK | ECE, ACK | ECE | PSH | FIN],
    );
    assertPackets('flags', got, referenceSegments(seg, 1448).map((s) => tcpPacket(s)));
  });

  test('FIN and PSH stay on the last segment only, CWR on the first only (IPv6, ECN type)', () => {
    const seg = seg6({ flags: ACK | PSH | FIN | CWR, payload: payloadOf(3000) });
    const got = split({ ...tsoHeader(seg, 1000), gsoType: GSO_TCPV6 | GSO_ECN }, tcpPacket(seg, 'partial'));
    assert.ok(got);
    assert.deepEqual(
      got.map((p) => parseTcp(p)?.flags),
      [ACK | CWR, ACK, ACK | PSH | FIN],
    );
    assertPackets('flags', got, referenceSegments(seg, 1000).map((s) => tcpPacket(s)));
  });

  test('a single-segment super-packet keeps all its flags', () => {
    const seg = seg4({ flags: ACK | PSH | FIN | CWR, payload: payloadOf(500) });
    const got = split(tsoHeader(seg, 1448), tcpPacket(seg, 'partial'));
    assert.deepEqual(got?.map((p) => parseTcp(p)?.flags), [ACK | PSH | FIN | CWR]);
  });

  test('TCP options (timestamps, SACK blocks) are copied into every segment', () => {
    const sack = Buffer.from('0101050a000000640000012c', 'hex'); // NOP NOP SACK 100..300
    const options = Buffer.concat([timestampOption(0xdeadbeef, 0x01020304), sack]);
    const seg = seg4({ options, payload: payloadOf(3000) });
    const got = split(tsoHeader(seg, 1400), tcpPacket(seg, 'partial'));
    assert.ok(got);
    assert.equal(got.length, 3);
    for (const p of got) assert.equal(parseTcp(p)?.options.toString('hex'), options.toString('hex'));
    assertPackets('options', got, referenceSegments(seg, 1400).map((s) => tcpPacket(s)));
  });

  test('IPv6 with a hop-by-hop header before TCP: the header is copied into every segment', () => {
    const seg = seg6({ hopByHop: true, payload: payloadOf(3000) });
    const header = tsoHeader(seg, 1400);
    assert.equal(header.csumStart, 48, 'the TCP header starts after the 8-byte extension header');
    const got = split(header, tcpPacket(seg, 'partial'));
    assert.ok(got);
    assertPackets('hop-by-hop', got, referenceSegments(seg, 1400).map((s) => tcpPacket(s)));
  });

  test('IPv4 ID wraps from 0xffff to 0 and seq wraps past 2^32', () => {
    const seg = seg4({ id: 0xfffe, seq: 2 ** 32 - 1000, payload: payloadOf(2400) });
    const got = split(tsoHeader(seg, 600), tcpPacket(seg, 'partial'));
    assert.ok(got);
    assert.deepEqual(
      got.map((p) => parseTcp(p)?.id),
      [0xfffe, 0xffff, 0, 1],
    );
    assert.deepEqual(
      got.map((p) => parseTcp(p)?.seq),
      [2 ** 32 - 1000, 2 ** 32 - 400, 200, 800],
    );
    assertPackets('wrap', got, referenceSegments(seg, 600).map((s) => tcpPacket(s)));
  });

  test('hdrLen is only a hint: 0 or nonsense gives the same segments', () => {
    const seg = seg6({ payload: payloadOf(3000) });
    const expected = referenceSegments(seg, 1428).map((s) => tcpPacket(s));
    for (const hdrLen of [0, 1, 52, 60000]) {
      assertPackets(`hdrLen ${hdrLen}`, split({ ...tsoHeader(seg, 1428), hdrLen }, tcpPacket(seg, 'partial')), expected);
    }
  });

  test('random super-packets match the reference (seeded)', () => {
    const seed = 0x0ff10ad;
    const rand = xorshiftRandom(seed);
    const int = (n: number) => Math.floor(rand() * n);
    for (let i = 0; i < 300; i++) {
      const family = rand() < 0.5 ? 4 : 6;
      const options = rand() < 0.7 ? timestampOption(int(2 ** 32), int(2 ** 32)) : undefined;
      const headers = (family === 4 ? 20 : 40) + (options ? 32 : 20);
      // Mostly MTU-like sizes, sometimes the extremes; at most a few thousand segments.
      const payloadLength = 1 + (rand() < 0.2 ? 65535 - headers - 1 : int(rand() < 0.5 ? 3000 : 65535 - headers));
      let gsoSize = rand() < 0.6 ? 1200 + int(300) : 1 + int(2000);
      gsoSize = Math.max(gsoSize, Math.ceil(payloadLength / 3000));
      let flags = ACK;
      for (const bit of [PSH, FIN, CWR, ECE]) if (rand() < 0.25) flags |= bit;
      const base: Partial<TcpSegment> = {
        seq: rand() < 0.3 ? 2 ** 32 - 1 - int(100_000) : int(2 ** 32),
        ack: int(2 ** 32),
        window: int(65536),
        flags,
        options,
        tos: int(256),
        ttl: 1 + int(255),
        payload: streamBytes(int(2 ** 32), payloadLength, i & 0xff),
      };
      const seg =
        family === 4
          ? seg4({ ...base, id: rand() < 0.3 ? 0x10000 - int(50) : int(0x10000), df: rand() < 0.8 })
          : seg6({ ...base, flowLabel: int(0x100000) });
      const header = tsoHeader(seg, gsoSize);
      if (flags & CWR) header.gsoType |= GSO_ECN;
      const what = `seed ${seed} case ${i}: IPv${family} payload ${payloadLength} gsoSize ${gsoSize}`;
      assertPackets(what, split(header, tcpPacket(seg, 'partial')), referenceSegments(seg, gsoSize).map((s) => tcpPacket(s)));
    }
  });
});

// ---- gsoSplit: checksum completion without GSO ----------------------------------------------------

/**
 * A payload whose transport checksum comes out as 0: its first 16-bit word is chosen so that the
 * pseudo-header, header and payload sum to 0xffff.
 */
function zeroSumPayload(build: (payload: Buffer) => Buffer, hlen: number, length: number): Buffer {
  const payload = payloadOf(length, 0x55);
  payload.writeUInt16BE(0, 0);
  const packet = build(payload);
  const ip = parseAddresses(packet);
  const upper = packet.subarray(hlen);
  const sum = onesSum(upper, pseudoHeaderSum(ip.src, ip.dst, packet[ip.protocolAt]!, upper.length));
  payload.writeUInt16BE(complement(sum), 0);
  return payload;
}

function parseAddresses(packet: Buffer): { src: Buffer; dst: Buffer; protocolAt: number } {
  return packet[0]! >> 4 === 4
    ? { src: packet.subarray(12, 16), dst: packet.subarray(16, 20), protocolAt: 9 }
    : { src: packet.subarray(8, 24), dst: packet.subarray(24, 40), protocolAt: 6 };
}

function csumHeader(csumStart: number, csumOffset: number): VnetHeader {
  return { flags: NEEDS_CSUM, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart, csumOffset };
}

const ip4: IpFields = { family: 4, src: A4, dst: B4 };
const ip6: IpFields = { family: 6, src: A6, dst: B6 };

describe('gsoSplit with gsoType 0 completes a NEEDS_CSUM checksum and changes nothing else', () => {
  const tcpCases: { name: string; seg: TcpSegment }[] = [
    { name: 'TCP over IPv4', seg: seg4({ payload: payloadOf(1000) }) },
    { name: 'TCP over IPv4, odd payload length', seg: seg4({ payload: payloadOf(1001) }) },
    { name: 'TCP over IPv4, no payload (pure ACK)', seg: seg4({ payload: payloadOf(0) }) },
    { name: 'TCP over IPv6', seg: seg6({ payload: payloadOf(1427) }) },
    { name: 'TCP over IPv4 with FIN|PSH (flags untouched)', seg: seg4({ flags: ACK | PSH | FIN, payload: payloadOf(3) }) },
  ];
  for (const c of tcpCases) {
    test(c.name, () => {
      const hlen = ipHeaderLength(c.seg);
      const got = split(csumHeader(hlen, 16), tcpPacket(c.seg, 'partial'));
      assertPackets(c.name, got, [tcpPacket(c.seg, 'full')]);
    });
  }

  const udpCases: { name: string; ip: IpFields; length: number }[] = [
    { name: 'UDP over IPv4', ip: ip4, length: 1200 },
    { name: 'UDP over IPv4, odd length', ip: ip4, length: 33 },
    { name: 'UDP over IPv6', ip: ip6, length: 1201 },
  ];
  for (const c of udpCases) {
    test(c.name, () => {
      const payload = payloadOf(c.length, 9);
      const got = split(csumHeader(ipHeaderLength(c.ip), 6), udpPacket(c.ip, 5353, 51820, payload, 'partial'));
      assertPackets(c.name, got, [udpPacket(c.ip, 5353, 51820, payload, 'full')]);
    });
  }

  test('UDP: a computed checksum of 0 is written as 0xffff (IPv4 and IPv6)', () => {
    for (const ip of [ip4, ip6]) {
      const hlen = ipHeaderLength(ip);
      const payload = zeroSumPayload((p) => udpPacket(ip, 1000, 2000, p, 0), hlen, 40);
      const expected = udpPacket(ip, 1000, 2000, payload, 'full');
      assert.equal(expected.readUInt16BE(hlen + 6), 0xffff, 'the crafted payload sums to a zero checksum');
      assertPackets(`UDP/IPv${ip.family}`, split(csumHeader(hlen, 6), udpPacket(ip, 1000, 2000, payload, 'partial')), [expected]);
    }
  });

  test('TCP: a computed checksum of 0 stays 0 (the 0xffff rule is UDP only)', () => {
    for (const make of [seg4, seg6]) {
      const probe = make({ payload: payloadOf(40) });
      const hlen = ipHeaderLength(probe);
      const payload = zeroSumPayload((p) => tcpPacket({ ...probe, payload: p }, 0), hlen, 40);
      const seg = { ...probe, payload };
      const expected = tcpPacket(seg, 'full');
      assert.equal(expected.readUInt16BE(hlen + 16), 0, 'the crafted payload sums to a zero checksum');
      assertPackets(`TCP/IPv${seg.family}`, split(csumHeader(hlen, 16), tcpPacket(seg, 'partial')), [expected]);
    }
  });

  test('csumStart is taken as given: UDP after an IPv6 hop-by-hop header (csumStart 48)', () => {
    const ip: IpFields = { ...ip6, hopByHop: true };
    const payload = payloadOf(300, 3);
    const got = split(csumHeader(48, 6), udpPacket(ip, 1, 2, payload, 'partial'));
    assertPackets('hop-by-hop', got, [udpPacket(ip, 1, 2, payload, 'full')]);
  });

  test('without NEEDS_CSUM the packet comes back byte for byte, checksum field included', () => {
    // A partial checksum left as it is proves nothing was computed.
    const packets = [
      tcpPacket(seg4({ payload: payloadOf(700) }), 'partial'),
      udpPacket(ip6, 53, 53, payloadOf(99), 0x1234),
      icmpEcho(ip4, 7, 8, payloadOf(56)),
    ];
    for (const p of packets) {
      assertPackets('no flags', split(ZERO_HEADER, p), [Buffer.from(p)]);
    }
  });

  test('the field is completed from what it holds, wherever it is (generic CHECKSUM_PARTIAL)', () => {
    // The rule itself, with its own two-line reference: the sum covers packet[csumStart..end]
    // including the field as it arrives. Here the field is the last two bytes of the packet.
    const p = udpPacket(ip4, 1, 2, payloadOf(10), 'partial'); // 38 bytes
    const expected = Buffer.from(p);
    expected.writeUInt16BE(complement(onesSum(p.subarray(20))), 36);
    assertPackets('last two bytes', split(csumHeader(20, 16), p), [expected]);
  });

  test('a checksum field that does not fit in the packet gives null', () => {
    const p = udpPacket(ip4, 1, 2, payloadOf(10), 'partial'); // 38 bytes
    for (const [start, offset] of [
      [20, 17], // field at 37..38: one byte past the end
      [38, 0], // field starts at the end
      [20, 60000],
      [60000, 6],
    ] as const) {
      assertNull(`csumStart ${start} csumOffset ${offset}`, split(csumHeader(start, offset), p));
    }
  });
});

// ---- gsoSplit: malformed input --------------------------------------------------------------------

describe('gsoSplit refuses malformed super-packets with null', () => {
  const good4 = seg4({ payload: payloadOf(3000) });
  const good6 = seg6({ payload: payloadOf(3000) });
  const packet4 = () => tcpPacket(good4, 'partial');
  const packet6 = () => tcpPacket(good6, 'partial');
  const header4 = tsoHeader(good4, 1448);
  const header6 = tsoHeader(good6, 1428);

  test('control: the unmodified inputs split', () => {
    // Every case below changes one thing in these, so each null is caused by that one thing.
    assert.equal(split(header4, packet4())?.length, 3);
    assert.equal(split(header6, packet6())?.length, 3);
  });

  const cases: { name: string; header: VnetHeader; packet: () => Buffer }[] = [
    { name: 'TCPV4 type on an IPv6 packet', header: { ...header6, gsoType: GSO_TCPV4 }, packet: packet6 },
    { name: 'TCPV6 type on an IPv4 packet', header: { ...header4, gsoType: GSO_TCPV6 }, packet: packet4 },
    {
      name: 'IP version 5 with TCPV4',
      header: header4,
      packet: () => {
        const p = packet4();
        p[0] = 0x55;
        return fixIpv4Checksum(p);
      },
    },
    {
      name: 'IPv4 carrying UDP',
      header: { ...header4, csumOffset: 6 },
      packet: () => udpPacket(ip4, 1, 2, payloadOf(3000), 'partial'),
    },
    {
      name: 'IPv6 carrying UDP',
      header: { ...header6, csumOffset: 6 },
      packet: () => udpPacket(ip6, 1, 2, payloadOf(3000), 'partial'),
    },
    {
      name: 'IPv6 with a routing header before TCP (it would change the checksum\'s destination)',
      header: { ...header6, csumStart: 48 },
      packet: () => {
        const p = tcpPacket({ ...good6, hopByHop: true }, 'partial');
        p[6] = 43; // the 8-byte extension header becomes a routing header
        return p;
      },
    },
    { name: 'truncated IPv4 header (16 bytes)', header: header4, packet: () => packet4().subarray(0, 16) },
    { name: 'truncated IPv6 header (30 bytes)', header: header6, packet: () => packet6().subarray(0, 30) },
    {
      name: 'IPv4 header length field below 20 bytes',
      header: header4,
      packet: () => {
        const p = packet4();
        p[0] = 0x44;
        return fixIpv4Checksum(p);
      },
    },
    {
      // Lengths agree, the checksum field is inside, but the TCP data offset (32 bytes) runs past the end.
      name: 'truncated TCP header (options cut off)',
      header: header4,
      packet: () => {
        const p = Buffer.from(packet4().subarray(0, 20 + 24));
        p.writeUInt16BE(p.length, 2);
        return fixIpv4Checksum(p);
      },
    },
    {
      name: 'TCP header shorter than 20 bytes',
      header: header6,
      packet: () => {
        const p = Buffer.from(packet6().subarray(0, 40 + 18));
        p.writeUInt16BE(18, 4);
        return p;
      },
    },
    { name: 'csumStart past the IPv4 header', header: { ...header4, csumStart: 24 }, packet: packet4 },
    { name: 'csumStart inside the IPv6 header', header: { ...header6, csumStart: 36 }, packet: packet6 },
    { name: 'checksum position outside the packet', header: { ...header4, csumOffset: 60000 }, packet: packet4 },
    {
      name: 'IPv4 total length above the packet length',
      header: header4,
      packet: () => {
        const p = packet4();
        p.writeUInt16BE(p.length + 1, 2);
        return fixIpv4Checksum(p);
      },
    },
    {
      name: 'IPv4 total length below the packet length',
      header: header4,
      packet: () => {
        const p = packet4();
        p.writeUInt16BE(p.length - 1, 2);
        return fixIpv4Checksum(p);
      },
    },
    {
      name: 'IPv6 payload length above the packet length',
      header: header6,
      packet: () => {
        const p = packet6();
        p.writeUInt16BE(p.length - 40 + 1, 4);
        return p;
      },
    },
    {
      name: 'IPv6 payload length below the packet length',
      header: header6,
      packet: () => {
        const p = packet6();
        p.writeUInt16BE(p.length - 40 - 1, 4);
        return p;
      },
    },
    { name: 'gsoSize 0 (IPv4)', header: { ...header4, gsoSize: 0 }, packet: packet4 },
    { name: 'gsoSize 0 (IPv6)', header: { ...header6, gsoSize: 0 }, packet: packet6 },
    { name: 'gsoType 2 (undefined)', header: { ...header4, gsoType: 2 }, packet: packet4 },
    { name: 'gsoType 3 (UDP fragmentation offload)', header: { ...header4, gsoType: 3 }, packet: packet4 },
    { name: 'gsoType 5 (UDP_L4)', header: { ...header4, gsoType: 5 }, packet: packet4 },
    { name: 'gsoType 3 with the ECN bit', header: { ...header4, gsoType: 3 | GSO_ECN }, packet: packet4 },
    { name: 'empty packet', header: header4, packet: () => Buffer.alloc(0) },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assertNull(c.name, split(c.header, c.packet()));
    });
  }
});

// ---- groCoalesce: what merges ---------------------------------------------------------------------

describe('groCoalesce merges consecutive segments of a flow', () => {
  test('three IPv4 segments become one super-packet in CHECKSUM_PARTIAL form', () => {
    const segs = run(seg4(), 3);
    const got = coalesce(segs.map((s) => tcpPacket(s)));
    // Field by field first, independently of the reference builder ...
    assert.equal(got.length, 1);
    const { header, packet } = got[0]!;
    assert.deepEqual(header, { flags: 1, gsoType: 1, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16 });
    assert.equal(packet.length, 52 + 3 * 1448);
    assert.equal(packet.readUInt16BE(2), packet.length, 'IPv4 total length');
    const v = parseTcp(packet);
    assert.ok(v);
    assert.ok(v.ipChecksumOk, 'IPv4 header checksum');
    assert.ok(v.tcpChecksumPartial, 'TCP checksum field holds the pseudo-header sum');
    assert.equal(v.id, segs[0]!.id);
    assert.equal(v.seq, segs[0]!.seq);
    assert.ok(v.payload.equals(Buffer.concat(segs.map((s) => s.payload))));
    // ... then byte for byte.
    assertItems('IPv4', got, [merged(segs)]);
  });

  test('IPv6 segments become one super-packet', () => {
    const segs = run(seg6(), 4);
    const got = coalesce(segs.map((s) => tcpPacket(s)));
    assert.deepEqual(got[0]?.header, { flags: 1, gsoType: 4, hdrLen: 72, gsoSize: 1428, csumStart: 40, csumOffset: 16 });
    assert.equal(got[0]?.packet.readUInt16BE(4), 32 + 4 * 1428, 'IPv6 payload length');
    assertItems('IPv6', got, [merged(segs)]);
  });

  test('segments without TCP options merge (hdrLen 40)', () => {
    const segs = run(seg4({ options: undefined, payload: payloadOf(1460) }), 2);
    assertItems('no options', coalesce(segs.map((s) => tcpPacket(s))), [merged(segs)]);
  });

  test('a lone segment, and an empty batch, pass through', () => {
    const p = tcpPacket(seg4());
    assertItems('lone', coalesce([p]), [single(Buffer.from(p))]);
    assert.deepEqual(coalesce([]), []);
  });

  test('a shorter segment is appended and closes the item', () => {
    const [a0, a1] = run(seg4({ payload: payloadOf(1000) }), 2);
    const a2 = next(a1!, { payload: payloadOf(500) });
    const a3 = next(a2, { payload: payloadOf(1000) });
    const a4 = next(a3);
    const segs = [a0!, a1!, a2, a3, a4];
    assertItems('short', coalesce(segs.map((s) => tcpPacket(s))), [merged([a0!, a1!, a2]), merged([a3, a4])]);
  });

  test('a longer segment cannot join: it starts the next item', () => {
    const a0 = seg6({ payload: payloadOf(500) });
    const a1 = next(a0, { payload: payloadOf(1000) });
    const a2 = next(a1);
    const packets = [a0, a1, a2].map((s) => tcpPacket(s));
    assertItems('long', coalesce(packets), [single(packets[0]!), merged([a1, a2])]);
  });

  test('a PSH segment is appended and closes the item; the merged flags carry PSH', () => {
    const a0 = seg4();
    const a1 = next(a0, { flags: ACK | PSH });
    const [a2, a3] = run(next(a1), 2);
    const got = coalesce([a0, a1, a2!, a3!].map((s) => tcpPacket(s)));
    assert.equal(parseTcp(got[0]!.packet)?.flags, ACK | PSH);
    assertItems('psh', got, [merged([a0, a1]), merged([a2!, a3!])]);
  });

  test('a short PSH segment ends an item the usual way (end of a write)', () => {
    const a0 = seg6();
    const a1 = next(a0);
    const a2 = next(a1, { flags: ACK | PSH, payload: payloadOf(17) });
    assertItems('end of write', coalesce([a0, a1, a2].map((s) => tcpPacket(s))), [merged([a0, a1, a2])]);
  });

  test('a PSH first segment stays alone; the following ones merge', () => {
    const a0 = seg4({ flags: ACK | PSH });
    const [a1, a2] = run(next(a0), 2);
    const packets = [a0, a1!, a2!].map((s) => tcpPacket(s));
    assertItems('psh first', coalesce(packets), [single(packets[0]!), merged([a1!, a2!])]);
  });

  test('IPv4 ID 0xffff -> 0 and seq wrapping past 2^32 still merge, and split back', () => {
    const segs = run(seg4({ id: 0xfffe, seq: 2 ** 32 - 2000 }), 4);
    assert.deepEqual(
      segs.map((s) => s.id),
      [0xfffe, 0xffff, 0, 1],
    );
    const got = coalesce(segs.map((s) => tcpPacket(s)));
    assertItems('wrap', got, [merged(segs)]);
    assertPackets('split back', split(got[0]!.header, got[0]!.packet), segs.map((s) => tcpPacket(s)));
  });

  test('1-byte segments merge (gsoSize 1)', () => {
    const segs = run(seg4({ payload: payloadOf(1) }), 6);
    assertItems('tiny', coalesce(segs.map((s) => tcpPacket(s))), [merged(segs)]);
  });
});

describe('groCoalesce stops at 65535 bytes of IPv4', () => {
  // Timestamps make the headers 52 bytes: 45 * 1448 + 52 = 65212, leaving 323 bytes.
  // IPv6 is left out on purpose: whether its limit counts the 40-byte fixed header ("total IP
  // length") or only the payload length field is not settled by the contract.

  const full = run(seg4(), 47);

  test('45 full segments and a 323-byte one make exactly 65535 bytes, and split back', () => {
    const last = next(full[44]!, { payload: payloadOf(323) });
    const segs = [...full.slice(0, 45), last];
    const got = coalesce(segs.map((s) => tcpPacket(s)));
    assertItems('65535', got, [merged(segs)]);
    assert.equal(got[0]!.packet.length, 65535);
    assertPackets('split back', split(got[0]!.header, got[0]!.packet), segs.map((s) => tcpPacket(s)));
  });

  test('one byte more does not fit: the 324-byte segment is left alone', () => {
    const last = next(full[44]!, { payload: payloadOf(324) });
    const packets = [...full.slice(0, 45), last].map((s) => tcpPacket(s));
    assertItems('65536', coalesce(packets), [merged(full.slice(0, 45)), single(packets[45]!)]);
  });

  test('a 46th full segment starts the next item', () => {
    assertItems('46', coalesce(full.map((s) => tcpPacket(s))), [merged(full.slice(0, 45)), merged(full.slice(45))]);
  });
});

// ---- groCoalesce: what does not merge -------------------------------------------------------------

describe('groCoalesce keeps segments apart when a header field differs', () => {
  // Pattern: a0 a1 b2 b3 where b2 would follow a1 but for one field, and b3 follows b2. The right
  // answer is two items: b2 cannot join, closes a0+a1, and starts its own item that b3 joins.
  const differences: { name: string; base: () => TcpSegment; change: (s: TcpSegment) => Partial<TcpSegment> }[] = [
    { name: 'seq gap (a lost segment)', base: seg4, change: (s) => ({ seq: s.seq + 1448 }) },
    { name: 'seq going back (a retransmission)', base: seg6, change: (s) => ({ seq: s.seq - 2 * 1428 }) },
    { name: 'seq overlapping the previous segment by one byte', base: seg4, change: (s) => ({ seq: s.seq - 1 }) },
    { name: 'ack number', base: seg4, change: (s) => ({ ack: s.ack + 1 }) },
    { name: 'window', base: seg6, change: (s) => ({ window: s.window + 1 }) },
    { name: 'TCP option bytes (timestamp value)', base: seg4, change: () => ({ options: timestampOption(1001, 2000) }) },
    { name: 'TCP header length (options dropped)', base: seg4, change: () => ({ options: undefined }) },
    { name: 'IPv4 TTL', base: seg4, change: () => ({ ttl: 63 }) },
    { name: 'IPv4 TOS', base: seg4, change: () => ({ tos: 0x02 }) },
    { name: 'IPv4 DF bit', base: seg4, change: () => ({ df: false }) },
    { name: 'IPv4 ID gap', base: seg4, change: (s) => ({ id: ((s.id ?? 0) + 1) & 0xffff }) },
    { name: 'IPv4 ID repeated', base: seg4, change: (s) => ({ id: ((s.id ?? 0) - 1) & 0xffff }) },
    { name: 'IPv6 traffic class', base: seg6, change: () => ({ tos: 0x20 }) },
    { name: 'IPv6 flow label', base: seg6, change: () => ({ flowLabel: 0x12345 }) },
    { name: 'IPv6 hop limit', base: seg6, change: () => ({ ttl: 63 }) },
  ];

  test('control: without a difference the four segments make one item', () => {
    for (const base of [seg4, seg6]) {
      const segs = run(base(), 4);
      assertItems(`IPv${segs[0]!.family}`, coalesce(segs.map((s) => tcpPacket(s))), [merged(segs)]);
    }
  });

  for (const d of differences) {
    test(d.name, () => {
      const [a0, a1] = run(d.base(), 2);
      const natural = next(a1!);
      const b2 = { ...natural, ...d.change(natural) };
      const b3 = next(b2);
      const got = coalesce([a0!, a1!, b2, b3].map((s) => tcpPacket(s)));
      assertItems(d.name, got, [merged([a0!, a1!]), merged([b2, b3])]);
    });
  }
});

describe('groCoalesce leaves ineligible TCP segments alone, closing their flow item', () => {
  // Pattern: a0 a1 x a3 a4, x a segment of the same flow that must not merge. x goes out on its
  // own between two items, so per-flow order is exact.
  const ineligible: { name: string; make: (s: TcpSegment) => Buffer }[] = [
    { name: 'SYN', make: (s) => tcpPacket({ ...s, flags: SYN | ACK }) },
    { name: 'FIN', make: (s) => tcpPacket({ ...s, flags: FIN | ACK }) },
    { name: 'RST', make: (s) => tcpPacket({ ...s, flags: RST | ACK }) },
    { name: 'URG', make: (s) => tcpPacket({ ...s, flags: URG | ACK }) },
    { name: 'ECE', make: (s) => tcpPacket({ ...s, flags: ECE | ACK }) },
    { name: 'CWR', make: (s) => tcpPacket({ ...s, flags: CWR | ACK }) },
    { name: 'no ACK flag', make: (s) => tcpPacket({ ...s, flags: 0 }) },
    { name: 'bad TCP checksum', make: (s) => tcpPacket(s, 'corrupt') },
    {
      name: 'bad IPv4 header checksum',
      make: (s) => {
        const p = tcpPacket(s);
        p.writeUInt16BE(p.readUInt16BE(10) ^ 0x0100, 10);
        return p;
      },
    },
  ];

  for (const c of ineligible) {
    test(c.name, () => {
      const [a0, a1, x, a3, a4] = run(seg4(), 5);
      const xPacket = c.make(x!);
      const got = coalesce([tcpPacket(a0!), tcpPacket(a1!), xPacket, tcpPacket(a3!), tcpPacket(a4!)]);
      assertItems(c.name, got, [merged([a0!, a1!]), single(xPacket), merged([a3!, a4!])]);
    });
  }

  test('a pure ACK (no payload) is not merged', () => {
    const [a0, a1] = run(seg6(), 2);
    const ackOnly = next(a1!, { payload: payloadOf(0) });
    const [a3, a4] = run(next(ackOnly, { payload: payloadOf(1428) }), 2);
    const ackPacket = tcpPacket(ackOnly);
    const got = coalesce([tcpPacket(a0!), tcpPacket(a1!), ackPacket, tcpPacket(a3!), tcpPacket(a4!)]);
    assertItems('pure ACK', got, [merged([a0!, a1!]), single(ackPacket), merged([a3!, a4!])]);
  });

  test('a bad TCP checksum on the first segment: that one alone, the rest merge', () => {
    const [a0, a1, a2] = run(seg6(), 3);
    const bad = tcpPacket(a0!, 'corrupt');
    assertItems('bad first', coalesce([bad, tcpPacket(a1!), tcpPacket(a2!)]), [single(bad), merged([a1!, a2!])]);
  });

  test('IPv4 with options, IPv4 fragments and IPv6 extension headers never merge', () => {
    // Each kind as two segments that would otherwise merge, each on a flow of its own.
    const kinds: { name: string; first: TcpSegment }[] = [
      { name: 'IPv4 options', first: seg4({ sport: 1001, ipOptions: Uint8Array.from([0x94, 4, 0, 0]) }) },
      { name: 'IPv4 more-fragments', first: seg4({ sport: 1002, df: false, moreFragments: true }) },
      { name: 'IPv4 fragment offset', first: seg4({ sport: 1003, df: false, fragmentOffset: 185 }) },
      { name: 'IPv6 hop-by-hop', first: seg6({ sport: 1004, hopByHop: true }) },
    ];
    for (const k of kinds) {
      const packets = run(k.first, 2).map((s) => tcpPacket(s));
      assertItems(k.name, coalesce(packets), packets.map((p) => single(p)));
    }
  });

  test('TCP whose ports cannot be read closes every open item between the same hosts', () => {
    // A later IPv4 fragment or TCP behind IPv6 extension headers may belong to any flow of those
    // two hosts; no segment that arrives after it may be written before it.
    const a4 = run(seg4(), 3);
    const fragment = tcpPacket(seg4({ sport: 7, df: false, fragmentOffset: 185 }));
    assertItems('IPv4 later fragment', coalesce([tcpPacket(a4[0]!), tcpPacket(a4[1]!), fragment, tcpPacket(a4[2]!)]), [
      merged([a4[0]!, a4[1]!]),
      single(fragment),
      single(tcpPacket(a4[2]!)),
    ]);
    const a6 = run(seg6(), 3);
    const hidden = tcpPacket(seg6({ sport: 7, hopByHop: true }));
    assertItems('IPv6 hop-by-hop', coalesce([tcpPacket(a6[0]!), tcpPacket(a6[1]!), hidden, tcpPacket(a6[2]!)]), [
      merged([a6[0]!, a6[1]!]),
      single(hidden),
      single(tcpPacket(a6[2]!)),
    ]);
  });

  test('a segment whose AE or reserved TCP bits differ is not merged (the merge would lose them)', () => {
    const [a0, a1] = run(seg4(), 2);
    const ae = { ...a1!, reserved: 0x01 };
    assertItems('AE differs', coalesce([tcpPacket(a0!), tcpPacket(ae)]), [single(tcpPacket(a0!)), single(tcpPacket(ae))]);
    const b = run(seg6({ reserved: 0x01 }), 2);
    assertItems('AE on both', coalesce(b.map((s) => tcpPacket(s))), [merged(b)]);
  });

  test('a TUN that refuses super-packets gets the original segments, byte for byte, in order', () => {
    // The fallback cuts the refused super-packet back with the splitter; the segments must come
    // out exactly as they went in (IDs, sequence numbers, PSH on the last only, checksums).
    const a = run(seg4(), 5);
    a[4] = { ...a[4]!, flags: a[4]!.flags | PSH };
    const b = run(seg6(), 3);
    const udp = udpPacket(ip4, 5000, 6000, payloadOf(300));
    const input = [...a.map((s) => tcpPacket(s)), ...b.map((s) => tcpPacket(s)), udp];
    assertItems('refused', coalesce(input, { refuseMerged: true }), input.map((p) => single(p)));
  });

  test('UDP and ICMP pass through and do not close a TCP item', () => {
    const [a0, a1, a2] = run(seg4(), 3);
    const udp4 = udpPacket(ip4, 5000, 6000, payloadOf(1200));
    const udp6 = udpPacket(ip6, 5000, 6000, payloadOf(1200));
    const icmp = icmpEcho(ip4, 1, 1, payloadOf(56));
    const udpDup = udpPacket(ip4, 5000, 6000, payloadOf(1200)); // the same datagram twice: no UDP GRO
    const got = coalesce([tcpPacket(a0!), udp4, tcpPacket(a1!), icmp, udp6, tcpPacket(a2!), udpDup]);
    assertItems('non-TCP', got, [merged([a0!, a1!, a2!]), single(udp4), single(icmp), single(udp6), single(udpDup)]);
  });

  test('an odd IP payload (unknown protocol, IPv6 no-next-header) passes through', () => {
    const gre = ipPacket(ip4, 47, payloadOf(100));
    const none = ipPacket(ip6, 59, payloadOf(0));
    assertItems('other protocols', coalesce([gre, none]), [single(gre), single(none)]);
  });
});

// ---- groCoalesce: ordering ------------------------------------------------------------------------

describe('groCoalesce keeps per-flow order and orders items by first arrival', () => {
  test('two interleaved flows each become one item, the first-arrived flow first', () => {
    const a = run(seg4(), 3);
    const b = run(seg6(), 2);
    const got = coalesce([a[0]!, b[0]!, a[1]!, b[1]!, a[2]!].map((s) => tcpPacket(s)));
    assertItems('A first', got, [merged(a), merged(b)]);
  });

  test('the flow whose first packet came first leads, even if its item completes later', () => {
    const a = run(seg4(), 2);
    const b = run(seg4({ sport: 5555, seq: 9 }), 2);
    const got = coalesce([b[0]!, a[0]!, a[1]!, b[1]!].map((s) => tcpPacket(s)));
    assertItems('B first', got, [merged(b), merged(a)]);
  });

  test('flows differing only in one port, direction or family are separate', () => {
    const a = run(seg4(), 2);
    const otherPort = run(seg4({ dport: 444 }), 2);
    const reverse = run(seg4({ src: B4, dst: A4, sport: 443, dport: 43_210 }), 2);
    const v6 = run(seg6({ sport: 43_210, dport: 443 }), 2);
    const order = [a[0]!, otherPort[0]!, reverse[0]!, v6[0]!, v6[1]!, reverse[1]!, otherPort[1]!, a[1]!];
    const got = coalesce(order.map((s) => tcpPacket(s)));
    assertItems('separate flows', got, [merged(a), merged(otherPort), merged(reverse), merged(v6)]);
  });

  test('an open item waits through 63 other items; a 65th item writes out the oldest', () => {
    // The coalescer holds at most 64 items (bounded memory and flow scan): with 63 datagrams of
    // other flows in between, a0's item is one of 64 and a1 joins it; with 64, the 64th datagram
    // needs a 65th item, so a0's (the oldest) goes out alone, still first.
    const [a0, a1] = run(seg4(), 2);
    const others = (n: number) => Array.from({ length: n }, (_, i) => udpPacket(ip4, 1000 + i, 53, payloadOf(20, i)));
    const o63 = others(63);
    assertItems('63 between', coalesce([tcpPacket(a0!), ...o63, tcpPacket(a1!)]), [merged([a0!, a1!]), ...o63.map((p) => single(p))]);
    const o64 = others(64);
    assertItems('64 between', coalesce([tcpPacket(a0!), ...o64, tcpPacket(a1!)]), [
      single(tcpPacket(a0!)),
      ...o64.map((p) => single(p)),
      single(tcpPacket(a1!)),
    ]);
  });

  test('63 flows open at once each merge', () => {
    const firsts = Array.from({ length: 63 }, (_, f) => (f % 2 ? seg6 : seg4)({ sport: 2000 + f }));
    const seconds = firsts.map((s) => next(s));
    const got = coalesce([...firsts, ...seconds].map((s) => tcpPacket(s)));
    assertItems('63 flows', got, firsts.map((s, f) => merged([s, seconds[f]!])));
  });

  test('a flow whose item closed reopens after the other flows items', () => {
    // a0 a1 | b0 | a2 gap a3 | b1: A's second item starts after B's, so it is written after B's.
    const a = run(seg4(), 2);
    const a2 = next(a[1]!, { seq: a[1]!.seq + 5000 });
    const a3 = next(a2);
    const b = run(seg6(), 2);
    const got = coalesce([a[0]!, a[1]!, b[0]!, a2, a3, b[1]!].map((s) => tcpPacket(s)));
    assertItems('reopen', got, [merged(a), merged(b), merged([a2, a3])]);
  });
});

// ---- round trip: random batches -------------------------------------------------------------------

/** One input packet of a random batch: its bytes and, for TCP, the segment it was built from. */
interface Input {
  packet: Buffer;
  seg?: TcpSegment;
  /** Built with a corrupt TCP checksum. */
  corrupt?: boolean;
}

interface FlowGen {
  base: TcpSegment;
  tag: number;
  seq: number;
  id: number;
  mss: number;
  bytes: number; // payload bytes sent in this batch
}

/**
 * A batch as the device's receive path sees it: a few TCP flows interleaved at random, mostly
 * full-sized consecutive segments, sometimes a short or PSH one, a loss, a retransmission, a
 * changed ack/window/timestamp/TTL, an IPv4 ID gap, a corrupt checksum, a pure ACK, a FIN, another
 * TCP flag, with UDP and ICMP mixed in. IPv6 flows stay below 65435 payload bytes per batch, so
 * every IPv6 item is below 65535 bytes whichever way the limit is counted.
 */
function randomBatch(rand: () => number): Input[] {
  const int = (n: number) => Math.floor(rand() * n);
  const flows: FlowGen[] = [];
  const flowCount = 1 + int(6);
  for (let f = 0; f < flowCount; f++) {
    const family = rand() < 0.5 ? 4 : 6;
    const mss = [1448, 1460, 1428, 1200, 536, 1, 7, 1 + int(1500)][int(8)]!;
    const seq = rand() < 0.2 ? 2 ** 32 - int(20_000) : int(2 ** 32);
    const common: Partial<TcpSegment> = {
      sport: 10_000 + f,
      dport: 443,
      seq,
      ack: int(2 ** 32),
      window: int(65536),
      options: rand() < 0.7 ? timestampOption(int(2 ** 32), int(2 ** 32)) : undefined,
      tos: rand() < 0.8 ? 0 : int(256),
      payload: Buffer.alloc(0),
    };
    const base = family === 4 ? seg4({ ...common, df: rand() < 0.9 }) : seg6({ ...common, flowLabel: int(0x100000) });
    const id = rand() < 0.3 ? 0x10000 - int(30) : int(0x10000);
    flows.push({ base, tag: f, seq, id, mss, bytes: 0 });
  }
  const nonTcp = (): Input => {
    const r = int(3);
    const packet =
      r === 0
        ? udpPacket(ip4, 53, 53, payloadOf(int(1400)))
        : r === 1
          ? udpPacket(ip6, 4789, 4789, payloadOf(int(1400)))
          : icmpEcho(ip4, int(65536), int(65536), payloadOf(int(100)));
    return { packet };
  };

  const inputs: Input[] = [];
  const count = 1 + int(rand() < 0.2 ? 300 : 80);
  while (inputs.length < count) {
    if (rand() < 0.07) {
      inputs.push(nonTcp());
      continue;
    }
    const flow = flows[int(flows.length)]!;
    const b = flow.base;
    let length = flow.mss;
    let flags = ACK;
    let corrupt = false;
    const r = rand();
    if (r < 0.04) length = 1 + int(Math.max(1, flow.mss - 1));
    else if (r < 0.08) flags |= PSH;
    else if (r < 0.1) flow.seq = (flow.seq + flow.mss) >>> 0; // a segment lost before this one
    else if (r < 0.12) flow.seq = (flow.seq - flow.mss + 2 ** 32) >>> 0; // a retransmission
    else if (r < 0.14) b.ack = (b.ack + 1 + int(100_000)) >>> 0;
    else if (r < 0.16) b.window = int(65536);
    else if (r < 0.18 && b.options) b.options = timestampOption(int(2 ** 32), int(2 ** 32));
    else if (r < 0.19) b.ttl = 1 + int(255);
    else if (r < 0.21) flow.id = (flow.id + 1 + int(10)) & 0xffff;
    else if (r < 0.23) corrupt = true;
    else if (r < 0.25) length = 0; // a pure ACK
    else if (r < 0.26) flags |= FIN;
    else if (r < 0.27) length = flow.mss + 1 + int(100);
    else if (r < 0.28) flags |= [SYN, RST, URG, ECE, CWR][int(5)]!;
    if (b.family === 6 && flow.bytes + length > 65_435) {
      inputs.push(nonTcp());
      continue;
    }
    const seg: TcpSegment = {
      ...b,
      seq: flow.seq,
      id: flow.id,
      flags,
      payload: streamBytes(flow.seq, length, flow.tag),
    };
    inputs.push({ packet: tcpPacket(seg, corrupt ? 'corrupt' : 'full'), seg, corrupt });
    flow.seq = (flow.seq + length) >>> 0;
    flow.id = (flow.id + 1) & 0xffff;
    flow.bytes += length;
  }
  return inputs;
}

function flowKeyOf(s: TcpSegment): string {
  return `${s.family} ${Buffer.from(s.src).toString('hex')}:${s.sport} ${Buffer.from(s.dst).toString('hex')}:${s.dport}`;
}

/** May `seg` start or extend an item at all (whatever the item holds)? */
function coalescable(input: Input): boolean {
  const s = input.seg;
  if (!s || input.corrupt) return false;
  if (s.family === 4 && (s.ipOptions || s.moreFragments || s.fragmentOffset)) return false;
  if (s.family === 6 && s.hopByHop) return false;
  return (s.flags === ACK || s.flags === (ACK | PSH)) && s.payload.length > 0;
}

/** May `s` be appended to an item whose last segment is `last`? */
function follows(first: TcpSegment, last: TcpSegment, totalPayload: number, s: TcpSegment): boolean {
  const sameIp =
    s.family === 4
      ? (s.tos ?? 0) === (last.tos ?? 0) &&
        (s.ttl ?? 64) === (last.ttl ?? 64) &&
        (s.df ?? true) === (last.df ?? true) &&
        s.id === (((last.id ?? 0) + 1) & 0xffff)
      : (s.tos ?? 0) === (last.tos ?? 0) && (s.flowLabel ?? 0) === (last.flowLabel ?? 0) && (s.ttl ?? 64) === (last.ttl ?? 64);
  const sameTcp =
    s.ack === last.ack &&
    s.window === last.window &&
    Buffer.from(s.options ?? []).equals(Buffer.from(last.options ?? [])) &&
    s.seq === (last.seq + last.payload.length) >>> 0;
  const size = s.payload.length <= first.payload.length;
  const total = ipHeaderLength(first) + tcpHeaderLength(first) + totalPayload + s.payload.length <= 65535;
  return sameIp && sameTcp && size && total;
}

/**
 * The reference grouping: which inputs each output item holds, in output order. An item stays
 * open until a packet of its flow cannot join it, or a PSH or shorter segment ends it.
 */
function referenceGroups(inputs: Input[]): number[][] {
  const groups: number[][] = [];
  const open = new Map<string, { group: number[]; first: TcpSegment; last: TcpSegment; payload: number }>();
  // The coalescer holds at most 64 items; a new one beyond writes out (and closes) the oldest.
  const held: { group: number[]; key?: string }[] = [];
  const newGroup = (i: number, key?: string): number[] => {
    if (held.length >= MAX_ITEMS) {
      const oldest = held.shift()!;
      if (oldest.key !== undefined && open.get(oldest.key)?.group === oldest.group) open.delete(oldest.key);
    }
    const group = [i];
    groups.push(group);
    held.push({ group, key });
    return group;
  };
  inputs.forEach((input, i) => {
    const s = input.seg;
    if (!s) {
      newGroup(i);
      return;
    }
    const key = flowKeyOf(s);
    const item = open.get(key);
    const ok = coalescable(input);
    if (item && ok && follows(item.first, item.last, item.payload, s)) {
      item.group.push(i);
      item.last = s;
      item.payload += s.payload.length;
      if (s.flags & PSH || s.payload.length < item.first.payload.length) open.delete(key);
      return;
    }
    open.delete(key);
    const group = newGroup(i, key);
    if (ok && !(s.flags & PSH)) open.set(key, { group, first: s, last: s, payload: s.payload.length });
  });
  return groups;
}

/** Items the coalescer holds at once (offload.cc kMaxItems). */
const MAX_ITEMS = 64;

/** Flow of a packet as read from its bytes; every non-TCP packet shares one pseudo-flow. */
function flowOfPacket(packet: Buffer): string {
  return parseTcp(packet)?.flowKey ?? 'non-TCP';
}

describe('round trip: random batches (seeded)', () => {
  const SEED = 0x5eed0ff;
  const BATCHES = 600;

  test('groCoalesce output equals the reference grouping, byte for byte', () => {
    const rand = xorshiftRandom(SEED);
    let mergedItems = 0;
    for (let n = 0; n < BATCHES; n++) {
      const inputs = randomBatch(rand);
      const expected = referenceGroups(inputs).map((g) =>
        g.length === 1 ? single(inputs[g[0]!]!.packet) : merged(g.map((i) => inputs[i]!.seg!)),
      );
      mergedItems += expected.filter((e) => e.header.gsoType !== 0).length;
      assertItems(`seed ${SEED} batch ${n}`, coalesce(inputs.map((x) => x.packet)), expected);
    }
    // The batches must exercise merging, not only pass-through.
    assert.ok(mergedItems > BATCHES, `only ${mergedItems} merged items in ${BATCHES} batches`);
  });

  test('coalesced output splits back into exactly the input packets, per flow in order', () => {
    // Independent of the reference grouping: only the bytes that went in and came out.
    const rand = xorshiftRandom(SEED ^ 0x1234567);
    for (let n = 0; n < BATCHES; n++) {
      const inputs = randomBatch(rand);
      const what = `seed ${SEED ^ 0x1234567} batch ${n}`;
      const out = coalesce(inputs.map((x) => x.packet));

      // Each flow's input packets, as queues to be consumed in order by what comes back.
      const queues = new Map<string, number[]>();
      inputs.forEach((x, i) => {
        const key = flowOfPacket(x.packet);
        queues.set(key, [...(queues.get(key) ?? []), i]);
      });
      let previousFirst = -1;
      out.forEach((item, k) => {
        let packets: Buffer[];
        if (item.header.gsoType === 0) {
          assert.deepEqual(item.header, ZERO_HEADER, `${what} item ${k}: a single packet has an all-zero header`);
          packets = [item.packet];
        } else {
          const v = parseTcp(item.packet);
          assert.ok(v && v.ipChecksumOk && v.tcpChecksumPartial, `${what} item ${k}: ${describePacket(item.packet)}`);
          assert.equal(item.packet.length > 65535, false, `${what} item ${k}: longer than 65535`);
          const back = split(item.header, item.packet);
          assert.ok(back && back.length >= 2, `${what} item ${k}: splits into ${back?.length ?? 'null'}`);
          packets = back;
        }
        const key = flowOfPacket(packets[0]!);
        const queue = queues.get(key) ?? [];
        assert.ok(queue.length >= packets.length, `${what} item ${k}: more packets of ${key} than went in`);
        const taken = queue.splice(0, packets.length);
        // Items are written in the order their first packet arrived.
        assert.ok(taken[0]! > previousFirst, `${what} item ${k} starts with input ${taken[0]} after ${previousFirst}`);
        previousFirst = taken[0]!;
        assertPackets(
          `${what} item ${k}`,
          packets,
          taken.map((i) => inputs[i]!.packet),
        );
      });
      for (const [key, rest] of queues) assert.deepEqual(rest, [], `${what}: packets of ${key} never came out`);
    }
  });

  test('per flow, the TCP payload bytes come out in the order they went in', () => {
    const rand = xorshiftRandom(SEED ^ 0x7654321);
    for (let n = 0; n < BATCHES; n++) {
      const inputs = randomBatch(rand);
      const streams = (packets: Buffer[]) => {
        const m = new Map<string, Buffer[]>();
        for (const p of packets) {
          const v = parseTcp(p);
          if (v) m.set(v.flowKey, [...(m.get(v.flowKey) ?? []), v.payload]);
        }
        return new Map([...m].map(([k, parts]) => [k, Buffer.concat(parts).toString('hex')]));
      };
      const out = coalesce(inputs.map((x) => x.packet)).map((x) => x.packet);
      assert.deepEqual(streams(out), streams(inputs.map((x) => x.packet)), `seed ${SEED ^ 0x7654321} batch ${n}`);
    }
  });
});
