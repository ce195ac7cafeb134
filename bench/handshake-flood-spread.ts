// A handshake flood spread over the ten devices of a gateway, side by side for weft-wg and
// wireguard-go builds in one run: does the control plane stay responsive and does a real peer
// still get through? Not a test: it prints a table and writes
// bench/results/handshake-flood-spread-<date>.json. A missing or broken implementation is reported
// in the table, never fatal.
//
//   node bench/handshake-flood-spread.ts [--devices 10] [--binds 8] [--flood-rate 50000] [--seconds 15]
//                                        [--settle 2] [--get-interval-ms 20] [--wg-sets 20] [--peer-runs 3]
//                                        [--idle-seconds 3] [--flood-nice=-10] [--impls weft-wg,wireguard-go,PATH]
//                                        [--out DIR]
//
// Per implementation, one fresh lab (test/netns harness NetLab: namespaces A and B joined by a
// veth, 192.168.78.1/24 ⇄ 192.168.78.2/24, removed in a `finally`, also on SIGINT/SIGTERM/SIGHUP;
// nothing is added to the root namespace):
//
//   B  --devices devices listening on 52000… (all up; device 0 has the real peer, 10.78.0.2/24).
//      weft-wg: ONE process holding them all (test/netns/fixtures/device-host.ts), as a gateway
//      runs one device per peering, so they share one handshake budget. Any other implementation
//      (wireguard-go has one device per process): one process per device.
//   A  the real peer, a device of the same implementation (10.78.0.1/24), up but without its peer
//      until it is measured; and test/netns/handshake-flood.ts: mac1-valid initiations with random
//      content at --flood-rate in total, spread evenly over every device's port, from --binds
//      addresses (4 sockets each), at raised priority (--flood-nice) so that it reaches the same
//      rate whichever responder shares the machine with it (a real attacker has its own CPUs).
//
//   1. Idle (no flood): control-socket `get=1` round trips on every device for --idle-seconds,
//      --wg-sets/4 `wg set` add/remove pairs, one real-peer start.
//   2. The flood starts; after --settle s (its rate established; for weft-wg every device has sent
//      cookie replies) the window opens, and these run at the same time:
//        - `get=1` on the devices' sockets one after another, a round every --get-interval-ms;
//        - --wg-sets pairs, spread over the devices: `wg set IF peer <new key> allowed-ips
//          10.200.x.y/32`, then `wg set IF peer <key> remove`, each timed as a whole command;
//        - --peer-runs real-peer starts: `wg set` gives the peer in A its peer (key, endpoint,
//          allowed-ips), and a ping through the tunnel every 50 ms is timed from that command's
//          start to its first reply (bounded at 30 s; the goal is < 2 × REKEY_TIMEOUT = 10 s);
//          between runs the peer is removed again.
//      The window lasts --seconds, or until the peer runs are done if they take longer. Then the
//      flood is stopped and reports what it sent and the cookie replies it heard.
//   3. The responder's CPU seconds (all its processes, /proc) over the flood; for weft-wg its
//      `stats=1` counters (summed over the devices); the kernel's UDP counters in both namespaces
//      (receive-buffer drops); and whether the tunnel still answers after the flood.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, repoRoot, sleep } from '../test/netns/harness.ts';
import { procUsage, socketPath, startDevice, weftWg, type WgImpl } from '../test/netns/impl.ts';
import type { FloodReport } from '../test/netns/handshake-flood.ts';
import { readStats, uapi } from '../test/netns/uapi-client.ts';
import { generatePrivateKey, publicKeyOf } from '../src/wireguard/crypto.ts';
import { toBase64 } from '../src/wireguard/keys.ts';
import {
  attempt,
  benchArgs,
  checkInterrupt,
  errMsg,
  firstReply,
  implsFromList,
  labsCleanedOnInterrupt,
  interrupted,
  interruptSignal,
  machineInfo,
  percentile,
  run,
  start,
  table,
  wallMs,
  writeResult,
  type Cell,
  niceArg,
  usageExit,
} from './common.ts';

const USAGE = `usage: node bench/handshake-flood-spread.ts [--devices 10] [--binds 8] [--flood-rate 50000] [--seconds 15]
                                            [--settle 2] [--get-interval-ms 20] [--wg-sets 20] [--peer-runs 3]
                                            [--idle-seconds 3] [--flood-nice=-10] [--impls weft-wg,wireguard-go,PATH]
                                            [--out DIR]`;

const usageError = (msg: string): never => usageExit(USAGE, msg);

const opt = benchArgs(USAGE, {
  options: {
    devices: { type: 'string', default: '10' },
    binds: { type: 'string', default: '8' },
    'flood-rate': { type: 'string', default: '50000' },
    seconds: { type: 'string', default: '15' },
    settle: { type: 'string', default: '2' },
    'get-interval-ms': { type: 'string', default: '20' },
    'wg-sets': { type: 'string', default: '20' },
    'peer-runs': { type: 'string', default: '3' },
    'idle-seconds': { type: 'string', default: '3' },
    'flood-nice': { type: 'string', default: '-10' },
    impls: { type: 'string', default: 'weft-wg,wireguard-go' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
}).values;

/** A number in [min, max] (whole unless integer is false); else exit 2. */
function num(name: string, v: string | undefined, min: number, max: number, integer = true): number {
  const n = v !== undefined && /^\s*[0-9.e+]+\s*$/i.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    usageError(`--${name} must be a ${integer ? 'whole ' : ''}number in [${min}, ${max}], not ${JSON.stringify(v)}`);
  }
  return n;
}
const deviceCount = num('devices', opt.devices, 1, 64);
const bindCount = num('binds', opt.binds, 1, 100);
const floodRate = num('flood-rate', opt['flood-rate'], 1, 1_000_000);
const seconds = num('seconds', opt.seconds, 1, 120, false);
const settle = num('settle', opt.settle, 0.5, 30, false);
const getIntervalMs = num('get-interval-ms', opt['get-interval-ms'], 0, 5000);
const wgSets = num('wg-sets', opt['wg-sets'], 0, 500);
const peerRuns = num('peer-runs', opt['peer-runs'], 1, 10);
const idleSeconds = num('idle-seconds', opt['idle-seconds'], 0, 60, false);
/** The flood's scheduling priority: raised, so it reaches the same rate whatever the responder's CPU use (an attacker has its own CPUs). */
const floodNice = niceArg(USAGE, 'flood-nice', opt['flood-nice']);
if (!String(opt.impls).split(',').some((x) => x.trim())) usageError('--impls names no implementation');
if (!String(opt.out).trim()) usageError('--out must name a directory');

/** Bounds. */
const PEER_BOUND_MS = 30_000;
const PROBE_INTERVAL_S = 0.05;
/** The flood stops by itself after this long even if this script hangs. */
const floodMaxSeconds = Math.ceil(settle + seconds + peerRuns * (PEER_BOUND_MS / 1000 + 2) + 15);
const BASE_PORT = 52000;
const UNDERLAY = { a: '192.168.78.1', b: '192.168.78.2' };
const TUNNEL = { a: '10.78.0.1', b: '10.78.0.2' };
const FLOOD = path.join(repoRoot, 'test/netns/handshake-flood.ts');
const DEVICE_HOST = path.join(repoRoot, 'test/netns/fixtures/device-host.ts');

// ---- interrupts: the generators and floods run inside the labs (lab.spawn), which go with them.

const labs = labsCleanedOnInterrupt();

// ---- results ----------------------------------------------------------------------------------

interface Latency {
  samples: number;
  failures: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The slowest few, ms (to tell one outlier from a tail). */
  slowestMs: number[];
}

interface PeerStart {
  /** `wg set` on the real peer → first ping reply through the tunnel, ms (NaN: none within the bound). */
  runsMs: number[];
  medianMs: number;
  maxMs: number;
  /** Runs within 2 × REKEY_TIMEOUT (10 s). */
  within10s: number;
  errors?: string[];
}


interface Phase {
  get: Latency;
  /** Per device: the slowest `get=1` (ms). */
  getMaxPerDevice: number[];
  /** `get=1` answers slower than 50 ms: when (s into the phase), which device, how long (first 50). */
  getOver50ms: { atS: number; device: number; ms: number }[];
  wgSet: Latency;
  peer: PeerStart;
}

interface FloodPhase extends Phase {
  /** The window's length (s). */
  windowSeconds: number;
  flood: FloodReport & { targetRate: number };
  /** Responder process(es) CPU seconds from the flood's start to its end, and its wall seconds. */
  responderCpuSeconds: number;
  floodWallSeconds: number;
  /** weft-wg: `stats=1` counters summed over the devices, difference over the flood. */
  responderCounters?: Record<string, number>;
  /** weft-wg: cookie replies per device (stats), in device order. */
  cookieRepliesPerDevice?: number[];
  /** Kernel UDP counters (/proc/net/snmp) in B and A, difference over the flood. */
  kernelUdpB?: Record<string, number>;
  kernelUdpA?: Record<string, number>;
}

interface ImplResult {
  subject: string;
  command?: string[];
  version?: string;
  /** One process holding every device, or one per device. */
  processes?: number;
  error?: string;
  idle?: Cell<Phase>;
  flood?: Cell<FloodPhase>;
  responsiveAfterFlood?: boolean;
}

// ---- measuring helpers ------------------------------------------------------------------------

function latency(values: number[], failures: number): Latency {
  const sorted = [...values].sort((x, y) => y - x);
  return {
    samples: values.length,
    failures,
    p50Ms: percentile(values, 50),
    p99Ms: percentile(values, 99),
    maxMs: values.length ? sorted[0]! : NaN,
    slowestMs: sorted.slice(0, 5).map((x) => Math.round(x * 10) / 10),
  };
}

/**
 * `get=1` round trips to every socket, one after another, a round every intervalMs, until
 * stopped. A socket that does not answer within uapi's 5 s is a failure (counted at 5000 ms).
 */
function sampleGets(sockets: string[], intervalMs: number) {
  let running = true;
  const values: number[] = [];
  const perDevice = sockets.map(() => 0);
  let failures = 0;
  const over50: { atS: number; device: number; ms: number }[] = [];
  const t00 = performance.now();
  const loop = (async () => {
    while (running) {
      for (const [i, s] of sockets.entries()) {
        const t0 = performance.now();
        let ok = false;
        try {
          ok = /errno=0\n\n$/.test(await uapi(s, 'get=1\n\n'));
        } catch {}
        const dt = performance.now() - t0;
        if (!ok) failures++;
        values.push(dt);
        perDevice[i] = Math.max(perDevice[i]!, dt);
        if (dt > 50 && over50.length < 50) over50.push({ atS: Math.round((t0 - t00) / 10) / 100, device: i, ms: Math.round(dt) });
      }
      if (intervalMs) await sleep(intervalMs);
    }
  })();
  return {
    async stop(): Promise<{ get: Latency; getMaxPerDevice: number[]; getOver50ms: { atS: number; device: number; ms: number }[] }> {
      running = false;
      await loop;
      return { get: latency(values, failures), getMaxPerDevice: perDevice.map((x) => Math.round(x * 10) / 10), getOver50ms: over50 };
    },
  };
}

/** `wg set` add/remove pairs spread over the devices and over spanMs; each command timed. */
async function wgSetPairs(names: string[], pairs: number, spanMs: number, stop: () => boolean): Promise<Latency> {
  const values: number[] = [];
  let failures = 0;
  const gap = pairs ? spanMs / pairs : 0;
  const timed = async (args: string[]) => {
    const t0 = performance.now();
    // `wg` reaches a userspace device through its socket in /var/run/wireguard, whatever the
    // namespace; with the socket present it never touches the kernel.
    const r = await run('wg', args, { allowFail: true, timeoutMs: 15_000 }).catch(() => ({ code: 1 }));
    values.push(performance.now() - t0);
    if (r.code !== 0) failures++;
  };
  for (let i = 0; i < pairs && !stop(); i++) {
    const t0 = performance.now();
    const name = names[i % names.length]!;
    const key = toBase64(publicKeyOf(generatePrivateKey()));
    await timed(['set', name, 'peer', key, 'allowed-ips', `10.200.${(i >> 8) & 255}.${i & 255}/32`]);
    await timed(['set', name, 'peer', key, 'remove']);
    const left = gap - (performance.now() - t0);
    if (left > 0) await sleep(left);
  }
  return latency(values, failures);
}

/** Kernel UDP counters of a namespace (/proc/net/snmp, the reader's namespace). */
async function udpCounters(lab: NetLab, ns: string): Promise<Record<string, number> | null> {
  const r = await lab.exec(ns, ['cat', '/proc/net/snmp'], { allowFail: true });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return null;
  const keys = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

function diff(a: Record<string, number | bigint> | null, b: Record<string, number | bigint> | null, keep: (k: string) => boolean = () => true): Record<string, number> | undefined {
  if (!a || !b) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (keep(k) && a[k] !== undefined && Number(v) !== Number(a[k])) out[k] = Number(v) - Number(a[k]);
  return out;
}

// ---- one implementation ---------------------------------------------------------------------

interface Lab {
  lab: NetLab;
  impl: WgImpl;
  nsA: string;
  nsB: string;
  names: string[];
  sockets: string[];
  /** The responder's processes. */
  pids: number[];
  peerIf: string;
  /** Device 0's public key (what the real peer is given). */
  device0Key: string;
  deviceKeys: string[];
  /** The real peer's own public key, as device 0 knows it. */
  peerKey: string;
  oneProcess: boolean;
}

const isWeft = (impl: WgImpl) => impl.name === weftWg.name;

function keyFile(dir: string, key: Uint8Array): string {
  const f = path.join(dir, `key-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(f, toBase64(key) + '\n', { mode: 0o600 });
  return f;
}

async function build(lab: NetLab, impl: WgImpl): Promise<Lab> {
  const dir = lab.tempDir('fs');
  const nsA = await lab.namespace('fa');
  const nsB = await lab.namespace('fb');
  const [vethA] = await lab.veth(nsA, nsB, { a: [`${UNDERLAY.a}/24`], b: [`${UNDERLAY.b}/24`] });
  await run('ip', ['-n', nsA, '-batch', '-'], { input: Array.from({ length: bindCount }, (_, i) => `addr add 192.168.78.${100 + i}/24 dev ${vethA}\n`).join('') });
  const names = Array.from({ length: deviceCount }, () => lab.ifname('wh'));
  const oneProcess = isWeft(impl);
  const pids: number[] = [];
  if (oneProcess) {
    const host = lab.spawn(nsB, [nodeBin, DEVICE_HOST, ...names]);
    let out = '';
    host.stdout!.on('data', (d) => (out += d));
    host.stderr!.on('data', (d) => (out = (out + d).slice(-2000)));
    const deadline = Date.now() + 30_000;
    while (!out.includes('ready')) {
      if (host.exitCode !== null || host.signalCode !== null) throw new Error(`device host exited: ${out.trim().slice(-300)}`);
      if (Date.now() > deadline) throw new Error(`device host not ready after 30 s: ${out.trim().slice(-300)}`);
      await sleep(50);
    }
    pids.push(host.pid!);
  } else {
    for (const n of names) pids.push((await startDevice(lab, nsB, impl, n)).pid);
  }
  const keys = names.map(() => generatePrivateKey());
  const peerPriv = generatePrivateKey();
  const peerKey = toBase64(publicKeyOf(peerPriv));
  for (const [i, name] of names.entries()) {
    const f = keyFile(dir, keys[i]!);
    const peer = i === 0 ? ['peer', peerKey, 'allowed-ips', `${TUNNEL.a}/32`] : [];
    await lab.exec(nsB, ['wg', 'set', name, 'private-key', f, 'listen-port', String(BASE_PORT + i), ...peer]);
    fs.rmSync(f, { force: true });
  }
  await lab.exec(nsB, ['ip', 'addr', 'add', `${TUNNEL.b}/24`, 'dev', names[0]!]);
  // Every device up: wireguard-go opens its UDP port only when its interface is up.
  await run('ip', ['-n', nsB, '-batch', '-'], { input: names.map((n) => `link set ${n} up\n`).join('') });
  // The real peer in A: same implementation, its own process, no peer yet.
  const peerIf = lab.ifname('wr');
  await startDevice(lab, nsA, impl, peerIf);
  const pf = keyFile(dir, peerPriv);
  await lab.exec(nsA, ['wg', 'set', peerIf, 'private-key', pf]);
  fs.rmSync(pf, { force: true });
  await lab.exec(nsA, ['ip', 'addr', 'add', `${TUNNEL.a}/24`, 'dev', peerIf]);
  await lab.exec(nsA, ['ip', 'link', 'set', peerIf, 'up']);
  const deviceKeys = keys.map((k) => toBase64(publicKeyOf(k)));
  return { lab, impl, nsA, nsB, names, sockets: names.map(socketPath), pids, peerIf, device0Key: deviceKeys[0]!, deviceKeys, peerKey, oneProcess };
}

const responderCpu = (l: Lab) => l.pids.reduce((s, p) => s + procUsage(p).cpuSeconds, 0);
const responderAlive = (l: Lab) => l.pids.every((p) => fs.existsSync(`/proc/${p}`));

/** Real-peer starts, one after another: `wg set` (its peer) → first ping reply; removed between runs. */
async function peerStarts(l: Lab, runs: number, keepLast: boolean): Promise<PeerStart> {
  const runsMs: number[] = [];
  const errors: string[] = [];
  for (let r = 0; r < runs; r++) {
    checkInterrupt();
    const t0 = wallMs();
    try {
      await l.lab.exec(l.nsA, ['wg', 'set', l.peerIf, 'peer', l.device0Key, 'endpoint', `${UNDERLAY.b}:${BASE_PORT}`, 'allowed-ips', `${TUNNEL.b}/32`]);
      const at = (await firstReply(l.nsA, TUNNEL.b, t0 + PEER_BOUND_MS, PROBE_INTERVAL_S)).atMs;
      runsMs.push(Math.round(at - t0));
    } catch (e) {
      runsMs.push(NaN);
      errors.push(errMsg(e));
    }
    if (r < runs - 1 || !keepLast) {
      await l.lab.exec(l.nsA, ['wg', 'set', l.peerIf, 'peer', l.device0Key, 'remove'], { allowFail: true });
      await sleep(1000);
    }
  }
  const ok = runsMs.filter(Number.isFinite);
  return {
    runsMs,
    medianMs: percentile(ok, 50),
    maxMs: ok.length === runsMs.length ? Math.max(...ok) : NaN,
    within10s: ok.filter((x) => x < 10_000).length,
    ...(errors.length ? { errors } : {}),
  };
}

async function idlePhase(l: Lab): Promise<Phase> {
  const sampler = sampleGets(l.sockets, getIntervalMs);
  const idlePairs = Math.ceil(wgSets / 4);
  const [wgSet] = await Promise.all([wgSetPairs(l.names, idlePairs, idleSeconds * 1000, () => false), sleep(idleSeconds * 1000)]);
  const peer = await peerStarts(l, 1, false);
  const g = await sampler.stop();
  return { ...g, wgSet, peer };
}

async function floodPhase(l: Lab): Promise<FloodPhase> {
  const { lab } = l;
  const stats0 = l.oneProcess ? await Promise.all(l.sockets.map((s) => readStats(s))) : null;
  const [udpB0, udpA0] = await Promise.all([udpCounters(lab, l.nsB), udpCounters(lab, l.nsA)]);
  const cpu0 = responderCpu(l);
  const floodStart = performance.now();
  const child: ChildProcess = lab.spawn(l.nsA, [...(floodNice ? ['nice', '-n', String(floodNice)] : []), nodeBin, FLOOD, JSON.stringify({
    targets: l.names.map((_, i) => ({ host: UNDERLAY.b, port: BASE_PORT + i, publicKey: l.deviceKeys[i] })),
    binds: Array.from({ length: bindCount }, (_, i) => `192.168.78.${100 + i}`),
    rate: floodRate,
    maxSeconds: floodMaxSeconds,
  })]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-4000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await sleep(settle * 1000);
    if (child.exitCode !== null) throw new Error(`flood exited early: ${out.trim().slice(-300)}`);
    if (l.oneProcess) {
      // Established: every device is answering with cookies (bounded).
      const deadline = Date.now() + 10_000;
      for (;;) {
        const s = await Promise.all(l.sockets.map((x) => readStats(x)));
        if (s.every((x, i) => x.handshake_cookie_replies_sent! > stats0![i]!.handshake_cookie_replies_sent!)) break;
        if (Date.now() > deadline) throw new Error('not every device sent cookie replies within 10 s of the flood');
        await sleep(200);
      }
    }
    checkInterrupt();
    process.stderr.write(`[${l.impl.name}] flood established; measuring (≥ ${seconds} s, ${peerRuns} peer start(s))\n`);
    const w0 = performance.now();
    const sampler = sampleGets(l.sockets, getIntervalMs);
    const wg = wgSetPairs(l.names, wgSets, seconds * 1000 * 0.9, () => false);
    const peer = peerStarts(l, peerRuns, true);
    const [wgSet, peerRes] = await Promise.all([wg, peer, sleep(seconds * 1000)]);
    const g = await sampler.stop();
    const windowSeconds = (performance.now() - w0) / 1000;
    if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    const floodWallSeconds = (performance.now() - floodStart) / 1000;
    const cpu1 = responderCpu(l);
    const [udpB1, udpA1] = await Promise.all([udpCounters(lab, l.nsB), udpCounters(lab, l.nsA)]);
    const stats1 = l.oneProcess ? await Promise.all(l.sockets.map((s) => readStats(s))) : null;
    const line = out.trim().split('\n').reverse().find((x) => x.startsWith('{'));
    if (!line) throw new Error(`the flood printed no report: ${out.trim().slice(-300)}`);
    const report = JSON.parse(line) as FloodReport;
    let responderCounters: Record<string, number> | undefined;
    let cookieRepliesPerDevice: number[] | undefined;
    if (stats0 && stats1) {
      responderCounters = {};
      for (const [i, s] of stats1.entries()) {
        const d = diff(stats0[i]!, s, (k) => /^(handshake_|drop_handshake|udp_rx_packets$|udp_tx_packets$|udp_tx_errors$)/.test(k)) ?? {};
        for (const [k, v] of Object.entries(d)) responderCounters[k] = (responderCounters[k] ?? 0) + v;
      }
      cookieRepliesPerDevice = stats1.map((s, i) => Number(s.handshake_cookie_replies_sent! - stats0[i]!.handshake_cookie_replies_sent!));
    }
    return {
      ...g,
      wgSet,
      peer: peerRes,
      windowSeconds,
      flood: { ...report, targetRate: floodRate },
      responderCpuSeconds: cpu1 - cpu0,
      floodWallSeconds,
      ...(responderCounters ? { responderCounters, cookieRepliesPerDevice } : {}),
      ...(diff(udpB0, udpB1) ? { kernelUdpB: diff(udpB0, udpB1)! } : {}),
      ...(diff(udpA0, udpA1) ? { kernelUdpA: diff(udpA0, udpA1)! } : {}),
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }
}

async function implVersion(impl: WgImpl): Promise<string | undefined> {
  const r = await run(impl.command[0]!, [...impl.command.slice(1), '--version'], { allowFail: true, timeoutMs: 10_000 }).catch(() => null);
  const line = r ? (r.stdout || r.stderr).split('\n').find((x) => x.trim()) : undefined;
  return r && r.code === 0 ? line?.trim() : undefined;
}

async function benchImpl(impl: WgImpl): Promise<ImplResult> {
  const res: ImplResult = { subject: impl.name, command: impl.command };
  res.version = await implVersion(impl);
  checkInterrupt();
  const lab = NetLab.create();
  labs.add(lab);
  try {
    process.stderr.write(`[${impl.name}] ${deviceCount} devices in B (${isWeft(impl) ? 'one process' : 'one process each'}), real peer in A\n`);
    const l = await build(lab, impl);
    res.processes = l.pids.length;
    checkInterrupt();
    process.stderr.write(`[${impl.name}] idle: ${idleSeconds} s of get=1, ${Math.ceil(wgSets / 4)} wg set pairs, one peer start\n`);
    res.idle = await attempt(() => idlePhase(l));
    checkInterrupt();
    process.stderr.write(`[${impl.name}] flood of ${floodRate}/s over ${deviceCount} ports from ${bindCount} addresses\n`);
    res.flood = await attempt(() => floodPhase(l));
    checkInterrupt();
    res.responsiveAfterFlood = await firstReply(l.nsA, TUNNEL.b, wallMs() + 10_000, PROBE_INTERVAL_S).then(() => true, () => false);
    if (!responderAlive(l)) res.error = 'a responder process exited during the run';
  } catch (e) {
    res.error = errMsg(e);
  } finally {
    await lab.cleanup();
    labs.delete(lab);
  }
  return res;
}

// ---- table ------------------------------------------------------------------------------------

function cellText<T>(c: Cell<T> | undefined, f: (v: T) => string): string {
  if (c === undefined) return '—';
  if (typeof c === 'object' && c !== null && 'error' in c) return `error: ${(c as { error: string }).error.slice(0, 60)}`;
  return f(c as T);
}
const n0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
const ms1 = (x: number) => (Number.isFinite(x) ? (x < 10 ? x.toFixed(1) : x.toFixed(0)) : '—');
const lat = (l: Latency) => `${ms1(l.p50Ms)} / ${ms1(l.p99Ms)} / ${ms1(l.maxMs)} ms (${l.samples}${l.failures ? `, ${l.failures} failed` : ''})`;
const secs1 = (x: number) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'none');
const peerText = (p: PeerStart) => `${p.runsMs.map(secs1).join(', ')} (${p.within10s}/${p.runsMs.length} < 10 s)`;

function render(results: ImplResult[]): string {
  const fl = (f: (p: FloodPhase) => string) => (r: ImplResult) => cellText(r.flood, f);
  const id = (f: (p: Phase) => string) => (r: ImplResult) => cellText(r.idle, f);
  const rows: [string, (r: ImplResult) => string][] = [
    ['status', (r) => (r.error ? 'FAILED (see below)' : 'ok')],
    ['version', (r) => r.version ?? '—'],
    ['responder processes', (r) => (r.processes === undefined ? '—' : `${r.processes} for ${deviceCount} devices`)],
    ['get=1 idle p50 / p99 / max (samples)', id((p) => lat(p.get))],
    ['wg set idle p50 / p99 / max (commands)', id((p) => lat(p.wgSet))],
    ['real peer idle: wg set → first ping', id((p) => peerText(p.peer))],
    [`flood sent /s (asked ${n0(floodRate)})`, fl((p) => `${n0(p.flood.sent / p.flood.seconds)} (${n0(p.flood.sent)} in ${p.flood.seconds.toFixed(1)} s${p.flood.skipped ? `, ${n0(p.flood.skipped)} not sent` : ''})`)],
    ['cookie replies heard by the flood', fl((p) => `${n0(p.flood.cookieReplies)} (${Object.keys(p.flood.cookieRepliesByPort).length}/${deviceCount} ports)`)],
    ['cookie replies sent (weft-wg stats=1)', fl((p) => (p.responderCounters ? n0(p.responderCounters.handshake_cookie_replies_sent ?? 0) : '—'))],
    ['UDP datagrams in / out in B (kernel)', fl((p) => (p.kernelUdpB ? `${n0(p.kernelUdpB.InDatagrams ?? 0)} / ${n0(p.kernelUdpB.OutDatagrams ?? 0)}` : '—'))],
    ['get=1 under flood p50 / p99 / max', fl((p) => lat(p.get))],
    ['wg set under flood p50 / p99 / max', fl((p) => lat(p.wgSet))],
    ['real peer under flood: wg set → first ping', fl((p) => peerText(p.peer))],
    ['responder CPU s during the flood', fl((p) => `${p.responderCpuSeconds.toFixed(2)} in ${p.floodWallSeconds.toFixed(1)} s (${(p.responderCpuSeconds / p.floodWallSeconds).toFixed(2)} cores)`)],
    ["kernel UDP receive-buffer drops in B / A", fl((p) => `${p.kernelUdpB ? n0(p.kernelUdpB.RcvbufErrors ?? 0) : "—"} / ${p.kernelUdpA ? n0(p.kernelUdpA.RcvbufErrors ?? 0) : "—"}`)],
    ['tunnel answers after the flood', (r) => (r.responsiveAfterFlood === undefined ? '—' : r.responsiveAfterFlood ? 'yes' : 'NO')],
  ];
  return table([['', ...results.map((r) => r.subject)], ...rows.map(([label, f]) => [label, ...results.map(f)])]);
}

// ---- main -------------------------------------------------------------------------------------

const { impls, bad } = implsFromList<ImplResult>(String(opt.impls), (subject, error) => ({ subject, error }));
const started = new Date();
const results: ImplResult[] = [];
for (const impl of impls) {
  if (interrupted()) break;
  results.push(await benchImpl(impl));
}
if (interrupted()) {
  process.stderr.write(`${interruptSignal()}: cleaned up, no results written\n`);
  process.exit(130);
}
results.push(...bad);

const machine = await machineInfo();
console.log(`\nHandshake flood spread over ${deviceCount} devices — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
console.log(`B: ${deviceCount} devices (weft-wg: one process; others: one process each); A: the real peer (same implementation) and the flood (${n0(floodRate)}/s asked, mac1-valid, random content, ${bindCount} source addresses × 4 sockets, spread over the ${deviceCount} ports).`);
console.log('Latencies are whole round trips from this script (get=1 on the control socket) or whole `wg` commands; figures are comparable within one run only.\n');
console.log(render(results));
for (const r of results) {
  if (r.error) console.log(`\n${r.subject} FAILED: ${r.error}`);
  const f = r.flood;
  if (f && !('error' in f)) {
    console.log(`\n${r.subject}: get=1 slowest under flood ${f.get.slowestMs.join(', ')} ms; per device max ${f.getMaxPerDevice.join(', ')} ms; wg set slowest ${f.wgSet.slowestMs.join(', ')} ms`);
    if (f.getOver50ms.length) console.log(`${r.subject}: get=1 over 50 ms (s into the window: device, ms): ${f.getOver50ms.map((x) => `${x.atS}: #${x.device} ${x.ms}`).join('; ')}`);
    if (f.peer.errors) console.log(`${r.subject}: real peer: ${f.peer.errors.join('; ')}`);
    if (f.responderCounters) console.log(`${r.subject} responder counters over the flood (sum of ${deviceCount} devices): ${JSON.stringify(f.responderCounters)}`);
    if (f.cookieRepliesPerDevice) console.log(`${r.subject} cookie replies per device: ${f.cookieRepliesPerDevice.join(', ')}`);
    if (f.kernelUdpB) console.log(`${r.subject} kernel UDP in B over the flood: ${JSON.stringify(f.kernelUdpB)}`);
  }
}
const settings = { devices: deviceCount, binds: bindCount, socketsPerBind: 4, floodRate, floodNice, seconds, settle, getIntervalMs, wgSets, peerRuns, idleSeconds, peerBoundMs: PEER_BOUND_MS, probeIntervalS: PROBE_INTERVAL_S, floodMaxSeconds };
const file = writeResult(String(opt.out), 'handshake-flood-spread', started, { machine, settings, results });
console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
