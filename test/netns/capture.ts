// Packet capture for wire-level assertions: tcpdump inside a test namespace writes pcap to its
// stdout, parsed here as it arrives. Only the UDP datagrams are kept, with their WireGuard header
// decoded (type; receiver index and counter of transport messages), so a test can say "no
// transport message under this receiver index left after this moment" or "no counter reached
// REJECT_AFTER_MESSAGES".
import type { ChildProcess } from 'node:child_process';
import { type NetLab, sleep, waitFor } from './harness.ts';
import { formatAddress } from '../../src/wireguard/prefix.ts';

export interface WireDatagram {
  /** Capture time, milliseconds since the epoch (the kernel's CLOCK_REALTIME, like Date.now()). */
  time: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** UDP payload length (the whole message, even though only its start was captured). */
  length: number;
  /** WireGuard message type (first byte of the payload). */
  type: number;
  /** Transport messages (type 4): receiver index and counter. */
  receiver?: number;
  counter?: bigint;
}

const SNAPLEN = 128; // Ethernet + IPv6 + UDP + the 16-byte transport header fit

export class Capture {
  readonly datagrams: WireDatagram[] = [];
  private readonly child: ChildProcess;
  private pending: Buffer = Buffer.alloc(0);
  private header: { le: boolean; nano: boolean; linktype: number } | null = null;
  private stderr = '';
  private readonly exited: Promise<void>;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.on('data', (d: Buffer) => this.feed(d));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /**
   * Capture UDP on `iface` inside `ns`; resolves once tcpdump is listening. UDP segmentation
   * offload is turned off on `iface` first: a UDP GSO run (weft-wg sends one per burst) otherwise
   * passes a veth, and the tap, whole; without it the kernel cuts the run into datagrams before
   * the tap, as it must for a NIC without the offload, so the capture sees the wire's datagrams.
   */
  static async start(lab: NetLab, ns: string, iface: string): Promise<Capture> {
    await lab.exec(ns, ['ethtool', '-K', iface, 'tx-udp-segmentation', 'off']);
    const child = lab.spawn(ns, ['tcpdump', '-i', iface, '-n', '-U', '--immediate-mode', '-s', String(SNAPLEN), '-w', '-', 'udp']);
    const cap = new Capture(child);
    await waitFor(`tcpdump listening on ${iface}`, () => {
      if (child.exitCode !== null) throw new Error(`tcpdump exited: ${cap.stderr}`);
      return cap.stderr.includes('listening on');
    }, 10_000);
    return cap;
  }

  /** Stop tcpdump (it flushes what it has) and wait for it, bounded. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid) {
      try {
        process.kill(this.child.pid, 'SIGINT');
      } catch {}
      await Promise.race([this.exited, sleep(5000)]);
    }
  }

  /** Datagrams from `src` (address) captured after `since` (ms epoch, default all). */
  from(src: string, since = 0): WireDatagram[] {
    return this.datagrams.filter((d) => d.src === src && d.time >= since);
  }

  private feed(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    if (!this.header) {
      if (this.pending.length < 24) return;
      const magicLe = this.pending.readUInt32LE(0);
      const le = magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d;
      const magic = le ? magicLe : this.pending.readUInt32BE(0);
      if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`not a pcap stream (magic ${magic.toString(16)})`);
      const linktype = le ? this.pending.readUInt32LE(20) : this.pending.readUInt32BE(20);
      this.header = { le, nano: magic === 0xa1b23c4d, linktype };
      off = 24;
    }
    const h = this.header;
    const u32 = (o: number) => (h.le ? this.pending.readUInt32LE(o) : this.pending.readUInt32BE(o));
    while (this.pending.length - off >= 16) {
      const sec = u32(off);
      const frac = u32(off + 4);
      const incl = u32(off + 8);
      if (this.pending.length - off - 16 < incl) break;
      const frame = this.pending.subarray(off + 16, off + 16 + incl);
      off += 16 + incl;
      const time = sec * 1000 + (h.nano ? frac / 1e6 : frac / 1e3);
      const d = decodeFrame(frame, h.linktype, time);
      if (d) this.datagrams.push(d);
    }
    this.pending = this.pending.subarray(off);
  }
}

function decodeFrame(frame: Buffer, linktype: number, time: number): WireDatagram | null {
  let ipOff: number;
  if (linktype === 1) ipOff = 14; // Ethernet
  else if (linktype === 113) ipOff = 16; // Linux cooked
  else if (linktype === 101) ipOff = 0; // raw IP
  else return null;
  if (frame.length < ipOff + 1) return null;
  const version = frame[ipOff]! >> 4;
  let src: string;
  let dst: string;
  let udpOff: number;
  if (version === 4) {
    const ihl = (frame[ipOff]! & 0x0f) * 4;
    if (frame[ipOff + 9] !== 17) return null;
    src = [...frame.subarray(ipOff + 12, ipOff + 16)].join('.');
    dst = [...frame.subarray(ipOff + 16, ipOff + 20)].join('.');
    udpOff = ipOff + ihl;
  } else if (version === 6) {
    if (frame[ipOff + 6] !== 17) return null; // no extension headers on this underlay
    src = v6(frame.subarray(ipOff + 8, ipOff + 24));
    dst = v6(frame.subarray(ipOff + 24, ipOff + 40));
    udpOff = ipOff + 40;
  } else {
    return null;
  }
  if (frame.length < udpOff + 9) return null;
  const d: WireDatagram = {
    time,
    src,
    dst,
    srcPort: frame.readUInt16BE(udpOff),
    dstPort: frame.readUInt16BE(udpOff + 2),
    length: frame.readUInt16BE(udpOff + 4) - 8,
    type: frame[udpOff + 8]!,
  };
  const p = udpOff + 8;
  if (d.type === 4 && frame.length >= p + 16) {
    d.receiver = frame.readUInt32LE(p + 4);
    d.counter = frame.readBigUInt64LE(p + 8);
  }
  return d;
}

/** Compressed like the harness's addresses are written (fd00:77::1). */
function v6(b: Buffer): string {
  return formatAddress(6, b);
}
