// The lab's topology as a pure plan: which namespaces exist, which links join them, which
// addresses and routes each one carries, for N clusters × M nodes × K pods. Nothing here touches
// the kernel; netns.ts applies a plan, one `ip -batch` per namespace.
//
//   wl<id>-wan                 WAN switch: bridge br0, one port per gateway (gw-<cluster>)
//   wl<id>-<c>-sw              cluster c's underlay switch: bridge br0 (192.168.100.1, the
//                              "datacenter router" that routes nowhere), one port per node / gateway
//   wl<id>-<c>-gw              gateway host: eth0 192.168.100.254/24, wan0 203.0.113.(i+1)/24
//   wl<id>-<c>-n<j>            node j: eth0 192.168.100.(10+j)/24, pod CIDR = block j of the pod CIDR
//   wl<id>-<c>-n<j>-p<k>       pod k on node j: eth0 = host 10+k of the node's pod CIDR
//
// Every cluster uses the same node network and (by default) the same pod CIDR: the overlap is the
// point. How pods attach to their node depends on the cluster's pod-network style (cni.ts).
import { IpamError } from '../ipam/errors.ts';
import { blockSize, formatCidr, formatIPv4, overlaps, parseCidr, parseIPv4, type Cidr } from '../ipam/cidr.ts';
import { podNetworkSteps, type PodNetworkStyle, POD_NETWORK_STYLES } from './cni.ts';

export type { PodNetworkStyle } from './cni.ts';

export class LabError extends Error {
  override name = 'LabError';
}

/** `up` stopped by a signal (it removed what it had built). */
export class LabInterrupted extends LabError {
  override name = 'LabInterrupted';
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.signal = signal;
  }
}

/** Everything that decides a lab's shape. Stored in lab.json; the topology is recomputed from it. */
export interface LabOptions {
  /** Lab id: 1-8 lowercase letters/digits. Every namespace is `wl<id>-…`. */
  id: string;
  clusters: number;
  nodesPerCluster: number;
  podsPerNode: number;
  /** Pod CIDR of every cluster (they overlap on purpose). */
  podCIDR: string;
  serviceCIDR: string;
  /** Pod-network styles, cycled over the clusters (a gets styles[0], b styles[1], …). */
  styles: PodNetworkStyle[];
  underlayMtu: number;
  wanMtu: number;
  podMtu: number;
}

export const LAB_DEFAULTS: Omit<LabOptions, 'id'> = {
  clusters: 2,
  nodesPerCluster: 2,
  podsPerNode: 2,
  podCIDR: '10.0.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  styles: ['bridge', 'routed'],
  underlayMtu: 1500,
  wanMtu: 1500,
  podMtu: 1500,
};

export const NODE_CIDR = '192.168.100.0/24';
export const UNDERLAY_ROUTER_IP = '192.168.100.1';
export const GATEWAY_UNDERLAY_IP = '192.168.100.254';
export const WAN_CIDR = '203.0.113.0/24';
/** Calico's next hop for every pod: answered by proxy ARP on the node's end of the pod's veth. */
export const ROUTED_POD_GATEWAY = '169.254.1.1';
/** First pod's host number inside its node's block (pod k gets POD_HOST_BASE + k). */
export const POD_HOST_BASE = 10;
export const NODE_HOST_BASE = 10;
export const MAX_CLUSTERS = 26;
export const MAX_NODES = 243; // 192.168.100.11 … .253 (.254 is the gateway)

export interface PodPlan {
  /** `n<j>-p<k>`, unique in its cluster. */
  name: string;
  namespace: string;
  cluster: string;
  node: string;
  index: number;
  ip: string;
  /** The pod's address as configured (`/32` routed, the node block's length bridged). */
  cidr: string;
  interface: string;
  /** The node's end of the pod's veth. */
  hostInterface: string;
  /** The pod's default next hop. */
  gateway: string;
}

export interface NodePlan {
  /** `n<j>`. */
  name: string;
  namespace: string;
  cluster: string;
  index: number;
  /** Underlay (InternalIP) address and interface. */
  ip: string;
  interface: string;
  podCIDR: string;
  pods: PodPlan[];
}

export interface GatewayPlan {
  name: 'gw';
  namespace: string;
  underlayIP: string;
  underlayInterface: string;
  wanIP: string;
  wanInterface: string;
}

export interface ClusterPlan {
  /** a, b, c, … */
  name: string;
  index: number;
  style: PodNetworkStyle;
  podCIDR: string;
  serviceCIDR: string;
  nodeCIDR: string;
  switchNamespace: string;
  /** The address on the underlay switch that nodes use as default route; it routes nowhere. */
  underlayRouterIP: string;
  underlayMtu: number;
  podMtu: number;
  gateway: GatewayPlan;
  nodes: NodePlan[];
}

export interface LabTopology {
  id: string;
  /** `wl<id>-`: every namespace (and WireGuard interface) of the lab starts with it. */
  prefix: string;
  options: LabOptions;
  wanNamespace: string;
  wanCIDR: string;
  wanMtu: number;
  clusters: ClusterPlan[];
}

/** One namespace's share of a build stage: `ip -batch` lines, then sysctls (key, value). */
export interface NamespaceStep {
  namespace: string;
  ip: string[];
  sysctl: Array<[string, string]>;
}

/** Steps of one stage run in parallel (different namespaces); stages run in order. */
export type BuildStage = NamespaceStep[];

export interface BuildPhase {
  /** `wan` or a cluster name. */
  group: string;
  description: string;
  stages: BuildStage[];
}

export interface BuildPlan {
  /** Every namespace of the lab, in creation order. */
  namespaces: string[];
  phases: BuildPhase[];
}

const ID_RE = /^[a-z0-9]{1,8}$/;

export function validLabId(id: string): boolean {
  return ID_RE.test(id);
}

export function clusterName(index: number): string {
  return String.fromCharCode(97 + index);
}

export function labPrefix(id: string): string {
  return `wl${id}-`;
}

/**
 * The lab a namespace belongs to, if its name follows the lab's naming exactly
 * (`wl<id>-wan`, `wl<id>-<c>-sw|gw|n<j>|n<j>-p<k>`); undefined for anything else.
 */
export function labIdOfNamespace(name: string): string | undefined {
  const m = /^wl([a-z0-9]{1,8})-(?:wan|[a-z]-(?:sw|gw|n[1-9][0-9]*(?:-p[1-9][0-9]*)?))$/.exec(name);
  return m?.[1];
}

/**
 * Prefix of cluster `local`'s tunnel interfaces (the controller adds each peering's slot): unique
 * on the machine (control sockets share /var/run/wireguard), ≤ 12 characters so that prefix and
 * slot fit the kernel's 15, and under the lab's prefix so `down` removes the sockets.
 */
export function wireguardInterfacePrefix(id: string, local: string): string {
  return `${labPrefix(id)}${local}`;
}

function cidrOption(text: string, what: string): Cidr {
  try {
    return parseCidr(text, what);
  } catch (err) {
    if (err instanceof IpamError) throw new LabError(err.message);
    throw err;
  }
}

function intOption(value: number, what: string, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new LabError(`${what} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/**
 * Split `pool` into equal blocks for `count` nodes, node j (1-based) taking block j (block 0 is left
 * unused, so node 1 of 10.0.0.0/16 gets 10.0.1.0/24): /24s when the pool has room for them, else
 * the largest equal blocks that fit count + 1 of them.
 */
export function splitPodCIDR(pool: string, count: number): string[] {
  const cidr = cidrOption(pool, 'pod CIDR');
  const needBits = Math.ceil(Math.log2(count + 1));
  const bits = Math.max(24, cidr.bits + needBits);
  if (bits > 30) throw new LabError(`pod CIDR ${pool} is too small for ${count} nodes (each needs at least a /30)`);
  const size = blockSize(bits);
  const out: string[] = [];
  for (let j = 1; j <= count; j++) out.push(formatCidr({ start: cidr.start + j * size, bits }));
  return out;
}

/** Fill defaults and check every option; throws LabError with a sentence to act on. */
export function resolveLabOptions(partial: Partial<LabOptions> & { id: string }): LabOptions {
  const o: LabOptions = { ...LAB_DEFAULTS, ...stripUndefined(partial) } as LabOptions;
  if (!validLabId(o.id)) throw new LabError(`lab id ${JSON.stringify(o.id)} must be 1-8 lowercase letters or digits`);
  intOption(o.clusters, 'number of clusters', 1, MAX_CLUSTERS);
  intOption(o.nodesPerCluster, 'nodes per cluster', 1, MAX_NODES);
  intOption(o.podsPerNode, 'pods per node', 0, 244);
  intOption(o.underlayMtu, 'underlay MTU', 1280, 9000);
  intOption(o.wanMtu, 'WAN MTU', 1280, 9000);
  intOption(o.podMtu, 'pod MTU', 1280, 9000);
  if (!Array.isArray(o.styles) || o.styles.length === 0) throw new LabError('at least one pod-network style is needed');
  for (const s of o.styles) {
    if (!POD_NETWORK_STYLES.includes(s)) throw new LabError(`unknown pod-network style ${JSON.stringify(s)} (known: ${POD_NETWORK_STYLES.join(', ')})`);
  }
  const pod = cidrOption(o.podCIDR, 'pod CIDR');
  const svc = cidrOption(o.serviceCIDR, 'service CIDR');
  const fixed: Array<[string, string]> = [
    [o.serviceCIDR, 'the service CIDR'],
    [NODE_CIDR, 'the node network'],
    [WAN_CIDR, 'the WAN'],
    ['169.254.0.0/16', 'the link-local range'],
    ['127.0.0.0/8', 'the loopback range'],
  ];
  for (const [text, what] of fixed) {
    if (overlaps(pod, parseCidr(text))) throw new LabError(`pod CIDR ${o.podCIDR} overlaps ${what} ${text}`);
  }
  for (const [text, what] of fixed.slice(1)) {
    if (overlaps(svc, parseCidr(text))) throw new LabError(`service CIDR ${o.serviceCIDR} overlaps ${what} ${text}`);
  }
  const blocks = splitPodCIDR(o.podCIDR, o.nodesPerCluster);
  const blockHosts = blockSize(parseCidr(blocks[0]!).bits);
  if (POD_HOST_BASE + o.podsPerNode > blockHosts - 2) {
    throw new LabError(`${o.podsPerNode} pods per node do not fit a node's pod block ${blocks[0]} (pod k takes host ${POD_HOST_BASE}+k)`);
  }
  return { ...o, styles: [...o.styles] };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function hostOf(cidr: string, host: number): string {
  return formatIPv4(parseCidr(cidr).start + host);
}

/** The whole lab as data. Deterministic: the same options give the same topology. */
export function planTopology(input: Partial<LabOptions> & { id: string }): LabTopology {
  const options = resolveLabOptions(input);
  const prefix = labPrefix(options.id);
  const nodeBlocks = splitPodCIDR(options.podCIDR, options.nodesPerCluster);
  const blockBits = parseCidr(nodeBlocks[0]!).bits;
  const clusters: ClusterPlan[] = [];
  for (let i = 0; i < options.clusters; i++) {
    const name = clusterName(i);
    const style = options.styles[i % options.styles.length]!;
    const base = `${prefix}${name}`;
    const nodes: NodePlan[] = [];
    for (let j = 1; j <= options.nodesPerCluster; j++) {
      const nodeName = `n${j}`;
      const podCIDR = nodeBlocks[j - 1]!;
      const bridgeGateway = hostOf(podCIDR, 1);
      const pods: PodPlan[] = [];
      for (let k = 1; k <= options.podsPerNode; k++) {
        const ip = hostOf(podCIDR, POD_HOST_BASE + k);
        pods.push({
          name: `${nodeName}-p${k}`,
          namespace: `${base}-${nodeName}-p${k}`,
          cluster: name,
          node: nodeName,
          index: k,
          ip,
          cidr: style === 'routed' ? `${ip}/32` : `${ip}/${blockBits}`,
          interface: 'eth0',
          hostInterface: style === 'routed' ? `cali-p${k}` : `veth-p${k}`,
          gateway: style === 'routed' ? ROUTED_POD_GATEWAY : bridgeGateway,
        });
      }
      nodes.push({
        name: nodeName,
        namespace: `${base}-${nodeName}`,
        cluster: name,
        index: j,
        ip: hostOf(NODE_CIDR, NODE_HOST_BASE + j),
        interface: 'eth0',
        podCIDR,
        pods,
      });
    }
    clusters.push({
      name,
      index: i,
      style,
      podCIDR: options.podCIDR,
      serviceCIDR: options.serviceCIDR,
      nodeCIDR: NODE_CIDR,
      switchNamespace: `${base}-sw`,
      underlayRouterIP: UNDERLAY_ROUTER_IP,
      underlayMtu: options.underlayMtu,
      podMtu: options.podMtu,
      gateway: {
        name: 'gw',
        namespace: `${base}-gw`,
        underlayIP: GATEWAY_UNDERLAY_IP,
        underlayInterface: 'eth0',
        wanIP: hostOf(WAN_CIDR, i + 1),
        wanInterface: 'wan0',
      },
      nodes,
    });
  }
  return { id: options.id, prefix, options, wanNamespace: `${prefix}wan`, wanCIDR: WAN_CIDR, wanMtu: options.wanMtu, clusters };
}

/** Every namespace of the topology: WAN first, then per cluster switch, gateway, nodes, pods. */
export function topologyNamespaces(t: LabTopology): string[] {
  const out = [t.wanNamespace];
  for (const c of t.clusters) {
    out.push(c.switchNamespace, c.gateway.namespace);
    for (const n of c.nodes) out.push(n.namespace);
    for (const n of c.nodes) for (const p of n.pods) out.push(p.namespace);
  }
  return out;
}

/**
 * Find a namespace by the names `exec` accepts: `wan`, `<c>/sw`, `<c>/gw`, `<c>/n<j>`,
 * `<c>/n<j>-p<k>` (also `<c>-n<j>-p<k>` and the full namespace name).
 */
export function resolveTarget(t: LabTopology, target: string): string | undefined {
  if (target === 'wan' || target === t.wanNamespace) return t.wanNamespace;
  const m = /^([a-z])[/-](.+)$/.exec(target.startsWith(t.prefix) ? target.slice(t.prefix.length) : target);
  if (!m) return undefined;
  const c = t.clusters.find((x) => x.name === m[1]);
  if (!c) return undefined;
  const rest = m[2]!;
  if (rest === 'sw') return c.switchNamespace;
  if (rest === 'gw') return c.gateway.namespace;
  for (const n of c.nodes) {
    if (n.name === rest) return n.namespace;
    for (const p of n.pods) if (p.name === rest) return p.namespace;
  }
  return undefined;
}

/**
 * The commands that build the topology. Stage order matters: links are created from the namespace
 * that owns one end (`link add X type veth peer name Y netns OTHER`), so every namespace exists
 * before any link stage, and every link exists before the stage that configures its far end.
 */
export function planBuild(t: LabTopology): BuildPlan {
  const phases: BuildPhase[] = [];
  // WAN: the switch and one veth per gateway (far end `wan0` lands in the gateway namespace).
  const wan: string[] = ['link set lo up', `link add br0 type bridge`, `link set br0 mtu ${t.wanMtu}`];
  for (const c of t.clusters) {
    const port = `gw-${c.name}`;
    wan.push(
      `link add ${port} mtu ${t.wanMtu} type veth peer name ${c.gateway.wanInterface} mtu ${t.wanMtu} netns ${c.gateway.namespace}`,
      `link set ${port} master br0`,
      `link set ${port} up`,
    );
  }
  wan.push('link set br0 up');
  phases.push({ group: 'wan', description: `WAN switch for ${t.clusters.length} gateways`, stages: [[{ namespace: t.wanNamespace, ip: wan, sysctl: [] }]] });

  for (const c of t.clusters) {
    const mtu = c.underlayMtu;
    const bits = parseCidr(c.nodeCIDR).bits;
    // Stage 1: links. The switch owns the underlay veths, each node owns its pods' veths.
    const sw: string[] = ['link set lo up', 'link add br0 type bridge', `link set br0 mtu ${mtu}`];
    const ports: Array<[string, string, string]> = [
      ...c.nodes.map((n) => [n.name, n.interface, n.namespace] as [string, string, string]),
      ['gw', c.gateway.underlayInterface, c.gateway.namespace],
    ];
    for (const [port, far, ns] of ports) {
      sw.push(`link add ${port} mtu ${mtu} type veth peer name ${far} mtu ${mtu} netns ${ns}`, `link set ${port} master br0`, `link set ${port} up`);
    }
    sw.push(`addr add ${c.underlayRouterIP}/${bits} dev br0`, 'link set br0 up');
    const links: BuildStage = [{ namespace: c.switchNamespace, ip: sw, sysctl: [] }];
    const config: BuildStage = [
      {
        namespace: c.switchNamespace,
        ip: [],
        // The "datacenter router" forwards nothing useful: a node's packet for an unknown network
        // gets a prompt ICMP net-unreachable instead of vanishing.
        sysctl: [
          ['net.ipv4.ip_forward', '1'],
          ['net.ipv4.conf.all.send_redirects', '0'],
          ['net.ipv4.conf.br0.send_redirects', '0'],
        ],
      },
      {
        namespace: c.gateway.namespace,
        ip: [
          'link set lo up',
          `addr add ${c.gateway.underlayIP}/${bits} dev ${c.gateway.underlayInterface}`,
          `link set ${c.gateway.underlayInterface} up`,
          `addr add ${c.gateway.wanIP}/${parseCidr(t.wanCIDR).bits} dev ${c.gateway.wanInterface}`,
          `link set ${c.gateway.wanInterface} up`,
        ],
        sysctl: [],
      },
    ];
    for (const n of c.nodes) {
      const cni = podNetworkSteps(c, n);
      links.push({ namespace: n.namespace, ip: cni.nodeLinks, sysctl: [] });
      const ip = [
        'link set lo up',
        `addr add ${n.ip}/${bits} dev ${n.interface}`,
        `link set ${n.interface} up`,
        `route add default via ${c.underlayRouterIP} dev ${n.interface}`,
        ...cni.nodeConfig,
      ];
      // The lab's own CNI routing (host-gw): every other node's pod block via that node.
      for (const other of c.nodes) {
        if (other !== n) ip.push(`route add ${other.podCIDR} via ${other.ip} dev ${n.interface}`);
      }
      config.push({ namespace: n.namespace, ip, sysctl: [['net.ipv4.ip_forward', '1'], ...cni.nodeSysctl] });
      for (const p of n.pods) config.push({ namespace: p.namespace, ip: cni.pods.get(p.namespace) ?? [], sysctl: [] });
    }
    const pods = c.nodes.reduce((s, n) => s + n.pods.length, 0);
    phases.push({ group: c.name, description: `${c.style} pod network, ${c.nodes.length} nodes, ${pods} pods`, stages: [links, config] });
  }
  return { namespaces: topologyNamespaces(t), phases };
}
