// Two namespaces joined by a veth underlay (IPv4 + IPv6), one WireGuard device in each, configured
// only through the `wg` tool (the control socket), with tunnel addresses for both families.
//
//   ns A  veth 192.168.77.1/24 fd00:77::1/64 ─── veth 192.168.77.2/24 fd00:77::2/64  ns B
//   wg A  10.77.0.1/24 fd00:77:77::1/64     ════ tunnel ════     10.77.0.2/24 fd00:77:77::2/64  wg B
//
// A (the initiator) is given B's endpoint; B is not given A's (unless asked), so A's first packet
// starts the handshake and B learns A's endpoint from it — which side initiates is fixed.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { type NetLab, run, waitFor } from './harness.ts';
import { type DeviceHandle, type WgImpl, startDevice } from './impl.ts';

export type Family = 'v4' | 'v6';

export interface Side {
  label: 'A' | 'B';
  ns: string;
  ifname: string;
  impl: WgImpl;
  device: DeviceHandle;
  veth: string;
  privateKey: string;
  publicKey: string;
  listenPort: number;
  /** Current underlay addresses (without prefix length). */
  underlay: { v4: string; v6: string };
  tunnel: { v4: string; v6: string };
}

export interface PairOptions {
  initiator: WgImpl;
  responder: WgImpl;
  /** Address family of the outer (underlay) endpoint. Default v4. */
  outer?: Family;
  /** Also give B an endpoint for A (then either side may initiate). Default false. */
  responderKnowsEndpoint?: boolean;
  /** veth MTU. Default 1500. */
  mtu?: number;
  /** Prefix for namespace short names (several pairs in one lab). Default ''. */
  tag?: string;
  /** Extra environment for both device processes (e.g. WEFT_WG_TEST_HOOKS=1). */
  env?: Record<string, string>;
}

export interface DumpPeer {
  publicKey: string;
  presharedKey: string;
  endpoint: string | null;
  allowedIps: string[];
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: string;
}

export interface WgDump {
  privateKey: string;
  publicKey: string;
  listenPort: number;
  fwmark: string;
  peers: DumpPeer[];
}

/** Parse `wg show IF dump` for one interface. */
export function parseDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines.shift()?.split('\t');
  if (!head || head.length < 4) throw new Error(`unexpected wg dump header: ${JSON.stringify(text.slice(0, 200))}`);
  const peers = lines.map((l): DumpPeer => {
    const f = l.split('\t');
    if (f.length < 8) throw new Error(`unexpected wg dump peer line: ${JSON.stringify(l)}`);
    return {
      publicKey: f[0]!,
      presharedKey: f[1]!,
      endpoint: f[2] === '(none)' ? null : f[2]!,
      allowedIps: f[3] === '(none)' ? [] : f[3]!.split(','),
      latestHandshake: Number(f[4]),
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: f[7]!,
    };
  });
  return { privateKey: head[0]!, publicKey: head[1]!, listenPort: Number(head[2]), fwmark: head[3]!, peers };
}

export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export interface PingResult {
  transmitted: number;
  received: number;
  /** Round-trip times in ms of the replies. */
  rtts: number[];
}

export interface IperfResult {
  /** Receiver-side bitrate in bit/s. */
  bitsPerSecond: number;
  /** Sender-side bitrate in bit/s. */
  senderBitsPerSecond: number;
  retransmits: number;
  seconds: number;
}

export async function genKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await run('wg', ['genkey'])).stdout.trim();
  const publicKey = (await run('wg', ['pubkey'], { input: privateKey + '\n' })).stdout.trim();
  return { privateKey, publicKey };
}

export const pairAddresses = {
  A: { underlay: { v4: '192.168.77.1', v6: 'fd00:77::1' }, tunnel: { v4: '10.77.0.1', v6: 'fd00:77:77::1' }, port: 51001 },
  B: { underlay: { v4: '192.168.77.2', v6: 'fd00:77::2' }, tunnel: { v4: '10.77.0.2', v6: 'fd00:77:77::2' }, port: 51002 },
} as const;

export class WgPair {
  readonly lab: NetLab;
  readonly a: Side;
  readonly b: Side;
  readonly outer: Family;
  readonly dir: string;
  private iperfServer: IperfServer | null = null;

  private constructor(lab: NetLab, a: Side, b: Side, outer: Family, dir: string) {
    this.lab = lab;
    this.a = a;
    this.b = b;
    this.outer = outer;
    this.dir = dir;
  }

  /** Build the topology and both devices; throws if either implementation fails to start. */
  static async create(lab: NetLab, opts: PairOptions): Promise<WgPair> {
    const outer = opts.outer ?? 'v4';
    const tag = opts.tag ?? '';
    const A = pairAddresses.A;
    const B = pairAddresses.B;
    const { nsA, nsB, vethA, vethB } = await buildUnderlay(lab, { tag, mtu: opts.mtu });
    const dir = lab.tempDir(`pair${tag}`);
    const ifA = lab.ifname();
    const ifB = lab.ifname();
    const devOpts = { env: opts.env };
    const [devA, devB] = await Promise.all([startDevice(lab, nsA, opts.initiator, ifA, devOpts), startDevice(lab, nsB, opts.responder, ifB, devOpts)]);
    const [kA, kB] = await Promise.all([genKeyPair(), genKeyPair()]);
    const side = (label: 'A' | 'B', ns: string, ifname: string, impl: WgImpl, device: DeviceHandle, veth: string, k: { privateKey: string; publicKey: string }, addr: typeof A | typeof B): Side => ({
      label,
      ns,
      ifname,
      impl,
      device,
      veth,
      privateKey: k.privateKey,
      publicKey: k.publicKey,
      listenPort: addr.port,
      underlay: { ...addr.underlay },
      tunnel: { ...addr.tunnel },
    });
    const pair = new WgPair(lab, side('A', nsA, ifA, opts.initiator, devA, vethA, kA, A), side('B', nsB, ifB, opts.responder, devB, vethB, kB, B), outer, dir);
    const a = pair.a;
    const b = pair.b;
    await pair.wg(a, ['set', a.ifname, 'private-key', pair.keyFile(a.privateKey), 'listen-port', String(a.listenPort),
      'peer', b.publicKey, 'endpoint', formatEndpoint(b.underlay[outer], b.listenPort), 'allowed-ips', `${b.tunnel.v4}/32,${b.tunnel.v6}/128`]);
    await pair.wg(b, ['set', b.ifname, 'private-key', pair.keyFile(b.privateKey), 'listen-port', String(b.listenPort),
      'peer', a.publicKey, ...(opts.responderKnowsEndpoint ? ['endpoint', formatEndpoint(a.underlay[outer], a.listenPort)] : []),
      'allowed-ips', `${a.tunnel.v4}/32,${a.tunnel.v6}/128`]);
    for (const s of [a, b]) {
      await lab.exec(s.ns, ['ip', 'addr', 'add', `${s.tunnel.v4}/24`, 'dev', s.ifname]);
      await lab.exec(s.ns, ['ip', 'addr', 'add', `${s.tunnel.v6}/64`, 'dev', s.ifname, 'nodad']);
      await lab.exec(s.ns, ['ip', 'link', 'set', s.ifname, 'up']);
    }
    return pair;
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a;
  }

  /** Write a key to a 0600 file in the pair's temp dir and return its path. */
  keyFile(key: string): string {
    const file = path.join(this.dir, `key-${Math.random().toString(36).slice(2)}`);
    fs.writeFileSync(file, key + '\n', { mode: 0o600 });
    return file;
  }

  /** Run `wg ARGS` inside the side's namespace. */
  async wg(s: Side, args: string[], opts: { allowFail?: boolean; input?: string } = {}) {
    return this.lab.exec(s.ns, ['wg', ...args], { timeoutMs: 15_000, ...opts });
  }

  async dump(s: Side): Promise<WgDump> {
    return parseDump((await this.wg(s, ['show', s.ifname, 'dump'])).stdout);
  }

  /** The peer entry on `s` for the other side (by its current public key), or undefined. */
  async peerOf(s: Side, publicKey = this.other(s).publicKey): Promise<DumpPeer | undefined> {
    return (await this.dump(s)).peers.find((p) => p.publicKey === publicKey);
  }

  /** ping from a side's namespace; never throws on loss. */
  async ping(from: Side, to: string, opts: PingOptions = {}): Promise<PingResult> {
    return pingFrom(this.lab, from.ns, to, opts);
  }

  /** Wait until one ping from `from` to `to` is answered. */
  async waitPing(from: Side, to: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(`ping ${from.label} → ${to}`, async () => (await this.ping(from, to, { count: 1, waitSec: 1 })).received > 0, timeoutMs, 100);
  }

  /** iperf3 TCP from A to `to` (B's address); reverse = B sends. */
  async iperf(to: string, opts: IperfOptions = {}): Promise<IperfResult> {
    this.iperfServer ??= new IperfServer(this.lab, this.b.ns, opts.port);
    return this.iperfServer.run(this.a.ns, to, opts);
  }

  /**
   * Move a side's underlay address of `family` to `newAddr` on its veth: add the new one, delete
   * the old one. The prefix lengths are the topology's (/24, /64).
   */
  async changeUnderlay(s: Side, family: Family, newAddr: string): Promise<void> {
    const len = family === 'v4' ? 24 : 64;
    await this.lab.exec(s.ns, ['ip', 'addr', 'add', `${newAddr}/${len}`, 'dev', s.veth, ...(family === 'v6' ? ['nodad'] : [])]);
    await this.lab.exec(s.ns, ['ip', 'addr', 'del', `${s.underlay[family]}/${len}`, 'dev', s.veth]);
    s.underlay[family] = newAddr;
  }

  /** Give a side a new private key (through `wg set`) and tell the other side about it. */
  async rotateKey(s: Side): Promise<void> {
    const o = this.other(s);
    const k = await genKeyPair();
    const old = s.publicKey;
    await this.wg(s, ['set', s.ifname, 'private-key', this.keyFile(k.privateKey)]);
    s.privateKey = k.privateKey;
    s.publicKey = k.publicKey;
    const existing = (await this.dump(o)).peers.find((p) => p.publicKey === old);
    const endpoint = existing?.endpoint ? ['endpoint', existing.endpoint] : [];
    await this.wg(o, ['set', o.ifname, 'peer', old, 'remove', 'peer', k.publicKey, ...endpoint, 'allowed-ips', `${s.tunnel.v4}/32,${s.tunnel.v6}/128`]);
  }
}

/** Namespaces A and B joined by a veth with the pair's underlay addresses (see pairAddresses). */
export async function buildUnderlay(lab: NetLab, opts: { tag?: string; mtu?: number } = {}): Promise<{ nsA: string; nsB: string; vethA: string; vethB: string }> {
  const tag = opts.tag ?? '';
  const nsA = await lab.namespace(`${tag}a`);
  const nsB = await lab.namespace(`${tag}b`);
  const A = pairAddresses.A;
  const B = pairAddresses.B;
  const [vethA, vethB] = await lab.veth(nsA, nsB, {
    a: [`${A.underlay.v4}/24`, `${A.underlay.v6}/64`],
    b: [`${B.underlay.v4}/24`, `${B.underlay.v6}/64`],
    mtu: opts.mtu,
  });
  // Roaming tests delete the primary address; keep the secondaries when that happens.
  for (const [ns, v] of [[nsA, vethA], [nsB, vethB]] as const) {
    await lab.exec(ns, ['sysctl', '-q', '-w', `net.ipv4.conf.${v}.promote_secondaries=1`]);
  }
  return { nsA, nsB, vethA, vethB };
}

export interface PingOptions {
  count?: number;
  /** Seconds between pings. */
  interval?: number;
  /** Seconds to wait for each reply. */
  waitSec?: number;
  /** Overall deadline in seconds (ping -w). */
  deadlineSec?: number;
}

/** ping from a namespace; never throws on loss. */
export async function pingFrom(lab: NetLab, ns: string, to: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const interval = opts.interval ?? 0.2;
  const deadline = opts.deadlineSec ?? Math.ceil(count * interval + (opts.waitSec ?? 1) + 2);
  const r = await lab.exec(ns, ['ping', '-n', '-c', String(count), '-i', String(interval), '-W', String(opts.waitSec ?? 1), '-w', String(deadline), to], {
    allowFail: true,
    timeoutMs: (deadline + 5) * 1000,
  });
  return parsePing(r.stdout);
}

export interface IperfOptions {
  seconds?: number;
  /** -R: the server side sends. */
  reverse?: boolean;
  parallel?: number;
  port?: number;
}

/** An iperf3 server in one namespace, started on first use, stopped by the lab's cleanup. */
export class IperfServer {
  readonly lab: NetLab;
  readonly ns: string;
  readonly port: number;
  private child: ChildProcess | null = null;

  constructor(lab: NetLab, ns: string, port = 5201) {
    this.lab = lab;
    this.ns = ns;
    this.port = port;
  }

  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    const srv = this.lab.spawn(this.ns, ['iperf3', '-s', '-p', String(this.port)]);
    this.child = srv;
    let out = '';
    srv.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    srv.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    // iperf3 block-buffers stdout on a pipe: look for the listening socket instead.
    await waitFor('iperf3 server listening', async () => {
      if (srv.exitCode !== null) return true;
      const ss = await this.lab.exec(this.ns, ['ss', '-Htln', `sport = :${this.port}`], { allowFail: true });
      return ss.stdout.trim() !== '';
    }, 5000);
    if (srv.exitCode !== null) throw new Error(`iperf3 server exited: ${out}`);
  }

  /** Run an iperf3 TCP client in `clientNs` against `to` (an address of the server namespace). */
  async run(clientNs: string, to: string, opts: IperfOptions = {}): Promise<IperfResult> {
    await this.start();
    const seconds = opts.seconds ?? 2;
    const args = ['iperf3', '-c', to, '-p', String(this.port), '-t', String(seconds), '-J', '--connect-timeout', '5000'];
    if (opts.reverse) args.push('-R');
    if (opts.parallel && opts.parallel > 1) args.push('-P', String(opts.parallel));
    const r = await this.lab.exec(clientNs, args, { allowFail: true, timeoutMs: (seconds + 30) * 1000 });
    let j: any;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 output is not JSON (exit ${r.code}): ${(r.stdout + r.stderr).slice(0, 500)}`);
    }
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const recv = j.end?.sum_received;
    const sent = j.end?.sum_sent;
    return {
      bitsPerSecond: Number(recv?.bits_per_second ?? 0),
      senderBitsPerSecond: Number(sent?.bits_per_second ?? 0),
      retransmits: Number(sent?.retransmits ?? 0),
      seconds: Number(recv?.seconds ?? 0),
    };
  }
}

export function parsePing(out: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const rtts = [...out.matchAll(/time=([\d.]+) ms/g)].map((x) => Number(x[1]));
  return { transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, rtts };
}

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

