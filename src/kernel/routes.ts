// Routes: one normalised shape for both desired routes and what `ip -N -j -d route show table all
// proto P` prints, a diff keyed like the kernel keys routes (table, destination, metric, tos), and
// the batch lines that apply it. New routes use `add`, so a route weft does not own with the same key
// is refused (and reported) instead of being replaced.
import { canonicalAddress, parsePrefixText, requireAddress, requireNetwork, type Family } from './address.ts';
import type { BatchOp } from './batch.ts';
import { parseTableText, requireIfname, requireInt, requireTable, tableName } from './names.ts';
import type { RouteSpec } from './types.ts';
import { KernelStateError } from './types.ts';

export interface KernelRoute {
  family: Family;
  table: number;
  /** Canonical CIDR. */
  dst: string;
  metric: number;
  /** Type-of-service selector; part of the IPv4 key, never set by weft. */
  tos: number;
  via?: string;
  dev?: string;
  onlink: boolean;
  mtu?: number;
  src?: string;
  /** Attributes weft never sets (another route type, multipath, other metrics, ...). */
  extra?: string;
}

export function defaultMetric(family: Family): number {
  return family === 4 ? 0 : 1024;
}

export function routeKey(r: KernelRoute): string {
  return `${r.table} ${r.dst} ${r.metric} ${r.tos}`;
}

/** Validate and normalise a desired route; throws KernelStateError. */
export function normaliseRoute(spec: RouteSpec, what: string): KernelRoute {
  if (!spec || typeof spec !== 'object') throw new KernelStateError(`${what} must be an object`);
  const table = requireTable(spec.table, `${what}.table`);
  const dst = requireNetwork(spec.dst, `${what}.dst`);
  const r: KernelRoute = {
    family: dst.family,
    table,
    dst: dst.text,
    metric: spec.metric === undefined ? defaultMetric(dst.family) : requireInt(spec.metric, `${what}.metric`, 0, 0xffffffff),
    tos: 0,
    dev: requireIfname(spec.dev, `${what}.dev`),
    onlink: false,
  };
  if (spec.onlink !== undefined && typeof spec.onlink !== 'boolean') throw new KernelStateError(`${what}.onlink must be a boolean`);
  r.onlink = spec.onlink === true;
  if (spec.via !== undefined) {
    const via = requireAddress(spec.via, `${what}.via`);
    if (via.family !== dst.family) throw new KernelStateError(`${what}.via ${spec.via} is not the same address family as ${spec.dst}`);
    r.via = via.text;
  }
  if (r.onlink && r.via === undefined) throw new KernelStateError(`${what}.onlink needs a gateway (via)`);
  if (spec.mtu !== undefined) r.mtu = requireInt(spec.mtu, `${what}.mtu`, 68, 65535);
  if (spec.src !== undefined) {
    const src = requireAddress(spec.src, `${what}.src`);
    if (src.family !== dst.family) throw new KernelStateError(`${what}.src ${spec.src} is not the same address family as ${spec.dst}`);
    r.src = src.text;
  }
  return r;
}

const KNOWN = new Set(['type', 'dst', 'gateway', 'dev', 'table', 'scope', 'flags', 'metrics', 'prefsrc', 'metric', 'pref', 'protocol', 'tos', 'dsfield']);
const IGNORED_FLAGS = new Set(['linkdown', 'dead', 'offload', 'trap', 'offload_failed', 'rt_offload', 'rt_trap', 'rt_offload_failed']);

/** Parse `ip -N -j -d route show table all proto P` (IPv4 and IPv6 together). */
export function parseRoutes(entries: unknown): KernelRoute[] {
  if (!Array.isArray(entries)) throw new Error('route dump is not a JSON array');
  const out: KernelRoute[] = [];
  for (const e of entries as Record<string, unknown>[]) {
    const r = parseRoute(e);
    if (r) out.push(r);
  }
  return out;
}

function parseRoute(e: Record<string, unknown>): KernelRoute | null {
  if (typeof e.dst !== 'string') return null;
  const gw = typeof e.gateway === 'string' ? e.gateway : undefined;
  const hint: Family = e.dst.includes(':') || (gw?.includes(':') ?? false) ? 6 : 4;
  const dst = parsePrefixText(e.dst, false, hint);
  const table = parseTableText(e.table);
  if (!dst || table === null) return null;
  const extras: string[] = [];
  const r: KernelRoute = {
    family: dst.family,
    table,
    dst: dst.text,
    metric: typeof e.metric === 'number' ? e.metric : defaultMetric(dst.family),
    tos: 0,
    onlink: false,
  };
  for (const [k, v] of Object.entries(e)) {
    if (!KNOWN.has(k)) extras.push(`${k}=${JSON.stringify(v)}`);
  }
  const tos = e.tos ?? e.dsfield;
  if (tos !== undefined) r.tos = typeof tos === 'number' ? tos : Number.parseInt(String(tos), 16) || 0;
  if (e.type !== undefined && e.type !== '1' && e.type !== 'unicast' && e.type !== 1) extras.push(`type=${String(e.type)}`);
  if (gw !== undefined) r.via = canonicalAddress(gw) ?? gw;
  if (typeof e.dev === 'string') r.dev = e.dev;
  if (typeof e.prefsrc === 'string') r.src = canonicalAddress(e.prefsrc) ?? e.prefsrc;
  if (Array.isArray(e.flags)) {
    for (const f of e.flags) {
      if (f === 'onlink') r.onlink = true;
      else if (!IGNORED_FLAGS.has(String(f))) extras.push(`flag=${String(f)}`);
    }
  }
  if (Array.isArray(e.metrics)) {
    for (const m of e.metrics as Record<string, unknown>[]) {
      for (const [k, v] of Object.entries(m)) {
        if (k === 'mtu' && typeof v === 'number') r.mtu = v;
        else extras.push(`metric.${k}=${JSON.stringify(v)}`);
      }
    }
  }
  if (extras.length) r.extra = extras.join(' ');
  return r;
}

function sameRoute(a: KernelRoute, b: KernelRoute): boolean {
  return a.dev === b.dev && a.via === b.via && a.onlink === b.onlink && a.mtu === b.mtu && a.src === b.src && b.extra === undefined;
}

/** The fields that differ between two routes with the same key ([] when equal). */
export function routeDifferences(want: KernelRoute, have: KernelRoute): string[] {
  const d: string[] = [];
  const cmp = (name: string, a: unknown, b: unknown) => {
    if (a !== b) d.push(`${name} ${b ?? '-'} → ${a ?? '-'}`);
  };
  cmp('dev', want.dev, have.dev);
  cmp('via', want.via, have.via);
  cmp('onlink', want.onlink, have.onlink);
  cmp('mtu', want.mtu, have.mtu);
  cmp('src', want.src, have.src);
  if (have.extra !== undefined) d.push(`drop ${have.extra}`);
  return d;
}

export interface RoutePlan {
  add: KernelRoute[];
  replace: Array<{ want: KernelRoute; have: KernelRoute; why: string[] }>;
  del: KernelRoute[];
}

/** What to change so `current` (weft's routes in the kernel) becomes `desired`. */
export function diffRoutes(desired: readonly KernelRoute[], current: readonly KernelRoute[]): RoutePlan {
  const have = new Map<string, KernelRoute>();
  const plan: RoutePlan = { add: [], replace: [], del: [] };
  for (const r of current) {
    const k = routeKey(r);
    if (have.has(k)) plan.del.push(r); // a duplicate alias with the same key: keep the first only
    else have.set(k, r);
  }
  const wanted = new Set<string>();
  for (const r of desired) {
    const k = routeKey(r);
    wanted.add(k);
    const h = have.get(k);
    if (!h) plan.add.push(r);
    else if (!sameRoute(r, h)) {
      const why = routeDifferences(r, h);
      if (why.length) plan.replace.push({ want: r, have: h, why });
    }
  }
  for (const [k, r] of have) if (!wanted.has(k)) plan.del.push(r);
  return plan;
}

export function describeRoute(r: KernelRoute): string {
  return `${r.dst} table ${tableName(r.table)}${r.metric !== defaultMetric(r.family) ? ` metric ${r.metric}` : ''}`;
}

function routeArgs(r: KernelRoute, proto: number): string {
  let s = `${r.dst} table ${r.table} metric ${r.metric} proto ${proto}`;
  if (r.via !== undefined) s += ` via ${r.via}`;
  s += ` dev ${r.dev}`;
  if (r.onlink) s += ' onlink';
  if (r.mtu !== undefined) s += ` mtu ${r.mtu}`;
  if (r.src !== undefined) s += ` src ${r.src}`;
  return s;
}

function deleteArgs(r: KernelRoute, proto: number): string {
  let s = `${r.dst} table ${r.table} metric ${r.metric} proto ${proto}`;
  if (r.tos) s += ` tos 0x${r.tos.toString(16)}`;
  // Naming the nexthop makes the delete hit exactly this route when several share the key.
  if (r.via !== undefined && canonicalAddress(r.via) !== null && r.dev !== undefined) s += ` via ${r.via} dev ${r.dev}`;
  else if (r.dev !== undefined && r.via === undefined && r.extra === undefined) s += ` dev ${r.dev}`;
  return s;
}

/** Batch lines for a plan: deletes first (they may free a key an add needs), then replaces, adds. */
export function routeOps(plan: RoutePlan, proto: number): BatchOp[] {
  const ops: BatchOp[] = [];
  for (const r of plan.del) ops.push({ line: `route del ${deleteArgs(r, proto)}`, what: `route del ${describeRoute(r)}` });
  for (const { want, why } of plan.replace) {
    ops.push({ line: `route replace ${routeArgs(want, proto)}`, what: `route replace ${describeRoute(want)} (${why.join(', ')})` });
  }
  for (const r of plan.add) ops.push({ line: `route add ${routeArgs(r, proto)}`, what: `route add ${describeRoute(r)}` });
  return ops;
}

export function routeToSpec(r: KernelRoute): RouteSpec {
  const s: RouteSpec = { table: r.table === 254 ? 'main' : r.table, dst: r.dst, dev: r.dev ?? '' };
  if (r.via !== undefined) s.via = r.via;
  if (r.onlink) s.onlink = true;
  if (r.mtu !== undefined) s.mtu = r.mtu;
  if (r.src !== undefined) s.src = r.src;
  if (r.metric !== defaultMetric(r.family)) s.metric = r.metric;
  return s;
}
