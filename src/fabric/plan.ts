// The node agent's desired kernel state (every node except the one hosting the gateway):
//
//   link   weft-vx   VXLAN from this node to the gateway node (point to point), overlay address
//   table  1800      per peering: its pod remap and external remap via the gateway's overlay
//                    address, with the end-to-end MTU and this node's IP as source
//   rule   1800      `lookup 1800` for everything; the table holds only weft's routes, so other
//                    destinations fall through to main
//   sysctl           forwarding on; loose reverse-path check on weft-vx (packets from the gateway
//                    carry remapped sources)
//
// Traffic from the gateway to local pods (and to this node) needs nothing: the node's own routes
// deliver it, whatever the CNI is.
//
// The route source (`src <node IP>`) matters for the node's own (host-network) traffic: without
// it the kernel picks the weft-vx address (100.126.x.y), which the gateway does not translate and
// the remote's WireGuard drops (not in its allowed IPs). With it, the gateway translates the node
// IP into our external CIDR, which the remote allows.
import type { ClusterNetworkSpec, FabricPeerSpec } from '../control/resources.ts';
import type { KernelState, RouteSpec } from '../kernel/types.ts';
import { endpointFamily, pathMtu, vxlanMtu } from '../gateway/mtu.ts';
import { PlanError, validateCluster, validateNodeIP, validatePeers } from '../gateway/validate.ts';
import { canonicalState, comparePeers } from './canonical.ts';
import { AGENT_RULE_PRIORITY, FABRIC_LINK, FABRIC_TABLE, overlayInterfaceAddress, overlayOf } from './overlay.ts';

export interface AgentNode {
  name: string;
  internalIP: string;
  /** The interface that carries `internalIP` (the VXLAN's underlay). */
  underlayDev: string;
}

export interface AgentPlanInput {
  cluster: ClusterNetworkSpec;
  /** Our external CIDR (ClusterNetworkStatus.externalCIDR). */
  externalCIDR: string;
  node: AgentNode;
  peers: readonly FabricPeerSpec[];
}

/** Desired kernel state of a node agent. Throws PlanError listing every reason when inputs collide. */
export function planAgent(input: AgentPlanInput): KernelState {
  const { cluster, externalCIDR, node } = input;
  const peers = [...input.peers].sort(comparePeers);
  const reasons = validateCluster(cluster, externalCIDR);
  if (reasons.length === 0) {
    reasons.push(...validateNodeIP(node?.internalIP, cluster, `node ${JSON.stringify(node?.name)} internalIP`));
    if (node?.internalIP === cluster.gatewayNodeIP) {
      reasons.push(`node ${JSON.stringify(node.name)} hosts the gateway: the gateway's plan programs it, not the agent's`);
    }
    if (typeof node?.underlayDev !== 'string' || node.underlayDev === '') reasons.push(`node ${JSON.stringify(node?.name)} has no underlay device`);
    else if (node.underlayDev === FABRIC_LINK) reasons.push(`the underlay device cannot be ${FABRIC_LINK} itself`);
    reasons.push(...validatePeers(peers, cluster, externalCIDR));
  }
  if (reasons.length > 0) throw new PlanError(`cannot plan node ${JSON.stringify(node?.name)}`, reasons);

  const gatewayOverlay = overlayOf(cluster.gatewayNodeIP, cluster.nodeCIDRs, cluster.fabricCIDR);
  const routes: RouteSpec[] = [];
  for (const peer of peers) {
    const mtu = pathMtu(cluster, endpointFamily(peer.remoteEndpoint.host));
    for (const dst of [peer.podCIDRRemap, peer.externalCIDRRemap]) {
      routes.push({ table: FABRIC_TABLE, dst, via: gatewayOverlay, dev: FABRIC_LINK, onlink: true, mtu, src: node.internalIP });
    }
  }
  return canonicalState({
    links: [
      {
        kind: 'vxlan',
        name: FABRIC_LINK,
        id: cluster.vxlanId,
        port: cluster.vxlanPort,
        local: node.internalIP,
        remote: cluster.gatewayNodeIP,
        dev: node.underlayDev,
        mtu: vxlanMtu(cluster.underlayMtu),
        addresses: [overlayInterfaceAddress(node.internalIP, cluster.nodeCIDRs, cluster.fabricCIDR)],
      },
    ],
    routes,
    rules: [{ priority: AGENT_RULE_PRIORITY, table: FABRIC_TABLE }],
    nftTables: [],
    sysctls: {
      'net.ipv4.ip_forward': '1',
      [`net.ipv4.conf.${FABRIC_LINK}.rp_filter`]: '2',
    },
  });
}
