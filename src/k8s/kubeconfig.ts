// Where a weft process finds its Kubernetes API: an explicit --kubeconfig, else $KUBECONFIG (a
// list of files, merged as kubectl merges them), else the pod's service account (in-cluster), else
// ~/.kube/config. No silent fallback to localhost: without any of them it says what it looked for.
// The release namespace (where weft's namespaced objects live) comes from --namespace, else
// $WEFT_NAMESPACE or $POD_NAMESPACE, else the service account's namespace, else weft-system.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_NAMESPACE } from './store.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConfigSource {
  /** --kubeconfig */
  kubeconfig?: string | undefined;
  /** --context: a context of the kubeconfig other than its current one. */
  context?: string | undefined;
  /** The environment to read KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and HOME from. */
  env?: NodeJS.ProcessEnv;
  /** Where the service account's token, ca.crt and namespace are mounted. */
  serviceAccountDir?: string;
}

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  /** What was used, for messages: "--kubeconfig /x", "KUBECONFIG=/a:/b", "in-cluster", "~/.kube/config". */
  source: string;
  inCluster: boolean;
}

function readFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function fromFiles(files: string[], context: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(files[0]!);
  for (const f of files.slice(1)) {
    const more = new KubeConfig();
    more.loadFromFile(f);
    kc.mergeConfig(more, true);
  }
  if (context) {
    if (!kc.getContextObject(context)) throw new Error(`kubeconfig ${files.join(path.delimiter)} has no context ${JSON.stringify(context)}`);
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${files.join(path.delimiter)}: the current context names no cluster`);
  return kc;
}

export function loadKubeConfig(src: KubeConfigSource = {}): LoadedKubeConfig {
  const env = src.env ?? process.env;
  if (src.kubeconfig) {
    if (!fs.existsSync(src.kubeconfig)) throw new Error(`--kubeconfig ${src.kubeconfig}: no such file`);
    return { kubeConfig: fromFiles([src.kubeconfig], src.context), source: `--kubeconfig ${src.kubeconfig}`, inCluster: false };
  }
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(path.delimiter).filter((f) => f !== '' && fs.existsSync(f));
    if (files.length === 0) throw new Error(`KUBECONFIG=${env.KUBECONFIG}: none of these files exists`);
    return { kubeConfig: fromFiles(files, src.context), source: `KUBECONFIG=${env.KUBECONFIG}`, inCluster: false };
  }
  const saDir = src.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const tokenFile = path.join(saDir, 'token');
  if (host && port && fs.existsSync(tokenFile)) {
    const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    const namespace = readFile(path.join(saDir, 'namespace'))?.trim();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'in-cluster', server, caFile: path.join(saDir, 'ca.crt'), skipTLSVerify: false }],
      // The tokenFile provider re-reads the (projected, rotated) token before it expires.
      users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
      contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster', ...(namespace ? { namespace } : {}) }],
      currentContext: 'in-cluster',
    });
    return { kubeConfig: kc, source: 'in-cluster', inCluster: true };
  }
  const home = path.join(env.HOME ?? os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) return { kubeConfig: fromFiles([home], src.context), source: home, inCluster: false };
  throw new Error(
    'no Kubernetes API configuration: pass --kubeconfig, set KUBECONFIG, run in a pod with a service account ' +
      `(KUBERNETES_SERVICE_HOST/PORT and ${tokenFile}), or create ${home}`,
  );
}

/** The namespace weft's namespaced objects live in. */
export function releaseNamespace(src: { namespace?: string | undefined; env?: NodeJS.ProcessEnv; serviceAccountDir?: string } = {}): string {
  const env = src.env ?? process.env;
  const fromSa = readFile(path.join(src.serviceAccountDir ?? SERVICE_ACCOUNT_DIR, 'namespace'))?.trim();
  return src.namespace || env.WEFT_NAMESPACE || env.POD_NAMESPACE || fromSa || DEFAULT_NAMESPACE;
}
