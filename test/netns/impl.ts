// Which WireGuard userspace implementation a netns test or benchmark runs, and how to start one.
//
// Every implementation follows wireguard-go's command-line contract: `CMD [-f|--foreground] IFNAME`
// creates the TUN IFNAME and the control socket /var/run/wireguard/IFNAME.sock; without -f it
// daemonizes and returns once ready. The suites run against any such command, so the same tests
// prove Debian's wireguard-go (the reference) and bin/weft-wg.
//
// Selection (environment):
//   WEFT_TEST_IMPL_ONLY=wireguard-go   run every suite with that implementation on all sides
//   WEFT_TEST_IMPL_ONLY=weft-wg        likewise with bin/weft-wg only
//   WEFT_TEST_IMPL_ONLY=/path/to/cmd   any command following the contract
// Unset: the matrix weft-wg↔weft-wg, weft-wg→wireguard-go, wireguard-go→weft-wg (initiator first),
// and single-device suites target weft-wg. A missing bin/weft-wg makes those cases fail, not skip.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type NetLab, repoRoot, run, sleep, wgSocketDir } from './harness.ts';

export interface WgImpl {
  /** Short label for test names and tables. */
  name: string;
  /** argv prefix; the interface name (and -f) are appended. */
  command: string[];
}

export const wireguardGo: WgImpl = { name: 'wireguard-go', command: ['wireguard-go'] };
export const weftWg: WgImpl = { name: 'weft-wg', command: [path.join(repoRoot, 'bin/weft-wg')] };
/** weft-wg with the segmentation offloads off: what they bring, measured (bench/wg-throughput.ts). */
export const weftWgNoOffloads: WgImpl = {
  name: 'weft-wg-no-offloads',
  command: ['env', 'WEFT_WG_OFFLOADS=0', path.join(repoRoot, 'bin/weft-wg')],
};

/** Resolve a name (`weft-wg`, `wireguard-go`) or a command path into an implementation. */
export function implByName(spec: string): WgImpl {
  const s = spec.trim();
  if (s === weftWg.name || s === 'weft') return weftWg;
  if (s === wireguardGo.name) return wireguardGo;
  if (s === weftWgNoOffloads.name) return weftWgNoOffloads;
  if (s.includes('/')) return { name: path.basename(s), command: [path.resolve(s)] };
  throw new Error(`unknown WireGuard implementation "${spec}" (use weft-wg, weft-wg-no-offloads, wireguard-go or a command path)`);
}

function onlyImpl(): WgImpl | null {
  const only = process.env.WEFT_TEST_IMPL_ONLY;
  return only ? implByName(only) : null;
}

/** Implementations the single-device suites (wg-quick lifecycle, bad input) target. */
export function implsUnderTest(): WgImpl[] {
  const only = onlyImpl();
  return only ? [only] : [weftWg];
}

export interface ImplPair {
  /** Side A: knows B's endpoint and sends first, so it initiates the handshake. */
  initiator: WgImpl;
  /** Side B: has no endpoint for A until A's handshake arrives. */
  responder: WgImpl;
}

/** Implementation pairs the two-device suites run. */
export function pairMatrix(): ImplPair[] {
  const only = onlyImpl();
  if (only) return [{ initiator: only, responder: only }];
  return [
    { initiator: weftWg, responder: weftWg },
    { initiator: weftWg, responder: wireguardGo },
    { initiator: wireguardGo, responder: weftWg },
  ];
}

export function pairLabel(p: ImplPair): string {
  return `${p.initiator.name} (initiator) ↔ ${p.responder.name} (responder)`;
}

/** Throws a clear error when an implementation's command cannot be executed. */
export async function checkImplAvailable(impl: WgImpl): Promise<void> {
  const cmd = impl.command[0]!;
  if (cmd.includes('/')) {
    try {
      fs.accessSync(cmd, fs.constants.X_OK);
    } catch {
      throw new Error(`implementation ${impl.name}: ${cmd} does not exist or is not executable`);
    }
    return;
  }
  const r = await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { allowFail: true });
  if (r.code !== 0) throw new Error(`implementation ${impl.name}: ${cmd} is not on PATH`);
}

/** Absolute path of the implementation's executable (for WG_QUICK_USERSPACE_IMPLEMENTATION). */
export async function implExecutable(impl: WgImpl): Promise<string> {
  if (impl.command.length !== 1) throw new Error(`implementation ${impl.name}: wg-quick needs a single-word command`);
  await checkImplAvailable(impl);
  const cmd = impl.command[0]!;
  if (cmd.includes('/')) return cmd;
  return (await run('sh', ['-c', 'command -v "$1"', 'sh', cmd])).stdout.trim();
}

export function socketPath(ifname: string): string {
  return path.join(wgSocketDir, `${ifname}.sock`);
}

export interface DeviceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DeviceHandle {
  impl: WgImpl;
  ns: string;
  ifname: string;
  socket: string;
  /** Pid of the started process (`ip netns exec` execs the command, so this is the device). */
  pid: number;
  child: ChildProcess;
  /** Resolves when the process exits. */
  exited: Promise<DeviceExit>;
  running(): boolean;
  /** stdout + stderr captured so far (bounded). */
  output(): string;
  /** Send a signal and wait (bounded) for the exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<DeviceExit | null>;
}

export interface StartOptions {
  /** Extra environment for the device process. */
  env?: Record<string, string>;
  /** How to ask for foreground mode: the `-f` flag (default) or WG_PROCESS_FOREGROUND=1. */
  foreground?: 'flag' | 'env';
  readyTimeoutMs?: number;
}

/**
 * Run `impl` in foreground mode inside `ns` under `lab.spawn`, wait until the TUN exists and the
 * control socket answers `wg show`, and return a handle. Throws (with the process output) when the
 * command is missing, exits early or never becomes ready.
 */
export async function startDevice(lab: NetLab, ns: string, impl: WgImpl, ifname: string, opts: StartOptions = {}): Promise<DeviceHandle> {
  await checkImplAvailable(impl);
  const sock = socketPath(ifname);
  lab.trackSocket(sock);
  const fg = opts.foreground ?? 'flag';
  const argv = [...impl.command, ...(fg === 'flag' ? ['-f'] : []), ifname];
  const env: NodeJS.ProcessEnv = { ...process.env, ...(opts.env ?? {}) };
  if (fg === 'env') env.WG_PROCESS_FOREGROUND = '1';
  const child = lab.spawn(ns, argv, { env });
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 64_000) out = out.slice(-32_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitInfo: DeviceExit | null = null;
  const exited = new Promise<DeviceExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  child.once('error', (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
  const handle: DeviceHandle = {
    impl,
    ns,
    ifname,
    socket: sock,
    pid: child.pid ?? -1,
    child,
    exited,
    running: () => exitInfo === null,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000) {
      if (exitInfo) return exitInfo;
      try {
        process.kill(handle.pid, signal);
      } catch {}
      return exitedWithin(exited, timeoutMs);
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (exitInfo) {
      throw new Error(`${impl.name} ${ifname} exited before becoming ready (${JSON.stringify(exitInfo)}): ${out.trim().slice(-2000)}`);
    }
    if (fs.existsSync(sock)) {
      const link = await run('ip', ['-n', ns, 'link', 'show', ifname], { allowFail: true });
      const show = await run('wg', ['show', ifname], { allowFail: true, timeoutMs: 5000 });
      if (link.code === 0 && show.code === 0) return handle;
    }
    if (Date.now() > deadline) {
      throw new Error(`${impl.name} ${ifname} not ready after ${opts.readyTimeoutMs ?? 15_000} ms (socket ${fs.existsSync(sock) ? 'present' : 'absent'}): ${out.trim().slice(-2000)}`);
    }
    await sleep(50);
  }
}

/** `exited`, or null after `ms` (the timer does not keep the process alive). */
export function exitedWithin(exited: Promise<DeviceExit>, ms: number): Promise<DeviceExit | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    timer.unref();
    void exited.then((e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) still answers kill(0); treat it as gone.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return statFields(stat)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, ...]. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
}

/** `pid` and all its descendants (an implementation may be a wrapper that forks). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    if (!fs.existsSync(`/proc/${p}`)) continue;
    out.push(p);
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`);
    } catch {}
    for (const t of tasks) {
      try {
        for (const c of fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean)) queue.push(Number(c));
      } catch {}
    }
  }
  return out;
}

export interface ProcUsage {
  /** Resident set (KiB), summed over the process tree. */
  rssKiB: number;
  /** Peak resident set (KiB), summed over the process tree. */
  hwmKiB: number;
  /** User + system CPU seconds consumed so far, summed over the process tree. */
  cpuSeconds: number;
}

const clockTicks = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

export function procUsage(pid: number): ProcUsage {
  const u: ProcUsage = { rssKiB: 0, hwmKiB: 0, cpuSeconds: 0 };
  for (const p of processTree(pid)) {
    try {
      const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      u.rssKiB += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      u.hwmKiB += Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const f = statFields(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
      // utime and stime are fields 14 and 15 of stat; f[0] is field 3.
      u.cpuSeconds += (Number(f[11]) + Number(f[12])) / clockTicks;
    } catch {}
  }
  return u;
}

/** Pids of processes currently in a namespace. */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { allowFail: true });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}
