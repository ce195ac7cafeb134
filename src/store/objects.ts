// Object semantics shared by every embedded store, as pure functions: input validation, and the
// transitions apply / updateStatus / delete make to an object, expressed as the watch events they
// produce. A store only has to supply the current object and fresh revision numbers, then record
// the events atomically. Behaviour follows the Kubernetes API server:
// - generation starts at 1 and bumps when spec changes, and once more when deletion starts;
// - a write that changes nothing is not written (no new resourceVersion, no event);
// - a precondition resourceVersion that is not current is a Conflict;
// - with finalizers, delete only sets deletionTimestamp; no finalizer may be added afterwards, and
//   the update that removes the last one deletes the object (MODIFIED then DELETED).
import { randomUUID } from 'node:crypto';
import { StoreError } from './types.ts';
import type { ApplyInput, KindOptions, Resource, WatchEventType } from './types.ts';

export interface PlannedEvent {
  type: WatchEventType;
  object: Resource;
}

/** What a write does: the object to hand back, and the events to record (none for a no-op). */
export interface Plan {
  result: Resource;
  events: PlannedEvent[];
}

/** Hands out the next store revisions; a plan takes one per event, in order. */
export interface Revisions {
  next(): string;
}

/** Time and identity, injectable so the plan functions stay deterministic under test. */
export interface Minting {
  now(): string;
  uid(): string;
}

export const defaultMinting: Minting = {
  // Kubernetes serialises metav1.Time with second precision (RFC 3339, UTC).
  now: () => new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  uid: () => randomUUID(),
};

/** An ApplyInput that passed validation, with data deep-copied and empty collections dropped. */
export interface ValidApply {
  kind: string;
  apiVersion: string;
  name: string;
  namespace: string | undefined;
  resourceVersion: string | undefined;
  labels: Record<string, string> | undefined | null; // undefined: keep current; null: remove
  annotations: Record<string, string> | undefined | null;
  finalizers: string[] | undefined | null;
  /** undefined: a metadata-only apply (keeps the existing spec). */
  spec: unknown;
}

export function objectKey(kind: string, name: string, namespace: string | undefined): string {
  return `${kind}\u0000${namespace ?? ''}\u0000${name}`;
}

export function keyOf(obj: Resource): string {
  return objectKey(obj.kind, obj.metadata.name, obj.metadata.namespace);
}

export function describe(kind: string, name: string, namespace: string | undefined): string {
  return namespace === undefined ? `${kind} "${name}"` : `${kind} "${namespace}/${name}"`;
}

// ---------------------------------------------------------------------------------------------
// Validation

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const KIND = /^[A-Za-z][A-Za-z0-9]*$/;
const API_VERSION = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[a-z0-9]+$/;

function invalid(what: string, reason: string): never {
  throw new StoreError('Invalid', reason, `${what} is invalid: ${reason}`);
}

export function checkKind(kind: unknown): string {
  if (typeof kind !== 'string' || kind.length > 63 || !KIND.test(kind)) {
    invalid('object', `kind: Invalid value: ${JSON.stringify(kind)}: must be an alphanumeric identifier starting with a letter`);
  }
  return kind;
}

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    invalid('object', `metadata.name: Invalid value: ${JSON.stringify(name)}: must be a lowercase RFC 1123 subdomain`);
  }
  return name;
}

/** '' means no namespace (cluster-scoped; in a list or watch: every namespace), as in client-go. */
export function checkNamespace(namespace: unknown): string | undefined {
  if (namespace === undefined || namespace === '') return undefined;
  if (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    invalid('object', `metadata.namespace: Invalid value: ${JSON.stringify(namespace)}: must be a lowercase RFC 1123 label`);
  }
  return namespace;
}

function isQualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A deep copy of `value` as JSON data (what any store can persist and hand back unchanged).
 * Object properties whose value is undefined are dropped, as JSON.stringify does; anything else
 * that JSON cannot represent faithfully is rejected. */
export function toJsonData(value: unknown, path: string): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) invalid('object', `${path}: Invalid value: ${value}: not a finite number`);
    return value;
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => {
      if (item === undefined) invalid('object', `${path}[${i}]: Invalid value: undefined`);
      return toJsonData(item, `${path}[${i}]`);
    });
  }
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[k] = toJsonData(v, `${path}.${k}`);
    }
    return out;
  }
  const what = typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  return invalid('object', `${path}: Invalid value: a ${what} is not JSON data`);
}

function checkStringMap(value: unknown, path: string, checkValue: (v: string) => boolean, valueRule: string): Record<string, string> | null {
  if (!isPlainObject(value)) invalid('object', `${path}: Invalid value: must be a map of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!isQualifiedName(k)) invalid('object', `${path}: Invalid key: ${JSON.stringify(k)}: must be a qualified name ([prefix/]name)`);
    if (typeof v !== 'string' || !checkValue(v)) invalid('object', `${path}.${k}: Invalid value: ${JSON.stringify(v)}: ${valueRule}`);
    out[k] = v;
  }
  return Object.keys(out).length === 0 ? null : out;
}

function isLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && QUALIFIED_NAME_PART.test(v));
}

function checkFinalizers(value: unknown): string[] | null {
  if (!Array.isArray(value)) invalid('object', 'metadata.finalizers: Invalid value: must be a list of strings');
  for (const f of value) {
    if (typeof f !== 'string' || !isQualifiedName(f)) {
      invalid('object', `metadata.finalizers: Invalid value: ${JSON.stringify(f)}: must be a qualified name ([prefix/]name)`);
    }
  }
  return value.length === 0 ? null : [...(value as string[])];
}

/** Validates everything apply accepts, then runs the kind's own validator on the spec. */
export function validateApply(input: ApplyInput, kinds: ReadonlyMap<string, KindOptions>): ValidApply {
  if (!isPlainObject(input)) invalid('object', 'Invalid value: an object with kind, apiVersion, metadata and spec is required');
  const kind = checkKind(input.kind);
  if (typeof input.apiVersion !== 'string' || !API_VERSION.test(input.apiVersion)) {
    invalid('object', `apiVersion: Invalid value: ${JSON.stringify(input.apiVersion)}: must be [group/]version`);
  }
  const meta = input.metadata;
  if (!isPlainObject(meta)) invalid('object', 'metadata: Required value');
  const name = checkName(meta.name);
  const namespace = checkNamespace(meta.namespace);
  const what = describe(kind, name, namespace);
  let resourceVersion: string | undefined;
  if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') {
    if (typeof meta.resourceVersion !== 'string') invalid(what, 'metadata.resourceVersion: Invalid value: must be a string');
    resourceVersion = meta.resourceVersion;
  }
  const labels = meta.labels === undefined ? undefined : checkStringMap(meta.labels, 'metadata.labels', isLabelValue, 'must be 63 characters or less, alphanumeric, -, _ or . inside');
  const annotations = meta.annotations === undefined ? undefined : checkStringMap(meta.annotations, 'metadata.annotations', () => true, 'must be a string');
  const finalizers = meta.finalizers === undefined ? undefined : checkFinalizers(meta.finalizers);
  // No spec: a metadata-only apply (planApply refuses it for an object that does not exist).
  const spec = input.spec === undefined ? undefined : toJsonData(input.spec, 'spec');
  const validate = spec === undefined ? undefined : kinds.get(kind)?.validate;
  if (validate) {
    let reason: string | null;
    try {
      reason = validate(structuredClone(spec));
    } catch (err) {
      reason = `validator failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (reason !== null) {
      throw new StoreError('Invalid', reason, `${what} is invalid: ${reason}`);
    }
  }
  return { kind, apiVersion: input.apiVersion, name, namespace, resourceVersion, labels, annotations, finalizers, spec };
}

// ---------------------------------------------------------------------------------------------
// Comparison and selection

/** JSON with object keys sorted: equal data gives equal text whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const rec = value as Record<string, unknown>;
    const keys = Object.keys(rec).filter((k) => rec[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(rec[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function sameData(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

export function matchesLabels(obj: Resource, selector: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  const labels = obj.metadata.labels ?? {};
  for (const [k, v] of Object.entries(selector)) {
    if (labels[k] !== v) return false;
  }
  return true;
}

/** List order: by namespace, then name (the key order etcd returns). */
export function compareObjects(a: Resource, b: Resource): number {
  const na = a.metadata.namespace ?? '';
  const nb = b.metadata.namespace ?? '';
  if (na !== nb) return na < nb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Transitions

function checkPrecondition(existing: Resource, expected: string | undefined, what: string): void {
  if (expected !== undefined && existing.metadata.resourceVersion !== expected) {
    throw new StoreError(
      'Conflict',
      `the object has been modified; resourceVersion is ${existing.metadata.resourceVersion}, not ${expected}`,
      `Operation cannot be fulfilled on ${what}: the object has been modified; please apply your changes to the latest version and try again`,
    );
  }
}

function notFound(kind: string, name: string, namespace: string | undefined): StoreError {
  const what = describe(kind, name, namespace);
  return new StoreError('NotFound', `${what} not found`, `${what} not found`);
}

/** Rebuilds metadata in a fixed key order, leaving out absent optional fields. */
function buildMeta(m: {
  name: string;
  namespace: string | undefined;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp: string | undefined;
  labels: Record<string, string> | undefined;
  annotations: Record<string, string> | undefined;
  finalizers: string[] | undefined;
}): Resource['metadata'] {
  const meta: Resource['metadata'] = { name: m.name, uid: m.uid, resourceVersion: m.resourceVersion, generation: m.generation, creationTimestamp: m.creationTimestamp };
  if (m.namespace !== undefined) meta.namespace = m.namespace;
  if (m.deletionTimestamp !== undefined) meta.deletionTimestamp = m.deletionTimestamp;
  if (m.labels !== undefined) meta.labels = m.labels;
  if (m.annotations !== undefined) meta.annotations = m.annotations;
  if (m.finalizers !== undefined) meta.finalizers = m.finalizers;
  // Key order: name, namespace, uid, ... (cosmetic, for files people read).
  const { name, namespace, ...rest } = meta;
  return namespace === undefined ? { name, ...rest } : { name, namespace, ...rest };
}

function buildObject(apiVersion: string, kind: string, metadata: Resource['metadata'], spec: unknown, status: unknown): Resource {
  const obj: Resource = { apiVersion, kind, metadata, spec };
  if (status !== undefined) obj.status = status;
  return obj;
}

function withResourceVersion(obj: Resource, rv: string): Resource {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: rv } };
}

/** The deletion of `obj`: a DELETED event carrying its last state at the deletion's revision. */
function removal(obj: Resource, revisions: Revisions): PlannedEvent {
  return { type: 'DELETED', object: withResourceVersion(obj, revisions.next()) };
}

export function planApply(existing: Resource | undefined, input: ValidApply, revisions: Revisions, minting: Minting = defaultMinting): Plan {
  const what = describe(input.kind, input.name, input.namespace);
  if (!existing) {
    if (input.resourceVersion !== undefined) {
      throw new StoreError('NotFound', `${what} not found (precondition resourceVersion ${input.resourceVersion})`, `${what} not found`);
    }
    if (input.spec === undefined) throw new StoreError('Invalid', 'spec: Required value', `${what} is invalid: spec: Required value (a metadata-only apply needs an existing object)`);
    const metadata = buildMeta({
      name: input.name,
      namespace: input.namespace,
      uid: minting.uid(),
      resourceVersion: revisions.next(),
      generation: 1,
      creationTimestamp: minting.now(),
      deletionTimestamp: undefined,
      labels: input.labels ?? undefined,
      annotations: input.annotations ?? undefined,
      finalizers: input.finalizers ?? undefined,
    });
    const created = buildObject(input.apiVersion, input.kind, metadata, input.spec, undefined);
    return { result: created, events: [{ type: 'ADDED', object: created }] };
  }

  checkPrecondition(existing, input.resourceVersion, what);
  const old = existing.metadata;
  const pick = <T>(given: T | undefined | null, current: T | undefined): T | undefined => (given === undefined ? current : (given ?? undefined));
  const finalizers = pick(input.finalizers, old.finalizers);
  if (old.deletionTimestamp !== undefined) {
    const added = (finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
    if (added.length > 0) {
      const reason = `metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`;
      throw new StoreError('Invalid', reason, `${what} is invalid: ${reason}`);
    }
  }
  const spec = input.spec === undefined ? existing.spec : input.spec;
  const specChanged = !sameData(existing.spec, spec);
  const candidate = buildMeta({
    ...old,
    namespace: old.namespace,
    deletionTimestamp: old.deletionTimestamp,
    labels: pick(input.labels, old.labels),
    annotations: pick(input.annotations, old.annotations),
    finalizers,
    generation: specChanged ? old.generation + 1 : old.generation,
  });
  const next = buildObject(input.apiVersion, input.kind, candidate, spec, existing.status);
  if (sameData(next, existing)) return { result: existing, events: [] };

  const updated = withResourceVersion(next, revisions.next());
  const events: PlannedEvent[] = [{ type: 'MODIFIED', object: updated }];
  if (old.deletionTimestamp !== undefined && finalizers === undefined) {
    const gone = removal(updated, revisions);
    events.push(gone);
    return { result: gone.object, events };
  }
  return { result: updated, events };
}

export function planStatus(
  existing: Resource | undefined,
  target: { kind: string; name: string; namespace: string | undefined; resourceVersion: string | undefined },
  status: unknown,
  revisions: Revisions,
): Plan {
  if (!existing) throw notFound(target.kind, target.name, target.namespace);
  checkPrecondition(existing, target.resourceVersion, describe(target.kind, target.name, target.namespace));
  const data = status === undefined ? undefined : toJsonData(status, 'status');
  if (sameData(existing.status ?? null, data ?? null)) return { result: existing, events: [] };
  const updated = buildObject(existing.apiVersion, existing.kind, { ...existing.metadata, resourceVersion: revisions.next() }, existing.spec, data);
  return { result: updated, events: [{ type: 'MODIFIED', object: updated }] };
}

export function planDelete(
  existing: Resource | undefined,
  target: { kind: string; name: string; namespace: string | undefined },
  revisions: Revisions,
  minting: Minting = defaultMinting,
): Plan {
  if (!existing) throw notFound(target.kind, target.name, target.namespace);
  const meta = existing.metadata;
  if (meta.finalizers === undefined || meta.finalizers.length === 0) {
    const gone = removal(existing, revisions);
    return { result: gone.object, events: [gone] };
  }
  if (meta.deletionTimestamp !== undefined) return { result: existing, events: [] };
  const marked = buildObject(
    existing.apiVersion,
    existing.kind,
    // Kubernetes bumps generation when deletion starts: the desired state changed to "gone".
    { ...meta, resourceVersion: revisions.next(), generation: meta.generation + 1, deletionTimestamp: minting.now() },
    existing.spec,
    existing.status,
  );
  return { result: marked, events: [{ type: 'MODIFIED', object: marked }] };
}

/** Parses a resourceVersion argument: a non-negative decimal integer ('' counts as 0). */
export function parseResourceVersion(rv: unknown): number {
  if (rv === '') return 0;
  if (typeof rv !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(rv)) {
    throw new StoreError('Invalid', `resourceVersion: Invalid value: ${JSON.stringify(rv)}: must be a decimal revision`);
  }
  return Number(rv);
}
