// The resource store interface the controllers, agents and gateways program against. Two
// implementations exist (in memory, and an embedded file-backed one); a Kubernetes-backed one
// follows the same contract, so the semantics below mirror the Kubernetes API server's:
// resourceVersion is one store-wide revision counter (etcd's revision), generation counts spec
// changes, status is a subresource, deletion honours finalizers, and watch resumes from a
// resourceVersion or answers Gone (410) when that version is no longer retained.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}

export interface Resource<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export type WatchEvent<R> = { type: WatchEventType; object: R } | { type: 'BOOKMARK'; resourceVersion: string };

export type StoreErrorCode = 'NotFound' | 'Conflict' | 'Invalid' | 'Gone' | 'AlreadyExists';

const HTTP_STATUS: Record<StoreErrorCode, number> = {
  NotFound: 404,
  Conflict: 409,
  AlreadyExists: 409,
  Gone: 410,
  Invalid: 422,
};

/** A failure the caller can act on; `code` is the Kubernetes Status reason, `reason` the detail. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly reason: string;

  constructor(code: StoreErrorCode, reason: string, message?: string) {
    super(message ?? `${code}: ${reason}`);
    this.name = 'StoreError';
    this.code = code;
    this.reason = reason;
  }

  /** The HTTP status the Kubernetes API server answers with for this code. */
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/** What `apply` accepts: the declarative part of an object. */
export interface ApplyInput {
  kind: string;
  apiVersion: string;
  metadata: {
    name: string;
    namespace?: string;
    /** When present, a compare-and-swap precondition: Conflict unless it is the current version. */
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
  };
  /**
   * Omitted: a metadata-only apply to an existing object (its spec stays, and on Kubernetes this
   * manager owns no spec field): how a controller adds or removes its finalizer without taking
   * over the fields the object's author wrote.
   */
  spec?: unknown;
}

export interface ListOptions {
  namespace?: string;
  /** Equality-based: every pair must be present on the object. */
  labelSelector?: Record<string, string>;
}

export interface WatchOptions {
  /**
   * Deliver the events after this version (exclusive), in order, then live ones. '0' (or '')
   * means "from now, starting with the current state": one synthetic ADDED per existing object,
   * as the Kubernetes API server does for resourceVersion=0.
   */
  resourceVersion: string;
  namespace?: string;
}

export interface Watch<R> {
  /** Single-consumer stream; ends after stop() or store close, throws a 'Gone' StoreError when
   * the requested version (or a consumer that fell too far behind) is outside retained history. */
  events: AsyncIterable<WatchEvent<R>>;
  stop(): void;
}

export interface Store {
  get<R extends Resource>(kind: string, name: string, namespace?: string): Promise<R | undefined>;
  list<R extends Resource>(kind: string, opts?: ListOptions): Promise<{ items: R[]; resourceVersion: string }>;
  /** Events after resourceVersion (exclusive) in order, then live; 'Gone' StoreError (sync, or as
   * the iterator's first throw) when that version is older than the retained history. */
  watch<R extends Resource>(kind: string, opts: WatchOptions): Watch<R>;
  /** Declarative apply of spec / labels / annotations / finalizers (create or update). Metadata
   * fields left out keep their current value; given ones replace it. generation bumps only when
   * spec changes; status is untouched; an apply that changes nothing writes nothing. */
  apply<R extends Resource>(obj: ApplyInput): Promise<R>;
  /** Status subresource: replaces status only; resourceVersion CAS optional; NotFound when absent. */
  updateStatus<R extends Resource>(kind: string, name: string, status: unknown, opts?: { namespace?: string; resourceVersion?: string }): Promise<R>;
  /** With finalizers present, sets deletionTimestamp (MODIFIED) and the object stays until apply
   * removes the last finalizer; otherwise removed (DELETED). NotFound when absent. */
  delete(kind: string, name: string, opts?: { namespace?: string }): Promise<void>;
  close(): Promise<void>;
  /**
   * Tell people about something that happened to an object (Kubernetes: a core/v1 Event in the
   * store's namespace). Optional: the embedded stores keep no events; status conditions carry the
   * same reasons. Never throws: an event is best effort.
   */
  recordEvent?(about: { kind: string; name: string; namespace?: string; uid?: string }, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export interface KindOptions {
  /** Returns the reason when the spec is invalid, null when it is fine. */
  validate?(spec: unknown): string | null;
}

/** The embedded stores validate specs themselves (a Kubernetes store relies on CRD schemas). */
export interface KindRegistry {
  registerKind(kind: string, opts: KindOptions): void;
}

export interface StoreOptions {
  /** How many events watch history retains (store-wide, all kinds); older versions are Gone. */
  historyLimit?: number;
}

export const DEFAULT_HISTORY_LIMIT = 1000;
