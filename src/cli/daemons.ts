// The long-running weft processes: `weft controller`, `weft gateway`, `weft agent`. Each opens the
// store, runs its piece until SIGTERM/SIGINT, then stops cleanly (kernel state is left for the next
// start to reconcile, so a restart never flaps routes).
import { parseArgs } from 'node:util';
import type { Store } from '../store/types.ts';
import { openStore } from './stores.ts';
import { interfacePrefixProblem, PeeringController } from '../control/controller.ts';
import { Gateway } from '../gateway/gateway.ts';
import { NodeAgent, deviceWithAddress } from '../fabric/agent.ts';
import { Kinds, type ClusterNetworkSpec, type NodeSpec } from '../control/resources.ts';
import { LeaderElector } from '../k8s/leader.ts';
import os from 'node:os';
import type { Resource } from '../store/types.ts';
import { createLogger, parseLogLevel } from '../log.ts';
import { WeftMetrics } from '../observe/metrics.ts';
import { serveObservability, type Readiness } from '../observe/server.ts';

type Role = 'controller' | 'gateway' | 'agent';

export async function runDaemon(role: Role, argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      store: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      namespace: { type: 'string' },
      node: { type: 'string' },
      key: { type: 'string' },
      'interface-prefix': { type: 'string' },
      'metrics-port': { type: 'string' },
      'max-peerings': { type: 'string' },
      'leader-elect': { type: 'boolean' },
    },
  });
  const metricsPort = values['metrics-port'] === undefined ? 9090 : Number(values['metrics-port']);
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) throw new Error(`--metrics-port ${values['metrics-port']} is not a port (0 disables)`);
  const metrics = new WeftMetrics(role);
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL, 'verbose'), `${role}${values.node ? `/${values.node}` : ''}: `);
  const opened = openStore(`weft-${role}`, { store: values.store, kubeconfig: values.kubeconfig, context: values.context, namespace: values.namespace });
  const store: Store = opened.store;
  log.verbose(`using the ${opened.describe}`);
  let stop: () => Promise<void>;
  let readiness: Readiness;
  let beforeScrape: (() => void) | undefined;
  switch (role) {
    case 'controller': {
      const prefixProblem = values['interface-prefix'] !== undefined ? interfacePrefixProblem(values['interface-prefix']) : undefined;
      if (prefixProblem) throw new Error(`--interface-prefix: ${prefixProblem}`);
      const maxPeerings = values['max-peerings'] === undefined ? undefined : Number(values['max-peerings']);
      if (maxPeerings !== undefined && (!Number.isInteger(maxPeerings) || maxPeerings < 1 || maxPeerings > 500)) throw new Error(`--max-peerings ${values['max-peerings']}: 1–500`);
      const c = new PeeringController(store, {
        log,
        metrics,
        ...(values['interface-prefix'] ? { interfacePrefix: values['interface-prefix'] } : {}),
        ...(maxPeerings ? { maxPeerings } : {}),
      });
      c.start();
      stop = () => c.stop();
      readiness = { ready: () => c.readiness().ready, detail: () => c.readiness().detail };
      break;
    }
    case 'gateway': {
      const keyFile = values.key ?? (opened.kubernetes ? '/etc/weft/gateway/privatekey' : undefined);
      if (!keyFile) throw new Error('weft gateway: --key FILE is required (the WireGuard private key, created if missing)');
      const cluster = await waitFor(store, log);
      // On Kubernetes each replica runs on its own node (host network): that node is the gateway
      // node while this replica holds the Lease.
      const nodeName = values.node ?? process.env.NODE_NAME;
      const nodeIP = nodeName ? (await store.get<Resource<NodeSpec>>(Kinds.Node, nodeName))?.spec.internalIP : undefined;
      if (nodeName && !nodeIP) throw new Error(`weft gateway: node ${nodeName} has no InternalIP`);
      const g = new Gateway(store, { log, metrics, keyFile, underlayDev: await deviceWithAddress(nodeIP ?? cluster.spec.gatewayNodeIP), ...(nodeIP ? { nodeIP } : {}) });
      beforeScrape = () => g.exportMetrics(metrics);
      if (values['leader-elect'] ?? opened.kube !== undefined) {
        if (!opened.kube) throw new Error('weft gateway: --leader-elect needs the Kubernetes API (a Lease)');
        const elector = new LeaderElector({
          kubeConfig: opened.kube.kubeConfig,
          namespace: opened.kube.namespace,
          name: process.env.WEFT_LEASE_NAME ?? 'weft-gateway',
          identity: process.env.POD_NAME ?? `${os.hostname()}-${process.pid}`,
          ...(process.env.WEFT_LEASE_DURATION_MS ? { leaseDurationMs: Number(process.env.WEFT_LEASE_DURATION_MS) } : {}),
          log,
          onStartedLeading: () => {
            log.verbose('leading: this replica is the active gateway');
            metrics.leader.set(1);
            void g.start();
          },
          onStoppedLeading: () => {
            // As client-go's leader election does: stop and exit, to come back as a standby.
            log.error('lost the gateway Lease; exiting so this replica restarts as a standby');
            metrics.leader.set(0);
            void g.stop().finally(() => process.exit(0));
          },
        });
        elector.start();
        stop = async () => {
          // Tunnels down first, then release the Lease so the standby takes over at once; the
          // release is bounded: an unreachable API must not hold up a pod's termination.
          await g.stop();
          await Promise.race([elector.stop(), new Promise((r) => setTimeout(r, 3000).unref())]);
        };
        readiness = {
          ready: () => elector.isLeader && g.reconciledOnce,
          detail: () => (elector.isLeader ? (g.reconciledOnce ? 'active gateway, programmed' : 'active gateway, programming') : 'standby (another replica holds the Lease)'),
        };
      } else {
        await g.start();
        stop = () => g.stop();
        readiness = { ready: () => g.reconciledOnce, detail: () => (g.reconciledOnce ? 'gateway programmed' : 'waiting for the cluster description') };
      }
      break;
    }
    case 'agent': {
      const nodeName = values.node ?? process.env.NODE_NAME;
      if (!nodeName) throw new Error('weft agent: --node NAME (or NODE_NAME) is required');
      const a = new NodeAgent(store, { log, metrics, nodeName });
      a.start();
      stop = () => a.stop();
      readiness = { ready: () => a.reconciledOnce, detail: () => (a.reconciledOnce ? 'node programmed' : 'waiting for the cluster description and this node') };
      break;
    }
  }
  const observe = metricsPort > 0 ? await serveObservability({ port: metricsPort, metrics, readiness, ...(beforeScrape ? { beforeScrape } : {}) }) : null;
  log.verbose('started');
  let stopping = false;
  const shutdown = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.verbose(`${sig}: stopping`);
    void stop()
      .then(() => observe?.close())
      .catch((err) => log.error(`stop: ${err.message}`))
      .finally(() => void store.close().finally(() => process.exit(0)));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** The gateway needs the cluster's description before it can find its underlay interface. */
async function waitFor(store: Store, log: ReturnType<typeof createLogger>): Promise<Resource<ClusterNetworkSpec>> {
  for (let i = 0; ; i++) {
    const cn = await store.get<Resource<ClusterNetworkSpec>>(Kinds.ClusterNetwork, 'local');
    if (cn) return cn;
    if (i === 20) log.error('waiting for ClusterNetwork "local" in the store');
    await new Promise((r) => setTimeout(r, 250));
  }
}
