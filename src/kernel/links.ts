// VXLAN links: desired links normalised, current ones read from `ip -d -j addr show` (link details
// and addresses in one dump), and the plan: create what is missing, delete and recreate a link whose
// identity (VNI, port, local, remote, underlay) changed, and otherwise fix mtu, addresses and the up
// state one by one. FDB flood entries are diffed in fdb.ts.
import { canonicalAddress, requireAddress, requireInterfaceAddress, type Family } from './address.ts';
import type { BatchOp } from './batch.ts';
import { requireIfname, requireInt } from './names.ts';
import type { VxlanLink } from './types.ts';
import { KernelStateError } from './types.ts';

export interface DesiredLink {
  name: string;
  family: Family;
  id: number;
  port: number;
  local: string;
  remote?: string;
  dev?: string;
  mtu: number;
  /** Canonical "addr/len", sorted, unique. */
  addresses: string[];
  /** Every all-zero-MAC FDB destination the link should have (fdb plus remote), sorted, unique. */
  fdb: string[];
}

export interface KernelLink {
  name: string;
  kind: string;
  id?: number;
  port?: number;
  local?: string;
  remote?: string;
  dev?: string;
  mtu: number;
  up: boolean;
  addresses: string[];
}

export function normaliseLink(spec: VxlanLink, linkPrefix: string, what: string): DesiredLink {
  if (!spec || typeof spec !== 'object') throw new KernelStateError(`${what} must be an object`);
  if (spec.kind !== 'vxlan') throw new KernelStateError(`${what}.kind must be "vxlan", got ${JSON.stringify(spec.kind)}`);
  const name = requireIfname(spec.name, `${what}.name`);
  if (!name.startsWith(linkPrefix)) throw new KernelStateError(`${what}.name ${JSON.stringify(name)} does not start with the owned prefix ${JSON.stringify(linkPrefix)}`);
  const local = requireAddress(spec.local, `${what}.local`);
  const l: DesiredLink = {
    name,
    family: local.family,
    id: requireInt(spec.id, `${what}.id`, 0, 0xffffff),
    port: requireInt(spec.port, `${what}.port`, 1, 65535),
    local: local.text,
    mtu: requireInt(spec.mtu, `${what}.mtu`, 68, 65535),
    addresses: [],
    fdb: [],
  };
  const sameFamily = (text: unknown, field: string) => {
    const a = requireAddress(text, `${what}.${field}`);
    if (a.family !== local.family) throw new KernelStateError(`${what}.${field} ${String(text)} is not the same address family as local ${spec.local}`);
    return a.text;
  };
  if (spec.remote !== undefined) l.remote = sameFamily(spec.remote, 'remote');
  if (spec.dev !== undefined) l.dev = requireIfname(spec.dev, `${what}.dev`);
  if (!Array.isArray(spec.addresses)) throw new KernelStateError(`${what}.addresses must be an array of CIDR strings`);
  l.addresses = [...new Set(spec.addresses.map((a, i) => requireInterfaceAddress(a, `${what}.addresses[${i}]`).text))].sort();
  if (spec.fdb !== undefined && !Array.isArray(spec.fdb)) throw new KernelStateError(`${what}.fdb must be an array of addresses`);
  const fdb = (spec.fdb ?? []).map((a, i) => sameFamily(a, `fdb[${i}]`));
  if (l.remote !== undefined) fdb.push(l.remote); // the kernel adds this entry itself for a remote
  l.fdb = [...new Set(fdb)].sort();
  return l;
}

/** Parse `ip -d -j addr show` into links whose name starts with `prefix` (any kind). */
export function parseLinks(entries: unknown, prefix: string): KernelLink[] {
  if (!Array.isArray(entries)) throw new Error('link dump is not a JSON array');
  const out: KernelLink[] = [];
  for (const e of entries as Record<string, unknown>[]) {
    if (typeof e.ifname !== 'string' || !e.ifname.startsWith(prefix)) continue;
    const info = (e.linkinfo ?? {}) as { info_kind?: string; info_data?: Record<string, unknown> };
    const data = info.info_data ?? {};
    const l: KernelLink = {
      name: e.ifname,
      kind: info.info_kind ?? 'unknown',
      mtu: Number(e.mtu),
      up: Array.isArray(e.flags) && e.flags.includes('UP'),
      addresses: [],
    };
    if (l.kind === 'vxlan') {
      if (typeof data.id === 'number') l.id = data.id;
      if (typeof data.port === 'number') l.port = data.port;
      const local = data.local ?? data.local6;
      const remote = data.remote ?? data.remote6 ?? data.group ?? data.group6;
      if (typeof local === 'string') l.local = canonicalAddress(local) ?? local;
      if (typeof remote === 'string') l.remote = canonicalAddress(remote) ?? remote;
      if (typeof data.link === 'string') l.dev = data.link;
    }
    const addrs = Array.isArray(e.addr_info) ? (e.addr_info as Record<string, unknown>[]) : [];
    for (const a of addrs) {
      // The kernel gives every link an IPv6 link-local address of its own; that one is not weft's.
      if (a.family === 'inet6' && a.scope === 'link') continue;
      if (typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      l.addresses.push(`${canonicalAddress(a.local) ?? a.local}/${a.prefixlen}`);
    }
    l.addresses.sort();
    out.push(l);
  }
  return out;
}

/** Identity fields that cannot change on a live link; [] when none differ. */
export function immutableDifferences(want: DesiredLink, have: KernelLink): string[] {
  const d: string[] = [];
  const cmp = (name: string, a: unknown, b: unknown) => {
    if (a !== b) d.push(`${name} ${b ?? '-'} → ${a ?? '-'}`);
  };
  cmp('id', want.id, have.id);
  cmp('port', want.port, have.port);
  cmp('local', want.local, have.local);
  cmp('remote', want.remote, have.remote);
  cmp('dev', want.dev, have.dev);
  return d;
}

export interface LinkPlan {
  /** ip batch lines, in order: stale deletes, then each link's changes. */
  ops: BatchOp[];
  /** Links (re)created by this plan: their FDB starts from the kernel's defaults. */
  fresh: Set<string>;
  /** Desired links that cannot be applied because a link weft does not own has the name. */
  conflicts: string[];
}

function createOps(l: DesiredLink): BatchOp[] {
  let add = `link add ${l.name} mtu ${l.mtu} type vxlan id ${l.id} dstport ${l.port} local ${l.local}`;
  if (l.remote !== undefined) add += ` remote ${l.remote}`;
  if (l.dev !== undefined) add += ` dev ${l.dev}`;
  return [
    { line: add, what: `link add ${l.name} (vxlan id ${l.id} port ${l.port} local ${l.local}${l.remote ? ` remote ${l.remote}` : ''})` },
    ...l.addresses.map((a) => addrAdd(l.name, a)),
    { line: `link set dev ${l.name} up`, what: `link set ${l.name} up` },
  ];
}

function addrAdd(name: string, a: string): BatchOp {
  return { line: `addr add ${a} dev ${name}${a.includes(':') ? ' nodad' : ''}`, what: `addr add ${a} dev ${name}` };
}

/**
 * Plan link changes. `current` holds every link with the owned prefix; only vxlan ones are weft's
 * (a TUN or veth that happens to share the prefix is somebody else's and is never touched).
 */
export function diffLinks(desired: readonly DesiredLink[], current: readonly KernelLink[]): LinkPlan {
  const plan: LinkPlan = { ops: [], fresh: new Set(), conflicts: [] };
  const have = new Map(current.map((l) => [l.name, l]));
  const wanted = new Set(desired.map((l) => l.name));
  // Stale links go first: a renamed link may reuse the VNI/port/local of the one it replaces.
  for (const l of current) {
    if (l.kind === 'vxlan' && !wanted.has(l.name)) plan.ops.push({ line: `link del dev ${l.name}`, what: `link del ${l.name}` });
  }
  for (const want of desired) {
    const cur = have.get(want.name);
    if (!cur) {
      plan.ops.push(...createOps(want));
      plan.fresh.add(want.name);
      continue;
    }
    if (cur.kind !== 'vxlan') {
      plan.conflicts.push(`link ${want.name}: a ${cur.kind} link weft does not own has this name; left alone`);
      continue;
    }
    const identity = immutableDifferences(want, cur);
    if (identity.length) {
      plan.ops.push({ line: `link del dev ${want.name}`, what: `link del ${want.name} (recreate: ${identity.join(', ')})` });
      plan.ops.push(...createOps(want));
      plan.fresh.add(want.name);
      continue;
    }
    if (cur.mtu !== want.mtu) plan.ops.push({ line: `link set dev ${want.name} mtu ${want.mtu}`, what: `link set ${want.name} mtu ${cur.mtu} → ${want.mtu}` });
    const haveAddrs = new Set(cur.addresses);
    const wantAddrs = new Set(want.addresses);
    for (const a of cur.addresses) if (!wantAddrs.has(a)) plan.ops.push({ line: `addr del ${a} dev ${want.name}`, what: `addr del ${a} dev ${want.name}` });
    for (const a of want.addresses) if (!haveAddrs.has(a)) plan.ops.push(addrAdd(want.name, a));
    if (!cur.up) plan.ops.push({ line: `link set dev ${want.name} up`, what: `link set ${want.name} up` });
  }
  return plan;
}

export function linkToSpec(l: KernelLink, fdb: readonly string[]): VxlanLink {
  const s: VxlanLink = { kind: 'vxlan', name: l.name, id: l.id ?? 0, port: l.port ?? 0, local: l.local ?? '', mtu: l.mtu, addresses: [...l.addresses] };
  if (l.remote !== undefined) s.remote = l.remote;
  if (l.dev !== undefined) s.dev = l.dev;
  const flood = fdb.filter((a) => a !== l.remote);
  if (flood.length) s.fdb = [...flood];
  return s;
}
