// `weft lab up|down|status|exec`: the command-line face of src/lab/lab.ts.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { down, exec, formatStatus, status, up, type LabHooks } from '../lab/lab.ts';
import { DEFAULT_STATE_DIR } from '../lab/state.ts';
import { LabError, LabInterrupted, type PodNetworkStyle } from '../lab/topology.ts';
import { peer, registerFabric, unpeer, waitConnected } from '../lab/fabric.ts';

export const LAB_USAGE = `Usage:
  weft lab up [--clusters N] [--nodes M] [--pods-per-node K] [--pod-cidr CIDR] [--service-cidr CIDR]
              [--styles bridge,routed] [--wan-mtu N] [--underlay-mtu N] [--id ID]
              [--concurrency N] [--keep-on-failure] [--full-mesh] [--no-fabric] [--state-dir DIR]
      build N clusters (a, b, …) of M nodes with K pods each, a gateway per cluster and a WAN,
      all in network namespaces wl<id>-…  (defaults: 2 × 2 × 2, pod CIDR 10.0.0.0/16 in every
      cluster, styles alternating bridge/routed), then run a controller and a gateway per cluster
      and an agent per node (--no-fabric: namespaces only); --full-mesh peers every pair
  weft lab peer A B [--preshared-key] [--no-wait] [--state-dir DIR]
      peer two clusters (waits until Connected); --preshared-key adds a WireGuard PSK kept in a Secret
  weft lab unpeer A B [--state-dir DIR]               remove their peering on both sides
  weft lab status [--json] [--state-dir DIR]
  weft lab exec [--state-dir DIR] CLUSTER/NAME -- COMMAND…
      NAME: a pod (n1-p2), a node (n1), the gateway (gw) or the underlay switch (sw); or "wan"
  weft lab down [--id ID] [--force] [--state-dir DIR]
      remove the lab; without a state file, --id ID removes lab ID's namespaces and --force
      removes every lab found by namespace name
The state dir defaults to $WEFT_LAB_STATE_DIR or ${DEFAULT_STATE_DIR}.
`;

class UsageError extends Error {}

function int(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${what} must be a number, got ${JSON.stringify(v)}`);
  return Number(v);
}

const out = (l: string) => process.stdout.write(`${l}\n`);
const err = (l: string) => process.stderr.write(`weft lab: ${l}\n`);

/** Run `weft lab ARGS…`; returns the process exit code. `hooks` are passed to up/down/status. */
export async function labCommand(args: string[], hooks: LabHooks[] = []): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'up':
        return await cmdUp(rest, hooks);
      case 'down':
        return await cmdDown(rest, hooks);
      case 'status':
        return await cmdStatus(rest, hooks);
      case 'exec':
        return await cmdExec(rest);
      case 'peer':
      case 'unpeer':
        return await cmdPeer(sub, rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(LAB_USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown lab command ${JSON.stringify(sub)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(e.message);
      process.stderr.write(LAB_USAGE);
      return 2;
    }
    if (e instanceof LabInterrupted) {
      err(e.message);
      return 128 + (os.constants.signals[e.signal] ?? 1);
    }
    if (e instanceof LabError) {
      err(e.message);
      return 1;
    }
    if (e instanceof Error && e.name === 'TypeError' && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS')) {
      err(e.message);
      return 2;
    }
    err((e as Error).stack ?? String(e));
    return 1;
  }
}

function stateDirOf(v: string | undefined): string {
  return v ?? process.env.WEFT_LAB_STATE_DIR ?? DEFAULT_STATE_DIR;
}

async function cmdUp(args: string[], hooks: LabHooks[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      clusters: { type: 'string' },
      nodes: { type: 'string' },
      pods: { type: 'string' },
      'pods-per-node': { type: 'string' },
      'pod-cidr': { type: 'string' },
      'service-cidr': { type: 'string' },
      styles: { type: 'string' },
      'wan-mtu': { type: 'string' },
      'underlay-mtu': { type: 'string' },
      id: { type: 'string' },
      concurrency: { type: 'string' },
      'keep-on-failure': { type: 'boolean' },
      'full-mesh': { type: 'boolean' },
      'no-fabric': { type: 'boolean' },
      'state-dir': { type: 'string' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values['no-fabric']) registerFabric({ fullMesh: values['full-mesh'] ?? false });
  else if (values['full-mesh']) throw new UsageError('--full-mesh needs the fabric (drop --no-fabric)');
  const concurrency = int(values.concurrency, '--concurrency');
  await up({
    stateDir: stateDirOf(values['state-dir']),
    id: values.id,
    clusters: int(values.clusters, '--clusters'),
    nodesPerCluster: int(values.nodes, '--nodes'),
    podsPerNode: int(values['pods-per-node'] ?? values.pods, '--pods-per-node'),
    podCIDR: values['pod-cidr'],
    serviceCIDR: values['service-cidr'],
    styles: values.styles?.split(',').map((s) => s.trim()) as PodNetworkStyle[] | undefined,
    wanMtu: int(values['wan-mtu'], '--wan-mtu'),
    underlayMtu: int(values['underlay-mtu'], '--underlay-mtu'),
    concurrency: concurrency === undefined ? undefined : Math.max(1, concurrency),
    keepOnFailure: values['keep-on-failure'],
    log: out,
    hooks,
  });
  return 0;
}

async function cmdDown(args: string[], hooks: LabHooks[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { id: { type: 'string' }, force: { type: 'boolean' }, 'state-dir': { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const report = await down({ stateDir: stateDirOf(values['state-dir']), id: values.id, force: values.force, hooks, log: values.json ? () => {} : out });
  if (values.json) out(JSON.stringify(report, null, 2));
  return report.leftover.length ? 1 : 0;
}

async function cmdPeer(sub: 'peer' | 'unpeer', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'state-dir': { type: 'string' }, 'no-wait': { type: 'boolean' }, 'preshared-key': { type: 'boolean' } },
  });
  if (positionals.length !== 2) throw new UsageError(`${sub} needs two cluster names, e.g. weft lab ${sub} a b`);
  const [a, b] = positionals as [string, string];
  const stateDir = stateDirOf(values['state-dir']);
  const t0 = Date.now();
  if (sub === 'unpeer') {
    await unpeer(stateDir, a, b);
    out(`unpeered ${a} and ${b} in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
    return 0;
  }
  // A fresh 32-byte preshared key shared by both tunnel ends, kept in a Secret on each side.
  const presharedKey = values['preshared-key'] ? randomBytes(32).toString('base64') : undefined;
  await peer(stateDir, a, b, presharedKey ? { presharedKey } : {});
  if (!values['no-wait']) await waitConnected(stateDir, a, b);
  out(`peered ${a} and ${b}${values['no-wait'] ? '' : ', connected'} in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
  return 0;
}

async function cmdStatus(args: string[], hooks: LabHooks[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, 'state-dir': { type: 'string' } },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const stateDir = stateDirOf(values['state-dir']);
  registerFabric({ fullMesh: false });
  const s = await status({ stateDir, hooks });
  if (!s) {
    if (values.json) out('null');
    else err(`no lab in ${stateDir}`);
    return 1;
  }
  out(values.json ? JSON.stringify(s, null, 2) : formatStatus(s));
  return 0;
}

async function cmdExec(args: string[]): Promise<number> {
  // Everything after the target (and an optional `--`) is the command, options included.
  let stateDir: string | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--state-dir') stateDir = args[++i];
    else if (a.startsWith('--state-dir=')) stateDir = a.slice('--state-dir='.length);
    else break;
  }
  const target = args[i];
  if (!target || target.startsWith('-')) throw new UsageError('exec needs a target (CLUSTER/NAME) and a command');
  let command = args.slice(i + 1);
  if (command[0] === '--') command = command.slice(1);
  if (command.length === 0) throw new UsageError(`exec ${target}: no command given`);
  return exec({ stateDir: stateDirOf(stateDir), target, command });
}
