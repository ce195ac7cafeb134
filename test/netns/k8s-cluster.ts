// A cluster on the Kubernetes API for namespace tests and benchmarks: an API server (the in-process
// fake, or a real kube-apiserver with WEFT_TEST_KUBE_APISERVER and WEFT_TEST_ETCD set:
// test/k8s/test-apiserver.ts) reachable from test namespaces through a Unix-socket bridge, the
// cluster's ClusterNetwork and Nodes, a gateway key shared by all replicas, a kubeconfig per weft
// component (on a real server a token of that component's own ServiceAccount, so a permission
// deploy/rbac.yaml lacks fails the test), and helpers to run weft's processes against it.
import fs from 'node:fs';
import path from 'node:path';
import { nodeBin, repoRoot, type NetLab } from './harness.ts';
import { bridgeApi, type ApiBridge } from './api-bridge.ts';
import type { FakeApiServer } from '../k8s/apiserver.ts';
import { startTestApiServer, type Component, type TestApiServer } from '../k8s/test-apiserver.ts';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';
import { KubernetesStore } from '../../src/k8s/store.ts';
import { API_VERSION, Kinds, type ClusterNetworkSpec } from '../../src/control/resources.ts';
import { generatePrivateKey } from '../../src/wireguard/crypto.ts';
import { clusterA } from '../unit/fabric-fixtures.ts';

export const weft = path.join(repoRoot, 'bin/weft');

export function clusterSpec(id: string, wan: string): ClusterNetworkSpec {
  return { ...clusterA(), clusterId: id, gatewayEndpoint: { host: wan, port: 0 } };
}

export interface Cluster {
  server: TestApiServer;
  /** The fake's own handle (for what only the fake does); throws on a real API server. */
  readonly api: FakeApiServer;
  /** A person's kubeconfig (weft peer, kubectl): cluster admin on a real server. */
  kubeconfig: string;
  /** Each daemon's kubeconfig: its own ServiceAccount's token on a real server. */
  kubeconfigs: Record<Component, string>;
  store: KubernetesStore;
  keyFile: string;
  bridge: ApiBridge;
}

export async function cluster(lab: NetLab, id: string, wan: string, nodes: Record<string, string>, namespaces: string[]): Promise<Cluster> {
  const server = await startTestApiServer();
  try {
    const bridge = await bridgeApi(lab, server.url);
    for (const ns of namespaces) await bridge.into(ns);
    const kubeconfigs = { controller: await server.kubeconfigFor('controller'), gateway: await server.kubeconfigFor('gateway'), agent: await server.kubeconfigFor('agent') };
    const store = new KubernetesStore({ kubeConfig: loadKubeConfig({ kubeconfig: server.kubeconfig }).kubeConfig, fieldManager: 'weft-test' });
    await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: clusterSpec(id, wan) });
    for (const [name, ip] of Object.entries(nodes)) await server.setNode(name, { internalIP: ip, podCIDRs: [] });
    // Every gateway replica mounts the same key Secret.
    const keyFile = path.join(lab.tempDir(`key-${id}`), 'privatekey');
    fs.writeFileSync(keyFile, Buffer.from(generatePrivateKey()).toString('base64') + '\n', { mode: 0o600 });
    return {
      server,
      get api(): FakeApiServer {
        if (!server.fake) throw new Error('this needs the fake API server (it runs on a real one)');
        return server.fake;
      },
      kubeconfig: server.kubeconfig,
      kubeconfigs,
      store,
      keyFile,
      bridge,
    };
  } catch (err) {
    await server.close();
    throw err;
  }
}

export function startGateway(lab: NetLab, ns: string, c: Cluster, node: string, leaseMs = 2000) {
  return lab.spawn(ns, [weft, 'gateway', '--kubeconfig', c.kubeconfigs.gateway, '--key', c.keyFile, '--metrics-port', '9091'], {
    env: { ...process.env, NODE_NAME: node, POD_NAME: `${node}-gw`, WEFT_LEASE_DURATION_MS: String(leaseMs), LOG_LEVEL: 'error' },
  });
}

export async function readyz(lab: NetLab, ns: string): Promise<number> {
  const r = await lab.exec(ns, [nodeBin, '-e', "fetch('http://127.0.0.1:9091/readyz').then((r) => console.log(r.status)).catch(() => console.log(0))"]);
  return Number(r.stdout.trim());
}


export async function closeCluster(c: Cluster | undefined): Promise<void> {
  if (!c) return;
  await c.store.close();
  await c.bridge.close();
  await c.server.close();
}
