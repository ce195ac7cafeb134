// The loop every weft piece runs its reconcile in: triggered by watch events and a resync timer,
// never two runs at once, and a trigger that arrives during a run causes exactly one more run (so
// bursts of events coalesce, and no change is missed). Errors are logged and counted, never thrown.
import type { Logger } from '../log.ts';
import type { WeftMetrics } from '../observe/metrics.ts';

/** A reconcile returns `undefined` while its inputs are incomplete, else what it changed. */
export type ReconcileFn = () => Promise<{ changed: number } | undefined>;

export class ReconcileLoop {
  private readonly piece: string;
  private readonly fn: ReconcileFn;
  private readonly log: Logger;
  private readonly metrics: WeftMetrics | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** Set after the first run that completed with its inputs present (readiness). */
  reconciledOnce = false;
  /** Why the last run failed (its error), or null when it completed. */
  lastError: string | null = null;

  constructor(piece: string, fn: ReconcileFn, opts: { log: Logger; metrics?: WeftMetrics | undefined }) {
    this.piece = piece;
    this.fn = fn;
    this.log = opts.log;
    this.metrics = opts.metrics;
  }

  trigger(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const result = await (this.metrics ? this.metrics.timeReconcile(this.piece, this.fn) : this.fn());
          if (result) this.reconciledOnce = true;
          this.lastError = null;
        } catch (err) {
          this.lastError = (err as Error).message ?? String(err);
          this.log.error(`reconcile: ${(err as Error).stack ?? err}`);
        }
      } while (this.again && !this.stopped);
      this.running = null;
    })();
    return this.running;
  }

  /** No new runs; resolves when the current one (if any) is over. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}
