// KubernetesStore against the in-process API server (or a real one: test/k8s/test-apiserver.ts): the same Store contract the embedded stores
// pass (test/unit/store-contract.ts, with the differences Kubernetes has noted there), then what
// only the Kubernetes store does: field ownership under server-side apply, Nodes and Pods from the
// core API, watches resumed across server-side closes, Gone after compaction, error mapping.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { KubernetesStore } from '../../src/k8s/store.ts';
import { customKind } from '../../src/k8s/kinds.ts';
import { inform } from '../../src/store/informer.ts';
import { StoreError, type Resource, type WatchEvent } from '../../src/store/types.ts';
import { CONTRACT_CRDS, runStoreContract } from '../unit/store-contract.ts';
import { skipOnReal, startTestApiServer, type TestApiServer, type TestApiServerOptions } from './test-apiserver.ts';

const servers: TestApiServer[] = [];
// Stores are closed first (the contract's own afterEach runs before this one).
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const TEST_KINDS = [
  customKind({ kind: 'Widget', group: 'test.weft.dev', version: 'v1', namespaced: true }),
  customKind({ kind: 'Gadget', group: 'test.weft.dev', version: 'v1', namespaced: false }),
];

async function cluster(opts: TestApiServerOptions = {}, storeOpts: { fieldManager?: string; watchBufferLimit?: number } = {}) {
  const server = await startTestApiServer({ bookmarkIntervalMs: 0, crds: CONTRACT_CRDS, namespaces: ['ns1', 'ns2', 'n1'], ...opts });
  servers.push(server);
  const kc = new KubeConfig();
  kc.loadFromFile(server.kubeconfig);
  const store = (fieldManager = storeOpts.fieldManager ?? 'weft-test') =>
    new KubernetesStore({ kubeConfig: kc, fieldManager, kinds: TEST_KINDS, ...(storeOpts.watchBufferLimit ? { watchBufferLimit: storeOpts.watchBufferLimit } : {}) });
  return { server, kc, store };
}

runStoreContract({
  name: 'KubernetesStore',
  async make(opts) {
    const c = await cluster(opts?.historyLimit ? { historyLimit: opts.historyLimit } : {}, opts?.historyLimit ? { watchBufferLimit: opts.historyLimit } : {});
    return c.store();
  },
  kubernetes: {
    homeNamespace: 'weft-system',
    noShortHistory: skipOnReal('a watch history of 5 events (a real API server keeps etcd’s, compacted every 5 minutes)'),
    settle: () => new Promise((r) => setTimeout(r, 200)),
  },
});

const widget = (name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({ kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name, ...meta }, spec });

async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('KubernetesStore on the Kubernetes API', { timeout: 120_000 }, () => {
  it('applies with its field manager: others keep what they own, a conflicting value is taken over (force)', async () => {
    const { server, store } = await cluster();
    const cli = store('weft-cli');
    const ctl = store('weft-controller');
    await cli.apply(widget('w', { size: 1, tags: ['a'] }, { labels: { owner: 'cli' } }));
    await ctl.apply(widget('w', { size: 1, tags: ['a'] }, { labels: { role: 'ctl' }, finalizers: ['test.weft.dev/ctl'] }));
    const raw = (await server.getObject('widgets', 'w', 'weft-system'))!;
    const managers = (raw.metadata as { managedFields: { manager: string; operation: string }[] }).managedFields.map((m) => `${m.manager}/${m.operation}`);
    assert.deepEqual(managers.sort(), ['weft-cli/Apply', 'weft-controller/Apply']);
    // The CLI changes size (the controller co-owns it with the old value): force takes it over.
    const v = await cli.apply<Resource<{ size: number }>>(widget('w', { size: 2, tags: ['a'] }));
    assert.equal(v.spec.size, 2);
    assert.deepEqual(v.metadata.labels, { owner: 'cli', role: 'ctl' }, 'labels left out are kept; the other manager’s are theirs');
    assert.deepEqual(v.metadata.finalizers, ['test.weft.dev/ctl']);
    // The controller drops its finalizer: only its own goes; the CLI's label stays.
    const w2 = await ctl.apply(widget('w', { size: 2, tags: ['a'] }, { finalizers: [] }));
    assert.equal(w2.metadata.finalizers, undefined);
    assert.deepEqual(w2.metadata.labels, { owner: 'cli', role: 'ctl' });
    // An empty map releases only what this manager owned.
    const w3 = await ctl.apply(widget('w', { size: 2, tags: ['a'] }, { labels: {} }));
    assert.deepEqual(w3.metadata.labels, { owner: 'cli' });
  });

  it('maps Nodes and Pods from the core API, read-only', async () => {
    const { server, store } = await cluster();
    const s = store();
    await server.setNode('node-a', { internalIP: '192.168.1.10', podCIDRs: ['10.0.1.0/24'] });
    await server.setPod('default', 'web-1', { nodeName: 'node-a', podIP: '10.0.1.5' });
    await server.setPod('kube-system', 'dns-1', { nodeName: 'node-a', podIP: '10.0.1.6' });
    const node = await s.get<Resource<{ internalIP: string; podCIDRs: string[] }>>('Node', 'node-a');
    assert.deepEqual(node?.spec, { internalIP: '192.168.1.10', podCIDRs: ['10.0.1.0/24'] });
    assert.match(node!.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const pods = await s.list<Resource<{ nodeName: string; podIP: string }>>('Pod');
    assert.deepEqual(pods.items.map((p) => `${p.metadata.namespace}/${p.metadata.name} ${p.spec.nodeName} ${p.spec.podIP}`), ['default/web-1 node-a 10.0.1.5', 'kube-system/dns-1 node-a 10.0.1.6'], 'every namespace');
    assert.equal((await s.list('Pod', { namespace: 'default' })).items.length, 1);
    await assert.rejects(s.apply({ kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-a' }, spec: { internalIP: '1.2.3.4', podCIDRs: [] } }), (err) => err instanceof StoreError && err.code === 'Invalid');
    await assert.rejects(s.updateStatus('Pod', 'web-1', {}, { namespace: 'default' }), (err) => err instanceof StoreError && err.code === 'Invalid');

    const w = s.watch<Resource<{ internalIP: string }>>('Node', { resourceVersion: pods.resourceVersion });
    const it = w.events[Symbol.asyncIterator]();
    await server.setNode('node-a', { internalIP: '192.168.1.11', podCIDRs: ['10.0.1.0/24'] });
    const ev = (await it.next()).value as WatchEvent<Resource<{ internalIP: string }>>;
    assert.ok(ev.type === 'MODIFIED', ev.type);
    assert.equal(ev.object.spec.internalIP, '192.168.1.11');
    w.stop();
  });

  it('keeps Secrets as core/v1 objects whose data is the spec', async () => {
    const { server, store } = await cluster();
    const s = store();
    const data = { presharedKey: Buffer.from('k'.repeat(44)).toString('base64') };
    const created = await s.apply<Resource<{ data: Record<string, string> }>>({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 'weft-psk-b' }, spec: { data } });
    assert.deepEqual(created.spec, { data });
    assert.equal(created.metadata.namespace, 'weft-system');
    const raw = (await server.getObject('secrets', 'weft-psk-b', 'weft-system'))!;
    assert.deepEqual(raw.data, data, 'stored as a Secret’s data');
    assert.equal(raw.spec, undefined);
    assert.deepEqual((await s.get<Resource<{ data: Record<string, string> }>>('Secret', 'weft-psk-b'))?.spec, { data });
    assert.deepEqual((await s.list('Secret')).items.map((x) => x.metadata.name), ['weft-psk-b']);
    await assert.rejects(s.apply({ kind: 'Secret', apiVersion: 'v1', metadata: { name: 'bad' }, spec: { data: { k: 'not base64!' } } }), (err) => err instanceof StoreError && err.code === 'Invalid' && /illegal base64/.test(err.reason));
    await assert.rejects(s.updateStatus('Secret', 'weft-psk-b', {}), (err) => err instanceof StoreError && err.code === 'Invalid');
    await s.delete('Secret', 'weft-psk-b');
    assert.equal(await s.get('Secret', 'weft-psk-b'), undefined);
  });

  it('resumes a watch the server ends, from the last version seen (bookmarks keep it current)', { skip: skipOnReal('sends a bookmark and ends every watch on demand') }, async () => {
    const { server, store } = await cluster();
    const fake = server.fake!;
    const s = store();
    const a = await s.apply(widget('a', { size: 1 }));
    const w = s.watch<Resource>('Widget', { resourceVersion: a.metadata.resourceVersion });
    const it = w.events[Symbol.asyncIterator]();
    const b = await s.apply(widget('b', { size: 1 }));
    assert.equal(((await it.next()).value as { object: Resource }).object.metadata.name, 'b');
    fake.bookmark();
    assert.deepEqual((await it.next()).value, { type: 'BOOKMARK', resourceVersion: b.metadata.resourceVersion });
    fake.closeWatches();
    const c = await s.apply(widget('c', { size: 1 }));
    const next = (await it.next()).value as { type: string; object: Resource };
    assert.equal(`${next.type} ${next.object.metadata.name}@${next.object.metadata.resourceVersion}`, `ADDED c@${c.metadata.resourceVersion}`, 'nothing lost, nothing repeated');
    assert.ok((fake.requests.get('WATCH /apis/test.weft.dev/v1/namespaces/{ns}/widgets') ?? 0) >= 2, 'a second HTTP watch');
    w.stop();
  });

  it('ends a resumed watch with Gone once history was compacted, and the informer re-lists', { skip: skipOnReal('ends every watch and compacts the history on demand') }, async () => {
    const { server: test, store } = await cluster();
    const server = test.fake!;
    const s = store();
    server.setNode('n1', { internalIP: '192.168.1.1', podCIDRs: ['10.0.1.0/24'] });
    const { resourceVersion } = await s.list('Node');
    const w = s.watch<Resource>('Node', { resourceVersion });
    const it = w.events[Symbol.asyncIterator]();
    server.setNode('n2', { internalIP: '192.168.1.2', podCIDRs: ['10.0.2.0/24'] });
    assert.equal(((await it.next()).value as { object: Resource }).object.metadata.name, 'n2');
    // While the watch is down, a change happens and the history is compacted past it (all before
    // the client can reconnect): resuming from the last version seen is 410 Gone.
    server.closeWatches();
    server.setNode('n3', { internalIP: '192.168.1.3', podCIDRs: ['10.0.3.0/24'] });
    server.compactHistory();
    await assert.rejects(it.next(), (err) => err instanceof StoreError && err.code === 'Gone' && /too old resource version/.test(err.reason));
    assert.equal((await it.next()).done, true, 'a Gone watch has ended');

    // The informer turns Gone into a re-list and keeps following, without reporting an error.
    let changes = 0;
    const errors: Error[] = [];
    const inf = inform(s, ['Node'], () => changes++, { debounceMs: 5, onError: (e) => errors.push(e) });
    await until('initial list', () => changes >= 1);
    const before = changes;
    server.closeWatches();
    server.setNode('n4', { internalIP: '192.168.1.4', podCIDRs: ['10.0.4.0/24'] });
    server.compactHistory();
    await until('a change after compaction', () => changes > before);
    const lists = server.requests.get('GET /api/v1/nodes') ?? 0;
    assert.ok(lists >= 3, `re-listed after Gone (${lists} lists)`);
    assert.deepEqual(errors, []);
    inf.stop();
  });

  it('answers Gone for a watch from a version older than the history', { skip: skipOnReal('a watch history of 3 events') }, async () => {
    const { store } = await cluster({ historyLimit: 3 });
    const s = store();
    const first = await s.apply(widget('w0', { size: 1 }));
    for (let i = 1; i < 6; i++) await s.apply(widget(`w${i}`, { size: 1 }));
    const gone = s.watch('Widget', { resourceVersion: first.metadata.resourceVersion });
    await assert.rejects(gone.events[Symbol.asyncIterator]().next(), (err) => err instanceof StoreError && err.code === 'Gone' && new RegExp(`too old resource version: ${first.metadata.resourceVersion}`).test(err.reason));
  });

  it('answers Invalid with the server’s causes, and Conflict for a stale resourceVersion', async () => {
    const { store } = await cluster();
    const s = store();
    const w1 = await s.apply(widget('w1', { size: 1 }));
    await s.apply(widget('w1', { size: 2 }));
    await assert.rejects(s.apply(widget('bad', { size: 'big' })), (err) => {
      assert.ok(err instanceof StoreError && err.code === 'Invalid');
      // A real API server's apply fails to build the typed patch (HTTP 500, not 422); the store
      // reports it as Invalid with the server's words.
      assert.match(err.reason, /failed to create typed patch object \(weft-system\/bad; test\.weft\.dev\/v1, Kind=Widget\): \.spec\.size: expected numeric \(int or float\), got string/);
      return true;
    });
    await assert.rejects(s.apply(widget('w1', { size: 1 }, { resourceVersion: w1.metadata.resourceVersion })), (err) => err instanceof StoreError && err.code === 'Conflict' && err.httpStatus === 409, 'w1 was written since');
  });
});
