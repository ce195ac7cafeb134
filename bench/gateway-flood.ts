// A gateway with two tunnels, idle and under a handshake flood, in one run. Not a test: it prints a
// table and writes bench/results/gateway-flood-<date>.json.
//
//   node bench/gateway-flood.ts [--seconds 20] [--max-rate 50000] [--sources 8] [--lease-ms 15000]
//                               [--attacker-nice 19] [--no-reference] [--out bench/results]
//
// The setup is test/netns/flood-mesh.ts (as in test/netns/gateway-flood.test.ts): the lab's three
// clusters a, b, c (2 nodes × 1 pod each, all on 10.0.0.0/16), full mesh, the real controllers,
// gateways and node agents in Kubernetes mode on in-process fake API servers; cluster a runs two
// gateway replicas electing through the Lease `weft-gateway` (active on the gateway host, standby
// on node n2). An attacker namespace on the WAN switch sends mac1-valid initiations
// (test/netns/handshake-flood.ts) from --sources addresses at a's WAN address. Phases, each
// --seconds long, measured the same way:
//
//   idle       no flood;
//   reference  the flood at a closed UDP port of a's gateway host (the generator's CPU and the
//              kernel's share, no weft involved): what the machine's load alone does;
//   flood      the flood spread over both of a's tunnel ports.
//
// The generator runs at --attacker-nice (19: it gets only the CPU the clusters leave; a real
// attacker spends its own machine's). The flood rate is what one generator reaches here: a short
// calibration at --max-rate first (the generator catches up on what it owes in ever longer bursts,
// so a target far above its reach would overrun the phase). Per phase: a's gateway reconciles
// (weft_reconciles_total, weft_reconcile_seconds: count, mean, p50/p90 as histogram bucket bounds,
// the longest gap between completed ones), its event-loop delay (max, prom-client) and /healthz
// latency, its JavaScript thread's CPU time and run-queue wait (schedstat), the peerings' probe
// latency and probes answered as the gateway's /metrics report them, pod → pod pings a → b and a → c, the
// Lease holder before and after (renewals, longest renewal gap), the flood rate achieved, cookie
// replies sent per tunnel (`stats=1`), CPU seconds of the active and the standby gateway process
// (and of the active one's busiest threads) and how busy the whole machine was (/proc/stat).
//
// --lease-ms defaults to the elector's own default, 15 s (renewed every 5 s, given up after 10 s),
// as in the test; the deployment's 5 s (deadline 3.3 s) is `--lease-ms 5000`. If the active
// replica loses the Lease (it exits then), the phases after that one are not measured.
//
// Everything is removed in a `finally`, also on SIGINT/SIGTERM/SIGHUP (then no result file).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FloodMesh, histogramQuantile, percentileOf, type FloodReport, type Observation } from '../test/netns/flood-mesh.ts';
import { readStats } from '../test/netns/uapi-client.ts';
import { checkInterrupt, installInterruptHandler, interrupted, machineInfo, onInterrupt, repoRoot, sleep, table, writeResult } from './common.ts';

const USAGE = `usage: node bench/gateway-flood.ts [--seconds 20] [--max-rate 50000] [--sources 8] [--lease-ms 15000]
                                  [--attacker-nice 19] [--no-reference] [--out DIR]`;

const FLAGS = {
  seconds: { type: 'string', default: '20' },
  'max-rate': { type: 'string', default: '50000' },
  sources: { type: 'string', default: '8' },
  'lease-ms': { type: 'string', default: '15000' },
  'attacker-nice': { type: 'string', default: '19' },
  'no-reference': { type: 'boolean', default: false },
  out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
  help: { type: 'boolean', short: 'h', default: false },
} as const;
function parseFlags() {
  try {
    return parseArgs({ options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const opt = parseFlags();
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
function intFlag(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}
const seconds = intFlag('seconds', opt.seconds, 5, 600);
const maxRate = intFlag('max-rate', opt['max-rate'], 1000, 1_000_000);
const sources = intFlag('sources', opt.sources, 1, 64);
const leaseMs = intFlag('lease-ms', opt['lease-ms'], 1000, 60_000);
const attackerNice = intFlag('attacker-nice', opt['attacker-nice'], 0, 19);
const reference = !opt['no-reference'];
/** Nothing listens there on a's gateway host (its tunnels take 51820 upwards). */
const CLOSED_PORT = 9;

const log = (l: string) => process.stderr.write(`${l}\n`);

// ---- interrupts ---------------------------------------------------------------------------------
// The harness (imported through flood-mesh.ts) would exit right after its own cleanup; replace its
// handler with common.ts's: end our processes, remove the namespaces at once, let the main flow
// reach its `finally`.
let mesh: FloodMesh | undefined;
let wakeOnInterrupt: () => void = () => {};
const interruptedP = new Promise<void>((r) => (wakeOnInterrupt = r));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
installInterruptHandler();
onInterrupt(() => {
  mesh?.closeSync();
  wakeOnInterrupt();
  setTimeout(() => process.exit(130), 30_000).unref();
});

// ---- measuring ----------------------------------------------------------------------------------

/** Busy share of all CPUs between two /proc/stat readings. */
function cpuTimes(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

interface Phase {
  name: 'idle' | 'reference' | 'flood';
  description: string;
  observation: Observation;
  flood?: FloodReport & { targetRate: number; ports: number[] };
  /** Cookie replies sent per tunnel during the whole phase (from its start, `stats=1`). */
  cookieReplies: Record<string, number>;
  machineBusyPct: number;
  leaseHolderBefore: string | undefined;
  leaseHolderAfter: string | undefined;
}

async function phase(m: FloodMesh, name: Phase['name'], ports: number[] | undefined, publicKey: string, rate: number): Promise<Phase> {
  checkInterrupt();
  const tunnels = await m.tunnels();
  const c0 = await Promise.all(tunnels.map((t) => readStats(t.socket)));
  const holderBefore = (await m.lease()).holder;
  const cpu0 = cpuTimes();
  const flood = ports ? m.startFlood(ports, publicKey, { rate, maxSeconds: seconds + 1, nice: attackerNice }) : undefined;
  const until = Promise.race([interruptedP, ...(flood ? [new Promise((r) => flood.child.once('exit', r))] : [])]);
  if (flood) await Promise.race([sleep(1000), interruptedP]); // let it build up
  checkInterrupt();
  log(`[${name}] observing ${seconds} s${flood ? ` (flood at ${rate}/s on port${ports!.length > 1 ? 's' : ''} ${ports!.join(', ')})` : ''}`);
  const observation = await m.observe(seconds, until);
  const report = flood ? await flood.report() : undefined;
  const cpu1 = cpuTimes();
  checkInterrupt();
  // Gone when the active replica exited (it does when it loses the Lease).
  const c1 = await Promise.all(tunnels.map((t) => readStats(t.socket).catch(() => undefined)));
  const cookieReplies: Record<string, number> = {};
  for (const [i, t] of tunnels.entries()) cookieReplies[t.interfaceName] = c1[i] ? Number((c1[i].handshake_cookie_replies_sent ?? 0n) - (c0[i]!.handshake_cookie_replies_sent ?? 0n)) : NaN;
  return {
    name,
    description: name === 'idle' ? 'no flood' : name === 'reference' ? `flood at a closed port (${CLOSED_PORT}) of a's gateway host` : "flood on both of a's tunnel ports",
    observation,
    ...(report ? { flood: { ...report, targetRate: rate, ports: ports! } } : {}),
    cookieReplies,
    machineBusyPct: (100 * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total),
    leaseHolderBefore: holderBefore,
    leaseHolderAfter: (await m.lease()).holder,
  };
}

// ---- table --------------------------------------------------------------------------------------

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const secBound = (x: number) => (x === Infinity ? '> 5 s' : Number.isFinite(x) ? `≤ ${x * 1000} ms` : '—');

function rowsFor(phases: Phase[]): string[][] {
  const col = (f: (p: Phase) => string) => phases.map(f);
  const o = (p: Phase) => p.observation;
  const probe = (r: string) => (p: Phase) => {
    const t = o(p).peerings[r]!;
    return `${f1(percentileOf(t.latencyMs, 50))} / ${f1(percentileOf(t.latencyMs, 90))} ms (${t.probesAnswered} answered)`;
  };
  const ping = (r: string) => (p: Phase) => {
    const t = o(p).pings[r];
    if (!t) return '—';
    const loss = t.sent ? (100 * (t.sent - t.received)) / t.sent : NaN;
    return `${f2(percentileOf(t.rttMs, 50))} / ${f2(percentileOf(t.rttMs, 90))} ms, ${f1(loss)} % loss`;
  };
  const connected = (p: Phase) => ['b', 'c'].map((r) => `${r}: ${o(p).peerings[r]!.samples - o(p).peerings[r]!.notConnected.length}/${o(p).peerings[r]!.samples}`).join(', ');
  return [
    ['', ...phases.map((p) => `${p.name} (${p.description})`)],
    ['flood rate achieved (initiations/s)', ...col((p) => (p.flood ? `${f0(p.flood.rate)} (target ${p.flood.targetRate}, ${p.flood.sent} sent)` : '—'))],
    ['cookie replies sent (tunnel a→b / a→c)', ...col((p) => Object.values(p.cookieReplies).map((n) => (Number.isFinite(n) ? String(n) : '—')).join(' / '))],
    ['cookie replies the attacker heard', ...col((p) => (p.flood ? String(p.flood.cookieReplies) : '—'))],
    ['reconciles completed (per s)', ...col((p) => `${o(p).reconciles.ok} (${f2(o(p).reconciles.ok / o(p).seconds)}), ${o(p).reconciles.errors} errors`)],
    ['reconcile mean', ...col((p) => (o(p).reconciles.histogram.count ? `${f0((o(p).reconciles.histogram.sum / o(p).reconciles.histogram.count) * 1000)} ms` : '—'))],
    ['reconcile p50 / p90 (bucket bound)', ...col((p) => `${secBound(histogramQuantile(o(p).reconciles.histogram, 50))} / ${secBound(histogramQuantile(o(p).reconciles.histogram, 90))}`)],
    ['longest gap between reconciles', ...col((p) => `${f0(o(p).reconciles.longestGapMs)} ms`)],
    ['event-loop delay max', ...col((p) => `${f0(o(p).eventLoopLagMaxMs)} ms`)],
    ['/healthz median / p99 / max', ...col((p) => `${f1(percentileOf(o(p).healthz.latencyMs, 50))} / ${f1(percentileOf(o(p).healthz.latencyMs, 99))} / ${f1(Math.max(...o(p).healthz.latencyMs))} ms, ${o(p).healthz.failures} failed`)],
    ['probe latency a→b (/metrics) median / p90', ...col(probe('b'))],
    ['probe latency a→c (/metrics) median / p90', ...col(probe('c'))],
    ['a\'s peerings Connected (samples)', ...col(connected)],
    ['pod ping a→b median / p90', ...col(ping('b'))],
    ['pod ping a→c median / p90', ...col(ping('c'))],
    ['ping sweeps (all pods a → b, c)', ...col((p) => `${o(p).sweeps.rounds} rounds, ${o(p).sweeps.failures.length} failed pairs`)],
    ['Lease holder before → after', ...col((p) => `${p.leaseHolderBefore} → ${p.leaseHolderAfter}${o(p).lease.holders.length > 1 ? ` (saw ${o(p).lease.holders.join(', ')})` : ''}`)],
    ['Lease renewals, longest gap', ...col((p) => `${o(p).lease.renewals}, ${f0(o(p).lease.maxRenewGapMs)} ms`)],
    ['active gateway CPU (s, % of a core)', ...col((p) => `${f2(o(p).gatewayCpuSeconds)} s (${f0((100 * o(p).gatewayCpuSeconds) / o(p).seconds)} %)`)],
    ['  its busiest threads: CPU / run-queue wait', ...col((p) => o(p).busyThreads.sort((x, y) => y.cpuSeconds - x.cpuSeconds).slice(0, 3).map((t) => `${f1(t.cpuSeconds)}/${f1(t.waitSeconds)} s`).join(', ') || '—')],
    ['  its JS thread: ran / waited for a CPU', ...col((p) => `${f0(o(p).jsThread.runMs)} / ${f0(o(p).jsThread.waitMs)} ms (worst second ${f0(o(p).jsThread.worstSecondWaitMs)} ms)`)],
    ['standby gateway CPU', ...col((p) => `${f2(o(p).standbyCpuSeconds)} s`)],
    ['machine busy (all CPUs)', ...col((p) => `${f0(p.machineBusyPct)} %`)],
  ];
}

// ---- main ---------------------------------------------------------------------------------------

const started = new Date();
const phases: Phase[] = [];
let calibratedRate = 0;
let failure: string | undefined;
try {
  const t0 = Date.now();
  await FloodMesh.create({ leaseMs, attackerAddresses: sources, log }, (x) => (mesh = x));
  log(`setup: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  checkInterrupt();
  const m = mesh!;
  const publicKey = (await m.clusterNetwork('a'))?.status?.gatewayPublicKey;
  if (!publicKey) throw new Error("cluster a has no gateway public key in its status");
  const ports = (await m.tunnels()).map((t) => t.port);
  const lostLease = (p: Phase) => {
    if (!p.observation.activeAlive || p.leaseHolderAfter !== p.leaseHolderBefore) throw new Error(`a's active gateway lost the Lease during the ${p.name} phase (holder ${p.leaseHolderBefore} → ${p.leaseHolderAfter}, process ${p.observation.activeAlive ? 'running' : 'exited'}); later phases not measured`);
  };
  phases.push(await phase(m, 'idle', undefined, publicKey, 0));
  lostLease(phases.at(-1)!);
  calibratedRate = await m.calibrateFlood(ports, publicKey, maxRate, { nice: attackerNice });
  const rate = Math.max(1000, Math.round(0.95 * calibratedRate));
  log(`one generator reaches ${calibratedRate} initiations/s here; flooding at ${rate}/s`);
  await Promise.race([sleep(3000), interruptedP]); // out of "under load" (1 s after the last burst)
  if (reference) {
    phases.push(await phase(m, 'reference', [CLOSED_PORT], publicKey, rate));
    lostLease(phases.at(-1)!);
    await Promise.race([sleep(3000), interruptedP]);
  }
  phases.push(await phase(m, 'flood', ports, publicKey, rate));
  lostLease(phases.at(-1)!);
} catch (e) {
  failure = (e as Error).message;
  if (!interrupted()) log(`FAILED: ${failure}\n${mesh?.logs().slice(-6000) ?? ''}`);
} finally {
  await mesh?.close();
}
if (interrupted()) process.exit(130);
if (phases.length) {
  console.log(`\nGateway a (2 tunnels, Kubernetes mode, 2 replicas on a ${leaseMs} ms Lease), ${seconds} s per phase, ${sources} attacker addresses (generator at nice ${attackerNice})\n`);
  console.log(table(rowsFor(phases)));
  if (failure) console.log(`\nFAILED: ${failure}`);
  const file = writeResult(String(opt.out), 'gateway-flood', started, {
    machine: await machineInfo(),
    settings: { seconds, maxRate, sources, leaseMs, attackerNice, reference, calibratedRate },
    ...(failure ? { error: failure } : {}),
    phases,
  });
  console.log(`\nwrote ${file}`);
}
process.exit(failure ? 1 : 0);
