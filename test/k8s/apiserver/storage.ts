// The fake API server's storage and write paths: one revision counter for everything (etcd's),
// a bounded event history for watches, and create / update / patch / apply / delete with the
// registry's semantics (preconditions, status subresource, generation, finalizers, managed fields,
// schema pruning and validation). Everything is synchronous, so each write is atomic.
import { randomBytes, randomUUID } from 'node:crypto';
import { canonicalJson } from '../../../src/store/objects.ts';
import { ApplyConflictError, dropMetadataOwnershipMissingFrom, dropMissingOwnership, sameIgnoringTimes, serverSideApply, trackUpdate } from './fields.ts';
import { jsonPatch, mergePatch } from './patch.ts';
import { pruneAndDefault, setListResolver, validateObject, type Cause } from './schema.ts';
import { apiVersionOf, storageKey, type ResourceType } from './registry.ts';
import { ApiError, errors, type Selector } from './status.ts';

export type Obj = Record<string, unknown>;
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEventOut {
  type: EventType | 'BOOKMARK' | 'ERROR';
  object: Obj;
}

interface HistoryEntry {
  rv: number;
  key: string;
  type: EventType;
  object: Obj;
  prev: Obj | undefined;
}

export interface Watcher {
  rt: ResourceType;
  namespace: string | undefined;
  labels: Selector;
  fields: Selector;
  bookmarks: boolean;
  /** Returns false when the watcher cannot take more (a slow client): it is then dropped. */
  send(ev: WatchEventOut): boolean;
  close(): void;
}

export interface WriteOptions {
  manager: string;
  subresource?: string | undefined;
  force?: boolean;
  /** 'Strict' rejects unknown fields; otherwise they are dropped and reported as warnings. */
  fieldValidation?: string | undefined;
}

export interface WriteResult {
  object: Obj;
  warnings: string[];
  created: boolean;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function metaOf(o: Obj): Obj {
  if (!isObject(o.metadata)) o.metadata = {};
  return o.metadata as Obj;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function qualifiedNameProblem(k: string): string | null {
  const slash = k.indexOf('/');
  const prefix = slash < 0 ? undefined : k.slice(0, slash);
  const name = slash < 0 ? k : k.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return 'prefix part must be a lowercase RFC 1123 subdomain';
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return null;
}

/** What the API server checks on every object's metadata. */
export function validateMetadata(rt: ResourceType, obj: Obj): Cause[] {
  const m = metaOf(obj);
  const causes: Cause[] = [];
  const name = m.name;
  if (typeof name !== 'string' || name === '') causes.push({ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' });
  else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'metadata.name',
      message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    });
  }
  const maps: [string, (v: unknown) => string | null][] = [
    ['labels', (v) => (typeof v !== 'string' ? 'must be a string' : v === '' || (v.length <= 63 && NAME_PART.test(v)) ? null : "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")],
    ['annotations', (v) => (typeof v === 'string' ? null : 'must be a string')],
  ];
  for (const [field, check] of maps) {
    const v = m[field];
    if (v === undefined || v === null) continue;
    if (!isObject(v)) {
      causes.push({ reason: 'FieldValueInvalid', field: `metadata.${field}`, message: 'Invalid value: must be a map of strings' });
      continue;
    }
    for (const [k, val] of Object.entries(v)) {
      const kp = qualifiedNameProblem(k);
      if (kp) causes.push({ reason: 'FieldValueInvalid', field: `metadata.${field}`, message: `Invalid value: ${JSON.stringify(k)}: ${kp}` });
      const vp = check(val);
      if (vp) causes.push({ reason: 'FieldValueInvalid', field: `metadata.${field}`, message: `Invalid value: ${JSON.stringify(val)}: ${vp}` });
    }
  }
  const fin = m.finalizers;
  if (fin !== undefined && fin !== null) {
    if (!Array.isArray(fin)) causes.push({ reason: 'FieldValueInvalid', field: 'metadata.finalizers', message: 'Invalid value: must be a list of strings' });
    else
      fin.forEach((f, i) => {
        const p = typeof f === 'string' ? qualifiedNameProblem(f) : 'must be a string';
        if (p) causes.push({ reason: 'FieldValueInvalid', field: `metadata.finalizers[${i}]`, message: `Invalid value: ${JSON.stringify(f)}: ${p}` });
      });
  }
  if (rt.namespaced) {
    const ns = m.namespace;
    if (typeof ns !== 'string' || !DNS_LABEL.test(ns)) causes.push({ reason: 'FieldValueInvalid', field: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(ns)}: a lowercase RFC 1123 label` });
  }
  return causes;
}

/** Go's ObjectMeta leaves empty maps and lists out of the JSON. */
function normalizeMeta(m: Obj): void {
  for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences', 'managedFields']) {
    const v = m[k];
    if (v === null || v === undefined || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0)) delete m[k];
  }
}

/** Everything a generation counts: the object without metadata and status. */
function generationPart(o: Obj | undefined): string {
  if (!o) return '';
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return canonicalJson(rest);
}

/** A schema type error in the words of the real server's typed-patch builder (structured-merge-diff). */
function typedPatchError(c: Cause): string {
  const m = /must be of type ([a-z]+)[^:]*: "([a-z]+)"/.exec(c.message);
  const word = (t: string) => (t === 'integer' || t === 'number' ? 'numeric (int or float)' : t === 'object' ? 'map' : t === 'array' ? 'list' : t);
  return m ? `.${c.field}: expected ${word(m[1]!)}, got ${word(m[2]!)}` : `.${c.field}: ${c.message}`;
}

export class Storage {
  readonly types: ResourceType[] = [];
  #objects = new Map<string, Map<string, Obj>>();
  #history: HistoryEntry[] = [];
  #compactedRv = 0;
  #revision = 0;
  #historyLimit: number;
  #watchers = new Set<Watcher>();

  constructor(opts: { historyLimit: number }) {
    this.#historyLimit = opts.historyLimit;
    // resourceVersions are opaque: a real server's are etcd revisions shared with everything else
    // it stores, so they start wherever the cluster is. Starting at a random point here keeps
    // tests from relying on '1', '2', … (history before it counts as compacted).
    this.#revision = 100 + Math.floor(Math.random() * 100_000);
    this.#compactedRv = this.#revision;
  }

  get revision(): number {
    return this.#revision;
  }

  get compactedRevision(): number {
    return this.#compactedRv;
  }

  addType(rt: ResourceType): void {
    if (this.types.some((t) => t.group === rt.group && t.version === rt.version && t.resource === rt.resource)) return;
    this.types.push(rt);
  }

  findType(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.version === version && t.resource === resource);
  }

  findKind(kindOrResource: string): ResourceType | undefined {
    return this.types.find((t) => t.kind === kindOrResource || t.resource === kindOrResource);
  }

  #bucket(rt: ResourceType): Map<string, Obj> {
    const k = storageKey(rt);
    let b = this.#objects.get(k);
    if (!b) {
      b = new Map();
      this.#objects.set(k, b);
    }
    return b;
  }

  /** The object as the client sees it through `rt` (the version it asked for). */
  #present(rt: ResourceType, obj: Obj): Obj {
    const out = structuredClone(obj);
    out.apiVersion = apiVersionOf(rt);
    out.kind = rt.kind;
    return out;
  }

  #nsOf(rt: ResourceType, ns: string | undefined): string {
    return rt.namespaced ? (ns ?? '') : '';
  }

  get(rt: ResourceType, ns: string | undefined, name: string): Obj {
    const obj = this.#bucket(rt).get(`${this.#nsOf(rt, ns)}/${name}`);
    if (!obj) throw errors.notFound(rt, name);
    return this.#present(rt, obj);
  }

  peek(rt: ResourceType, ns: string | undefined, name: string): Obj | undefined {
    const obj = this.#bucket(rt).get(`${this.#nsOf(rt, ns)}/${name}`);
    return obj && this.#present(rt, obj);
  }

  list(rt: ResourceType, ns: string | undefined, labels: Selector, fields: Selector): { items: Obj[]; resourceVersion: string } {
    const items = [...this.#bucket(rt).values()]
      .filter((o) => (ns === undefined || metaOf(o).namespace === ns) && labels.matches(o) && fields.matches(o))
      .sort((a, b) => {
        const ka = `${String(metaOf(a).namespace ?? '')}/${String(metaOf(a).name)}`;
        const kb = `${String(metaOf(b).namespace ?? '')}/${String(metaOf(b).name)}`;
        return ka < kb ? -1 : ka > kb ? 1 : 0;
      })
      .map((o) => this.#present(rt, o));
    return { items, resourceVersion: String(this.#revision) };
  }

  // -------------------------------------------------------------------------------------------
  // Writes

  create(rt: ResourceType, ns: string | undefined, body: unknown, o: WriteOptions): WriteResult {
    const obj = this.#checkBody(rt, body, undefined);
    const m = metaOf(obj);
    if (rt.namespaced) {
      if (m.namespace !== undefined && m.namespace !== '' && m.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = ns;
    } else delete m.namespace;
    if ((m.name === undefined || m.name === '') && typeof m.generateName === 'string' && m.generateName !== '') {
      m.name = `${m.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    }
    if (!rt.statusOnCreate) delete obj.status;
    const name = String(m.name ?? '');
    if (name && this.#bucket(rt).has(`${this.#nsOf(rt, ns)}/${name}`)) throw errors.alreadyExists(rt, name);
    this.#stampNew(rt, obj);
    const warnings: string[] = [];
    const pruned = this.#pruneAndDefault(rt, obj, warnings, o.fieldValidation);
    trackUpdate(undefined, pruned, o.manager, undefined, rt.statusSubresource, apiVersionOf(rt), now(), this.#sets(rt));
    return this.#finish(rt, undefined, pruned, o, warnings);
  }

  update(rt: ResourceType, ns: string | undefined, name: string, body: unknown, o: WriteOptions): WriteResult {
    const existing = this.#bucket(rt).get(`${this.#nsOf(rt, ns)}/${name}`);
    const obj = this.#checkBody(rt, body, name);
    if (!existing) throw errors.notFound(rt, name);
    const rv = metaOf(obj).resourceVersion;
    if (rv === undefined || rv === '') {
      if (rt.requireResourceVersion) {
        throw errors.invalid(rt, name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
      }
    } else if (rv !== metaOf(existing).resourceVersion) throw errors.conflict(rt, name);
    const warnings: string[] = [];
    const candidate = this.#pruneAndDefault(rt, this.#prepare(rt, existing, obj, o.subresource), warnings, o.fieldValidation);
    trackUpdate(existing, candidate, o.manager, o.subresource, rt.statusSubresource, apiVersionOf(rt), now(), this.#sets(rt));
    if (o.subresource === 'status') dropMetadataOwnershipMissingFrom(candidate, metaOf(obj));
    return this.#finish(rt, existing, candidate, o, warnings);
  }

  patch(rt: ResourceType, ns: string | undefined, name: string, contentType: string, patch: unknown, o: WriteOptions): WriteResult {
    const existing = this.#bucket(rt).get(`${this.#nsOf(rt, ns)}/${name}`);
    if (contentType === 'application/apply-patch+yaml') return this.#apply(rt, ns, name, existing, patch, o);
    if (!existing) throw errors.notFound(rt, name);
    let patched: unknown;
    if (contentType === 'application/merge-patch+json') patched = mergePatch(existing, patch);
    else if (contentType === 'application/json-patch+json') patched = jsonPatch(existing, patch);
    else if (contentType === 'application/strategic-merge-patch+json' && !rt.crd) patched = mergePatch(existing, patch); // lists replaced: an approximation
    else throw errors.unsupportedMediaType(contentType);
    const obj = this.#checkBody(rt, patched, name);
    const rv = metaOf(obj).resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== metaOf(existing).resourceVersion) throw errors.conflict(rt, name);
    const warnings: string[] = [];
    const candidate = this.#pruneAndDefault(rt, this.#prepare(rt, existing, obj, o.subresource), warnings, o.fieldValidation);
    trackUpdate(existing, candidate, o.manager, o.subresource, rt.statusSubresource, apiVersionOf(rt), now(), this.#sets(rt));
    return this.#finish(rt, existing, candidate, o, warnings);
  }

  #apply(rt: ResourceType, ns: string | undefined, name: string, existing: Obj | undefined, patch: unknown, o: WriteOptions): WriteResult {
    if (!o.manager || o.manager === '') throw errors.invalidPatch('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    if (!isObject(patch)) throw errors.badRequest('the applied configuration must be an object');
    if (typeof patch.apiVersion !== 'string' || patch.apiVersion === '') throw errors.badRequest('invalid object type: apiVersion must be set');
    if (typeof patch.kind !== 'string' || patch.kind === '') throw errors.badRequest('invalid object type: kind must be set');
    const config = this.#applyBody(rt, ns, name, patch);
    const cm = metaOf(config);
    if (cm.name === undefined) cm.name = name;
    if (rt.namespaced && cm.namespace !== undefined && cm.namespace !== '' && cm.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const precondition = cm.resourceVersion;
    // As the real server: a resourceVersion in an apply is a precondition on an existing object
    // only; a missing one is created (201), the version ignored.
    if (precondition !== undefined && precondition !== '' && existing && precondition !== metaOf(existing).resourceVersion) throw errors.conflict(rt, name);
    if (o.subresource === 'status' && !existing) throw errors.notFound(rt, name);
    // What this write may set: the main resource leaves status alone when it is a subresource;
    // /status sets status only. Server-owned metadata is never applied.
    const reduced: Obj = { apiVersion: config.apiVersion, kind: config.kind, metadata: {} };
    const rm = reduced.metadata as Obj;
    if (o.subresource === 'status') {
      if (config.status !== undefined) reduced.status = config.status;
    } else {
      for (const [k, v] of Object.entries(config)) if (k !== 'apiVersion' && k !== 'kind' && k !== 'metadata' && !(k === 'status' && rt.statusSubresource)) reduced[k] = v;
      for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences']) if (cm[k] !== undefined && cm[k] !== null) rm[k] = cm[k];
    }
    const warnings: string[] = [];
    const pruned = this.#pruneAndDefault(rt, reduced, warnings, o.fieldValidation);
    let merged: Obj;
    try {
      merged = serverSideApply({
        live: existing,
        config: pruned,
        manager: o.manager,
        force: o.force === true,
        subresource: o.subresource,
        statusSubresource: rt.statusSubresource,
        apiVersion: apiVersionOf(rt),
        now: now(),
        isSet: this.#sets(rt),
      });
    } catch (err) {
      if (!(err instanceof ApplyConflictError)) throw err;
      throw new ApiError(409, 'Conflict', err.message, {
        name,
        ...(rt.group ? { group: rt.group } : {}),
        kind: rt.resource,
        causes: err.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}"`, field: c.field })),
      });
    }
    if (!existing) {
      const m = metaOf(merged);
      m.name = name;
      if (rt.namespaced) m.namespace = ns;
      this.#stampNew(rt, merged);
      return this.#finish(rt, undefined, merged, o, warnings);
    }
    return this.#finish(rt, existing, merged, o, warnings);
  }

  delete(rt: ResourceType, ns: string | undefined, name: string, options: Obj | undefined): Obj {
    const key = `${this.#nsOf(rt, ns)}/${name}`;
    const existing = this.#bucket(rt).get(key);
    if (!existing) throw errors.notFound(rt, name);
    const em = metaOf(existing);
    const pre = isObject(options?.preconditions) ? (options.preconditions as Obj) : {};
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== em.resourceVersion) {
      throw errors.conflict(rt, name, `Precondition failed: ResourceVersion in precondition: ${String(pre.resourceVersion)}, ResourceVersion in object meta: ${String(em.resourceVersion)}`);
    }
    if (pre.uid !== undefined && pre.uid !== em.uid) {
      throw errors.conflict(rt, name, `Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${String(em.uid)}`);
    }
    const finalizers = Array.isArray(em.finalizers) ? em.finalizers : [];
    if (finalizers.length === 0) return this.#present(rt, this.#remove(rt, key, existing));
    if (em.deletionTimestamp !== undefined) return this.#present(rt, existing);
    const marked = structuredClone(existing);
    const mm = metaOf(marked);
    mm.deletionTimestamp = now();
    mm.deletionGracePeriodSeconds = 0;
    if (rt.generation) mm.generation = Number(mm.generation ?? 0) + 1;
    mm.resourceVersion = String(++this.#revision);
    this.#bucket(rt).set(key, marked);
    this.#record(rt, 'MODIFIED', marked, existing);
    return this.#present(rt, marked);
  }

  // -------------------------------------------------------------------------------------------
  // Write helpers

  #setLists = new Map<ResourceType, (path: string[]) => boolean>();
  #sets(rt: ResourceType): (path: string[]) => boolean {
    let f = this.#setLists.get(rt);
    if (!f) {
      f = setListResolver(rt.schema);
      this.#setLists.set(rt, f);
    }
    return f;
  }

  /**
   * An apply body, failing as the real server's apply does: what cannot be decoded (a Secret's bad
   * base64) or typed against the schema (a string where a number belongs) fails while building
   * the typed patch, before any validation — an HTTP 500, not a 400/422.
   */
  #applyBody(rt: ResourceType, ns: string | undefined, name: string, patch: Obj): Obj {
    const where = `${ns ? `${ns}/` : ''}${name}; ${apiVersionOf(rt)}, Kind=${rt.kind}`;
    let config: Obj;
    try {
      config = this.#checkBody(rt, patch, name);
    } catch (err) {
      if (err instanceof ApiError && rt.decode?.(patch as Obj)) throw errors.internal(`failed to convert new object (${where}) to smd typed: ${err.message}`);
      throw err;
    }
    if (rt.schema) {
      const typeErrors = validateObject(rt.schema, config, {}).filter((c) => c.reason === 'FieldValueTypeInvalid');
      if (typeErrors.length > 0) throw errors.internal(`failed to create typed patch object (${where}): ${typeErrors.map(typedPatchError).join('; ')}`);
    }
    return config;
  }

  /** A request body as an object of this resource type (kind, apiVersion, name must agree). */
  #checkBody(rt: ResourceType, body: unknown, name: string | undefined): Obj {
    if (!isObject(body)) throw errors.badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: the object must be a JSON object`);
    const obj = structuredClone(body);
    if (obj.kind !== undefined && obj.kind !== rt.kind) throw errors.badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: kind ${JSON.stringify(obj.kind)} does not match`);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersionOf(rt)) {
      throw errors.badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: apiVersion ${JSON.stringify(obj.apiVersion)} does not match ${apiVersionOf(rt)}`);
    }
    if (rt.crd && obj.kind === undefined) throw errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(body).slice(0, 200)}'`);
    obj.apiVersion = apiVersionOf(rt);
    obj.kind = rt.kind;
    const m = metaOf(obj);
    if (name !== undefined && m.name !== undefined && m.name !== name) throw errors.badRequest(`the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
    if (name !== undefined) m.name = name;
    normalizeMeta(m);
    const problem = rt.decode?.(obj);
    if (problem) throw errors.badRequest(problem);
    return obj;
  }

  #stampNew(rt: ResourceType, obj: Obj): void {
    const m = metaOf(obj);
    const keep: Obj = {};
    for (const k of ['name', 'generateName', 'namespace', 'labels', 'annotations', 'finalizers', 'ownerReferences', 'managedFields']) if (m[k] !== undefined) keep[k] = m[k];
    keep.uid = randomUUID();
    keep.creationTimestamp = now();
    if (rt.generation) keep.generation = 1;
    obj.metadata = keep;
  }

  /** The object an update through `subresource` would store, before validation. */
  #prepare(rt: ResourceType, existing: Obj, body: Obj, subresource: string | undefined): Obj {
    if (subresource === 'status') {
      const c = structuredClone(existing);
      if (body.status === undefined) delete c.status;
      else c.status = body.status;
      return c;
    }
    const em = metaOf(existing);
    const bm = metaOf(body);
    const c: Obj = { ...body };
    const m: Obj = {};
    for (const k of ['name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields']) {
      if (em[k] !== undefined) m[k] = em[k];
    }
    for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences']) if (bm[k] !== undefined) m[k] = bm[k];
    c.metadata = m;
    if (rt.statusSubresource) {
      if (existing.status === undefined) delete c.status;
      else c.status = existing.status;
    }
    return c;
  }

  #pruneAndDefault(rt: ResourceType, obj: Obj, warnings: string[], fieldValidation: string | undefined): Obj {
    if (!rt.schema) return obj;
    const dropped: string[] = [];
    const out = pruneAndDefault(rt.schema, obj, dropped);
    for (const k of ['apiVersion', 'kind']) if (obj[k] !== undefined) out[k] = obj[k];
    if (dropped.length > 0) {
      if (fieldValidation === 'Strict') throw errors.badRequest(`strict decoding error: ${dropped.map((d) => `unknown field ${JSON.stringify(d)}`).join(', ')}`);
      for (const d of dropped) warnings.push(`unknown field ${JSON.stringify(d)}`);
    }
    return out;
  }

  #finish(rt: ResourceType, existing: Obj | undefined, candidate: Obj, o: WriteOptions, warnings: string[] = []): WriteResult {
    let obj = candidate;
    const m = metaOf(obj);
    normalizeMeta(m);
    dropMissingOwnership(obj);
    const name = String(m.name ?? '');
    const causes = validateMetadata(rt, obj);
    if (rt.schema) causes.push(...validateObject(rt.schema, obj, { ...(rt.cel ? { cel: rt.cel } : {}), ...(existing ? { old: existing } : {}) }));
    if (rt.validate) causes.push(...rt.validate(obj));
    if (existing) {
      const em = metaOf(existing);
      if (em.deletionTimestamp !== undefined) {
        const before = new Set((em.finalizers as string[] | undefined) ?? []);
        const added = ((m.finalizers as string[] | undefined) ?? []).filter((f) => !before.has(f));
        if (added.length > 0) {
          causes.push({
            reason: 'FieldValueForbidden',
            field: 'metadata.finalizers',
            message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}`,
          });
        }
      }
    }
    if (causes.length > 0) throw errors.invalid(rt, name, causes);

    if (!existing) {
      const key = `${this.#nsOf(rt, m.namespace as string | undefined)}/${name}`;
      if (this.#bucket(rt).has(key)) throw errors.alreadyExists(rt, name);
      m.resourceVersion = String(++this.#revision);
      this.#bucket(rt).set(key, obj);
      this.#record(rt, 'ADDED', obj, undefined);
      return { object: this.#present(rt, obj), warnings, created: true };
    }

    const em = metaOf(existing);
    m.resourceVersion = em.resourceVersion;
    if (rt.generation && generationPart(existing) !== generationPart(obj)) m.generation = Number(em.generation ?? 0) + 1;
    if (sameIgnoringTimes(existing, obj)) return { object: this.#present(rt, existing), warnings, created: false };
    const key = `${this.#nsOf(rt, em.namespace as string | undefined)}/${name}`;
    m.resourceVersion = String(++this.#revision);
    this.#bucket(rt).set(key, obj);
    this.#record(rt, 'MODIFIED', obj, existing);
    const finalizers = (m.finalizers as string[] | undefined) ?? [];
    if (m.deletionTimestamp !== undefined && finalizers.length === 0) obj = this.#remove(rt, key, obj);
    return { object: this.#present(rt, obj), warnings, created: false };
  }

  #remove(rt: ResourceType, key: string, existing: Obj): Obj {
    const gone = structuredClone(existing);
    metaOf(gone).resourceVersion = String(++this.#revision);
    this.#bucket(rt).delete(key);
    this.#record(rt, 'DELETED', gone, existing);
    return gone;
  }

  // -------------------------------------------------------------------------------------------
  // History and watches

  #record(rt: ResourceType, type: EventType, object: Obj, prev: Obj | undefined): void {
    const entry: HistoryEntry = { rv: this.#revision, key: storageKey(rt), type, object, prev };
    this.#history.push(entry);
    while (this.#history.length > this.#historyLimit) this.#compactedRv = this.#history.shift()!.rv;
    for (const w of [...this.#watchers]) {
      if (storageKey(w.rt) !== entry.key) continue;
      const ev = this.#eventFor(w, entry);
      if (ev && !w.send(ev)) this.#drop(w);
    }
  }

  /** The event a watcher sees for a change, given its namespace and selectors (or none). */
  #eventFor(w: Watcher, e: HistoryEntry): WatchEventOut | null {
    const inScope = (o: Obj | undefined) => !!o && (w.namespace === undefined || metaOf(o).namespace === w.namespace) && w.labels.matches(o) && w.fields.matches(o);
    const cur = inScope(e.object);
    const before = e.type === 'MODIFIED' ? inScope(e.prev) : e.type === 'DELETED' ? cur : false;
    let type: EventType;
    let object = e.object;
    if (e.type === 'ADDED') {
      if (!cur) return null;
      type = 'ADDED';
    } else if (e.type === 'DELETED') {
      if (!cur) return null;
      type = 'DELETED';
    } else if (cur && before) type = 'MODIFIED';
    else if (cur) type = 'ADDED';
    else if (before) {
      // It stopped matching: the watcher is told it is gone, with its previous state.
      type = 'DELETED';
      object = { ...structuredClone(e.prev!), metadata: { ...metaOf(structuredClone(e.prev!)), resourceVersion: String(e.rv) } };
    } else return null;
    return { type, object: this.#present(w.rt, object) };
  }

  /**
   * Registers a watch from `rv` ('' / '0': the current state as ADDED events first). Returns the
   * events to send before the live ones, or a Gone error when `rv` is older than the history.
   */
  watch(w: Watcher, rv: string | undefined): { replay: WatchEventOut[] } | { gone: ApiError } {
    const replay: WatchEventOut[] = [];
    if (rv === undefined || rv === '' || rv === '0') {
      for (const obj of this.list(w.rt, w.namespace, w.labels, w.fields).items) replay.push({ type: 'ADDED', object: obj });
    } else {
      if (!/^[0-9]+$/.test(rv)) throw errors.badRequest(`resourceVersion: Invalid value: ${JSON.stringify(rv)}: strconv.ParseUint: parsing ${JSON.stringify(rv)}: invalid syntax`);
      const from = Number(rv);
      if (from < this.#compactedRv) return { gone: errors.gone(`too old resource version: ${from} (${this.#compactedRv + 1})`) };
      for (const e of this.#history) {
        if (e.rv <= from || e.key !== storageKey(w.rt)) continue;
        const ev = this.#eventFor(w, e);
        if (ev) replay.push(ev);
      }
    }
    this.#watchers.add(w);
    return { replay };
  }

  unwatch(w: Watcher): void {
    this.#watchers.delete(w);
  }

  #drop(w: Watcher): void {
    this.#watchers.delete(w);
    w.close();
  }

  /** Sends a BOOKMARK at the current revision to every watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of [...this.#watchers]) {
      if (!w.bookmarks) continue;
      const ok = w.send({ type: 'BOOKMARK', object: { kind: w.rt.kind, apiVersion: apiVersionOf(w.rt), metadata: { resourceVersion: String(this.#revision) } } });
      if (!ok) this.#drop(w);
    }
  }

  /** Forgets all history: every watch from an older version is now answered 410 Gone. */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#revision;
  }

  /** Ends every open watch (as an API server restart or a watch timeout does). */
  closeWatches(): void {
    for (const w of [...this.#watchers]) this.#drop(w);
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }
}
