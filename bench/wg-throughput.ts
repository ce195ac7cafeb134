// WireGuard device throughput/latency/footprint, side by side, in one run on one topology:
// raw veth (the ceiling), Debian's wireguard-go and weft-wg, each as a pair of devices in two
// namespaces built by test/netns/wgpair.ts. Not a test: it prints a table and writes
// bench/results/wg-throughput-<date>.json. A missing or broken implementation is reported in the
// table, never fatal.
//
//   node bench/wg-throughput.ts [--seconds 10] [--pings 100] [--ping-interval 0.05] [--parallel 4]
//                               [--impls weft-wg,weft-wg-no-offloads,wireguard-go] [--no-veth] [--out bench/results]
// --impls takes names (weft-wg, weft-wg-no-offloads, wireguard-go) or paths of commands following
// wireguard-go's CLI.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { NetLab, repoRoot, run, sleep } from '../test/netns/harness.ts';
import { procUsage, type ProcUsage, type WgImpl } from '../test/netns/impl.ts';
import { attempt, errMsg, implsFromList, machineInfo, type Cell } from './common.ts';
import { IperfServer, WgPair, buildUnderlay, pairAddresses, percentile, pingFrom, type IperfResult } from '../test/netns/wgpair.ts';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    pings: { type: 'string', default: '100' },
    'ping-interval': { type: 'string', default: '0.05' },
    parallel: { type: 'string', default: '4' },
    impls: { type: 'string', default: 'weft-wg,weft-wg-no-offloads,wireguard-go' },
    'no-veth': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node bench/wg-throughput.ts [--seconds 10] [--pings 100] [--ping-interval 0.05] [--parallel 4] [--impls weft-wg,weft-wg-no-offloads,wireguard-go] [--no-veth] [--out DIR]');
  process.exit(0);
}
const seconds = Number(opt.seconds);
const pings = Number(opt.pings);
const pingInterval = Number(opt['ping-interval']);
const parallel = Number(opt.parallel);

interface Throughput {
  gbps: number;
  retransmits: number;
  /** CPU seconds both device processes used during this transfer (absent for raw veth). */
  deviceCpuSeconds?: number;
  /** Gigabits received during the transfer (receiver bitrate × receiver seconds). */
  gigabits?: number;
  /** deviceCpuSeconds ÷ gigabits: device CPU (both ends) per gigabit carried (absent for raw veth). */
  cpuSecondsPerGbit?: number;
  /**
   * Share of the whole machine's CPU time (all cores, /proc/stat) busy during the transfer: near
   * 1 means the run was CPU-bound, so more threads could not have made it faster.
   */
  machineBusy?: number;
}
interface PingStats {
  sent: number;
  received: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  maxMs: number;
}

interface SubjectResult {
  subject: string;
  command?: string[];
  version?: string;
  error?: string;
  tcp1Forward?: Cell<Throughput>;
  tcp1Reverse?: Cell<Throughput>;
  tcpParallel?: Cell<Throughput>;
  ping?: Cell<PingStats>;
  /**
   * The same pings, sent through every subject's tunnel at once (all pairs up together): the
   * machine's load and idle states are then the same for all, which separate runs cannot ensure
   * for differences of tenths of a millisecond.
   */
  pingSideBySide?: Cell<PingStats>;
  /** Highest VmRSS sampled while under load, per device (KiB). */
  rssUnderLoadKiB?: { a: number; b: number };
  /** VmHWM at the end of the run, per device (KiB). */
  hwmKiB?: { a: number; b: number };
  /** CPU seconds per device over the whole measurement (all transfers and pings). */
  cpuSeconds?: { a: number; b: number };
}

/** Sample a device pair's resident memory every 200 ms while `work` runs. */
async function sampled<T>(pids: [number, number] | null, peak: { a: number; b: number }, work: () => Promise<T>): Promise<T> {
  if (!pids) return work();
  let done = false;
  const loop = (async () => {
    while (!done) {
      const [ua, ub] = [procUsage(pids[0]), procUsage(pids[1])];
      peak.a = Math.max(peak.a, ua.rssKiB);
      peak.b = Math.max(peak.b, ub.rssKiB);
      await sleep(200);
    }
  })();
  try {
    return await work();
  } finally {
    done = true;
    await loop;
  }
}

/** Busy and total jiffies of all CPUs together (first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((s, v) => s + v, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

function toThroughput(r: IperfResult, cpu?: number): Throughput {
  const gigabits = (r.bitsPerSecond * (r.seconds > 0 ? r.seconds : seconds)) / 1e9;
  return {
    gbps: r.bitsPerSecond / 1e9,
    retransmits: r.retransmits,
    gigabits,
    ...(cpu !== undefined ? { deviceCpuSeconds: cpu, ...(gigabits > 0 ? { cpuSecondsPerGbit: cpu / gigabits } : {}) } : {}),
  };
}

async function measure(subject: string, lab: NetLab, clientNs: string, server: IperfServer, target: { v4: string }, pids: [number, number] | null, res: SubjectResult): Promise<void> {
  const peak = { a: 0, b: 0 };
  const cpuNow = (): number => (pids ? procUsage(pids[0]).cpuSeconds + procUsage(pids[1]).cpuSeconds : 0);
  const transfer = async (o: { reverse?: boolean; parallel?: number }): Promise<Cell<Throughput>> =>
    attempt(async () => {
      const c0 = cpuNow();
      const m0 = machineJiffies();
      const r = await sampled(pids, peak, () => server.run(clientNs, target.v4, { seconds, ...o }));
      const m1 = machineJiffies();
      const busy = m1.total > m0.total ? (m1.busy - m0.busy) / (m1.total - m0.total) : undefined;
      return { ...toThroughput(r, pids ? cpuNow() - c0 : undefined), ...(busy !== undefined ? { machineBusy: busy } : {}) };
    });
  const start: ProcUsage[] | null = pids ? [procUsage(pids[0]), procUsage(pids[1])] : null;
  process.stderr.write(`[${subject}] TCP 1 stream A→B ${seconds} s\n`);
  res.tcp1Forward = await transfer({});
  process.stderr.write(`[${subject}] TCP 1 stream B→A ${seconds} s\n`);
  res.tcp1Reverse = await transfer({ reverse: true });
  process.stderr.write(`[${subject}] TCP ${parallel} streams A→B ${seconds} s\n`);
  res.tcpParallel = await transfer({ parallel });
  process.stderr.write(`[${subject}] ${pings} pings every ${pingInterval} s\n`);
  res.ping = await attempt(() => pingStats(lab, clientNs, target.v4));
  if (pids && start) {
    const [ea, eb] = [procUsage(pids[0]), procUsage(pids[1])];
    res.rssUnderLoadKiB = peak;
    res.hwmKiB = { a: ea.hwmKiB, b: eb.hwmKiB };
    res.cpuSeconds = { a: ea.cpuSeconds - start[0]!.cpuSeconds, b: eb.cpuSeconds - start[1]!.cpuSeconds };
  }
}

async function benchVeth(): Promise<SubjectResult> {
  const res: SubjectResult = { subject: 'veth (raw)' };
  const lab = NetLab.create();
  try {
    const { nsA, nsB } = await buildUnderlay(lab, { tag: 'v' });
    const server = new IperfServer(lab, nsB);
    await measure('veth', lab, nsA, server, pairAddresses.B.underlay, null, res);
  } catch (e) {
    res.error = errMsg(e);
  } finally {
    await lab.cleanup();
  }
  return res;
}

async function pingStats(lab: NetLab, ns: string, to: string): Promise<PingStats> {
  const p = await pingFrom(lab, ns, to, { count: pings, interval: pingInterval, waitSec: 1, deadlineSec: Math.ceil(pings * pingInterval + 10) });
  if (!p.rtts.length) throw new Error(`no ping replies (${p.received}/${p.transmitted})`);
  return { sent: p.transmitted, received: p.received, medianMs: percentile(p.rtts, 50), p90Ms: percentile(p.rtts, 90), minMs: Math.min(...p.rtts), maxMs: Math.max(...p.rtts) };
}

/** Every implementation's pair up at once, pinged at the same time (see pingSideBySide). */
async function pingSideBySide(list: WgImpl[], into: Map<string, SubjectResult>): Promise<void> {
  const lab = NetLab.create();
  try {
    const pairs = [];
    for (const [i, impl] of list.entries()) {
      const pair = await WgPair.create(lab, { initiator: impl, responder: impl, tag: `p${i}` });
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 15_000);
      pairs.push({ impl, pair });
    }
    process.stderr.write(`[side by side] ${pings} pings every ${pingInterval} s through ${list.length} tunnels at once\n`);
    await Promise.all(
      pairs.map(async ({ impl, pair }) => {
        const res = into.get(impl.name);
        if (res) res.pingSideBySide = await attempt(() => pingStats(lab, pair.a.ns, pair.b.tunnel.v4));
      }),
    );
  } catch (e) {
    for (const impl of list) {
      const res = into.get(impl.name);
      if (res && !res.pingSideBySide) res.pingSideBySide = { error: errMsg(e) };
    }
  } finally {
    await lab.cleanup();
  }
}

async function implVersion(impl: WgImpl): Promise<string | undefined> {
  const r = await run(impl.command[0]!, [...impl.command.slice(1), '--version'], { allowFail: true, timeoutMs: 10_000 }).catch(() => null);
  const line = r ? (r.stdout || r.stderr).split('\n').find((l) => l.trim()) : undefined;
  return r && r.code === 0 ? line?.trim() : undefined;
}

async function benchImpl(impl: WgImpl): Promise<SubjectResult> {
  const res: SubjectResult = { subject: impl.name, command: impl.command };
  res.version = await implVersion(impl);
  const lab = NetLab.create();
  try {
    const pair = await WgPair.create(lab, { initiator: impl, responder: impl, tag: 'w' });
    await pair.waitPing(pair.a, pair.b.tunnel.v4, 15_000);
    const server = new IperfServer(lab, pair.b.ns);
    await measure(impl.name, lab, pair.a.ns, server, pair.b.tunnel, [pair.a.device.pid, pair.b.device.pid], res);
    for (const s of [pair.a, pair.b]) if (!s.device.running()) res.error = `device ${s.label} exited during the run: ${s.device.output().slice(-300)}`;
  } catch (e) {
    res.error = errMsg(e);
  } finally {
    await lab.cleanup();
  }
  return res;
}

// ---- table ----------------------------------------------------------------------------------

function cellText<T>(c: Cell<T> | undefined, f: (v: T) => string): string {
  if (c === undefined) return '—';
  if (typeof c === 'object' && c !== null && 'error' in c) return `error: ${(c as { error: string }).error.slice(0, 40)}`;
  return f(c as T);
}
const tp = (t: Throughput) =>
  `${t.gbps.toFixed(2)} Gbit/s${t.cpuSecondsPerGbit === undefined ? '' : `, ${t.cpuSecondsPerGbit.toFixed(2)} CPU s/Gbit`} (${t.retransmits} retr${
    t.machineBusy === undefined ? '' : `, CPU ${Math.round(t.machineBusy * 100)}% busy`
  })`;
const mib = (k: number) => (k / 1024).toFixed(1);

function table(results: SubjectResult[]): string {
  const rows: [string, (r: SubjectResult) => string][] = [
    ['status', (r) => (r.error ? 'FAILED (see below)' : 'ok')],
    ['version', (r) => r.version ?? '—'],
    [`TCP 1 stream A→B, ${seconds} s`, (r) => cellText(r.tcp1Forward, tp)],
    [`TCP 1 stream B→A, ${seconds} s`, (r) => cellText(r.tcp1Reverse, tp)],
    [`TCP ${parallel} streams A→B, ${seconds} s`, (r) => cellText(r.tcpParallel, tp)],
    [`ping RTT median (${pings} × ${pingInterval} s)`, (r) => cellText(r.ping, (p) => `${p.medianMs.toFixed(3)} ms`)],
    ['ping RTT p90', (r) => cellText(r.ping, (p) => `${p.p90Ms.toFixed(3)} ms (${p.received}/${p.sent} replies)`)],
    ['ping RTT median, tunnels side by side', (r) => cellText(r.pingSideBySide, (p) => `${p.medianMs.toFixed(3)} ms`)],
    ['ping RTT p90, side by side', (r) => cellText(r.pingSideBySide, (p) => `${p.p90Ms.toFixed(3)} ms (${p.received}/${p.sent} replies)`)],
    ['device CPU s, 1 stream A→B (A+B)', (r) => cellText(r.tcp1Forward, (t) => (t.deviceCpuSeconds === undefined ? '—' : t.deviceCpuSeconds.toFixed(2)))],
    [`device CPU s, ${parallel} streams (A+B)`, (r) => cellText(r.tcpParallel, (t) => (t.deviceCpuSeconds === undefined ? '—' : t.deviceCpuSeconds.toFixed(2)))],
    ['device CPU s, whole run (A / B)', (r) => (r.cpuSeconds ? `${r.cpuSeconds.a.toFixed(2)} / ${r.cpuSeconds.b.toFixed(2)}` : '—')],
    ['VmRSS under load, MiB (A / B)', (r) => (r.rssUnderLoadKiB ? `${mib(r.rssUnderLoadKiB.a)} / ${mib(r.rssUnderLoadKiB.b)}` : '—')],
    ['VmHWM at end, MiB (A / B)', (r) => (r.hwmKiB ? `${mib(r.hwmKiB.a)} / ${mib(r.hwmKiB.b)}` : '—')],
  ];
  const header = ['', ...results.map((r) => r.subject)];
  const body = rows.map(([label, f]) => [label, ...results.map(f)]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(widths[i]!)).join(' │ ');
  return [line(header), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...body.map(line)].join('\n');
}

// ---- main -----------------------------------------------------------------------------------

const { impls, bad } = implsFromList<SubjectResult>(String(opt.impls), (subject, error) => ({ subject, error }));

const started = new Date();
const results: SubjectResult[] = [];
if (!opt['no-veth']) results.push(await benchVeth());
for (const impl of impls) results.push(await benchImpl(impl));
if (impls.length > 0) await pingSideBySide(impls, new Map(results.map((r) => [r.subject, r])));
results.push(...bad);

const machine = await machineInfo();
console.log(`\nWireGuard device benchmark — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
console.log(`A and B are network namespaces joined by a veth; devices configured with wg; iperf3 ${seconds} s; MTU 1420 inside the tunnel.`);
console.log(`CPU s/Gbit: CPU seconds both devices used during the transfer ÷ gigabits received (lower is better); % busy: the whole machine during it.\n`);
console.log(table(results));
for (const r of results) if (r.error) console.log(`\n${r.subject} FAILED: ${r.error}`);
fs.mkdirSync(String(opt.out), { recursive: true });
const file = path.join(String(opt.out), `wg-throughput-${started.toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(file, JSON.stringify({ benchmark: 'wg-throughput', date: started.toISOString(), machine, settings: { seconds, pings, pingInterval, parallel }, results }, null, 2) + '\n');
console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
