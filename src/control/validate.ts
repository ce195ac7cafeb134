// Checks on what a remote announced, before anything is allocated or programmed. Each problem is
// a sentence a person can act on; the controller puts them in the Peering's status.
import net from 'node:net';
import { contains, overlaps, parseCidr, type Cidr } from '../ipam/cidr.ts';

/** As the CRD's maxItems. */
const MAX_NODE_CIDRS = 32;
import { parseBase64Key } from '../wireguard/keys.ts';
import { DEFAULT_PSK_KEY, Kinds, type PeeringSpec, type SecretSpec } from './resources.ts';
import type { Resource, Store } from '../store/types.ts';

export function validatePeeringSpec(spec: Partial<PeeringSpec> | undefined, localPublicKey: string | undefined): string[] {
  const problems: string[] = [];
  if (!spec || typeof spec !== 'object') return ['the peering has no spec'];
  if (!spec.remoteClusterId || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(spec.remoteClusterId)) {
    problems.push(`remoteClusterId ${JSON.stringify(spec.remoteClusterId)} is not a DNS label`);
  }
  const cidr = (field: string, value: unknown): Cidr | undefined => {
    if (typeof value !== 'string') {
      problems.push(`${field} is missing`);
      return undefined;
    }
    try {
      return parseCidr(value);
    } catch (err) {
      problems.push(`${field} ${value}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const pod = cidr('remotePodCIDR', spec.remotePodCIDR);
  const external = cidr('remoteExternalCIDR', spec.remoteExternalCIDR);
  let firstNode: Cidr | undefined;
  if (!Array.isArray(spec.remoteNodeCIDRs) || spec.remoteNodeCIDRs.length === 0) problems.push('remoteNodeCIDRs is empty');
  else if (spec.remoteNodeCIDRs.length > MAX_NODE_CIDRS) problems.push(`remoteNodeCIDRs has ${spec.remoteNodeCIDRs.length} entries, at most ${MAX_NODE_CIDRS}`);
  else [firstNode] = spec.remoteNodeCIDRs.map((c, i) => cidr(`remoteNodeCIDRs[${i}]`, c));
  // Rules across fields (the CRD carries the same ones as CEL rules: src/k8s/crds.ts).
  if (pod && external && overlaps(pod, external)) problems.push(`remotePodCIDR ${spec.remotePodCIDR} overlaps remoteExternalCIDR ${spec.remoteExternalCIDR}`);
  if (external && firstNode && external.bits !== firstNode.bits) {
    problems.push(`remoteExternalCIDR ${spec.remoteExternalCIDR} must be the size of remoteNodeCIDRs[0] ${spec.remoteNodeCIDRs![0]} (it stands for that node network, host bits kept)`);
  }
  const ep = spec.remoteEndpoint;
  if (!ep || typeof ep.host !== 'string' || net.isIP(ep.host) === 0) problems.push(`remoteEndpoint.host ${JSON.stringify(ep?.host)} is not an IP address`);
  if (!ep || !Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) problems.push(`remoteEndpoint.port ${JSON.stringify(ep?.port)} is not a UDP port (0 = not known yet)`);
  if (typeof spec.remotePublicKey !== 'string' || !parseBase64Key(spec.remotePublicKey)) {
    problems.push(`remotePublicKey ${JSON.stringify(spec.remotePublicKey)} is not a base64 WireGuard public key (32 bytes)`);
  } else if (localPublicKey && spec.remotePublicKey === localPublicKey) {
    problems.push('remotePublicKey is this cluster’s own gateway key: a cluster cannot peer with itself');
  }
  if (typeof spec.remoteGatewayNodeIP !== 'string' || net.isIPv4(spec.remoteGatewayNodeIP) === false) {
    problems.push(`remoteGatewayNodeIP ${JSON.stringify(spec.remoteGatewayNodeIP)} is not an IPv4 address`);
  } else if (firstNode && !contains(firstNode, parseCidr(`${spec.remoteGatewayNodeIP}/32`))) {
    problems.push(`remoteGatewayNodeIP ${spec.remoteGatewayNodeIP} is not in remoteNodeCIDRs[0] ${spec.remoteNodeCIDRs![0]} (the probe reaches it through the external CIDR that stands for that network)`);
  }
  return problems;
}

/**
 * Resolve a peering's preshared-key Secret. Returns the problem as { reason, message } when the
 * Secret or its key is missing or does not hold a 32-byte key, else null.
 */
export async function checkPresharedKeyRef(store: Store, spec: PeeringSpec): Promise<{ reason: string; message: string } | null> {
  const ref = spec.presharedKeySecretRef;
  if (!ref) return null;
  const secret = await store.get<Resource<SecretSpec>>(Kinds.Secret, ref.name);
  if (!secret) return { reason: 'SecretNotFound', message: `presharedKeySecretRef: Secret ${ref.name} does not exist` };
  const key = ref.key ?? DEFAULT_PSK_KEY;
  const value = secret.spec?.data?.[key];
  if (value === undefined) return { reason: 'SecretKeyNotFound', message: `presharedKeySecretRef: Secret ${ref.name} has no key ${key}` };
  if (!parseBase64Key(Buffer.from(value, 'base64').toString('utf8').trim())) {
    return { reason: 'InvalidPresharedKey', message: `presharedKeySecretRef: ${ref.name}/${key} is not a base64 WireGuard key (wg genpsk)` };
  }
  return null;
}

/** The preshared key a Secret holds (its data value is base64 of the `wg genpsk` text). */
export function presharedKeyFrom(secret: SecretSpec | undefined, key: string | undefined): Uint8Array | null {
  const value = secret?.data?.[key ?? DEFAULT_PSK_KEY];
  return value === undefined ? null : parseBase64Key(Buffer.from(value, 'base64').toString('utf8').trim());
}
