// The lab's state file, `<state dir>/lab.json`: what the lab is (id, options: the topology is
// recomputed from them) and what it created (namespaces, WireGuard control sockets), so `status`,
// `exec` and `down` work from any process, also after a crash. One lab per state dir: `up` creates
// lab.json exclusively, `down` removes it last.
//
// The state dir also carries a marker file, `.weft-lab`: `down` empties the directory only when the
// marker is there, so a mistyped `--state-dir /` can never remove anything that is not the lab's.
import fs from 'node:fs';
import path from 'node:path';
import { FileLock } from '../store/file-lock.ts';
import { LabError, resolveLabOptions, type LabOptions } from './topology.ts';

export const STATE_FILE = 'lab.json';
export const MARKER_FILE = '.weft-lab';
export const DEFAULT_STATE_DIR = '/var/lib/weft/lab';
export const STATE_VERSION = 1;

export type LabPhase = 'building' | 'ready' | 'failed';

export interface LabState {
  version: typeof STATE_VERSION;
  id: string;
  phase: LabPhase;
  createdAt: string;
  updatedAt: string;
  options: LabOptions;
  /** Cluster names, in order. */
  clusters: string[];
  /** Every namespace the lab creates (written before the first one is created). */
  namespaces: string[];
  /** WireGuard control sockets (`/var/run/wireguard/<if>.sock`) to remove at `down`. */
  sockets: string[];
  /** Free-form data for what runs on top of the topology (agents, gateways, controllers). */
  extra: Record<string, unknown>;
}

export function statePath(dir: string): string {
  return path.join(dir, STATE_FILE);
}

/** Check a parsed lab.json; throws LabError saying what is wrong. */
export function validateLabState(raw: unknown, where = STATE_FILE): LabState {
  const bad = (why: string): never => {
    throw new LabError(`${where} is not a lab state file: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.version !== STATE_VERSION) bad(`version ${JSON.stringify(o.version)} (expected ${STATE_VERSION})`);
  if (typeof o.id !== 'string') bad('no id');
  if (o.phase !== 'building' && o.phase !== 'ready' && o.phase !== 'failed') bad(`phase ${JSON.stringify(o.phase)}`);
  for (const k of ['createdAt', 'updatedAt'] as const) if (typeof o[k] !== 'string') bad(`no ${k}`);
  for (const k of ['clusters', 'namespaces', 'sockets'] as const) {
    if (!Array.isArray(o[k]) || !(o[k] as unknown[]).every((x) => typeof x === 'string')) bad(`${k} is not a list of strings`);
  }
  if (typeof o.extra !== 'object' || o.extra === null || Array.isArray(o.extra)) bad('extra is not an object');
  if (typeof o.options !== 'object' || o.options === null) bad('no options');
  let options: LabOptions;
  try {
    options = resolveLabOptions(o.options as LabOptions);
  } catch (err) {
    return bad(`options: ${(err as Error).message}`);
  }
  if (options.id !== o.id) bad(`options.id ${options.id} differs from id ${String(o.id)}`);
  return { ...(o as unknown as LabState), options };
}

/** The lab state in `dir`, or undefined when there is none. Throws LabError when it is unreadable. */
export function readLabState(dir: string): LabState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new LabError(`${statePath(dir)} is not valid JSON (${(err as Error).message}); \`weft lab down\` (with --id ID if it cannot tell the id) removes the lab anyway`);
  }
  return validateLabState(raw, statePath(dir));
}

export function newLabState(options: LabOptions, namespaces: string[], now = new Date()): LabState {
  const t = now.toISOString();
  return {
    version: STATE_VERSION,
    id: options.id,
    phase: 'building',
    createdAt: t,
    updatedAt: t,
    options,
    clusters: Array.from({ length: options.clusters }, (_, i) => String.fromCharCode(97 + i)),
    namespaces,
    sockets: [],
    extra: {},
  };
}

/**
 * Make `dir` the lab's state dir: create it, or accept it when it is empty or already marked as a
 * lab dir. Refuses a directory holding anything else.
 */
export function claimStateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const entries = fs.readdirSync(dir);
  if (entries.length > 0 && !entries.includes(MARKER_FILE)) {
    throw new LabError(`state dir ${dir} is not empty and is not a weft lab dir (no ${MARKER_FILE}); choose another --state-dir`);
  }
  if (entries.includes(STATE_FILE)) return; // createLabState refuses with the lab's id
  // Leftovers of a `down` interrupted after lab.json went: they belong to no lab any more.
  for (const e of entries) if (e !== MARKER_FILE) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  fs.writeFileSync(path.join(dir, MARKER_FILE), 'weft lab state dir: `weft lab down` empties it\n');
}

/** Write the first lab.json; fails with LabError when a lab already lives in `dir`. */
export function createLabState(dir: string, state: LabState): void {
  try {
    fs.writeFileSync(statePath(dir), JSON.stringify(state, null, 2) + '\n', { flag: 'wx', mode: 0o644 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      let id = '?';
      try {
        id = readLabState(dir)?.id ?? '?';
      } catch {}
      throw new LabError(`a lab (id ${id}) already exists in ${dir}; run \`weft lab down --state-dir ${dir}\` first`);
    }
    throw err;
  }
}

/** Replace lab.json atomically (write, fsync, rename). */
export function writeLabState(dir: string, state: LabState): void {
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, statePath(dir));
}

/** Read-modify-write lab.json under a lock (several processes may record sockets or extra data). */
export async function updateLabState(dir: string, change: (state: LabState) => LabState | void): Promise<LabState> {
  const lock = await FileLock.acquire(`${statePath(dir)}.lock`, { timeoutMs: 10_000 });
  try {
    const state = readLabState(dir);
    if (!state) throw new LabError(`no lab in ${dir}`);
    const next = change(state) ?? state;
    writeLabState(dir, next);
    return next;
  } finally {
    await lock.release();
  }
}

/** Record WireGuard control sockets (paths or interface names) for `down` to remove. */
export function recordSockets(dir: string, sockets: readonly string[]): Promise<LabState> {
  return updateLabState(dir, (s) => {
    for (const x of sockets) {
      const p = x.includes('/') ? x : `/var/run/wireguard/${x}.sock`;
      if (!s.sockets.includes(p)) s.sockets.push(p);
    }
  });
}

/**
 * Empty the state dir (keep the directory). Only a dir with the lab marker is touched; returns
 * false when the marker is missing and nothing was removed.
 */
export function clearStateDir(dir: string): boolean {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return true;
  }
  if (!entries.includes(MARKER_FILE)) {
    // Without the marker only our own file may go.
    fs.rmSync(statePath(dir), { force: true });
    return entries.length === 0 || (entries.length === 1 && entries[0] === STATE_FILE);
  }
  // lab.json and then the marker go last: a crash halfway leaves a dir `down` still recognises.
  for (const e of entries) if (e !== MARKER_FILE && e !== STATE_FILE) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  fs.rmSync(statePath(dir), { force: true });
  fs.rmSync(path.join(dir, MARKER_FILE), { force: true });
  return true;
}
