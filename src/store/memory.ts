// The in-memory store: the reference implementation of the Store contract, for tests and for
// components that run in one process. Every operation completes synchronously before its
// promise settles, so each write is atomic with respect to every other.
import { checkKind, checkName, checkNamespace, defaultMinting, parseResourceVersion, planApply, planDelete, planStatus, validateApply } from './objects.ts';
import type { Minting, Plan } from './objects.ts';
import { StoreState } from './state.ts';
import { DEFAULT_HISTORY_LIMIT } from './types.ts';
import type { ApplyInput, KindOptions, KindRegistry, ListOptions, Resource, Store, StoreOptions, Watch, WatchOptions } from './types.ts';
import { openWatch } from './watch.ts';

export interface MemoryStoreOptions extends StoreOptions {
  minting?: Minting;
}

export class MemoryStore implements Store, KindRegistry {
  readonly #state: StoreState;
  readonly #kinds = new Map<string, KindOptions>();
  readonly #minting: Minting;
  #closed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    this.#state = new StoreState(opts.historyLimit ?? DEFAULT_HISTORY_LIMIT);
    this.#minting = opts.minting ?? defaultMinting;
  }

  registerKind(kind: string, opts: KindOptions): void {
    this.#kinds.set(checkKind(kind), opts);
  }

  async get<R extends Resource>(kind: string, name: string, namespace?: string): Promise<R | undefined> {
    this.#open();
    const obj = this.#state.get(kind, name, namespace || undefined);
    return obj === undefined ? undefined : (structuredClone(obj) as R);
  }

  async list<R extends Resource>(kind: string, opts: ListOptions = {}): Promise<{ items: R[]; resourceVersion: string }> {
    this.#open();
    return { items: structuredClone(this.#state.list(kind, { ...opts, namespace: opts.namespace || undefined })) as R[], resourceVersion: String(this.#state.revision) };
  }

  watch<R extends Resource>(kind: string, opts: WatchOptions): Watch<R> {
    this.#open();
    const rv = parseResourceVersion(opts.resourceVersion);
    return openWatch<R>(
      { history: this.#state.history, snapshot: (k, ns) => this.#state.list(k, ns === undefined ? {} : { namespace: ns }) },
      { kind, namespace: opts.namespace || undefined, fromRv: rv === 0 ? undefined : rv },
    );
  }

  async apply<R extends Resource>(obj: ApplyInput): Promise<R> {
    this.#open();
    const input = validateApply(obj, this.#kinds);
    return this.#commit(planApply(this.#state.get(input.kind, input.name, input.namespace), input, this.#state.revisions(), this.#minting)) as R;
  }

  async updateStatus<R extends Resource>(kind: string, name: string, status: unknown, opts: { namespace?: string; resourceVersion?: string } = {}): Promise<R> {
    this.#open();
    const target = { kind: checkKind(kind), name: checkName(name), namespace: checkNamespace(opts.namespace), resourceVersion: opts.resourceVersion || undefined };
    return this.#commit(planStatus(this.#state.get(kind, name, target.namespace), target, status, this.#state.revisions())) as R;
  }

  async delete(kind: string, name: string, opts: { namespace?: string } = {}): Promise<void> {
    this.#open();
    const target = { kind: checkKind(kind), name: checkName(name), namespace: checkNamespace(opts.namespace) };
    this.#commit(planDelete(this.#state.get(kind, name, target.namespace), target, this.#state.revisions(), this.#minting));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state.history.close();
  }

  #commit(plan: Plan): Resource {
    for (const event of plan.events) this.#state.record(event);
    return structuredClone(plan.result);
  }

  #open(): void {
    if (this.#closed) throw new Error('store is closed');
  }
}
