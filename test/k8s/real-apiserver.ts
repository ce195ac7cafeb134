// A real kube-apiserver for the tests, as controller-runtime's envtest runs one: with
// WEFT_TEST_KUBE_APISERVER=/path/to/kube-apiserver and WEFT_TEST_ETCD=/path/to/etcd set, each
// startRealApiServer() starts a fresh etcd (temporary data directory, loopback, free ports) and a
// kube-apiserver on it (loopback, a free port, RBAC on, anonymous requests denied by RBAC), with a
// CA, serving certificate, admin client certificate (group system:masters) and service-account
// key pair of its own, made with openssl in a private temporary directory. It waits for /readyz,
// applies weft's CRDs (deploy/crds) and any test CRDs and waits until they are Established and
// served, creates weft-system (deploy/namespace.yaml) and the namespaces the test asks for, and
// applies deploy/rbac.yaml, so that each weft component can get a token of its own ServiceAccount
// (TokenRequest API) and a permission missing there fails the test.
//
// Nothing listens beyond 127.0.0.1. There is no controller-manager, scheduler or kubelet: no
// garbage collection, no namespace finalization, Pods stay as written (setPod writes their status
// as a kubelet would); the ServiceAccount admission plugin is off (no token controller makes the
// default ServiceAccounts it wants). close() stops both processes by pid and removes the directory;
// an interrupted or crashing test process does the same on its way out.
//
// The binaries are never part of this repository: kube-apiserver is built from Kubernetes sources
// (any v1.3x), etcd is Debian's etcd-server (3.4) or an upstream release.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import type { CustomResourceDefinition } from './apiserver/registry.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

type Obj = Record<string, any>;

/** The weft components with a ServiceAccount in deploy/rbac.yaml (weft-<component> in weft-system). */
export type Component = 'controller' | 'gateway' | 'agent';

export interface RealApiServerOptions {
  apiserverBin: string;
  etcdBin: string;
  /** Where weft's CRD manifests are (default deploy/crds); false: do not apply them. */
  crdDir?: string | false;
  /** More CRDs to apply (test kinds). */
  crds?: CustomResourceDefinition[];
  /** Namespace of the kubeconfig contexts. Default weft-system. */
  namespace?: string;
  /** Namespaces to create besides weft-system (the fake has every namespace; a real server does not). */
  namespaces?: string[];
  /** More kube-apiserver flags (WEFT_TEST_KUBE_APISERVER_ARGS), e.g. --feature-gates=WatchList=false. */
  extraArgs?: string[];
}

export interface RealApiServer {
  url: string;
  /** Admin kubeconfig (client certificate, group system:masters): a person's credentials. */
  kubeconfig: string;
  /** Kubeconfig with a TokenRequest token of weft-<component>'s ServiceAccount. */
  kubeconfigFor(component: Component): Promise<string>;
  crds: string[];
  /** pids of etcd and kube-apiserver. */
  pids: { etcd: number; apiserver: number };
  dir: string;
  close(): Promise<void>;
  /** An admin request (JSON in, JSON out); throws on a status >= 400 unless allowed. */
  request(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<{ status: number; body: any }>;
  setNode(name: string, n: { internalIP: string; podCIDRs: string[] }): Promise<Obj>;
  setPod(namespace: string, name: string, p: { nodeName: string; podIP: string }): Promise<Obj>;
  deleteObject(resource: string, name: string, namespace?: string): Promise<void>;
  getObject(resource: string, name: string, namespace?: string): Promise<Obj | undefined>;
  /** Writes served, by "VERB resource[/subresource]" (apiserver_request_total), core/v1, events.k8s.io and weft.io only. */
  writeCounts(): Promise<Map<string, number>>;
}

// ---- process bookkeeping: every live server is stopped on exit and on SIGINT/SIGTERM ----------

interface Live {
  children: ChildProcess[];
  dir: string;
}
const live = new Set<Live>();
let hooked = false;

function killNow(l: Live): void {
  for (const c of l.children) {
    if (c.pid && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {}
    }
  }
  fs.rmSync(l.dir, { recursive: true, force: true });
}

function hookProcessExit(): void {
  if (hooked) return;
  hooked = true;
  // A test process that ends without close() (a crash, process.exit) takes its servers along.
  process.on('exit', () => {
    for (const l of live) killNow(l);
    live.clear();
  });
  // Interrupted: stop the servers first (synchronously), then leave the exit to whoever else
  // handles the signal (test/netns/harness.ts cleans its namespaces up, then exits), or exit here.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      for (const l of live) killNow(l);
      live.clear();
      if (process.listenerCount(sig) <= 1) process.exit(130);
    };
    process.prependListener(sig, onSignal);
  }
}

// ---- helpers ---------------------------------------------------------------------------------------

function sh(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve()));
  });
}

/** `etcd --version`: "3.4.23". */
function etcdVersion(bin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], { timeout: 10_000 }, (err, stdout) => {
      const v = String(stdout).match(/etcd Version: (\d+\.\d+\.\d+)/)?.[1];
      if (err || !v) reject(new Error(`${bin} --version: ${err?.message ?? String(stdout).slice(0, 200)}`));
      else resolve(v);
    });
  });
}

/**
 * Whether this etcd answers progress requests correctly (etcd-io/etcd#17507, fixed in 3.4.31 and
 * 3.5.13), which kube-apiserver needs for watch-list requests (a watch from resourceVersion 0 or
 * none, with bookmarks, is one in v1.32+ where the WatchList feature is on).
 */
function etcdSupportsWatchProgress(version: string): boolean {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number];
  if (major !== 3) return major > 3;
  if (minor === 4) return patch >= 31;
  if (minor === 5) return patch >= 13;
  return minor > 5;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Spawn with output to a log file; the child does not keep the test process alive. */
function start(bin: string, args: string[], log: string): ChildProcess {
  const fd = fs.openSync(log, 'a');
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    child.unref();
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

async function stop(child: ChildProcess, graceMs: number): Promise<void> {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {}
  }, graceMs);
  await exited;
  clearTimeout(t);
}

/** Make the PKI: CA, serving certificate for 127.0.0.1, admin client certificate, SA key pair. */
async function makePki(dir: string): Promise<void> {
  const o = (...args: string[]) => sh('openssl', args, dir);
  await o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=weft-test-ca');
  fs.writeFileSync(
    path.join(dir, 'apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  fs.writeFileSync(path.join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  await Promise.all([
    (async () => {
      await o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver');
      await o('x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '2', '-out', 'apiserver.crt', '-days', '2', '-extfile', 'apiserver.ext');
    })(),
    (async () => {
      // The group (O) system:masters is cluster-admin; the user name (CN) is free.
      await o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'admin.key', '-out', 'admin.csr', '-subj', '/O=system:masters/CN=weft-test-admin');
      await o('x509', '-req', '-in', 'admin.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '3', '-out', 'admin.crt', '-days', '2', '-extfile', 'client.ext');
    })(),
    (async () => {
      await o('genrsa', '-out', 'sa.key', '2048');
      await o('rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
    })(),
  ]);
}

function writeKubeconfig(file: string, url: string, ca: Buffer, user: Obj, namespace: string): void {
  fs.writeFileSync(
    file,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'weft-test', cluster: { server: url, 'certificate-authority-data': ca.toString('base64') } }],
      users: [{ name: 'weft-test', user }],
      contexts: [{ name: 'weft-test', context: { cluster: 'weft-test', user: 'weft-test', namespace } }],
      'current-context': 'weft-test',
    }),
    { mode: 0o600 },
  );
}

/** The REST path of a manifest (built-in kinds of the setup, and CRDs). */
function objectPath(doc: Obj): string {
  const [group, version] = String(doc.apiVersion).includes('/') ? String(doc.apiVersion).split('/') : ['', String(doc.apiVersion)];
  const prefix = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const ns = doc.metadata?.namespace ? `/namespaces/${doc.metadata.namespace}` : '';
  return `${prefix}${ns}/${String(doc.kind).toLowerCase()}s/${doc.metadata.name}`;
}

function loadDocs(file: string): Obj[] {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))
    .map((d) => d.toJSON() as Obj | null)
    .filter((d): d is Obj => d !== null && typeof d === 'object' && typeof d.kind === 'string');
}

// ---- the server --------------------------------------------------------------------------------------

export async function startRealApiServer(opts: RealApiServerOptions): Promise<RealApiServer> {
  for (const [what, bin] of [['WEFT_TEST_KUBE_APISERVER', opts.apiserverBin], ['WEFT_TEST_ETCD', opts.etcdBin]] as const) {
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`real API server: ${what}=${bin} is not an executable file`);
    }
  }
  hookProcessExit();
  for (let attempt = 1; ; attempt++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kube-'));
    fs.chmodSync(dir, 0o700);
    const l: Live = { children: [], dir };
    live.add(l);
    const started = Date.now();
    try {
      return await boot(opts, dir, l, started);
    } catch (err) {
      const logs = `--- etcd.log (tail) ---\n${tail(path.join(dir, 'etcd.log'))}\n--- apiserver.log (tail) ---\n${tail(path.join(dir, 'apiserver.log'))}`;
      await Promise.all(l.children.map((c) => stop(c, 1000)));
      live.delete(l);
      fs.rmSync(dir, { recursive: true, force: true });
      // A free port taken by someone else between our probe and the bind: again, on new ports.
      if (attempt < 3 && /address already in use/.test(logs)) continue;
      throw new Error(`real API server did not start: ${(err as Error).message}\n${logs}`);
    }
  }
}

async function boot(opts: RealApiServerOptions, dir: string, l: Live, started: number): Promise<RealApiServer> {
  const [etcdVer] = await Promise.all([etcdVersion(opts.etcdBin), makePki(dir)]);
  // On an etcd without it every such watch is a 500 ("the required storage feature
  // RequestWatchProgress is disabled"); a cluster of these versions would run etcd 3.5.13+, so
  // the API server here serves watches as it does without the WatchList feature.
  const gates = etcdSupportsWatchProgress(etcdVer) || (opts.extraArgs ?? []).some((a) => a.startsWith('--feature-gates')) ? [] : ['--feature-gates=WatchList=false'];
  const ca = fs.readFileSync(path.join(dir, 'ca.crt'));
  const cert = fs.readFileSync(path.join(dir, 'admin.crt'));
  const key = fs.readFileSync(path.join(dir, 'admin.key'));

  // etcd: one member, loopback only.
  const [clientPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const etcd = start(
    opts.etcdBin,
    [
      '--name', 'weft-test',
      '--data-dir', path.join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl,
      '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `weft-test=http://127.0.0.1:${peerPort}`,
      '--log-level', 'warn',
    ],
    path.join(dir, 'etcd.log'),
  );
  l.children.push(etcd);
  const exitedEarly = (c: ChildProcess, what: string) => {
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${what} exited (${c.exitCode ?? c.signalCode})`);
  };
  for (let deadline = Date.now() + 30_000; ; ) {
    exitedEarly(etcd, 'etcd');
    const ok = await fetch(`${etcdUrl}/health`).then((r) => r.text(), () => '');
    if (/"health":\s*"true"/.test(ok)) break;
    if (Date.now() > deadline) throw new Error('etcd not healthy after 30 s');
    await sleep(100);
  }

  const f = (name: string) => path.join(dir, name);
  const apiserver = start(
    opts.apiserverBin,
    [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}`,
      `--client-ca-file=${f('ca.crt')}`,
      `--tls-cert-file=${f('apiserver.crt')}`,
      `--tls-private-key-file=${f('apiserver.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${f('sa.pub')}`,
      `--service-account-signing-key-file=${f('sa.key')}`,
      '--authorization-mode=RBAC',
      '--endpoint-reconciler-type=none',
      '--service-cluster-ip-range=10.96.0.0/16',
      // No token controller runs to make each namespace's default ServiceAccount.
      '--disable-admission-plugins=ServiceAccount',
      '--profiling=false',
      ...gates,
      ...(opts.extraArgs ?? []),
    ],
    path.join(dir, 'apiserver.log'),
  );
  l.children.push(apiserver);
  const url = `https://127.0.0.1:${apiPort}`;
  const agent = new https.Agent({ ca, cert, key, keepAlive: true });

  const request = (method: string, urlPath: string, body?: unknown, contentType = 'application/json', token?: string): Promise<{ status: number; body: any }> =>
    new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      if (text !== undefined) Object.assign(headers, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
      if (token) headers.Authorization = `Bearer ${token}`;
      const req = https.request(`${url}${urlPath}`, { method, headers, ...(token ? { ca, agent: false } : { agent }) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = raw;
          try {
            parsed = JSON.parse(raw);
          } catch {}
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${urlPath}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(text);
    });
  const must = async (method: string, urlPath: string, body?: unknown, contentType?: string) => {
    const r = await request(method, urlPath, body, contentType);
    if (r.status >= 400) throw new Error(`${method} ${urlPath}: ${r.status} ${typeof r.body === 'object' ? r.body.message : r.body}`);
    return r;
  };
  const apply = (doc: Obj, manager = 'weft-test-setup', subresource = '') =>
    must('PATCH', `${objectPath(doc)}${subresource}?fieldManager=${manager}&force=true`, doc, 'application/apply-patch+yaml');

  for (let deadline = Date.now() + 90_000; ; ) {
    exitedEarly(apiserver, 'kube-apiserver');
    const r = await request('GET', '/readyz').catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after 90 s${r ? `: ${r.status} ${String(r.body).slice(-500)}` : ''}`);
    await sleep(200);
  }

  // CRDs: weft's and the test's, then wait until each is Established and its resource is served.
  const crdDocs: Obj[] = [];
  if (opts.crdDir !== false) {
    const crdDir = opts.crdDir ?? path.join(REPO, 'deploy/crds');
    for (const file of fs.readdirSync(crdDir).filter((n) => n.endsWith('.yaml')).sort()) crdDocs.push(...loadDocs(path.join(crdDir, file)));
    if (crdDocs.length === 0) throw new Error(`no CustomResourceDefinitions in ${crdDir}`);
  }
  crdDocs.push(...((opts.crds ?? []) as unknown as Obj[]));
  await Promise.all(crdDocs.map((d) => apply(d)));

  // weft-system as deploy/ has it, and the test's namespaces.
  const nsDocs = loadDocs(path.join(REPO, 'deploy/namespace.yaml'));
  for (const name of opts.namespaces ?? []) if (!nsDocs.some((d) => d.metadata.name === name)) nsDocs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await Promise.all(nsDocs.filter((d) => !['default', 'kube-system', 'kube-public', 'kube-node-lease'].includes(d.metadata.name)).map((d) => apply(d)));

  // The components' ServiceAccounts, Roles and bindings, as deploy/rbac.yaml has them.
  const rbac = loadDocs(path.join(REPO, 'deploy/rbac.yaml'));
  for (const d of rbac.filter((x) => x.kind === 'ServiceAccount')) await apply(d);
  await Promise.all(rbac.filter((x) => x.kind !== 'ServiceAccount').map((d) => apply(d)));

  for (const d of crdDocs) {
    for (let deadline = Date.now() + 30_000; ; ) {
      const r = await must('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${d.metadata.name}`);
      const established = (r.body.status?.conditions ?? []).some((c: Obj) => c.type === 'Established' && c.status === 'True');
      const v = (d.spec.versions as Obj[]).find((x) => x.served)!;
      if (established && (await request('GET', `/apis/${d.spec.group}/${v.name}/${d.spec.names.plural}?limit=1`)).status === 200) break;
      if (Date.now() > deadline) throw new Error(`CRD ${d.metadata.name} not established after 30 s`);
      await sleep(100);
    }
  }

  const namespace = opts.namespace ?? 'weft-system';
  const kubeconfig = f('kubeconfig');
  writeKubeconfig(kubeconfig, url, ca, { 'client-certificate-data': cert.toString('base64'), 'client-key-data': key.toString('base64') }, namespace);

  const tokens = new Map<Component, Promise<string>>();
  const kubeconfigFor = (component: Component): Promise<string> => {
    let p = tokens.get(component);
    if (!p) {
      p = (async () => {
        const sa = `weft-${component}`;
        if (!rbac.some((d) => d.kind === 'ServiceAccount' && d.metadata.name === sa)) throw new Error(`deploy/rbac.yaml has no ServiceAccount ${sa}`);
        const r = await must('POST', `/api/v1/namespaces/weft-system/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
        const token = String(r.body.status.token);
        // RBAC answers from an informer: wait until this account's bindings are seen (every
        // component may read the ClusterNetworks).
        for (let deadline = Date.now() + 10_000; ; ) {
          const probe = await request('GET', '/apis/weft.io/v1alpha1/clusternetworks?limit=1', undefined, undefined, token);
          if (probe.status === 200) break;
          if (Date.now() > deadline) throw new Error(`${sa}'s token cannot list ClusterNetworks: ${probe.status} ${probe.body?.message ?? ''}`);
          await sleep(50);
        }
        const file = f(`kubeconfig-${component}`);
        writeKubeconfig(file, url, ca, { token }, namespace);
        return file;
      })();
      tokens.set(component, p);
    }
    return p;
  };

  // Resources by plural or kind (discovery), for getObject and deleteObject.
  let resources: Map<string, { prefix: string; plural: string; namespaced: boolean }> | undefined;
  const resolve = async (resource: string) => {
    const key = resource.toLowerCase();
    if (!resources?.has(key)) {
      resources = new Map();
      const lists: { prefix: string; body: Obj }[] = [{ prefix: '/api/v1', body: (await must('GET', '/api/v1')).body }];
      for (const g of (await must('GET', '/apis')).body.groups as Obj[]) {
        const prefix = `/apis/${g.preferredVersion.groupVersion}`;
        lists.push({ prefix, body: (await must('GET', prefix)).body });
      }
      for (const { prefix, body } of lists) {
        for (const r of body.resources as Obj[]) {
          if (String(r.name).includes('/')) continue;
          const entry = { prefix, plural: r.name, namespaced: r.namespaced };
          for (const k of [r.name, String(r.kind).toLowerCase(), r.singularName].filter(Boolean)) if (!resources.has(k)) resources.set(k, entry);
        }
      }
    }
    const r = resources.get(key);
    if (!r) throw new Error(`real API server: no resource ${resource}`);
    return r;
  };
  const objectUrl = async (resource: string, name: string, namespace?: string) => {
    const r = await resolve(resource);
    return `${r.prefix}${r.namespaced ? `/namespaces/${namespace ?? 'default'}` : ''}/${r.plural}/${encodeURIComponent(name)}`;
  };

  let closed: Promise<void> | undefined;
  const server: RealApiServer = {
    url,
    kubeconfig,
    kubeconfigFor,
    crds: crdDocs.map((d) => d.metadata.name),
    pids: { etcd: etcd.pid!, apiserver: apiserver.pid! },
    dir,
    request: (method, urlPath, body, contentType) => request(method, urlPath, body, contentType),
    close() {
      closed ??= (async () => {
        agent.destroy();
        await stop(apiserver, 5000);
        await stop(etcd, 5000);
        live.delete(l);
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return closed;
    },
    async setNode(name, n) {
      // As a kubelet registers and the node IPAM controller assigns CIDRs, then the status.
      await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: n.podCIDRs.length ? { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs } : {} }, 'kubelet');
      const status = { addresses: [{ type: 'InternalIP', address: n.internalIP }, { type: 'Hostname', address: name }] };
      return (await apply({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status }, 'kubelet', '/status')).body;
    },
    async setPod(ns, name, p) {
      await apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { nodeName: p.nodeName, containers: [{ name: 'main', image: 'registry.k8s.io/pause:3.10' }] } }, 'weft-test');
      const status = { phase: 'Running', podIP: p.podIP, podIPs: [{ ip: p.podIP }] };
      return (await apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, status }, 'kubelet', '/status')).body;
    },
    async deleteObject(resource, name, namespace) {
      await must('DELETE', await objectUrl(resource, name, namespace));
    },
    async writeCounts() {
      const text = String((await must('GET', '/metrics')).body);
      const out = new Map<string, number>();
      for (const line of text.split('\n')) {
        if (!line.startsWith('apiserver_request_total{')) continue;
        const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
        if (['GET', 'LIST', 'WATCH', 'CONNECT'].includes(labels.verb ?? '')) continue;
        if (!['', 'weft.io', 'events.k8s.io'].includes(labels.group ?? '')) continue;
        const key = `${labels.verb} ${labels.resource}${labels.group ? `.${labels.group}` : ''}${labels.subresource ? `/${labels.subresource}` : ''}`;
        out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
      }
      return out;
    },
    async getObject(resource, name, namespace) {
      const r = await request('GET', await objectUrl(resource, name, namespace));
      if (r.status === 404) return undefined;
      if (r.status >= 400) throw new Error(`GET ${resource} ${name}: ${r.status} ${r.body?.message ?? ''}`);
      return r.body as Obj;
    },
  };
  if (process.env.WEFT_TEST_LOG) console.error(`real API server ${url} ready in ${Date.now() - started} ms (${dir}; etcd ${etcdVer}${gates.length ? `, ${gates.join(' ')}` : ''})`);
  return server;
}
