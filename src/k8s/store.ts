// The Store on the Kubernetes API (@kubernetes/client-node): weft's kinds are custom resources
// (src/k8s/kinds.ts), Nodes and Pods are the cluster's own, read-only, Secrets are core/v1 (their
// data is the spec). The mapping of the Store contract (src/store/types.ts) onto the API:
//
//   get / list     GET; NotFound is `undefined` for get. A list without a namespace looks in the
//                  store's namespace (every namespace for Pods); '' means every namespace.
//   apply          server-side apply (application/apply-patch+yaml) under the store's field
//                  manager, force on. Metadata fields left out keep their value: the labels,
//                  annotations and finalizers this manager owns are sent again as they are (under
//                  a resourceVersion precondition, retried on conflict), so nothing it set before
//                  is dropped; fields other managers own are theirs either way. Given ones are
//                  applied as given: an empty map releases what this manager owned (Kubernetes
//                  removes them unless another manager owns them too). A resourceVersion in the
//                  input is a precondition (Conflict).
//   updateStatus   PUT on /status of the object as read with its status replaced (its metadata
//                  unchanged, so no manager loses ownership), with the given or the current
//                  resourceVersion (retried on conflict when none was given).
//   delete         DELETE; finalizers make it a deletionTimestamp until they are gone.
//   watch          HTTP watch with bookmarks from the given resourceVersion ('0': the current
//                  objects as ADDED first); a stream that ends (server timeout, client-node's 30 s
//                  quiet timeout) is resumed from the last version seen; 410 Gone (as an ERROR event or a status) ends it with a 'Gone'
//                  StoreError, as does a consumer that leaves more than watchBufferLimit events
//                  unread. Any other failure ends it with that error (the informer backs off and
//                  re-lists).
// Errors become StoreErrors: 404 NotFound, 409 Conflict / AlreadyExists, 410 Gone, 400/422
// Invalid with the server's message as the reason, and the 500s server-side apply answers for a
// body it cannot decode or type (Invalid too).
import { CoreV1Api, CustomObjectsApi, PatchStrategy, Watch as KubeWatch, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { compareObjects, parseResourceVersion, sameData, toJsonData, validateApply } from '../store/objects.ts';
import { StoreError, DEFAULT_HISTORY_LIMIT } from '../store/types.ts';
import type { ApplyInput, KindOptions, ListOptions, Resource, Store, Watch, WatchEvent, WatchOptions } from '../store/types.ts';
import { collectionPath, objectMeta, WEFT_KINDS, type KindMapping, type KubeObject } from './kinds.ts';

export const DEFAULT_NAMESPACE = 'weft-system';

export interface KubernetesStoreOptions {
  kubeConfig: KubeConfig;
  /** Field manager of applies and status writes, one per component: weft-controller, weft-gateway, ... */
  fieldManager: string;
  /** Namespace of weft's namespaced kinds (the release namespace). Default weft-system. */
  namespace?: string;
  /** Kinds served beyond weft's own (tests bring theirs). */
  kinds?: readonly KindMapping[];
  /** Server-side apply takes over fields other managers set to other values. Default true. */
  force?: boolean;
  /** Events a watch holds for a consumer that does not read them; past that it ends with Gone. */
  watchBufferLimit?: number;
}

const NO_VALIDATORS: ReadonlyMap<string, KindOptions> = new Map();
const APPLY = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const CAS_RETRIES = 10;

interface Location {
  m: KindMapping;
  /** Namespace of the object or collection; undefined: cluster-scoped, or every namespace. */
  namespace: string | undefined;
  /** A namespace was given for a cluster-scoped kind: nothing of this kind can be there. */
  nowhere: boolean;
}

interface CoreOps {
  read(namespace: string | undefined, name: string): Promise<unknown>;
  list(namespace: string | undefined, labelSelector: string | undefined): Promise<unknown>;
  apply(namespace: string | undefined, name: string, body: unknown, fieldManager: string, force: boolean): Promise<unknown>;
  remove(namespace: string | undefined, name: string): Promise<unknown>;
}

interface StatusBody {
  code?: number;
  reason?: string;
  message?: string;
}

function statusOf(err: unknown): { code: number; status: StatusBody } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown };
  const code = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (code === undefined) return undefined;
  let status: StatusBody = {};
  if (typeof e.body === 'string') {
    try {
      status = JSON.parse(e.body) as StatusBody;
    } catch {
      status = { message: e.body };
    }
  } else if (e.body && typeof e.body === 'object') status = e.body as StatusBody;
  return { code, status };
}

/** The StoreError for an API failure (or the failure itself when it is not one the contract names). */
export function toStoreError(err: unknown): Error {
  if (err instanceof StoreError) return err;
  const s = statusOf(err);
  if (!s) return err instanceof Error ? err : new Error(String(err));
  const message = s.status.message ?? (err as Error).message ?? `HTTP ${s.code}`;
  switch (s.code) {
    case 404:
      return new StoreError('NotFound', message, message);
    case 409:
      return new StoreError(s.status.reason === 'AlreadyExists' ? 'AlreadyExists' : 'Conflict', message, message);
    case 410:
      return new StoreError('Gone', message, message);
    case 400:
    case 422:
      return new StoreError('Invalid', message, message);
    default: {
      // Server-side apply reports what it cannot decode or type against the schema (a Secret's
      // bad base64, a string where a number belongs) as a 500: the fault is the request's.
      if (s.code === 500 && /failed to (create typed patch object|convert new object)/.test(message)) return new StoreError('Invalid', message, message);
      const e = new Error(`Kubernetes API: ${s.code} ${s.status.reason ?? ''}: ${message}`);
      (e as Error & { code?: number }).code = s.code;
      return e;
    }
  }
}

/** The labels, annotations and finalizers `manager` owns through apply (from managedFields). */
export function ownedMetadata(obj: KubeObject, manager: string): { labels: string[]; annotations: string[]; finalizers: string[] } {
  const out = { labels: [] as string[], annotations: [] as string[], finalizers: [] as string[] };
  const entries = (obj.metadata?.managedFields ?? []) as { manager?: string; operation?: string; subresource?: string; fieldsV1?: Record<string, unknown> }[];
  for (const e of entries) {
    if (e.manager !== manager || e.operation !== 'Apply' || (e.subresource ?? '') !== '') continue;
    const meta = (e.fieldsV1?.['f:metadata'] ?? {}) as Record<string, Record<string, unknown> | undefined>;
    for (const k of Object.keys(meta['f:labels'] ?? {})) if (k.startsWith('f:')) out.labels.push(k.slice(2));
    for (const k of Object.keys(meta['f:annotations'] ?? {})) if (k.startsWith('f:')) out.annotations.push(k.slice(2));
    for (const k of Object.keys(meta['f:finalizers'] ?? {})) {
      if (!k.startsWith('v:')) continue;
      try {
        out.finalizers.push(String(JSON.parse(k.slice(2))));
      } catch {
        // not a value we wrote
      }
    }
  }
  return out;
}

export class KubernetesStore implements Store {
  readonly fieldManager: string;
  readonly namespace: string;
  readonly #kc: KubeConfig;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #kinds = new Map<string, KindMapping>();
  readonly #force: boolean;
  readonly #bufferLimit: number;
  readonly #watches = new Set<ApiWatch<Resource>>();
  readonly #handshakes = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: KubernetesStoreOptions) {
    if (!opts.fieldManager) throw new Error('KubernetesStore: a fieldManager is required (weft-<component>)');
    this.#kc = opts.kubeConfig;
    this.fieldManager = opts.fieldManager;
    this.namespace = opts.namespace || DEFAULT_NAMESPACE;
    this.#custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#force = opts.force ?? true;
    this.#bufferLimit = opts.watchBufferLimit ?? DEFAULT_HISTORY_LIMIT;
    for (const k of [...WEFT_KINDS, ...(opts.kinds ?? [])]) this.#kinds.set(k.kind, k);
  }

  // -------------------------------------------------------------------------------------------
  // Store

  async get<R extends Resource>(kind: string, name: string, namespace?: string): Promise<R | undefined> {
    await this.#ready();
    const loc = this.#locate(kind, namespace, 'object');
    if (loc.nowhere) return undefined;
    const raw = await this.#getRaw(loc, name);
    return raw === undefined ? undefined : (this.#toResource(loc.m, raw) as R);
  }

  async list<R extends Resource>(kind: string, opts: ListOptions = {}): Promise<{ items: R[]; resourceVersion: string }> {
    await this.#ready();
    const loc = this.#locate(kind, opts.namespace, 'collection');
    const labelSelector = selector(opts.labelSelector);
    if (loc.nowhere) {
      // Nothing can be there; still answer at the current revision (of any list of the kind).
      const { resourceVersion } = await this.list(kind, {});
      return { items: [], resourceVersion };
    }
    const { m, namespace } = loc;
    const list = (await this.#call(() => {
      if (m.group === '') return this.#coreOps(m).list(namespace, labelSelector);
      const base = { group: m.group, version: m.version, labelSelector };
      if (!m.namespaced) return this.#custom.listClusterCustomObject({ ...base, plural: m.plural });
      if (namespace === undefined) return this.#custom.listCustomObjectForAllNamespaces({ ...base, resourcePlural: m.plural });
      return this.#custom.listNamespacedCustomObject({ ...base, namespace, plural: m.plural });
    })) as { metadata?: { resourceVersion?: string }; items?: KubeObject[] };
    const items = (list.items ?? []).map((o) => this.#toResource(m, o)).sort(compareObjects);
    return { items: items as R[], resourceVersion: String(list.metadata?.resourceVersion ?? '') };
  }

  watch<R extends Resource>(kind: string, opts: WatchOptions): Watch<R> {
    this.#open();
    const from = parseResourceVersion(opts.resourceVersion);
    const loc = this.#locate(kind, opts.namespace, 'collection');
    const w = new ApiWatch<Resource>({
      watch: new KubeWatch(this.#kc),
      path: loc.nowhere ? undefined : collectionPath(loc.m, loc.namespace),
      resourceVersion: String(from),
      convert: (o) => this.#toResource(loc.m, o),
      bufferLimit: this.#bufferLimit,
      onEnd: (x) => this.#watches.delete(x),
    });
    this.#watches.add(w);
    // Requests made after watch() returns wait until the server has registered it, so that the
    // watch sees them, as the embedded stores' synchronous watches do.
    const shake = w.start().finally(() => this.#handshakes.delete(shake));
    this.#handshakes.add(shake);
    return w as unknown as Watch<R>;
  }

  async apply<R extends Resource>(obj: ApplyInput): Promise<R> {
    await this.#ready();
    const input = validateApply(obj, NO_VALIDATORS);
    const m = this.#mapping(input.kind);
    if (!m.writable) {
      const reason = `${m.kind} objects are the cluster's own (${m.group || 'core'}/${m.version} ${m.plural}): weft reads them and never writes them`;
      throw new StoreError('Invalid', reason, `${m.kind} "${input.name}" is invalid: ${reason}`);
    }
    if (input.apiVersion !== m.apiVersion) {
      const reason = `apiVersion: Invalid value: ${JSON.stringify(input.apiVersion)}: ${m.kind} is served as ${m.apiVersion}`;
      throw new StoreError('Invalid', reason, `${m.kind} "${input.name}" is invalid: ${reason}`);
    }
    const loc = this.#locate(input.kind, input.namespace, 'object');
    // A metadata-only apply (no spec) is for an existing object; server-side apply would create one.
    if (input.spec === undefined && !loc.nowhere && !(await this.#getRaw(loc, input.name))) {
      throw new StoreError('Invalid', 'spec: Required value', `${m.kind} "${input.name}" is invalid: spec: Required value (a metadata-only apply needs an existing object)`);
    }
    if (loc.nowhere) {
      const reason = `metadata.namespace: Invalid value: ${JSON.stringify(input.namespace)}: ${m.kind} is cluster-scoped`;
      throw new StoreError('Invalid', reason, `${m.kind} "${input.name}" is invalid: ${reason}`);
    }
    if (input.spec === undefined && m.group !== '') {
      // Metadata only: a merge patch (an update operation) owns just the fields it sets. An apply
      // without spec would make a manager that applied the spec before give it up, and remove it.
      // Finalizers replace the list, labels/annotations merge key by key (merge-patch semantics);
      // an emptied field arrives as null, which a merge patch reads as "remove".
      const patchMeta: Record<string, unknown> = {};
      for (const f of ['labels', 'annotations', 'finalizers'] as const) if (input[f] !== undefined) patchMeta[f] = input[f];
      if (input.resourceVersion !== undefined) patchMeta.resourceVersion = input.resourceVersion;
      const base = { group: m.group, version: m.version, plural: m.plural, name: input.name, body: { metadata: patchMeta }, fieldManager: this.fieldManager };
      const raw = (await this.#call(() =>
        loc.namespace === undefined ? this.#custom.patchClusterCustomObject(base, MERGE) : this.#custom.patchNamespacedCustomObject({ ...base, namespace: loc.namespace }, MERGE),
      )) as KubeObject;
      return this.#toResource(m, raw) as R;
    }
    const leftOut = (['labels', 'annotations', 'finalizers'] as const).filter((f) => input[f] === undefined);
    for (let attempt = 0; ; attempt++) {
      // With a precondition the object must exist: a real API server's apply carrying a
      // resourceVersion CREATES a missing object (201), which would bring back one deleted
      // between the caller's read and this write.
      let expected: KubeObject | undefined;
      if (input.resourceVersion !== undefined) {
        expected = await this.#getRaw(loc, input.name);
        if (!expected) throw new StoreError('NotFound', `${m.plural}.${m.group || 'core'} "${input.name}" not found`);
      }
      const metadata: Record<string, unknown> = { name: input.name };
      if (loc.namespace !== undefined) metadata.namespace = loc.namespace;
      if (input.labels) metadata.labels = input.labels;
      if (input.annotations) metadata.annotations = input.annotations;
      if (input.finalizers) metadata.finalizers = input.finalizers;
      let precondition = input.resourceVersion;
      let retryable = false;
      if (leftOut.length > 0) {
        // Keep what this manager applied before: send it again, unchanged.
        const live = expected ?? (await this.#getRaw(loc, input.name));
        if (live) {
          const owned = ownedMetadata(live, this.fieldManager);
          const lm = live.metadata ?? {};
          let carried = false;
          for (const f of leftOut) {
            if (f === 'finalizers') {
              const current = Array.isArray(lm.finalizers) ? (lm.finalizers as string[]) : [];
              const keep = current.filter((x) => owned.finalizers.includes(x));
              if (keep.length > 0) {
                metadata.finalizers = keep;
                carried = true;
              }
            } else {
              const current = (lm[f] ?? {}) as Record<string, string>;
              const keep = Object.fromEntries(Object.entries(current).filter(([k]) => owned[f].includes(k)));
              if (Object.keys(keep).length > 0) {
                metadata[f] = keep;
                carried = true;
              }
            }
          }
          if (carried && precondition === undefined) {
            precondition = String(lm.resourceVersion ?? '');
            retryable = true;
          }
        }
      }
      if (precondition !== undefined) metadata.resourceVersion = precondition;
      const fields = m.convert?.toBody ? m.convert.toBody(input.spec) : { spec: input.spec };
      const body = { apiVersion: m.apiVersion, kind: m.kind, metadata, ...fields };
      try {
        const raw = (await this.#call(() => {
          if (m.group === '') return this.#coreOps(m).apply(loc.namespace, input.name, body, this.fieldManager, this.#force);
          const base = { group: m.group, version: m.version, plural: m.plural, name: input.name, body, fieldManager: this.fieldManager, force: this.#force };
          return loc.namespace === undefined ? this.#custom.patchClusterCustomObject(base, APPLY) : this.#custom.patchNamespacedCustomObject({ ...base, namespace: loc.namespace }, APPLY);
        })) as KubeObject;
        if (expected && raw.metadata?.uid !== expected.metadata?.uid) {
          // Deleted after our read and created anew by this apply: undo that, as NotFound.
          await this.#removeCreated(m, loc, input.name, raw);
          throw new StoreError('NotFound', `${m.plural}.${m.group || 'core'} "${input.name}" not found (deleted before the write)`);
        }
        return this.#toResource(m, raw) as R;
      } catch (err) {
        if (!(retryable && err instanceof StoreError && err.code === 'Conflict' && attempt < CAS_RETRIES)) throw err;
      }
    }
  }

  async recordEvent(about: { kind: string; name: string; namespace?: string; uid?: string }, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      const m = this.#mapping(about.kind);
      const now = new Date();
      await this.#core.createNamespacedEvent({
        namespace: this.namespace,
        body: {
          metadata: { generateName: `${about.name}.`, namespace: this.namespace },
          involvedObject: {
            apiVersion: m.apiVersion,
            kind: m.kind,
            name: about.name,
            ...(m.namespaced ? { namespace: about.namespace ?? this.namespace } : {}),
            ...(about.uid ? { uid: about.uid } : {}),
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.fieldManager },
          reportingComponent: this.fieldManager,
          reportingInstance: process.env.POD_NAME ?? this.fieldManager,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch {
      // Best effort: an event that cannot be written must never fail the reconcile that raised it.
    }
  }

  async updateStatus<R extends Resource>(kind: string, name: string, status: unknown, opts: { namespace?: string; resourceVersion?: string } = {}): Promise<R> {
    await this.#ready();
    const m = this.#mapping(kind);
    if (!m.writable || !m.statusSubresource || m.group === '') throw new StoreError('Invalid', `${m.kind}: weft never writes the status of ${m.plural}`);
    const data = status === undefined ? undefined : toJsonData(status, 'status');
    const loc = this.#locate(kind, opts.namespace, 'object');
    if (loc.nowhere) throw new StoreError('NotFound', `${m.kind} "${name}" not found (${m.kind} is cluster-scoped)`);
    for (let attempt = 0; ; attempt++) {
      // The body carries the object's whole metadata as read (managedFields included): a real API
      // server treats labels, annotations and finalizers missing from a status PUT as removed by
      // this manager for field management, and every manager would lose their ownership (the values
      // stay). Sending them unchanged changes nothing but the status.
      const live = await this.#getRaw(loc, name);
      if (!live) throw new StoreError('NotFound', `${m.plural}.${m.group} "${name}" not found`);
      const liveVersion = String(live.metadata?.resourceVersion ?? '');
      if (opts.resourceVersion && opts.resourceVersion !== liveVersion) {
        throw new StoreError('Conflict', `the object has been modified; resourceVersion is ${liveVersion}, not ${opts.resourceVersion}`, `Operation cannot be fulfilled on ${m.plural}.${m.group} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      if (opts.resourceVersion === undefined && sameData(live.status ?? null, data ?? null)) return this.#toResource(m, live) as R; // nothing to write
      const { status: _old, ...rest } = live as KubeObject & { status?: unknown };
      const body: Record<string, unknown> = { ...rest, apiVersion: m.apiVersion, kind: m.kind };
      if (data !== undefined) body.status = data;
      try {
        const raw = (await this.#call(() => {
          const base = { group: m.group, version: m.version, plural: m.plural, name, body, fieldManager: this.fieldManager };
          return loc.namespace === undefined ? this.#custom.replaceClusterCustomObjectStatus(base) : this.#custom.replaceNamespacedCustomObjectStatus({ ...base, namespace: loc.namespace });
        })) as KubeObject;
        return this.#toResource(m, raw) as R;
      } catch (err) {
        if (!(opts.resourceVersion === undefined && err instanceof StoreError && err.code === 'Conflict' && attempt < CAS_RETRIES)) throw err;
      }
    }
  }

  async delete(kind: string, name: string, opts: { namespace?: string } = {}): Promise<void> {
    await this.#ready();
    const m = this.#mapping(kind);
    if (!m.writable) throw new StoreError('Invalid', `${m.kind} objects are the cluster's own: weft never deletes them`);
    const loc = this.#locate(kind, opts.namespace, 'object');
    if (loc.nowhere) throw new StoreError('NotFound', `${m.kind} "${name}" not found (${m.kind} is cluster-scoped)`);
    await this.#call(() => {
      if (m.group === '') return this.#coreOps(m).remove(loc.namespace, name);
      const base = { group: m.group, version: m.version, plural: m.plural, name };
      return loc.namespace === undefined ? this.#custom.deleteClusterCustomObject(base) : this.#custom.deleteNamespacedCustomObject({ ...base, namespace: loc.namespace });
    });
  }

  /** Deletes the object `created` (and only that one: uid precondition), ignoring NotFound. */
  async #removeCreated(m: KindMapping, loc: { namespace?: string }, name: string, created: KubeObject): Promise<void> {
    try {
      await this.#call(() => {
        if (m.group === '') return this.#coreOps(m).remove(loc.namespace, name);
        const base = { group: m.group, version: m.version, plural: m.plural, name, body: { preconditions: { uid: String(created.metadata?.uid ?? '') } } };
        return loc.namespace === undefined ? this.#custom.deleteClusterCustomObject(base) : this.#custom.deleteNamespacedCustomObject({ ...base, namespace: loc.namespace });
      });
    } catch (err) {
      if (!(err instanceof StoreError && (err.code === 'NotFound' || err.code === 'Conflict'))) throw err;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of [...this.#watches]) w.end();
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  #open(): void {
    if (this.#closed) throw new Error('store is closed');
  }

  async #ready(): Promise<void> {
    this.#open();
    if (this.#handshakes.size > 0) await Promise.all([...this.#handshakes]);
    this.#open();
  }

  #mapping(kind: string): KindMapping {
    const m = this.#kinds.get(kind);
    if (!m) {
      const reason = `kind: Invalid value: ${JSON.stringify(kind)}: not a kind this store serves (${[...this.#kinds.keys()].join(', ')})`;
      throw new StoreError('Invalid', reason, reason);
    }
    return m;
  }

  #locate(kind: string, namespace: string | undefined, purpose: 'object' | 'collection'): Location {
    const m = this.#mapping(kind);
    if (!m.namespaced) return { m, namespace: undefined, nowhere: namespace !== undefined && namespace !== '' };
    if (purpose === 'object') return { m, namespace: namespace || this.namespace, nowhere: false };
    if (namespace === '') return { m, namespace: undefined, nowhere: false };
    if (namespace === undefined) return { m, namespace: m.listScope === 'all' ? undefined : this.namespace, nowhere: false };
    return { m, namespace, nowhere: false };
  }

  async #getRaw(loc: Location, name: string): Promise<KubeObject | undefined> {
    const { m, namespace } = loc;
    try {
      return (await this.#call(() => {
        if (m.group === '') return this.#coreOps(m).read(namespace, name);
        const base = { group: m.group, version: m.version, plural: m.plural, name };
        return namespace === undefined ? this.#custom.getClusterCustomObject(base) : this.#custom.getNamespacedCustomObject({ ...base, namespace });
      })) as KubeObject;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /** The core/v1 kinds weft uses, through the typed client. */
  #coreOps(m: KindMapping): CoreOps {
    const core = this.#core;
    const unsupported = (what: string) => () => Promise.reject(new StoreError('Invalid', `${m.kind}: ${what} is not something weft does with ${m.plural}`));
    const ns = (n: string | undefined) => n ?? this.namespace;
    switch (m.plural) {
      case 'nodes':
        return { read: (_n, name) => core.readNode({ name }), list: (_n, labelSelector) => core.listNode({ labelSelector }), apply: unsupported('apply'), remove: unsupported('delete') };
      case 'pods':
        return {
          read: (n, name) => core.readNamespacedPod({ name, namespace: ns(n) }),
          list: (n, labelSelector) => (n === undefined ? core.listPodForAllNamespaces({ labelSelector }) : core.listNamespacedPod({ namespace: n, labelSelector })),
          apply: unsupported('apply'),
          remove: unsupported('delete'),
        };
      case 'secrets':
        return {
          read: (n, name) => core.readNamespacedSecret({ name, namespace: ns(n) }),
          list: (n, labelSelector) => (n === undefined ? core.listSecretForAllNamespaces({ labelSelector }) : core.listNamespacedSecret({ namespace: n, labelSelector })),
          apply: (n, name, body, fieldManager, force) => core.patchNamespacedSecret({ name, namespace: ns(n), body, fieldManager, force }, APPLY),
          remove: (n, name) => core.deleteNamespacedSecret({ name, namespace: ns(n) }),
        };
      default:
        throw new StoreError('Invalid', `${m.kind}: core/v1 ${m.plural} are not served by this store`);
    }
  }

  #toResource(m: KindMapping, raw: KubeObject): Resource {
    if (m.convert) return m.convert.toResource(raw);
    const r: Resource = { apiVersion: raw.apiVersion ?? m.apiVersion, kind: raw.kind ?? m.kind, metadata: objectMeta(raw.metadata), spec: raw.spec };
    if (raw.status !== undefined && raw.status !== null) r.status = raw.status;
    return r;
  }
}

function selector(labels: Record<string, string> | undefined): string | undefined {
  if (!labels) return undefined;
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(',') : undefined;
}

// ---------------------------------------------------------------------------------------------
// Watch

interface ApiWatchOptions<R> {
  watch: KubeWatch;
  /** Collection URL; undefined: a place where nothing can be (the watch stays empty until stopped). */
  path: string | undefined;
  resourceVersion: string;
  convert(obj: KubeObject): R;
  bufferLimit: number;
  onEnd(w: ApiWatch<R>): void;
}

/** One logical watch over as many HTTP watches as it takes (the server ends them now and then). */
class ApiWatch<R> implements Watch<R> {
  readonly events: AsyncIterable<WatchEvent<R>>;
  readonly #o: ApiWatchOptions<R>;
  #queue: WatchEvent<R>[] = [];
  #wake: (() => void) | null = null;
  #error: Error | null = null;
  #ended = false;
  #controller: AbortController | undefined;
  #lastRv: string;
  #quickEnds = 0;

  constructor(o: ApiWatchOptions<R>) {
    this.#o = o;
    this.#lastRv = o.resourceVersion;
    const iterator: AsyncIterator<WatchEvent<R>> = {
      next: () => this.#next(),
      return: async () => {
        this.stop();
        return { done: true, value: undefined };
      },
    };
    this.events = { [Symbol.asyncIterator]: () => iterator };
  }

  /** Opens the first HTTP watch; resolves once the server answered (or it failed). */
  start(): Promise<void> {
    return this.#connect();
  }

  stop(): void {
    this.#queue = [];
    this.#error = null;
    this.end();
  }

  /** Ends the stream after what is queued (store close). */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller?.abort();
    this.#o.onEnd(this);
    this.#notify();
  }

  async #connect(): Promise<void> {
    if (this.#ended || this.#o.path === undefined) return;
    const startedAt = Date.now();
    let failed = false;
    let established = false;
    try {
      this.#controller = await this.#o.watch.watch(
        this.#o.path,
        { resourceVersion: this.#lastRv, allowWatchBookmarks: true },
        (type: string, obj: KubeObject) => {
          if (!failed) failed = this.#onEvent(type, obj);
        },
        (err: unknown) => {
          if (this.#ended || failed) return;
          // client-node gives up on a stream that has been quiet for 30 s (TimeoutError); API
          // servers send bookmarks about once a minute, so a quiet watch ends that way: resume it.
          const quiet = established && (err as { name?: string } | null)?.name === 'TimeoutError';
          if (err && !quiet) {
            failed = true;
            this.#fail(toStoreError(err));
            return;
          }
          // The stream ended (a server-side watch timeout, a restart, a quiet spell): resume where it stopped.
          // Back off only when the server keeps ending streams at once.
          this.#quickEnds = Date.now() - startedAt < 1000 ? this.#quickEnds + 1 : 0;
          const delay = this.#quickEnds < 2 ? 0 : Math.min(100 * 2 ** (this.#quickEnds - 1), 5000);
          setTimeout(() => void this.#connect(), delay);
        },
      );
      established = true;
      if (this.#ended) this.#controller.abort();
    } catch (err) {
      if (!this.#ended) this.#fail(toStoreError(err));
    }
  }

  /** Returns true when the event ended the stream. */
  #onEvent(type: string, obj: KubeObject): boolean {
    if (this.#ended) return true;
    const rv = String(obj?.metadata?.resourceVersion ?? '');
    switch (type) {
      case 'ADDED':
      case 'MODIFIED':
      case 'DELETED':
        if (rv) this.#lastRv = rv;
        this.#push({ type, object: this.#o.convert(obj) });
        break;
      case 'BOOKMARK':
        if (rv) this.#lastRv = rv;
        this.#push({ type: 'BOOKMARK', resourceVersion: rv });
        break;
      case 'ERROR': {
        const status = obj as unknown as StatusBody;
        const code = status.code ?? 500;
        this.#controller?.abort();
        this.#fail(toStoreError({ code, body: status }));
        return true;
      }
      default:
        return false;
    }
    if (this.#queue.length > this.#o.bufferLimit) {
      // The consumer fell too far behind: like a watcher outside retained history, it must re-list.
      this.#queue = [];
      this.#controller?.abort();
      this.#fail(new StoreError('Gone', `the consumer fell more than ${this.#o.bufferLimit} events behind; list again`));
      return true;
    }
    return false;
  }

  #push(ev: WatchEvent<R>): void {
    this.#queue.push(ev);
    this.#notify();
  }

  #fail(err: Error): void {
    if (this.#ended) return;
    this.#error = err;
    this.#ended = true;
    this.#o.onEnd(this);
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async #next(): Promise<IteratorResult<WatchEvent<R>>> {
    for (;;) {
      const ev = this.#queue.shift();
      if (ev) return { done: false, value: ev };
      if (this.#error) {
        const err = this.#error;
        this.#error = null;
        throw err;
      }
      if (this.#ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
