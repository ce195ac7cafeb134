// How weft's kinds map onto the Kubernetes API. ClusterNetwork, Peering, FabricPeer and IpamState
// are weft's CRDs (weft.io/v1alpha1; ClusterNetwork cluster-scoped, the others in the release
// namespace). Node and Pod are the cluster's own core/v1 objects, read-only to weft and converted
// to the small specs the pieces consume: a Node's internal IP and pod CIDRs, a Pod's node and IP.
// Secret is core/v1 too (the release namespace's preshared-key Secrets): its `data` is the spec.
import { API_VERSION, Kinds, type NodeSpec, type PodSpec, type SecretSpec } from '../control/resources.ts';
import type { ObjectMeta, Resource } from '../store/types.ts';

/** An object as the API serves it (CRD objects are plain JSON; typed core objects carry Dates). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: Record<string, unknown>;
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}

export interface KindMapping {
  /** The kind as weft's code names it. */
  kind: string;
  /** The apiVersion ApplyInput carries and objects come back with. */
  apiVersion: string;
  /** API group ('' for core), version and plural resource name: the URL. */
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  /**
   * Where a list or watch looks when no namespace is given: the store's namespace ('home', the
   * same place get and apply use), or every namespace ('all', e.g. the cluster's pods).
   */
  listScope: 'home' | 'all';
  /** The status subresource exists (status writes go to /status). */
  statusSubresource: boolean;
  /** weft may apply and delete these (false: the cluster's own objects, read only). */
  writable: boolean;
  /**
   * Core kinds whose API form is not {spec, status}: how an object becomes a Resource, and what
   * an apply sends for a spec (the fields beside metadata).
   */
  convert?: { toResource(obj: KubeObject): Resource; toBody?(spec: unknown): Record<string, unknown> };
}

const WEFT_GROUP = API_VERSION.split('/')[0]!;
const WEFT_VERSION = API_VERSION.split('/')[1]!;

/** A CRD-backed kind (also used by tests for their own kinds). */
export function customKind(k: { kind: string; group: string; version: string; plural?: string; namespaced: boolean; statusSubresource?: boolean; listScope?: 'home' | 'all' }): KindMapping {
  return {
    kind: k.kind,
    apiVersion: `${k.group}/${k.version}`,
    group: k.group,
    version: k.version,
    plural: k.plural ?? `${k.kind.toLowerCase()}s`,
    namespaced: k.namespaced,
    listScope: k.listScope ?? 'home',
    statusSubresource: k.statusSubresource ?? true,
    writable: true,
  };
}

function isIPv4(s: unknown): s is string {
  return typeof s === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(s);
}

/** RFC 3339 in seconds, as metav1.Time serialises (typed clients hand back Dates). */
export function kubeTime(t: unknown): string | undefined {
  if (t === undefined || t === null || t === '') return undefined;
  if (t instanceof Date) return t.toISOString().replace(/\.\d+Z$/, 'Z');
  return String(t);
}

function nonEmptyMap(v: unknown): Record<string, string> | undefined {
  return v && typeof v === 'object' && Object.keys(v).length > 0 ? { ...(v as Record<string, string>) } : undefined;
}

/** The metadata weft's Resource carries (no managedFields, ownerReferences, ...). */
export function objectMeta(raw: Record<string, unknown> | undefined): ObjectMeta {
  const m = raw ?? {};
  const meta: ObjectMeta = {
    name: String(m.name ?? ''),
    uid: String(m.uid ?? ''),
    resourceVersion: String(m.resourceVersion ?? ''),
    generation: typeof m.generation === 'number' ? m.generation : 0,
    creationTimestamp: kubeTime(m.creationTimestamp) ?? '',
  };
  if (typeof m.namespace === 'string' && m.namespace !== '') meta.namespace = m.namespace;
  const deletion = kubeTime(m.deletionTimestamp);
  if (deletion) meta.deletionTimestamp = deletion;
  const labels = nonEmptyMap(m.labels);
  if (labels) meta.labels = labels;
  const annotations = nonEmptyMap(m.annotations);
  if (annotations) meta.annotations = annotations;
  if (Array.isArray(m.finalizers) && m.finalizers.length > 0) meta.finalizers = [...(m.finalizers as string[])];
  // Key order as the embedded stores write it: name, namespace, then the rest.
  const { name, namespace, ...rest } = meta;
  return namespace === undefined ? { name, ...rest } : { name, namespace, ...rest };
}

/** A Node as weft sees it: its (IPv4 if it has one) internal IP and its pod CIDRs. */
export function nodeToResource(obj: KubeObject): Resource<NodeSpec> {
  const spec = (obj.spec ?? {}) as { podCIDR?: string; podCIDRs?: string[] };
  const status = (obj.status ?? {}) as { addresses?: { type?: string; address?: string }[] };
  const internal = (status.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address ?? '');
  const podCIDRs = spec.podCIDRs && spec.podCIDRs.length > 0 ? [...spec.podCIDRs] : spec.podCIDR ? [spec.podCIDR] : [];
  return { apiVersion: 'v1', kind: 'Node', metadata: objectMeta(obj.metadata), spec: { internalIP: internal.find(isIPv4) ?? internal[0] ?? '', podCIDRs } };
}

/** A Pod as weft sees it: the node it runs on and its (IPv4 if it has one) IP; '' until known. */
export function podToResource(obj: KubeObject): Resource<PodSpec> {
  const spec = (obj.spec ?? {}) as { nodeName?: string };
  const status = (obj.status ?? {}) as { podIP?: string; podIPs?: { ip?: string }[] };
  const ips = (status.podIPs ?? []).map((p) => p.ip ?? '');
  const podIP = ips.find(isIPv4) ?? status.podIP ?? '';
  return { apiVersion: 'v1', kind: 'Pod', metadata: objectMeta(obj.metadata), spec: { nodeName: spec.nodeName ?? '', podIP } };
}

/** A Secret as weft sees it: its data (base64 values). */
export function secretToResource(obj: KubeObject): Resource<SecretSpec> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: objectMeta(obj.metadata), spec: { data: { ...((obj.data ?? {}) as Record<string, string>) } } };
}

function secretBody(spec: unknown): Record<string, unknown> {
  const data = (spec as Partial<SecretSpec> | null)?.data;
  return data === undefined ? {} : { data };
}

export const WEFT_KINDS: readonly KindMapping[] = [
  customKind({ kind: Kinds.ClusterNetwork, group: WEFT_GROUP, version: WEFT_VERSION, plural: 'clusternetworks', namespaced: false }),
  customKind({ kind: Kinds.Peering, group: WEFT_GROUP, version: WEFT_VERSION, plural: 'peerings', namespaced: true }),
  customKind({ kind: Kinds.FabricPeer, group: WEFT_GROUP, version: WEFT_VERSION, plural: 'fabricpeers', namespaced: true }),
  customKind({ kind: Kinds.IpamState, group: WEFT_GROUP, version: WEFT_VERSION, plural: 'ipamstates', namespaced: true }),
  {
    kind: Kinds.Node,
    apiVersion: 'v1',
    group: '',
    version: 'v1',
    plural: 'nodes',
    namespaced: false,
    listScope: 'all',
    statusSubresource: true,
    writable: false,
    convert: { toResource: nodeToResource },
  },
  {
    kind: Kinds.Pod,
    apiVersion: 'v1',
    group: '',
    version: 'v1',
    plural: 'pods',
    namespaced: true,
    listScope: 'all',
    statusSubresource: true,
    writable: false,
    convert: { toResource: podToResource },
  },
  {
    kind: Kinds.Secret,
    apiVersion: 'v1',
    group: '',
    version: 'v1',
    plural: 'secrets',
    namespaced: true,
    listScope: 'home',
    statusSubresource: false,
    writable: true,
    convert: { toResource: secretToResource, toBody: secretBody },
  },
];

/** The collection URL of a kind (for watches): /api/v1/pods, /apis/weft.io/v1alpha1/namespaces/x/peerings. */
export function collectionPath(m: KindMapping, namespace: string | undefined): string {
  const base = m.group === '' ? `/api/${m.version}` : `/apis/${m.group}/${m.version}`;
  return `${base}${namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${m.plural}`;
}
