// Watch history and watch streams. A store records every change as an event stamped with its
// revision; the history keeps the last N (store-wide, like etcd before compaction). A watch is a
// cursor into that history: it holds no queue of its own, so a consumer that falls more than N
// events behind is told Gone (410) and must list again, exactly as with the Kubernetes API server.
import { StoreError } from './types.ts';
import type { Resource, Watch, WatchEvent, WatchEventType } from './types.ts';

export interface HistoryEntry {
  rv: number;
  type: WatchEventType;
  object: Resource;
}

export class EventHistory {
  readonly limit: number;
  #entries: HistoryEntry[] = [];
  #first = 0; // index of the oldest retained entry in #entries
  #startRv = 0;
  #headRv = 0;
  #closed = false;
  #failure: Error | undefined;
  #waiters = new Set<() => void>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`history limit must be a positive integer, not ${limit}`);
    this.limit = limit;
  }

  /** Every event with a revision above this one is retained. */
  get startRv(): number {
    return this.#startRv;
  }

  /** The revision of the newest event (the store's current revision). */
  get headRv(): number {
    return this.#headRv;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    return this.#entries.length - this.#first;
  }

  append(entry: HistoryEntry): void {
    if (entry.rv <= this.#headRv) throw new Error(`history: revision ${entry.rv} is not after ${this.#headRv}`);
    this.#entries.push(entry);
    this.#headRv = entry.rv;
    while (this.size > this.limit) {
      this.#startRv = this.#entries[this.#first]!.rv;
      this.#first++;
    }
    if (this.#first > 1024 && this.#first * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#first);
      this.#first = 0;
    }
    this.#wake();
  }

  /** Forget everything before `rv` (a gap: the events up to it are not known). Watches that had
   * not yet seen them end with Gone. */
  reset(rv: number): void {
    this.#entries = [];
    this.#first = 0;
    this.#startRv = rv;
    this.#headRv = rv;
    this.#wake();
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  /** The store can no longer follow its events (a corrupt journal): watches end with `err`. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#wake();
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  /** Index (for `at`) of the first retained entry whose revision is above `rv`. */
  indexAfter(rv: number): number {
    let lo = this.#first;
    let hi = this.#entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#entries[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  at(index: number): HistoryEntry | undefined {
    return index >= this.#first ? this.#entries[index] : undefined;
  }

  /** Resolves on the next append, reset or close; `cancel` registers a way to resolve it early. */
  changed(cancel: (wake: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
      cancel(wake);
    });
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }
}

export function goneError(rv: number, startRv: number): StoreError {
  return new StoreError('Gone', `too old resource version: ${rv} (${startRv})`, `Gone: too old resource version: ${rv} (oldest retained is after ${startRv})`);
}

/** What a store provides to a watch. */
export interface WatchSource {
  history: EventHistory;
  /** Brings the store up to date before the first event is delivered (the file store reads
   * the journal then). */
  prepare?(): Promise<void>;
  /** Whether the watch may take its starting point now, synchronously, from the state in
   * memory (default true); otherwise it is taken after prepare(). */
  canStartNow?(): boolean;
  /** Current objects of a kind (for resourceVersion 0), any order. */
  snapshot(kind: string, namespace: string | undefined): Resource[];
  started?(): void;
  stopped?(): void;
}

export interface WatchRequest {
  kind: string;
  namespace: string | undefined;
  /** Events after this revision; undefined = synthetic ADDED for current objects, then live. */
  fromRv: number | undefined;
}

/** Opens a watch. Throws Gone synchronously when the version is already known to be too old. */
export function openWatch<R extends Resource>(source: WatchSource, req: WatchRequest): Watch<R> {
  const { history } = source;
  if (req.fromRv !== undefined && req.fromRv < history.startRv) throw goneError(req.fromRv, history.startRv);
  const cursor = new WatchCursor<R>(source, req);
  // Start now when possible, so that changes made right after watch() returns are events.
  if (source.canStartNow?.() ?? true) cursor.start();
  return {
    events: { [Symbol.asyncIterator]: () => cursor },
    stop: () => cursor.stop(),
  };
}

class WatchCursor<R extends Resource> implements AsyncIterator<WatchEvent<R>> {
  #source: WatchSource;
  #req: WatchRequest;
  #started = false;
  #prepared = false;
  #stopped = false;
  #cursor = 0;
  #initial: Resource[] = [];
  #wake: (() => void) | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(source: WatchSource, req: WatchRequest) {
    this.#source = source;
    this.#req = req;
    source.started?.();
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const { history } = this.#source;
    const { fromRv, kind, namespace } = this.#req;
    if (fromRv === undefined) {
      this.#initial = this.#source.snapshot(kind, namespace).sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
      this.#cursor = history.headRv;
    } else {
      if (fromRv < history.startRv) throw goneError(fromRv, history.startRv);
      this.#cursor = fromRv;
    }
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    this.#source.stopped?.();
  }

  next(): Promise<IteratorResult<WatchEvent<R>>> {
    // One consumer, but tolerate overlapping next() calls by serving them in order.
    const result = this.#tail.then(() => this.#next());
    this.#tail = result.catch(() => undefined);
    return result;
  }

  return(): Promise<IteratorResult<WatchEvent<R>>> {
    this.stop();
    return Promise.resolve({ done: true, value: undefined });
  }

  async #next(): Promise<IteratorResult<WatchEvent<R>>> {
    const done = { done: true as const, value: undefined };
    try {
      if (!this.#prepared) {
        this.#prepared = true;
        if (this.#stopped) return done;
        await this.#source.prepare?.();
        this.start();
      }
      const { history } = this.#source;
      for (;;) {
        if (this.#stopped || history.closed) {
          this.stop();
          return done;
        }
        if (history.failure) throw history.failure;
        const initial = this.#initial.shift();
        if (initial) return { done: false, value: { type: 'ADDED', object: structuredClone(initial) as R } };
        if (this.#cursor < history.startRv) throw goneError(this.#cursor, history.startRv);
        for (let i = history.indexAfter(this.#cursor); ; i++) {
          const entry = history.at(i);
          if (!entry) break;
          this.#cursor = entry.rv;
          if (this.#matches(entry.object)) {
            return { done: false, value: { type: entry.type, object: structuredClone(entry.object) as R } };
          }
        }
        await history.changed((wake) => {
          this.#wake = wake;
        });
        this.#wake = undefined;
      }
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  #matches(obj: Resource): boolean {
    return obj.kind === this.#req.kind && (this.#req.namespace === undefined || obj.metadata.namespace === this.#req.namespace);
  }
}
