// The lab's simulated pod networks: how a pod attaches to its node, in the two styles real CNIs use.
// weft must work with either without knowing which one a cluster runs.
//
//   bridge  (flannel/kubenet-like): the node has bridge cni0 holding the .1 of its pod block; each
//           pod's veth is a port of cni0; the pod has its block's prefix and default via .1.
//   routed  (Calico-like): the pod has a /32, `169.254.1.1 dev eth0 scope link` and a default via
//           169.254.1.1; the node's end of the veth has no address and answers ARP by proxy; the
//           node routes each pod's /32 to its veth and blackholes the rest of its block.
//
// Pure: returns `ip -batch` lines and sysctls; topology.ts places them in build stages.
import { formatIPv4, parseCidr } from '../ipam/cidr.ts';
import type { ClusterPlan, NodePlan } from './topology.ts';

export type PodNetworkStyle = 'bridge' | 'routed';
export const POD_NETWORK_STYLES: readonly PodNetworkStyle[] = ['bridge', 'routed'];

export const BRIDGE_NAME = 'cni0';

export interface PodNetworkSteps {
  /** Run in the node before anything is configured: create the pods' veths (far end in the pod). */
  nodeLinks: string[];
  /** Run in the node after the links exist. */
  nodeConfig: string[];
  nodeSysctl: Array<[string, string]>;
  /** Per pod namespace: its whole configuration. */
  pods: Map<string, string[]>;
}

export function podNetworkSteps(cluster: ClusterPlan, node: NodePlan): PodNetworkSteps {
  const mtu = cluster.podMtu;
  const nodeLinks = node.pods.map((p) => `link add ${p.hostInterface} mtu ${mtu} type veth peer name ${p.interface} mtu ${mtu} netns ${p.namespace}`);
  const nodeConfig: string[] = [];
  const nodeSysctl: Array<[string, string]> = [];
  const pods = new Map<string, string[]>();
  const bits = parseCidr(node.podCIDR).bits;
  switch (cluster.style) {
    case 'bridge': {
      const gw = gatewayOf(node.podCIDR);
      nodeConfig.push(`link add ${BRIDGE_NAME} type bridge`, `link set ${BRIDGE_NAME} mtu ${mtu}`, `addr add ${gw}/${bits} dev ${BRIDGE_NAME}`);
      for (const p of node.pods) nodeConfig.push(`link set ${p.hostInterface} master ${BRIDGE_NAME}`, `link set ${p.hostInterface} up`);
      nodeConfig.push(`link set ${BRIDGE_NAME} up`);
      for (const p of node.pods) {
        pods.set(p.namespace, ['link set lo up', `addr add ${p.cidr} dev ${p.interface}`, `link set ${p.interface} up`, `route add default via ${p.gateway} dev ${p.interface}`]);
      }
      break;
    }
    case 'routed': {
      for (const p of node.pods) {
        nodeConfig.push(`link set ${p.hostInterface} up`, `route add ${p.ip}/32 dev ${p.hostInterface} scope link`);
        nodeSysctl.push([`net.ipv4.conf.${p.hostInterface}.proxy_arp`, '1'], [`net.ipv4.neigh.${p.hostInterface}.proxy_delay`, '0']);
        pods.set(p.namespace, [
          'link set lo up',
          `addr add ${p.cidr} dev ${p.interface}`,
          `link set ${p.interface} up`,
          `route add ${p.gateway} dev ${p.interface} scope link`,
          `route add default via ${p.gateway} dev ${p.interface}`,
        ]);
      }
      // Like Calico's per-block blackhole: addresses of the block that no pod holds go nowhere.
      nodeConfig.push(`route add blackhole ${node.podCIDR}`);
      break;
    }
  }
  return { nodeLinks, nodeConfig, nodeSysctl, pods };
}

/** The bridge's address: host 1 of the node's pod block. */
export function gatewayOf(cidr: string): string {
  return formatIPv4(parseCidr(cidr).start + 1);
}
