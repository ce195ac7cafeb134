// FDB flood entries of a VXLAN link without a fixed remote: one all-zero-MAC entry per remote
// underlay address, so broadcast and unknown unicast reach every peer. Only all-zero-MAC entries
// are weft's; learned and other static entries on the link are left alone.
import { canonicalAddress } from './address.ts';
import type { BatchOp } from './batch.ts';

export const ZERO_MAC = '00:00:00:00:00:00';

/** Destinations of the all-zero-MAC entries in `bridge -j fdb show dev X`, sorted, unique. */
export function parseFloodEntries(entries: unknown): string[] {
  if (!Array.isArray(entries)) throw new Error('fdb dump is not a JSON array');
  const out = new Set<string>();
  for (const e of entries as Record<string, unknown>[]) {
    if (e.mac === ZERO_MAC && typeof e.dst === 'string') out.add(canonicalAddress(e.dst) ?? e.dst);
  }
  return [...out].sort();
}

export function fdbOps(link: string, want: readonly string[], have: readonly string[]): BatchOp[] {
  const w = new Set(want);
  const h = new Set(have);
  return [
    ...have.filter((a) => !w.has(a)).map((a) => ({ line: `fdb del ${ZERO_MAC} dev ${link} dst ${a}`, what: `fdb del ${a} dev ${link}` })),
    ...want.filter((a) => !h.has(a)).map((a) => ({ line: `fdb append ${ZERO_MAC} dev ${link} dst ${a}`, what: `fdb append ${a} dev ${link}` })),
  ];
}
