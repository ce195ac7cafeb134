// The executor: read what weft owns, diff it against the desired state, apply only the difference.
// Order: links (and their FDB), sysctls (per-link keys need the link), routes (they need the links;
// re-read when links changed, since the kernel drops routes with a link that goes away or down),
// rules, nft tables. Each kind is applied in one batch; a refusal is collected and the rest goes on.
import { runBatch, type BatchOp, type BatchOutcome } from './batch.ts';
import { normaliseState, type NormalisedState } from './desired.ts';
import { Host, oneLine, type CommandRunner } from './exec.ts';
import { fdbOps } from './fdb.ts';
import { diffLinks, linkToSpec, type KernelLink } from './links.ts';
import { requireOwnership } from './names.ts';
import { nftReplaceScript, parseTableListing, stableListing, tableId, type ListedTable } from './nft.ts';
import { readFlood, readLinks, readNftTables, readRoutes, readRules } from './read.ts';
import { diffRoutes, routeOps, routeToSpec } from './routes.ts';
import { diffRules, ruleOps, ruleToSpec, type KernelRule } from './rules.ts';
import { readSysctls, applySysctls } from './sysctl.ts';
import type { KernelState, Ownership, ReconcileReport } from './types.ts';

export interface KernelOptions {
  /** Network namespace to work in (`ip -n`, `ip netns exec`); the current one when absent. */
  netns?: string;
  owned: Ownership;
  /** How commands are run (tests may inject one). */
  runner?: CommandRunner;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; error: string };

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<Attempt<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: `${what}: ${(err as Error).message}` };
  }
}

class Report {
  readonly changed: string[] = [];
  readonly errors: string[] = [];
  add(o: BatchOutcome): void {
    this.changed.push(...o.done);
    this.errors.push(...o.errors);
  }
  result(): ReconcileReport {
    return { changed: this.changed, errors: this.errors };
  }
}

function ipBatch(host: Host, ops: BatchOp[], family?: 4 | 6): Promise<BatchOutcome> {
  return runBatch((args, input) => host.ip(args, input), ops, family ? [`-${family}`] : []);
}

function bridgeBatch(host: Host, ops: BatchOp[]): Promise<BatchOutcome> {
  return runBatch((args, input) => host.bridge(args, input), ops);
}

async function readAllRules(host: Host, proto: number, needV6: boolean): Promise<KernelRule[]> {
  const [v4, v6] = await Promise.all([readRules(host, 4, proto), readRules(host, 6, proto).catch((err: Error) => (needV6 ? Promise.reject(err) : []))]);
  return [...v4, ...v6];
}

export async function reconcile(desired: KernelState, opts: KernelOptions): Promise<ReconcileReport> {
  const want = normaliseState(desired, opts.owned); // throws on invalid input, before any command
  const host = new Host(opts.netns, opts.runner);
  const { owned } = want;
  const report = new Report();

  const [links, routes, rules, tables] = await Promise.all([
    attempt('read links', () => readLinks(host, owned.linkPrefix)),
    attempt('read routes', () => readRoutes(host, owned.routeProtocol)),
    attempt('read rules', () => readAllRules(host, owned.ruleProtocol, want.rules.some((r) => r.family === 6))),
    attempt('read nft tables', () => readNftTables(host, owned.nftPrefix)),
  ]);

  const linksTouched = links.ok ? await applyLinks(host, want, links.value, report) : (report.errors.push(links.error), false);

  report.add(await applySysctls(host, want.sysctls).catch((err: Error) => ({ done: [], errors: [`sysctls: ${err.message}`] })));

  const currentRoutes = linksTouched ? await attempt('read routes', () => readRoutes(host, owned.routeProtocol)) : routes;
  if (currentRoutes.ok) report.add(await ipBatch(host, routeOps(diffRoutes(want.routes, currentRoutes.value), owned.routeProtocol)));
  else report.errors.push(currentRoutes.error);

  if (rules.ok) await applyRules(host, want.rules, rules.value, owned.ruleProtocol, report);
  else report.errors.push(rules.error);

  if (tables.ok) await applyNft(host, want, tables.value, report);
  else report.errors.push(tables.error);

  return report.result();
}

/** Returns whether anything was attempted (routes through the links must then be read again). */
async function applyLinks(host: Host, want: NormalisedState, current: KernelLink[], report: Report): Promise<boolean> {
  const plan = diffLinks(want.links, current);
  report.errors.push(...plan.conflicts);
  const conflicting = new Set(current.filter((l) => l.kind !== 'vxlan').map((l) => l.name));
  const linkOut = await ipBatch(host, plan.ops);
  report.add(linkOut);

  const flood: BatchOp[] = [];
  const fdbReads = await Promise.all(
    want.links
      .filter((l) => !conflicting.has(l.name))
      .map(async (l) => {
        if (plan.fresh.has(l.name)) return { l, have: attemptValue(l.remote !== undefined ? [l.remote] : []) };
        return { l, have: await attempt(`read fdb of ${l.name}`, () => readFlood(host, l.name)) };
      }),
  );
  for (const { l, have } of fdbReads) {
    if (have.ok) flood.push(...fdbOps(l.name, l.fdb, have.value));
    else report.errors.push(have.error);
  }
  report.add(await bridgeBatch(host, flood));
  return plan.ops.length > 0;
}

function attemptValue<T>(value: T): Attempt<T> {
  return { ok: true, value };
}

async function applyRules(host: Host, want: readonly KernelRule[], current: readonly KernelRule[], proto: number, report: Report): Promise<void> {
  for (const family of [4, 6] as const) {
    const plan = diffRules(
      want.filter((r) => r.family === family),
      current.filter((r) => r.family === family),
    );
    report.add(await ipBatch(host, ruleOps(plan, proto), family));
  }
}

/**
 * What each table looked like right after this process loaded it (or when first seen with the
 * wanted fingerprint), keyed by namespace and table. The fingerprint comment alone cannot see a
 * rule deleted or added inside a table by hand; the listing, which a reconcile reads anyway, can.
 */
const nftListings = new Map<string, { fingerprint: string; listing: string }>();

async function applyNft(host: Host, want: NormalisedState, current: ListedTable[], report: Report): Promise<void> {
  const have = new Map(current.map((t) => [tableId(t), t]));
  const wanted = new Set(want.nft.map((d) => tableId(d.table)));
  const memoKey = (id: string) => `${host.netns ?? ''}\0${id}`;
  for (const t of current) {
    if (wanted.has(tableId(t))) continue;
    const r = await host.nft(['delete', 'table', t.family, t.name]);
    nftListings.delete(memoKey(tableId(t)));
    if (r.code === 0) report.changed.push(`nft delete table ${tableId(t)}`);
    else report.errors.push(`nft delete table ${tableId(t)}: ${oneLine(r.stderr)}`);
  }
  for (const d of want.nft) {
    const id = tableId(d.table);
    const cur = have.get(id);
    let what: string;
    if (!cur) what = `nft load table ${id}`;
    else if (cur.fingerprint !== d.fingerprint) what = `nft replace table ${id} (fingerprint ${cur.fingerprint.slice(0, 12) || 'none'} → ${d.fingerprint.slice(0, 12)})`;
    else {
      const memo = nftListings.get(memoKey(id));
      if (memo && memo.fingerprint === d.fingerprint) {
        if (memo.listing === stableListing(cur.body)) continue;
        what = `nft replace table ${id} (contents changed by hand)`;
      } else {
        nftListings.set(memoKey(id), { fingerprint: d.fingerprint, listing: stableListing(cur.body) });
        continue;
      }
    }
    const r = await host.nft(['-f', '-'], nftReplaceScript(d.table, d.fingerprint));
    if (r.code !== 0) {
      report.errors.push(`${what}: ${oneLine(r.stderr)}`);
      continue;
    }
    report.changed.push(what);
    const listed = await host.nft(['-t', 'list', 'table', d.table.family, d.table.name]);
    const after = listed.code === 0 ? parseTableListing(listed.stdout)[0] : undefined;
    if (after) nftListings.set(memoKey(id), { fingerprint: d.fingerprint, listing: stableListing(after.body) });
    else nftListings.delete(memoKey(id));
  }
}

/** Remove everything weft owns: rules, routes, nft tables, links (sysctls are left as they are). */
export async function teardown(opts: KernelOptions): Promise<ReconcileReport> {
  const owned = requireOwnership(opts.owned);
  const host = new Host(opts.netns, opts.runner);
  const report = new Report();
  const [links, routes, rules, tables] = await Promise.all([
    attempt('read links', () => readLinks(host, owned.linkPrefix)),
    attempt('read routes', () => readRoutes(host, owned.routeProtocol)),
    attempt('read rules', () => readAllRules(host, owned.ruleProtocol, false)),
    attempt('read nft tables', () => readNftTables(host, owned.nftPrefix)),
  ]);
  if (rules.ok) await applyRules(host, [], rules.value, owned.ruleProtocol, report);
  else report.errors.push(rules.error);
  if (routes.ok) report.add(await ipBatch(host, routeOps(diffRoutes([], routes.value), owned.routeProtocol)));
  else report.errors.push(routes.error);
  if (tables.ok) await applyNft(host, { owned, links: [], routes: [], rules: [], nft: [], sysctls: [] }, tables.value, report);
  else report.errors.push(tables.error);
  if (links.ok) report.add(await ipBatch(host, diffLinks([], links.value).ops));
  else report.errors.push(links.error);
  return report.result();
}

export interface ReadStateOptions extends KernelOptions {
  /** Sysctl keys to include (weft cannot tell which sysctls are its own). */
  sysctlKeys?: string[];
}

/** What weft owns in the kernel now, as a KernelState (nft bodies are the kernel's listing). */
export async function readState(opts: ReadStateOptions): Promise<KernelState> {
  const owned = requireOwnership(opts.owned);
  const host = new Host(opts.netns, opts.runner);
  const [links, routes, rules, tables, sysctls] = await Promise.all([
    readLinks(host, owned.linkPrefix),
    readRoutes(host, owned.routeProtocol),
    readAllRules(host, owned.ruleProtocol, false),
    readNftTables(host, owned.nftPrefix, false),
    readSysctls(host, opts.sysctlKeys ?? []),
  ]);
  const vxlans = links.filter((l) => l.kind === 'vxlan');
  const fdbs = await Promise.all(vxlans.map((l) => readFlood(host, l.name)));
  const state: KernelState = {
    links: vxlans.map((l, i) => linkToSpec(l, fdbs[i]!)),
    routes: routes.map(routeToSpec),
    rules: rules.map(ruleToSpec),
    nftTables: tables.map((t) => ({ family: t.family as 'ip' | 'ip6' | 'inet', name: t.name, body: t.body, fingerprint: t.fingerprint })),
    sysctls: {},
  };
  for (const [k, v] of sysctls) if ('value' in v) state.sysctls[k] = v.value;
  return state;
}
