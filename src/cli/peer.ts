// `weft peer`, `weft unpeer`, `weft announce`: peering two clusters.
//
//   weft peer   --kubeconfig A --remote-kubeconfig B [--preshared-key] [--no-wait]
//   weft unpeer --kubeconfig A --remote-kubeconfig B
//       write (or delete) the Peering on both sides with one person's credentials to both clusters
//       (--store DIR / --remote-store DIR for embedded stores).
//   weft announce --kubeconfig A --remote-id b  > peering-a.yaml
//       the declarative path, when nobody holds both clusters' credentials: print the Peering that
//       cluster b's administrator applies (kubectl apply -f). Run it again on each side once both
//       Peerings exist: the second manifest carries the tunnel port the first could not know yet.
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { announcement, peerClusters, unpeerClusters, waitPeeringConnected } from '../control/peering.ts';
import { API_VERSION, Kinds, type PeeringSpec, type PeeringStatus } from '../control/resources.ts';
import type { Resource } from '../store/types.ts';
import { openStore } from './stores.ts';

export const PEER_USAGE = `  weft peer   (--kubeconfig A | --store DIR) (--remote-kubeconfig B | --remote-store DIR) [--preshared-key] [--no-wait]
  weft unpeer (--kubeconfig A | --store DIR) (--remote-kubeconfig B | --remote-store DIR)
      peer or unpeer two clusters, writing on both sides
  weft announce (--kubeconfig A | --store DIR) --remote-id ID [--namespace NS]
      print the Peering manifest for cluster ID to apply (declarative peering)
`;

const options = {
  store: { type: 'string' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string' },
  'remote-store': { type: 'string' },
  'remote-kubeconfig': { type: 'string' },
  'remote-context': { type: 'string' },
  'remote-namespace': { type: 'string' },
  'remote-id': { type: 'string' },
  'preshared-key': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export async function peerCommand(cmd: 'peer' | 'unpeer' | 'announce', argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options });
  const timeoutMs = values.timeout ? Number(values.timeout) * 1000 : 30_000;
  const local = openStore('weft-cli', { store: values.store, kubeconfig: values.kubeconfig, context: values.context, namespace: values.namespace });
  try {
    if (cmd === 'announce') {
      if (!values['remote-id']) throw new Error('announce needs --remote-id (the cluster that will apply the manifest)');
      const ann = await announcement({ store: local.store, label: 'local' }, timeoutMs);
      const { remoteEndpointHost, ...rest } = ann.spec;
      // The tunnel port for this pair exists once our Peering for the remote was accepted and our
      // gateway listens on it; before that, 0 ("not known yet": the remote waits for our handshake).
      const ours = await local.store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, values['remote-id']);
      const spec: PeeringSpec = { ...rest, remoteEndpoint: { host: remoteEndpointHost, port: ours?.status?.localEndpoint?.port ?? 0 } };
      const manifest = {
        apiVersion: API_VERSION,
        kind: Kinds.Peering,
        metadata: { name: ann.clusterId, ...(local.kubernetes ? { namespace: values['remote-namespace'] ?? values.namespace ?? 'weft-system' } : {}) },
        spec,
      };
      process.stdout.write(`# Apply in cluster ${values['remote-id']}: kubectl apply -f <this file>\n${YAML.stringify(manifest)}`);
      if (spec.remoteEndpoint.port === 0) process.stderr.write(`weft announce: no tunnel port yet for ${values['remote-id']}: apply ${values['remote-id']}'s announcement here, then announce again\n`);
      return 0;
    }
    const remote = openStore('weft-cli', { store: values['remote-store'], kubeconfig: values['remote-kubeconfig'], context: values['remote-context'], namespace: values['remote-namespace'] });
    try {
      const a = { store: local.store, label: local.describe };
      const b = { store: remote.store, label: remote.describe };
      const t0 = Date.now();
      if (cmd === 'unpeer') {
        await unpeerClusters(a, b, { timeoutMs });
        process.stdout.write(`unpeered in ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
        return 0;
      }
      const presharedKey = values['preshared-key'] ? randomBytes(32).toString('base64') : undefined;
      await peerClusters(a, b, { timeoutMs, ...(presharedKey ? { presharedKey } : {}) });
      if (!values['no-wait']) await waitPeeringConnected(a, b, timeoutMs);
      process.stdout.write(`peered${values['no-wait'] ? '' : ', connected,'} in ${((Date.now() - t0) / 1000).toFixed(2)} s\n`);
      return 0;
    } finally {
      await remote.store.close();
    }
  } finally {
    await local.store.close();
  }
}
