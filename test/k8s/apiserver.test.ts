// The in-process API server against @kubernetes/client-node, checking that it keeps the real API's
// rules the Kubernetes store relies on (and, with WEFT_TEST_KUBE_APISERVER and WEFT_TEST_ETCD set,
// that a real kube-apiserver keeps them as these tests state them: test/k8s/test-apiserver.ts): optimistic concurrency (409 on a stale resourceVersion,
// AlreadyExists), server-side apply ownership (conflicts, force, removal of fields a manager stops
// applying), the status subresource, generation, finalizers and deletionTimestamp, watches (resume,
// bookmarks, label-filtered events, 410 Gone after compaction), CRD schema pruning and 422 causes,
// Lease MicroTime decoding, discovery and authentication.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  V1MicroTime,
  Watch,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { CONTRACT_CRDS } from '../unit/store-contract.ts';
import { REAL_API_SERVER, skipOnReal, startTestApiServer, type TestApiServer } from './test-apiserver.ts';

const servers: TestApiServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

type Obj = Record<string, any>;

async function setup() {
  const server = await startTestApiServer({ bookmarkIntervalMs: 0, crds: CONTRACT_CRDS, namespaces: ['ns'] });
  servers.push(server);
  const kc = new KubeConfig();
  kc.loadFromFile(server.kubeconfig);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const widgets = { group: 'test.weft.dev', version: 'v1', namespace: 'ns', plural: 'widgets' };
  const peerings = { group: 'weft.io', version: 'v1alpha1', namespace: 'weft-system', plural: 'peerings' };
  const apply = (name: string, body: Obj, manager: string, force = false) =>
    custom.patchNamespacedCustomObject({ ...widgets, name, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name }, ...body }, fieldManager: manager, force }, setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply)) as Promise<Obj>;
  const get = (name: string) => custom.getNamespacedCustomObject({ ...widgets, name }) as Promise<Obj>;
  return { server, kc, custom, widgets, peerings, apply, get };
}

/** Poll until `check` holds (watch events travel over HTTP, also from this in-process server). */
async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The Status of a failed call: code, reason, message, details. */
async function failure(p: Promise<unknown>): Promise<{ code: number; reason: string; message: string; details?: Obj }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: number; body: string };
    const status = JSON.parse(e.body) as { code: number; reason: string; message: string; details?: Obj };
    assert.equal(status.code, e.code);
    return status;
  }
  assert.fail('expected the call to fail');
}

function owners(obj: Obj): Record<string, Obj> {
  return Object.fromEntries((obj.metadata.managedFields as Obj[]).map((m) => [`${m.manager}/${m.operation}${m.subresource ? `/${m.subresource}` : ''}`, m.fieldsV1]));
}

describe(REAL_API_SERVER ? 'real API server' : 'fake API server', { timeout: 120_000 }, () => {
  it('creates once (409 AlreadyExists) and updates only from the current resourceVersion (409 Conflict)', async () => {
    const { custom, widgets } = await setup();
    const created = (await custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } } })) as Obj;
    assert.match(created.metadata.resourceVersion, /^\S+$/, 'an opaque version (etcd revisions on a real server: not 1)');
    assert.equal(created.metadata.generation, 1);
    assert.equal(created.metadata.namespace, 'ns');
    const dup = await failure(custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 } } }));
    assert.deepEqual([dup.code, dup.reason, dup.message], [409, 'AlreadyExists', 'widgets.test.weft.dev "w" already exists']);

    const v2 = (await custom.replaceNamespacedCustomObject({ ...widgets, name: 'w', body: { ...created, spec: { size: 2 } } })) as Obj;
    assert.notEqual(v2.metadata.resourceVersion, created.metadata.resourceVersion);
    assert.equal(v2.metadata.generation, 2);
    const stale = await failure(custom.replaceNamespacedCustomObject({ ...widgets, name: 'w', body: { ...created, spec: { size: 3 } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.reason, 'Conflict');
    assert.match(stale.message, /^Operation cannot be fulfilled on widgets\.test\.weft\.dev "w": the object has been modified/);
    const { resourceVersion: _rv, ...noRv } = created.metadata;
    const unconditional = await failure(custom.replaceNamespacedCustomObject({ ...widgets, name: 'w', body: { ...created, metadata: noRv, spec: { size: 3 } } }));
    assert.equal(unconditional.code, 422, 'a custom resource update must carry its resourceVersion');
    // A merge patch carrying a resourceVersion is a precondition too.
    const patchStale = await failure(custom.patchNamespacedCustomObject({ ...widgets, name: 'w', body: { metadata: { resourceVersion: created.metadata.resourceVersion }, spec: { size: 9 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
    assert.equal(patchStale.code, 409);
    const same = (await custom.replaceNamespacedCustomObject({ ...widgets, name: 'w', body: v2 })) as Obj;
    assert.equal(same.metadata.resourceVersion, v2.metadata.resourceVersion, 'an update that changes nothing is not written');
    const missing = await failure(custom.getNamespacedCustomObject({ ...widgets, name: 'nope' }));
    assert.deepEqual([missing.code, missing.reason], [404, 'NotFound']);
  });

  it('server-side apply: shared ownership, conflicts unless forced, removal of what a manager stops applying', async () => {
    const { apply, get } = await setup();
    await apply('w', { metadata: { name: 'w', labels: { a: '1' } }, spec: { size: 1, tags: ['x'] } }, 'alice');
    // Same values: bob shares ownership, no conflict.
    await apply('w', { spec: { size: 1 } }, 'bob');
    // A different value for a field alice owns: conflict naming her and the field.
    const conflict = await failure(apply('w', { spec: { size: 2 } }, 'carol'));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.reason, 'Conflict');
    // The message's layout is the server's own (kube-apiserver 1.32); the causes are the
    // structured answer, with their kind as `reason` in JSON.
    assert.match(conflict.message, /^Apply failed with 2 conflicts: /);
    assert.match(conflict.message, /conflicts with "alice":\n- \.spec\.size/);
    assert.match(conflict.message, /conflicts with "bob":\n- \.spec\.size/);
    assert.deepEqual(
      conflict.details!.causes.map((c: Obj) => `${c.reason} ${c.field} ${c.message}`).sort(),
      ['FieldManagerConflict .spec.size conflict with "alice"', 'FieldManagerConflict .spec.size conflict with "bob"'],
    );
    assert.equal((await get('w')).spec.size, 1, 'a conflicting apply changes nothing');
    // Forced: carol takes size over from both.
    const forced = await apply('w', { spec: { size: 2 } }, 'carol', true);
    assert.equal(forced.spec.size, 2);
    const o = owners(forced);
    assert.deepEqual(Object.keys(o).sort(), ['alice/Apply', 'carol/Apply'], 'bob owned only size: his entry is gone');
    assert.deepEqual(o['carol/Apply'], { 'f:spec': { 'f:size': {} } });
    assert.deepEqual(o['alice/Apply'], { 'f:metadata': { 'f:labels': { 'f:a': {} } }, 'f:spec': { 'f:tags': {} } });
    // alice stops applying her label and tags: they go (she was their only owner); size stays (carol's).
    const dropped = await apply('w', { spec: { size: 2 } }, 'alice');
    assert.equal(dropped.metadata.labels, undefined);
    assert.deepEqual(dropped.spec, { size: 2 });
    // carol stops applying size while alice (who re-applied it, same value) shares it: it stays.
    const kept = await apply('w', { spec: {} }, 'carol');
    assert.deepEqual(kept.spec, { size: 2 });
    // An empty object that later gets fields is not removed on the way (a parent now, still applied).
    await apply('m', { spec: { size: 1, tags: [] } }, 'alice');
    const grown = await apply('m', { spec: { size: 1, tags: ['a', 'b'] } }, 'alice');
    assert.deepEqual(grown.spec.tags, ['a', 'b']);
    // Finalizers are a set: managers own members one by one.
    await apply('f', { metadata: { name: 'f', finalizers: ['test.weft.dev/a'] }, spec: { size: 1 } }, 'alice');
    const both = await apply('f', { metadata: { name: 'f', finalizers: ['test.weft.dev/b'] }, spec: { size: 1 } }, 'bob');
    assert.deepEqual(both.metadata.finalizers, ['test.weft.dev/a', 'test.weft.dev/b']);
    const one = await apply('f', { metadata: { name: 'f' }, spec: { size: 1 } }, 'bob');
    assert.deepEqual(one.metadata.finalizers, ['test.weft.dev/a']);
    // The applied object must name its kind and a manager.
    const noManager = await failure(apply('w', { spec: { size: 2 } }, ''));
    assert.equal(noManager.code, 422, `refused: ${noManager.code} ${noManager.message}`);
    assert.equal(noManager.reason, 'Invalid');
    assert.match(noManager.message, /fieldManager: Required value: is required for apply patch/);
  });

  it('keeps status a subresource and bumps generation on spec changes only', async () => {
    const { custom, widgets, get } = await setup();
    const created = (await custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 's' }, spec: { size: 1 }, status: { phase: 'Ignored' } } })) as Obj;
    assert.equal(created.status, undefined, 'status is not set by a create');
    const st = (await custom.replaceNamespacedCustomObjectStatus({ ...widgets, name: 's', body: { ...created, spec: { size: 99 }, status: { phase: 'Ready' } } })) as Obj;
    assert.deepEqual(st.status, { phase: 'Ready' });
    assert.deepEqual(st.spec, { size: 1 }, 'spec changes on /status are ignored');
    assert.equal(st.metadata.generation, 1);
    const main = (await custom.replaceNamespacedCustomObject({ ...widgets, name: 's', body: { ...st, spec: { size: 2 }, status: { phase: 'Hacked' } } })) as Obj;
    assert.deepEqual(main.status, { phase: 'Ready' }, 'status changes on the main resource are ignored');
    assert.equal(main.metadata.generation, 2);
    const labelled = (await custom.patchNamespacedCustomObject({ ...widgets, name: 's', body: { metadata: { labels: { x: 'y' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))) as Obj;
    assert.equal(labelled.metadata.generation, 2, 'metadata changes keep generation');
    assert.notEqual(labelled.metadata.resourceVersion, main.metadata.resourceVersion);
    const statusPatch = (await custom.patchNamespacedCustomObjectStatus({ ...widgets, name: 's', body: { status: { phase: 'Done' }, spec: { size: 7 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))) as Obj;
    assert.deepEqual([statusPatch.status.phase, statusPatch.spec.size], ['Done', 2]);
    const o = owners(await get('s'));
    assert.ok(Object.keys(o).some((k) => k.endsWith('/Update/status') && o[k]!['f:status']), 'status writes are recorded under the status subresource');
    assert.ok(Object.values(o).every((f) => !f['f:spec'] || !f['f:status']), 'spec and status are owned apart');
  });

  it('holds an object with finalizers (deletionTimestamp) until the last one goes', async () => {
    const { custom, widgets, get } = await setup();
    const created = (await custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'f', finalizers: ['test.weft.dev/hold'] }, spec: { size: 1 } } })) as Obj;
    const deleted = (await custom.deleteNamespacedCustomObject({ ...widgets, name: 'f' })) as Obj;
    assert.ok(deleted.metadata.deletionTimestamp);
    const held = await get('f');
    assert.ok(held.metadata.deletionTimestamp, 'still there, terminating');
    assert.equal(held.metadata.generation, created.metadata.generation + 1, 'graceful deletion bumps generation');
    const again = (await custom.deleteNamespacedCustomObject({ ...widgets, name: 'f' })) as Obj;
    assert.equal(again.metadata.resourceVersion, held.metadata.resourceVersion, 'deleting again changes nothing');
    const add = await failure(custom.patchNamespacedCustomObject({ ...widgets, name: 'f', body: { metadata: { finalizers: ['test.weft.dev/hold', 'test.weft.dev/more'] } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
    assert.equal(add.code, 422);
    assert.match(add.message, /metadata\.finalizers: Forbidden: no new finalizers can be added if the object is being deleted/);
    await custom.patchNamespacedCustomObject({ ...widgets, name: 'f', body: { metadata: { finalizers: null } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.equal((await failure(get('f'))).code, 404, 'gone once the last finalizer is removed');
  });

  it('watches: resume from a version, label filters, and the current state from version 0', async () => {
    const { kc, apply } = await setup();
    const a1 = await apply('a', { metadata: { name: 'a', labels: { tier: 'web' } }, spec: { size: 1 } }, 'm');
    await apply('b', { spec: { size: 1 } }, 'm');
    const events: string[] = [];
    const watch = new Watch(kc);
    const path = '/apis/test.weft.dev/v1/namespaces/ns/widgets';
    let done: unknown = 'open';
    const ctl = await watch.watch(path, { resourceVersion: a1.metadata.resourceVersion, labelSelector: 'tier=web' }, (type, obj) => events.push(`${type} ${obj.metadata.name ?? ''}@${obj.metadata.resourceVersion}`), (err) => (done = err));
    const a2 = await apply('a', { metadata: { name: 'a', labels: { tier: 'db' } }, spec: { size: 1 } }, 'm'); // stops matching
    const b2 = await apply('b', { metadata: { name: 'b', labels: { tier: 'web' } }, spec: { size: 1 } }, 'm'); // starts matching
    await until('both label transitions', () => events.length >= 2);
    await new Promise((r) => setTimeout(r, 200)); // nothing more comes
    assert.deepEqual(events, [`DELETED a@${a2.metadata.resourceVersion}`, `ADDED b@${b2.metadata.resourceVersion}`], 'replay from a’s creation (b’s creation does not match), label transitions');
    assert.equal(done, 'open', 'the server keeps the watch open');
    ctl.abort();

    // From version 0: the current state first, as ADDED.
    const initial: string[] = [];
    const ctl0 = await watch.watch(path, { resourceVersion: '0' }, (type, obj) => initial.push(`${type} ${obj.metadata.name}`), () => {});
    await until('the current state', () => initial.length >= 2);
    assert.deepEqual(initial.sort(), ['ADDED a', 'ADDED b']);
    ctl0.abort();
  });

  it('watches: a bookmark at the head, and 410 Gone once history is compacted', { skip: skipOnReal('sends a bookmark and compacts the watch history on demand') }, async () => {
    const { server, kc, apply } = await setup();
    const fake = server.fake!;
    const a1 = await apply('a', { metadata: { name: 'a', labels: { tier: 'web' } }, spec: { size: 1 } }, 'm');
    const b1 = await apply('b', { spec: { size: 1 } }, 'm');
    const events: string[] = [];
    const watch = new Watch(kc);
    const path = '/apis/test.weft.dev/v1/namespaces/ns/widgets';
    const ctl = await watch.watch(path, { resourceVersion: a1.metadata.resourceVersion, allowWatchBookmarks: true, labelSelector: 'tier=web' }, (type, obj) => events.push(`${type} ${obj.metadata.name ?? ''}@${obj.metadata.resourceVersion}`), () => {});
    await apply('a', { metadata: { name: 'a', labels: { tier: 'db' } }, spec: { size: 1 } }, 'm');
    const b2 = await apply('b', { metadata: { name: 'b', labels: { tier: 'web' } }, spec: { size: 1 } }, 'm');
    fake.bookmark();
    // The bookmark is sent last: once it is here, everything sent before it is too.
    await until('the bookmark', () => events.some((e) => e.startsWith('BOOKMARK')));
    assert.equal(events.length, 3);
    assert.equal(events[2], `BOOKMARK @${b2.metadata.resourceVersion}`, 'a bookmark at the head');
    ctl.abort();

    fake.compactHistory();
    const gone: Obj[] = [];
    let ended = false;
    await watch.watch(path, { resourceVersion: b1.metadata.resourceVersion }, (type, obj) => gone.push({ type, obj }), () => (ended = true));
    await until('the server to end the Gone watch', () => ended);
    assert.equal(gone.length, 1);
    assert.equal(gone[0]!.type, 'ERROR');
    assert.deepEqual([gone[0]!.obj.code, gone[0]!.obj.reason], [410, 'Expired']);
    assert.match(gone[0]!.obj.message, new RegExp(`^too old resource version: ${b1.metadata.resourceVersion} \\(\\d+\\)$`));
    assert.ok(ended, 'the server ends a Gone watch');
  });

  it('validates custom resources against the CRD schema: 422 with causes, unknown fields pruned', async () => {
    const { custom, peerings } = await setup();
    const bad = await failure(
      custom.createNamespacedCustomObject({
        ...peerings,
        body: { apiVersion: 'weft.io/v1alpha1', kind: 'Peering', metadata: { name: 'x' }, spec: { remoteClusterId: 'y', remotePodCIDR: '10.0.0.1/16', remoteEndpoint: { host: 'nowhere', port: 70000 } } },
      }),
    );
    assert.equal(bad.code, 422);
    assert.equal(bad.reason, 'Invalid');
    assert.match(bad.message, /^Peering\.weft\.io "x" is invalid: \[/);
    const fields = (bad.details!.causes as Obj[]).map((c) => c.field);
    for (const f of ['spec.remotePodCIDR', 'spec.remoteEndpoint.port', 'spec.remoteEndpoint.host', 'spec.remoteExternalCIDR', 'spec.remotePublicKey']) assert.ok(fields.includes(f), `${f} in ${fields.join(', ')}`);
    const port = (bad.details!.causes as Obj[]).find((c) => c.field === 'spec.remoteEndpoint.port')!;
    assert.equal(port.message, 'Invalid value: 70000: spec.remoteEndpoint.port in body should be less than or equal to 65535');
    assert.ok((bad.details!.causes as Obj[]).some((c) => c.field === 'spec.remoteExternalCIDR' && c.reason === 'FieldValueRequired'));

    const widgets = { group: 'test.weft.dev', version: 'v1', namespace: 'ns', plural: 'widgets' };
    const pruned = (await custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'p' }, spec: { size: 1, extra: true }, junk: 1 } })) as Obj;
    assert.deepEqual(pruned.spec, { size: 1 }, 'unknown fields are dropped');
    assert.equal(pruned.junk, undefined);
    const strict = await failure(custom.createNamespacedCustomObject({ ...widgets, fieldValidation: 'Strict', body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'q' }, spec: { size: 1, extra: true } } }));
    assert.equal(strict.code, 400);
    assert.match(strict.message, /unknown field "spec\.extra"/);
    const badName = await failure(custom.createNamespacedCustomObject({ ...widgets, body: { apiVersion: 'test.weft.dev/v1', kind: 'Widget', metadata: { name: 'Bad_Name' }, spec: { size: 1 } } }));
    assert.equal(badName.code, 422);
    assert.equal(badName.details!.causes[0].field, 'metadata.name');
  });

  it('serves core objects: nodes, pods with field selectors, leases with MicroTime, secrets', async () => {
    const { server, kc } = await setup();
    const core = kc.makeApiClient(CoreV1Api);
    await server.setNode('n1', { internalIP: '192.168.0.1', podCIDRs: ['10.0.1.0/24'] });
    await server.setPod('default', 'p1', { nodeName: 'n1', podIP: '10.0.1.2' });
    await server.setPod('default', 'p2', { nodeName: 'n2', podIP: '10.0.2.2' });
    const node = await core.readNode({ name: 'n1' });
    assert.deepEqual(node.spec?.podCIDRs, ['10.0.1.0/24']);
    assert.equal(node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, '192.168.0.1');
    const onN1 = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=n1' });
    assert.deepEqual(onN1.items.map((p) => `${p.metadata?.name} ${p.status?.podIP}`), ['p1 10.0.1.2']);

    const leases = kc.makeApiClient(CoordinationV1Api);
    const millis = await failure(
      leases.createNamespacedLease({ namespace: 'weft-system', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'x', renewTime: new Date() as V1MicroTime } } }),
    );
    assert.equal(millis.code, 400, 'a Date (three fractional digits) is not a MicroTime');
    assert.match(millis.message, /cannot parse "\.\d{3}Z" as "\.000000"/);
    const ok = await leases.createNamespacedLease({ namespace: 'weft-system', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'x', leaseDurationSeconds: 5, renewTime: new V1MicroTime() } } });
    assert.equal(ok.spec?.holderIdentity, 'x');
    const zero = await failure(leases.replaceNamespacedLease({ name: 'l', namespace: 'weft-system', body: { ...ok, spec: { ...ok.spec, leaseDurationSeconds: 0, renewTime: new V1MicroTime() } } }));
    assert.equal(zero.code, 422);

    const badSecret = await failure(core.createNamespacedSecret({ namespace: 'weft-system', body: { metadata: { name: 's' }, data: { k: 'not base64!' } } }));
    assert.equal(badSecret.code, 400);
  });

  it('answers discovery as client-node needs it, and refuses requests without the token', async () => {
    const { server, kc } = await setup();
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const created = await objects.create({ apiVersion: 'weft.io/v1alpha1', kind: 'IpamState', metadata: { name: 'local', namespace: 'weft-system' }, spec: { snapshot: {} } } as never);
    assert.equal((created as Obj).metadata.name, 'local');
    const read = await objects.read({ apiVersion: 'weft.io/v1alpha1', kind: 'IpamState', metadata: { name: 'local', namespace: 'weft-system' } });
    assert.equal(read.metadata?.uid, (created as Obj).metadata.uid);
    if (server.fake) assert.ok([...server.fake.requests.keys()].includes('GET /apis/weft.io/v1alpha1'), 'resources discovered');

    // A token kubeconfig (the admin one of a real server has a client certificate, which a wrong
    // token would not override).
    const anonymous = new KubeConfig();
    anonymous.loadFromFile(await server.kubeconfigFor('controller'));
    (anonymous.getCurrentUser() as { token?: string }).token = 'wrong';
    // client-node drops the body of a 401; the code is what there is.
    await assert.rejects(anonymous.makeApiClient(CoreV1Api).listNode(), (err: { code?: number }) => err.code === 401);
  });
});
