// The peering controller of one cluster. It turns what remotes announced (Peering) into decisions
// the data plane consumes (FabricPeer): a local remap for each remote range (IPAM, persisted), a
// tunnel interface, listen port, mark and table. Invalid announcements are refused with a reason
// in the Peering's `Valid` condition and no FabricPeer, so nothing reaches the kernel.
import { Ipam, IpamError, type IpamConfig, type IpamSnapshot } from '../ipam/index.ts';
import { probeTarget } from '../gateway/probe.ts';
import { inform, type Informer } from '../store/informer.ts';
import { isStoreError, type Resource, type Store } from '../store/types.ts';
import { sameData } from '../store/objects.ts';
import type { Logger } from '../log.ts';
import type { WeftMetrics } from '../observe/metrics.ts';
import {
  API_VERSION,
  Kinds,
  type ClusterNetworkSpec,
  type ClusterNetworkStatus,
  type FabricPeerSpec,
  type IpamStateSpec,
  type PeeringSpec,
  type PeeringStatus,
} from './resources.ts';
import { derivePeeringStatus, patchStatus, setCondition } from './status.ts';
import { checkPresharedKeyRef, validatePeeringSpec } from './validate.ts';
import { ReconcileLoop } from './reconcile-loop.ts';

export const FINALIZER = 'weft.io/fabric';
/**
 * Per-peering resources are numbered by a stable slot: port, mark, table, rule priority. Marks sit
 * in 0x1000–0x1063: clear of kube-proxy's 0x4000/0x8000 bits and of Cilium's 0x0f00 mask.
 */
export const SLOT_BASE = { listenPort: 51820, mark: 0x1000, table: 1900 } as const;
/** Default cap: the gateway Service in deploy/ publishes tunnel ports 51820–51829. */
export const DEFAULT_MAX_PEERINGS = 10;

export const DEFAULT_INTERFACE_PREFIX = 'wg-';
/** Slots are 0–499, three digits: the prefix leaves room for them in the kernel's 15 characters. */
const MAX_INTERFACE_PREFIX = 12;

/** Why a tunnel interface prefix cannot be used, or undefined. */
export function interfacePrefixProblem(prefix: string): string | undefined {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(prefix)) return `interface prefix ${JSON.stringify(prefix)} may only hold letters, digits, "_" and "-", and not start with "-"`;
  if (prefix.length > MAX_INTERFACE_PREFIX) return `interface prefix ${JSON.stringify(prefix)} is longer than ${MAX_INTERFACE_PREFIX} characters (interface names are prefix + slot, at most 15)`;
  return undefined;
}

type ClusterNetwork = Resource<ClusterNetworkSpec, ClusterNetworkStatus>;

/** What one reconcile pass shares between its peerings. */
interface Pass {
  cluster: ClusterNetwork;
  ipam: Ipam;
  fabric: Map<string, FabricPeer>;
  usedSlots: Set<number>;
  remotesTaken: Map<string, string>;
}
type Peering = Resource<PeeringSpec, PeeringStatus>;
type FabricPeer = Resource<FabricPeerSpec>;

export interface ControllerOptions {
  log: Logger;
  /** Prefix of tunnel interface names (≤ 12 characters); interface = prefix + slot, e.g. wg-0. */
  interfacePrefix?: string;
  resyncMs?: number;
  metrics?: WeftMetrics;
  /** At most this many peerings (tunnel ports from 51820 up); default DEFAULT_MAX_PEERINGS. */
  maxPeerings?: number;
}

export class PeeringController {
  private readonly store: Store;
  private readonly opts: ControllerOptions;
  private informer: Informer | null = null;
  private resync: NodeJS.Timeout | null = null;
  private readonly loop: ReconcileLoop;

  private readonly interfacePrefix: string;

  constructor(store: Store, opts: ControllerOptions) {
    this.store = store;
    this.opts = opts;
    this.interfacePrefix = opts.interfacePrefix ?? DEFAULT_INTERFACE_PREFIX;
    const bad = interfacePrefixProblem(this.interfacePrefix);
    if (bad) throw new Error(bad);
    this.loop = new ReconcileLoop('controller', async () => ((await this.reconcile()) ? { changed: 0 } : undefined), opts);
  }

  /** Why the last reconcile could not serve the peerings (IPAM refused the cluster), or null. */
  private blocked: string | null = null;

  /** Readiness: one reconcile completed with the cluster described. */
  get reconciledOnce(): boolean {
    return this.loop.reconciledOnce;
  }

  /**
   * Ready only while reconciles succeed: a controller that cannot serve its peerings (IPAM refused
   * the configuration or the snapshot, or every run fails) must say so, not stay green.
   */
  readiness(): { ready: boolean; detail: string } {
    if (this.blocked) return { ready: false, detail: this.blocked };
    if (this.loop.lastError) return { ready: false, detail: `reconcile failing: ${this.loop.lastError}` };
    if (!this.loop.reconciledOnce) return { ready: false, detail: 'waiting for the first reconcile (ClusterNetwork "local")' };
    return { ready: true, detail: 'reconciled' };
  }

  start(): void {
    this.informer = inform(this.store, [Kinds.ClusterNetwork, Kinds.Peering, Kinds.FabricPeer, Kinds.Secret], () => void this.trigger(), {
      onError: (err) => this.opts.log.error(`watch: ${err.message}`),
    });
    this.resync = setInterval(() => this.trigger(), this.opts.resyncMs ?? 5000);
  }

  async stop(): Promise<void> {
    this.informer?.stop();
    if (this.resync) clearInterval(this.resync);
    await this.loop.stop();
  }

  trigger(): Promise<void> {
    return this.loop.trigger();
  }

  /** One pass over every peering; false when the cluster is not described yet. */
  async reconcile(): Promise<boolean> {
    const cluster = await this.store.get<ClusterNetwork>(Kinds.ClusterNetwork, 'local');
    if (!cluster) return false;
    const ipamState = await this.store.get<Resource<IpamStateSpec>>(Kinds.IpamState, 'local');
    let ipam: Ipam;
    try {
      ipam = new Ipam(ipamConfig(cluster.spec), ipamState?.spec.snapshot as IpamSnapshot | undefined);
    } catch (err) {
      this.blocked = `IPAM refused the cluster configuration: ${(err as Error).message}`;
      this.opts.log.error(this.blocked);
      await patchStatus<ClusterNetworkStatus>(this.store, Kinds.ClusterNetwork, 'local', (s) => ({
        ...s,
        conditions: setCondition(s?.conditions, { type: 'Ready', status: 'False', reason: (err as IpamError).reason ?? 'InvalidConfig', message: (err as Error).message }),
      }));
      return false;
    }
    this.blocked = null;
    // Once: the snapshot saved at the end of this pass no longer holds them.
    for (const line of ipam.droppedOnLoad()) this.opts.log.error(`IPAM: ${line}`);
    const externalCIDR = ipam.externalCIDR();
    await patchStatus<ClusterNetworkStatus>(this.store, Kinds.ClusterNetwork, 'local', (s) => ({
      ...s,
      externalCIDR,
      conditions: setCondition(s?.conditions, { type: 'Ready', status: 'True', reason: 'Allocated', message: `external CIDR ${externalCIDR}` }),
    }));

    const peerings = (await this.store.list<Peering>(Kinds.Peering)).items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const fabric = new Map((await this.store.list<FabricPeer>(Kinds.FabricPeer)).items.map((f) => [f.metadata.name, f]));
    const usedSlots = new Set([...fabric.values()].map((f) => f.spec.listenPort - SLOT_BASE.listenPort));
    const remotesTaken = new Map<string, string>();
    const live = new Set<string>();

    const pass: Pass = { cluster, ipam, fabric, usedSlots, remotesTaken };
    for (const p of peerings) {
      const name = p.metadata.name;
      if (!p.metadata.deletionTimestamp) live.add(name);
      // One peering's trouble is that peering's: whatever goes wrong serving it (a rule the
      // validation missed, a store error on its objects) is shown on it, and the others are served.
      try {
        await this.servePeering(p, pass);
      } catch (err) {
        const message = `serving this peering failed: ${(err as Error).message}`;
        this.opts.log.error(`peering ${name}: ${message}`);
        await this.setValid(name, false, 'InternalError', message).catch((e) => this.opts.log.error(`peering ${name}: status: ${(e as Error).message}`));
      }
    }
    for (const [name, fp] of fabric) if (!live.has(name) && !peerings.some((p) => p.metadata.name === name)) await this.teardown(name, fp, ipam);

    const snapshot = ipam.snapshot();
    if (!sameData(emptyObjectsAsNull(snapshot), emptyObjectsAsNull(ipamState?.spec.snapshot))) {
      await this.store.apply({ kind: Kinds.IpamState, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: { snapshot } });
    }
    return true;
  }

  /** One Peering of a pass: tear down when deleted, else validate, allocate, publish its FabricPeer. */
  private async servePeering(p: Peering, pass: Pass): Promise<void> {
    const { cluster, ipam, fabric, usedSlots, remotesTaken } = pass;
    const name = p.metadata.name;
    if (p.metadata.deletionTimestamp) {
      await this.teardown(name, fabric.get(name), ipam);
      usedSlots.delete((fabric.get(name)?.spec.listenPort ?? 0) - SLOT_BASE.listenPort);
      // Metadata-only applies: the controller must not co-own the spec the peering's author wrote.
      await this.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name, resourceVersion: p.metadata.resourceVersion, finalizers: (p.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } });
      return;
    }
    if (!(p.metadata.finalizers ?? []).includes(FINALIZER)) {
      // With the version read: if the Peering changed meanwhile, Conflict, and the next run retries.
      await this.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name, resourceVersion: p.metadata.resourceVersion, finalizers: [...(p.metadata.finalizers ?? []), FINALIZER] } });
    }
    const problems = validatePeeringSpec(p.spec, cluster.status?.gatewayPublicKey);
    if (p.spec?.remoteClusterId === cluster.spec.clusterId) problems.push(`remoteClusterId ${p.spec.remoteClusterId} is this cluster's own id`);
    // The CRD refuses it on Kubernetes; the embedded store must not let a Peering named `a-first`
    // take over the tunnel and status of cluster `victim`.
    if (p.spec?.remoteClusterId && p.spec.remoteClusterId !== name) problems.push(`a Peering is named after its remote cluster: name ${name} but remoteClusterId ${p.spec.remoteClusterId}`);
    const taken = p.spec?.remoteClusterId ? remotesTaken.get(p.spec.remoteClusterId) : undefined;
    if (taken) problems.push(`peering ${taken} already connects to cluster ${p.spec.remoteClusterId}`);
    if (problems.length) {
      await this.setValid(name, false, 'InvalidPeering', problems.join('; '));
      return;
    }
    remotesTaken.set(p.spec.remoteClusterId, name);
    const secretProblem = await checkPresharedKeyRef(this.store, p.spec);
    if (secretProblem) {
      await this.setValid(name, false, secretProblem.reason, secretProblem.message);
      return;
    }

    let podCIDRRemap: string;
    let externalCIDRRemap: string;
    try {
      podCIDRRemap = ipam.remapPodCIDR(name, p.spec.remotePodCIDR);
      externalCIDRRemap = ipam.remapExternalCIDR(name, p.spec.remoteExternalCIDR);
    } catch (err) {
      if (!(err instanceof IpamError)) throw err;
      await this.setValid(name, false, err.reason, err.message);
      return;
    }
    const existing = fabric.get(name);
    let slot = existing ? existing.spec.listenPort - SLOT_BASE.listenPort : -1;
    if (slot < 0) {
      slot = 0;
      while (usedSlots.has(slot)) slot++;
      const max = this.opts.maxPeerings ?? DEFAULT_MAX_PEERINGS;
      if (slot >= max) {
        await this.setValid(name, false, 'TooManyPeerings', `at most ${max} peerings per gateway (tunnel ports ${SLOT_BASE.listenPort}–${SLOT_BASE.listenPort + max - 1}); raise --max-peerings and publish more ports`);
        return;
      }
      usedSlots.add(slot);
    }
    const remoteNodeCIDR = p.spec.remoteNodeCIDRs[0]!;
    const spec: FabricPeerSpec = {
      remoteClusterId: p.spec.remoteClusterId,
      remotePodCIDR: p.spec.remotePodCIDR,
      remoteExternalCIDR: p.spec.remoteExternalCIDR,
      podCIDRRemap,
      externalCIDRRemap,
      // From the slot, unique by construction (a remote id cut to 15 characters is not).
      interfaceName: `${this.interfacePrefix}${slot}`,
      listenPort: SLOT_BASE.listenPort + slot,
      remoteEndpoint: p.spec.remoteEndpoint,
      remotePublicKey: p.spec.remotePublicKey,
      slot,
      mark: SLOT_BASE.mark + slot,
      table: SLOT_BASE.table + slot,
      probeTarget: probeTarget({ remoteExternalCIDR: p.spec.remoteExternalCIDR, externalCIDRRemap }, p.spec.remoteGatewayNodeIP, remoteNodeCIDR),
      ...(p.spec.presharedKeySecretRef ? { presharedKeySecretRef: p.spec.presharedKeySecretRef } : {}),
    };
    // Compared as data: a real API server returns keys in its own order.
    if (!existing || !sameData(existing.spec, spec)) {
      await this.store.apply({ kind: Kinds.FabricPeer, apiVersion: API_VERSION, metadata: { name }, spec });
      this.opts.log.verbose(`peering ${name}: remote ${spec.remotePodCIDR} seen as ${podCIDRRemap}, external ${spec.remoteExternalCIDR} as ${externalCIDRRemap}, via ${spec.interfaceName}`);
    }
    await patchStatus<PeeringStatus>(this.store, Kinds.Peering, name, (s) =>
      derivePeeringStatus({
        ...(s ?? { phase: 'Connecting' }),
        podCIDRRemap,
        externalCIDRRemap,
        conditions: setCondition(s?.conditions, { type: 'Valid', status: 'True', reason: 'Accepted', message: `remote pods reachable at ${podCIDRRemap}` }),
      }),
    );
  }

  private async teardown(name: string, fp: FabricPeer | undefined, ipam: Ipam): Promise<void> {
    if (fp) {
      try {
        await this.store.delete(Kinds.FabricPeer, name);
      } catch (err) {
        if (!isStoreError(err, 'NotFound')) throw err;
      }
      this.opts.log.verbose(`peering ${name}: torn down`);
    }
    ipam.release(name);
  }

  /** The refusal last reported per peering, so an event is raised once per new reason. */
  private readonly refusals = new Map<string, string>();

  private async setValid(name: string, valid: boolean, reason: string, message: string): Promise<void> {
    if (!valid && this.refusals.get(name) !== `${reason}: ${message}`) {
      this.refusals.set(name, `${reason}: ${message}`);
      this.opts.log.error(`peering ${name} rejected: ${message}`);
      await this.store.recordEvent?.({ kind: Kinds.Peering, name }, 'Warning', reason, message);
    }
    if (valid) this.refusals.delete(name);
    await patchStatus<PeeringStatus>(this.store, Kinds.Peering, name, (s) =>
      derivePeeringStatus({ ...(s ?? { phase: 'Connecting' }), conditions: setCondition(s?.conditions, { type: 'Valid', status: valid ? 'True' : 'False', reason, message }) }),
    );
  }
}

/**
 * The IPAM snapshot as an API server keeps it: it lives in an x-kubernetes-preserve-unknown-fields
 * field, where server-side apply stores an empty object as null. Comparing both sides this way,
 * an unchanged snapshot is never written again.
 */
function emptyObjectsAsNull(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return null;
  return Object.fromEntries(entries.map(([k, v]) => [k, emptyObjectsAsNull(v)]));
}

export function ipamConfig(spec: ClusterNetworkSpec): IpamConfig {
  const nodeBits = Number(spec.nodeCIDRs[0]?.split('/')[1] ?? 24);
  return {
    podCIDR: spec.podCIDR,
    serviceCIDR: spec.serviceCIDR,
    nodeCIDRs: spec.nodeCIDRs,
    reserved: [spec.fabricCIDR],
    externalPrefixLength: nodeBits,
    ...(spec.remapPools ? { pools: spec.remapPools } : {}),
    ...(spec.maxRemoteCIDRSize !== undefined ? { maxRemoteCIDRSize: spec.maxRemoteCIDRSize } : {}),
  };
}
