// Handshakes per second against one responder (and its CPU per handshake), and responsiveness
// under a handshake flood, side by side for weft-wg and wireguard-go builds (Debian's on PATH, or
// any path) in one run. Not a test: it prints a table and writes
// bench/results/handshake-rate-<date>.json. A missing or broken implementation is reported in the
// table, never fatal.
//
//   node bench/handshake-rate.ts [--rounds 3] [--seconds 5] [--warmup 1] [--peers 512] [--sources N]
//                                [--inflight 64] [--generators auto] [--generator-nice=-10] [--timeout-ms 1000]
//                                [--pings 50] [--ping-interval 0.05] [--flood-rate 20000] [--no-flood]
//                                [--impls weft-wg,wireguard-go,PATH] [--out bench/results]
//
// Per implementation, one lab (test/netns harness: two fresh namespaces A and B joined by a veth,
// removed in a `finally`, also on SIGINT/SIGTERM/SIGHUP); all the labs are up together:
//
//   1. WgPair: a device of the implementation in A (initiator) and in B (responder), configured
//      with `wg`, tunnel up (one ping answered). B is then given --peers more peers (random static
//      keys, allowed-ips 10.99.x.y/32) with `wg addconf`.
//   2. Handshake rate, --rounds windows per implementation, interleaved across implementations
//      (the order rotating each round) so that a noisy neighbour weighs on every column alike:
//      bench/handshake-initiators.ts runs in A as its own process(es), at raised priority
//      (--generator-nice), and plays those peers with the native addon's Noise and cookie code
//      (handshakeTest hooks), sending from --sources addresses (198.18.0.0/15, local to A through
//      one route, routed back from B), at most --inflight handshakes outstanding and one
//      initiation per peer per 25 ms (the responder accepts one per 20 ms). Counted over --seconds after --warmup: completed
//      handshakes (response verified, keys derived, keepalive sent), cookie replies, time per
//      handshake, responder and generator CPU seconds, the generator's event-loop utilisation and
//      how often it waited at its in-flight cap, the machine's busy share and the time the
//      responder's threads waited for a CPU: together they say who set the pace (bottleneck()).
//   3. Ping A → B through the tunnel, --pings at --ping-interval, idle; then again while
//      test/netns/handshake-flood.ts sends --flood-rate initiations/s with a valid mac1 (random
//      content: the shape of a handshake DoS) from a second address of A.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, repoRoot, run, sleep } from '../test/netns/harness.ts';
import { processTree, procUsage, socketPath, type WgImpl } from '../test/netns/impl.ts';
import { WgPair, pairAddresses, pingFrom } from '../test/netns/wgpair.ts';
import { readStats } from '../test/netns/uapi-client.ts';
import { generatePrivateKey, publicKeyOf } from '../src/wireguard/crypto.ts';
import { toBase64 } from '../src/wireguard/keys.ts';
import {
  attempt,
  benchArgs,
  checkInterrupt,
  errMsg,
  implsFromList,
  Interrupted,
  labsCleanedOnInterrupt,
  interrupted,
  interruptSignal,
  machineInfo,
  percentile,
  table,
  type Cell,
  niceArg,
  usageExit,
} from './common.ts';
import type { InitiatorsConfig, InitiatorsReport } from './handshake-initiators.ts';

const USAGE = `usage: node bench/handshake-rate.ts [--rounds 3] [--seconds 5] [--warmup 1] [--peers 512] [--sources N]
                                  [--inflight 64] [--generators auto] [--generator-nice=-10] [--timeout-ms 1000]
                                  [--pings 50] [--ping-interval 0.05] [--flood-rate 20000] [--no-flood]
                                  [--impls weft-wg,wireguard-go,PATH] [--out DIR]`;

const usageError = (msg: string): never => usageExit(USAGE, msg);

const opt = benchArgs(USAGE, {
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    peers: { type: 'string', default: '512' },
    sources: { type: 'string' },
    inflight: { type: 'string', default: '64' },
    generators: { type: 'string', default: 'auto' },
    'timeout-ms': { type: 'string', default: '1000' },
    'generator-nice': { type: 'string', default: '-10' },
    pings: { type: 'string', default: '50' },
    'ping-interval': { type: 'string', default: '0.05' },
    'flood-rate': { type: 'string', default: '20000' },
    'no-flood': { type: 'boolean', default: false },
    impls: { type: 'string', default: 'weft-wg,wireguard-go' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
}).values;

/** A number in (0, max] (whole unless integer is false), or `0` when allowZero; else exit 2. */
function positive(name: string, v: string | undefined, max: number, integer = true, allowZero = false): number {
  const n = v !== undefined && /^\s*[0-9.e+]+\s*$/i.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !allowZero) || n > max || (integer && !Number.isInteger(n))) {
    usageError(`--${name} must be a ${integer ? 'whole ' : ''}number in ${allowZero ? '[0' : '(0'}, ${max}], not ${JSON.stringify(v)}`);
  }
  return n;
}
const seconds = positive('seconds', opt.seconds, 120, false);
/** Measuring windows per implementation, interleaved across implementations. */
const rounds = positive('rounds', opt.rounds, 20);
if (rounds * seconds > 300) usageError(`--rounds × --seconds = ${rounds * seconds} s per implementation: keep it under 300 s`);
const warmup = positive('warmup', opt.warmup, 60, false, true);
const peerCount = positive('peers', opt.peers, 4096);
/** Source addresses (one socket each); more than one per peer would never be used. */
const sourceCount = positive('sources', opt.sources ?? String(peerCount), 4096);
if (sourceCount > peerCount) usageError(`--sources ${sourceCount} is more than --peers ${peerCount}: the extra sources would never send`);
const inflight = positive('inflight', opt.inflight, 4096);
/** auto: half the CPUs (at least 1), the other half left to the responder. */
const generators = opt.generators === 'auto' ? Math.max(1, Math.min(8, Math.floor(os.availableParallelism() / 2), sourceCount)) : positive('generators', opt.generators, 16);
if (generators > sourceCount) usageError(`--generators ${generators} is more than --sources ${sourceCount}: each generator needs a source address of its own`);
if (inflight < generators) usageError(`--inflight ${inflight} is less than --generators ${generators}: each generator needs at least one slot`);
const timeoutMs = positive('timeout-ms', opt['timeout-ms'], 10_000);
const generatorNice = niceArg(USAGE, 'generator-nice', opt['generator-nice']);
const pings = positive('pings', opt.pings, 10_000);
const pingInterval = positive('ping-interval', opt['ping-interval'], 10, false);
if (pingInterval < 0.002) usageError('--ping-interval below 0.002 s needs a flood ping, which this script does not run');
if (pings * pingInterval > 300) usageError(`--pings × --ping-interval = ${pings * pingInterval} s: keep one ping series under 300 s`);
const floodRate = positive('flood-rate', opt['flood-rate'], 1_000_000);
const flood = !opt['no-flood'];
if (!String(opt.impls).split(',').some((x) => x.trim())) usageError('--impls names no implementation');
if (!String(opt.out).trim()) usageError('--out must name a directory');
/** Minimum time between two initiations of one generated peer (the responder accepts one per 20 ms). */
const gapMs = 25;
/** The flood runs this long at most: a second to build up, the pings, margin. */
const floodSeconds = Math.ceil(pings * pingInterval) + 4;
const floodSource = '192.168.77.66';

// ---- interrupts: the generators and floods run inside the labs (lab.spawn), which go with them.

const labs = labsCleanedOnInterrupt();

// ---- results ----------------------------------------------------------------------------------


interface PingStats {
  sent: number;
  received: number;
  lossPct: number;
  medianMs: number;
  p90Ms: number;
  maxMs: number;
}

/** The generators' reports summed (fields as in InitiatorsReport), and the responder's side. */
interface HandshakeRate extends Omit<InitiatorsReport, 'event' | 'cpuSeconds' | 'interrupted' | 'eventLoopUtilization' | 'atInflightCapShare' | 'noPeerReadyShare'> {
  handshakesPerSecond: number;
  cookieRepliesPerSecond: number;
  initiationsSentPerSecond: number;
  /** Responder device CPU seconds over the window (process tree). */
  responderCpuSeconds: number;
  /**
   * Time the responder's threads were runnable but waiting for a CPU over the window (s, summed
   * over threads; /proc/PID/task/TID/schedstat): high = the responder was short of CPU, not work.
   */
  responderRunQueueWaitSeconds: number;
  /** Responder CPU milliseconds per completed handshake. */
  responderCpuMsPerHandshake: number;
  /** Load generator CPU seconds over the window (all generator processes). */
  generatorCpuSeconds: number;
  /** The generators' event-loop utilisation over the window (mean of the processes, 0–1). */
  generatorEventLoopUtilization: number;
  /** Share of the window the generators stood at their in-flight cap (mean, 0–1). */
  generatorAtInflightCapShare: number;
  /** Share of the window a generator had a free slot but no peer ready (mean, 0–1). */
  generatorNoPeerReadyShare: number;
  /** Share of the whole machine's CPU time (all cores, /proc/stat) busy during the window. */
  machineBusy: number;
  /** Who set the pace, from the figures above (see bottleneck()). */
  bottleneck: string;
  /** Generated peers the responder shows a handshake for (`wg show dump`), after the run. */
  peersWithHandshake: number;
  /** weft-wg only: the responder's `stats=1` handshake counters, difference over the window(s). */
  responderCounters?: Record<string, number>;
  /** The aggregate only: each round's window on its own. */
  rounds?: Omit<HandshakeRate, 'perSecond' | 'rounds'>[];
  /** The aggregate only: why some rounds could not be measured. */
  failedRounds?: string[];
}

interface FloodPing extends PingStats {
  flood: { sent: number; sentPerSecond: number; cookieReplies: number; seconds: number };
  /** Responder CPU seconds from the flood's start to its end. */
  responderCpuSeconds: number;
  /** Time the responder's threads were runnable but waiting for a CPU during the flood (s). */
  responderRunQueueWaitSeconds: number;
  /** The kernel's UDP counters in B (/proc/net/snmp), difference over the flood: RcvbufErrors = datagrams dropped before the device read them. */
  kernelUdpB?: Record<string, number>;
  responderCounters?: Record<string, number>;
}

interface ImplResult {
  subject: string;
  command?: string[];
  version?: string;
  error?: string;
  handshakes?: Cell<HandshakeRate>;
  pingIdle?: Cell<PingStats>;
  pingFlood?: Cell<FloodPing>;
  /** The tunnel answers a ping after the flood. */
  responsiveAfterFlood?: boolean;
}

// ---- helpers ----------------------------------------------------------------------------------

/** 198.18.0.1 + i (RFC 2544 benchmarking range; 198.18.0.0/15 holds 131070 hosts). */
function sourceAddress(i: number): string {
  const n = ((198 << 24) | (18 << 16)) + 1 + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

async function pingStats(lab: NetLab, ns: string, to: string): Promise<PingStats> {
  const p = await pingFrom(lab, ns, to, { count: pings, interval: pingInterval, waitSec: 1, deadlineSec: Math.ceil(pings * pingInterval + 5) });
  if (!p.rtts.length) throw new Error(`no ping replies (${p.received}/${p.transmitted})`);
  return {
    sent: p.transmitted,
    received: p.received,
    lossPct: p.transmitted ? (100 * (p.transmitted - p.received)) / p.transmitted : 100,
    medianMs: percentile(p.rtts, 50),
    p90Ms: percentile(p.rtts, 90),
    maxMs: Math.max(...p.rtts),
  };
}

/** weft-wg's handshake counters (`stats=1`); null for implementations without them. */
async function counters(impl: WgImpl, ifname: string): Promise<Record<string, bigint> | null> {
  if (impl.name !== 'weft-wg') return null;
  try {
    return await readStats(socketPath(ifname));
  } catch {
    return null;
  }
}

function counterDiff(a: Record<string, bigint> | null, b: Record<string, bigint> | null): Record<string, number> | undefined {
  if (!a || !b) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (/^(handshake_|drop_handshake|udp_rx_packets$|udp_tx_packets$)/.test(k) && a[k] !== undefined && v !== a[k]) out[k] = Number(v - a[k]!);
  return out;
}

/** Lines a child writes to stdout, as parsed JSON objects. */
function jsonLines(c: ChildProcess, on: (o: Record<string, unknown>) => void): () => string {
  let buf = '';
  let all = '';
  c.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    all = (all + d.toString()).slice(-4000);
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        on(JSON.parse(line) as Record<string, unknown>);
      } catch {}
    }
  });
  c.stderr?.on('data', (d: Buffer) => (all = (all + d.toString()).slice(-4000)));
  return () => all;
}

function bounded<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(t));
}

/** Seconds the threads of a process tree spent runnable, waiting for a CPU (schedstat field 2). */
function runQueueWaitSeconds(pid: number): number {
  let ns = 0;
  for (const p of processTree(pid)) {
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`);
    } catch {}
    for (const t of tasks) {
      try {
        ns += Number(fs.readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
      } catch {}
    }
  }
  return ns / 1e9;
}

/** Kernel UDP counters of a namespace (/proc/net/snmp as a process inside it sees it). */
async function udpCounters(lab: NetLab, ns: string): Promise<Record<string, number> | null> {
  const r = await lab.exec(ns, ['cat', '/proc/net/snmp'], { allowFail: true });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return null;
  const keys = lines[0]!.split(/\s+/).slice(1);
  const vals = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

/** Busy and total jiffies of all CPUs together (first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((s, v) => s + v, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

type PaceFigures = Pick<HandshakeRate, 'timeouts' | 'initiationsSent' | 'responderRunQueueWaitSeconds' | 'generatorCpuSeconds' | 'generatorEventLoopUtilization' | 'generatorAtInflightCapShare' | 'generatorNoPeerReadyShare' | 'machineBusy' | 'responderCpuSeconds' | 'seconds'>;

/**
 * Who set the pace of the handshake rate. The generator is single-threaded: if its event loop was
 * busy ≥ 90 % of the window it could not have sent faster (saturated, the rate is a lower
 * bound). If it was mostly idle and stood at its in-flight cap, every slot was waiting for the
 * responder: the responder (with the CPU the generator left it) was the limit. If slots were free
 * but no peer was allowed to start, the per-peer gap × --peers capped the offered load.
 */
function bottleneck(h: PaceFigures): string {
  const unanswered = h.timeouts > 0.01 * h.initiationsSent ? `, ${h.timeouts} unanswered` : '';
  if (h.generatorEventLoopUtilization >= 0.9) return `generator (saturated)${unanswered}`;
  if (h.generatorNoPeerReadyShare >= 0.5) return `offered load (--peers × 25 ms gap)${unanswered}`;
  if (h.generatorAtInflightCapShare >= 0.5) return `${h.machineBusy >= 0.9 || h.responderRunQueueWaitSeconds >= 0.5 * h.seconds ? 'responder (short of CPU)' : 'responder'}${unanswered}`;
  return `unclear${unanswered}`;
}

// ---- the phases -------------------------------------------------------------------------------

/** One implementation's lab while the rounds run. */
interface Subject {
  impl: WgImpl;
  res: ImplResult;
  lab: NetLab;
  pair: WgPair;
  dir: string;
  keys: { sk: string; pk: string }[];
  sources: string[];
  windows: Cell<HandshakeRate>[];
}

/** The generated peers on the responder, the source addresses on A's veth, B's route back. */
async function setupPeers(lab: NetLab, pair: WgPair): Promise<Pick<Subject, 'dir' | 'keys' | 'sources'>> {
  const { a, b } = pair;
  const dir = lab.tempDir('hs');
  const keys = Array.from({ length: peerCount }, () => {
    const sk = generatePrivateKey();
    return { sk: toBase64(sk), pk: toBase64(publicKeyOf(sk)) };
  });
  const conf = keys.map((k, i) => `[Peer]\nPublicKey = ${k.pk}\nAllowedIPs = 10.99.${i >> 8}.${i & 255}/32\n`).join('\n');
  const confFile = path.join(dir, 'peers.conf');
  fs.writeFileSync(confFile, conf, { mode: 0o600 });
  await pair.wg(b, ['addconf', b.ifname, confFile]);
  const configured = (await pair.dump(b)).peers.length;
  if (configured !== peerCount + 1) throw new Error(`responder shows ${configured} peers after addconf, expected ${peerCount + 1}`);
  const sources = Array.from({ length: sourceCount }, (_, i) => sourceAddress(i));
  // The whole range is local to A through ONE route (any address in it can be bound), not one
  // address per source: hundreds of address events at once overflow the netlink socket a device
  // in A watches, and wireguard-go 0.0.20220316 exits on that ENOBUFS ("Failed to read packet
  // from TUN device: ... no buffer space available").
  await run('ip', ['-n', a.ns, 'route', 'add', 'local', '198.18.0.0/15', 'dev', 'lo']);
  await run('ip', ['-n', b.ns, 'route', 'add', '198.18.0.0/15', 'via', pairAddresses.A.underlay.v4]);
  return { dir, keys, sources };
}

/** One measuring window: fresh generator processes (warm-up, then --seconds), the responder's side. */
async function rateWindow(s: Subject, round: number): Promise<HandshakeRate> {
  const { lab, pair, impl, dir, keys, sources } = s;
  const { a, b } = pair;
  // One or more generator processes, each with its share of peers and sources.
  const gens: { child: ChildProcess; ready: Promise<void>; done: Promise<InitiatorsReport>; output: () => string }[] = [];
  try {
    for (let g = 0; g < generators; g++) {
      const myKeys = keys.filter((_, i) => i % generators === g);
      const mySources = sources.filter((_, i) => i % generators === g);
      if (!myKeys.length || !mySources.length) continue;
      const keysFile = path.join(dir, `keys-${g}.json`);
      fs.writeFileSync(keysFile, JSON.stringify({ privateKeys: myKeys.map((k) => k.sk) }), { mode: 0o600 });
      const cfg: InitiatorsConfig = {
        host: b.underlay.v4,
        port: b.listenPort,
        responderPublicKey: b.publicKey,
        keysFile,
        sources: mySources,
        warmupSeconds: warmup,
        seconds,
        inflight: Math.max(1, Math.ceil(inflight / generators)),
        timeoutMs,
        gapMs,
      };
      const cfgFile = path.join(dir, `gen-${g}.json`);
      fs.writeFileSync(cfgFile, JSON.stringify(cfg), { mode: 0o600 });
      // Raised priority (nice < 0): the generator gets a CPU whenever it has work, so when it still
      // waits for responses the responder, not the generator, set the pace.
      const niceArgs = generatorNice !== 0 ? ['nice', '-n', String(generatorNice)] : [];
      const child = lab.spawn(a.ns, [...niceArgs, nodeBin, path.join(repoRoot, 'bench/handshake-initiators.ts'), cfgFile], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin?.on('error', () => {});
      let onReady!: () => void;
      let onDone!: (r: InitiatorsReport) => void;
      const ready = new Promise<void>((r) => (onReady = r));
      const done = new Promise<InitiatorsReport>((r) => (onDone = r));
      const exited = new Promise<never>((_, reject) => child.once('exit', (code, sig) => reject(new Error(`generator ${g} exited (${code ?? sig}): ${output().trim().slice(-300)}`))));
      exited.catch(() => {});
      const output = jsonLines(child, (o) => {
        if (o.event === 'ready') onReady();
        if (o.event === 'done') onDone(o as unknown as InitiatorsReport);
      });
      gens.push({ child, ready: Promise.race([ready, exited]), done: Promise.race([done, exited]), output });
    }
    await bounded('the load generators to start', Promise.all(gens.map((g) => g.ready)), 60_000);
    checkInterrupt();

    const responderPid = b.device.pid;
    const stats0 = await counters(impl, b.ifname);
    process.stderr.write(`[${impl.name}] round ${round + 1}/${rounds}: ${peerCount} peers, ${sourceCount} sources, ${inflight} in flight, ${warmup} s warm-up + ${seconds} s\n`);
    for (const g of gens) g.child.stdin?.write('go\n');
    await sleep(warmup * 1000);
    const cpu0 = procUsage(responderPid).cpuSeconds;
    const wait0 = runQueueWaitSeconds(responderPid);
    const m0 = machineJiffies();
    await sleep(seconds * 1000);
    const cpu1 = procUsage(responderPid).cpuSeconds;
    const wait1 = runQueueWaitSeconds(responderPid);
    const m1 = machineJiffies();
    const reports = await bounded('the load generators to report', Promise.all(gens.map((g) => g.done)), timeoutMs + 15_000);
    for (const g of gens) g.child.stdin?.end();
    const stats1 = await counters(impl, b.ifname);
    if (!pair.b.device.running()) throw new Error(`responder exited: ${pair.b.device.output().slice(-300)}`);

    const sum = (f: (r: InitiatorsReport) => number) => reports.reduce((t, r) => t + f(r), 0);
    const mean = (f: (r: InitiatorsReport) => number) => sum(f) / reports.length;
    const window = Math.max(...reports.map((r) => r.seconds));
    if (!(window > 0)) throw new Error(`the load generator measured nothing: ${JSON.stringify(reports[0]).slice(0, 300)}`);
    const completed = sum((r) => r.completed);
    const dump = await pair.dump(b);
    const generated = new Set(keys.map((k) => k.pk));
    const responderCpuSeconds = cpu1 - cpu0;
    const partial = {
      seconds: window,
      timeouts: sum((r) => r.timeouts),
      initiationsSent: sum((r) => r.initiationsSent),
      generatorCpuSeconds: sum((r) => r.cpuSeconds),
      generatorEventLoopUtilization: mean((r) => r.eventLoopUtilization),
      generatorAtInflightCapShare: mean((r) => r.atInflightCapShare),
      generatorNoPeerReadyShare: mean((r) => r.noPeerReadyShare),
      machineBusy: m1.total > m0.total ? (m1.busy - m0.busy) / (m1.total - m0.total) : NaN,
      responderCpuSeconds,
      responderRunQueueWaitSeconds: wait1 - wait0,
    };
    return {
      ...partial,
      bottleneck: bottleneck(partial),
      handshakesPerSecond: completed / window,
      cookieRepliesPerSecond: sum((r) => r.cookieReplies) / window,
      initiationsSentPerSecond: partial.initiationsSent / window,
      completed,
      cookieReplies: sum((r) => r.cookieReplies),
      resentWithMac2: sum((r) => r.resentWithMac2),
      badResponses: sum((r) => r.badResponses),
      badCookies: sum((r) => r.badCookies),
      stray: sum((r) => r.stray),
      peersCompleted: sum((r) => r.peersCompleted),
      // Per-generator percentiles; with several generators, the median of theirs.
      latencyMedianMs: percentile(reports.map((r) => r.latencyMedianMs).filter(Number.isFinite), 50),
      latencyP90Ms: percentile(reports.map((r) => r.latencyP90Ms).filter(Number.isFinite), 50),
      perSecond: reports[0]!.perSecond.map((_, i) => sum((r) => r.perSecond[i] ?? 0)),
      responderCpuMsPerHandshake: completed ? (1000 * responderCpuSeconds) / completed : NaN,
      peersWithHandshake: dump.peers.filter((p) => generated.has(p.publicKey) && p.latestHandshake > 0).length,
      ...(counterDiff(stats0, stats1) ? { responderCounters: counterDiff(stats0, stats1)! } : {}),
    };
  } finally {
    for (const g of gens) if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGTERM');
  }
}

/** The verdict over all rounds: a round in which the generator saturated makes the total a lower bound. */
function aggregateBottleneck(windows: HandshakeRate[], all: PaceFigures): string {
  const saturated = windows.filter(generatorSaturated).length;
  const rest = windows.filter((w) => !generatorSaturated(w));
  const others = rest.length ? bottleneck({ ...all, generatorEventLoopUtilization: rest.reduce((t, w) => t + w.generatorEventLoopUtilization, 0) / rest.length }) : '';
  if (!saturated) return bottleneck(all);
  return `generator (saturated) in ${saturated}/${windows.length} rounds${others ? `; else ${others}` : ''}`;
}

/** The rounds of one implementation together: sums over all windows, rates over their total length. */
function aggregate(windows: HandshakeRate[]): HandshakeRate {
  const sum = (f: (w: HandshakeRate) => number) => windows.reduce((t, w) => t + f(w), 0);
  const mean = (f: (w: HandshakeRate) => number) => sum(f) / windows.length;
  const total = sum((w) => w.seconds);
  const completed = sum((w) => w.completed);
  const counters: Record<string, number> = {};
  for (const w of windows) for (const [k, v] of Object.entries(w.responderCounters ?? {})) counters[k] = (counters[k] ?? 0) + v;
  const partial = {
    seconds: total,
    timeouts: sum((w) => w.timeouts),
    initiationsSent: sum((w) => w.initiationsSent),
    generatorCpuSeconds: sum((w) => w.generatorCpuSeconds),
    generatorEventLoopUtilization: mean((w) => w.generatorEventLoopUtilization),
    generatorAtInflightCapShare: mean((w) => w.generatorAtInflightCapShare),
    generatorNoPeerReadyShare: mean((w) => w.generatorNoPeerReadyShare),
    machineBusy: mean((w) => w.machineBusy),
    responderCpuSeconds: sum((w) => w.responderCpuSeconds),
    responderRunQueueWaitSeconds: sum((w) => w.responderRunQueueWaitSeconds),
  };
  return {
    ...partial,
    bottleneck: aggregateBottleneck(windows, partial),
    handshakesPerSecond: completed / total,
    cookieRepliesPerSecond: sum((w) => w.cookieReplies) / total,
    initiationsSentPerSecond: partial.initiationsSent / total,
    completed,
    cookieReplies: sum((w) => w.cookieReplies),
    resentWithMac2: sum((w) => w.resentWithMac2),
    badResponses: sum((w) => w.badResponses),
    badCookies: sum((w) => w.badCookies),
    stray: sum((w) => w.stray),
    peersCompleted: Math.max(...windows.map((w) => w.peersCompleted)),
    latencyMedianMs: percentile(windows.map((w) => w.latencyMedianMs).filter(Number.isFinite), 50),
    latencyP90Ms: percentile(windows.map((w) => w.latencyP90Ms).filter(Number.isFinite), 50),
    perSecond: windows.flatMap((w) => w.perSecond),
    responderCpuMsPerHandshake: completed ? (1000 * partial.responderCpuSeconds) / completed : NaN,
    peersWithHandshake: windows[windows.length - 1]!.peersWithHandshake,
    ...(Object.keys(counters).length ? { responderCounters: counters } : {}),
    rounds: windows.map(({ perSecond: _p, rounds: _r, ...w }) => w),
  };
}

async function pingUnderFlood(lab: NetLab, pair: WgPair, impl: WgImpl): Promise<FloodPing> {
  const { a, b } = pair;
  await lab.exec(a.ns, ['ip', 'addr', 'add', `${floodSource}/24`, 'dev', a.veth]);
  const stats0 = await counters(impl, b.ifname);
  const udp0 = await udpCounters(lab, b.ns);
  const cpu0 = procUsage(b.device.pid).cpuSeconds;
  const wait0 = runQueueWaitSeconds(b.device.pid);
  const child = lab.spawn(a.ns, [nodeBin, path.join(repoRoot, 'test/netns/handshake-flood.ts'), JSON.stringify({
    targets: [{ host: b.underlay.v4, port: b.listenPort, publicKey: b.publicKey }], binds: [floodSource], rate: floodRate, maxSeconds: floodSeconds,
  })]);
  let report: { sent: number; cookieReplies: number; seconds: number } | undefined;
  const output = jsonLines(child, (o) => {
    if (typeof o.sent === 'number') report = o as unknown as typeof report;
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await sleep(1000); // let it build up
    if (child.exitCode !== null) throw new Error(`flood exited early: ${output().trim().slice(-300)}`);
    process.stderr.write(`[${impl.name}] ${pings} pings under a ${floodRate}/s handshake flood\n`);
    const p = await pingStats(lab, a.ns, b.tunnel.v4);
    if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
    await bounded('the flood to report', exited, 10_000);
    const cpu1 = procUsage(b.device.pid).cpuSeconds;
    const wait1 = runQueueWaitSeconds(b.device.pid);
    const udp1 = await udpCounters(lab, b.ns);
    const stats1 = await counters(impl, b.ifname);
    if (!report) throw new Error(`flood printed no report: ${output().trim().slice(-300)}`);
    const r = report as { sent: number; cookieReplies: number; seconds: number };
    return {
      ...p,
      flood: { sent: r.sent, sentPerSecond: r.seconds ? r.sent / r.seconds : 0, cookieReplies: r.cookieReplies, seconds: r.seconds },
      responderCpuSeconds: cpu1 - cpu0,
      responderRunQueueWaitSeconds: wait1 - wait0,
      ...(udp0 && udp1 ? { kernelUdpB: Object.fromEntries(Object.entries(udp1).map(([k, v]) => [k, v - (udp0[k] ?? 0)])) } : {}),
      ...(counterDiff(stats0, stats1) ? { responderCounters: counterDiff(stats0, stats1)! } : {}),
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }
}

async function implVersion(impl: WgImpl): Promise<string | undefined> {
  const r = await run(impl.command[0]!, [...impl.command.slice(1), '--version'], { allowFail: true, timeoutMs: 10_000 }).catch(() => null);
  const line = r ? (r.stdout || r.stderr).split('\n').find((l) => l.trim()) : undefined;
  return r && r.code === 0 ? line?.trim() : undefined;
}

/** A lab for `impl`: the pair, tunnel up, the generated peers; null (error in res) if it fails. */
async function prepare(impl: WgImpl): Promise<{ subject: Subject | null; res: ImplResult }> {
  const res: ImplResult = { subject: impl.name, command: impl.command };
  res.version = await implVersion(impl);
  checkInterrupt();
  const lab = NetLab.create();
  labs.add(lab);
  try {
    process.stderr.write(`[${impl.name}] lab: pair, tunnel, ${peerCount} generated peers\n`);
    const pair = await WgPair.create(lab, { initiator: impl, responder: impl, tag: 'h' });
    await pair.waitPing(pair.a, pair.b.tunnel.v4, 15_000);
    checkInterrupt();
    return { subject: { impl, res, lab, pair, ...(await setupPeers(lab, pair)), windows: [] }, res };
  } catch (e) {
    await lab.cleanup();
    labs.delete(lab);
    if (e instanceof Interrupted) throw e;
    res.error = errMsg(e);
    return { subject: null, res };
  }
}

/** After the rounds: the aggregate, the pings idle and under the flood, then the lab goes. */
async function finishSubject(s: Subject): Promise<void> {
  const { res, lab, pair, impl } = s;
  const ok = s.windows.filter((w): w is HandshakeRate => !('error' in w));
  res.handshakes = ok.length ? aggregate(ok) : (s.windows[0] ?? { error: 'not measured' });
  if (ok.length && ok.length < s.windows.length) res.handshakes = { ...(res.handshakes as HandshakeRate), failedRounds: s.windows.filter((w) => 'error' in w).map((w) => (w as { error: string }).error) };
  checkInterrupt();
  await sleep(1500); // weft-wg stays "under load" for 1 s after the last burst
  process.stderr.write(`[${impl.name}] ${pings} pings every ${pingInterval} s, idle\n`);
  res.pingIdle = await attempt(() => pingStats(lab, pair.a.ns, pair.b.tunnel.v4));
  checkInterrupt();
  if (flood) {
    res.pingFlood = await attempt(() => pingUnderFlood(lab, pair, impl));
    checkInterrupt();
    res.responsiveAfterFlood = await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000).then(() => true, () => false);
  }
  for (const side of [pair.a, pair.b]) if (!side.device.running()) res.error = `device ${side.label} exited during the run: ${side.device.output().slice(-300)}`;
}

// ---- table ------------------------------------------------------------------------------------

function cellText<T>(c: Cell<T> | undefined, f: (v: T) => string): string {
  if (c === undefined) return '—';
  if (typeof c === 'object' && c !== null && 'error' in c) return `error: ${(c as { error: string }).error.slice(0, 48)}`;
  return f(c as T);
}
const n0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const n2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const pct = (x: number) => (Number.isFinite(x) ? `${Math.round(100 * x)} %` : '—');
const ms3 = (x: number) => (Number.isFinite(x) ? `${x.toFixed(3)} ms` : '—');
const pingText = (p: PingStats) => `${ms3(p.medianMs)} / ${ms3(p.p90Ms)} (${p.received}/${p.sent}, ${p.lossPct.toFixed(0)}% loss)`;

/** The generator's event loop was busy ≥ 90 % of the window: the handshake rate is then a lower bound. */
function generatorSaturated(h: HandshakeRate): boolean {
  return h.generatorEventLoopUtilization >= 0.9 || (h.rounds ?? []).some((w) => w.generatorEventLoopUtilization >= 0.9);
}

function render(results: ImplResult[]): string {
  const hs = (f: (h: HandshakeRate) => string) => (r: ImplResult) => cellText(r.handshakes, f);
  const rows: [string, (r: ImplResult) => string][] = [
    ['status', (r) => (r.error ? 'FAILED (see below)' : 'ok')],
    ['version', (r) => r.version ?? '—'],
    [`handshakes completed /s (${rounds} × ${seconds} s: all, each round)`, hs((h) => `${generatorSaturated(h) ? '≥ ' : ''}${n0(h.handshakesPerSecond)} (${(h.rounds ?? []).map((w) => `${w.generatorEventLoopUtilization >= 0.9 ? '≥ ' : ''}${n0(w.handshakesPerSecond)}`).join(', ')})`)],
    ['responder CPU ms per handshake (each round)', hs((h) => `${n2(h.responderCpuMsPerHandshake)} (${(h.rounds ?? []).map((w) => n2(w.responderCpuMsPerHandshake)).join(', ')})`)],
    ['cookie replies /s', hs((h) => n0(h.cookieRepliesPerSecond))],
    ['initiations sent /s (with mac2 resends)', hs((h) => `${n0(h.initiationsSentPerSecond)} (${h.resentWithMac2} resent)`)],
    [`unanswered after ${timeoutMs} ms`, hs((h) => String(h.timeouts))],
    ['time per handshake median / p90', hs((h) => `${ms3(h.latencyMedianMs)} / ${ms3(h.latencyP90Ms)}`)],
    ['responder CPU s (ms per handshake)', hs((h) => `${n2(h.responderCpuSeconds)} (${n2(h.responderCpuMsPerHandshake)})`)],
    ['load generator CPU s', hs((h) => `${n2(h.generatorCpuSeconds)} of ${n2(h.seconds * generators)} s${generatorSaturated(h) ? ' (saturated)' : ''}`)],
    ['generator event loop busy (each round) / at in-flight cap', hs((h) => `${pct(h.generatorEventLoopUtilization)} (${(h.rounds ?? []).map((w) => pct(w.generatorEventLoopUtilization)).join(', ')}) / ${pct(h.generatorAtInflightCapShare)}`)],
    ['machine CPU busy (all cores)', hs((h) => pct(h.machineBusy))],
    ['responder threads waiting for a CPU', hs((h) => `${n2(h.responderRunQueueWaitSeconds)} s`)],
    ['pace set by', hs((h) => h.bottleneck)],
    ['generated peers with a handshake (wg)', hs((h) => `${h.peersWithHandshake}/${peerCount}`)],
    [`ping idle median / p90 (${pings} × ${pingInterval} s)`, (r) => cellText(r.pingIdle, pingText)],
  ];
  if (flood) {
    rows.push(
      [`ping under ${floodRate}/s flood median / p90`, (r) => cellText(r.pingFlood, pingText)],
      ['flood sent /s (cookie replies to it)', (r) => cellText(r.pingFlood, (f) => `${n0(f.flood.sentPerSecond)} (${f.flood.cookieReplies})`)],
      ['responder CPU s during the flood (waiting for a CPU)', (r) => cellText(r.pingFlood, (f) => `${n2(f.responderCpuSeconds)} of ${n2(f.flood.seconds)} s (${n2(f.responderRunQueueWaitSeconds)} s)`)],
      ['kernel UDP receive-buffer drops in B', (r) => cellText(r.pingFlood, (f) => (f.kernelUdpB ? n0(f.kernelUdpB.RcvbufErrors ?? 0) : '—'))],
      ['tunnel answers after the flood', (r) => (r.responsiveAfterFlood === undefined ? '—' : r.responsiveAfterFlood ? 'yes' : 'NO')],
    );
  }
  return table([['', ...results.map((r) => r.subject)], ...rows.map(([label, f]) => [label, ...results.map(f)])]);
}

// ---- main -------------------------------------------------------------------------------------

const { impls, bad } = implsFromList<ImplResult>(String(opt.impls), (subject, error) => ({ subject, error }));

const started = new Date();
const results: ImplResult[] = [];
const subjects: Subject[] = [];
try {
  for (const impl of impls) {
    if (interrupted()) break;
    const { subject, res } = await prepare(impl);
    results.push(res);
    if (subject) subjects.push(subject);
  }
  // The rounds interleave the implementations (the order rotating each round), so a noisy
  // neighbour on the machine weighs on every column alike.
  for (let round = 0; round < rounds && !interrupted(); round++) {
    for (let i = 0; i < subjects.length && !interrupted(); i++) {
      const s = subjects[(i + round) % subjects.length]!;
      s.windows.push(await attempt(() => rateWindow(s, round)));
    }
  }
  for (const s of subjects) {
    if (interrupted()) break;
    try {
      await finishSubject(s);
    } catch (e) {
      if (!(e instanceof Interrupted)) s.res.error = errMsg(e);
    } finally {
      await s.lab.cleanup();
      labs.delete(s.lab);
    }
  }
} catch (e) {
  if (!(e instanceof Interrupted)) throw e;
} finally {
  for (const s of subjects) {
    await s.lab.cleanup();
    labs.delete(s.lab);
  }
}
if (interrupted()) {
  await Promise.all([...labs].map((l) => l.cleanup()));
  process.stderr.write(`${interruptSignal()}: cleaned up, no results written\n`);
  process.exit(130);
}
results.push(...bad);

const machine = await machineInfo();
console.log(`\nHandshake benchmark — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
console.log(`Responder in namespace B with ${peerCount} generated peers; load generator (native addon's Noise code) in A, ${sourceCount} source addresses, ≤ ${inflight} in flight, ${generators} process(es).`);
console.log(`Both devices of a lab are the same implementation; "ping" is A → B through the tunnel. Figures are comparable within one run only.\n`);
console.log(render(results));
for (const r of results) {
  if (r.error) console.log(`\n${r.subject} FAILED: ${r.error}`);
  const h = r.handshakes;
  if (h && !('error' in h) && generatorSaturated(h)) console.log(`\n${r.subject}: the load generator was saturated (in ${(h.rounds ?? [h]).filter((w) => w.generatorEventLoopUtilization >= 0.9).length} of ${(h.rounds ?? [h]).length} rounds), so ${n0(h.handshakesPerSecond)}/s is a lower bound of what the responder can do (compare its CPU ms per handshake).`);
  if (h && !('error' in h) && h.responderCounters && Object.keys(h.responderCounters).length) console.log(`\n${r.subject} responder counters during the rate test: ${JSON.stringify(h.responderCounters)}`);
  const f = r.pingFlood;
  if (f && !('error' in f) && f.responderCounters && Object.keys(f.responderCounters).length) console.log(`${r.subject} responder counters during the flood: ${JSON.stringify(f.responderCounters)}`);
}
fs.mkdirSync(String(opt.out), { recursive: true });
const file = path.join(String(opt.out), `handshake-rate-${started.toISOString().replace(/[:.]/g, '-')}.json`);
const settings = { rounds, seconds, warmup, peers: peerCount, sources: sourceCount, inflight, generators, generatorNice, generatorCode: "native addon (handshakeTest hooks)", timeoutMs, gapMs, pings, pingInterval, flood, floodRate, floodSeconds };
fs.writeFileSync(file, JSON.stringify({ benchmark: 'handshake-rate', date: started.toISOString(), machine, settings, results }, null, 2) + '\n');
console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
