// What weft writes to the Kubernetes API: while nothing changes, and per peering change. Not a
// test: it prints a table and writes bench/results/api-writes-<date>.json.
//
//   node bench/api-writes.ts [--idle 60] [--settle 10] [--out bench/results]
//
// The setup is test/netns/flood-mesh.ts (no flood): the lab's three clusters a, b, c, full mesh
// (3 peerings, a Peering on each side), the real controllers, gateways and node agents in
// Kubernetes mode, each cluster on its own API server (the in-process fake, or a real kube-apiserver
// with WEFT_TEST_KUBE_APISERVER and WEFT_TEST_ETCD set, as in the tests), cluster a with two gateway
// replicas on the Lease `weft-gateway`. Writes are the API servers' own request counts (create,
// update, patch/apply, delete), by resource; Lease renewals (the gateways' heartbeat, by design
// one every few seconds) and Events are counted apart from weft's resources. Phases:
//
//   idle     --idle seconds with nothing changing, after --settle seconds of quiet (the probes'
//            latency median settles after a peering connects). The goal is no write at all.
//   unpeer   `weft unpeer b c`, from the command's start until it returns (the Peerings gone).
//   peer     `weft peer b c`, from the command's start until it returns connected; and the
//            --settle seconds after it (latency settling, shown apart).
//
// Everything is removed in a `finally`, also on SIGINT/SIGTERM/SIGHUP (then no result file).
import path from 'node:path';
import { FloodMesh, CLUSTERS, type ClusterName } from '../test/netns/flood-mesh.ts';
import { Kinds, type PeeringStatus } from '../src/control/resources.ts';
import { conditionOf } from '../src/control/status.ts';
import type { Resource } from '../src/store/types.ts';
import { benchArgs, checkInterrupt, installInterruptHandler, interrupted, machineInfo, onInterrupt, repoRoot, sleep, table, usageExit, writeResult } from './common.ts';

const USAGE = 'usage: node bench/api-writes.ts [--idle 60] [--settle 10] [--out DIR]';
const opt = benchArgs(USAGE, {
  options: {
    idle: { type: 'string', default: '60' },
    settle: { type: 'string', default: '10' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
  allowPositionals: false,
}).values;
function seconds(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) usageExit(USAGE, `--${name} must be a whole number of seconds from ${min} to ${max}, not ${JSON.stringify(v)}`);
  return n;
}
const idleSeconds = seconds('idle', opt.idle, 5, 3600);
const settleSeconds = seconds('settle', opt.settle, 0, 600);
const log = (l: string) => process.stderr.write(`${l}\n`);

let mesh: FloodMesh | undefined;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
installInterruptHandler();
onInterrupt(() => {
  mesh?.closeSync();
  setTimeout(() => process.exit(130), 30_000).unref();
});

/** "PUT /apis/weft.io/v1alpha1/namespaces/{ns}/peerings/{name}/status" → "PUT peerings/status". */
function shortKey(k: string): string {
  const [verb, p = ''] = k.split(' ');
  const rest = p.replace(/^\/apis?\/(?:[^/]+\/)?v[^/]+\//, '').replace(/namespaces\/\{ns\}\//, '').replace(/\/\{name\}/, '');
  return `${verb} ${rest}`;
}

type Counts = Record<ClusterName, Map<string, number>>;
async function counts(m: FloodMesh): Promise<Counts> {
  const out = {} as Counts;
  for (const c of CLUSTERS) out[c] = await m.clusters[c].server.writeCounts();
  return out;
}

interface Window {
  name: string;
  seconds: number;
  /** Per cluster: weft's resources by "VERB resource", Lease writes and Event writes. */
  clusters: Record<ClusterName, { weft: Record<string, number>; weftTotal: number; leases: number; events: number; statusChanges?: string[] }>;
}

function windowOf(name: string, a: Counts, b: Counts, ms: number): Window {
  const clusters = {} as Window['clusters'];
  for (const c of CLUSTERS) {
    const w = { weft: {} as Record<string, number>, weftTotal: 0, leases: 0, events: 0 };
    for (const [k, v] of b[c]) {
      const d = v - (a[c].get(k) ?? 0);
      if (d === 0) continue;
      if (/leases/.test(k)) w.leases += d;
      else if (/events/.test(k)) w.events += d;
      else {
        w.weft[shortKey(k)] = (w.weft[shortKey(k)] ?? 0) + d;
        w.weftTotal += d;
      }
    }
    clusters[c] = w;
  }
  return { name, seconds: ms / 1000, clusters };
}

/** Every Peering status change in `c` from now until stop(): what changed (verdict, latency, heartbeat). */
async function statusChanges(m: FloodMesh, c: ClusterName) {
  const store = m.clusters[c].store;
  const { items, resourceVersion } = await store.list<Resource<unknown, PeeringStatus>>(Kinds.Peering);
  const last = new Map(items.map((p) => [p.metadata.name, p.status]));
  const seen: string[] = [];
  const w = store.watch<Resource<unknown, PeeringStatus>>(Kinds.Peering, { resourceVersion });
  const reading = (async () => {
    for await (const ev of w.events) {
      if (ev.type === 'BOOKMARK') continue;
      const name = ev.object.metadata.name;
      const [before, after] = [last.get(name), ev.object.status];
      last.set(name, after);
      if (ev.type !== 'MODIFIED' || JSON.stringify(before) === JSON.stringify(after)) continue;
      const verdict = (s: PeeringStatus | undefined) => `${s?.phase}/${conditionOf(s, 'Connected')?.reason}`;
      seen.push(verdict(before) !== verdict(after) ? `${name}: ${verdict(before)} → ${verdict(after)}` : before?.latencyMs !== after?.latencyMs ? `${name}: latency ${before?.latencyMs} → ${after?.latencyMs} ms` : `${name}: other fields (remaps, endpoint, heartbeat)`);
    }
  })().catch(() => {});
  return async () => {
    w.stop();
    await reading;
    return seen;
  };
}

async function measured(name: string, m: FloodMesh, f: () => Promise<unknown>): Promise<Window> {
  checkInterrupt();
  const c0 = await counts(m);
  const watching = await Promise.all(CLUSTERS.map((c) => statusChanges(m, c)));
  const t0 = Date.now();
  await f();
  const w = windowOf(name, c0, await counts(m), Date.now() - t0);
  for (const [i, c] of CLUSTERS.entries()) w.clusters[c].statusChanges = await watching[i]!();
  log(`[${name}] ${w.seconds.toFixed(1)} s: ${CLUSTERS.map((c) => `${c} ${w.clusters[c].weftTotal}`).join(', ')} writes to weft's resources`);
  for (const c of CLUSTERS) for (const x of w.clusters[c].statusChanges ?? []) log(`  ${c}: ${x}`);
  return w;
}

const started = new Date();
const windows: Window[] = [];
let failure: string | undefined;
try {
  const t0 = Date.now();
  await FloodMesh.create({ log }, (x) => (mesh = x));
  const m = mesh!;
  log(`setup: ${((Date.now() - t0) / 1000).toFixed(1)} s; settling ${settleSeconds} s`);
  await sleep(settleSeconds * 1000);
  windows.push(await measured('idle', m, () => sleep(idleSeconds * 1000)));
  windows.push(await measured('unpeer b c', m, () => m.peeringCommand('unpeer', 'b', 'c')));
  windows.push(await measured('peer b c', m, () => m.peeringCommand('peer', 'b', 'c')));
  windows.push(await measured(`${settleSeconds} s after peer`, m, () => sleep(settleSeconds * 1000)));
} catch (e) {
  failure = (e as Error).message;
  if (!interrupted()) log(`FAILED: ${failure}\n${mesh?.logs().slice(-6000) ?? ''}`);
} finally {
  await mesh?.close();
}
if (interrupted()) process.exit(130);
if (windows.length) {
  const detail = (w: Window, c: ClusterName) => {
    const x = w.clusters[c];
    const parts = Object.entries(x.weft).sort().map(([k, v]) => `${k} ${v}`);
    return `${x.weftTotal}${parts.length ? ` (${parts.join(', ')})` : ''}; Lease ${x.leases}, Events ${x.events}`;
  };
  const rows = [['', ...windows.map((w) => `${w.name} (${w.seconds.toFixed(1)} s)`)], ...CLUSTERS.map((c) => [`cluster ${c}`, ...windows.map((w) => detail(w, c))])];
  console.log(`\nAPI writes to weft's resources (Lease renewals and Events apart), 3 clusters in a full mesh, Kubernetes mode (${mesh?.clusters.a?.server.kind ?? 'fake'} API servers)\n`);
  console.log(table(rows));
  if (failure) console.log(`\nFAILED: ${failure}`);
  const file = writeResult(String(opt.out), 'api-writes', started, { machine: await machineInfo(), settings: { idleSeconds, settleSeconds }, ...(failure ? { error: failure } : {}), windows });
  console.log(`\nwrote ${file}`);
}
process.exit(failure ? 1 : 0);
