// The fabric on the lab, measured end to end with the real controllers, gateways and agents. Not a
// test: it prints a table and writes bench/results/fabric-<what>-<date>.json.
//
//   node bench/fabric.ts peering [--runs 7] [--out bench/results]
//     2 clusters × 1 node × 1 pod, not peered. Each run: `weft lab peer a b --no-wait`, timed from
//     the start of the command to the first reply of a ping from a's pod to b's pod at its
//     remapped address (ping probing every 20 ms with -W 1, restarted 20 ms after an ICMP error
//     ends it, bounded at 30 s); then
//     `weft lab unpeer a b`, timed until that pod no longer answers AND the tunnel interfaces are
//     gone from both gateways. Beside Liqo's advertised 2–3 s and the < 1 s target.
//
//   node bench/fabric.ts traffic [--seconds 5] [--pings 50] [--ping-interval 0.05] [--parallel 4]
//                                [--out bench/results]
//     2 clusters × 2 nodes × 1 pod, full mesh. iperf3 TCP (1 stream and --parallel streams) and
//     ping RTT pod→pod within a cluster across nodes (each cluster: a is bridge-style, b routed),
//     beside pod→pod across clusters at the remapped address, in the same run.
//
// Every lab lives in a fresh state dir under the temp dir and is removed in a `finally`, also on
// SIGINT/SIGTERM; nothing runs outside the lab's namespaces; every wait is bounded.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Kinds, type PeeringSpec, type PeeringStatus } from '../src/control/resources.ts';
import { translate } from '../src/ipam/index.ts';
import { openClusterStore } from '../src/lab/fabric.ts';
import { down, freshLabId, loadLab, status, type ClusterStatus, type LabStatus, type PodStatus } from '../src/lab/lab.ts';
import { wireguardInterfacePrefix } from '../src/lab/topology.ts';
import type { FileStore } from '../src/store/index.ts';
import type { Resource } from '../src/store/types.ts';
import {
  checkInterrupt,
  endChild,
  errMsg,
  inNs,
  installInterruptHandler,
  machineInfo,
  ms,
  onLines,
  parsePing,
  parseReplyLine,
  percentile,
  repoRoot,
  run,
  secs,
  sleep,
  start,
  summary,
  table,
  firstReply,
  wallMs,
  weftBin,
  writeResult,
  type Summary,
} from './common.ts';
import { procUsage } from '../test/netns/impl.ts';

const USAGE = `usage:
  node bench/fabric.ts peering [--runs 7] [--out DIR]
  node bench/fabric.ts traffic [--seconds 5] [--pings 50] [--ping-interval 0.05] [--parallel 4] [--out DIR]`;

const [sub, ...rest] = process.argv.slice(2);
const { values: opt } = parseArgs({
  args: rest,
  options: {
    runs: { type: 'string', default: '7' },
    seconds: { type: 'string', default: '5' },
    pings: { type: 'string', default: '50' },
    'ping-interval': { type: 'string', default: '0.05' },
    parallel: { type: 'string', default: '4' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help || (sub !== 'peering' && sub !== 'traffic')) {
  console.log(USAGE);
  process.exit(opt.help ? 0 : 2);
}
const positive = (v: string | undefined, what: string, max: number): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > max) {
    console.error(`${what} must be a number in (0, ${max}], got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

const log = (l: string) => process.stderr.write(`${l}\n`);
type Peering = Resource<PeeringSpec, PeeringStatus>;

// ---- the lab ---------------------------------------------------------------------------------

interface Lab {
  stateDir: string;
  id: string;
  st: LabStatus;
  cluster(name: string): ClusterStatus;
  /** Store of each cluster, opened once (reads only). */
  store(name: string): FileStore;
}

/** `weft lab up ARGS` in a fresh state dir; `fn` runs on it; the lab is removed whatever happens. */
async function withLab<T>(upArgs: string[], fn: (lab: Lab) => Promise<T>): Promise<T> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-lab-'));
  const id = freshLabId();
  const stores = new Map<string, FileStore>();
  try {
    log(`weft lab up ${upArgs.join(' ')} --id ${id} --state-dir ${stateDir}`);
    const up = await run(weftBin, ['lab', 'up', ...upArgs, '--id', id, '--state-dir', stateDir], { allowFail: true, timeoutMs: 180_000 });
    checkInterrupt();
    if (up.code !== 0) throw new Error(`weft lab up failed (exit ${up.code}): ${(up.stderr || up.stdout).trim().slice(-800)}`);
    for (const l of up.stdout.trim().split('\n')) log(`  ${l}`);
    const st = await status({ stateDir });
    if (!st) throw new Error(`no lab in ${stateDir} after up`);
    const lab: Lab = {
      stateDir,
      id,
      st,
      cluster: (name) => {
        const c = st.clusters.find((x) => x.name === name);
        if (!c) throw new Error(`no cluster ${name}`);
        return c;
      },
      store: (name) => {
        let s = stores.get(name);
        if (!s) stores.set(name, (s = openClusterStore(stateDir, name)));
        return s;
      },
    };
    return await fn(lab);
  } finally {
    await Promise.all([...stores.values()].map((s) => s.close().catch(() => {})));
    try {
      const r = await down({ stateDir, id, log: (l) => log(`  ${l}`) });
      if (r.leftover.length) log(`WARNING: namespaces left behind: ${r.leftover.join(' ')}`);
    } catch (e) {
      log(`WARNING: lab down failed: ${errMsg(e)}; run \`weft lab down --id ${id} --state-dir ${stateDir}\``);
    }
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

function pod(c: ClusterStatus, node: string): PodStatus {
  const p = c.pods.find((x) => x.node === node);
  if (!p) throw new Error(`no pod on ${c.name}/${node}`);
  return p;
}

async function peeringOf(lab: Lab, local: string, remote: string): Promise<Peering | undefined> {
  return lab.store(local).get<Peering>(Kinds.Peering, remote);
}

/** Poll `check` every `everyMs` until truthy; throws after `timeoutMs` (or on interrupt). */
async function until<T>(what: string, timeoutMs: number, everyMs: number, check: () => Promise<T | undefined | false | null>): Promise<T> {
  const deadline = wallMs() + timeoutMs;
  for (;;) {
    checkInterrupt();
    const v = await check();
    if (v) return v;
    if (wallMs() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function linkExists(ns: string, ifname: string): Promise<boolean> {
  return (await run('ip', ['-n', ns, 'link', 'show', 'dev', ifname], { allowFail: true, timeoutMs: 10_000 })).code === 0;
}

// ---- peering ---------------------------------------------------------------------------------

const PROBE_INTERVAL_S = 0.02;
const BOUND_MS = 30_000;

interface PeerRun {
  /** Start of `weft lab peer` → first ping reply across (the figure). */
  firstPingMs: number;
  /** The command's own exit. */
  commandMs: number;
  /** The remap was in a's Peering status (the ping could start). */
  remapKnownMs: number;
  /** Both Peering statuses said Connected. */
  connectedMs: number;
  target: string;
  /** Times ping ended on an ICMP error (e.g. net unreachable before the routes exist) and was restarted. */
  pingRestarts: number;
  commandOutput: string;
}

interface UnpeerRun {
  /** Start of `weft lab unpeer` → b's pod unreachable and both tunnel interfaces gone (the figure). */
  totalMs: number;
  commandMs: number;
  /** First probe after the last reply (probes every 20 ms). */
  unreachableMs: number;
  tunnelGoneMs: { a: number; b: number };
  repliesDuringCommand: number;
}

async function measurePeer(lab: Lab, from: PodStatus, remotePod: PodStatus): Promise<PeerRun> {
  const b = lab.cluster('b');
  let pingRestarts = 0;
  const t0 = wallMs();
  const cmd = run(weftBin, ['lab', 'peer', 'a', 'b', '--no-wait', '--state-dir', lab.stateDir], { allowFail: true, timeoutMs: BOUND_MS }).then((r) => ({ r, at: wallMs() }));
  let connectedAt = NaN;
  const connected = until('both sides Connected', BOUND_MS, 20, async () => {
    const [pa, pb] = await Promise.all([peeringOf(lab, 'a', 'b'), peeringOf(lab, 'b', 'a')]);
    return pa?.status?.phase === 'Connected' && pb?.status?.phase === 'Connected';
  }).then(() => (connectedAt = wallMs()));
  try {
    const remap = await until('a’s remap of b’s pod CIDR', BOUND_MS, 20, async () => (await peeringOf(lab, 'a', 'b'))?.status?.podCIDRRemap);
    const remapAt = wallMs();
    const target = translate(remotePod.ip, b.podCIDR, remap);
    const reply = await firstReply(from.namespace, target, t0 + BOUND_MS, PROBE_INTERVAL_S);
    const replyAt = reply.atMs;
    pingRestarts = reply.restarts;
    const { r, at } = await cmd;
    if (r.code !== 0) throw new Error(`weft lab peer exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-400)}`);
    await connected;
    return { firstPingMs: replyAt - t0, commandMs: at - t0, remapKnownMs: remapAt - t0, connectedMs: connectedAt - t0, target, pingRestarts, commandOutput: r.stdout.trim() };
  } finally {
    await cmd.catch(() => {});
    await connected.catch(() => {});
  }
}

async function measureUnpeer(lab: Lab, from: PodStatus, target: string): Promise<UnpeerRun> {
  const gw = { a: lab.cluster('a').gateway.namespace, b: lab.cluster('b').gateway.namespace };
  // The only peering of each side: slot 0.
  const ifname = { a: `${wireguardInterfacePrefix(lab.id, 'a')}0`, b: `${wireguardInterfacePrefix(lab.id, 'b')}0` };
  const kids: ChildProcess[] = [];
  try {
    // A steady ping first: the unpeer starts from a working data path.
    const ping = start('ip', ['netns', 'exec', from.namespace, 'ping', '-n', '-D', '-i', String(PROBE_INTERVAL_S), '-W', '1', '-w', String(BOUND_MS / 1000 + 20), target]);
    kids.push(ping);
    let replies = 0;
    let last: { atMs: number; rttMs: number } | undefined;
    onLines(ping, (l) => {
      const r = parseReplyLine(l);
      if (r) (replies++, (last = r));
    });
    await until('a steady ping before unpeer', 10_000, 20, async () => replies >= 5);
    // Link deletions as the kernel announces them, plus a slower poll in case a line is missed.
    const goneAt = { a: NaN, b: NaN };
    for (const side of ['a', 'b'] as const) {
      const mon = start('ip', ['-n', gw[side], 'monitor', 'link']);
      kids.push(mon);
      const re = new RegExp(`^Deleted \\d+: ${ifname[side]}[:@]`);
      onLines(mon, (l) => {
        if (re.test(l) && Number.isNaN(goneAt[side])) goneAt[side] = wallMs();
      });
    }
    await sleep(150);
    for (const side of ['a', 'b'] as const) if (!(await linkExists(gw[side], ifname[side]))) throw new Error(`tunnel ${ifname[side]} missing in ${gw[side]} before unpeer`);

    const t0 = wallMs();
    const repliesBefore = replies;
    const cmd = run(weftBin, ['lab', 'unpeer', 'a', 'b', '--state-dir', lab.stateDir], { allowFail: true, timeoutMs: BOUND_MS }).then((r) => ({ r, at: wallMs() }));
    let cmdDone: { r: { code: number; stdout: string; stderr: string }; at: number } | undefined;
    let repliesDuringCommand = 0;
    void cmd.then((x) => {
      cmdDone = x;
      repliesDuringCommand = replies - repliesBefore;
    });
    let lastPoll = 0;
    await until('the remote pod unreachable and both tunnels gone', BOUND_MS, 20, async () => {
      if (cmdDone && cmdDone.r.code !== 0) throw new Error(`weft lab unpeer exited ${cmdDone.r.code}: ${(cmdDone.r.stderr || cmdDone.r.stdout).trim().slice(-400)}`);
      if (wallMs() - lastPoll >= 200) {
        lastPoll = wallMs();
        for (const side of ['a', 'b'] as const) {
          if (Number.isNaN(goneAt[side]) && !(await linkExists(gw[side], ifname[side]))) goneAt[side] = wallMs();
        }
      }
      const silentFor = wallMs() - (last?.atMs ?? 0);
      // -W 1: a probe unanswered for a second is lost; 50 in a row mean unreachable.
      return cmdDone !== undefined && !Number.isNaN(goneAt.a) && !Number.isNaN(goneAt.b) && silentFor >= 1000;
    });
    const { r, at } = await cmd;
    if (r.code !== 0) throw new Error(`weft lab unpeer exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-400)}`);
    // The path was alive when the last answered probe left; the next probe, 20 ms later, was lost.
    const unreachableAt = last ? Math.max(t0, last.atMs - last.rttMs + PROBE_INTERVAL_S * 1000) : t0;
    const unreachableMs = unreachableAt - t0;
    const tunnelGoneMs = { a: goneAt.a - t0, b: goneAt.b - t0 };
    return { totalMs: Math.max(unreachableMs, tunnelGoneMs.a, tunnelGoneMs.b), commandMs: at - t0, unreachableMs, tunnelGoneMs, repliesDuringCommand };
  } finally {
    await Promise.all(kids.map(endChild));
  }
}

/** After an unpeer: the peering objects gone on both sides and the gateways' per-peer nft tables removed. */
async function settleAfterUnpeer(lab: Lab): Promise<void> {
  await until('peerings removed from both stores', 20_000, 50, async () => !(await peeringOf(lab, 'a', 'b')) && !(await peeringOf(lab, 'b', 'a')));
  for (const [local, remote] of [['a', 'b'], ['b', 'a']] as const) {
    const gw = lab.cluster(local).gateway.namespace;
    await until(`${local}: nft table of ${remote} removed`, 10_000, 200, async () => !(await inNs(gw, ['nft', 'list', 'tables'], { allowFail: true })).stdout.includes(`weft_${remote}`)).catch((e) =>
      log(`  note: ${errMsg(e)}`),
    );
  }
  await sleep(500);
}

async function benchPeering(): Promise<void> {
  const runs = Math.round(positive(opt.runs, '--runs', 100));
  const started = new Date();
  const peers: PeerRun[] = [];
  const unpeers: UnpeerRun[] = [];
  const errors: string[] = [];
  await withLab(['--clusters', '2', '--nodes', '1', '--pods', '1'], async (lab) => {
    const from = pod(lab.cluster('a'), 'n1');
    const to = pod(lab.cluster('b'), 'n1');
    // Each side's controller and gateway announce the cluster first (external CIDR, gateway key):
    // `peer` would wait for that, and the first run would pay for the lab's start-up.
    for (const c of ['a', 'b']) {
      await until(`cluster ${c} announced`, 60_000, 100, async () => {
        const cn = await lab.store(c).get<Resource<unknown, { externalCIDR?: string; gatewayPublicKey?: string }>>(Kinds.ClusterNetwork, 'local');
        return cn?.status?.externalCIDR && cn.status.gatewayPublicKey;
      });
    }
    for (let i = 1; i <= runs; i++) {
      checkInterrupt();
      try {
        const p = await measurePeer(lab, from, to);
        peers.push(p);
        log(`run ${i}/${runs}: peer → first ping ${ms(p.firstPingMs)} (command ${ms(p.commandMs)}, remap known ${ms(p.remapKnownMs)}, Connected ${ms(p.connectedMs)}) to ${p.target}`);
        const u = await measureUnpeer(lab, from, p.target);
        unpeers.push(u);
        log(`run ${i}/${runs}: unpeer → unreachable + tunnels gone ${ms(u.totalMs)} (command ${ms(u.commandMs)}, unreachable ${ms(u.unreachableMs)}, tunnel a ${ms(u.tunnelGoneMs.a)}, b ${ms(u.tunnelGoneMs.b)})`);
        await settleAfterUnpeer(lab);
      } catch (e) {
        checkInterrupt();
        errors.push(`run ${i}: ${errMsg(e)}`);
        log(`run ${i}/${runs} FAILED: ${errMsg(e)}; unpeering and going on`);
        await run(weftBin, ['lab', 'unpeer', 'a', 'b', '--state-dir', lab.stateDir], { allowFail: true, timeoutMs: BOUND_MS });
        await settleAfterUnpeer(lab).catch(() => {});
      }
    }
  });

  const s = {
    peerFirstPing: summary(peers.map((p) => p.firstPingMs)),
    peerCommand: summary(peers.map((p) => p.commandMs)),
    peerRemapKnown: summary(peers.map((p) => p.remapKnownMs)),
    peerConnected: summary(peers.map((p) => p.connectedMs)),
    unpeerTotal: summary(unpeers.map((u) => u.totalMs)),
    unpeerCommand: summary(unpeers.map((u) => u.commandMs)),
    unpeerUnreachable: summary(unpeers.map((u) => u.unreachableMs)),
    unpeerTunnelGone: summary(unpeers.map((u) => Math.max(u.tunnelGoneMs.a, u.tunnelGoneMs.b))),
  };
  const machine = await machineInfo();
  const row = (label: string, x: Summary, liqo: string, target: string) => [label, secs(x.median / 1000), secs(x.min / 1000), secs(x.max / 1000), liqo, target];
  const verdict = (x: Summary) => (Number.isFinite(x.median) ? (x.median < 1000 ? 'median < 1 s: met' : 'median ≥ 1 s: NOT met') : '—');
  console.log(`\nPeering time — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
  console.log(`lab: 2 clusters × 1 node × 1 pod, same pod CIDR; ${peers.length}/${runs} peer and ${unpeers.length}/${runs} unpeer runs measured; probes every ${PROBE_INTERVAL_S * 1000} ms.\n`);
  console.log(
    table([
      ['', `median (n=${s.peerFirstPing.n})`, 'min', 'max', 'Liqo (advertised)', 'target'],
      row('weft lab peer --no-wait → first ping across', s.peerFirstPing, '2–3 s', '< 1 s'),
      row('  the command itself exits', s.peerCommand, '', ''),
      row('  remap in a’s Peering status', s.peerRemapKnown, '', ''),
      row('  both Peerings Connected', s.peerConnected, '', ''),
      row('weft lab unpeer → unreachable + tunnels gone', s.unpeerTotal, '—', '< 1 s'),
      row('  the command itself exits', s.unpeerCommand, '', ''),
      row('  remote pod unreachable', s.unpeerUnreachable, '', ''),
      row('  tunnel interfaces gone (later gateway)', s.unpeerTunnelGone, '', ''),
    ]),
  );
  console.log(`\npeering: ${verdict(s.peerFirstPing)}; unpeering: ${verdict(s.unpeerTotal)}. Liqo's 2–3 s is its advertised peering-establishment time, not measured here.`);
  for (const e of errors) console.log(`FAILED ${e}`);
  const file = writeResult(String(opt.out), 'fabric-peering', started, {
    machine,
    settings: { runs, clusters: 2, nodesPerCluster: 1, podsPerNode: 1, probeIntervalS: PROBE_INTERVAL_S, pingWaitS: 1, boundS: BOUND_MS / 1000 },
    reference: { liqoAdvertisedPeeringS: [2, 3], targetS: 1 },
    summaryMs: s,
    runs: peers.map((p, i) => ({ peer: p, unpeer: unpeers[i] })),
    errors,
  });
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  if (errors.length || peers.length === 0) process.exitCode = 1;
}

// ---- traffic ---------------------------------------------------------------------------------

interface Throughput {
  gbps: number;
  retransmits: number;
  /** CPU seconds both gateways (with their WireGuard devices) used during the transfer. */
  gatewayCpuSeconds?: number;
}
type Cell<T> = T | { error: string };

interface TrafficResult {
  subject: string;
  from: string;
  to: string;
  address: string;
  tcp1?: Cell<Throughput>;
  tcpParallel?: Cell<Throughput>;
  ping?: Cell<{ sent: number; received: number; medianMs: number; p90Ms: number; minMs: number; maxMs: number }>;
  error?: string;
}

async function attempt<T>(f: () => Promise<T>): Promise<Cell<T>> {
  try {
    return await f();
  } catch (e) {
    checkInterrupt();
    return { error: errMsg(e) };
  }
}

const IPERF_PORT = 5201;

async function iperfServer(ns: string): Promise<ChildProcess> {
  const srv = start('ip', ['netns', 'exec', ns, 'iperf3', '-s', '-p', String(IPERF_PORT)]);
  await until(`iperf3 server in ${ns}`, 5000, 50, async () => {
    if (srv.exitCode !== null) throw new Error(`iperf3 server in ${ns} exited ${srv.exitCode}`);
    return (await inNs(ns, ['ss', '-Htln', `sport = :${IPERF_PORT}`], { allowFail: true })).stdout.trim() !== '';
  });
  return srv;
}

async function iperf(fromNs: string, to: string, seconds: number, parallel: number): Promise<{ gbps: number; retransmits: number }> {
  const args = ['iperf3', '-c', to, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '5000'];
  if (parallel > 1) args.push('-P', String(parallel));
  const r = await inNs(fromNs, args, { allowFail: true, timeoutMs: (seconds + 30) * 1000 });
  let j: { error?: string; end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } } };
  try {
    j = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 output is not JSON (exit ${r.code}): ${(r.stdout + r.stderr).slice(0, 300)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return { gbps: Number(j.end?.sum_received?.bits_per_second ?? 0) / 1e9, retransmits: Number(j.end?.sum_sent?.retransmits ?? 0) };
}

async function benchTraffic(): Promise<void> {
  const seconds = Math.round(positive(opt.seconds, '--seconds', 600));
  const pings = Math.round(positive(opt.pings, '--pings', 10_000));
  const pingInterval = positive(opt['ping-interval'], '--ping-interval', 10);
  const parallel = Math.round(positive(opt.parallel, '--parallel', 64));
  const started = new Date();
  const results: TrafficResult[] = [];
  await withLab(['--clusters', '2', '--nodes', '2', '--pods', '1', '--full-mesh'], async (lab) => {
    const a = lab.cluster('a');
    const b = lab.cluster('b');
    const remap = (await peeringOf(lab, 'a', 'b'))?.status?.podCIDRRemap;
    if (!remap) throw new Error('no remap of b in a’s Peering status after --full-mesh');
    const ctx = loadLab(lab.stateDir)!;
    const gatewayPids = ['a', 'b'].map((c) => (ctx.state.extra[`pids-${c}`] as Record<string, number> | undefined)?.gateway).filter((p): p is number => typeof p === 'number');
    const gatewayCpu = () => gatewayPids.reduce((s, p) => s + procUsage(p).cpuSeconds, 0);
    const subjects = [
      { subject: `within a (${a.style}), n1→n2`, from: pod(a, 'n1'), to: pod(a, 'n2'), address: pod(a, 'n2').ip, gateways: false },
      { subject: `within b (${b.style}), n1→n2`, from: pod(b, 'n1'), to: pod(b, 'n2'), address: pod(b, 'n2').ip, gateways: false },
      { subject: 'across a→b (remapped)', from: pod(a, 'n1'), to: pod(b, 'n1'), address: translate(pod(b, 'n1').ip, b.podCIDR, remap), gateways: true },
    ];
    for (const s of subjects) {
      checkInterrupt();
      const res: TrafficResult = { subject: s.subject, from: `${s.from.namespace}`, to: `${s.to.namespace}`, address: s.address };
      results.push(res);
      let srv: ChildProcess | undefined;
      try {
        await until(`${s.subject}: ping ${s.address}`, 15_000, 100, async () => (await inNs(s.from.namespace, ['ping', '-n', '-c', '1', '-W', '1', s.address], { allowFail: true })).code === 0);
        srv = await iperfServer(s.to.namespace);
        const transfer = (p: number) =>
          attempt(async () => {
            const c0 = s.gateways ? gatewayCpu() : 0;
            const r = await iperf(s.from.namespace, s.address, seconds, p);
            return s.gateways ? { ...r, gatewayCpuSeconds: gatewayCpu() - c0 } : r;
          });
        log(`[${s.subject}] TCP 1 stream ${seconds} s to ${s.address}`);
        res.tcp1 = await transfer(1);
        log(`[${s.subject}] TCP ${parallel} streams ${seconds} s`);
        res.tcpParallel = await transfer(parallel);
        log(`[${s.subject}] ${pings} pings every ${pingInterval} s`);
        res.ping = await attempt(async () => {
          const deadline = Math.ceil(pings * pingInterval + 10);
          const r = await inNs(s.from.namespace, ['ping', '-n', '-c', String(pings), '-i', String(pingInterval), '-W', '1', '-w', String(deadline), s.address], { allowFail: true, timeoutMs: (deadline + 5) * 1000 });
          const p = parsePing(r.stdout);
          if (!p.rttsMs.length) throw new Error(`no ping replies (${p.received}/${p.sent})`);
          return { sent: p.sent, received: p.received, medianMs: percentile(p.rttsMs, 50), p90Ms: percentile(p.rttsMs, 90), minMs: Math.min(...p.rttsMs), maxMs: Math.max(...p.rttsMs) };
        });
      } catch (e) {
        checkInterrupt();
        res.error = errMsg(e);
      } finally {
        if (srv) await endChild(srv);
      }
    }
  });

  const machine = await machineInfo();
  const cell = <T,>(c: Cell<T> | undefined, f: (v: T) => string) => (c === undefined ? '—' : 'error' in (c as object) ? `error: ${(c as { error: string }).error.slice(0, 40)}` : f(c as T));
  const tp = (t: Throughput) => `${t.gbps.toFixed(2)} Gbit/s (${t.retransmits} retr)`;
  const gwCpu = (t: Throughput) => (t.gatewayCpuSeconds === undefined ? '—' : `${t.gatewayCpuSeconds.toFixed(2)} s`);
  console.log(`\nPod-to-pod traffic — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
  console.log(`lab: 2 clusters × 2 nodes × 1 pod, same pod CIDR, full mesh; iperf3 TCP ${seconds} s; ${pings} pings every ${pingInterval} s.\n`);
  console.log(
    table([
      ['', ...results.map((r) => r.subject)],
      ['status', ...results.map((r) => (r.error ? `FAILED: ${r.error.slice(0, 40)}` : 'ok'))],
      ['address', ...results.map((r) => r.address)],
      [`TCP 1 stream, ${seconds} s`, ...results.map((r) => cell(r.tcp1, tp))],
      [`TCP ${parallel} streams, ${seconds} s`, ...results.map((r) => cell(r.tcpParallel, tp))],
      [`ping RTT median (${pings} × ${pingInterval} s)`, ...results.map((r) => cell(r.ping, (p) => `${p.medianMs.toFixed(3)} ms`))],
      ['ping RTT p90', ...results.map((r) => cell(r.ping, (p) => `${p.p90Ms.toFixed(3)} ms (${p.received}/${p.sent})`))],
      ['gateways CPU s, 1 stream (a+b)', ...results.map((r) => cell(r.tcp1, gwCpu))],
      [`gateways CPU s, ${parallel} streams (a+b)`, ...results.map((r) => cell(r.tcpParallel, gwCpu))],
    ]),
  );
  const num = <T,>(c: Cell<T> | undefined, f: (v: T) => number) => (c === undefined || 'error' in (c as object) ? NaN : f(c as T));
  const across = results.find((r) => r.subject.startsWith('across'));
  const within = results.find((r) => r.subject.startsWith('within a'));
  const ratios = across && within
    ? {
        tcp1: num(across.tcp1, (t) => t.gbps) / num(within.tcp1, (t) => t.gbps),
        tcpParallel: num(across.tcpParallel, (t) => t.gbps) / num(within.tcpParallel, (t) => t.gbps),
        rttMedian: num(across.ping, (p) => p.medianMs) / num(within.ping, (p) => p.medianMs),
      }
    : undefined;
  if (ratios) {
    console.log(`\nacross clusters ÷ within cluster a: throughput ${(ratios.tcp1 * 100).toFixed(0)}% (1 stream), ${(ratios.tcpParallel * 100).toFixed(0)}% (${parallel} streams); RTT median ×${ratios.rttMedian.toFixed(1)}`);
  }
  for (const r of results) if (r.error) console.log(`${r.subject} FAILED: ${r.error}`);
  const file = writeResult(String(opt.out), 'fabric-traffic', started, {
    machine,
    settings: { seconds, pings, pingInterval, parallel, clusters: 2, nodesPerCluster: 2, podsPerNode: 1, fullMesh: true },
    results,
    ratiosAcrossOverWithinA: ratios,
  });
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  if (results.some((r) => r.error) || results.length < 3) process.exitCode = 1;
}

// ---- main ------------------------------------------------------------------------------------

installInterruptHandler();
try {
  if (sub === 'peering') await benchPeering();
  else await benchTraffic();
} catch (e) {
  console.error(`bench/fabric.ts ${sub}: ${errMsg(e)}`);
  process.exitCode = e instanceof Error && e.name === 'Interrupted' ? 130 : 1;
}
