// Route programming at scale: 5,000 "node" routes (/24 via a gateway) + 50,000 "pod" routes (/32)
// through reconcile() (src/kernel: read, diff, one `ip -batch` per kind), beside one `ip route`
// process per route, the way a controller without batching would do it — in the same run, in a
// network namespace of its own. Not a test: it prints a table and writes
// bench/results/routes-<date>.json.
//
//   node bench/routes.ts [--node-routes 5000] [--pod-routes 50000] [--repeat 3] [--sample 2000]
//                        [--out bench/results]
//
// reconcile(): first apply, unchanged re-apply and teardown, --repeat times (median/min/max).
// One process per route: `ip -n NS route add|replace|del …` spawned sequentially from Node for the
// first --sample routes of the same set (same /24-to-/32 mix), timed; the per-route cost is then
// EXTRAPOLATED to the full set (it is not run at full size: 55,000 spawns take minutes).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { reconcile, teardown, type KernelState, type Ownership, type RouteSpec } from '../src/kernel/index.ts';
import { checkInterrupt, errMsg, installInterruptHandler, machineInfo, repoRoot, run, secs, summary, table, wallMs, writeResult, type Summary } from './common.ts';

const { values: opt } = parseArgs({
  options: {
    'node-routes': { type: 'string', default: '5000' },
    'pod-routes': { type: 'string', default: '50000' },
    repeat: { type: 'string', default: '3' },
    sample: { type: 'string', default: '2000' },
    out: { type: 'string', default: path.join(repoRoot, 'bench/results') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log('usage: node bench/routes.ts [--node-routes 5000] [--pod-routes 50000] [--repeat 3] [--sample 2000] [--out DIR]');
  process.exit(0);
}
const int = (v: string | undefined, what: string, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const nodeRoutes = int(opt['node-routes'], '--node-routes', 0, 65_536);
const podRoutes = int(opt['pod-routes'], '--pod-routes', 0, 1 << 20);
const repeat = int(opt.repeat, '--repeat', 1, 20);
const total = nodeRoutes + podRoutes;
const sample = Math.min(int(opt.sample, '--sample', 1, 20_000), total);
if (total === 0) {
  console.error('no routes to program');
  process.exit(2);
}

const log = (l: string) => process.stderr.write(`${l}\n`);
const owned: Ownership = { linkPrefix: 'weft-', routeProtocol: 250, ruleProtocol: 250, nftPrefix: 'weft' };
const DEV = 'weft-bench';
const PEER = 'weft-benchp';
const LOCAL = '192.168.78.1/24';
const GATEWAY = '192.168.78.2';
const NODE_TABLE = 1800;
const POD_TABLE = 1801;

// Node i: 10.(100 + i/256).(i%256).0/24; pod i: 172.(16 + i/65536).((i/256)%256).(i%256)/32.
function nodeRoute(i: number): RouteSpec {
  return { table: NODE_TABLE, dst: `10.${100 + (i >> 8)}.${i & 255}.0/24`, via: GATEWAY, dev: DEV };
}
function podRoute(i: number): RouteSpec {
  return { table: POD_TABLE, dst: `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, dev: DEV };
}
const routes: RouteSpec[] = [...Array.from({ length: nodeRoutes }, (_, i) => nodeRoute(i)), ...Array.from({ length: podRoutes }, (_, i) => podRoute(i))];
const state: KernelState = { links: [], routes, rules: [], nftTables: [], sysctls: {} };

// The sample keeps the set's mix: the first k node routes and the first (sample − k) pod routes.
const sampleNodes = Math.min(nodeRoutes, Math.round((sample * nodeRoutes) / total));
const sampleRoutes = [...routes.slice(0, sampleNodes), ...routes.slice(nodeRoutes, nodeRoutes + (sample - sampleNodes))];

function routeArgs(r: RouteSpec): string[] {
  return [r.dst, 'table', String(r.table), 'proto', String(owned.routeProtocol), ...(r.via ? ['via', r.via] : []), 'dev', r.dev];
}

async function countRoutes(ns: string): Promise<number> {
  const r = await run('ip', ['-n', ns, '-4', 'route', 'show', 'table', 'all', 'proto', String(owned.routeProtocol)], { timeoutMs: 120_000 });
  return r.stdout.split('\n').filter((l) => l.trim()).length;
}

interface ReconcileRound {
  firstApplyS: number;
  unchangedReapplyS: number;
  teardownS: number;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = wallMs();
  const v = await fn();
  return [v, (wallMs() - t0) / 1000];
}

async function reconcileRound(ns: string): Promise<ReconcileRound> {
  const [first, s1] = await timed(() => reconcile(state, { netns: ns, owned }));
  if (first.errors.length) throw new Error(`first apply: ${first.errors.length} errors, e.g. ${first.errors[0]}`);
  if (first.changed.length !== total) throw new Error(`first apply changed ${first.changed.length}, expected ${total}`);
  const n = await countRoutes(ns);
  if (n !== total) throw new Error(`${n} routes in the kernel after the first apply, expected ${total}`);
  checkInterrupt();
  const [second, s2] = await timed(() => reconcile(state, { netns: ns, owned }));
  if (second.errors.length || second.changed.length) throw new Error(`unchanged re-apply: ${second.changed.length} changes, ${second.errors.length} errors`);
  checkInterrupt();
  const [down, s3] = await timed(() => teardown({ netns: ns, owned }));
  if (down.errors.length) throw new Error(`teardown: ${down.errors.length} errors, e.g. ${down.errors[0]}`);
  if (down.changed.length !== total) throw new Error(`teardown changed ${down.changed.length}, expected ${total}`);
  const left = await countRoutes(ns);
  if (left !== 0) throw new Error(`${left} routes left after teardown`);
  return { firstApplyS: s1, unchangedReapplyS: s2, teardownS: s3 };
}

interface PerRoute {
  op: 'add' | 'replace' | 'del';
  routes: number;
  seconds: number;
  perRouteMs: number;
  extrapolatedS: number;
}

/** One `ip -n NS route OP …` process per route, sequentially. */
async function perRoute(ns: string, op: PerRoute['op']): Promise<PerRoute> {
  const t0 = wallMs();
  for (const r of sampleRoutes) {
    checkInterrupt();
    await run('ip', ['-n', ns, 'route', op, ...routeArgs(r)], { timeoutMs: 10_000 });
  }
  const seconds = (wallMs() - t0) / 1000;
  const perRouteMs = (seconds * 1000) / sampleRoutes.length;
  return { op, routes: sampleRoutes.length, seconds, perRouteMs, extrapolatedS: (perRouteMs * total) / 1000 };
}

async function main(): Promise<void> {
  const started = new Date();
  const ns = `wb-${randomBytes(3).toString('hex')}`;
  let created = false;
  const rounds: ReconcileRound[] = [];
  const single: Partial<Record<PerRoute['op'], PerRoute>> = {};
  try {
    await run('ip', ['netns', 'add', ns]);
    created = true;
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', ns, 'link', 'add', DEV, 'type', 'veth', 'peer', 'name', PEER]);
    await run('ip', ['-n', ns, 'addr', 'add', LOCAL, 'dev', DEV]);
    for (const l of [DEV, PEER]) await run('ip', ['-n', ns, 'link', 'set', l, 'up']);
    log(`namespace ${ns}: ${DEV} ⇄ ${PEER}, ${LOCAL}; ${nodeRoutes} node routes (/24 via ${GATEWAY}, table ${NODE_TABLE}) + ${podRoutes} pod routes (/32, table ${POD_TABLE})`);

    for (let i = 1; i <= repeat; i++) {
      checkInterrupt();
      const r = await reconcileRound(ns);
      rounds.push(r);
      log(`reconcile() round ${i}/${repeat}: first apply ${secs(r.firstApplyS)}, unchanged re-apply ${secs(r.unchangedReapplyS)}, teardown ${secs(r.teardownS)}`);
    }
    for (const op of ['add', 'replace', 'del'] as const) {
      checkInterrupt();
      log(`one process per route: ip route ${op} × ${sampleRoutes.length} …`);
      const p = await perRoute(ns, op);
      single[op] = p;
      log(`  ${secs(p.seconds)} (${p.perRouteMs.toFixed(2)} ms/route; extrapolated to ${total}: ${secs(p.extrapolatedS, 0)})`);
    }
    const left = await countRoutes(ns);
    if (left !== 0) throw new Error(`${left} routes left after the per-route deletes`);
  } finally {
    if (created) {
      const r = await run('ip', ['netns', 'del', ns], { allowFail: true });
      if (r.code !== 0) log(`WARNING: could not delete namespace ${ns}: ${r.stderr.trim()}`);
    }
  }

  const s = {
    firstApply: summary(rounds.map((r) => r.firstApplyS)),
    unchangedReapply: summary(rounds.map((r) => r.unchangedReapplyS)),
    teardown: summary(rounds.map((r) => r.teardownS)),
  };
  const machine = await machineInfo();
  const fmt = (x: Summary) => `${secs(x.median)} (${secs(x.min)}–${secs(x.max)})`;
  const perRouteUs = (x: Summary) => `${((x.median * 1e6) / total).toFixed(1)} µs`;
  const rows: [string, Summary, PerRoute | undefined][] = [
    ['first apply (route add)', s.firstApply, single.add],
    ['unchanged re-apply (route replace)', s.unchangedReapply, single.replace],
    ['teardown (route del)', s.teardown, single.del],
  ];
  console.log(`\nRoute programming — ${started.toISOString()} — ${machine.nproc} CPU (${machine.cpuModel}), kernel ${machine.kernel}`);
  console.log(`${total} IPv4 routes (${nodeRoutes} /24 via a gateway + ${podRoutes} /32) in namespace ${ns}; reconcile() ${repeat}× (median, min–max); one process per route measured on ${sampleRoutes.length} (${sampleNodes} /24 + ${sampleRoutes.length - sampleNodes} /32).\n`);
  console.log(
    table([
      ['', `reconcile(), ${total} routes`, 'per route', `ip/route, ${sampleRoutes.length} measured`, 'per route', `ip/route, ${total} EXTRAPOLATED`, 'ratio'],
      ...rows.map(([label, x, p]) => [
        label,
        fmt(x),
        perRouteUs(x),
        p ? secs(p.seconds) : '—',
        p ? `${(p.perRouteMs * 1000).toFixed(0)} µs` : '—',
        p ? `≈ ${secs(p.extrapolatedS, 1)} (extrapolated)` : '—',
        p ? `×${(p.extrapolatedS / x.median).toFixed(0)}` : '—',
      ]),
    ]),
  );
  console.log(`\nip/route: one \`ip -n NS route add|replace|del\` process per route, spawned one after another from Node; ratio: extrapolated ÷ reconcile() median.`);
  console.log('For the re-apply, one process per route is what a controller without a diff does (replace every route); reconcile() reads, diffs and changes nothing.');
  const file = writeResult(String(opt.out), 'routes', started, {
    machine,
    settings: { nodeRoutes, podRoutes, total, repeat, sample: sampleRoutes.length, sampleNodeRoutes: sampleNodes, routeProtocol: owned.routeProtocol, nodeTable: NODE_TABLE, podTable: POD_TABLE },
    reconcile: { summaryS: s, rounds, medianPerRouteUs: { firstApply: (s.firstApply.median * 1e6) / total, unchangedReapply: (s.unchangedReapply.median * 1e6) / total, teardown: (s.teardown.median * 1e6) / total } },
    processPerRoute: { note: `measured on ${sampleRoutes.length} routes, extrapolatedS = perRouteMs × ${total} (not measured at full size)`, ...single },
    speedupExtrapolatedOverReconcile: {
      firstApply: single.add ? single.add.extrapolatedS / s.firstApply.median : null,
      unchangedReapply: single.replace ? single.replace.extrapolatedS / s.unchangedReapply.median : null,
      teardown: single.del ? single.del.extrapolatedS / s.teardown.median : null,
    },
  });
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
}

installInterruptHandler();
try {
  await main();
} catch (e) {
  console.error(`bench/routes.ts: ${errMsg(e)}`);
  process.exitCode = e instanceof Error && e.name === 'Interrupted' ? 130 : 1;
}
