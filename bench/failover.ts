// Gateway failover on Kubernetes: two `weft gateway` replicas of one cluster in two namespaces
// ("nodes"), electing through a Lease on the API (the in-process fake that follows the real API);
// the active one is killed with SIGKILL and the time until the standby has published itself as the
// gateway node and is ready (programmed) is measured. Repeated per lease duration; medians printed
// beside the lease duration (client-go's default is 15 s; weft's deployment uses it too).
//   node bench/failover.ts [--runs 5] [--lease-ms 2000,5000]
import { parseArgs } from 'node:util';
import { NetLab, waitFor } from '../test/netns/harness.ts';
import { closeCluster, cluster, readyz, startGateway, weft } from '../test/netns/k8s-cluster.ts';
import { Kinds, type ClusterNetworkSpec, type ClusterNetworkStatus } from '../src/control/resources.ts';
import type { Resource } from '../src/store/types.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo, median, table, writeResult } from './common.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'lease-ms': { type: 'string', default: '2000,5000' } } });
const runs = Math.min(20, Number(values.runs));
const leases = values['lease-ms']!.split(',').map(Number);
const rows: { leaseMs: number; published: number[]; ready: number[] }[] = [];
const started = new Date();

for (const leaseMs of leases) {
  const row = { leaseMs, published: [] as number[], ready: [] as number[] };
  rows.push(row);
  for (let i = 0; i < runs; i++) {
    const lab = NetLab.create();
    let c;
    try {
      const n1 = await lab.namespace('f1');
      const n2 = await lab.namespace('f2');
      await lab.veth(n1, n2, { a: ['192.168.100.201/24'], b: ['192.168.100.202/24'] });
      c = await cluster(lab, 'a', '203.0.113.1', { node1: '192.168.100.201', node2: '192.168.100.202' }, [n1, n2]);
      lab.spawn(n1, [weft, 'controller', '--kubeconfig', c.kubeconfigs.controller, '--metrics-port', '0', '--interface-prefix', `w${lab.id}`]);
      const procs = { '192.168.100.201': { ns: n1, p: startGateway(lab, n1, c, 'node1', leaseMs) }, '192.168.100.202': { ns: n2, p: startGateway(lab, n2, c, 'node2', leaseMs) } };
      const store = c.store;
      const active = async () => (await store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local'))?.status?.gatewayNodeIP;
      const first = (await waitFor('active gateway', active, 30_000, 20)) as keyof typeof procs;
      const standbyIP = first === '192.168.100.201' ? '192.168.100.202' : '192.168.100.201';
      await waitFor('active ready', async () => (await readyz(lab, procs[first].ns)) === 200, 15_000, 50);
      const t0 = Date.now();
      procs[first].p.kill('SIGKILL');
      await waitFor('standby published', async () => (await active()) === standbyIP, leaseMs * 4 + 10_000, 10);
      row.published.push(Date.now() - t0);
      await waitFor('standby ready', async () => (await readyz(lab, procs[standbyIP].ns)) === 200, 15_000, 20);
      row.ready.push(Date.now() - t0);
      process.stderr.write(`lease ${leaseMs} ms, run ${i + 1}: published ${row.published.at(-1)} ms, ready ${row.ready.at(-1)} ms\n`);
    } finally {
      await lab.cleanup();
      await closeCluster(c);
    }
  }
}

console.log('\nGateway failover (SIGKILL of the active replica → standby active and ready)\n');
console.log(
  table([
    ['lease duration', 'runs', 'standby published (median)', 'standby ready (median)', 'ready / lease'],
    ...rows.map((r) => [`${r.leaseMs} ms`, String(r.ready.length), `${median(r.published)} ms`, `${median(r.ready)} ms`, (median(r.ready) / r.leaseMs).toFixed(2)]),
  ]),
);
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
console.log(`\nwrote ${writeResult(out, 'failover', started, { machine: await machineInfo(), rows })}`);
