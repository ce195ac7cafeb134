// The lab's life cycle: `up` builds the topology (topology.ts) in namespaces (netns.ts) and records
// it (state.ts); `status` and `exec` work from the record; `down` removes everything, also what a
// crashed `up` left behind. Only the topology lives here: what runs on top of it (agents, gateways,
// controllers) plugs in through LabHooks, called after `up`, first thing in `down`, and by `status`.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  createNamespaces,
  deleteNamespaces,
  execInNamespace,
  ipBatch,
  killNamespaceProcesses,
  listNamespaces,
  mapLimit,
  namespaceExists,
  setSysctls,
} from './netns.ts';
import {
  clearStateDir,
  claimStateDir,
  createLabState,
  newLabState,
  readLabState,
  updateLabState,
  type LabPhase,
  type LabState,
} from './state.ts';
import {
  LabError,
  LabInterrupted,
  labIdOfNamespace,
  labPrefix,
  planBuild,
  planTopology,
  resolveTarget,
  topologyNamespaces,
  validLabId,
  type LabOptions,
  type LabTopology,
  type NamespaceStep,
  type PodNetworkStyle,
} from './topology.ts';

export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

/** What a hook sees: where the lab's state is, the state itself and the topology built from it. */
export interface LabContext {
  stateDir: string;
  state: LabState;
  topology: LabTopology;
  log: (line: string) => void;
}

/**
 * Extension points for what runs on top of the topology. All optional; several may be registered.
 * `afterUp` runs once the topology is built and lab.json says `ready`; if it throws, `up` tears
 * the lab down (hooks' `beforeDown` included) and fails. `beforeDown` runs first in `down`, before
 * any process is signalled or namespace removed; its errors are logged and `down` goes on.
 * `status` adds to the status (e.g. peering rows).
 */
export interface LabHooks {
  name: string;
  afterUp?(ctx: LabContext): Promise<void> | void;
  beforeDown?(ctx: LabContext): Promise<void> | void;
  status?(ctx: LabContext, status: LabStatus): Promise<void> | void;
}

const registered: LabHooks[] = [];

/** Register hooks for every later up/down/status in this process; returns an unregister function. */
export function registerLabHooks(hooks: LabHooks): () => void {
  registered.push(hooks);
  return () => {
    const i = registered.indexOf(hooks);
    if (i >= 0) registered.splice(i, 1);
  };
}

function allHooks(extra: readonly LabHooks[] | undefined): LabHooks[] {
  return [...registered, ...(extra ?? [])];
}

export interface UpOptions extends Partial<Omit<LabOptions, 'id'>> {
  stateDir: string;
  /** Lab id; random when absent. */
  id?: string;
  /** Namespaces configured in parallel. Default 4. */
  concurrency?: number;
  log?: (line: string) => void;
  hooks?: LabHooks[];
  /** Leave what was built in place when `up` fails (for debugging); `down` removes it. */
  keepOnFailure?: boolean;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A fresh lab id (4 base-36 characters) that no namespace on the machine uses. */
export function freshLabId(): string {
  const taken = new Set(listNamespaces().map(labIdOfNamespace).filter(Boolean));
  for (let i = 0; i < 100; i++) {
    const id = BigInt('0x' + randomBytes(4).toString('hex')).toString(36).slice(-4).padStart(4, '0');
    if (!taken.has(id) && /[a-z]/.test(id)) return id;
  }
  throw new LabError('could not find a free lab id');
}

/** Namespaces on the machine that belong to lab `id` by name. */
export function namespacesOfLab(id: string): string[] {
  return listNamespaces().filter((n) => labIdOfNamespace(n) === id);
}

/**
 * Build the lab's topology and record it in `<stateDir>/lab.json`. Refuses when the state dir
 * already holds a lab. Progress lines go to `log`. Returns the topology for what builds on it.
 */
export async function up(opts: UpOptions): Promise<LabTopology> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const id = opts.id ?? freshLabId();
  if (!validLabId(id)) throw new LabError(`lab id ${JSON.stringify(id)} must be 1-8 lowercase letters or digits`);
  const { stateDir, concurrency, log: _l, hooks, keepOnFailure, id: _i, ...shape } = opts;
  const topology = planTopology({ ...shape, id });
  const plan = planBuild(topology);
  const existing = readLabState(stateDir);
  if (existing) throw new LabError(`a lab (id ${existing.id}) already exists in ${stateDir}; run \`weft lab down --state-dir ${stateDir}\` first`);
  const clash = namespacesOfLab(id);
  if (clash.length) throw new LabError(`namespaces of a lab with id ${id} already exist (${clash[0]}, …); run \`weft lab down --id ${id}\` or pick another id`);
  claimStateDir(stateDir);
  createLabState(stateDir, newLabState(topology.options, plan.namespaces));

  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
    log(`${sig}: stopping after the current step, then removing the lab`);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const checkpoint = () => {
    if (interrupted) throw new LabInterrupted(interrupted);
  };
  try {
    const pods = topology.clusters.reduce((s, c) => s + c.nodes.reduce((x, n) => x + n.pods.length, 0), 0);
    log(`lab ${id}: ${topology.clusters.length} clusters × ${topology.options.nodesPerCluster} nodes × ${topology.options.podsPerNode} pods, state in ${stateDir}`);
    let t = performance.now();
    await createNamespaces(plan.namespaces);
    log(`created ${plan.namespaces.length} namespaces ${topology.prefix}* in ${seconds(performance.now() - t)}`);
    for (const phase of plan.phases) {
      checkpoint();
      t = performance.now();
      for (const stage of phase.stages) {
        await mapLimit(stage, concurrency ?? 4, (step) => applyStep(step));
        checkpoint();
      }
      const what = phase.group === 'wan' ? `building ${phase.description}` : `building cluster ${phase.group}: ${phase.description}`;
      log(`${what} … done in ${seconds(performance.now() - t)}`);
    }
    const state = await updateLabState(stateDir, (s) => {
      s.phase = 'ready';
    });
    const ctx: LabContext = { stateDir, state, topology, log };
    for (const h of allHooks(hooks)) {
      checkpoint();
      if (h.afterUp) await h.afterUp(ctx);
    }
    checkpoint();
    log(`lab ${id} up: ${topology.clusters.length} clusters, ${topology.clusters.length * topology.options.nodesPerCluster} nodes, ${pods} pods in ${seconds(performance.now() - t0)}`);
    return topology;
  } catch (err) {
    log(`up failed: ${(err as Error).message}`);
    if (keepOnFailure && !interrupted) {
      await updateLabState(stateDir, (s) => {
        s.phase = 'failed';
      }).catch(() => {});
      log(`left the lab in place for inspection; \`weft lab down --state-dir ${stateDir}\` removes it`);
    } else {
      log('removing what was built');
      await down({ stateDir, log, hooks });
    }
    throw err;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

async function applyStep(step: NamespaceStep): Promise<void> {
  await ipBatch(step.namespace, step.ip);
  await setSysctls(step.namespace, step.sysctl);
}

export interface DownOptions {
  stateDir: string;
  /** Remove lab `id` even without a state file (e.g. after a crash that lost lab.json). */
  id?: string;
  /** Without a state file and without `id`: remove every lab found by its namespaces' names. */
  force?: boolean;
  log?: (line: string) => void;
  hooks?: LabHooks[];
}

export interface DownReport {
  /** Lab ids removed (empty when there was nothing to remove). */
  ids: string[];
  namespaces: string[];
  /** Namespaces that could not be removed. */
  leftover: string[];
  pids: number[];
  sockets: string[];
  ms: number;
}

/**
 * Remove the lab: hooks' beforeDown, then every process inside its namespaces, the namespaces
 * (recorded ones and any with the lab's prefix), its WireGuard sockets and the state dir's
 * contents. Idempotent. Without lab.json it needs `id` or `force` when it finds an orphaned lab;
 * it never guesses on its own, since another state dir may own that lab.
 */
export async function down(opts: DownOptions): Promise<DownReport> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  let state: LabState | undefined;
  let damagedId: string | undefined;
  try {
    state = readLabState(opts.stateDir);
  } catch (err) {
    damagedId = recoverLabId(opts.stateDir);
    if (!damagedId && !opts.force && !opts.id) throw err;
    log(`ignoring unreadable state: ${(err as Error).message}`);
  }
  let ids: string[];
  if (damagedId && !opts.id) {
    log(`the damaged state names lab ${damagedId}`);
    ids = [damagedId];
  } else if (state) {
    if (opts.id && opts.id !== state.id) throw new LabError(`the lab in ${opts.stateDir} has id ${state.id}, not ${opts.id}`);
    ids = [state.id];
  } else if (opts.id) {
    if (!validLabId(opts.id)) throw new LabError(`lab id ${JSON.stringify(opts.id)} must be 1-8 lowercase letters or digits`);
    ids = [opts.id];
  } else {
    const orphans = orphanLabIds();
    if (orphans.length && !opts.force) {
      throw new LabError(
        `no lab state in ${opts.stateDir}, but namespaces of lab${orphans.length > 1 ? 's' : ''} ${orphans.join(', ')} exist ` +
          `(another state dir may own them): \`weft lab down --id ID\` removes one, \`--force\` removes all`,
      );
    }
    ids = orphans;
  }

  if (state) {
    const ctx: LabContext = { stateDir: opts.stateDir, state, topology: planTopology(state.options), log };
    for (const h of allHooks(opts.hooks)) {
      if (!h.beforeDown) continue;
      try {
        await h.beforeDown(ctx);
      } catch (err) {
        log(`hook ${h.name}: stop failed: ${(err as Error).message}`);
      }
    }
  }
  const namespaces = [...new Set([...(state?.namespaces ?? []), ...ids.flatMap(namespacesOfLab)])].filter((n) => {
    const owner = labIdOfNamespace(n);
    return owner !== undefined && ids.includes(owner);
  });
  const present = namespaces.filter(namespaceExists);
  const pids = await killNamespaceProcesses(present);
  if (pids.length) log(`ended ${pids.length} process${pids.length > 1 ? 'es' : ''} inside the lab`);
  const leftover = await deleteNamespaces(present);
  if (leftover.length) log(`could not remove ${leftover.length} namespaces: ${leftover.join(' ')}`);
  const sockets = removeSockets(ids, state?.sockets ?? []);
  clearStateDir(opts.stateDir);
  const ms = performance.now() - t0;
  if (ids.length) log(`lab ${ids.join(', ')} down: removed ${present.length} namespaces${sockets.length ? `, ${sockets.length} sockets` : ''} in ${seconds(ms)}`);
  else log(`no lab in ${opts.stateDir}`);
  return { ids, namespaces: present, leftover, pids, sockets, ms };
}

/** The id in a lab.json too damaged to read as a whole (e.g. truncated by a full disk). */
function recoverLabId(stateDir: string): string | undefined {
  try {
    const m = /"id"\s*:\s*"([a-z0-9]{1,8})"/.exec(fs.readFileSync(path.join(stateDir, 'lab.json'), 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}

/** Lab ids found by namespace name on this machine. */
export function orphanLabIds(): string[] {
  return [...new Set(listNamespaces().map(labIdOfNamespace).filter((x): x is string => x !== undefined))].sort();
}

function removeSockets(ids: readonly string[], recorded: readonly string[]): string[] {
  const out: string[] = [];
  const candidates = new Set(recorded.filter((p) => p.endsWith('.sock')));
  let dir: string[] = [];
  try {
    dir = fs.readdirSync(WIREGUARD_SOCKET_DIR);
  } catch {}
  for (const f of dir) {
    if (f.endsWith('.sock') && ids.some((id) => f.startsWith(labPrefix(id)))) candidates.add(path.join(WIREGUARD_SOCKET_DIR, f));
  }
  for (const p of candidates) {
    if (fs.existsSync(p)) {
      fs.rmSync(p, { force: true });
      out.push(p);
    }
  }
  return out;
}

/** The lab recorded in `stateDir`, with its topology; undefined when there is none. */
export function loadLab(stateDir: string, log: (line: string) => void = () => {}): LabContext | undefined {
  const state = readLabState(stateDir);
  if (!state) return undefined;
  return { stateDir, state, topology: planTopology(state.options), log };
}

export interface PodStatus {
  name: string;
  namespace: string;
  node: string;
  ip: string;
}

export interface NodeStatus {
  name: string;
  namespace: string;
  ip: string;
  podCIDR: string;
}

export interface ClusterStatus {
  name: string;
  style: PodNetworkStyle;
  podCIDR: string;
  serviceCIDR: string;
  nodeCIDR: string;
  gateway: { namespace: string; underlayIP: string; wanIP: string };
  switchNamespace: string;
  nodes: NodeStatus[];
  pods: PodStatus[];
}

/** A row the fabric adds per peering (hooks fill `peerings`); free-form beyond these fields. */
export interface PeeringRow {
  local: string;
  remote: string;
  phase: string;
  [field: string]: unknown;
}

export interface LabStatus {
  id: string;
  stateDir: string;
  phase: LabPhase;
  createdAt: string;
  wan: { namespace: string; cidr: string; mtu: number };
  clusters: ClusterStatus[];
  /** Namespaces lab.json lists that do not exist (empty when the lab is whole). */
  missingNamespaces: string[];
  peerings: PeeringRow[];
  /** Anything else a hook wants to report. */
  extra: Record<string, unknown>;
}

/** The lab's status, or undefined when the state dir holds no lab. */
export async function status(opts: { stateDir: string; hooks?: LabHooks[]; log?: (line: string) => void }): Promise<LabStatus | undefined> {
  const ctx = loadLab(opts.stateDir, opts.log);
  if (!ctx) return undefined;
  const { state, topology: t } = ctx;
  const s: LabStatus = {
    id: state.id,
    stateDir: opts.stateDir,
    phase: state.phase,
    createdAt: state.createdAt,
    wan: { namespace: t.wanNamespace, cidr: t.wanCIDR, mtu: t.wanMtu },
    clusters: t.clusters.map((c) => ({
      name: c.name,
      style: c.style,
      podCIDR: c.podCIDR,
      serviceCIDR: c.serviceCIDR,
      nodeCIDR: c.nodeCIDR,
      gateway: { namespace: c.gateway.namespace, underlayIP: c.gateway.underlayIP, wanIP: c.gateway.wanIP },
      switchNamespace: c.switchNamespace,
      nodes: c.nodes.map((n) => ({ name: n.name, namespace: n.namespace, ip: n.ip, podCIDR: n.podCIDR })),
      pods: c.nodes.flatMap((n) => n.pods.map((p) => ({ name: p.name, namespace: p.namespace, node: n.name, ip: p.ip }))),
    })),
    missingNamespaces: topologyNamespaces(t).filter((n) => !namespaceExists(n)),
    peerings: [],
    extra: {},
  };
  for (const h of allHooks(opts.hooks)) if (h.status) await h.status(ctx, s);
  return s;
}

/** Status as text for a terminal. */
export function formatStatus(s: LabStatus): string {
  const lines: string[] = [];
  const whole = s.missingNamespaces.length === 0 ? '' : `, ${s.missingNamespaces.length} namespaces MISSING`;
  lines.push(`lab ${s.id} (${s.phase}${whole}), state ${s.stateDir}, WAN ${s.wan.cidr} mtu ${s.wan.mtu}`);
  for (const c of s.clusters) {
    lines.push('');
    lines.push(`cluster ${c.name}  ${c.style} pod network  pods ${c.podCIDR}  services ${c.serviceCIDR}  nodes ${c.nodeCIDR}`);
    lines.push(`  gateway  ${c.gateway.underlayIP.padEnd(16)} wan ${c.gateway.wanIP}`);
    for (const n of c.nodes) {
      lines.push(`  node ${n.name.padEnd(4)}${n.ip.padEnd(16)} pods ${n.podCIDR}`);
      for (const p of c.pods.filter((x) => x.node === n.name)) lines.push(`    pod ${p.name.padEnd(10)}${p.ip}`);
    }
  }
  if (s.peerings.length) {
    lines.push('', 'peerings');
    for (const p of s.peerings) {
      const rest = Object.entries(p)
        .filter(([k]) => k !== 'local' && k !== 'remote' && k !== 'phase')
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      lines.push(`  ${p.local} ↔ ${p.remote}  ${p.phase}${rest.length ? '  ' + rest.join(' ') : ''}`);
    }
  }
  if (s.missingNamespaces.length) lines.push('', `missing namespaces: ${s.missingNamespaces.join(' ')}`);
  return lines.join('\n');
}

/** Run `command` inside a lab namespace (`a/n1-p2`, `a/n1`, `a/gw`, `a/sw`, `wan`) with inherited stdio. */
export async function exec(opts: { stateDir: string; target: string; command: readonly string[] }): Promise<number> {
  const ctx = loadLab(opts.stateDir);
  if (!ctx) throw new LabError(`no lab in ${opts.stateDir}; \`weft lab up\` builds one`);
  if (opts.command.length === 0) throw new LabError('no command to run');
  const ns = resolveTarget(ctx.topology, opts.target);
  if (!ns) {
    const c = ctx.topology.clusters[0];
    const ex = c ? `${c.name}/${c.nodes[0]?.pods[0]?.name ?? c.nodes[0]?.name ?? 'gw'}` : 'wan';
    throw new LabError(`no ${JSON.stringify(opts.target)} in lab ${ctx.state.id} (try CLUSTER/POD like ${ex}, CLUSTER/n1, CLUSTER/gw, CLUSTER/sw, wan)`);
  }
  if (!namespaceExists(ns)) throw new LabError(`namespace ${ns} does not exist (lab ${ctx.state.phase}); \`weft lab status\` shows what is missing`);
  return execInNamespace(ns, opts.command);
}
