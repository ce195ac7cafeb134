// The gateway's desired state: kernel objects (VXLAN fabric, routes, rules, one nft table per
// peering, sysctls) and one WireGuard device per peering. Pure: same inputs, in any order, give a
// byte-identical plan.
//
//   link   weft-vx                 VXLAN without a fixed remote: every other node's IP is an
//                                  all-zero-MAC (flood) FDB entry
//   main   <node podCIDR>          via that node's overlay address (the gateway's node: nothing);
//          <pod>/32                only for a pod whose IP the podCIDR routes would send to
//                                  another node (or nowhere)
//          <remap> dev <tunnel>    src <gateway node IP>: the gateway's own traffic to a remap
//                                  (the probe, replies of its own sockets) finds a route before
//                                  the output hooks translate and mark it; forwarded traffic is
//                                  translated before routing and never uses these
//   table  <peer.table>            default dev <tunnel>
//   rule   1000+i                  fwmark <peer.mark> lookup <peer.table>
//   table  1800                    <node IP>/32 via its overlay address: what arrives from a
//   rule   1500+i                  tunnel for a node's own address (our external CIDR translated,
//                                  or the answer to a node's request) goes back over the fabric,
//                                  the way the node sent it, not over the underlay (the node's
//                                  strict reverse-path check would drop it there)
//   nft    weft_<remote>           see nat.ts
//   sysctl                         forwarding; reverse-path checks off (all, default, weft-vx,
//                                  each tunnel): translated sources fail strict checks, and two
//                                  peers share the local pod CIDR as real source
import type { ClusterNetworkSpec, FabricPeerSpec } from '../control/resources.ts';
import type { KernelState, NftTable, RouteSpec, RuleSpec } from '../kernel/types.ts';
import { contains, containsAddress, formatCidr, parseCidr, parseIPv4 } from '../ipam/cidr.ts';
import type { Cidr } from '../ipam/cidr.ts';
import { canonicalState, comparePeers, sortAddresses } from '../fabric/canonical.ts';
import { FABRIC_LINK, FABRIC_TABLE, overlayImage, overlayInterfaceAddress, overlayOf } from '../fabric/overlay.ts';
import { endpointFamily, vxlanMtu, wireguardMtu } from './mtu.ts';
import { peerNftTable } from './nat.ts';
import {
  externalNodeCIDR,
  PEER_RULE_BASE,
  PlanError,
  TUNNEL_RULE_BASE,
  validateCluster,
  validateNodeIP,
  validatePeers,
} from './validate.ts';

export { validatePeer, validatePeers, validateCluster, PlanError } from './validate.ts';
export { probeTarget, probeSource } from './probe.ts';

export const PERSISTENT_KEEPALIVE = 25;

export interface GatewayNodeInput {
  name: string;
  internalIP: string;
  podCIDRs: readonly string[];
}

export interface GatewayPodInput {
  name: string;
  nodeName: string;
  podIP: string;
}

export interface GatewayPlanInput {
  cluster: ClusterNetworkSpec;
  /** Our external CIDR (ClusterNetworkStatus.externalCIDR). */
  externalCIDR: string;
  nodes: readonly GatewayNodeInput[];
  pods: readonly GatewayPodInput[];
  peers: readonly FabricPeerSpec[];
  /** The gateway node's interface on the node network (the VXLAN's underlay). */
  underlayDev: string;
}

export interface WireguardPlan {
  interfaceName: string;
  listenPort: number;
  mtu: number;
  peer: {
    publicKey: string;
    /** As announced; port 0 means not known yet (leave the peer's endpoint unset). */
    endpoint: { host: string; port: number };
    /** The remote's real pod CIDR and real external CIDR. */
    allowedIPs: string[];
    persistentKeepalive: typeof PERSISTENT_KEEPALIVE;
  };
}

export interface GatewayPlan {
  kernel: KernelState;
  /** One device per peering, in the peerings' stable order (index i of the rules). */
  wireguard: WireguardPlan[];
}

interface Claim {
  cidr: Cidr;
  node: string;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Routes from the gateway to local pods: podCIDRs per node, /32 only where those would misroute. */
function podRoutes(input: GatewayPlanInput, overlays: Map<string, string>, reasons: string[]): RouteSpec[] {
  const { cluster } = input;
  const clusterPods = parseCidr(cluster.podCIDR);
  const gatewayNodes = new Set(input.nodes.filter((n) => n.internalIP === cluster.gatewayNodeIP).map((n) => n.name));
  const nodes = [...input.nodes].sort((a, b) => cmp(a.name, b.name));
  const claims: Claim[] = [];
  const routes: RouteSpec[] = [];
  for (const node of nodes) {
    const cidrs = Array.isArray(node.podCIDRs) ? [...node.podCIDRs] : [];
    for (const text of cidrs.sort()) {
      if (typeof text === 'string' && text.includes(':')) continue; // IPv6 half of a dual-stack node
      let cidr: Cidr;
      try {
        cidr = parseCidr(text, `node ${JSON.stringify(node.name)} podCIDR`);
      } catch (err) {
        reasons.push((err as Error).message);
        continue;
      }
      // Only the cluster's pod CIDR is reachable through the remap; anything else is not ours to route.
      if (!contains(clusterPods, cidr)) continue;
      if (claims.some((c) => c.cidr.start === cidr.start && c.cidr.bits === cidr.bits)) continue; // first node by name wins
      claims.push({ cidr, node: node.name });
      if (gatewayNodes.has(node.name)) continue; // the gateway's own pods: its own routes
      routes.push({ table: 'main', dst: formatCidr(cidr), via: overlays.get(node.name)!, dev: FABRIC_LINK, onlink: true });
    }
  }
  const hosts = new Set<string>();
  const pods = [...input.pods].sort((a, b) => cmp(a.name, b.name) || cmp(a.nodeName, b.nodeName) || cmp(a.podIP, b.podIP));
  for (const pod of pods) {
    if (!pod || typeof pod.podIP !== 'string' || pod.podIP === '') continue; // not scheduled / no IP yet
    if (gatewayNodes.has(pod.nodeName) || !overlays.has(pod.nodeName)) continue; // local, or on a node we do not know
    let ip: number;
    try {
      ip = parseIPv4(pod.podIP);
    } catch {
      continue; // IPv6 or garbage: the fabric is IPv4
    }
    if (!containsAddress(clusterPods, ip)) continue; // host-network pod, or outside what remotes can reach
    let best: Claim | undefined;
    for (const c of claims) if (containsAddress(c.cidr, ip) && (!best || c.cidr.bits > best.cidr.bits)) best = c;
    if (best?.node === pod.nodeName) continue;
    const dst = `${pod.podIP}/32`;
    if (hosts.has(dst)) continue;
    hosts.add(dst);
    routes.push({ table: 'main', dst, via: overlays.get(pod.nodeName)!, dev: FABRIC_LINK, onlink: true });
  }
  return routes;
}

/** Desired state of the gateway. Throws PlanError listing every reason when inputs collide. */
export function planGateway(input: GatewayPlanInput): GatewayPlan {
  const { cluster, externalCIDR, underlayDev } = input;
  const peers = [...input.peers].sort(comparePeers);
  const reasons = validateCluster(cluster, externalCIDR);
  if (reasons.length > 0) throw new PlanError('cannot plan the gateway', reasons);

  if (typeof underlayDev !== 'string' || underlayDev === '') reasons.push('the gateway has no underlay device');
  else if (underlayDev === FABRIC_LINK || peers.some((p) => p.interfaceName === underlayDev)) {
    reasons.push(`the underlay device ${underlayDev} is also one of weft's own interfaces`);
  }
  reasons.push(...validatePeers(peers, cluster, externalCIDR));

  // Every node except the gateway's: its overlay address (the VXLAN flood list and next hops).
  const overlays = new Map<string, string>();
  const seenIPs = new Map<string, string>();
  for (const node of [...input.nodes].sort((a, b) => cmp(a.name, b.name))) {
    if (!node || typeof node.name !== 'string' || node.name === '') {
      reasons.push('a node has no name');
      continue;
    }
    if (overlays.has(node.name) || seenIPs.get(node.internalIP) === node.name) {
      reasons.push(`node ${JSON.stringify(node.name)} is listed twice`);
      continue;
    }
    const bad = validateNodeIP(node.internalIP, cluster, `node ${JSON.stringify(node.name)} internalIP`);
    if (bad.length > 0) {
      reasons.push(...bad);
      continue;
    }
    const other = seenIPs.get(node.internalIP);
    if (other !== undefined) {
      reasons.push(`nodes ${JSON.stringify(other)} and ${JSON.stringify(node.name)} have the same internalIP ${node.internalIP}`);
      continue;
    }
    seenIPs.set(node.internalIP, node.name);
    overlays.set(node.name, overlayOf(node.internalIP, cluster.nodeCIDRs, cluster.fabricCIDR));
  }
  const routes = podRoutes(input, overlays, reasons);
  if (reasons.length > 0) throw new PlanError('cannot plan the gateway', reasons);

  const gatewayIP = cluster.gatewayNodeIP;
  const otherNodes = [...seenIPs.entries()].filter(([ip]) => ip !== gatewayIP);
  for (const [ip, name] of otherNodes) {
    routes.push({ table: FABRIC_TABLE, dst: `${ip}/32`, via: overlays.get(name)!, dev: FABRIC_LINK, onlink: true });
  }

  const nodeCIDR = externalNodeCIDR(cluster);
  const nodeOverlayImage = overlayImage(nodeCIDR, cluster.fabricCIDR);
  const rules: RuleSpec[] = [];
  const nftTables: NftTable[] = [];
  const wireguard: WireguardPlan[] = [];
  const sysctls: Record<string, string> = {
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.conf.default.rp_filter': '0',
    [`net.ipv4.conf.${FABRIC_LINK}.rp_filter`]: '0',
  };
  for (const peer of peers) {
    const tun = peer.interfaceName;
    routes.push({ table: peer.table, dst: '0.0.0.0/0', dev: tun });
    routes.push({ table: 'main', dst: peer.podCIDRRemap, dev: tun, src: gatewayIP });
    routes.push({ table: 'main', dst: peer.externalCIDRRemap, dev: tun, src: gatewayIP });
    // Priorities follow the controller's stable slot, so adding a peering never renumbers another's rules.
    rules.push({ priority: PEER_RULE_BASE + peer.slot, table: peer.table, fwmark: peer.mark });
    rules.push({ priority: TUNNEL_RULE_BASE + peer.slot, table: FABRIC_TABLE, iif: tun });
    nftTables.push(peerNftTable({ peer, zone: peer.table, externalCIDR, nodeCIDR, nodeOverlayImage }));
    sysctls[`net.ipv4.conf.${tun}.rp_filter`] = '0';
    wireguard.push({
      interfaceName: tun,
      listenPort: peer.listenPort,
      mtu: wireguardMtu(cluster.wanMtu, endpointFamily(peer.remoteEndpoint.host)),
      peer: {
        publicKey: peer.remotePublicKey,
        endpoint: { host: peer.remoteEndpoint.host, port: peer.remoteEndpoint.port },
        allowedIPs: [peer.remotePodCIDR, peer.remoteExternalCIDR],
        persistentKeepalive: PERSISTENT_KEEPALIVE,
      },
    });
  }

  const kernel = canonicalState({
    links: [
      {
        kind: 'vxlan',
        name: FABRIC_LINK,
        id: cluster.vxlanId,
        port: cluster.vxlanPort,
        local: gatewayIP,
        dev: underlayDev,
        mtu: vxlanMtu(cluster.underlayMtu),
        addresses: [overlayInterfaceAddress(gatewayIP, cluster.nodeCIDRs, cluster.fabricCIDR)],
        fdb: sortAddresses(otherNodes.map(([ip]) => ip)),
      },
    ],
    routes,
    rules,
    nftTables,
    sysctls,
  });
  return { kernel, wireguard };
}
