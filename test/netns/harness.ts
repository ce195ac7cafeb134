// Network-namespace test bed: every namespace, process and control socket a test makes is
// registered here and removed by cleanup(), also when the test fails. Names carry a per-run id so
// parallel runs never collide, and nothing is ever created in the machine's root namespace: veth
// pairs are created inside a test namespace (`ip -n NS link add ... peer ... netns OTHER`).
import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The Node 24 binary the project runs on (installed by bin/setup). */
export const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');
export const wgSocketDir = '/var/run/wireguard';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function run(cmd: string, args: readonly string[], opts: { allowFail?: boolean; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr || stdout || (err as Error).message}`));
      } else {
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      }
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes; then throw with `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export class NetLab {
  /** Short random id shared by every name this lab makes. */
  readonly id: string;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly sockets = new Set<string>();
  private ifCounter = 0;

  private constructor(id: string) {
    this.id = id;
  }

  static create(): NetLab {
    const lab = new NetLab(randomBytes(3).toString('hex'));
    liveLabs.add(lab);
    return lab;
  }

  /** Create namespace `wt-<id>-<short>` with loopback up. */
  async namespace(short: string): Promise<string> {
    const name = `wt-${this.id}-${short}`;
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** An interface name unique on this machine (control sockets share one directory), ≤ 15 chars. */
  ifname(prefix = 'wg'): string {
    const name = `${prefix}${this.id}${(this.ifCounter++).toString(36)}`;
    if (name.length > 15) throw new Error(`interface name too long: ${name}`);
    this.sockets.add(path.join(wgSocketDir, `${name}.sock`));
    return name;
  }

  /** A veth pair between two test namespaces, both ends up, with optional addresses (CIDR). */
  async veth(nsA: string, nsB: string, opts: { a?: string[]; b?: string[]; ifA?: string; ifB?: string; mtu?: number } = {}): Promise<[string, string]> {
    const ifA = opts.ifA ?? `v${this.id}${(this.ifCounter++).toString(36)}`;
    const ifB = opts.ifB ?? `v${this.id}${(this.ifCounter++).toString(36)}`;
    await run('ip', ['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    for (const [ns, ifn, addrs] of [[nsA, ifA, opts.a ?? []], [nsB, ifB, opts.b ?? []]] as const) {
      for (const a of addrs) await run('ip', ['-n', ns, 'addr', 'add', a, 'dev', ifn, ...(a.includes(':') ? ['nodad'] : [])]);
      if (opts.mtu) await run('ip', ['-n', ns, 'link', 'set', ifn, 'mtu', String(opts.mtu)]);
      await run('ip', ['-n', ns, 'link', 'set', ifn, 'up']);
    }
    return [ifA, ifB];
  }

  /** Run a command inside a namespace; throws on a non-zero exit unless allowFail. */
  exec(ns: string, args: readonly string[], opts: { allowFail?: boolean; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', ns, ...args], opts);
  }

  /** Start a long-running process inside a namespace; it is killed (by pid) at cleanup. */
  spawn(ns: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.push(child);
    return child;
  }

  /** Remember a control socket path to remove at cleanup (ifname() does this already). */
  trackSocket(p: string): void {
    this.sockets.add(p);
  }

  /** Track a pid started by a daemonizing command (e.g. weft-wg without -f) so cleanup ends it. */
  trackPid(pid: number): void {
    this.pids.add(pid);
  }
  private readonly pids = new Set<number>();

  /** A private temporary directory (mode 0700) removed at cleanup, e.g. for key and config files. */
  tempDir(short = 'tmp'): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `weft-${this.id}-${short}-`));
    this.dirs.push(dir);
    return dir;
  }
  private readonly dirs: string[] = [];

  async cleanup(): Promise<void> {
    liveLabs.delete(this);
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch {}
      }
    }
    await Promise.all(
      this.children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? undefined
          : Promise.race([new Promise((r) => c.once('exit', r)), sleep(3000).then(() => c.pid && tryKill(c.pid, 'SIGKILL'))]),
      ),
    );
    // Daemons started inside a namespace are found by namespace, so only our own processes die.
    for (const ns of this.namespaces) {
      const pids = await run('ip', ['netns', 'pids', ns], { allowFail: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) this.pids.add(Number(pid));
    }
    for (const pid of this.pids) tryKill(pid, 'SIGTERM');
    if (this.pids.size) {
      const deadline = Date.now() + 3000;
      while ([...this.pids].some(alive) && Date.now() < deadline) await sleep(50);
      for (const pid of this.pids) if (alive(pid)) tryKill(pid, 'SIGKILL');
    }
    for (const ns of this.namespaces.reverse()) await run('ip', ['netns', 'del', ns], { allowFail: true });
    for (const s of this.sockets) fs.rmSync(s, { force: true });
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {}
}

// Last-resort cleanup when a test process is interrupted.
const liveLabs = new Set<NetLab>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([...liveLabs].map((l) => l.cleanup())).finally(() => process.exit(130));
  });
}
