// What runs on top of the lab's namespaces: per cluster an embedded store describing the cluster
// (its ClusterNetwork, Nodes and Pods, as a Kubernetes API would), and the real weft processes —
// a controller and a gateway in the gateway's namespace, an agent in every node's namespace.
// Peering goes through the same code a real deployment uses (src/control/peering.ts).
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_VERSION, Kinds, type ClusterNetworkSpec, type FabricPeerSpec, type PeeringSpec, type PeeringStatus } from '../control/resources.ts';
import { peerClusters, unpeerClusters, waitPeeringConnected, type ClusterHandle } from '../control/peering.ts';
import { FileStore } from '../store/index.ts';
import { translate } from '../ipam/index.ts';
import type { Resource, Store } from '../store/types.ts';
import { registerLabHooks, loadLab, type LabContext } from './lab.ts';
import { updateLabState } from './state.ts';
import { wireguardInterfacePrefix, type ClusterPlan, type LabTopology } from './topology.ts';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const nodeBin = path.join(repo, 'node_modules/.bin/node');
const weftCli = path.join(repo, 'src/cli/weft.ts');

export const FABRIC_CIDR = '100.126.0.0/16';
export const VXLAN = { id: 4242, port: 4789 } as const;

export type Role = 'controller' | 'gateway' | `agent-${string}`;

export function storeDir(stateDir: string, cluster: string): string {
  return path.join(stateDir, 'clusters', cluster, 'store');
}

function clusterDir(stateDir: string, cluster: string): string {
  return path.join(stateDir, 'clusters', cluster);
}

export function openClusterStore(stateDir: string, cluster: string): FileStore {
  return new FileStore(storeDir(stateDir, cluster));
}

/** The cluster as its API would describe it: written once at `up`. */
async function describeCluster(store: Store, t: LabTopology, c: ClusterPlan): Promise<void> {
  const spec: ClusterNetworkSpec = {
    clusterId: c.name,
    podCIDR: c.podCIDR,
    serviceCIDR: c.serviceCIDR,
    nodeCIDRs: [c.nodeCIDR],
    fabricCIDR: FABRIC_CIDR,
    vxlanId: VXLAN.id,
    vxlanPort: VXLAN.port,
    gatewayEndpoint: { host: c.gateway.wanIP, port: 0 },
    gatewayNodeIP: c.gateway.underlayIP,
    underlayMtu: t.options.underlayMtu ?? 1500,
    wanMtu: t.wanMtu,
  };
  await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec });
  for (const n of c.nodes) {
    await store.apply({ kind: Kinds.Node, apiVersion: API_VERSION, metadata: { name: n.name }, spec: { internalIP: n.ip, podCIDRs: [n.podCIDR] } });
    for (const p of n.pods) {
      await store.apply({ kind: Kinds.Pod, apiVersion: API_VERSION, metadata: { name: p.name }, spec: { nodeName: n.name, podIP: p.ip } });
    }
  }
}

/** Start one weft process of a cluster, detached, logging to the state dir; returns its pid. */
export function startProcess(ctx: { stateDir: string; topology: LabTopology }, cluster: string, role: Role): number {
  const c = ctx.topology.clusters.find((x) => x.name === cluster);
  if (!c) throw new Error(`no cluster ${cluster}`);
  const store = storeDir(ctx.stateDir, cluster);
  let ns: string;
  let args: string[];
  if (role === 'controller') {
    ns = c.gateway.namespace;
    // The controller shares the gateway's namespace: its metrics go on 9091, the gateway's on 9090.
    args = ['controller', '--store', store, '--interface-prefix', wireguardInterfacePrefix(ctx.topology.id, c.name), '--metrics-port', '9091'];
  } else if (role === 'gateway') {
    ns = c.gateway.namespace;
    args = ['gateway', '--store', store, '--key', path.join(clusterDir(ctx.stateDir, cluster), 'gateway.key')];
  } else {
    const nodeName = role.slice('agent-'.length);
    const node = c.nodes.find((n) => n.name === nodeName);
    if (!node) throw new Error(`no node ${nodeName} in cluster ${cluster}`);
    ns = node.namespace;
    args = ['agent', '--store', store, '--node', nodeName];
  }
  const logDir = path.join(ctx.stateDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const log = fs.openSync(path.join(logDir, `${cluster}-${role}.log`), 'a');
  const child = spawn('ip', ['netns', 'exec', ns, nodeBin, weftCli, ...args], { detached: true, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  child.unref();
  return child.pid!;
}

export function rolesOf(c: ClusterPlan): Role[] {
  return ['controller', 'gateway', ...c.nodes.map((n) => `agent-${n.name}` as Role)];
}

export function clusterHandle(stateDir: string, cluster: string): ClusterHandle & { store: FileStore } {
  return { store: openClusterStore(stateDir, cluster), label: cluster };
}

async function withClusters<T>(stateDir: string, names: string[], fn: (handles: (ClusterHandle & { store: FileStore })[]) => Promise<T>): Promise<T> {
  const ctx = loadLab(stateDir);
  if (!ctx) throw new Error(`no lab in ${stateDir}`);
  for (const n of names) if (!ctx.topology.clusters.some((c) => c.name === n)) throw new Error(`no cluster ${n} in the lab (have ${ctx.topology.clusters.map((c) => c.name).join(', ')})`);
  const handles = names.map((n) => clusterHandle(stateDir, n));
  try {
    return await fn(handles);
  } finally {
    await Promise.all(handles.map((h) => h.store.close()));
  }
}

export function peer(stateDir: string, a: string, b: string, opts: { presharedKey?: string } = {}): Promise<void> {
  if (a === b) throw new Error('a cluster cannot peer with itself');
  return withClusters(stateDir, [a, b], ([ha, hb]) => peerClusters(ha!, hb!, opts));
}

export function unpeer(stateDir: string, a: string, b: string): Promise<void> {
  return withClusters(stateDir, [a, b], ([ha, hb]) => unpeerClusters(ha!, hb!));
}

/** Wait until the peering between a and b is Connected on both sides (or fail with the reason). */
export function waitConnected(stateDir: string, a: string, b: string, timeoutMs = 20_000): Promise<void> {
  return withClusters(stateDir, [a, b], ([ha, hb]) => waitPeeringConnected(ha!, hb!, timeoutMs));
}

export interface FabricOptions {
  fullMesh: boolean;
}

/** Register the fabric on the lab's up/status hooks. */
export function registerFabric(opts: FabricOptions): () => void {
  return registerLabHooks({
    name: 'fabric',
    async afterUp(ctx: LabContext) {
      const started = Date.now();
      for (const c of ctx.topology.clusters) {
        fs.mkdirSync(clusterDir(ctx.stateDir, c.name), { recursive: true });
        const store = openClusterStore(ctx.stateDir, c.name);
        try {
          await describeCluster(store, ctx.topology, c);
        } finally {
          await store.close();
        }
        const pids: Record<string, number> = {};
        for (const role of rolesOf(c)) pids[role] = startProcess(ctx, c.name, role);
        await updateLabState(ctx.stateDir, (s) => ({ ...s, extra: { ...s.extra, [`pids-${c.name}`]: pids } }));
      }
      ctx.log(`started controllers, gateways and ${ctx.topology.clusters.reduce((n, c) => n + c.nodes.length, 0)} node agents in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (opts.fullMesh) {
        const names = ctx.topology.clusters.map((c) => c.name);
        const pairs: [string, string][] = [];
        for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) pairs.push([names[i]!, names[j]!]);
        const t0 = Date.now();
        await Promise.all(pairs.map(([a, b]) => peer(ctx.stateDir, a, b)));
        await Promise.all(pairs.map(([a, b]) => waitConnected(ctx.stateDir, a, b)));
        ctx.log(`full mesh: ${pairs.length} peerings connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        for (const line of await trafficCheck(ctx)) ctx.log(line);
      }
    },
    async status(ctx, status) {
      for (const c of ctx.topology.clusters) {
        if (!fs.existsSync(storeDir(ctx.stateDir, c.name))) continue;
        const store = openClusterStore(ctx.stateDir, c.name);
        try {
          const tunnels = new Map((await store.list<Resource<FabricPeerSpec>>(Kinds.FabricPeer)).items.map((f) => [f.metadata.name, f.spec.interfaceName]));
          for (const p of (await store.list<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering)).items) {
            const s = p.status;
            const interfaceName = tunnels.get(p.metadata.name);
            status.peerings.push({
              local: c.name,
              remote: p.spec.remoteClusterId,
              phase: s?.phase ?? 'Pending',
              remotePodCIDR: p.spec.remotePodCIDR,
              seenAs: s?.podCIDRRemap ?? '',
              ...(interfaceName ? { interfaceName } : {}),
              latencyMs: s?.latencyMs,
              lastHandshake: s?.lastHandshake,
              txBytes: s?.txBytes,
              rxBytes: s?.rxBytes,
              ...(s?.message ? { message: s.message } : {}),
            });
          }
        } finally {
          await store.close();
        }
      }
    },
  });
}

/**
 * Show that traffic flows: from the first pod of every cluster, one ping to the first pod of every
 * other cluster, at the address the sender's cluster knows it by. Throws when any ping fails.
 */
export async function trafficCheck(ctx: { stateDir: string; topology: LabTopology }): Promise<string[]> {
  const lines: string[] = ['traffic check (first pod of each cluster → first pod of each other cluster, at its remapped address):'];
  const failed: string[] = [];
  for (const x of ctx.topology.clusters) {
    const store = openClusterStore(ctx.stateDir, x.name);
    try {
      for (const y of ctx.topology.clusters) {
        if (x === y) continue;
        const from = x.nodes[0]!.pods[0]!;
        const to = y.nodes[0]!.pods[0]!;
        const peering = await store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, y.name);
        const remap = peering?.status?.podCIDRRemap;
        if (!remap) {
          failed.push(`${x.name} has no remap for ${y.name}`);
          continue;
        }
        const dst = translate(to.ip, y.podCIDR, remap);
        const r = await run('ip', ['netns', 'exec', from.namespace, 'ping', '-n', '-c', '1', '-W', '2', dst]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '', failed: true }));
        const ms = r.stdout.match(/time=([\d.]+) ms/)?.[1];
        lines.push(`  ${x.name}/${from.name} ${from.ip} → ${y.name}/${to.name} ${to.ip} as ${dst}: ${ms ? `ok ${ms} ms` : 'FAILED'}`);
        if (!ms) failed.push(`${x.name}/${from.name} → ${y.name}/${to.name}`);
      }
    } finally {
      await store.close();
    }
  }
  if (failed.length) throw new Error(`traffic check failed: ${failed.join(', ')}`);
  return lines;
}
