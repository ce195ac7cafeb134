// The node agent: a VXLAN link from this node to the gateway, and a routing table that sends the
// remote clusters' remapped ranges over it. Traffic coming back from the gateway reaches local pods
// through the node's own routes, whatever the CNI is. The desired state is recomputed and
// reconciled every second, so a route, rule or link someone deleted comes back within seconds.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { reconcile as reconcileKernel } from '../kernel/index.ts';
import { inform, type Informer } from '../store/informer.ts';
import type { Resource, Store } from '../store/types.ts';
import { Kinds, effectiveCluster, type ClusterNetworkSpec, type ClusterNetworkStatus, type FabricPeerSpec, type NodeSpec } from '../control/resources.ts';
import { planAgent } from './plan.ts';
import { acceptPeers } from '../gateway/validate.ts';
import { ReconcileLoop } from '../control/reconcile-loop.ts';
import { WEFT_OWNERSHIP } from './ownership.ts';
import type { Logger } from '../log.ts';
import type { WeftMetrics } from '../observe/metrics.ts';

const run = promisify(execFile);

export interface AgentOptions {
  log: Logger;
  nodeName: string;
  resyncMs?: number;
  metrics?: WeftMetrics;
}

export class NodeAgent {
  private readonly store: Store;
  private readonly opts: AgentOptions;
  private informer: Informer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly loop: ReconcileLoop;

  constructor(store: Store, opts: AgentOptions) {
    this.store = store;
    this.opts = opts;
    this.loop = new ReconcileLoop('agent', () => this.reconcile(), opts);
  }

  /** Readiness: the node was programmed at least once. */
  get reconciledOnce(): boolean {
    return this.loop.reconciledOnce;
  }

  start(): void {
    this.informer = inform(this.store, [Kinds.ClusterNetwork, Kinds.Node, Kinds.FabricPeer], () => void this.trigger(), {
      onError: (err) => this.opts.log.error(`watch: ${err.message}`),
    });
    this.timer = setInterval(() => void this.trigger(), this.opts.resyncMs ?? 1000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.informer?.stop();
    if (this.timer) clearInterval(this.timer);
    await this.loop.stop();
  }

  trigger(): Promise<void> {
    return this.loop.trigger();
  }

  private underlay: { address: string; dev: string } | null = null;

  /** The node's underlay interface, looked up once and again only if it disappears or the IP changes. */
  private async underlayFor(address: string): Promise<string> {
    if (this.underlay?.address === address && fs.existsSync(`/sys/class/net/${this.underlay.dev}`)) return this.underlay.dev;
    this.underlay = { address, dev: await deviceWithAddress(address) };
    return this.underlay.dev;
  }

  private refusedBefore = '';

  /** FabricPeers the plan leaves out (each on its own): said once, when the set changes. */
  private noteRefused(refused: string[]): void {
    const text = refused.join('; ');
    if (text && text !== this.refusedBefore) this.opts.log.error(`left out of the plan: ${text}`);
    this.refusedBefore = text;
  }

  /** Returns { changed } once the node was programmed, undefined while inputs are missing. */
  private async reconcile(): Promise<{ changed: number } | undefined> {
    if (this.stopped) return undefined;
    const cluster = await this.store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
    const node = await this.store.get<Resource<NodeSpec>>(Kinds.Node, this.opts.nodeName);
    const externalCIDR = cluster?.status?.externalCIDR;
    if (!cluster || !node || !externalCIDR) return undefined;
    const spec = effectiveCluster(cluster.spec, cluster.status);
    if (node.spec.internalIP === spec.gatewayNodeIP) return { changed: 0 }; // the gateway programs its own node
    const all = (await this.store.list<Resource<FabricPeerSpec>>(Kinds.FabricPeer)).items.map((f) => f.spec);
    const { accepted: peers, refused } = acceptPeers(all, spec, externalCIDR);
    this.noteRefused(refused);
    const underlayDev = await this.underlayFor(node.spec.internalIP);
    const plan = planAgent({ cluster: spec, externalCIDR, node: { name: this.opts.nodeName, internalIP: node.spec.internalIP, underlayDev }, peers });
    const report = await reconcileKernel(plan, { owned: WEFT_OWNERSHIP });
    for (const line of report.changed) this.opts.log.verbose(`kernel: ${line}`);
    for (const line of report.errors) this.opts.log.error(`kernel: ${line}`);
    return { changed: report.changed.length };
  }
}

/** The interface that carries `address` in this namespace (the node's underlay). */
export async function deviceWithAddress(address: string): Promise<string> {
  const { stdout } = await run('ip', ['-j', '-4', 'addr', 'show']);
  for (const link of JSON.parse(stdout) as { ifname: string; addr_info: { local: string }[] }[]) {
    if (link.addr_info.some((a) => a.local === address)) return link.ifname;
  }
  throw new Error(`no interface has the node address ${address}`);
}
