// Many changes in one process: `ip -force -batch -` (or `bridge`) reads one command per line and,
// with -force, carries on past a refused line, printing the refusal followed by
// "Command failed -:<line>". A line iproute2 cannot even parse makes it exit on the spot, so input
// is validated before it gets here; should it happen anyway, every line after the last one that
// reported is counted as not applied.
import type { CommandResult } from './exec.ts';

export interface BatchOp {
  /** The batch line, e.g. "route replace 10.70.0.0/16 table 1800 proto 250 dev weft-vx". */
  line: string;
  /** The report line when it succeeds, e.g. "route replace 10.70.0.0/16 table 1800". */
  what: string;
}

export interface BatchOutcome {
  done: string[];
  errors: string[];
}

export interface BatchErrors {
  /** 1-based line number → the tool's message for it. */
  byLine: Map<number, string>;
  /** Messages after the last "Command failed" line (a fatal error, or warnings). */
  trailing: string;
}

const FAILED = /^Command failed (?:.*):(\d+)\s*$/;

export function parseBatchErrors(stderr: string): BatchErrors {
  const byLine = new Map<number, string>();
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = FAILED.exec(line);
    if (m) {
      byLine.set(Number(m[1]), pending.join('; ') || 'failed');
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { byLine, trailing: pending.join('; ') };
}

/** Match a batch run's result to its ops. */
export function batchOutcome(ops: readonly BatchOp[], result: CommandResult): BatchOutcome {
  const out: BatchOutcome = { done: [], errors: [] };
  const { byLine, trailing } = parseBatchErrors(result.stderr);
  let lastReported = 0;
  for (const n of byLine.keys()) lastReported = Math.max(lastReported, n);
  const aborted = result.code !== 0 && (trailing !== '' || byLine.size === 0);
  const why = trailing || `exit ${result.code}`;
  ops.forEach((op, i) => {
    const n = i + 1;
    const msg = byLine.get(n);
    if (msg !== undefined) out.errors.push(`${op.what}: ${msg}`);
    else if (aborted && n > lastReported) out.errors.push(`${op.what}: not applied (${why})`);
    else out.done.push(op.what);
  });
  return out;
}

export async function runBatch(
  run: (args: readonly string[], input: string) => Promise<CommandResult>,
  ops: readonly BatchOp[],
  globalArgs: readonly string[] = [],
): Promise<BatchOutcome> {
  if (ops.length === 0) return { done: [], errors: [] };
  const input = ops.map((o) => o.line).join('\n') + '\n';
  const result = await run([...globalArgs, '-force', '-batch', '-'], input);
  return batchOutcome(ops, result);
}
