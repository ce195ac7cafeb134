// weft's custom resources as Kubernetes sees them: the CustomResourceDefinitions of the `weft.io`
// API group, version v1alpha1, built as data. This file is the single source of truth:
// `node src/k8s/render-crds.ts` writes deploy/crds/*.yaml from it, and a test checks they agree.
//
// The schemas describe exactly the shapes of src/control/resources.ts and refuse at the API server
// what the code would refuse later (src/control/validate.ts, src/gateway/validate.ts,
// src/ipam/cidr.ts): CIDRs with host bits, ports out of range, keys that are not 32 base64 bytes,
// cluster ids that are not DNS labels. Cross-field rules that need arithmetic (overlaps, sizes)
// stay in the code, which reports them in status conditions.
//
//   ClusterNetwork  cluster-scoped, one object named "local"
//   Peering         namespaced, one per remote cluster, named after it
//   FabricPeer      namespaced, one per accepted Peering, same name
//   IpamState       namespaced, one object named "local"
import { API_VERSION, Kinds } from '../control/resources.ts';
import { MAX_MTU, MIN_MTU, VXLAN_OVERHEAD_IPV4, WIREGUARD_OVERHEAD_IPV6 } from '../gateway/mtu.ts';
import { MAX_IFNAME, MAX_PEERS } from '../gateway/validate.ts';
import { FABRIC_LINK, FABRIC_TABLE } from '../fabric/overlay.ts';
import { DEFAULT_MAX_REMOTE_CIDR_SIZE, DEFAULT_POOLS, REMOTE_MAX_BITS, REMOTE_MIN_BITS } from '../ipam/allocator.ts';
import { contains, overlaps, parseCidr } from '../ipam/cidr.ts';
import { CONDITION_REASON, CONDITION_TYPE, DNS_LABEL, INTERFACE_NAME, IPV4, IPV4_CIDR, IPV6, WIREGUARD_KEY } from './patterns.ts';
import { prune, validate, type CelTwin, type FieldError, type JSONSchemaProps } from './schema.ts';

export const GROUP = 'weft.io';
export const VERSION = 'v1alpha1';
/** The one category every weft kind is in: `kubectl get weft`. */
export const CATEGORY = 'weft';

if (API_VERSION !== `${GROUP}/${VERSION}`) throw new Error(`crds.ts: resources.ts speaks ${API_VERSION}, the CRDs ${GROUP}/${VERSION}`);

export interface PrinterColumn {
  name: string;
  type: 'integer' | 'number' | 'string' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  format?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    scope: 'Cluster' | 'Namespaced';
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JSONSchemaProps };
    }[];
  };
}

// ---- schema building blocks -------------------------------------------------------------------

type Doc = { description: string };

const str = (description: string, more: Omit<JSONSchemaProps, 'type' | 'description'> = {}): JSONSchemaProps => ({ type: 'string', description, ...more });
const int = (description: string, minimum: number, maximum: number, more: Omit<JSONSchemaProps, 'type'> = {}): JSONSchemaProps => ({
  type: 'integer',
  description,
  format: maximum > 2 ** 31 - 1 ? 'int64' : 'int32',
  minimum,
  maximum,
  ...more,
});
const obj = (description: string, properties: Record<string, JSONSchemaProps>, required: string[] = Object.keys(properties)): JSONSchemaProps => ({
  type: 'object',
  description,
  ...(required.length ? { required } : {}),
  properties,
});

const ipv4Cidr = (d: string): JSONSchemaProps => str(`${d} IPv4 CIDR (a.b.c.d/len, no host bits set).`, { format: 'cidr', maxLength: 18, pattern: IPV4_CIDR });
const ipv4 = (d: string): JSONSchemaProps => str(`${d} (IPv4 address).`, { format: 'ipv4', maxLength: 15, pattern: IPV4 });
const cidrList = (d: string): JSONSchemaProps => ({
  type: 'array',
  description: d,
  minItems: 1,
  maxItems: 32,
  'x-kubernetes-list-type': 'set',
  items: { type: 'string', format: 'cidr', maxLength: 18, pattern: IPV4_CIDR },
});
const publicKey = (d: string): JSONSchemaProps => str(`${d} (base64 WireGuard public key, 32 bytes).`, { minLength: 44, maxLength: 44, pattern: WIREGUARD_KEY });
const clusterId = (d: string): JSONSchemaProps => str(`${d} (a DNS label: lowercase letters, digits and '-').`, { minLength: 1, maxLength: 63, pattern: DNS_LABEL });

/** Where a gateway listens, as seen from the other cluster: an IP address and a UDP port. */
const endpoint = (d: string, port: JSONSchemaProps): JSONSchemaProps =>
  obj(d, {
    host: {
      type: 'string',
      description: 'IPv4 or IPv6 address (no name: the remote gateway must know the address family to size its MTU).',
      maxLength: 39,
      anyOf: [{ pattern: IPV4 }, { pattern: IPV6 }],
    },
    port,
  });
const anyPort = (d: string) => int(d, 0, 65535);
const listenPort = (d: string) => int(d, 1, 65535);

/** metav1.Condition, as every Kubernetes API spells it. */
const condition: JSONSchemaProps = obj(
  'One aspect of the current state (metav1.Condition).',
  {
    type: str('Type of condition in CamelCase (e.g. Ready, Valid, Connected).', { minLength: 1, maxLength: 316, pattern: CONDITION_TYPE }),
    status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    observedGeneration: int('The metadata.generation the condition was set for.', 0, Number.MAX_SAFE_INTEGER, { format: 'int64' }),
    lastTransitionTime: str('When the status last changed.', { format: 'date-time' }),
    reason: str('Machine-readable reason for the last transition, in CamelCase.', { minLength: 1, maxLength: 1024, pattern: CONDITION_REASON }),
    message: str('Human-readable details.', { maxLength: 32768 }),
  },
  ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
);
const conditions = (d: string): JSONSchemaProps => ({
  type: 'array',
  description: d,
  maxItems: 16,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: condition,
});

/** The fields every object has; metadata stays `type: object` (the server owns its schema). */
function root(kind: string, spec: JSONSchemaProps, status: JSONSchemaProps, doc: Doc, rules: JSONSchemaProps['x-kubernetes-validations']): JSONSchemaProps {
  return {
    type: 'object',
    description: doc.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: `${GROUP}/${VERSION}` },
      kind: { type: 'string', description: kind },
      metadata: { type: 'object' },
      spec,
      status,
    },
    ...(rules?.length ? { 'x-kubernetes-validations': rules } : {}),
  };
}

// ---- CEL rules and their JavaScript twins -----------------------------------------------------

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const nameOf = (self: unknown) => (isObj(self) && isObj(self.metadata) ? self.metadata.name : undefined);
const specOf = (self: unknown) => (isObj(self) && isObj(self.spec) ? self.spec : {});

const RULE_NAMED_LOCAL = "self.metadata.name == 'local'";
const RULE_NAMED_AFTER_REMOTE = 'self.metadata.name == self.spec.remoteClusterId';

/**
 * Each x-kubernetes-validations rule the CRDs carry, with a JavaScript function that decides the
 * same thing (for the schema tests and the in-process API server, which cannot run CEL).
 */
// A Peering spec's rules across fields (src/control/validate.ts checks the same in the controller,
// for stores without a schema). Kubernetes' CEL CIDR library: cidr(), containsIP, prefixLength.
const RULE_GATEWAY_IN_NODE_NETWORK = 'cidr(self.remoteNodeCIDRs[0]).containsIP(self.remoteGatewayNodeIP)';
const RULE_EXTERNAL_SIZE = 'cidr(self.remoteExternalCIDR).prefixLength() == cidr(self.remoteNodeCIDRs[0]).prefixLength()';
const RULE_POD_EXTERNAL_DISJOINT = '!cidr(self.remotePodCIDR).containsCIDR(self.remoteExternalCIDR) && !cidr(self.remoteExternalCIDR).containsCIDR(self.remotePodCIDR)';

/** A strict IPv4 CIDR or address (as /32), as CEL's cidr() and ip() take them; throws otherwise. */
const cidrOf = (v: unknown) => parseCidr(v);
const ipOf = (v: unknown) => {
  if (typeof v !== 'string' || !new RegExp(IPV4).test(v)) throw new Error('not an IPv4 address');
  return parseCidr(`${v}/32`);
};
const firstOf = (v: unknown) => (Array.isArray(v) ? v[0] : undefined);

export const CEL_TWINS: Readonly<Record<string, CelTwin>> = {
  [RULE_NAMED_LOCAL]: (self) => nameOf(self) === 'local',
  [RULE_NAMED_AFTER_REMOTE]: (self) => nameOf(self) === specOf(self).remoteClusterId,
  [RULE_GATEWAY_IN_NODE_NETWORK]: (self) => isObj(self) && contains(cidrOf(firstOf(self.remoteNodeCIDRs)), ipOf(self.remoteGatewayNodeIP)),
  [RULE_EXTERNAL_SIZE]: (self) => isObj(self) && cidrOf(self.remoteExternalCIDR).bits === cidrOf(firstOf(self.remoteNodeCIDRs)).bits,
  [RULE_POD_EXTERNAL_DISJOINT]: (self) => isObj(self) && !overlaps(cidrOf(self.remotePodCIDR), cidrOf(self.remoteExternalCIDR)),
};

// ---- the four kinds ---------------------------------------------------------------------------

const clusterNetworkSpec = obj('What this cluster is: its address ranges, the node-to-gateway fabric and its gateway.', {
  clusterId: clusterId('This cluster\'s id, announced to remotes'),
  podCIDR: ipv4Cidr('The pod network:'),
  serviceCIDR: ipv4Cidr('The service network:'),
  nodeCIDRs: cidrList('The node networks (IPv4 CIDRs, no host bits set); the first one is what the external CIDR stands for.'),
  fabricCIDR: ipv4Cidr('Addresses of the node-to-gateway VXLAN overlay (a host keeps its node IP\'s host bits):'),
  vxlanId: int('VXLAN network identifier of the node-to-gateway fabric.', 0, 0xffffff),
  vxlanPort: listenPort('UDP port of the node-to-gateway fabric.'),
  gatewayEndpoint: endpoint('The gateway\'s address and port as seen by remote gateways (WAN side); port 0 until known.', anyPort('UDP port, 0 = not known yet.')),
  gatewayNodeIP: ipv4('The internal IP of the node that hosts the gateway'),
  underlayMtu: int(`MTU of the node network; the VXLAN fabric takes ${VXLAN_OVERHEAD_IPV4} bytes of it and must keep ${MIN_MTU}.`, MIN_MTU + VXLAN_OVERHEAD_IPV4, MAX_MTU),
  wanMtu: int(`MTU of the path between gateways; WireGuard over IPv6 takes ${WIREGUARD_OVERHEAD_IPV6} bytes of it and must keep ${MIN_MTU}.`, MIN_MTU + WIREGUARD_OVERHEAD_IPV6, MAX_MTU),
  remapPools: cidrList(`Where remote clusters' ranges (and this cluster's external CIDR) are placed, tried in order; a remote's CIDR is kept as announced only inside a pool and clashing with nothing, else mapped into a free block. Default ${DEFAULT_POOLS.join(', ')} (local ranges are always left out).`),
  maxRemoteCIDRSize: int(`The largest range a remote may announce for its pod or external CIDR, as a prefix length (default ${DEFAULT_MAX_REMOTE_CIDR_SIZE}: a /${DEFAULT_MAX_REMOTE_CIDR_SIZE} at most).`, REMOTE_MIN_BITS, REMOTE_MAX_BITS),
}, ['clusterId', 'podCIDR', 'serviceCIDR', 'nodeCIDRs', 'fabricCIDR', 'vxlanId', 'vxlanPort', 'gatewayEndpoint', 'gatewayNodeIP', 'underlayMtu', 'wanMtu']);

const clusterNetworkStatus = obj(
  'Written by the controller (externalCIDR, Ready) and the active gateway (gatewayPublicKey, gatewayNodeIP).',
  {
    externalCIDR: ipv4Cidr('The range that stands for this cluster\'s node network to remotes, allocated once by IPAM:'),
    gatewayPublicKey: publicKey('The gateway\'s WireGuard public key'),
    gatewayNodeIP: ipv4('The node of the active gateway replica; it follows the gateway Lease and overrides spec.gatewayNodeIP'),
    conditions: conditions('Ready: the cluster configuration was accepted by IPAM.'),
  },
  [],
);

/** A key in a Secret of the weft namespace (a DNS subdomain name; the key defaults to presharedKey). */
const secretKeyRef = (d: string): JSONSchemaProps =>
  obj(
    d,
    {
      name: str('Name of the Secret in the weft namespace.', { minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }),
      key: str('Key in the Secret\'s data; defaults to presharedKey.', { minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
    },
    ['name'],
  );

const peeringSpecProps = {
  remoteClusterId: clusterId('The remote cluster\'s id; the Peering is named after it'),
  remotePodCIDR: ipv4Cidr('The remote pod network, as the remote sees it:'),
  remoteExternalCIDR: ipv4Cidr('The range that stands for the remote node network:'),
  remoteNodeCIDRs: cidrList('The remote node networks (IPv4 CIDRs, no host bits set).'),
  remoteEndpoint: endpoint('Where to send this peering\'s tunnel packets; port 0 until the remote controller allocated its tunnel port.', anyPort('UDP port, 0 = not known yet.')),
  remotePublicKey: publicKey('The remote gateway\'s WireGuard public key'),
  remoteGatewayNodeIP: ipv4('The remote gateway\'s node IP in its node network: the end-to-end probe\'s target'),
  presharedKeySecretRef: secretKeyRef('Optional WireGuard preshared key for this tunnel: a Secret both clusters hold the same key in (base64 of `wg genpsk`).'),
};
const peeringSpec: JSONSchemaProps = {
  ...obj('What the remote cluster announced: its ranges and how to reach its gateway.', peeringSpecProps, Object.keys(peeringSpecProps).filter((k) => k !== 'presharedKeySecretRef')),
  'x-kubernetes-validations': [
    { rule: RULE_GATEWAY_IN_NODE_NETWORK, fieldPath: '.remoteGatewayNodeIP', message: 'remoteGatewayNodeIP must lie in remoteNodeCIDRs[0] (the probe reaches it through the external CIDR that stands for that network)' },
    { rule: RULE_EXTERNAL_SIZE, fieldPath: '.remoteExternalCIDR', message: 'remoteExternalCIDR must be the size of remoteNodeCIDRs[0] (it stands for that node network, host bits kept)' },
    { rule: RULE_POD_EXTERNAL_DISJOINT, fieldPath: '.remoteExternalCIDR', message: 'remotePodCIDR and remoteExternalCIDR must not overlap' },
  ],
};

const peeringStatus = obj(
  'How the peering is: the controller\'s decision (Valid, remaps) and the gateway\'s view of the tunnel (Connected, latency, traffic).',
  {
    phase: str('Connecting, Connected or Error: derived from the Valid and Connected conditions.', { enum: ['Connecting', 'Connected', 'Error'] }),
    reason: str('Why the phase is Error (or why still Connecting), machine-readable.', { maxLength: 1024, pattern: CONDITION_REASON }),
    message: str('Why the phase is Error (or why still Connecting), for people.', { maxLength: 32768 }),
    podCIDRRemap: ipv4Cidr('The remote pod CIDR as seen locally (IPAM\'s choice):'),
    externalCIDRRemap: ipv4Cidr('The remote external CIDR as seen locally (IPAM\'s choice):'),
    localEndpoint: endpoint('Where the remote must send this peering\'s tunnel packets; set once the tunnel listens.', listenPort('UDP port of this peering\'s tunnel.')),
    latencyMs: { type: 'number', description: 'Median round trip of the recent end-to-end probes, in milliseconds; rewritten when it moves by at least 5 ms and by a factor of 2, else with the heartbeat (the latest figures are on /metrics).', minimum: 0 },
    lastHandshake: str('Time of the last WireGuard handshake, as of the last heartbeat.', { format: 'date-time' }),
    txBytes: int('Bytes sent through the tunnel, as of the last heartbeat.', 0, Number.MAX_SAFE_INTEGER, { format: 'int64' }),
    rxBytes: int('Bytes received through the tunnel, as of the last heartbeat.', 0, Number.MAX_SAFE_INTEGER, { format: 'int64' }),
    lastHeartbeatTime: str('When the gateway last wrote its view of the tunnel: on every change of it and at least every 5 minutes. Older than that, the gateway is not reporting.', { format: 'date-time' }),
    conditions: conditions('Valid (controller: the announcement was accepted) and Connected (gateway: the data path answers).'),
  },
  ['phase'],
);

const fabricPeerSpecProps = {
  remoteClusterId: clusterId('The remote cluster\'s id; the FabricPeer is named after it'),
  remotePodCIDR: ipv4Cidr('The remote pod network (inside the tunnel, after translation):'),
  remoteExternalCIDR: ipv4Cidr('The remote external range (inside the tunnel, after translation):'),
  podCIDRRemap: ipv4Cidr('What local pods use as destination for remote pods:'),
  externalCIDRRemap: ipv4Cidr('What local pods see as source for remote nodes:'),
  interfaceName: str(`The gateway's WireGuard device for this peering (at most ${MAX_IFNAME} characters).`, {
    minLength: 1,
    maxLength: MAX_IFNAME,
    pattern: INTERFACE_NAME,
    not: { enum: ['lo', FABRIC_LINK] },
  }),
  listenPort: listenPort('UDP port of this peering\'s tunnel.'),
  remoteEndpoint: endpoint('Where the remote gateway listens; port 0 until known.', anyPort('UDP port, 0 = not known yet.')),
  remotePublicKey: publicKey('The remote gateway\'s WireGuard public key'),
  slot: int('Stable small number of this peering on the gateway (rule priorities derive from it).', 0, MAX_PEERS - 1),
  mark: int('fwmark that keeps this peering\'s traffic apart (non-zero, 32 bits).', 1, 0xffffffff),
  table: int(`Routing table (and conntrack zone) of this peering; not 253-255 (kernel) nor ${FABRIC_TABLE} (the fabric's).`, 1, 65535, { not: { enum: [253, 254, 255, FABRIC_TABLE] } }),
  probeTarget: ipv4('Where the gateway\'s probe goes: the remote gateway\'s node IP as seen locally'),
  presharedKeySecretRef: secretKeyRef('The peering\'s preshared-key Secret; the gateway reads it itself, so the key never lands here.'),
};
const fabricPeerSpec = obj(
  'The controller\'s decision for one peering: everything the gateway and the node agents need.',
  fabricPeerSpecProps,
  Object.keys(fabricPeerSpecProps).filter((k) => k !== 'presharedKeySecretRef'),
);

const fabricPeerStatus = obj('Reported by the hosts that program this peering.', { conditions: conditions('Per-host programming state.') }, []);

const ipamStateSpec = obj('The controller\'s persistent IPAM decisions.', {
  snapshot: {
    type: 'object',
    description: 'The allocator\'s snapshot (src/ipam): version, externalCIDR and the remaps of every peer. Free-form here; the controller validates it on load.',
    'x-kubernetes-preserve-unknown-fields': true,
  },
});

const ipamStateStatus = obj('Reported by the controller.', { conditions: conditions('State of the allocations.') }, []);

interface KindDef {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Cluster' | 'Namespaced';
  description: string;
  spec: JSONSchemaProps;
  status: JSONSchemaProps;
  rules: JSONSchemaProps['x-kubernetes-validations'];
  columns: PrinterColumn[];
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

const KINDS: KindDef[] = [
  {
    kind: Kinds.ClusterNetwork,
    plural: 'clusternetworks',
    singular: 'clusternetwork',
    shortNames: ['cn'],
    scope: 'Cluster',
    description: 'ClusterNetwork describes this cluster to weft: its ranges, its fabric and its gateway. There is one, named "local".',
    spec: clusterNetworkSpec,
    status: clusterNetworkStatus,
    rules: [{ rule: RULE_NAMED_LOCAL, message: 'there is one ClusterNetwork per cluster and it is named "local"' }],
    columns: [
      { name: 'Cluster', type: 'string', jsonPath: '.spec.clusterId' },
      { name: 'Pod CIDR', type: 'string', jsonPath: '.spec.podCIDR' },
      { name: 'External CIDR', type: 'string', jsonPath: '.status.externalCIDR' },
      { name: 'Endpoint', type: 'string', jsonPath: '.spec.gatewayEndpoint.host' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Public Key', type: 'string', jsonPath: '.status.gatewayPublicKey', priority: 1 },
      age,
    ],
  },
  {
    kind: Kinds.Peering,
    plural: 'peerings',
    singular: 'peering',
    shortNames: ['peer'],
    scope: 'Namespaced',
    description: 'Peering is one remote cluster this cluster joins its pod network with: what the remote announced (spec) and how the link is (status).',
    spec: peeringSpec,
    status: peeringStatus,
    rules: [{ rule: RULE_NAMED_AFTER_REMOTE, message: 'a Peering is named after the remote cluster (metadata.name must equal spec.remoteClusterId)' }],
    columns: [
      { name: 'Remote', type: 'string', jsonPath: '.spec.remoteClusterId' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Seen As', type: 'string', jsonPath: '.status.podCIDRRemap', description: 'The remote pod CIDR as local pods address it' },
      { name: 'Latency', type: 'number', jsonPath: '.status.latencyMs', description: 'Probe round-trip time in milliseconds' },
      { name: 'Reason', type: 'string', jsonPath: '.status.reason', priority: 1 },
      { name: 'Endpoint', type: 'string', jsonPath: '.spec.remoteEndpoint.host', priority: 1 },
      { name: 'Last Handshake', type: 'date', jsonPath: '.status.lastHandshake', priority: 1 },
      age,
    ],
  },
  {
    kind: Kinds.FabricPeer,
    plural: 'fabricpeers',
    singular: 'fabricpeer',
    shortNames: ['fp'],
    scope: 'Namespaced',
    description: 'FabricPeer is the controller\'s decision for one accepted Peering (remaps, tunnel interface, port, mark, table), consumed by the gateway and every node agent.',
    spec: fabricPeerSpec,
    status: fabricPeerStatus,
    rules: [{ rule: RULE_NAMED_AFTER_REMOTE, message: 'a FabricPeer is named after the remote cluster (metadata.name must equal spec.remoteClusterId)' }],
    columns: [
      { name: 'Remote', type: 'string', jsonPath: '.spec.remoteClusterId' },
      { name: 'Interface', type: 'string', jsonPath: '.spec.interfaceName' },
      { name: 'Port', type: 'integer', jsonPath: '.spec.listenPort' },
      { name: 'Remap', type: 'string', jsonPath: '.spec.podCIDRRemap' },
      { name: 'External Remap', type: 'string', jsonPath: '.spec.externalCIDRRemap', priority: 1 },
      { name: 'Mark', type: 'integer', jsonPath: '.spec.mark', priority: 1 },
      { name: 'Table', type: 'integer', jsonPath: '.spec.table', priority: 1 },
      age,
    ],
  },
  {
    kind: Kinds.IpamState,
    plural: 'ipamstates',
    singular: 'ipamstate',
    shortNames: ['ipam'],
    scope: 'Namespaced',
    description: 'IpamState holds the controller\'s IPAM allocations so that they survive restarts. There is one, named "local".',
    spec: ipamStateSpec,
    status: ipamStateStatus,
    rules: [{ rule: RULE_NAMED_LOCAL, message: 'there is one IpamState per cluster and it is named "local"' }],
    columns: [{ name: 'External CIDR', type: 'string', jsonPath: '.spec.snapshot.externalCIDR' }, age],
  },
];

function definition(k: KindDef): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${GROUP}`, labels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/component': 'crd' } },
    spec: {
      group: GROUP,
      scope: k.scope,
      names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.singular, shortNames: k.shortNames, categories: [CATEGORY] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: { openAPIV3Schema: root(k.kind, k.spec, k.status, { description: k.description }, k.rules) },
        },
      ],
    },
  };
}

/** Every CRD, in a stable order. */
export const CRDS: readonly CustomResourceDefinition[] = KINDS.map(definition);

/** The CRD of a kind (throws for kinds that are not ours, e.g. Node and Pod). */
export function crdOf(kind: string): CustomResourceDefinition {
  const crd = CRDS.find((c) => c.spec.names.kind === kind);
  if (!crd) throw new Error(`no weft CRD for kind ${kind}`);
  return crd;
}

/** The schema of a kind's (only) version. */
export function schemaOf(kind: string): JSONSchemaProps {
  return crdOf(kind).spec.versions[0]!.schema.openAPIV3Schema;
}

/** deploy/crds/<file> for each CRD. */
export function crdFileName(crd: CustomResourceDefinition): string {
  return `${crd.spec.group}_${crd.spec.names.plural}.yaml`;
}

/**
 * Validate a weft object as the API server would on a write (schema, then the CEL rules through
 * their twins): empty when it would be accepted. `old` is the stored object on updates.
 */
export function validateResource(obj: { kind: string }, opts: { old?: unknown } = {}): FieldError[] {
  return validate(schemaOf(obj.kind), obj, { cel: CEL_TWINS, strictCel: true, ...(opts.old === undefined ? {} : { old: opts.old }) });
}

/** The object as the API server would store it: unknown fields pruned; `dropped` lists them. */
export function pruneResource<T extends { kind: string }>(obj: T, dropped: string[] = []): T {
  return prune(schemaOf(obj.kind), obj, '', dropped) as T;
}
