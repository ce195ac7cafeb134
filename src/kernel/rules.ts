// Policy rules: normalised from desired specs and from `ip -N -j [-6] rule show`, diffed as whole
// rules (a rule has no key the kernel could replace in place: a changed rule is a delete and an add).
import { parsePrefixText, requireNetwork, type Family } from './address.ts';
import type { BatchOp } from './batch.ts';
import { parseTableText, requireIfname, requireInt, tableName } from './names.ts';
import type { RuleSpec } from './types.ts';
import { KernelStateError } from './types.ts';

export interface KernelRule {
  family: Family;
  priority: number;
  table: number;
  fwmark?: number;
  /** Always set with fwmark (0xffffffff when the rule gave none). */
  fwmask?: number;
  from?: string;
  to?: string;
  iif?: string;
  /** Selectors or actions weft never sets: such a rule never equals a desired one. */
  extra?: string;
}

const FULL_MASK = 0xffffffff;

export function ruleKey(r: KernelRule): string {
  return [r.family, r.priority, r.table, r.fwmark ?? '-', r.fwmask ?? '-', r.from ?? '-', r.to ?? '-', r.iif ?? '-', r.extra ?? '-'].join(' ');
}

export function normaliseRule(spec: RuleSpec, what: string): KernelRule {
  if (!spec || typeof spec !== 'object') throw new KernelStateError(`${what} must be an object`);
  const r: KernelRule = {
    family: 4,
    priority: requireInt(spec.priority, `${what}.priority`, 0, 0xffffffff),
    table: requireInt(spec.table, `${what}.table`, 1, 0xffffffff),
  };
  const families = new Set<Family>();
  if (spec.from !== undefined) {
    const p = requireNetwork(spec.from, `${what}.from`);
    r.from = p.text;
    families.add(p.family);
  }
  if (spec.to !== undefined) {
    const p = requireNetwork(spec.to, `${what}.to`);
    r.to = p.text;
    families.add(p.family);
  }
  if (spec.family !== undefined) {
    if (spec.family !== 4 && spec.family !== 6) throw new KernelStateError(`${what}.family must be 4 or 6`);
    families.add(spec.family);
  }
  if (families.size > 1) throw new KernelStateError(`${what} mixes IPv4 and IPv6 (from/to/family disagree)`);
  r.family = families.values().next().value ?? 4;
  if (spec.fwmark !== undefined) {
    r.fwmark = requireInt(spec.fwmark, `${what}.fwmark`, 0, FULL_MASK);
    r.fwmask = spec.fwmask === undefined ? FULL_MASK : requireInt(spec.fwmask, `${what}.fwmask`, 0, FULL_MASK);
  } else if (spec.fwmask !== undefined) {
    throw new KernelStateError(`${what}.fwmask needs fwmark`);
  }
  if (spec.iif !== undefined) r.iif = requireIfname(spec.iif, `${what}.iif`);
  return r;
}

const KNOWN = new Set(['priority', 'src', 'srclen', 'dst', 'dstlen', 'fwmark', 'fwmask', 'iif', 'iif_detached', 'table', 'protocol']);

/** Parse `ip -N -j rule show` for one family; keeps only rules with `protocol` == proto. */
export function parseRules(entries: unknown, family: Family, proto: number): KernelRule[] {
  if (!Array.isArray(entries)) throw new Error('rule dump is not a JSON array');
  const out: KernelRule[] = [];
  for (const e of entries as Record<string, unknown>[]) {
    if (String(e.protocol) !== String(proto)) continue;
    const table = e.table === undefined ? 0 : parseTableText(e.table);
    const r: KernelRule = { family, priority: Number(e.priority ?? 0), table: table ?? 0 };
    const extras: string[] = [];
    for (const [k, v] of Object.entries(e)) if (!KNOWN.has(k)) extras.push(`${k}=${JSON.stringify(v)}`);
    if (table === null) extras.push(`table=${JSON.stringify(e.table)}`);
    const sel = (addr: unknown, len: unknown): string | undefined => {
      if (typeof addr !== 'string' || addr === 'all') return undefined;
      const text = typeof len === 'number' ? `${addr}/${len}` : addr;
      return parsePrefixText(text, false, family)?.text ?? text;
    };
    const from = sel(e.src, e.srclen);
    const to = sel(e.dst, e.dstlen);
    if (from !== undefined) r.from = from;
    if (to !== undefined) r.to = to;
    if (e.fwmark !== undefined) {
      r.fwmark = Number(e.fwmark);
      r.fwmask = e.fwmask === undefined ? FULL_MASK : Number(e.fwmask);
    }
    if (typeof e.iif === 'string') r.iif = e.iif;
    if (extras.length) r.extra = extras.join(' ');
    out.push(r);
  }
  return out;
}

export interface RulePlan {
  add: KernelRule[];
  del: KernelRule[];
}

export function diffRules(desired: readonly KernelRule[], current: readonly KernelRule[]): RulePlan {
  const want = new Map(desired.map((r) => [ruleKey(r), r]));
  const have = new Map<string, KernelRule>();
  const plan: RulePlan = { add: [], del: [] };
  for (const r of current) {
    const k = ruleKey(r);
    if (have.has(k) || !want.has(k)) plan.del.push(r);
    else have.set(k, r);
  }
  for (const [k, r] of want) if (!have.has(k)) plan.add.push(r);
  return plan;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Selectors as `ip rule` takes them and as the report shows them. */
export function describeRule(r: KernelRule): string {
  let s = `priority ${r.priority}`;
  if (r.from !== undefined) s += ` from ${r.from}`;
  if (r.to !== undefined) s += ` to ${r.to}`;
  if (r.fwmark !== undefined) s += ` fwmark ${hex(r.fwmark)}${r.fwmask !== FULL_MASK ? `/${hex(r.fwmask!)}` : ''}`;
  if (r.iif !== undefined) s += ` iif ${r.iif}`;
  if (r.table) s += ` table ${tableName(r.table)}`;
  if (r.extra !== undefined) s += ` (${r.extra})`;
  return s;
}

function ruleArgs(r: KernelRule, proto: number): string {
  let s = `priority ${r.priority}`;
  if (r.from !== undefined) s += ` from ${r.from}`;
  if (r.to !== undefined) s += ` to ${r.to}`;
  if (r.fwmark !== undefined) s += ` fwmark ${hex(r.fwmark)}/${hex(r.fwmask ?? FULL_MASK)}`;
  if (r.iif !== undefined) s += ` iif ${r.iif}`;
  if (r.table) s += ` table ${r.table}`;
  return `${s} protocol ${proto}`;
}

/** Batch lines for one family's plan: deletes first, then adds. */
export function ruleOps(plan: RulePlan, proto: number): BatchOp[] {
  return [
    ...plan.del.map((r) => ({ line: `rule del ${ruleArgs(r, proto)}`, what: `rule del ${describeRule(r)}${r.family === 6 ? ' (IPv6)' : ''}` })),
    ...plan.add.map((r) => ({ line: `rule add ${ruleArgs(r, proto)}`, what: `rule add ${describeRule(r)}${r.family === 6 ? ' (IPv6)' : ''}` })),
  ];
}

export function ruleToSpec(r: KernelRule): RuleSpec {
  const s: RuleSpec = { priority: r.priority, table: r.table };
  if (r.fwmark !== undefined) s.fwmark = r.fwmark;
  if (r.fwmark !== undefined && r.fwmask !== FULL_MASK) s.fwmask = r.fwmask!;
  if (r.to !== undefined) s.to = r.to;
  if (r.from !== undefined) s.from = r.from;
  if (r.iif !== undefined) s.iif = r.iif;
  if (r.family === 6 && r.to === undefined && r.from === undefined) s.family = 6;
  return s;
}
