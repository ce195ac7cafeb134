// Establishing and removing a peering between two clusters, given a store for each: what the lab's
// `weft lab peer a b` does, and what `weft peer --kubeconfig A --remote-kubeconfig B` does with two
// Kubernetes stores. Each side announces itself from its ClusterNetwork; each side's controller then
// allocates the tunnel port for that peering, and the other side is told the port.
import { isStoreError, type Resource, type Store } from '../store/types.ts';
import { API_VERSION, DEFAULT_PSK_KEY, Kinds, type ClusterNetworkSpec, type ClusterNetworkStatus, type PeeringSpec, type PeeringStatus } from './resources.ts';

type ClusterNetwork = Resource<ClusterNetworkSpec, ClusterNetworkStatus>;
type Peering = Resource<PeeringSpec, PeeringStatus>;

export interface ClusterHandle {
  store: Store;
  /** For messages. */
  label: string;
}

async function poll<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | null | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** What a cluster tells a remote about itself, once its controller and gateway are up. */
export async function announcement(c: ClusterHandle, timeoutMs: number): Promise<{ clusterId: string; spec: Omit<PeeringSpec, 'remoteEndpoint'> & { remoteEndpointHost: string } }> {
  const cn = await poll(`cluster ${c.label}: external CIDR and gateway key`, timeoutMs, async () => {
    const obj = await c.store.get<ClusterNetwork>(Kinds.ClusterNetwork, 'local');
    return obj?.status?.externalCIDR && obj.status.gatewayPublicKey ? obj : undefined;
  });
  return {
    clusterId: cn.spec.clusterId,
    spec: {
      remoteClusterId: cn.spec.clusterId,
      remotePodCIDR: cn.spec.podCIDR,
      remoteExternalCIDR: cn.status!.externalCIDR!,
      remoteNodeCIDRs: cn.spec.nodeCIDRs,
      remoteEndpointHost: cn.spec.gatewayEndpoint.host,
      remotePublicKey: cn.status!.gatewayPublicKey!,
      remoteGatewayNodeIP: cn.status?.gatewayNodeIP ?? cn.spec.gatewayNodeIP,
    },
  };
}

/**
 * Peer two clusters. Resolves once both sides accepted the peering (not necessarily connected).
 * With `presharedKey` (base64, as `wg genpsk` prints it), each side gets a Secret holding it and
 * its Peering references that Secret.
 */
export async function peerClusters(a: ClusterHandle, b: ClusterHandle, opts: { timeoutMs?: number; presharedKey?: string } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const [annA, annB] = await Promise.all([announcement(a, timeoutMs), announcement(b, timeoutMs)]);
  const secretName = (remoteId: string) => `weft-psk-${remoteId}`;
  if (opts.presharedKey) {
    const data = { [DEFAULT_PSK_KEY]: Buffer.from(opts.presharedKey).toString('base64') };
    await Promise.all([
      a.store.apply({ kind: Kinds.Secret, apiVersion: 'v1', metadata: { name: secretName(annB.clusterId) }, spec: { data } }),
      b.store.apply({ kind: Kinds.Secret, apiVersion: 'v1', metadata: { name: secretName(annA.clusterId) }, spec: { data } }),
    ]);
  }
  const write = async (side: ClusterHandle, remote: typeof annA, port: number) => {
    const { remoteEndpointHost, ...rest } = remote.spec;
    const spec: PeeringSpec = { ...rest, remoteEndpoint: { host: remoteEndpointHost, port } };
    if (opts.presharedKey) spec.presharedKeySecretRef = { name: secretName(remote.clusterId) };
    await side.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name: remote.clusterId }, spec });
  };
  const existingPort = async (side: ClusterHandle, name: string) => (await side.store.get<Peering>(Kinds.Peering, name))?.spec.remoteEndpoint.port ?? 0;
  // Phase 1: both sides learn about each other (ports kept if this is a re-run).
  await Promise.all([write(a, annB, await existingPort(a, annB.clusterId)), write(b, annA, await existingPort(b, annA.clusterId))]);
  // Phase 2: each controller allocated its tunnel port; tell the other side.
  const localEndpoint = (side: ClusterHandle, name: string) =>
    poll(`cluster ${side.label}: peering ${name} accepted`, timeoutMs, async () => {
      const p = await side.store.get<Peering>(Kinds.Peering, name);
      if (p?.status?.phase === 'Error') throw new Error(`cluster ${side.label} rejected peering ${name}: ${p.status.message ?? p.status.reason}`);
      return p?.status?.localEndpoint;
    });
  const [epA, epB] = await Promise.all([localEndpoint(a, annB.clusterId), localEndpoint(b, annA.clusterId)]);
  await Promise.all([write(a, annB, epB.port), write(b, annA, epA.port)]);
}

/** Remove the peering on both sides (each side's controller tears down its state). */
export async function unpeerClusters(a: ClusterHandle, b: ClusterHandle, opts: { timeoutMs?: number; wait?: boolean } = {}): Promise<void> {
  const idOf = async (c: ClusterHandle) => (await c.store.get<ClusterNetwork>(Kinds.ClusterNetwork, 'local'))?.spec.clusterId;
  const [idA, idB] = await Promise.all([idOf(a), idOf(b)]);
  const remove = async (side: ClusterHandle, name: string | undefined) => {
    if (!name) return;
    try {
      await side.store.delete(Kinds.Peering, name);
    } catch (err) {
      if (!isStoreError(err, 'NotFound')) throw err;
    }
    if (opts.wait !== false) await poll(`cluster ${side.label}: peering ${name} removed`, opts.timeoutMs ?? 20_000, async () => !(await side.store.get(Kinds.Peering, name)));
  };
  await Promise.all([remove(a, idB), remove(b, idA)]);
}

/** Wait until the peering is Connected on both sides; fail with each side's reason otherwise. */
export async function waitPeeringConnected(a: ClusterHandle, b: ClusterHandle, timeoutMs = 20_000): Promise<void> {
  const idOf = async (c: ClusterHandle) => (await c.store.get<ClusterNetwork>(Kinds.ClusterNetwork, 'local'))?.spec.clusterId;
  const [idA, idB] = await Promise.all([idOf(a), idOf(b)]);
  if (!idA || !idB) throw new Error('both clusters must be described (ClusterNetwork "local")');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [pa, pb] = await Promise.all([a.store.get<Peering>(Kinds.Peering, idB), b.store.get<Peering>(Kinds.Peering, idA)]);
    if (pa?.status?.phase === 'Connected' && pb?.status?.phase === 'Connected') return;
    if (Date.now() > deadline) {
      const why = (label: string, p: Peering | undefined) => `${label}: ${p?.status?.phase ?? 'absent'}${p?.status?.message ? ` (${p.status.message})` : ''}`;
      throw new Error(`peering ${idA}↔${idB} not connected after ${timeoutMs} ms: ${why(idA, pa)}; ${why(idB, pb)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
