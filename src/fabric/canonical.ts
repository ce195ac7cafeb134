// Canonical order of a planned KernelState: the same inputs, in any order, give byte-identical
// plans, so fingerprints and diffs of the executor do not churn. Routes sort by table (main as
// 254), then destination address and length, then device and next hop; rules by priority;
// links and nft tables by name; sysctls by key.
import type { KernelState, NftTable, RouteSpec, RuleSpec, VxlanLink } from '../kernel/types.ts';
import { parseIPv4 } from '../ipam/cidr.ts';

const MAIN = 254;

function dstKey(dst: string): [number, number] {
  const slash = dst.indexOf('/');
  const addr = slash < 0 ? dst : dst.slice(0, slash);
  const bits = slash < 0 ? 32 : Number(dst.slice(slash + 1));
  try {
    return [parseIPv4(addr), bits];
  } catch {
    return [Number.MAX_SAFE_INTEGER, bits];
  }
}

function cmpText(a: string | undefined, b: string | undefined): number {
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}

export function compareRoutes(a: RouteSpec, b: RouteSpec): number {
  const ta = a.table === 'main' ? MAIN : a.table;
  const tb = b.table === 'main' ? MAIN : b.table;
  if (ta !== tb) return ta - tb;
  const [aa, ab] = dstKey(a.dst);
  const [ba, bb] = dstKey(b.dst);
  if (aa !== ba) return aa - ba;
  if (ab !== bb) return ab - bb;
  return cmpText(a.dev, b.dev) || cmpText(a.via, b.via);
}

export function compareRules(a: RuleSpec, b: RuleSpec): number {
  return a.priority - b.priority || a.table - b.table || (a.fwmark ?? 0) - (b.fwmark ?? 0) || cmpText(a.iif, b.iif);
}

export function canonicalState(parts: {
  links: VxlanLink[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  nftTables: NftTable[];
  sysctls: Record<string, string>;
}): KernelState {
  const sysctls: Record<string, string> = {};
  for (const key of Object.keys(parts.sysctls).sort()) sysctls[key] = parts.sysctls[key]!;
  return {
    links: [...parts.links].sort((a, b) => cmpText(a.name, b.name)),
    routes: [...parts.routes].sort(compareRoutes),
    rules: [...parts.rules].sort(compareRules),
    nftTables: [...parts.nftTables].sort((a, b) => cmpText(a.name, b.name)),
    sysctls,
  };
}

/** Sort IPv4 address strings numerically, dropping duplicates. */
export function sortAddresses(addresses: Iterable<string>): string[] {
  return [...new Set(addresses)].sort((a, b) => parseIPv4(a) - parseIPv4(b));
}

/** Stable order of peerings: by remote cluster id (then interface name, for equal ids). */
export function comparePeers(a: { remoteClusterId: string; interfaceName: string }, b: { remoteClusterId: string; interfaceName: string }): number {
  return cmpText(a.remoteClusterId, b.remoteClusterId) || cmpText(a.interfaceName, b.interfaceName);
}
