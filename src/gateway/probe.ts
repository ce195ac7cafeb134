// Where the gateway's end-to-end probe goes and where it comes from. The target is the remote
// gateway's node IP as seen from here: the remote exposes its node network as its external CIDR
// (prefix NAT, host bits kept), and we see that external CIDR as our stand-in externalCIDRRemap,
// so the node IP keeps its host bits through both translations:
//
//   192.168.100.254 (B's node CIDR 192.168.100.0/24) → 10.201.0.254 (B's external 10.201.0.0/24)
//                                                    → 10.203.0.254 (A's stand-in 10.203.0.0/24)
//
// The source is our own gateway node IP; our gateway's postrouting rule translates it into our
// external CIDR, which the remote's WireGuard allows. The probe crosses the whole path: output
// NAT and marking here, the tunnel, the remote's NAT, and back.
import type { ClusterNetworkSpec, FabricPeerSpec } from '../control/resources.ts';
import { translate } from '../ipam/translate.ts';

/**
 * The probe target for a peering: `remoteGatewayNodeIP` (inside `remoteNodeCIDR`) translated into
 * `peer.externalCIDRRemap`. Throws IpamError when the address is outside the node CIDR or the
 * node CIDR, the remote external CIDR and the remap differ in size.
 */
export function probeTarget(
  peer: Pick<FabricPeerSpec, 'remoteExternalCIDR' | 'externalCIDRRemap'>,
  remoteGatewayNodeIP: string,
  remoteNodeCIDR: string,
): string {
  const remoteExternal = translate(remoteGatewayNodeIP, remoteNodeCIDR, peer.remoteExternalCIDR);
  return translate(remoteExternal, peer.remoteExternalCIDR, peer.externalCIDRRemap);
}

/** The gateway's probe source: its own node IP (translated into our external CIDR on the way out). */
export function probeSource(cluster: Pick<ClusterNetworkSpec, 'gatewayNodeIP'>): string {
  return cluster.gatewayNodeIP;
}
