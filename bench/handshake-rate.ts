// Handshakes per second against one responder, and responsiveness under a handshake flood, side
// by side for weft-wg and Debian's wireguard-go in one run. Not a test: it prints a table and
// writes bench/results/handshake-rate-<date>.json. A missing or broken implementation is reported
// in the table, never fatal.
//
//   node bench/handshake-rate.ts [--seconds 10] [--warmup 1] [--peers 256] [--sources N] [--inflight 64]
//                                [--generators auto] [--timeout-ms 1000] [--pings 50] [--ping-interval 0.05]
//                                [--flood-rate 20000] [--no-flood] [--impls weft-wg,wireguard-go]
//                                [--out bench/results]
//
// Per implementation, one lab (test/netns harness: two fresh namespaces A and B joined by a veth,
// removed in a `finally`, also on SIGINT/SIGTERM/SIGHUP):
//
//   1. WgPair: a device of the implementation in A (initiator) and in B (responder), configured
//      with `wg`, tunnel up (one ping answered). B is then given --peers more peers (random static
//      keys, allowed-ips 10.99.x.y/32) with `wg addconf`.
//   2. Handshake rate: bench/handshake-initiators.ts runs in A as its own process and plays those
//      peers with the repository's Noise code, sending from --sources addresses (198.18.0.0/15 on
//      A's veth, routed from B), at most --inflight handshakes outstanding and one initiation per
//      peer per 25 ms (the responder accepts one per 20 ms). Counted over --seconds after
//      --warmup: completed handshakes (response verified, keys derived), cookie replies, time
//      per handshake, responder and generator CPU seconds.
//   3. Ping A → B through the tunnel, --pings at --ping-interval, idle; then again while
//      test/netns/handshake-flood.ts sends --flood-rate initiations/s with a valid mac1 (random
//      content: the shape of a handshake DoS) from a second address of A.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, repoRoot, run, sleep } from '../test/netns/harness.ts';
import { implByName, procUsage, socketPath, type WgImpl } from '../test/netns/impl.ts';
import { WgPair, pairAddresses, pingFrom } from '../test/netns/wgpair.ts';
import { readStats } from '../test/netns/uapi-client.ts';
import { generatePrivateKey, publicKeyOf } from '../src/wireguard/crypto.ts';
import { toBase64 } from '../src/wireguard/keys.ts';
import {
  attempt,
  checkInterrupt,
  errMsg,
  implsFromList,
  installInterruptHandler,
  interrupted,
  interruptSignal,
  machineInfo,
  onInterrupt,
  percentile,
  table,
  type Cell,
} from './common.ts';
import type { InitiatorsConfig, InitiatorsReport } from './handshake-initiators.ts';

const USAGE = `usage: node bench/handshake-rate.ts [--seconds 10] [--warmup 1] [--peers 256] [--sources N] [--inflight 64]
                                  [--generators auto] [--timeout-ms 1000] [--pings 50] [--ping-interval 0.05]
                                  [--flood-rate 20000] [--no-flood] [--impls weft-wg,wireguard-go] [--out DIR]`;

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    peers: { type: 'string', default: '256' },
    sources: { type: 'string' },
    inflight: { type: 'string', default: '64' },
    generators: { type: 'string', default: 'auto' },
    'timeout-ms': { type: 'string', default: '1000' },
    pings: { type: 'string', default: '50' },
    'ping-interval': { type: 'string', default: '0.05' },
    'flood-rate': { type: 'string', default: '20000' },
    'no-flood': { type: 'boolean', default: false },
    impls: { type: 'string', default: 'weft-wg,wireguard-go' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}

function positive(name: string, v: string | undefined, max: number, integer = true): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > max || (integer && !Number.isInteger(n))) {
    console.error(`--${name} must be a ${integer ? 'whole ' : ''}number in (0, ${max}]\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const seconds = positive('seconds', opt.seconds, 600, false);
const warmup = opt.warmup === '0' ? 0 : positive('warmup', opt.warmup, 60, false);
const peerCount = positive('peers', opt.peers, 4096);
/** Source addresses (one socket each); more than one per peer would never be used. */
const sourceCount = Math.min(peerCount, positive('sources', opt.sources ?? String(peerCount), 4096));
const inflight = positive('inflight', opt.inflight, 4096);
/** auto: half the CPUs (at least 1), the other half left to the responder. */
const generators = opt.generators === 'auto' ? Math.max(1, Math.min(8, Math.floor(os.availableParallelism() / 2))) : positive('generators', opt.generators, 16);
const timeoutMs = positive('timeout-ms', opt['timeout-ms'], 10_000);
const pings = positive('pings', opt.pings, 10_000);
const pingInterval = positive('ping-interval', opt['ping-interval'], 10, false);
const floodRate = positive('flood-rate', opt['flood-rate'], 1_000_000);
const flood = !opt['no-flood'];
/** Minimum time between two initiations of one generated peer (the responder accepts one per 20 ms). */
const gapMs = 25;
/** The flood runs this long at most: a second to build up, the pings, margin. */
const floodSeconds = Math.ceil(pings * pingInterval) + 4;
const floodSource = '192.168.77.66';

// ---- interrupts -------------------------------------------------------------------------------
// The harness's own handler would exit right after its cleanup; replace it with one that cleans
// up the live lab, lets the main flow reach its `finally` and exits 130 (forced after 30 s).

const labs = new Set<NetLab>();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
installInterruptHandler();
onInterrupt(() => {
  // The generators and floods run inside the labs (lab.spawn): cleaning them up ends those.
  for (const lab of labs) void lab.cleanup();
  setTimeout(() => {
    void Promise.all([...labs].map((l) => l.cleanup())).finally(() => process.exit(130));
  }, 30_000).unref();
});

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
interface HandshakeRate extends Omit<InitiatorsReport, 'event' | 'cpuSeconds' | 'interrupted'> {
  handshakesPerSecond: number;
  cookieRepliesPerSecond: number;
  initiationsSentPerSecond: number;
  /** Responder device CPU seconds over the window (process tree). */
  responderCpuSeconds: number;
  /** Responder CPU milliseconds per completed handshake. */
  responderCpuMsPerHandshake: number;
  /** Load generator CPU seconds over the window (all generator processes). */
  generatorCpuSeconds: number;
  /** Generated peers the responder shows a handshake for (`wg show dump`), after the run. */
  peersWithHandshake: number;
  /** weft-wg only: the responder's `stats=1` handshake counters, difference over the whole phase. */
  responderCounters?: Record<string, number>;
}

interface FloodPing extends PingStats {
  flood: { sent: number; sentPerSecond: number; cookieReplies: number; seconds: number };
  /** Responder CPU seconds from the flood's start to its end. */
  responderCpuSeconds: number;
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
  for (const [k, v] of Object.entries(b)) if (k.startsWith('handshake_') && a[k] !== undefined && v !== a[k]) out[k] = Number(v - a[k]!);
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

// ---- the phases -------------------------------------------------------------------------------

async function handshakeRate(lab: NetLab, pair: WgPair, impl: WgImpl): Promise<HandshakeRate> {
  const { a, b } = pair;
  const dir = lab.tempDir('hs');
  // The generated peers, on the responder.
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
  // The source addresses, on A's veth; B routes them back over the veth.
  const sources = Array.from({ length: sourceCount }, (_, i) => sourceAddress(i));
  await run('ip', ['-n', a.ns, '-batch', '-'], { input: sources.map((s) => `addr add ${s}/32 dev ${a.veth}\n`).join('') });
  await run('ip', ['-n', b.ns, 'route', 'add', '198.18.0.0/15', 'via', pairAddresses.A.underlay.v4]);
  checkInterrupt();

  // One or more generator processes, each with its share of peers and sources.
  const gens: { child: ChildProcess; ready: Promise<void>; done: Promise<InitiatorsReport>; output: () => string }[] = [];
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
    const child = lab.spawn(a.ns, [nodeBin, path.join(repoRoot, 'bench/handshake-initiators.ts'), cfgFile], { stdio: ['pipe', 'pipe', 'pipe'] });
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
  process.stderr.write(`[${impl.name}] ${peerCount} peers, ${sourceCount} sources, ${inflight} in flight: ${warmup} s warm-up + ${seconds} s\n`);
  for (const g of gens) g.child.stdin?.write('go\n');
  await sleep(warmup * 1000);
  const cpu0 = procUsage(responderPid).cpuSeconds;
  await sleep(seconds * 1000);
  const cpu1 = procUsage(responderPid).cpuSeconds;
  const reports = await bounded('the load generators to report', Promise.all(gens.map((g) => g.done)), timeoutMs + 15_000);
  for (const g of gens) g.child.stdin?.end();
  const stats1 = await counters(impl, b.ifname);
  if (!pair.b.device.running()) throw new Error(`responder exited: ${pair.b.device.output().slice(-300)}`);

  const sum = (f: (r: InitiatorsReport) => number) => reports.reduce((s, r) => s + f(r), 0);
  const window = Math.max(...reports.map((r) => r.seconds));
  if (!(window > 0)) throw new Error(`the load generator measured nothing: ${JSON.stringify(reports[0]).slice(0, 300)}`);
  const completed = sum((r) => r.completed);
  const perSecond = reports[0]!.perSecond.map((_, i) => sum((r) => r.perSecond[i] ?? 0));
  const dump = await pair.dump(b);
  const generated = new Set(keys.map((k) => k.pk));
  const responderCpuSeconds = cpu1 - cpu0;
  return {
    seconds: window,
    handshakesPerSecond: completed / window,
    cookieRepliesPerSecond: sum((r) => r.cookieReplies) / window,
    initiationsSentPerSecond: sum((r) => r.initiationsSent) / window,
    completed,
    cookieReplies: sum((r) => r.cookieReplies),
    initiationsSent: sum((r) => r.initiationsSent),
    resentWithMac2: sum((r) => r.resentWithMac2),
    timeouts: sum((r) => r.timeouts),
    badResponses: sum((r) => r.badResponses),
    badCookies: sum((r) => r.badCookies),
    stray: sum((r) => r.stray),
    peersCompleted: sum((r) => r.peersCompleted),
    // Per-generator percentiles; with several generators, the median of theirs.
    latencyMedianMs: percentile(reports.map((r) => r.latencyMedianMs).filter(Number.isFinite), 50),
    latencyP90Ms: percentile(reports.map((r) => r.latencyP90Ms).filter(Number.isFinite), 50),
    perSecond,
    responderCpuSeconds,
    responderCpuMsPerHandshake: completed ? (1000 * responderCpuSeconds) / completed : NaN,
    generatorCpuSeconds: sum((r) => r.cpuSeconds),
    peersWithHandshake: dump.peers.filter((p) => generated.has(p.publicKey) && p.latestHandshake > 0).length,
    ...(counterDiff(stats0, stats1) ? { responderCounters: counterDiff(stats0, stats1)! } : {}),
  };
}

async function pingUnderFlood(lab: NetLab, pair: WgPair, impl: WgImpl): Promise<FloodPing> {
  const { a, b } = pair;
  await lab.exec(a.ns, ['ip', 'addr', 'add', `${floodSource}/24`, 'dev', a.veth]);
  const stats0 = await counters(impl, b.ifname);
  const cpu0 = procUsage(b.device.pid).cpuSeconds;
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
    const stats1 = await counters(impl, b.ifname);
    if (!report) throw new Error(`flood printed no report: ${output().trim().slice(-300)}`);
    const r = report as { sent: number; cookieReplies: number; seconds: number };
    return {
      ...p,
      flood: { sent: r.sent, sentPerSecond: r.seconds ? r.sent / r.seconds : 0, cookieReplies: r.cookieReplies, seconds: r.seconds },
      responderCpuSeconds: cpu1 - cpu0,
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

async function benchImpl(impl: WgImpl): Promise<ImplResult> {
  const res: ImplResult = { subject: impl.name, command: impl.command };
  res.version = await implVersion(impl);
  checkInterrupt();
  const lab = NetLab.create();
  labs.add(lab);
  try {
    const pair = await WgPair.create(lab, { initiator: impl, responder: impl, tag: 'h' });
    await pair.waitPing(pair.a, pair.b.tunnel.v4, 15_000);
    checkInterrupt();
    res.handshakes = await attempt(() => handshakeRate(lab, pair, impl));
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
    for (const s of [pair.a, pair.b]) if (!s.device.running()) res.error = `device ${s.label} exited during the run: ${s.device.output().slice(-300)}`;
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
  if (typeof c === 'object' && c !== null && 'error' in c) return `error: ${(c as { error: string }).error.slice(0, 48)}`;
  return f(c as T);
}
const n0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const n2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const ms3 = (x: number) => (Number.isFinite(x) ? `${x.toFixed(3)} ms` : '—');
const pingText = (p: PingStats) => `${ms3(p.medianMs)} / ${ms3(p.p90Ms)} (${p.received}/${p.sent}, ${p.lossPct.toFixed(0)}% loss)`;

/** The generator used ≥ 90 % of its CPU time: the handshake rate is then a lower bound. */
function generatorSaturated(h: HandshakeRate): boolean {
  return h.generatorCpuSeconds >= 0.9 * h.seconds * generators;
}

function render(results: ImplResult[]): string {
  const hs = (f: (h: HandshakeRate) => string) => (r: ImplResult) => cellText(r.handshakes, f);
  const rows: [string, (r: ImplResult) => string][] = [
    ['status', (r) => (r.error ? 'FAILED (see below)' : 'ok')],
    ['version', (r) => r.version ?? '—'],
    [`handshakes completed /s (${seconds} s)`, hs((h) => n0(h.handshakesPerSecond))],
    ['cookie replies /s', hs((h) => n0(h.cookieRepliesPerSecond))],
    ['initiations sent /s (with mac2 resends)', hs((h) => `${n0(h.initiationsSentPerSecond)} (${h.resentWithMac2} resent)`)],
    [`unanswered after ${timeoutMs} ms`, hs((h) => String(h.timeouts))],
    ['time per handshake median / p90', hs((h) => `${ms3(h.latencyMedianMs)} / ${ms3(h.latencyP90Ms)}`)],
    ['responder CPU s (ms per handshake)', hs((h) => `${n2(h.responderCpuSeconds)} (${n2(h.responderCpuMsPerHandshake)})`)],
    ['load generator CPU s', hs((h) => `${n2(h.generatorCpuSeconds)} of ${n2(h.seconds * generators)} s${generatorSaturated(h) ? ' (saturated)' : ''}`)],
    ['generated peers with a handshake (wg)', hs((h) => `${h.peersWithHandshake}/${peerCount}`)],
    [`ping idle median / p90 (${pings} × ${pingInterval} s)`, (r) => cellText(r.pingIdle, pingText)],
  ];
  if (flood) {
    rows.push(
      [`ping under ${floodRate}/s flood median / p90`, (r) => cellText(r.pingFlood, pingText)],
      ['flood sent /s (cookie replies to it)', (r) => cellText(r.pingFlood, (f) => `${n0(f.flood.sentPerSecond)} (${f.flood.cookieReplies})`)],
      ['responder CPU s during the flood', (r) => cellText(r.pingFlood, (f) => `${n2(f.responderCpuSeconds)} of ${n2(f.flood.seconds)} s`)],
      ['tunnel answers after the flood', (r) => (r.responsiveAfterFlood === undefined ? '—' : r.responsiveAfterFlood ? 'yes' : 'NO')],
    );
  }
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
console.log(`\nHandshake benchmark — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
console.log(`Responder in namespace B with ${peerCount} generated peers; load generator (repository Noise code) in A, ${sourceCount} source addresses, ≤ ${inflight} in flight, ${generators} process(es).`);
console.log(`Both devices of a lab are the same implementation; "ping" is A → B through the tunnel. Figures are comparable within one run only.\n`);
console.log(render(results));
for (const r of results) {
  if (r.error) console.log(`\n${r.subject} FAILED: ${r.error}`);
  const h = r.handshakes;
  if (h && !('error' in h) && generatorSaturated(h)) console.log(`\n${r.subject}: the load generator was saturated, so ${n0(h.handshakesPerSecond)}/s is a lower bound of what the responder can do (see its CPU seconds).`);
  if (h && !('error' in h) && h.responderCounters && Object.keys(h.responderCounters).length) console.log(`\n${r.subject} responder counters during the rate test: ${JSON.stringify(h.responderCounters)}`);
  const f = r.pingFlood;
  if (f && !('error' in f) && f.responderCounters && Object.keys(f.responderCounters).length) console.log(`${r.subject} responder counters during the flood: ${JSON.stringify(f.responderCounters)}`);
}
fs.mkdirSync(String(opt.out), { recursive: true });
const file = path.join(String(opt.out), `handshake-rate-${started.toISOString().replace(/[:.]/g, '-')}.json`);
const settings = { seconds, warmup, peers: peerCount, sources: sourceCount, inflight, generators, timeoutMs, gapMs, pings, pingInterval, flood, floodRate, floodSeconds };
fs.writeFileSync(file, JSON.stringify({ benchmark: 'handshake-rate', date: started.toISOString(), machine, settings, results }, null, 2) + '\n');
console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
