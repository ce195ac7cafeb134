// The Store contract, as a function run against every implementation: CRUD, label selectors,
// generation, compare-and-swap, the status subresource, finalizers, watch (replay, live,
// resourceVersion 0, Gone) and validation. The embedded stores run it in store-contract.test.ts,
// the Kubernetes store (on the in-process API server) in test/k8s/store.test.ts.
//
// Where Kubernetes semantics differ, the Kubernetes run follows Kubernetes (`kubernetes` traits):
// - a kind is either namespaced or cluster-scoped: Widget is namespaced, Gadget cluster-scoped, and
//   a namespaced object given no namespace lives in the store's namespace (lists without a
//   namespace look there too; '' means every namespace);
// - a kind the API does not serve is an error, not an empty list;
// - validation is the CRD schema's (CONTRACT_CRDS), in the API server's words;
// - watches are HTTP streams: the test lets events in flight arrive before it counts them;
// - resourceVersions are opaque (etcd revisions on a real server, shared with everything else the
//   server writes): the embedded stores count from 1 per store, a Kubernetes run checks versions
//   against the ones its own writes returned, not against numbers.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStoreError, StoreError } from '../../src/store/types.ts';
import type { KindRegistry, Resource, Store, Watch, WatchEvent } from '../../src/store/types.ts';
import type { CustomResourceDefinition, Schema } from '../k8s/apiserver.ts';

interface WidgetSpec {
  size: number;
  tags?: string[];
}
interface WidgetStatus {
  phase: string;
}
type Widget = Resource<WidgetSpec, WidgetStatus>;

/** An embedded store registers validators per kind; a Kubernetes store has CRD schemas instead. */
export type ContractStore = Store & Partial<KindRegistry>;

export interface ContractImplementation {
  name: string;
  /** A fresh, empty store (revisions start at 1); historyLimit: watch history retained. */
  make(opts?: { historyLimit?: number }): Promise<ContractStore>;
  kubernetes?: {
    /** The store's namespace: where namespaced objects given no namespace live. */
    homeNamespace: string;
    /** Why the tests that need a watch history of a few events cannot run (a real API server keeps etcd's). */
    noShortHistory?: string | false;
    /** Wait for watch events in flight (sent by the server, not yet received) to arrive. */
    settle(): Promise<void>;
  };
}

const crd = (kind: string, scope: 'Namespaced' | 'Cluster', spec: Schema, status: Schema): CustomResourceDefinition => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${kind.toLowerCase()}s.test.weft.dev` },
  spec: {
    group: 'test.weft.dev',
    names: { kind, plural: `${kind.toLowerCase()}s`, singular: kind.toLowerCase(), listKind: `${kind}List` },
    scope,
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: { openAPIV3Schema: { type: 'object', properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec, status } } },
      },
    ],
  },
});

/** The contract's kinds as CRDs, for a Kubernetes API server: Widget (namespaced), Gadget (cluster-scoped). */
export const CONTRACT_CRDS: CustomResourceDefinition[] = [
  crd(
    'Widget',
    'Namespaced',
    { type: 'object', required: ['size'], properties: { size: { type: 'integer', minimum: 1 }, tags: { type: 'array', items: { type: 'string' } } } },
    { type: 'object', properties: { phase: { type: 'string' } } },
  ),
  crd('Gadget', 'Cluster', { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
];

function widget(name: string, spec: WidgetSpec, meta: Partial<{ namespace: string; resourceVersion: string; labels: Record<string, string>; annotations: Record<string, string>; finalizers: string[] }> = {}) {
  return { kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name, ...meta }, spec };
}

function rejectsWith(code: StoreError['code'], reason?: string | RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (typeof reason === 'string') assert.equal(err.reason, reason);
    else if (reason) assert.match(err.reason, reason);
    return true;
  };
}

/** Reads a watch one event at a time. */
function follow<R>(w: Watch<R>) {
  const it = w.events[Symbol.asyncIterator]();
  return {
    async next(): Promise<WatchEvent<R>> {
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        it.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no watch event within 15 s')), 15_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(r.done, false, 'watch ended unexpectedly');
      return r.value as WatchEvent<R>;
    },
    async take(n: number): Promise<WatchEvent<R>[]> {
      const out: WatchEvent<R>[] = [];
      for (let i = 0; i < n; i++) out.push(await this.next());
      return out;
    },
    async end(): Promise<void> {
      const r = await it.next();
      assert.equal(r.done, true, 'watch should have ended');
    },
    stop: () => w.stop(),
  };
}

/** "ADDED Widget/ns/name@rv"; the namespace is left out when it is `home` (or absent). */
function summarize(ev: WatchEvent<Resource>, home: string | undefined): string {
  if (ev.type === 'BOOKMARK') return `BOOKMARK@${ev.resourceVersion}`;
  const ns = ev.object.metadata.namespace && ev.object.metadata.namespace !== home ? `${ev.object.metadata.namespace}/` : '';
  return `${ev.type} ${ev.object.kind}/${ns}${ev.object.metadata.name}@${ev.object.metadata.resourceVersion}`;
}

/** A watch that is Gone must say so synchronously or as its first result. */
async function expectGone(open: () => Watch<Resource>): Promise<void> {
  let w: Watch<Resource>;
  try {
    w = open();
  } catch (err) {
    rejectsWith('Gone')(err);
    return;
  }
  await assert.rejects(w.events[Symbol.asyncIterator]().next(), rejectsWith('Gone', /too old resource version/));
}

export function runStoreContract(impl: ContractImplementation): void {
  // A Kubernetes run may start a real API server per test (several seconds each).
  describe(`Store contract: ${impl.name}`, { timeout: impl.kubernetes ? 600_000 : 60_000 }, () => {
    const k8s = impl.kubernetes !== undefined;
    /** Where a namespaced object given no namespace lives: nowhere in particular (embedded), the store namespace (Kubernetes). */
    const home = impl.kubernetes?.homeNamespace;
    /** The namespace that means "every namespace" in a list or watch. */
    const everywhere = k8s ? '' : undefined;
    const summary = (ev: WatchEvent<Resource>) => summarize(ev, home);
    const stores: ContractStore[] = [];
    async function make(opts?: { historyLimit?: number }): Promise<ContractStore> {
      const s = await impl.make(opts);
      stores.push(s);
      return s;
    }
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
    });
    /** A revision counted from 1 (embedded), or the version a write returned (Kubernetes). */
    const rv = (embedded: number, obj: { metadata: { resourceVersion: string } }) => (k8s ? obj.metadata.resourceVersion : String(embedded));

    it('creates, reads, updates and deletes', async () => {
      const s = await make();
      assert.equal(await s.get('Widget', 'a'), undefined);
      const created = await s.apply<Widget>(widget('a', { size: 1 }, { labels: { tier: 'x' } }));
      assert.equal(created.kind, 'Widget');
      assert.equal(created.apiVersion, 'test.weft.dev/v1');
      assert.deepEqual(created.spec, { size: 1 });
      assert.equal(created.status, undefined);
      assert.equal(created.metadata.name, 'a');
      assert.equal(created.metadata.namespace, home, k8s ? 'a namespaced kind lands in the store namespace' : 'no namespace given, none set');
      assert.equal(created.metadata.generation, 1);
      if (!k8s) assert.equal(created.metadata.resourceVersion, '1');
      assert.match(created.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.match(created.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.deepEqual(created.metadata.labels, { tier: 'x' });
      assert.deepEqual(await s.get('Widget', 'a'), created);

      const updated = await s.apply<Widget>(widget('a', { size: 2 }));
      assert.equal(updated.metadata.uid, created.metadata.uid);
      assert.equal(updated.metadata.creationTimestamp, created.metadata.creationTimestamp);
      if (!k8s) assert.equal(updated.metadata.resourceVersion, '2');
      assert.notEqual(updated.metadata.resourceVersion, created.metadata.resourceVersion);
      assert.deepEqual(updated.spec, { size: 2 });
      assert.deepEqual(updated.metadata.labels, { tier: 'x' }, 'labels left out of apply are kept');

      await s.delete('Widget', 'a');
      assert.equal(await s.get('Widget', 'a'), undefined);
      await assert.rejects(s.delete('Widget', 'a'), rejectsWith('NotFound'));
      const again = await s.apply<Widget>(widget('a', { size: 2 }));
      assert.notEqual(again.metadata.uid, created.metadata.uid, 'a re-created object is a new object');
      assert.equal(again.metadata.generation, 1);
      if (!k8s) assert.equal(again.metadata.resourceVersion, '4', 'the delete took revision 3');
    });

    it('keeps namespaces and kinds apart, with one revision counter for the store', async () => {
      const s = await make();
      const a = await s.apply(widget('same', { size: 1 }, { namespace: 'ns1' }));
      const b = await s.apply(widget('same', { size: 2 }, { namespace: 'ns2' }));
      const c = await s.apply(widget('same', { size: 3 }));
      const d = await s.apply({ kind: 'Gadget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'same' }, spec: {} });
      if (!k8s) assert.deepEqual([a, b, c, d].map((o) => o.metadata.resourceVersion), ['1', '2', '3', '4']);
      else assert.equal(new Set([a, b, c, d].map((o) => o.metadata.resourceVersion)).size, 4, 'one revision counter: every write has its own');
      assert.equal((await s.get<Widget>('Widget', 'same', 'ns1'))?.spec.size, 1);
      assert.equal((await s.get<Widget>('Widget', 'same', 'ns2'))?.spec.size, 2);
      assert.equal((await s.get<Widget>('Widget', 'same'))?.spec.size, 3);
      assert.equal((await s.get('Gadget', 'same'))?.kind, 'Gadget');
      assert.equal(await s.get('Gadget', 'same', 'ns1'), undefined);

      // Kubernetes: a kind is namespaced (Widget) or cluster-scoped (Gadget), never both; a
      // namespaced object given no namespace lives in the store's namespace, and a list without one
      // looks there too (as get and apply do); '' lists every namespace.
      const all = await s.list<Widget>('Widget', { namespace: everywhere });
      const where = (o: Resource) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      assert.deepEqual(all.items.map(where), [`${home ?? ''}/same`, 'ns1/same', 'ns2/same'].sort());
      // The list answers at the store revision, not the newest object of the kind (on etcd: at
      // least the Gadget's revision, later when the server wrote anything else since).
      if (!k8s) assert.equal(all.resourceVersion, '4', 'list answers at the store revision, not the newest object of the kind');
      else assert.ok(Number(all.resourceVersion) >= Number(d.metadata.resourceVersion), `list at ${all.resourceVersion}, the Gadget at ${d.metadata.resourceVersion}`);
      assert.deepEqual((await s.list<Widget>('Widget', { namespace: 'ns2' })).items.map((o) => o.spec.size), [2]);
      if (k8s) {
        assert.deepEqual((await s.list<Widget>('Widget')).items.map((o) => o.spec.size), [3], 'no namespace: the store namespace');
        await assert.rejects(s.list('Nothing'), rejectsWith('Invalid'), 'a kind the API does not serve');
      } else {
        assert.deepEqual((await s.list('Nothing')).items, []);
      }
      // '' is no namespace, as client-go has it: the cluster-scoped object, or all namespaces in a list.
      assert.equal((await s.get<Widget>('Widget', 'same', ''))?.spec.size, 3);
      assert.equal((await s.list('Widget', { namespace: '' })).items.length, 3);
      const viaEmpty = await s.apply<Widget>(widget('same', { size: 4 }, { namespace: '' }));
      assert.equal(viaEmpty.metadata.namespace, home);
      assert.equal((await s.get<Widget>('Widget', 'same'))?.spec.size, 4);
    });

    it('selects by labels (every pair must match)', async () => {
      const s = await make();
      await s.apply(widget('a', { size: 1 }, { labels: { app: 'web', tier: 'front' } }));
      await s.apply(widget('b', { size: 1 }, { labels: { app: 'web', tier: 'back' } }));
      await s.apply(widget('c', { size: 1 }, { labels: { app: 'db' } }));
      await s.apply(widget('d', { size: 1 }));
      const names = async (sel: Record<string, string>) => (await s.list('Widget', { labelSelector: sel })).items.map((o) => o.metadata.name);
      assert.deepEqual(await names({ app: 'web' }), ['a', 'b']);
      assert.deepEqual(await names({ app: 'web', tier: 'back' }), ['b']);
      assert.deepEqual(await names({ tier: 'none' }), []);
      assert.deepEqual(await names({}), ['a', 'b', 'c', 'd']);
      await s.apply(widget('c', { size: 1 }, { labels: { app: 'web' } }));
      assert.deepEqual(await names({ app: 'web' }), ['a', 'b', 'c']);
      await s.apply(widget('a', { size: 1 }, { labels: {} }));
      assert.deepEqual(await names({ app: 'web' }), ['b', 'c'], 'an empty map removes every label');
      assert.equal((await s.get('Widget', 'a'))?.metadata.labels, undefined);
    });

    it('bumps generation only when spec changes, and writes nothing for a no-op apply', async () => {
      const s = await make();
      const w = follow(s.watch<Widget>('Widget', { resourceVersion: '0' }));
      const v1 = await s.apply<Widget>(widget('g', { size: 1, tags: ['a'] }));
      assert.equal(v1.metadata.generation, 1);
      const v2 = await s.apply<Widget>(widget('g', { size: 1, tags: ['a'] }, { labels: { l: '1' }, annotations: { note: 'hi there' } }));
      assert.equal(v2.metadata.generation, 1, 'metadata-only change keeps generation');
      assert.equal(v2.metadata.resourceVersion, rv(2, v2));
      assert.notEqual(v2.metadata.resourceVersion, v1.metadata.resourceVersion);
      const v3 = await s.updateStatus<Widget>('Widget', 'g', { phase: 'Ready' });
      assert.equal(v3.metadata.generation, 1, 'status change keeps generation');
      const v4 = await s.apply<Widget>(widget('g', { tags: ['a'], size: 1 }));
      assert.equal(v4.metadata.resourceVersion, rv(3, v3), 'same spec in another key order is not a change');
      assert.deepEqual(v4, v3);
      const v5 = await s.apply<Widget>(widget('g', { size: 2, tags: ['a'] }));
      assert.equal(v5.metadata.generation, 2);
      assert.equal(v5.metadata.resourceVersion, rv(4, v5));
      assert.notEqual(v5.metadata.resourceVersion, v4.metadata.resourceVersion);
      const v6 = await s.apply<Widget>(widget('g', { size: 2, tags: ['a', 'b'] }));
      assert.equal(v6.metadata.generation, 3);
      // The no-op wrote no event: the watch goes 1, 2, 3, 4, 5.
      assert.deepEqual((await w.take(5)).map((e) => summary(e as WatchEvent<Resource>)), [
        `ADDED Widget/g@${rv(1, v1)}`, `MODIFIED Widget/g@${rv(2, v2)}`, `MODIFIED Widget/g@${rv(3, v3)}`, `MODIFIED Widget/g@${rv(4, v5)}`, `MODIFIED Widget/g@${rv(5, v6)}`,
      ]);
      w.stop();
      await w.end();
    });

    it('treats metadata fields left out as kept and given ones as replaced', async () => {
      const s = await make();
      await s.apply(widget('m', { size: 1 }, { labels: { a: '1' }, annotations: { x: 'y' }, finalizers: ['test.weft.dev/f'] }));
      const kept = await s.apply(widget('m', { size: 2 }));
      assert.deepEqual(kept.metadata.labels, { a: '1' });
      assert.deepEqual(kept.metadata.annotations, { x: 'y' });
      assert.deepEqual(kept.metadata.finalizers, ['test.weft.dev/f']);
      const replaced = await s.apply(widget('m', { size: 2 }, { labels: { b: '2' }, annotations: {}, finalizers: [] }));
      assert.deepEqual(replaced.metadata.labels, { b: '2' });
      assert.equal(replaced.metadata.annotations, undefined);
      assert.equal(replaced.metadata.finalizers, undefined);
    });

    it('enforces resourceVersion preconditions (compare-and-swap)', async () => {
      const s = await make();
      const v1 = await s.apply<Widget>(widget('cas', { size: 1 }));
      const v2 = await s.apply<Widget>(widget('cas', { size: 2 }, { resourceVersion: v1.metadata.resourceVersion }));
      assert.equal(v2.spec.size, 2);
      await assert.rejects(s.apply(widget('cas', { size: 3 }, { resourceVersion: v1.metadata.resourceVersion })), (err) => {
        rejectsWith('Conflict')(err);
        assert.equal((err as StoreError).httpStatus, 409);
        return true;
      });
      assert.equal((await s.get<Widget>('Widget', 'cas'))?.spec.size, 2, 'a conflicting apply changes nothing');
      await assert.rejects(s.updateStatus('Widget', 'cas', { phase: 'x' }, { resourceVersion: v1.metadata.resourceVersion }), rejectsWith('Conflict'));
      const st = await s.updateStatus<Widget>('Widget', 'cas', { phase: 'x' }, { resourceVersion: v2.metadata.resourceVersion });
      assert.deepEqual(st.status, { phase: 'x' });
      await assert.rejects(s.apply(widget('cas', { size: 9 }, { resourceVersion: v2.metadata.resourceVersion })), rejectsWith('Conflict'), 'status writes move resourceVersion too');
      await assert.rejects(s.apply(widget('absent', { size: 1 }, { resourceVersion: '1' })), rejectsWith('NotFound'));
      assert.equal(await s.get('Widget', 'absent'), undefined);
    });

    it('keeps status a subresource: apply never touches it, updateStatus never touches spec', async () => {
      const s = await make();
      await assert.rejects(s.updateStatus('Widget', 'st', { phase: 'x' }), rejectsWith('NotFound'));
      const v1 = await s.apply<Widget>(widget('st', { size: 1 }));
      const v2 = await s.updateStatus<Widget>('Widget', 'st', { phase: 'Pending' });
      assert.deepEqual(v2.spec, { size: 1 });
      assert.equal(v2.metadata.generation, v1.metadata.generation);
      assert.deepEqual(v2.status, { phase: 'Pending' });
      const v3 = await s.apply<Widget>({ ...widget('st', { size: 5 }), status: { phase: 'Hacked' } } as never);
      assert.deepEqual(v3.status, { phase: 'Pending' }, 'a status given to apply is ignored');
      assert.deepEqual(v3.spec, { size: 5 });
      const v4 = await s.updateStatus<Widget>('Widget', 'st', { phase: 'Ready' });
      assert.deepEqual(v4.spec, { size: 5 });
      assert.equal(v4.metadata.generation, 2);
      const same = await s.updateStatus<Widget>('Widget', 'st', { phase: 'Ready' });
      assert.equal(same.metadata.resourceVersion, v4.metadata.resourceVersion, 'an unchanged status writes nothing');
      const cleared = await s.updateStatus<Widget>('Widget', 'st', undefined);
      assert.equal(cleared.status, undefined);
      assert.deepEqual((await s.get<Widget>('Widget', 'st'))?.spec, { size: 5 });
    });

    it('holds a deleted object with finalizers until the last one is removed', async () => {
      const s = await make();
      const created = await s.apply<Widget>(widget('f', { size: 1 }, { finalizers: ['test.weft.dev/a', 'test.weft.dev/b'] }));
      const w = follow(s.watch<Widget>('Widget', { resourceVersion: created.metadata.resourceVersion }));
      await s.delete('Widget', 'f');
      const terminating = await s.get<Widget>('Widget', 'f');
      assert.ok(terminating, 'still there');
      assert.match(terminating.metadata.deletionTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(terminating.metadata.generation, 2, 'starting deletion bumps generation, as Kubernetes does');
      assert.deepEqual(terminating.metadata.finalizers, ['test.weft.dev/a', 'test.weft.dev/b']);
      const marked = await w.next();
      assert.equal(summary(marked as WatchEvent<Resource>), `MODIFIED Widget/f@${rv(2, terminating)}`);

      await s.delete('Widget', 'f'); // again: nothing changes
      assert.equal((await s.get('Widget', 'f'))?.metadata.resourceVersion, rv(2, terminating));
      await assert.rejects(
        s.apply(widget('f', { size: 1 }, { finalizers: ['test.weft.dev/a', 'test.weft.dev/b', 'test.weft.dev/c'] })),
        rejectsWith('Invalid', /no new finalizers can be added if the object is being deleted/),
      );
      const st = await s.updateStatus<Widget>('Widget', 'f', { phase: 'Cleaning' });
      assert.equal(st.metadata.deletionTimestamp, terminating.metadata.deletionTimestamp, 'status writes still allowed');
      const one = await s.apply<Widget>(widget('f', { size: 1 }, { finalizers: ['test.weft.dev/b'] }));
      assert.deepEqual(one.metadata.finalizers, ['test.weft.dev/b']);
      assert.ok(await s.get('Widget', 'f'));
      const last = await s.apply<Widget>(widget('f', { size: 1 }, { finalizers: [] }));
      assert.equal(await s.get('Widget', 'f'), undefined);
      const tail: string[] = [];
      while (tail.length < 4 && !tail.at(-1)?.startsWith('DELETED')) tail.push(summary((await w.next()) as WatchEvent<Resource>));
      assert.deepEqual(tail.slice(0, 2), [`MODIFIED Widget/f@${rv(3, st)}`, `MODIFIED Widget/f@${rv(4, one)}`]);
      // The embedded stores (and the fake) write the removal of the last finalizer, then the
      // deletion, and apply returns the deletion's version. A real API server deletes at once
      // (only DELETED) and answers with the object as the request made it (its version from
      // before the deletion): that version is not promised.
      if (!k8s) {
        assert.deepEqual(tail.slice(2), ['MODIFIED Widget/f@5', 'DELETED Widget/f@6'], 'the removal of the last finalizer, then the deletion');
        assert.equal(last.metadata.resourceVersion, '6', 'the version of the deletion');
      } else {
        assert.match(tail.at(-1)!, /^DELETED Widget\/f@/, tail.join(', '));
        assert.ok(tail.length === 3 || /^MODIFIED /.test(tail[2]!), tail.join(', '));
      }
      await assert.rejects(s.delete('Widget', 'f'), rejectsWith('NotFound'));
      w.stop();
    });

    it('watches from a resourceVersion: replay in order, then live, filtered by kind and namespace', async () => {
      const s = await make();
      const w1 = await s.apply(widget('w1', { size: 1 }));
      const mark = await s.apply(widget('w2', { size: 1 }, { namespace: 'n1' }));
      await s.apply({ kind: 'Gadget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'g' }, spec: {} });
      const w1b = await s.apply(widget('w1', { size: 2 }));
      await s.delete('Widget', 'w2', { namespace: 'n1' });
      // The delete's version is the DELETED event's (delete returns nothing).
      const all = follow(s.watch<Widget>('Widget', { resourceVersion: w1.metadata.resourceVersion, namespace: everywhere }));
      const n1 = follow(s.watch<Widget>('Widget', { resourceVersion: mark.metadata.resourceVersion, namespace: 'n1' }));
      const fromStart = follow(s.watch<Widget>('Widget', { resourceVersion: '0', namespace: everywhere }));
      const replay = (await all.take(3)).map((e) => summary(e as WatchEvent<Resource>));
      const deleted = replay[2]!.match(/^DELETED Widget\/n1\/w2@(.+)$/)?.[1];
      assert.ok(deleted, replay[2]);
      if (!k8s) assert.equal(deleted, '5');
      assert.deepEqual(replay, [`ADDED Widget/n1/w2@${rv(2, mark)}`, `MODIFIED Widget/w1@${rv(4, w1b)}`, `DELETED Widget/n1/w2@${deleted}`]);
      assert.deepEqual((await n1.take(1)).map((e) => summary(e as WatchEvent<Resource>)), [`DELETED Widget/n1/w2@${deleted}`]);
      assert.deepEqual((await fromStart.take(1)).map((e) => summary(e as WatchEvent<Resource>)), [`ADDED Widget/w1@${rv(4, w1b)}`], 'resourceVersion 0: current objects first');

      // Live: a consumer already waiting gets the event.
      const pending = all.next();
      const w3 = await s.apply(widget('w3', { size: 1 }, { namespace: 'n1' }));
      assert.equal(summary((await pending) as WatchEvent<Resource>), `ADDED Widget/n1/w3@${rv(6, w3)}`);
      assert.equal(summary((await n1.next()) as WatchEvent<Resource>), `ADDED Widget/n1/w3@${rv(6, w3)}`);
      assert.equal(summary((await fromStart.next()) as WatchEvent<Resource>), `ADDED Widget/n1/w3@${rv(6, w3)}`);
      await s.apply({ kind: 'Gadget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'g' }, spec: { x: 1 } });
      const w1c = await s.apply(widget('w1', { size: 3 }));
      assert.equal(summary((await all.next()) as WatchEvent<Resource>), `MODIFIED Widget/w1@${rv(8, w1c)}`, 'other kinds skipped, nothing repeated');
      all.stop();
      await all.end();
      n1.stop();
      fromStart.stop();

      // A watch from the current revision sees only what comes next.
      const { resourceVersion } = await s.list('Widget');
      const live = follow(s.watch<Widget>('Widget', { resourceVersion }));
      const w4 = await s.apply(widget('w4', { size: 1 }));
      const ev = await live.next();
      assert.equal(summary(ev as WatchEvent<Resource>), `ADDED Widget/w4@${rv(9, w4)}`);
      assert.ok(ev.type !== 'BOOKMARK');
      assert.deepEqual(ev.object.spec, { size: 1 });
      live.stop();
    });

    it('answers Gone for versions older than the retained history, and for consumers that fall behind', { skip: impl.kubernetes?.noShortHistory || false }, async () => {
      const s = await make({ historyLimit: 5 });
      // Versions as the writes returned them (opaque on a Kubernetes API: etcd revisions).
      const rvs: string[] = [];
      for (let i = 1; i <= 12; i++) rvs.push((await s.apply<Widget>(widget(`h${i}`, { size: i }))).metadata.resourceVersion);
      await expectGone(() => s.watch('Widget', { resourceVersion: rvs[0]! }));
      await expectGone(() => s.watch('Widget', { resourceVersion: rvs[5]! }));
      const ok = follow(s.watch<Widget>('Widget', { resourceVersion: rvs[6]! }));
      assert.deepEqual(
        (await ok.take(5)).map((e) => summary(e as WatchEvent<Resource>)),
        [8, 9, 10, 11, 12].map((i) => `ADDED Widget/h${i}@${rvs[i - 1]}`),
      );
      ok.stop();

      const slow = follow(s.watch<Widget>('Widget', { resourceVersion: rvs[11]! }));
      for (let i = 13; i <= 19; i++) await s.apply(widget(`h${i}`, { size: i }));
      // Kubernetes: the events travel over HTTP; the store holds what it received for the consumer.
      await impl.kubernetes?.settle();
      await assert.rejects(slow.next(), rejectsWith('Gone'));
      await slow.end();
      assert.throws(() => s.watch('Widget', { resourceVersion: 'abc' }), rejectsWith('Invalid'));
    });

    it('rejects invalid objects with a reason and stores nothing', async () => {
      const s = await make();
      // The embedded stores run a validator registered per kind; Kubernetes validates against the
      // CRD schema (CONTRACT_CRDS: size minimum 1) and answers 422 in its own words.
      const sizeRule = k8s ? /spec\.size: Invalid value: -?[01]: spec\.size in body should be greater than or equal to 1/ : 'spec.size: must be positive';
      s.registerKind?.('Widget', { validate: (spec) => ((spec as WidgetSpec).size > 0 ? null : 'spec.size: must be positive') });
      await assert.rejects(s.apply(widget('bad', { size: 0 })), rejectsWith('Invalid', sizeRule));
      assert.equal(await s.get('Widget', 'bad'), undefined);
      if (!k8s) assert.equal((await s.list('Widget')).resourceVersion, '0', 'no revision used');
      const good = await s.apply<Widget>(widget('good', { size: 1 }));
      await assert.rejects(s.apply(widget('good', { size: -1 })), rejectsWith('Invalid', sizeRule));
      assert.deepEqual(await s.get('Widget', 'good'), good, 'an invalid update leaves the object as it was');

      const invalid = [
        widget('Upper', { size: 1 }),
        widget('ok', { size: 1 }, { namespace: 'Bad_NS' }),
        widget('ok', { size: 1 }, { labels: { 'bad key!': 'v' } }),
        widget('ok', { size: 1 }, { labels: { k: 'bad value!' } }),
        widget('ok', { size: 1 }, { finalizers: ['not a name'] }),
        widget('ok', { when: new Date() } as never),
        widget('ok', { size: Number.NaN }),
        { kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'ok' } } as never,
        { kind: 'bad kind', apiVersion: 'test.weft.dev/v1', metadata: { name: 'ok' }, spec: {} },
      ];
      for (const obj of invalid) await assert.rejects(s.apply(obj), rejectsWith('Invalid'), JSON.stringify(obj));
      // Without spec, apply only touches metadata of an existing object (how a controller adds its
      // finalizer without taking over the spec); the spec and generation stay.
      const metaOnly = await s.apply<Widget>({ kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'good', finalizers: ['weft.test/hold'] } });
      assert.deepEqual(metaOnly.spec, good.spec);
      assert.equal(metaOnly.metadata.generation, good.metadata.generation);
      assert.deepEqual(metaOnly.metadata.finalizers, ['weft.test/hold']);
      const released = await s.apply<Widget>({ kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'good', finalizers: [] } });
      assert.deepEqual(released.spec, good.spec);
      // Embedded: the list is at the last write. (A Kubernetes list is at the server's revision,
      // which everything else the server writes moves as well.)
      if (!k8s) assert.equal((await s.list('Widget')).resourceVersion, released.metadata.resourceVersion);
      await assert.rejects(s.updateStatus('Widget', 'good', { at: () => 1 }), rejectsWith('Invalid'));

      if (s.registerKind) {
        s.registerKind('Gadget', { validate: () => { throw new Error('boom'); } });
        await assert.rejects(s.apply({ kind: 'Gadget', apiVersion: 'test.weft.dev/v1', metadata: { name: 'g' }, spec: {} }), rejectsWith('Invalid', /boom/));
      }
    });

    it('hands out copies, and ends watches on stop and on close', async () => {
      const s = await make();
      const created = await s.apply<Widget>(widget('c', { size: 1, tags: ['x'] }));
      created.spec.tags!.push('mutated');
      const listed = (await s.list<Widget>('Widget')).items[0]!;
      listed.spec.size = 99;
      assert.deepEqual((await s.get<Widget>('Widget', 'c'))?.spec, { size: 1, tags: ['x'] });

      const waiting = s.watch<Widget>('Widget', { resourceVersion: created.metadata.resourceVersion }).events[Symbol.asyncIterator]().next();
      const stopped = s.watch<Widget>('Widget', { resourceVersion: '0' });
      stopped.stop();
      assert.equal((await stopped.events[Symbol.asyncIterator]().next()).done, true, 'a stopped watch ends');
      await s.close();
      assert.equal((await waiting).done, true, 'closing the store ends a waiting watch');
      await assert.rejects(s.get('Widget', 'c'), /closed/);
      assert.ok(isStoreError(new StoreError('Gone', 'x'), 'Gone'));
    });
  });
}
