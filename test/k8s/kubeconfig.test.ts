// Finding the API (src/k8s/kubeconfig.ts): --kubeconfig, $KUBECONFIG (merged), the pod's service
// account, ~/.kube/config, in that order, and a clear error when there is none; the release
// namespace; and a store built from a loaded kubeconfig talking to the in-process API server (or a
// real one: test/k8s/test-apiserver.ts).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { loadKubeConfig, releaseNamespace } from '../../src/k8s/kubeconfig.ts';
import { KubernetesStore } from '../../src/k8s/store.ts';
import { startTestApiServer } from './test-apiserver.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kubeconfig-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function kubeconfig(file: string, contexts: { name: string; server: string; namespace?: string }[], current: string): string {
  const p = path.join(dir, file);
  fs.writeFileSync(
    p,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: contexts.map((c) => ({ name: c.name, cluster: { server: c.server } })),
      users: contexts.map((c) => ({ name: c.name, user: { token: `token-${c.name}` } })),
      contexts: contexts.map((c) => ({ name: c.name, context: { cluster: c.name, user: c.name, ...(c.namespace ? { namespace: c.namespace } : {}) } })),
      'current-context': current,
    }),
  );
  return p;
}

function serviceAccount(namespace: string): string {
  const sa = fs.mkdtempSync(path.join(dir, 'sa-'));
  fs.writeFileSync(path.join(sa, 'token'), 'sa-token\n');
  fs.writeFileSync(path.join(sa, 'ca.crt'), '');
  fs.writeFileSync(path.join(sa, 'namespace'), namespace);
  return sa;
}

const empty = () => fs.mkdtempSync(path.join(dir, 'none-'));

describe('loading the Kubernetes configuration', () => {
  it('prefers --kubeconfig, then KUBECONFIG (files merged), then the service account, then ~/.kube/config', () => {
    const one = kubeconfig('one', [{ name: 'one', server: 'https://one.example:6443' }], 'one');
    const two = kubeconfig('two', [{ name: 'two', server: 'https://two.example:6443' }], 'two');
    const sa = serviceAccount('weft-prod');
    const env = { KUBECONFIG: `${one}${path.delimiter}${two}`, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: empty() };

    const explicit = loadKubeConfig({ kubeconfig: two, env, serviceAccountDir: sa });
    assert.equal(explicit.kubeConfig.getCurrentCluster()?.server, 'https://two.example:6443');
    assert.equal(explicit.source, `--kubeconfig ${two}`);

    const merged = loadKubeConfig({ env, serviceAccountDir: sa });
    assert.equal(merged.kubeConfig.getCurrentCluster()?.server, 'https://one.example:6443', 'the first file’s current context');
    assert.deepEqual(merged.kubeConfig.getContexts().map((c) => c.name).sort(), ['one', 'two']);
    const other = loadKubeConfig({ env, serviceAccountDir: sa, context: 'two' });
    assert.equal(other.kubeConfig.getCurrentCluster()?.server, 'https://two.example:6443');
    assert.throws(() => loadKubeConfig({ env, serviceAccountDir: sa, context: 'three' }), /no context "three"/);

    const inCluster = loadKubeConfig({ env: { ...env, KUBECONFIG: '' }, serviceAccountDir: sa });
    assert.equal(inCluster.inCluster, true);
    assert.equal(inCluster.kubeConfig.getCurrentCluster()?.server, 'https://10.96.0.1:443');
    assert.equal(inCluster.kubeConfig.getCurrentCluster()?.caFile, path.join(sa, 'ca.crt'));
    assert.equal(inCluster.kubeConfig.getContextObject(inCluster.kubeConfig.getCurrentContext())?.namespace, 'weft-prod');
    const v6 = loadKubeConfig({ env: { ...env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: 'fd00::1' }, serviceAccountDir: sa });
    assert.equal(v6.kubeConfig.getCurrentCluster()?.server, 'https://[fd00::1]:443');

    const home = empty();
    fs.mkdirSync(path.join(home, '.kube'));
    fs.copyFileSync(one, path.join(home, '.kube', 'config'));
    const fromHome = loadKubeConfig({ env: { HOME: home }, serviceAccountDir: empty() });
    assert.equal(fromHome.source, path.join(home, '.kube', 'config'));
  });

  it('says what it looked for when there is nothing, and refuses missing files', () => {
    assert.throws(() => loadKubeConfig({ env: { HOME: empty() }, serviceAccountDir: empty() }), /no Kubernetes API configuration: pass --kubeconfig, set KUBECONFIG, run in a pod/);
    assert.throws(() => loadKubeConfig({ kubeconfig: path.join(dir, 'missing') }), /no such file/);
    assert.throws(() => loadKubeConfig({ env: { KUBECONFIG: path.join(dir, 'missing') } }), /none of these files exists/);
  });

  it('finds the release namespace: flag, environment, service account, default', () => {
    const sa = serviceAccount('from-sa');
    assert.equal(releaseNamespace({ namespace: 'flag', env: { POD_NAMESPACE: 'pod' }, serviceAccountDir: sa }), 'flag');
    assert.equal(releaseNamespace({ env: { WEFT_NAMESPACE: 'weft', POD_NAMESPACE: 'pod' }, serviceAccountDir: sa }), 'weft');
    assert.equal(releaseNamespace({ env: { POD_NAMESPACE: 'pod' }, serviceAccountDir: sa }), 'pod');
    assert.equal(releaseNamespace({ env: {}, serviceAccountDir: sa }), 'from-sa');
    assert.equal(releaseNamespace({ env: {}, serviceAccountDir: empty() }), 'weft-system');
  });

  it('gives a store that talks to the API it names', async () => {
    const server = await startTestApiServer({ bookmarkIntervalMs: 0 });
    after(() => server.close());
    const { kubeConfig } = loadKubeConfig({ env: { KUBECONFIG: server.kubeconfig } });
    const store = new KubernetesStore({ kubeConfig, fieldManager: 'weft-test', namespace: releaseNamespace({ env: {}, serviceAccountDir: empty() }) });
    await server.setNode('n1', { internalIP: '192.168.0.1', podCIDRs: ['10.0.0.0/24'] });
    assert.deepEqual((await store.list('Node')).items.map((n) => n.metadata.name), ['n1']);
    await store.close();
  });
});
