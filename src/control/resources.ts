// The resources weft's pieces exchange through a store (the embedded file store in the lab, the
// Kubernetes API in production). Controllers only write declarative resources; the gateway and the
// node agents reconcile the kernel toward them and report status.
//
//   ClusterNetwork  (one, "local")  what this cluster is: pod/service/node/fabric ranges, its own
//                                   external CIDR, its gateway's endpoint and public key (status).
//   Node, Pod                       the cluster's nodes (internal IP, pod CIDRs) and pods (node, IP).
//   Peering         (one per remote) what the remote announced (spec) and how the link is (status).
//   FabricPeer      (one per remote) the controller's decision for that peering, consumed by the
//                                   gateway and every node agent: remaps, tunnel interface, mark/table.

export const API_VERSION = 'weft.io/v1alpha1';

export interface ClusterNetworkSpec {
  clusterId: string;
  podCIDR: string;
  serviceCIDR: string;
  nodeCIDRs: string[];
  /** Addresses of the node↔gateway VXLAN overlay: a host's overlay IP keeps its node IP's host bits. */
  fabricCIDR: string;
  /** VXLAN network identifier and UDP port of the node↔gateway fabric. */
  vxlanId: number;
  vxlanPort: number;
  /** The gateway's address and port as seen by remote gateways (WAN side). */
  gatewayEndpoint: { host: string; port: number };
  /** The node (internal IP) that hosts the gateway. */
  gatewayNodeIP: string;
  /** MTU of the node network (underlay) and of the WAN path between gateways. */
  underlayMtu: number;
  wanMtu: number;
  /**
   * Where remote clusters' ranges are placed (and our external CIDR), tried in order; default
   * the private ranges and 100.64.0.0/10. A remote's range never routes outside them.
   */
  remapPools?: string[];
  /** The largest range a remote may announce, as a prefix length (default 12). */
  maxRemoteCIDRSize?: number;
}

export interface ClusterNetworkStatus {
  /** Allocated once by IPAM: the range that stands for this cluster's node network to remotes. */
  externalCIDR?: string;
  gatewayPublicKey?: string;
  /** The node of the active gateway replica (it follows the leader Lease); overrides the spec's. */
  gatewayNodeIP?: string;
  conditions?: Condition[];
}

export interface NodeSpec {
  internalIP: string;
  podCIDRs: string[];
}

export interface PodSpec {
  nodeName: string;
  podIP: string;
}

/** What the remote cluster told us: its real ranges and how to reach its gateway. */
export interface PeeringSpec {
  remoteClusterId: string;
  remotePodCIDR: string;
  remoteExternalCIDR: string;
  remoteNodeCIDRs: string[];
  /** Port 0 means "not known yet": the remote's controller has not allocated its tunnel port. */
  remoteEndpoint: { host: string; port: number };
  /** Base64 WireGuard public key of the remote gateway. */
  remotePublicKey: string;
  /** The remote gateway's node IP (in its node network): the end-to-end probe's target. */
  remoteGatewayNodeIP: string;
  /** Optional WireGuard preshared key for this tunnel, in a Secret both sides hold the same key in. */
  presharedKeySecretRef?: SecretKeyRef;
}

/** A key in a Secret of the weft namespace (the Secret's data values are base64). */
export interface SecretKeyRef {
  name: string;
  /** Defaults to "presharedKey". */
  key?: string;
}

/** A Secret as the stores hold it (Kubernetes: core/v1 Secret `data`). */
export interface SecretSpec {
  data: Record<string, string>;
}

export type PeeringPhase = 'Connecting' | 'Connected' | 'Error';

export interface PeeringStatus {
  phase: PeeringPhase;
  /** Machine-readable reason and human message when phase is Error (or why Connecting). */
  reason?: string;
  message?: string;
  /** The remote pod CIDR and external CIDR as seen locally (IPAM's choice). */
  podCIDRRemap?: string;
  externalCIDRRemap?: string;
  /** Where the remote must send this peering's tunnel packets; set by the gateway once the tunnel listens. */
  localEndpoint?: { host: string; port: number };
  latencyMs?: number;
  lastHandshake?: string;
  txBytes?: number;
  rxBytes?: number;
  /** When the gateway last wrote its view (on every change, and at least every 5 minutes). */
  lastHeartbeatTime?: string;
  conditions?: Condition[];
}

/** The controller's decision for one peering: everything the data plane needs, nothing more. */
export interface FabricPeerSpec {
  remoteClusterId: string;
  /** Remote's real ranges (inside the tunnel, after translation). */
  remotePodCIDR: string;
  remoteExternalCIDR: string;
  /** Local stand-ins (what local pods use as destination; what they see as source). */
  podCIDRRemap: string;
  externalCIDRRemap: string;
  /** WireGuard device of this peering on the gateway. */
  interfaceName: string;
  listenPort: number;
  remoteEndpoint: { host: string; port: number };
  remotePublicKey: string;
  /** Stable small number of this peering on the gateway (rule priorities derive from it). */
  slot: number;
  /** fwmark, routing table (also the conntrack zone) that keep this peering's traffic apart. */
  mark: number;
  table: number;
  /** Where the gateway's probe goes: the remote gateway's node IP as seen locally (external remap). */
  probeTarget: string;
  /** The gateway reads the key itself, so the secret never lands in a FabricPeer. */
  presharedKeySecretRef?: SecretKeyRef;
}

/** The controller's persistent IPAM decisions (the allocator's snapshot), one object "local". */
export interface IpamStateSpec {
  snapshot: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export const Kinds = {
  ClusterNetwork: 'ClusterNetwork',
  Node: 'Node',
  Pod: 'Pod',
  Peering: 'Peering',
  FabricPeer: 'FabricPeer',
  IpamState: 'IpamState',
  Secret: 'Secret',
} as const;

export const DEFAULT_PSK_KEY = 'presharedKey';

/** A resource of ours as the store returns it. */
export type { Resource } from '../store/types.ts';

/** The cluster as the data plane must see it now: the active gateway's node wins over the spec's. */
export function effectiveCluster(spec: ClusterNetworkSpec, status: ClusterNetworkStatus | undefined): ClusterNetworkSpec {
  return status?.gatewayNodeIP ? { ...spec, gatewayNodeIP: status.gatewayNodeIP } : spec;
}
