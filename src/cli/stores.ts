// Where a weft process reads and writes its resources: the embedded file store (`--store DIR`, the
// lab and single-machine use) or a Kubernetes API server (`--kubeconfig FILE`, KUBECONFIG, or the
// pod's service account when running in a cluster).
import { FileStore } from '../store/index.ts';
import type { Store } from '../store/types.ts';
import { KubernetesStore } from '../k8s/store.ts';
import { loadKubeConfig, releaseNamespace } from '../k8s/kubeconfig.ts';

export interface StoreChoice {
  /** Embedded store directory. */
  store?: string | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface OpenedStore {
  store: Store;
  /** For messages: "embedded store /x" or "Kubernetes API (in-cluster), namespace weft-system". */
  describe: string;
  kubernetes: boolean;
  /** The API connection and release namespace when on Kubernetes (leader election uses them). */
  kube?: { kubeConfig: import('@kubernetes/client-node').KubeConfig; namespace: string };
}

export function openStore(fieldManager: string, choice: StoreChoice): OpenedStore {
  if (choice.store) {
    if (choice.kubeconfig) throw new Error('--store and --kubeconfig are exclusive: one store per process');
    return { store: new FileStore(choice.store), describe: `embedded store ${choice.store}`, kubernetes: false };
  }
  const loaded = loadKubeConfig({ kubeconfig: choice.kubeconfig, context: choice.context });
  const namespace = releaseNamespace({ namespace: choice.namespace });
  return {
    store: new KubernetesStore({ kubeConfig: loaded.kubeConfig, fieldManager, namespace }),
    describe: `Kubernetes API (${loaded.source}), namespace ${namespace}`,
    kubernetes: true,
    kube: { kubeConfig: loaded.kubeConfig, namespace },
  };
}
