// The API server a Kubernetes-mode test runs against: the in-process fake (test/k8s/apiserver.ts),
// or, with WEFT_TEST_KUBE_APISERVER=/path/to/kube-apiserver and WEFT_TEST_ETCD=/path/to/etcd set,
// a fresh real kube-apiserver on etcd (test/k8s/real-apiserver.ts; more flags for it in
// WEFT_TEST_KUBE_APISERVER_ARGS). Both answer through the same
// TestApiServer surface; what only the fake can do on demand (send a bookmark now, end every
// watch, compact the history, count requests) is on `fake`, which a real server does not have:
// tests that need it are skipped there (skipOnReal gives the reason).
import { startFakeApiServer, type FakeApiServer, type FakeApiServerOptions } from './apiserver.ts';
import { startRealApiServer, type Component, type RealApiServer } from './real-apiserver.ts';

export type { Component } from './real-apiserver.ts';

type Obj = Record<string, any>;

const APISERVER = process.env.WEFT_TEST_KUBE_APISERVER ?? '';
const ETCD = process.env.WEFT_TEST_ETCD ?? '';
if ((APISERVER === '') !== (ETCD === '')) {
  throw new Error('the real-API-server mode needs both WEFT_TEST_KUBE_APISERVER (a kube-apiserver binary) and WEFT_TEST_ETCD (an etcd binary)');
}

/** True when the tests run against a real kube-apiserver. */
export const REAL_API_SERVER = APISERVER !== '';

/** `{ skip: skipOnReal('why') }`: the reason to skip a test in real mode, false on the fake. */
export function skipOnReal(needs: string): string | false {
  return REAL_API_SERVER ? `needs the fake API server: ${needs}` : false;
}

export interface TestApiServerOptions extends FakeApiServerOptions {
  /** Namespaces the test uses besides weft-system (the fake has all of them; a real server makes these). */
  namespaces?: string[];
}

export interface TestApiServer {
  readonly kind: 'fake' | 'real';
  url: string;
  /** A kubeconfig with a person's credentials (cluster admin on a real server). */
  kubeconfig: string;
  /** A kubeconfig for a weft component: a token of its own ServiceAccount (deploy/rbac.yaml) on a real server. */
  kubeconfigFor(component: Component): Promise<string>;
  /** The CRDs served (metadata.name). */
  crds: string[];
  close(): Promise<void>;
  /** Create or update a core/v1 Node as a kubelet and the node IPAM controller would. */
  setNode(name: string, n: { internalIP: string; podCIDRs: string[] }): Promise<Obj>;
  /** Create or update a core/v1 Pod, scheduled and running with this IP. */
  setPod(namespace: string, name: string, p: { nodeName: string; podIP: string }): Promise<Obj>;
  /** Delete through the API's rules (finalizers honoured); resource is a plural or a kind. */
  deleteObject(resource: string, name: string, namespace?: string): Promise<void>;
  /** The stored object as the API returns it (with managedFields), or undefined. */
  getObject(resource: string, name: string, namespace?: string): Promise<Obj | undefined>;
  /**
   * Writes served so far (create, update, patch, apply, delete), by "VERB resource": from the
   * fake's request log, or a real server's apiserver_request_total (/metrics), counting weft's
   * resources and core/v1 ones (not the server's own lease renewals). Compare two readings.
   */
  writeCounts(): Promise<Map<string, number>>;
  /** The fake's on-demand hooks (bookmark, closeWatches, compactHistory, requests, ...); undefined on a real server. */
  readonly fake: FakeApiServer | undefined;
}

function fromFake(f: FakeApiServer): TestApiServer {
  let closed: Promise<void> | undefined;
  return {
    kind: 'fake',
    url: f.url,
    kubeconfig: f.kubeconfig,
    kubeconfigFor: async () => f.kubeconfig,
    crds: f.crds,
    close: () => (closed ??= f.close()),
    setNode: async (name, n) => f.setNode(name, n),
    setPod: async (ns, name, p) => f.setPod(ns, name, p),
    deleteObject: async (resource, name, ns) => f.deleteObject(resource, name, ns),
    getObject: async (resource, name, ns) => f.getObject(resource, name, ns),
    writeCounts: async () => new Map([...f.requests].filter(([k]) => /^(PUT|PATCH|POST|DELETE) /.test(k))),
    fake: f,
  };
}

function fromReal(r: RealApiServer): TestApiServer {
  return {
    kind: 'real',
    url: r.url,
    kubeconfig: r.kubeconfig,
    kubeconfigFor: (c) => r.kubeconfigFor(c),
    crds: r.crds,
    close: () => r.close(),
    setNode: (name, n) => r.setNode(name, n),
    setPod: (ns, name, p) => r.setPod(ns, name, p),
    deleteObject: (resource, name, ns) => r.deleteObject(resource, name, ns),
    getObject: (resource, name, ns) => r.getObject(resource, name, ns),
    writeCounts: () => r.writeCounts(),
    fake: undefined,
  };
}

/**
 * A fresh API server with weft's CRDs (and opts.crds): the fake, or a real one when the
 * environment names the binaries. The fake-only options (historyLimit, bookmarkIntervalMs,
 * slowWatchBytes, token) do nothing on a real server.
 */
export async function startTestApiServer(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
  if (!REAL_API_SERVER) {
    const { namespaces: _ignored, ...fakeOpts } = opts;
    return fromFake(await startFakeApiServer(fakeOpts));
  }
  return fromReal(
    await startRealApiServer({
      apiserverBin: APISERVER,
      etcdBin: ETCD,
      ...(opts.crdDir !== undefined ? { crdDir: opts.crdDir } : {}),
      ...(opts.crds ? { crds: opts.crds } : {}),
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
      extraArgs: (process.env.WEFT_TEST_KUBE_APISERVER_ARGS ?? '').split(/\s+/).filter(Boolean),
    }),
  );
}
