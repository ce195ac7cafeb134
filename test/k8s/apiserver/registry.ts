// The resource types the fake API server serves: the built-in ones weft touches (core/v1 nodes,
// pods, secrets, events; coordination.k8s.io/v1 leases) and custom resources from
// CustomResourceDefinition manifests (deploy/crds/*.yaml), each with the per-type behaviour the
// real registry has (scope, status subresource, generation, what a create may set).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { CelTwin } from '../../../src/k8s/schema.ts';
import { checkStructural, type Cause, type Schema } from './schema.ts';

export interface ResourceType {
  group: string;
  version: string;
  /** Plural, lowercase: the URL segment. */
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  /** Status is written only through /status; the main resource ignores status changes. */
  statusSubresource: boolean;
  /** metadata.generation is kept and bumps on changes outside metadata and status. */
  generation: boolean;
  /** An update (PUT) must carry metadata.resourceVersion (custom resources). */
  requireResourceVersion: boolean;
  /** A create may set status (nodes: the kubelet registers with status). */
  statusOnCreate: boolean;
  crd: boolean;
  /** openAPIV3Schema of the whole object (custom resources). */
  schema?: Schema;
  /** JavaScript twins of the schema's CEL rules (x-kubernetes-validations), by rule text. */
  cel?: Readonly<Record<string, CelTwin>>;
  /** Decoding checks of built-in types (a 400 with this message when it fails). */
  decode?(obj: Record<string, unknown>): string | null;
  /** Validation of built-in types beyond metadata (422 causes). */
  validate?(obj: Record<string, unknown>): Cause[];
}

export function apiVersionOf(rt: ResourceType): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

/** "widgets.test.weft.dev", "pods", "leases.coordination.k8s.io": how messages name a resource. */
export function qualifiedResource(rt: ResourceType): string {
  return rt.group ? `${rt.resource}.${rt.group}` : rt.resource;
}

/** "Widget.test.weft.dev", "Pod": how Invalid messages name a kind. */
export function qualifiedKind(rt: ResourceType): string {
  return rt.group ? `${rt.kind}.${rt.group}` : rt.kind;
}

export function storageKey(rt: ResourceType): string {
  return `${rt.group}/${rt.resource}`;
}

// MicroTime: the API server parses these with Go's layout "2006-01-02T15:04:05.000000Z07:00",
// which wants exactly six fractional digits (Date#toISOString has three, and is refused).
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function leaseDecode(obj: Record<string, unknown>): string | null {
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  for (const f of ['acquireTime', 'renewTime']) {
    const v = spec[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || !MICRO_TIME.test(v)) {
      const frac = typeof v === 'string' ? (v.match(/\.\d*Z?$/)?.[0] ?? v) : String(v);
      return `Lease in version "v1" cannot be handled as a Lease: parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(frac)} as ".000000"`;
    }
  }
  return null;
}

function leaseValidate(obj: Record<string, unknown>): Cause[] {
  const spec = (obj.spec ?? {}) as Record<string, unknown>;
  const causes: Cause[] = [];
  const d = spec.leaseDurationSeconds;
  if (d !== undefined && d !== null && (!Number.isInteger(d) || (d as number) <= 0)) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.leaseDurationSeconds', message: `Invalid value: ${String(d)}: must be greater than 0` });
  }
  const t = spec.leaseTransitions;
  if (t !== undefined && t !== null && (!Number.isInteger(t) || (t as number) < 0)) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.leaseTransitions', message: `Invalid value: ${String(t)}: must be greater than or equal to 0` });
  }
  return causes;
}

function secretDecode(obj: Record<string, unknown>): string | null {
  const data = obj.data;
  if (data === undefined || data === null) return null;
  if (typeof data !== 'object') return 'Secret in version "v1" cannot be handled as a Secret: data must be a map';
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
      return `Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[${JSON.stringify(k)}]`;
    }
  }
  return null;
}

function builtin(p: Partial<ResourceType> & Pick<ResourceType, 'group' | 'version' | 'resource' | 'singular' | 'kind' | 'namespaced'>): ResourceType {
  return {
    listKind: `${p.kind}List`,
    statusSubresource: false,
    generation: false,
    requireResourceVersion: false,
    statusOnCreate: false,
    crd: false,
    ...p,
  };
}

export const BUILTIN_TYPES: readonly ResourceType[] = [
  builtin({ group: '', version: 'v1', resource: 'nodes', singular: 'node', kind: 'Node', namespaced: false, statusSubresource: true, statusOnCreate: true }),
  builtin({ group: '', version: 'v1', resource: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, statusSubresource: true }),
  builtin({ group: '', version: 'v1', resource: 'secrets', singular: 'secret', kind: 'Secret', namespaced: true, decode: secretDecode }),
  builtin({ group: '', version: 'v1', resource: 'events', singular: 'event', kind: 'Event', namespaced: true }),
  builtin({ group: 'coordination.k8s.io', version: 'v1', resource: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, decode: leaseDecode, validate: leaseValidate }),
];

/** A CustomResourceDefinition (apiextensions.k8s.io/v1) as the fake needs it. */
export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular?: string; listKind?: string; shortNames?: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema?: { openAPIV3Schema: Schema };
      subresources?: { status?: Record<string, never> };
    }[];
  };
}

/** The resource types a CRD defines (one per served version), after the checks the API server makes. */
export function typesFromCrd(crd: CustomResourceDefinition, cel?: Readonly<Record<string, CelTwin>>): ResourceType[] {
  const what = `CustomResourceDefinition ${JSON.stringify(crd?.metadata?.name)}`;
  if (crd?.kind !== 'CustomResourceDefinition' || crd.apiVersion !== 'apiextensions.k8s.io/v1') throw new Error(`${what}: not an apiextensions.k8s.io/v1 CustomResourceDefinition`);
  const { group, names, scope, versions } = crd.spec;
  if (crd.metadata.name !== `${names.plural}.${group}`) throw new Error(`${what}: metadata.name must be spec.names.plural+"."+spec.group (${names.plural}.${group})`);
  if (names.plural !== names.plural.toLowerCase()) throw new Error(`${what}: spec.names.plural must be lowercase`);
  if (scope !== 'Namespaced' && scope !== 'Cluster') throw new Error(`${what}: spec.scope must be Namespaced or Cluster`);
  if (versions.filter((v) => v.storage).length !== 1) throw new Error(`${what}: exactly one version must be the storage version`);
  const out: ResourceType[] = [];
  for (const v of versions) {
    if (!v.served) continue;
    const schema = v.schema?.openAPIV3Schema;
    if (!schema) throw new Error(`${what}: version ${v.name} has no schema (apiextensions.k8s.io/v1 requires one)`);
    const problems = checkStructural(schema);
    if (problems.length) throw new Error(`${what}: version ${v.name}: schema is not structural: ${problems.join('; ')}`);
    out.push({
      group,
      version: v.name,
      resource: names.plural,
      singular: names.singular ?? names.kind.toLowerCase(),
      kind: names.kind,
      listKind: names.listKind ?? `${names.kind}List`,
      namespaced: scope === 'Namespaced',
      statusSubresource: v.subresources?.status !== undefined,
      generation: true,
      requireResourceVersion: true,
      statusOnCreate: v.subresources?.status === undefined,
      crd: true,
      schema,
      ...(cel ? { cel } : {}),
    });
  }
  return out;
}

/** Every CustomResourceDefinition in the YAML files of `dir` (multi-document files allowed). */
export function loadCrdDir(dir: string): CustomResourceDefinition[] {
  if (!fs.existsSync(dir)) return [];
  const out: CustomResourceDefinition[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    if (!/\.ya?ml$/.test(f)) continue;
    for (const doc of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${path.join(dir, f)}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as CustomResourceDefinition | null;
      if (obj?.kind === 'CustomResourceDefinition') out.push(obj);
    }
  }
  return out;
}
