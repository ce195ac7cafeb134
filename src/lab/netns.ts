// Network namespaces, the lab's only kernel primitive: create and delete them in one `ip -batch`,
// apply one namespace's commands in one `ip -n NS -batch -`, list them, find and end the processes
// inside them. Nothing here ever touches the root namespace's links, addresses or routes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export const NETNS_DIR = '/var/run/netns';

export class CommandError extends Error {
  override name = 'CommandError';
  readonly code: number;
  readonly stderr: string;
  constructor(message: string, code: number, stderr: string) {
    super(message);
    this.code = code;
    this.stderr = stderr;
  }
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runCommand(cmd: string, args: readonly string[], input?: string, timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** `ip -batch` lines must not smuggle a second command or an empty line in. */
function checkLines(lines: readonly string[]): void {
  for (const l of lines) {
    if (/[\n\r]/.test(l) || l.trim() === '') throw new Error(`bad ip batch line ${JSON.stringify(l)}`);
  }
}

/** Run `ip [-n NS] [-force] -batch -` with `lines`; throws CommandError naming the failing line. */
export async function ipBatch(namespace: string | undefined, lines: readonly string[], opts: { force?: boolean } = {}): Promise<CommandResult> {
  if (lines.length === 0) return { code: 0, stdout: '', stderr: '' };
  checkLines(lines);
  const args = [...(namespace ? ['-n', namespace] : []), ...(opts.force ? ['-force'] : []), '-batch', '-'];
  const r = await runCommand('ip', args, lines.join('\n') + '\n');
  if (r.code !== 0 && !opts.force) {
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const line = m ? lines[Number(m[1]) - 1] : undefined;
    const where = namespace ? ` in namespace ${namespace}` : '';
    throw new CommandError(`ip -batch${where} failed${line ? ` at "${line}"` : ''}: ${r.stderr.trim()}`, r.code, r.stderr);
  }
  return r;
}

/** Write sysctls inside a namespace (one process for all of them). */
export async function setSysctls(namespace: string, sysctls: ReadonlyArray<readonly [string, string]>): Promise<void> {
  if (sysctls.length === 0) return;
  for (const [k, v] of sysctls) {
    if (!/^[a-z0-9_.\-/]+$/i.test(k) || !/^[0-9a-z ]+$/i.test(v)) throw new Error(`bad sysctl ${k}=${v}`);
  }
  const r = await runCommand('ip', ['netns', 'exec', namespace, 'sysctl', '-q', '-w', ...sysctls.map(([k, v]) => `${k}=${v}`)]);
  if (r.code !== 0) throw new CommandError(`sysctl in namespace ${namespace} failed: ${r.stderr.trim()}`, r.code, r.stderr);
}

/** Names of all named network namespaces on the machine. */
export function listNamespaces(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

export function namespaceExists(name: string): boolean {
  return fs.existsSync(`${NETNS_DIR}/${name}`);
}

/** Create namespaces in one process; fails (creating none after the first error) if one exists. */
export async function createNamespaces(names: readonly string[]): Promise<void> {
  await ipBatch(undefined, names.map((n) => `netns add ${n}`));
}

/** Delete namespaces; missing ones are fine. Returns the names that still exist afterwards. */
export async function deleteNamespaces(names: readonly string[]): Promise<string[]> {
  const present = names.filter(namespaceExists);
  if (present.length) await ipBatch(undefined, present.map((n) => `netns del ${n}`), { force: true });
  return present.filter(namespaceExists);
}

/** Pids of the processes whose network namespace is `name`. */
export async function namespacePids(name: string): Promise<number[]> {
  return namespacesPids([name]);
}

/**
 * Pids of the processes inside any of `names`, found in one pass over /proc (what `ip netns pids`
 * does for one namespace): a process is inside when its /proc/PID/ns/net is the namespace's file.
 */
export async function namespacesPids(names: readonly string[]): Promise<number[]> {
  const wanted = new Set<string>();
  for (const n of names) {
    try {
      const st = fs.statSync(`${NETNS_DIR}/${n}`);
      wanted.add(`${st.dev}:${st.ino}`);
    } catch {}
  }
  if (wanted.size === 0) return [];
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const st = fs.statSync(`/proc/${entry}/ns/net`);
      if (wanted.has(`${st.dev}:${st.ino}`)) out.push(pid);
    } catch {}
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * End every process inside `namespaces`: SIGTERM, up to `graceMs` to exit, then SIGKILL.
 * Returns the pids that were signalled.
 */
export async function killNamespaceProcesses(namespaces: readonly string[], graceMs = 3000): Promise<number[]> {
  const pids = new Set(await namespacesPids(namespaces));
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while ([...pids].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
  // A process that forked between the listing and the signal: one more bounded pass.
  const again = (await namespacesPids(namespaces)).filter((p) => !pids.has(p));
  for (const pid of again) signal(pid, 'SIGKILL');
  return [...pids, ...again];
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {}
}

/** Run `fn` over `items` with at most `limit` in flight; rejects with the first error after all settle. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  let failed = false;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        if (!failed) {
          failed = true;
          failure = err;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw failure;
  return out;
}

/** Run a command in a namespace with this process's stdio; resolves with its exit status. */
export function execInNamespace(namespace: string, command: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', namespace, ...command], { stdio: 'inherit' });
    const ignore = () => {};
    // The terminal's Ctrl-C reaches the child too; we wait for its status instead of dying first.
    process.on('SIGINT', ignore);
    child.on('error', (err) => {
      process.off('SIGINT', ignore);
      reject(err);
    });
    child.on('close', (code, sig) => {
      process.off('SIGINT', ignore);
      resolve(code ?? 128 + (sig ? (os.constants.signals[sig] ?? 1) : 1));
    });
  });
}
