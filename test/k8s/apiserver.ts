// An in-process fake Kubernetes API server (HTTP on 127.0.0.1, random port) for the parts of the
// API weft uses, following the real server's semantics: one resourceVersion counter, 409 on stale
// updates and existing names, list + watch with resume, bookmarks and 410 Gone once history is
// compacted, server-side apply with field managers and conflicts, the status subresource,
// generation, finalizers and deletionTimestamp, and CRD schema pruning/validation (422 with causes).
// It is a test double: no real API server can run on these machines (reference/platform.md).
//
// Served: core/v1 nodes, pods, secrets, events; coordination.k8s.io/v1 leases; weft's custom
// resources from deploy/crds/*.yaml (their CEL rules through the twins in src/k8s/crds.ts) and any
// CRDs passed in. Discovery (/api, /apis, /api/v1, /apis/<g>/<v>, /version) as far as clients need.
//
// Not modelled: namespaces as objects (any namespace exists), RBAC (one bearer token), admission,
// garbage collection (ownerReferences, propagationPolicy), deletecollection, pagination
// (limit/continue), watch-list (sendInitialEvents), dryRun, waiting for a future resourceVersion
// (a watch from one just starts there), conversion between versions of a CRD, defaulting of
// built-in types, granular ownership inside map-lists (x-kubernetes-list-type: map lists are atomic
// to apply here; sets and maps are granular), and strategic merge patch (a merge patch stands in).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import YAML from 'yaml';
import { apiVersionOf, BUILTIN_TYPES, loadCrdDir, typesFromCrd, type CustomResourceDefinition, type ResourceType } from './apiserver/registry.ts';
import { ApiError, errors, parseFieldSelector, parseLabelSelector } from './apiserver/status.ts';
import { Storage, type Obj, type Watcher, type WatchEventOut } from './apiserver/storage.ts';
import { CEL_TWINS } from '../../src/k8s/crds.ts';

export type { CustomResourceDefinition } from './apiserver/registry.ts';
export type { Schema } from './apiserver/schema.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

export interface FakeApiServerOptions {
  /** Events kept for watches (all resources together); older versions are 410 Gone. Default 1000. */
  historyLimit?: number;
  /** How often watches that allow bookmarks get one; 0: only through bookmark(). Default 10 s. */
  bookmarkIntervalMs?: number;
  /** Where weft's CRD manifests are (default deploy/crds); false: do not load them. */
  crdDir?: string | false;
  /** More CRDs to serve (test kinds). */
  crds?: CustomResourceDefinition[];
  /** Namespace of the kubeconfig context. Default weft-system. */
  namespace?: string;
  /** Bearer token every request must carry (written into the kubeconfig). Default: random. */
  token?: string;
  /** A watch whose unsent output exceeds this many bytes is closed, as the real server drops slow watchers. */
  slowWatchBytes?: number;
}

export interface FakeApiServer {
  url: string;
  /** Path of a kubeconfig file for this server (removed by close()). */
  kubeconfig: string;
  token: string;
  /** The CRDs served (metadata.name), weft's and the ones passed in. */
  crds: string[];
  close(): Promise<void>;
  /** Forget the watch history: every watch from an older resourceVersion is then 410 Gone. */
  compactHistory(): void;
  /** Create or update a core/v1 Node as a kubelet and the node IPAM controller would. */
  setNode(name: string, n: { internalIP: string; podCIDRs: string[] }): Obj;
  /** Create or update a core/v1 Pod, scheduled and running with this IP. */
  setPod(namespace: string, name: string, p: { nodeName: string; podIP: string }): Obj;
  /** Delete through the API's rules (finalizers honoured); resource is a plural or a kind. */
  deleteObject(resource: string, name: string, namespace?: string): void;
  /** The stored object as the API returns it (with managedFields), or undefined. */
  getObject(resource: string, name: string, namespace?: string): Obj | undefined;
  /** Send a BOOKMARK now to every watch that allows them. */
  bookmark(): void;
  /** End every open watch (as a server restart or a watch timeout would). */
  closeWatches(): void;
  readonly revision: number;
  readonly openWatches: number;
  /** Requests served, by "METHOD path-pattern" (for tests that care how a client talks). */
  readonly requests: ReadonlyMap<string, number>;
}

/**
 * JSON with every object's keys sorted, as the real server writes custom resources (it holds them
 * as unstructured maps, and Go's encoder sorts map keys): clients must not rely on the order they
 * wrote.
 */
function serverJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function send(res: http.ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = serverJson(body);
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) };
  if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseBody(text: string, contentType: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return contentType === 'application/apply-patch+yaml' || contentType === 'application/yaml' ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw errors.badRequest(`error decoding ${contentType || 'body'}: ${(err as Error).message}`);
  }
}

function managerOf(url: URL, req: http.IncomingMessage): string {
  const given = url.searchParams.get('fieldManager');
  if (given) {
    if (given.length > 128) throw errors.badRequest('fieldManager: Too long: must have at most 128 bytes');
    return given;
  }
  const ua = req.headers['user-agent'] ?? '';
  return ua.split('/')[0] || 'unknown';
}

function discovery(storage: Storage, segs: string[]): unknown | undefined {
  const groups = new Map<string, Set<string>>();
  for (const t of storage.types) if (t.group) (groups.get(t.group) ?? groups.set(t.group, new Set()).get(t.group)!).add(t.version);
  const resourceList = (group: string, version: string) => {
    const types = storage.types.filter((t) => t.group === group && t.version === version);
    if (types.length === 0) return undefined;
    const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: types.flatMap((t) => [
        { name: t.resource, singularName: t.singular, namespaced: t.namespaced, kind: t.kind, verbs },
        ...(t.statusSubresource ? [{ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] }] : []),
      ]),
    };
  };
  const path = segs.join('/');
  if (path === 'version') return { major: '1', minor: '33', gitVersion: 'v1.33.0-weft-fake', platform: `${process.platform}/${process.arch}` };
  if (path === 'api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (path === 'api/v1') return resourceList('', 'v1');
  if (path === 'apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, vs]) => ({
        name,
        versions: [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
        preferredVersion: { groupVersion: `${name}/${[...vs][0]}`, version: [...vs][0] },
      })),
    };
  }
  if (segs[0] === 'apis' && segs.length === 2 && groups.has(segs[1]!)) {
    const vs = [...groups.get(segs[1]!)!];
    return { kind: 'APIGroup', apiVersion: 'v1', name: segs[1], versions: vs.map((v) => ({ groupVersion: `${segs[1]}/${v}`, version: v })), preferredVersion: { groupVersion: `${segs[1]}/${vs[0]}`, version: vs[0] } };
  }
  if (segs[0] === 'apis' && segs.length === 3) return resourceList(segs[1]!, segs[2]!);
  if (path === 'healthz' || path === 'readyz' || path === 'livez') return 'ok';
  return undefined;
}

interface Route {
  rt: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  pattern: string;
}

function route(storage: Storage, segs: string[]): Route | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) {
    group = '';
    version = segs[1]!;
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 4) {
    group = segs[1]!;
    version = segs[2]!;
    rest = segs.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1]!;
    rest = rest.slice(2);
  }
  if (rest.length > 3) return undefined;
  const [resource, name, subresource] = rest;
  const rt = storage.findType(group, version, resource!);
  if (!rt) return undefined;
  if (!rt.namespaced && namespace !== undefined) return undefined;
  if (rt.namespaced && namespace === undefined && name !== undefined) return undefined;
  if (subresource !== undefined && !(subresource === 'status' && rt.statusSubresource)) return undefined;
  const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const pattern = `${prefix}${namespace !== undefined ? '/namespaces/{ns}' : ''}/${resource}${name !== undefined ? '/{name}' : ''}${subresource ? `/${subresource}` : ''}`;
  return { rt, namespace, name, subresource, pattern };
}

export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const storage = new Storage({ historyLimit: opts.historyLimit ?? 1000 });
  for (const t of BUILTIN_TYPES) storage.addType(t);
  const crds: string[] = [];
  if (opts.crdDir !== false) {
    const dir = opts.crdDir ?? path.join(REPO, 'deploy/crds');
    const weft = loadCrdDir(dir);
    if (weft.length === 0) throw new Error(`fake API server: no CustomResourceDefinitions in ${dir}`);
    for (const crd of weft) {
      for (const t of typesFromCrd(crd, CEL_TWINS)) storage.addType(t);
      crds.push(crd.metadata.name);
    }
  }
  for (const crd of opts.crds ?? []) {
    for (const t of typesFromCrd(crd)) storage.addType(t);
    crds.push(crd.metadata.name);
  }

  const token = opts.token ?? randomBytes(16).toString('hex');
  const slowBytes = opts.slowWatchBytes ?? 4 << 20;
  const requests = new Map<string, number>();
  const count = (k: string) => requests.set(k, (requests.get(k) ?? 0) + 1);
  const watchResponses = new Set<http.ServerResponse>();

  const serveWatch = (req: http.IncomingMessage, res: http.ServerResponse, r: Route, url: URL) => {
    const q = url.searchParams;
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), r.rt);
    const rv = q.get('resourceVersion') ?? undefined;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    watchResponses.add(res);
    let open = true;
    const write = (ev: WatchEventOut) => {
      if (!open) return false;
      res.write(`${serverJson(ev)}\n`);
      return res.writableLength < slowBytes;
    };
    const w: Watcher = {
      rt: r.rt,
      namespace: r.namespace,
      labels,
      fields,
      bookmarks: q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1',
      send: write,
      close() {
        if (!open) return;
        open = false;
        watchResponses.delete(res);
        res.end();
      },
    };
    const started = storage.watch(w, rv);
    if ('gone' in started) {
      write({ type: 'ERROR', object: started.gone.toStatus() as unknown as Obj });
      w.close();
      return;
    }
    for (const ev of started.replay) if (!write(ev)) {
      storage.unwatch(w);
      w.close();
      return;
    }
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => { storage.unwatch(w); w.close(); }, timeout * 1000) : undefined;
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      storage.unwatch(w);
      open = false;
      watchResponses.delete(res);
    });
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const segs = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    if (req.headers.authorization !== `Bearer ${token}`) throw errors.unauthorized();
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      const d = discovery(storage, segs);
      if (d !== undefined) {
        count(`GET /${segs.join('/')}`);
        return send(res, 200, d);
      }
    }
    const r = route(storage, segs);
    if (!r) throw errors.pageNotFound();
    const q = url.searchParams;
    const isWatch = q.get('watch') === 'true' || q.get('watch') === '1';
    count(`${isWatch ? 'WATCH' : method} ${r.pattern}`);
    if (q.get('dryRun')) throw errors.badRequest('dryRun is not supported by the fake API server');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const body = method === 'GET' ? undefined : parseBody(await readBody(req), contentType);
    // Apply requests must name their manager; other writes default to the client's user agent.
    const manager = contentType === 'application/apply-patch+yaml' ? (q.get('fieldManager') ?? '') : managerOf(url, req);
    const w = { manager, subresource: r.subresource, force: q.get('force') === 'true', fieldValidation: q.get('fieldValidation') ?? undefined };
    const { rt, namespace, name } = r;

    if (name === undefined) {
      if (method === 'GET') {
        if (isWatch) return serveWatch(req, res, r, url);
        const list = storage.list(rt, namespace, parseLabelSelector(q.get('labelSelector')), parseFieldSelector(q.get('fieldSelector'), rt));
        return send(res, 200, { apiVersion: apiVersionOf(rt), kind: rt.listKind, metadata: { resourceVersion: list.resourceVersion }, items: list.items });
      }
      if (method === 'POST') {
        if (rt.namespaced && namespace === undefined) throw errors.methodNotAllowed(`create of ${rt.resource} needs a namespace`);
        const out = storage.create(rt, namespace, body, w);
        return send(res, 201, out.object, out.warnings);
      }
      throw errors.methodNotAllowed(`${method} is not supported on a collection here`);
    }
    switch (method) {
      case 'GET': {
        const obj = storage.get(rt, namespace, name);
        return send(res, 200, obj);
      }
      case 'PUT': {
        const out = storage.update(rt, namespace, name, body, w);
        return send(res, 200, out.object, out.warnings);
      }
      case 'PATCH': {
        const out = storage.patch(rt, namespace, name, contentType, body, w);
        return send(res, out.created ? 201 : 200, out.object, out.warnings);
      }
      case 'DELETE': {
        const obj = storage.delete(rt, namespace, name, body as Obj | undefined);
        return send(res, 200, obj);
      }
      default:
        throw errors.methodNotAllowed(`${method} is not allowed`);
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) return send(res, err.code, err.toStatus());
      const e = new ApiError(500, 'InternalError', `Internal error occurred: ${(err as Error)?.stack ?? String(err)}`);
      send(res, 500, e.toStatus());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const bookmarkEvery = opts.bookmarkIntervalMs ?? 10_000;
  const bookmarkTimer = bookmarkEvery > 0 ? setInterval(() => storage.bookmark(), bookmarkEvery) : undefined;
  bookmarkTimer?.unref();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-fake-apiserver-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  fs.writeFileSync(
    kubeconfig,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: opts.namespace ?? 'weft-system' } }],
      'current-context': 'fake',
    }),
    { mode: 0o600 },
  );

  const typeOf = (resource: string): ResourceType => {
    const rt = storage.findKind(resource);
    if (!rt) throw new Error(`fake API server: no resource ${resource}`);
    return rt;
  };
  const nodes = typeOf('nodes');
  const pods = typeOf('pods');
  const hook = { manager: 'fake-apiserver' };

  return {
    url,
    kubeconfig,
    token,
    crds,
    async close() {
      if (bookmarkTimer) clearInterval(bookmarkTimer);
      storage.closeWatches();
      for (const res of watchResponses) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
    compactHistory: () => storage.compact(),
    setNode(name, n) {
      const spec = { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs };
      const status = { addresses: [{ type: 'InternalIP', address: n.internalIP }, { type: 'Hostname', address: name }] };
      const existing = storage.peek(nodes, undefined, name);
      if (!existing) return storage.create(nodes, undefined, { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec, status }, { manager: 'kubelet' }).object;
      const updated = storage.update(nodes, undefined, name, { ...existing, spec: { ...(existing.spec as Obj), ...spec } }, hook).object;
      return storage.update(nodes, undefined, name, { ...updated, status: { ...(updated.status as Obj), ...status } }, { manager: 'kubelet', subresource: 'status' }).object;
    },
    setPod(namespace, name, p) {
      let obj = storage.peek(pods, namespace, name);
      if (!obj) {
        obj = storage.create(pods, namespace, { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace }, spec: { nodeName: p.nodeName, containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] } }, hook).object;
      } else if ((obj.spec as Obj).nodeName !== p.nodeName) {
        obj = storage.update(pods, namespace, name, { ...obj, spec: { ...(obj.spec as Obj), nodeName: p.nodeName } }, hook).object;
      }
      const status = { phase: 'Running', podIP: p.podIP, podIPs: [{ ip: p.podIP }] };
      return storage.update(pods, namespace, name, { ...obj, status }, { manager: 'kubelet', subresource: 'status' }).object;
    },
    deleteObject(resource, name, namespace) {
      storage.delete(typeOf(resource), namespace, name, undefined);
    },
    getObject(resource, name, namespace) {
      return storage.peek(typeOf(resource), namespace, name);
    },
    bookmark: () => storage.bookmark(),
    closeWatches: () => storage.closeWatches(),
    get revision() {
      return storage.revision;
    },
    get openWatches() {
      return storage.watcherCount;
    },
    requests,
  };
}
