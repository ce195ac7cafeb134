// Shared inputs of the planner tests: cluster A's view of a three-cluster full mesh (A, B, C),
// every cluster on pod CIDR 10.0.0.0/16 and node CIDR 192.168.100.0/24.
import type { ClusterNetworkSpec, FabricPeerSpec, PeeringSpec } from '../../src/control/resources.ts';
import { generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';

export const KEY_B = 'mF0qMtqWrnKSzLbs1t8bY0cVHbP8ROgGqPf5d2b9hE0=';
export const KEY_C = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';

export function clusterA(): ClusterNetworkSpec {
  return {
    clusterId: 'a',
    podCIDR: '10.0.0.0/16',
    serviceCIDR: '10.96.0.0/12',
    nodeCIDRs: ['192.168.100.0/24'],
    fabricCIDR: '100.126.0.0/16',
    vxlanId: 4242,
    vxlanPort: 4789,
    gatewayEndpoint: { host: '203.0.113.1', port: 51820 },
    gatewayNodeIP: '192.168.100.254',
    underlayMtu: 1500,
    wanMtu: 1500,
  };
}

export const EXTERNAL_A = '10.200.0.0/24';

export function peerB(): FabricPeerSpec {
  return {
    remoteClusterId: 'b',
    remotePodCIDR: '10.0.0.0/16',
    remoteExternalCIDR: '10.201.0.0/24',
    podCIDRRemap: '10.70.0.0/16',
    externalCIDRRemap: '10.203.0.0/24',
    interfaceName: 'wg-b',
    listenPort: 51820,
    remoteEndpoint: { host: '203.0.113.2', port: 51820 },
    remotePublicKey: KEY_B,
    slot: 0,
    mark: 0x1000,
    table: 1900,
    probeTarget: '10.203.0.254',
  };
}

export function peerC(): FabricPeerSpec {
  return {
    remoteClusterId: 'cluster-c',
    remotePodCIDR: '10.0.0.0/16',
    remoteExternalCIDR: '10.202.0.0/24',
    podCIDRRemap: '10.71.0.0/16',
    externalCIDRRemap: '10.202.0.0/24',
    interfaceName: 'wg-c',
    listenPort: 51821,
    remoteEndpoint: { host: '2001:db8::3', port: 51820 },
    remotePublicKey: KEY_C,
    slot: 1,
    mark: 0x1001,
    table: 1901,
    probeTarget: '10.202.0.254',
  };
}

export function nodesA() {
  return [
    { name: 'gw', internalIP: '192.168.100.254', podCIDRs: ['10.0.254.0/24'] },
    { name: 'n1', internalIP: '192.168.100.11', podCIDRs: ['10.0.1.0/24'] },
    { name: 'n2', internalIP: '192.168.100.12', podCIDRs: ['10.0.2.0/24', 'fd00:10::/64'] },
  ];
}

export function podsA() {
  return [
    { name: 'p1', nodeName: 'n1', podIP: '10.0.1.5' },
    { name: 'p2', nodeName: 'n2', podIP: '10.0.2.7' },
    // Outside its node's podCIDR (IP borrowed from another block): needs a /32.
    { name: 'stray', nodeName: 'n2', podIP: '10.0.9.9' },
    // Host-network pod: its IP is the node's, never a route.
    { name: 'hostnet', nodeName: 'n1', podIP: '192.168.100.11' },
    // Not started yet.
    { name: 'pending', nodeName: 'n1', podIP: '' },
    // On the gateway's node: its own routes.
    { name: 'gwpod', nodeName: 'gw', podIP: '10.0.254.3' },
  ];
}

/** A fresh random WireGuard public key, base64. */
export function randomPublicKey(): string {
  return Buffer.from(publicKeyOf(generatePrivateKey())).toString('base64');
}

/** What a remote cluster on the same ranges announces (the controller tests' Peering spec). */
export function remotePeering(id: string, extra: Partial<PeeringSpec> = {}): PeeringSpec {
  return {
    remoteClusterId: id,
    remotePodCIDR: '10.0.0.0/16',
    remoteExternalCIDR: '10.1.0.0/24',
    remoteNodeCIDRs: ['192.168.100.0/24'],
    remoteEndpoint: { host: '203.0.113.9', port: 51820 },
    remotePublicKey: randomPublicKey(),
    remoteGatewayNodeIP: '192.168.100.254',
    ...extra,
  };
}
