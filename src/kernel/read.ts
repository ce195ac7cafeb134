// Reading what weft owns in the kernel: one dump per kind (routes of both families in one
// `ip route show table all proto P`, links with their addresses in one `ip -d addr show`).
import type { Family } from './address.ts';
import type { Host } from './exec.ts';
import { oneLine } from './exec.ts';
import { parseFloodEntries } from './fdb.ts';
import { parseLinks, type KernelLink } from './links.ts';
import { parseTableList, parseTableListing, tableId, type ListedTable } from './nft.ts';
import { parseRoutes, type KernelRoute } from './routes.ts';
import { parseRules, type KernelRule } from './rules.ts';

/** Every link whose name has the prefix (any kind: the caller decides what is weft's). */
export async function readLinks(host: Host, prefix: string): Promise<KernelLink[]> {
  return parseLinks(await host.json('ip -d -j addr show', host.ip(['-d', '-j', 'addr', 'show'])), prefix);
}

export async function readFlood(host: Host, link: string): Promise<string[]> {
  return parseFloodEntries(await host.json(`bridge -j fdb show dev ${link}`, host.bridge(['-j', 'fdb', 'show', 'dev', link])));
}

export async function readRoutes(host: Host, proto: number): Promise<KernelRoute[]> {
  const args = ['-N', '-j', '-d', 'route', 'show', 'table', 'all', 'proto', String(proto)];
  return parseRoutes(await host.json('ip route show', host.ip(args)));
}

export async function readRules(host: Host, family: Family, proto: number): Promise<KernelRule[]> {
  const args = [`-${family}`, '-N', '-j', 'rule', 'show'];
  return parseRules(await host.json(`ip -${family} rule show`, host.ip(args)), family, proto);
}

/**
 * weft's nft tables with the fingerprints from their comments. `terse` leaves set elements out of
 * the listing (all a reconcile needs); readState lists them in full.
 */
export async function readNftTables(host: Host, prefix: string, terse = true): Promise<ListedTable[]> {
  const refs = parseTableList(await host.json('nft -j list tables', host.nft(['-j', 'list', 'tables'])), prefix);
  if (refs.length === 0) return [];
  // One `nft list table` per table: nft 1.0.6 refuses a file with several list commands.
  const flags = terse ? ['-t'] : [];
  const listed: ListedTable[] = [];
  const vanished = new Set<string>();
  await inParallel(refs, 8, async (t) => {
    const one = await host.nft([...flags, 'list', 'table', t.family, t.name]);
    if (one.code === 0) listed.push(...parseTableListing(one.stdout));
    else if (/No such file or directory/.test(one.stderr)) vanished.add(tableId(t));
    else throw new Error(`nft list table ${t.family} ${t.name}: ${oneLine(one.stderr)}`);
  });
  const byId = new Map(listed.map((t) => [tableId(t), t]));
  // A table that vanished meanwhile is gone; one listed but not parsed is still weft's (no fingerprint).
  return refs.filter((r) => !vanished.has(tableId(r))).map((r) => byId.get(tableId(r)) ?? { ...r, fingerprint: '', body: '' });
}

/** Run `fn` over `items` with at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
