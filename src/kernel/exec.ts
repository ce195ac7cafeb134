// How the reconciler reaches the kernel: the iproute2, bridge and nft tools and /proc/sys, each
// either in the current network namespace or inside a named one (`ip -n NS`, `ip netns exec NS`).
// The runner is injectable so the orchestration can be driven without a kernel.
import { spawn } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when the command could not be started or was killed. */
  code: number;
}

export type CommandRunner = (cmd: string, args: readonly string[], input?: string) => Promise<CommandResult>;

const TIMEOUT_MS = 120_000;

/** Spawn a process, feed `input` on stdin, collect its whole output (no size cap: route dumps are big). */
export const spawnRunner: CommandRunner = (cmd, args, input) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failed: string | undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      failed = e.message;
    });
    child.stdin.on('error', () => {}); // EPIPE when the tool exits early; its exit code tells why
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString() + (failed ? `${failed}\n` : '') + (signal ? `killed by ${signal}\n` : '');
      resolve({ stdout: Buffer.concat(out).toString(), stderr, code: code ?? -1 });
    });
    child.stdin.end(input ?? '');
  });

/** Where commands run: a named namespace or the current one. */
export class Host {
  readonly netns: string | undefined;
  readonly runner: CommandRunner;

  constructor(netns: string | undefined, runner: CommandRunner = spawnRunner) {
    if (netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(netns)) throw new Error(`invalid network namespace name ${JSON.stringify(netns)}`);
    this.netns = netns;
    this.runner = runner;
  }

  /** `ip [-n NS] ARGS`. */
  ip(args: readonly string[], input?: string): Promise<CommandResult> {
    return this.runner('ip', this.netns ? ['-n', this.netns, ...args] : args, input);
  }

  /** `bridge [-n NS] ARGS`. */
  bridge(args: readonly string[], input?: string): Promise<CommandResult> {
    return this.runner('bridge', this.netns ? ['-n', this.netns, ...args] : args, input);
  }

  /** Any other command, inside the namespace (`ip netns exec NS CMD ...`). */
  exec(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
    return this.netns ? this.runner('ip', ['netns', 'exec', this.netns, cmd, ...args], input) : this.runner(cmd, args, input);
  }

  nft(args: readonly string[], input?: string): Promise<CommandResult> {
    return this.exec('nft', args, input);
  }

  /** Run and parse a JSON-printing command; throws with the tool's message when it fails. */
  async json<T>(what: string, result: Promise<CommandResult>): Promise<T> {
    const r = await result;
    if (r.code !== 0) throw new Error(`${what}: ${oneLine(r.stderr) || `exit ${r.code}`}`);
    const text = r.stdout.trim();
    if (text === '') return [] as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new Error(`${what}: unparsable JSON (${(err as Error).message})`);
    }
  }
}

/** A tool's multi-line message as one line. */
export function oneLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
}
