// What the fabric and route benchmarks share: running commands (every child tracked, so an
// interrupt can end exactly the processes this script started), statistics, the machine
// description, a text table and the JSON result file. No test-harness import: its SIGINT handler
// would exit the process before a benchmark's own cleanup (lab down, namespace delete) ran.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { implByName, type WgImpl } from '../test/netns/impl.ts';
import type { NetLab } from '../test/netns/harness.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const nodeBin = path.join(repoRoot, 'node_modules/.bin/node');
export const weftBin = path.join(repoRoot, 'bin/weft');

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Wall-clock milliseconds with sub-millisecond resolution (comparable with `ping -D` stamps). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function errMsg(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}

/** A measured value, or why it could not be measured (shown in the table, kept in the JSON). */
export type Cell<T> = T | { error: string };

/** Measure one cell: a failure becomes an error cell instead of ending the run. */
export async function attempt<T>(f: () => Promise<T>): Promise<Cell<T>> {
  try {
    return await f();
  } catch (e) {
    return { error: errMsg(e) };
  }
}

// ---- interrupts and children -------------------------------------------------------------------

export class Interrupted extends Error {
  constructor(signal: string) {
    super(`interrupted by ${signal}`);
    this.name = 'Interrupted';
  }
}

const children = new Set<ChildProcess>();
const interruptListeners: (() => void)[] = [];
let interruptedBy: string | undefined;

/** Throws once SIGINT/SIGTERM/SIGHUP arrived; long loops call it on every turn. */
export function checkInterrupt(): void {
  if (interruptedBy) throw new Interrupted(interruptedBy);
}

export function interrupted(): boolean {
  return interruptedBy !== undefined;
}

/** The signal that interrupted the run, if one did. */
export function interruptSignal(): string | undefined {
  return interruptedBy;
}

/** Run `f` once when the first signal arrives (after the tracked children were told to stop). */
export function onInterrupt(f: () => void): void {
  interruptListeners.push(f);
}

/**
 * On a signal: remember it, end the children this process started (by pid), and let the main flow
 * reach its `finally` (cleanup). A second signal while cleaning up is only reported.
 */
export function installInterruptHandler(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (interruptedBy) {
        process.stderr.write(`${sig}: still cleaning up, please wait\n`);
        return;
      }
      interruptedBy = sig;
      process.stderr.write(`${sig}: stopping, then cleaning up\n`);
      for (const c of children) stopChild(c);
      for (const f of interruptListeners) f();
    });
  }
}

export function stopChild(c: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): void {
  if (c.exitCode === null && c.signalCode === null && c.pid) {
    try {
      process.kill(c.pid, sig);
    } catch {}
  }
}

/** Wait for a child to exit, ending it (TERM, then KILL after 2 s) first. */
export async function endChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  stopChild(c);
  const t = setTimeout(() => stopChild(c, 'SIGKILL'), 2000);
  await exited;
  clearTimeout(t);
}

/** Start a tracked long-running child. */
export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(c);
  c.once('exit', () => children.delete(c));
  c.on('error', () => {});
  return c;
}

/** Run a command to completion (tracked, bounded by timeoutMs); throws on failure unless allowFail. */
export function run(cmd: string, args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${(stderr || stdout || (err as Error).message).trim()}`));
      else resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `ip netns exec NS …`. */
export function inNs(ns: string, args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, ...args], opts);
}

/** Call `fn` on each line a child writes to stdout. */
export function onLines(c: ChildProcess, fn: (line: string) => void): void {
  let buf = '';
  c.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

// ---- statistics ------------------------------------------------------------------------------

export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function median(values: readonly number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function summary(values: readonly number[]): Summary {
  return { n: values.length, median: median(values), min: values.length ? Math.min(...values) : NaN, max: values.length ? Math.max(...values) : NaN };
}

// ---- ping ------------------------------------------------------------------------------------

export interface PingStats {
  sent: number;
  received: number;
  rttsMs: number[];
}

export function parsePing(out: string): PingStats {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  return { sent: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0, rttsMs: [...out.matchAll(/bytes from .*time=([\d.]+) ms/g)].map((x) => Number(x[1])) };
}

/** A `ping -D` reply line: its wall-clock stamp (ms) and RTT (ms); null for anything else. */
export function parseReplyLine(line: string): { atMs: number; rttMs: number } | null {
  const m = /^\[(\d+\.\d+)\] \d+ bytes from .*time=([\d.]+) ms/.exec(line);
  return m ? { atMs: Number(m[1]) * 1000, rttMs: Number(m[2]) } : null;
}

// ---- /proc -----------------------------------------------------------------------------------

/**
 * The wall-clock time (ms) of the first reply from `target` pinged from namespace `ns` every
 * `intervalS` (-W 1), the ping stopped at that reply, and how often ping had to be restarted:
 * iputils ping with a deadline ends on the first ICMP error (net unreachable, sent by a gateway
 * whose routes are not there yet), so it is started again an interval later, until `deadline`
 * (wall-clock ms). Throws once the deadline passes without a reply.
 */
export async function firstReply(ns: string, target: string, deadline: number, intervalS: number): Promise<{ atMs: number; restarts: number }> {
  let output = '';
  for (let restarts = 0; ; restarts++) {
    checkInterrupt();
    const left = Math.ceil((deadline - wallMs()) / 1000);
    if (left <= 0) break;
    const ping = start('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', String(intervalS), '-W', '1', '-w', String(left), target]);
    let replyAt = NaN;
    ping.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-600)));
    onLines(ping, (l) => {
      output = (output + l + '\n').slice(-600);
      const r = parseReplyLine(l);
      if (r && Number.isNaN(replyAt)) {
        replyAt = r.atMs;
        void endChild(ping);
      }
    });
    await new Promise<void>((r) => (ping.exitCode !== null || ping.signalCode !== null ? r() : ping.once('exit', () => r())));
    if (!Number.isNaN(replyAt)) return { atMs: replyAt, restarts };
    if (wallMs() + intervalS * 1000 >= deadline) break;
    await sleep(intervalS * 1000);
  }
  checkInterrupt();
  throw new Error(`no ping reply from ${target} before the deadline: ${output.trim().split('\n').slice(-3).join(' | ')}`);
}

// ---- machine, table, results -----------------------------------------------------------------

/**
 * The implementations named in a comma-separated `--impls` list; a name that cannot be resolved
 * becomes a failed result (so the table shows it) instead of ending the run.
 */
export function implsFromList<R>(list: string, failed: (subject: string, error: string) => R): { impls: WgImpl[]; bad: R[] } {
  const impls: WgImpl[] = [];
  const bad: R[] = [];
  for (const name of list.split(',').filter(Boolean)) {
    try {
      impls.push(implByName(name));
    } catch (e) {
      bad.push(failed(name, (e instanceof Error ? e.message : String(e)).split('\n')[0]!));
    }
  }
  return { impls, bad };
}

export async function machineInfo(): Promise<Record<string, unknown>> {
  const cpuModel = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  const nproc = Number((await run('nproc', [])).stdout.trim());
  const first = async (cmd: string, args: string[]) => (await run(cmd, args, { allowFail: true }).catch(() => ({ stdout: '', stderr: '' }))).stdout.split('\n')[0]?.trim() || undefined;
  return {
    nproc,
    kernel: os.release(),
    cpuModel,
    memTotalKiB: Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0),
    loadAvg: os.loadavg(),
    node: process.version,
    iproute2: await first('ip', ['-V']),
    iperf3: await first('iperf3', ['--version']),
    ping: await first('ping', ['-V']),
  };
}

/** A text table; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' │ ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...rows.slice(1).map(line)].join('\n');
}

export function writeResult(outDir: string, name: string, started: Date, body: Record<string, unknown>): string {
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${name}-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify({ benchmark: name, date: started.toISOString(), ...body }, null, 2) + '\n');
  return file;
}

export const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '—');
export const secs = (x: number, digits = 2) => (Number.isFinite(x) ? `${x.toFixed(digits)} s` : '—');

/**
 * The labs a bench builds, removed on SIGINT/SIGTERM/SIGHUP. The harness's own handler would exit
 * right after its cleanup; this one (through installInterruptHandler) cleans up the live labs,
 * lets the main flow reach its `finally`, and exits 130 (forced after 30 s). Processes started
 * inside a lab (lab.spawn) end with it.
 */
export function labsCleanedOnInterrupt(): Set<NetLab> {
  const labs = new Set<NetLab>();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
  installInterruptHandler();
  onInterrupt(() => {
    for (const lab of labs) void lab.cleanup();
    setTimeout(() => {
      void Promise.all([...labs].map((l) => l.cleanup())).finally(() => process.exit(130));
    }, 30_000).unref();
  });
  return labs;
}

/** Prints what is wrong and the usage, exit 2 (a usage error). */
export function usageExit(usage: string, msg: string): never {
  console.error(`${msg}\n${usage}`);
  process.exit(2);
}

/**
 * A bench's flags (node:util parseArgs, strict): `--help` (which `config` must declare) prints
 * `usage` and exits 0; an unknown or malformed flag is a usage error, with a hint where
 * parseArgs took a negative number for a flag.
 */
export function benchArgs<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    const m = errMsg(e);
    usageExit(usage, /ambiguous/.test(m) ? `${m} (give a negative number as --option=-10)` : m);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  return parsed;
}

/** A scheduling priority flag: a whole number in [-20, 19]; else a usage error. */
export function niceArg(usage: string, name: string, value: unknown): number {
  const text = String(value).trim();
  if (!/^-?\d+$/.test(text) || Number(text) < -20 || Number(text) > 19) usageExit(usage, `--${name} must be a whole number in [-20, 19], not ${JSON.stringify(value)}`);
  return Number(text);
}
