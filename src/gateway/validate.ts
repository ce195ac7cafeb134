// What the planners refuse. A plan built from colliding inputs (two peerings with one mark, a remap
// overlapping the local pod CIDR, an interface name the kernel cuts short...) would program a
// kernel state that misroutes silently; instead the planners throw a PlanError listing every
// reason, in sentences a person can act on, and the caller keeps the last good state.
import net from 'node:net';
import type { ClusterNetworkSpec, FabricPeerSpec } from '../control/resources.ts';
import { contains, formatCidr, overlaps, parseCidr, containsAddress, parseIPv4 } from '../ipam/cidr.ts';
import { DEFAULT_POOLS } from '../ipam/allocator.ts';
import type { Cidr } from '../ipam/cidr.ts';
import { parseBase64Key } from '../wireguard/keys.ts';
import { FABRIC_LINK, FABRIC_TABLE, overlayImageClashes, nodeCIDROf, overlayIP } from '../fabric/overlay.ts';
import { endpointFamily, MIN_MTU, vxlanMtu, wireguardMtu } from './mtu.ts';
import { nftTableName } from './nat.ts';

/** Rule priorities on the gateway: `fwmark M lookup T` at 1000+slot, `iif <tunnel> lookup 1800` at 1500+slot. */
export const PEER_RULE_BASE = 1000;
export const TUNNEL_RULE_BASE = 1500;
/** Keeps the two priority ranges apart. */
export const MAX_PEERS = TUNNEL_RULE_BASE - PEER_RULE_BASE;
/** Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL). */
export const MAX_IFNAME = 15;
/** Tables the kernel reserves: unspec, default, main, local. */
const RESERVED_TABLES = new Set([0, 253, 254, 255]);

export class PlanError extends Error {
  readonly reasons: string[];

  constructor(what: string, reasons: string[]) {
    super(`${what}: ${reasons.join('; ')}`);
    this.name = 'PlanError';
    this.reasons = reasons;
  }
}

type Labelled = { cidr: Cidr; what: string };

/** Parse a CIDR, or record why not. */
function cidrOr(reasons: string[], text: unknown, what: string): Cidr | undefined {
  try {
    return parseCidr(text, what);
  } catch (err) {
    reasons.push((err as Error).message);
    return undefined;
  }
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** The local ranges a stand-in must never overlap (what could be parsed of them). */
function localRanges(cluster: ClusterNetworkSpec, externalCIDR: string): Labelled[] {
  const out: Labelled[] = [];
  const add = (text: unknown, what: string) => {
    try {
      out.push({ cidr: parseCidr(text), what: `${what} ${String(text)}` });
    } catch {
      /* reported by validateCluster */
    }
  };
  add(cluster.podCIDR, 'the local pod CIDR');
  add(cluster.serviceCIDR, 'the local service CIDR');
  for (const n of Array.isArray(cluster.nodeCIDRs) ? cluster.nodeCIDRs : []) add(n, 'the local node CIDR');
  add(cluster.fabricCIDR, 'the fabric CIDR');
  add(externalCIDR, 'our external CIDR');
  return out;
}

/** The node CIDR our external CIDR stands for: the first one (prefix lengths must match). */
export function externalNodeCIDR(cluster: ClusterNetworkSpec): string {
  return cluster.nodeCIDRs[0]!;
}

/** Problems with the cluster's own network description and our external CIDR. */
export function validateCluster(cluster: ClusterNetworkSpec, externalCIDR: string): string[] {
  const reasons: string[] = [];
  if (!cluster || typeof cluster !== 'object') return ['the cluster network has no spec'];
  if (typeof cluster.clusterId !== 'string' || cluster.clusterId === '') reasons.push('clusterId is empty');
  const named: Labelled[] = [];
  const pod = cidrOr(reasons, cluster.podCIDR, 'podCIDR');
  if (pod) named.push({ cidr: pod, what: `podCIDR ${formatCidr(pod)}` });
  const svc = cidrOr(reasons, cluster.serviceCIDR, 'serviceCIDR');
  if (svc) named.push({ cidr: svc, what: `serviceCIDR ${formatCidr(svc)}` });
  const nodes: Cidr[] = [];
  if (!Array.isArray(cluster.nodeCIDRs) || cluster.nodeCIDRs.length === 0) reasons.push('nodeCIDRs is empty');
  else {
    cluster.nodeCIDRs.forEach((c, i) => {
      const n = cidrOr(reasons, c, `nodeCIDRs[${i}]`);
      if (n) {
        nodes.push(n);
        named.push({ cidr: n, what: `node CIDR ${formatCidr(n)}` });
      }
    });
  }
  const fabric = cidrOr(reasons, cluster.fabricCIDR, 'fabricCIDR');
  if (fabric) named.push({ cidr: fabric, what: `fabricCIDR ${formatCidr(fabric)}` });
  const ext = cidrOr(reasons, externalCIDR, 'our external CIDR');
  if (ext) named.push({ cidr: ext, what: `our external CIDR ${formatCidr(ext)}` });
  for (let i = 0; i < named.length; i++) {
    for (let j = i + 1; j < named.length; j++) {
      if (overlaps(named[i]!.cidr, named[j]!.cidr)) reasons.push(`${named[i]!.what} overlaps ${named[j]!.what}`);
    }
  }
  if (fabric && nodes.length === cluster.nodeCIDRs.length) {
    const small = nodes.filter((n) => n.bits < fabric.bits);
    for (const n of small) {
      reasons.push(`fabricCIDR ${formatCidr(fabric)} is smaller than node CIDR ${formatCidr(n)}: nodes would share overlay addresses`);
    }
    if (small.length === 0) reasons.push(...overlayImageClashes(cluster.nodeCIDRs, cluster.fabricCIDR));
  }
  if (ext && nodes[0] && ext.bits !== nodes[0].bits) {
    reasons.push(
      `our external CIDR ${formatCidr(ext)} and node CIDR ${formatCidr(nodes[0])} differ in size: prefix NAT maps one onto the other, host bits kept`,
    );
  }
  if (typeof cluster.gatewayNodeIP !== 'string' || net.isIPv4(cluster.gatewayNodeIP) === false) {
    reasons.push(`gatewayNodeIP ${JSON.stringify(cluster.gatewayNodeIP)} is not an IPv4 address`);
  } else if (nodes.length > 0 && !nodes.some((n) => containsAddress(n, parseIPv4(cluster.gatewayNodeIP)))) {
    reasons.push(`gatewayNodeIP ${cluster.gatewayNodeIP} is in none of the node CIDRs`);
  }
  if (!isInt(cluster.vxlanId, 0, 0xffffff)) reasons.push(`vxlanId ${String(cluster.vxlanId)} is not a VNI (0-16777215)`);
  if (!isInt(cluster.vxlanPort, 1, 65535)) reasons.push(`vxlanPort ${String(cluster.vxlanPort)} is not a UDP port`);
  try {
    vxlanMtu(cluster.underlayMtu);
  } catch (err) {
    reasons.push((err as Error).message);
  }
  try {
    wireguardMtu(cluster.wanMtu, 6);
  } catch (err) {
    reasons.push(`${(err as Error).message} (must fit an IPv6 WAN, at least ${MIN_MTU})`);
  }
  return reasons;
}

/**
 * Problems with one peering, on its own and against `others` (the peerings already accepted; the
 * peer itself may be among them and is skipped). Each reason names the peering.
 */
export function validatePeer(
  peer: FabricPeerSpec,
  cluster: ClusterNetworkSpec,
  externalCIDR: string,
  others: readonly FabricPeerSpec[] = [],
): string[] {
  if (!peer || typeof peer !== 'object') return ['a peering has no spec'];
  const id = typeof peer.remoteClusterId === 'string' && peer.remoteClusterId !== '' ? peer.remoteClusterId : undefined;
  const reasons: string[] = [];
  const say = (text: string) => reasons.push(`peering ${JSON.stringify(id ?? '?')}: ${text}`);
  if (id === undefined) say('remoteClusterId is empty');

  const parse = (text: unknown, what: string): Cidr | undefined => {
    const local: string[] = [];
    const c = cidrOr(local, text, what);
    local.forEach(say);
    return c;
  };
  const rPod = parse(peer.remotePodCIDR, 'remotePodCIDR');
  const rExt = parse(peer.remoteExternalCIDR, 'remoteExternalCIDR');
  const mPod = parse(peer.podCIDRRemap, 'podCIDRRemap');
  const mExt = parse(peer.externalCIDRRemap, 'externalCIDRRemap');
  if (rPod && mPod && rPod.bits !== mPod.bits) {
    say(`podCIDRRemap ${formatCidr(mPod)} and remotePodCIDR ${formatCidr(rPod)} differ in size (prefix NAT keeps host bits)`);
  }
  if (rExt && mExt && rExt.bits !== mExt.bits) {
    say(`externalCIDRRemap ${formatCidr(mExt)} and remoteExternalCIDR ${formatCidr(rExt)} differ in size (prefix NAT keeps host bits)`);
  }
  if (rPod && rExt && overlaps(rPod, rExt)) say(`remotePodCIDR ${formatCidr(rPod)} overlaps remoteExternalCIDR ${formatCidr(rExt)}`);
  if (mPod && mExt && overlaps(mPod, mExt)) say(`podCIDRRemap ${formatCidr(mPod)} overlaps externalCIDRRemap ${formatCidr(mExt)}`);
  for (const local of localRanges(cluster, externalCIDR)) {
    if (mPod && overlaps(mPod, local.cidr)) say(`podCIDRRemap ${formatCidr(mPod)} overlaps ${local.what}`);
    if (mExt && overlaps(mExt, local.cidr)) say(`externalCIDRRemap ${formatCidr(mExt)} overlaps ${local.what}`);
  }
  // The controller's IPAM only places remote ranges in the pools; the data plane checks it again,
  // so that no FabricPeer (written by whoever can write one) routes anything outside them.
  const pools = (cluster.remapPools ?? DEFAULT_POOLS).flatMap((p) => {
    try {
      return [parseCidr(p)];
    } catch {
      return [];
    }
  });
  for (const [remap, what] of [[mPod, 'podCIDRRemap'], [mExt, 'externalCIDRRemap']] as const) {
    if (remap && !pools.some((pool) => contains(pool, remap))) say(`${what} ${formatCidr(remap)} lies outside the remap pools (${pools.map(formatCidr).join(', ')})`);
  }

  const ifname = peer.interfaceName;
  if (typeof ifname !== 'string' || ifname === '') say('interfaceName is empty');
  else {
    if (Buffer.byteLength(ifname) > MAX_IFNAME) say(`interfaceName ${JSON.stringify(ifname)} is longer than ${MAX_IFNAME} characters (the kernel limit)`);
    if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(ifname)) say(`interfaceName ${JSON.stringify(ifname)} may only hold letters, digits, "_" and "-" (a "." would make its sysctl keys ambiguous)`);
    if (ifname === FABRIC_LINK || ifname === 'lo') say(`interfaceName ${JSON.stringify(ifname)} is reserved`);
  }
  if (!isInt(peer.listenPort, 1, 65535)) say(`listenPort ${String(peer.listenPort)} is not a UDP port`);
  else if (peer.listenPort === cluster.vxlanPort) say(`listenPort ${peer.listenPort} is the fabric's VXLAN port`);
  if (!isInt(peer.slot, 0, 499)) say(`slot ${String(peer.slot)} is not in 0-499 (rule priorities 1000+slot and 1500+slot must not meet)`);
  if (!isInt(peer.mark, 1, 0xffffffff)) say(`mark ${String(peer.mark)} is not a non-zero 32-bit fwmark`);
  if (!isInt(peer.table, 1, 65535) || RESERVED_TABLES.has(peer.table) || peer.table === FABRIC_TABLE) {
    say(
      `table ${String(peer.table)} is not usable: it must be 1-65535 (it also numbers the peering's conntrack zone) ` +
        `and not 253-255 (kernel) or ${FABRIC_TABLE} (the fabric's own)`,
    );
  }
  const ep = peer.remoteEndpoint;
  if (!ep || typeof ep !== 'object') say('remoteEndpoint is missing');
  else {
    if (!isInt(ep.port, 0, 65535)) say(`remoteEndpoint.port ${String(ep.port)} is not a UDP port (0 = not known yet)`);
    else if (ep.port > 0 && (typeof ep.host !== 'string' || endpointFamily(ep.host) === undefined)) {
      say(`remoteEndpoint.host ${JSON.stringify(ep.host)} is not an IP address`);
    }
    if (isInt(cluster.wanMtu, 1, 65535)) {
      try {
        wireguardMtu(cluster.wanMtu, endpointFamily(ep.host));
      } catch (err) {
        say((err as Error).message);
      }
    }
  }
  if (typeof peer.remotePublicKey !== 'string' || !parseBase64Key(peer.remotePublicKey)) {
    say(`remotePublicKey ${JSON.stringify(peer.remotePublicKey)} is not a base64 WireGuard public key`);
  }

  for (const other of others) {
    if (!other || typeof other !== 'object' || other === peer) continue;
    const theirs = JSON.stringify(other.remoteClusterId);
    if (id !== undefined && other.remoteClusterId === id) say(`remoteClusterId is used by another peering too`);
    else if (id !== undefined && typeof other.remoteClusterId === 'string' && nftTableName(other.remoteClusterId) === nftTableName(id)) {
      say(`its nft table name ${nftTableName(id)} is the same as peering ${theirs}'s`);
    }
    if (other.interfaceName === peer.interfaceName) say(`interfaceName ${JSON.stringify(peer.interfaceName)} is used by peering ${theirs} too`);
    if (other.listenPort === peer.listenPort) say(`listenPort ${peer.listenPort} is used by peering ${theirs} too`);
    if (other.mark === peer.mark) say(`mark ${peer.mark} is used by peering ${theirs} too`);
    if (other.table === peer.table) say(`table ${peer.table} is used by peering ${theirs} too`);
    if (other.slot === peer.slot) say(`slot ${peer.slot} is used by peering ${theirs} too`);
    for (const [mine, mineWhat] of [
      [mPod, 'podCIDRRemap'],
      [mExt, 'externalCIDRRemap'],
    ] as const) {
      if (!mine) continue;
      for (const [text, theirWhat] of [
        [other.podCIDRRemap, 'podCIDRRemap'],
        [other.externalCIDRRemap, 'externalCIDRRemap'],
      ] as const) {
        let c: Cidr;
        try {
          c = parseCidr(text);
        } catch {
          continue;
        }
        if (overlaps(mine, c)) say(`${mineWhat} ${formatCidr(mine)} overlaps peering ${theirs}'s ${theirWhat} ${formatCidr(c)}`);
      }
    }
  }
  return reasons;
}

/**
 * The peerings a plan can serve, in order, and why the others cannot: a peering is refused when it
 * is invalid on its own or collides with one accepted before it (so one broken or hostile
 * FabricPeer costs only itself: the rest is still programmed, and revoked ones still removed).
 */
export function acceptPeers(peers: readonly FabricPeerSpec[], cluster: ClusterNetworkSpec, externalCIDR: string): { accepted: FabricPeerSpec[]; refused: string[] } {
  const accepted: FabricPeerSpec[] = [];
  const refused: string[] = [];
  for (const p of peers) {
    if (accepted.length >= MAX_PEERS) {
      refused.push(`peering ${JSON.stringify(p?.remoteClusterId ?? '?')}: more than ${MAX_PEERS} peerings do not fit the rule priority range`);
      continue;
    }
    const reasons = validatePeer(p, cluster, externalCIDR, accepted);
    if (reasons.length) refused.push(...reasons);
    else accepted.push(p);
  }
  return { accepted, refused };
}

/** Every peering checked on its own and each pair once. */
export function validatePeers(peers: readonly FabricPeerSpec[], cluster: ClusterNetworkSpec, externalCIDR: string): string[] {
  const reasons: string[] = [];
  if (peers.length > MAX_PEERS) reasons.push(`${peers.length} peerings: at most ${MAX_PEERS} fit the rule priority range`);
  peers.forEach((p, i) => reasons.push(...validatePeer(p, cluster, externalCIDR, peers.slice(0, i))));
  return reasons;
}

/** Problems with a host's node IP: IPv4, inside a node CIDR, with a valid overlay address. */
export function validateNodeIP(ip: unknown, cluster: ClusterNetworkSpec, what: string): string[] {
  if (typeof ip !== 'string' || net.isIPv4(ip) === false) return [`${what} ${JSON.stringify(ip)} is not an IPv4 address`];
  const nodeCIDR = nodeCIDROf(ip, cluster.nodeCIDRs);
  if (nodeCIDR === undefined) return [`${what} ${ip} is in none of the node CIDRs ${cluster.nodeCIDRs.join(', ')}`];
  try {
    overlayIP(ip, nodeCIDR, cluster.fabricCIDR);
  } catch (err) {
    return [`${what}: ${(err as Error).message}`];
  }
  return [];
}
