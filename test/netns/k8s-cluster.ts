// A cluster on the Kubernetes API for namespace tests and benchmarks: an in-process fake API server
// (reachable from test namespaces through a Unix-socket bridge), the cluster's ClusterNetwork and
// Nodes, a gateway key shared by all replicas, and helpers to run weft's processes against it.
import fs from 'node:fs';
import path from 'node:path';
import { nodeBin, repoRoot, type NetLab } from './harness.ts';
import { bridgeApi, type ApiBridge } from './api-bridge.ts';
import { startFakeApiServer, type FakeApiServer } from '../k8s/apiserver.ts';
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
  api: FakeApiServer;
  store: KubernetesStore;
  keyFile: string;
  bridge: ApiBridge;
}

export async function cluster(lab: NetLab, id: string, wan: string, nodes: Record<string, string>, namespaces: string[]): Promise<Cluster> {
  const api = await startFakeApiServer();
  const bridge = await bridgeApi(lab, api.url);
  for (const ns of namespaces) await bridge.into(ns);
  const store = new KubernetesStore({ kubeConfig: loadKubeConfig({ kubeconfig: api.kubeconfig }).kubeConfig, fieldManager: 'weft-test' });
  await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: clusterSpec(id, wan) });
  for (const [name, ip] of Object.entries(nodes)) api.setNode(name, { internalIP: ip, podCIDRs: [] });
  // Every gateway replica mounts the same key Secret.
  const keyFile = path.join(lab.tempDir(`key-${id}`), 'privatekey');
  fs.writeFileSync(keyFile, Buffer.from(generatePrivateKey()).toString('base64') + '\n', { mode: 0o600 });
  return { api, store, keyFile, bridge };
}

export function startGateway(lab: NetLab, ns: string, c: Cluster, node: string, leaseMs = 2000) {
  return lab.spawn(ns, [weft, 'gateway', '--kubeconfig', c.api.kubeconfig, '--key', c.keyFile, '--metrics-port', '9091'], {
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
  await c.api.close();
}
