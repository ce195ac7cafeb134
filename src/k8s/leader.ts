// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// holder renews `renewTime` every leaseDuration/3; a candidate takes the Lease when it is free
// (no holder) or when the record it last observed has not changed for a whole lease duration
// (measured on its own clock, so clock skew between machines does not matter); every write is a
// compare-and-swap on resourceVersion, so two candidates cannot both win. A leader that could not
// renew for renewDeadline (2/3 of the duration, before anyone may take over) stops leading, on a
// timer of its own: a slow or hanging API request must not keep it leading past the deadline (the
// loop only learns the outcome of an attempt when the request returns). Renewals count from when
// the attempt started, the earliest the others can have seen them. No attempt waits longer than
// renewDeadline for the API. On stop, the leader releases the Lease (empty holder), so a standby
// takes over at its next try instead of waiting for expiry.
//
// Used for the gateway's active/passive replicas: only the leader programs tunnels and NAT.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { toStoreError } from './store.ts';
import { isStoreError } from '../store/types.ts';
import type { Logger } from '../log.ts';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Name of the Lease (one per elected role, e.g. "weft-gateway"). */
  name: string;
  /** This candidate (pod name, plus something unique per process). */
  identity: string;
  /** How long a Lease holds without renewal. Default 15 s; whole seconds on the Lease (at least 1). */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long stops leading. Default 2/3 of the duration. */
  renewDeadlineMs?: number;
  /** The leader renews this often. Default 1/3 of the duration. */
  renewPeriodMs?: number;
  /** A candidate tries this often (with 20% jitter). Default 1/5 of the duration. */
  retryPeriodMs?: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  /** The holder as last observed changed (undefined: nobody holds the Lease). */
  onNewLeader?(identity: string | undefined): void;
  log?: Logger;
}

type Attempt = { ok: true } | { ok: false; heldBy: string | undefined };

const microNow = () => new V1MicroTime();

export class LeaderElector {
  readonly #o: Required<Pick<LeaderElectorOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'renewPeriodMs' | 'retryPeriodMs'>> & LeaderElectorOptions;
  readonly #api: CoordinationV1Api;
  #leading = false;
  #running = false;
  #loop: Promise<void> | null = null;
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  /** The Lease spec as last read, and when (our clock) it last changed. */
  #observed: string | undefined;
  #observedAt = 0;
  #leader: string | undefined;
  #lastRenew = 0;
  /** Fires renewDeadline after the last renewal began: stop leading unless renewed before. */
  #deadline: NodeJS.Timeout | null = null;

  constructor(opts: LeaderElectorOptions) {
    const lease = opts.leaseDurationMs ?? 15_000;
    if (!(lease >= 1000)) throw new RangeError('leaseDurationMs must be at least 1000 (the Lease holds whole seconds)');
    this.#o = {
      ...opts,
      leaseDurationMs: lease,
      renewDeadlineMs: opts.renewDeadlineMs ?? Math.round((lease * 2) / 3),
      renewPeriodMs: opts.renewPeriodMs ?? Math.round(lease / 3),
      retryPeriodMs: opts.retryPeriodMs ?? Math.round(lease / 5),
    };
    if (this.#o.renewDeadlineMs >= lease) throw new RangeError('renewDeadlineMs must be shorter than the lease duration');
    this.#api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** The holder as last observed (undefined: none). */
  get leader(): string | undefined {
    return this.#leader;
  }

  get identity(): string {
    return this.#o.identity;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /**
   * Stop campaigning. A leader releases the Lease (unless `release: false`, which behaves like a
   * crash: the standby waits for expiry) and is told onStoppedLeading.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake();
    await this.#loop;
    this.#clearDeadline();
    if (this.#leading) {
      if (opts.release !== false) {
        try {
          await this.#release();
        } catch (err) {
          this.#o.log?.error(`leader election ${this.#o.name}: release failed: ${(err as Error).message}`);
        }
      }
      this.#setLeading(false);
    }
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const started = Date.now();
      let attempt: Attempt;
      try {
        attempt = await this.#bounded(this.#tryAcquireOrRenew());
      } catch (err) {
        this.#o.log?.error(`leader election ${this.#o.name}: ${(err as Error).message}`);
        attempt = { ok: false, heldBy: this.#leader };
      }
      if (!this.#running) return;
      // A success that took the whole renew deadline came too late to count as a renewal.
      if (attempt.ok && Date.now() - started < this.#o.renewDeadlineMs) {
        this.#lastRenew = started;
        this.#armDeadline();
        this.#setLeading(true);
        await this.#pause(this.#o.renewPeriodMs);
        continue;
      }
      if (this.#leading) {
        const heldBy = attempt.ok ? this.#o.identity : attempt.heldBy;
        const lost = heldBy !== undefined && heldBy !== this.#o.identity;
        if (lost || Date.now() - this.#lastRenew >= this.#o.renewDeadlineMs) {
          this.#o.log?.error(`leader election ${this.#o.name}: ${lost ? `lost the lease to ${heldBy}` : 'could not renew the lease in time'}; stepping down`);
          this.#setLeading(false);
        }
      }
      const retry = this.#leading ? Math.min(this.#o.retryPeriodMs, this.#o.renewPeriodMs) : this.#o.retryPeriodMs;
      await this.#pause(retry * (1 + Math.random() * 0.2));
    }
  }

  /** The attempt, or a rejection once renewDeadline has passed (the request may still finish). */
  #bounded<T>(attempt: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the API within ${this.#o.renewDeadlineMs} ms`)), this.#o.renewDeadlineMs);
    });
    return Promise.race([attempt, timeout]).finally(() => clearTimeout(timer));
  }

  #armDeadline(): void {
    this.#clearDeadline();
    const left = this.#lastRenew + this.#o.renewDeadlineMs - Date.now();
    this.#deadline = setTimeout(() => {
      this.#deadline = null;
      if (!this.#leading || Date.now() - this.#lastRenew < this.#o.renewDeadlineMs) return;
      this.#o.log?.error(`leader election ${this.#o.name}: could not renew the lease in time; stepping down`);
      this.#setLeading(false);
    }, Math.max(0, left));
  }

  #clearDeadline(): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = null;
  }

  #setLeading(leading: boolean): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    try {
      if (leading) this.#o.onStartedLeading();
      else this.#o.onStoppedLeading();
    } catch (err) {
      this.#o.log?.error(`leader election ${this.#o.name}: callback failed: ${(err as Error).message}`);
    }
  }

  #observe(spec: V1LeaseSpec | undefined, now: number): void {
    const record = JSON.stringify([spec?.holderIdentity ?? '', String(spec?.renewTime ?? ''), String(spec?.acquireTime ?? ''), spec?.leaseTransitions ?? 0, spec?.leaseDurationSeconds ?? 0]);
    if (record !== this.#observed) {
      this.#observed = record;
      this.#observedAt = now;
    }
    const holder = spec?.holderIdentity || undefined;
    if (holder !== this.#leader) {
      this.#leader = holder;
      this.#o.onNewLeader?.(holder);
    }
  }

  #seconds(): number {
    return Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000));
  }

  async #tryAcquireOrRenew(): Promise<Attempt> {
    const now = Date.now();
    const { namespace, name, identity } = this.#o;
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      const e = toStoreError(err);
      if (!isStoreError(e, 'NotFound')) throw e;
      const spec: V1LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: this.#seconds(), acquireTime: microNow(), renewTime: microNow(), leaseTransitions: 0 };
      try {
        const created = await this.#api.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } });
        this.#observe(created.spec, now);
        return { ok: true };
      } catch (err2) {
        const e2 = toStoreError(err2);
        if (isStoreError(e2, 'AlreadyExists') || isStoreError(e2, 'Conflict')) return { ok: false, heldBy: undefined };
        throw e2;
      }
    }
    const spec = lease.spec ?? {};
    this.#observe(spec, now);
    const holder = spec.holderIdentity || undefined;
    const durationMs = (spec.leaseDurationSeconds ?? this.#seconds()) * 1000;
    if (holder !== undefined && holder !== identity && this.#observedAt + durationMs > now) return { ok: false, heldBy: holder };

    const mine = holder === identity;
    const next: V1LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: this.#seconds(),
      acquireTime: mine && spec.acquireTime ? new V1MicroTime(spec.acquireTime) : microNow(),
      renewTime: microNow(),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      const updated = await this.#api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: next } });
      this.#observe(updated.spec, now);
      if (!mine) this.#o.log?.verbose(`leader election ${name}: ${identity} acquired the lease${holder ? ` from ${holder} (expired)` : ''}`);
      return { ok: true };
    } catch (err) {
      const e = toStoreError(err);
      if (isStoreError(e, 'Conflict')) return { ok: false, heldBy: holder }; // someone wrote first
      throw e;
    }
  }

  /** Give the Lease up: empty holder, so a standby takes it at its next try. */
  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#o;
    const lease = await this.#api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    const spec: V1LeaseSpec = {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: microNow(),
      renewTime: microNow(),
      leaseTransitions: lease.spec.leaseTransitions ?? 0,
    };
    await this.#api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec } });
    this.#o.log?.verbose(`leader election ${name}: ${identity} released the lease`);
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = null;
        resolve();
      }, ms);
      this.#sleep = { timer, wake: resolve };
    });
  }

  #wake(): void {
    if (!this.#sleep) return;
    clearTimeout(this.#sleep.timer);
    const w = this.#sleep.wake;
    this.#sleep = null;
    w();
  }
}
