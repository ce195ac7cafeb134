// The materialised state both embedded stores hold in memory: the objects at the current
// revision, plus the event history watches read from. It changes only by recording events in
// revision order (or by resetting to a snapshot), so the objects and the history never disagree.
import { compareObjects, keyOf, matchesLabels, objectKey } from './objects.ts';
import type { PlannedEvent, Revisions } from './objects.ts';
import type { ListOptions, Resource } from './types.ts';
import { EventHistory } from './watch.ts';

export class StoreState {
  readonly history: EventHistory;
  readonly #objects = new Map<string, Resource>();

  constructor(historyLimit: number) {
    this.history = new EventHistory(historyLimit);
  }

  get revision(): number {
    return this.history.headRv;
  }

  get(kind: string, name: string, namespace: string | undefined): Resource | undefined {
    return this.#objects.get(objectKey(kind, name, namespace));
  }

  /** Matching objects in list order; shared references, callers copy before handing out. */
  list(kind: string, opts: ListOptions = {}): Resource[] {
    const items: Resource[] = [];
    for (const obj of this.#objects.values()) {
      if (obj.kind !== kind) continue;
      if (opts.namespace !== undefined && obj.metadata.namespace !== opts.namespace) continue;
      if (!matchesLabels(obj, opts.labelSelector)) continue;
      items.push(obj);
    }
    return items.sort(compareObjects);
  }

  all(): Resource[] {
    return [...this.#objects.values()].sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  }

  /** Revisions for a plan: consecutive, starting right after the current one. */
  revisions(): Revisions {
    let rv = this.revision;
    return { next: () => String(++rv) };
  }

  /** Applies one event; its object carries the event's revision, which must be the next one. */
  record(event: PlannedEvent): void {
    const rv = Number(event.object.metadata.resourceVersion);
    if (rv !== this.revision + 1) throw new Error(`store state: event revision ${rv} does not follow ${this.revision}`);
    const key = keyOf(event.object);
    if (event.type === 'DELETED') this.#objects.delete(key);
    else this.#objects.set(key, event.object);
    this.history.append({ rv, type: event.type, object: event.object });
  }

  /** Replaces everything with a snapshot taken at `rv`; history restarts there. */
  reset(rv: number, objects: Resource[]): void {
    this.#objects.clear();
    for (const obj of objects) this.#objects.set(keyOf(obj), obj);
    this.history.reset(rv);
  }
}
