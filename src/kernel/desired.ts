// Validation of a whole desired KernelState, before anything is touched: every field checked,
// every address canonicalised, duplicates merged when identical and refused when they contradict.
import { normaliseLink, type DesiredLink } from './links.ts';
import { requireNftName, requireOwnership } from './names.ts';
import { checkNftBody, nftFingerprint, tableId } from './nft.ts';
import { describeRoute, normaliseRoute, routeDifferences, routeKey, type KernelRoute } from './routes.ts';
import { normaliseRule, ruleKey, type KernelRule } from './rules.ts';
import { checkSysctlValue, sysctlPath } from './sysctl.ts';
import type { KernelState, NftTable, Ownership } from './types.ts';
import { KernelStateError } from './types.ts';

export interface DesiredNft {
  table: NftTable;
  fingerprint: string;
}

export interface NormalisedState {
  owned: Ownership;
  links: DesiredLink[];
  routes: KernelRoute[];
  rules: KernelRule[];
  nft: DesiredNft[];
  sysctls: Array<[string, string]>;
}

function list<T>(value: unknown, what: string): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new KernelStateError(`${what} must be an array`);
  return value as T[];
}

export function normaliseState(desired: KernelState, ownedInput: Ownership): NormalisedState {
  const owned = requireOwnership(ownedInput);
  if (!desired || typeof desired !== 'object') throw new KernelStateError('desired state must be an object');

  const links = new Map<string, DesiredLink>();
  list<KernelState['links'][number]>(desired.links, 'links').forEach((spec, i) => {
    const l = normaliseLink(spec, owned.linkPrefix, `links[${i}]`);
    if (links.has(l.name)) throw new KernelStateError(`links[${i}]: link ${l.name} is listed twice`);
    links.set(l.name, l);
  });
  const vnis = new Map<string, string>();
  for (const l of links.values()) {
    const k = `${l.id} ${l.port} ${l.local}`;
    if (vnis.has(k)) throw new KernelStateError(`links ${vnis.get(k)} and ${l.name} share VNI ${l.id}, port ${l.port} and local ${l.local}; the kernel allows only one`);
    vnis.set(k, l.name);
  }

  const routes = new Map<string, KernelRoute>();
  list<KernelState['routes'][number]>(desired.routes, 'routes').forEach((spec, i) => {
    const r = normaliseRoute(spec, `routes[${i}]`);
    const k = routeKey(r);
    const prev = routes.get(k);
    if (prev && routeDifferences(r, prev).length) throw new KernelStateError(`routes[${i}]: ${describeRoute(r)} is listed twice with different nexthops or attributes`);
    routes.set(k, r);
  });

  const rules = new Map<string, KernelRule>();
  list<KernelState['rules'][number]>(desired.rules, 'rules').forEach((spec, i) => {
    const r = normaliseRule(spec, `rules[${i}]`);
    rules.set(ruleKey(r), r);
  });

  const nft = new Map<string, DesiredNft>();
  list<NftTable>(desired.nftTables, 'nftTables').forEach((t, i) => {
    const what = `nftTables[${i}]`;
    if (!t || typeof t !== 'object') throw new KernelStateError(`${what} must be an object`);
    if (t.family !== 'ip' && t.family !== 'ip6' && t.family !== 'inet') throw new KernelStateError(`${what}.family must be ip, ip6 or inet`);
    requireNftName(t.name, owned.nftPrefix, `${what}.name`);
    checkNftBody(t.body, `${what}.body`);
    const id = tableId(t);
    if (nft.has(id)) throw new KernelStateError(`${what}: table ${id} is listed twice`);
    nft.set(id, { table: { family: t.family, name: t.name, body: t.body }, fingerprint: nftFingerprint(t.body) });
  });

  const sysctls: Array<[string, string]> = [];
  const sysctlPaths = new Map<string, string>();
  if (desired.sysctls !== undefined && (typeof desired.sysctls !== 'object' || desired.sysctls === null || Array.isArray(desired.sysctls))) {
    throw new KernelStateError('sysctls must be an object of key → value');
  }
  for (const [k, v] of Object.entries(desired.sysctls ?? {})) {
    const p = sysctlPath(k);
    if (sysctlPaths.has(p)) throw new KernelStateError(`sysctls ${sysctlPaths.get(p)} and ${k} name the same setting`);
    sysctlPaths.set(p, k);
    sysctls.push([k, checkSysctlValue(v, k)]);
  }

  return { owned, links: [...links.values()], routes: [...routes.values()], rules: [...rules.values()], nft: [...nft.values()], sysctls };
}
