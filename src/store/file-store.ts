// The embedded, file-backed store for the lab and single-machine use: several processes (one
// controller, agent and gateway per piece) read and write one state directory concurrently.
//
// Layout: `<dir>/journal/*.jsonl` (see journal.ts) and `<dir>/lock`. The journal is the single
// source of truth; each process keeps the state it implies in memory and follows the journal.
// Why a journal rather than one file per object:
// - watch needs every event, in revision order, across processes and across restarts; with
//   per-object files a poller sees only the latest state of each file (intermediate changes and
//   deletions vanish) and a separate event log would have to be kept consistent with them;
// - a list is a consistent snapshot at exactly one revision, so list-then-watch from its
//   resourceVersion neither misses nor repeats events (the informer pattern);
// - a write is one appended line made durable with one fdatasync, atomic by construction: a
//   crash leaves either the old state or the new, and the torn tail is cut off by the next writer.
// The cost: every process holds the whole state in memory, and the journal needs compaction
// (a new file with a snapshot, written atomically, every `historyLimit` writes or so).
//
// Writes: take the directory lock, catch up with the journal, plan the change against the
// current state (objects.ts), append it, fdatasync, release. Reads: catch up, then answer from
// memory (no lock; only complete lines are read). Watches: the journal directory is followed
// with fs.watch plus a poll every `pollIntervalMs`, and events are delivered from the in-memory
// history in revision order, once each.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../log.ts';
import type { Logger } from '../log.ts';
import { FileLock } from './file-lock.ts';
import {
  appendDurably,
  decodeRecord,
  encodeRecord,
  JOURNAL_FORMAT,
  JournalCorruptError,
  journalFileName,
  readLines,
  scanJournalDir,
  truncateDurably,
  writeFileAtomic,
} from './journal.ts';
import type { CommitRecord } from './journal.ts';
import { checkKind, checkName, checkNamespace, defaultMinting, keyOf, parseResourceVersion, planApply, planDelete, planStatus, validateApply } from './objects.ts';
import type { Minting, Plan, PlannedEvent } from './objects.ts';
import { StoreState } from './state.ts';
import { DEFAULT_HISTORY_LIMIT } from './types.ts';
import type { ApplyInput, KindOptions, KindRegistry, ListOptions, Resource, Store, StoreOptions, Watch, WatchOptions } from './types.ts';
import { openWatch } from './watch.ts';

export interface FileStoreOptions extends StoreOptions {
  /** How often watches poll the journal, besides fs.watch notifications. Default 200 ms. */
  pollIntervalMs?: number;
  /** Follow the journal with fs.watch as well as polling. Default true. */
  fsWatch?: boolean;
  /** How long a write waits for the directory lock before failing. Default 30 s. */
  lockTimeoutMs?: number;
  minting?: Minting;
  logger?: Logger;
}

interface OpenJournal {
  base: number;
  path: string;
  reader: FileHandle;
  writer: FileHandle | undefined;
  /** End of the last complete line applied. */
  offset: number;
  /** Events in this file after its snapshot (compaction trigger). */
  events: number;
}

export class FileStore implements Store, KindRegistry {
  readonly dir: string;
  readonly #journalDir: string;
  readonly #lockPath: string;
  readonly #state: StoreState;
  readonly #kinds = new Map<string, KindOptions>();
  readonly #minting: Minting;
  readonly #pollIntervalMs: number;
  readonly #lockTimeoutMs: number;
  readonly #useFsWatch: boolean;
  readonly #logger: Logger;
  #journal: OpenJournal | undefined;
  #serialTail: Promise<unknown> = Promise.resolve();
  #madeDirs = false;
  /** The journal has been read at least once (the state in memory is a real starting point). */
  #loaded = false;
  #closed = false;
  #watchers = 0;
  #timer: NodeJS.Timeout | undefined;
  #fsWatcher: fs.FSWatcher | undefined;
  #syncScheduled = false;

  constructor(dir: string, opts: FileStoreOptions = {}) {
    this.dir = path.resolve(dir);
    this.#journalDir = path.join(this.dir, 'journal');
    this.#lockPath = path.join(this.dir, 'lock');
    this.#state = new StoreState(opts.historyLimit ?? DEFAULT_HISTORY_LIMIT);
    this.#minting = opts.minting ?? defaultMinting;
    this.#pollIntervalMs = opts.pollIntervalMs ?? 200;
    this.#lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
    this.#useFsWatch = opts.fsWatch ?? true;
    this.#logger = opts.logger ?? createLogger('error', `store ${this.dir}: `);
  }

  /** A store that has read the directory already (so a corrupt journal fails here). */
  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
    const store = new FileStore(dir, opts);
    try {
      await store.#sync();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  registerKind(kind: string, opts: KindOptions): void {
    this.#kinds.set(checkKind(kind), opts);
  }

  async get<R extends Resource>(kind: string, name: string, namespace?: string): Promise<R | undefined> {
    await this.#sync();
    const obj = this.#state.get(kind, name, namespace || undefined);
    return obj === undefined ? undefined : (structuredClone(obj) as R);
  }

  async list<R extends Resource>(kind: string, opts: ListOptions = {}): Promise<{ items: R[]; resourceVersion: string }> {
    await this.#sync();
    return { items: structuredClone(this.#state.list(kind, { ...opts, namespace: opts.namespace || undefined })) as R[], resourceVersion: String(this.#state.revision) };
  }

  watch<R extends Resource>(kind: string, opts: WatchOptions): Watch<R> {
    this.#checkOpen();
    const rv = parseResourceVersion(opts.resourceVersion);
    return openWatch<R>(
      {
        history: this.#state.history,
        prepare: async () => {
          // A store closed meanwhile ends the watch (the history is closed) rather than failing it.
          if (!this.#closed) await this.#sync().catch((err: unknown) => { if (!this.#closed) throw err; });
        },
        // Before the journal was first read there is no state to start from.
        canStartNow: () => this.#loaded,
        snapshot: (k, ns) => this.#state.list(k, ns === undefined ? {} : { namespace: ns }),
        started: () => this.#watchStarted(),
        stopped: () => this.#watchStopped(),
      },
      { kind, namespace: opts.namespace || undefined, fromRv: rv === 0 ? undefined : rv },
    );
  }

  async apply<R extends Resource>(obj: ApplyInput): Promise<R> {
    this.#checkOpen();
    const input = validateApply(obj, this.#kinds);
    return (await this.#write(() => planApply(this.#state.get(input.kind, input.name, input.namespace), input, this.#state.revisions(), this.#minting))) as R;
  }

  async updateStatus<R extends Resource>(kind: string, name: string, status: unknown, opts: { namespace?: string; resourceVersion?: string } = {}): Promise<R> {
    this.#checkOpen();
    const target = { kind: checkKind(kind), name: checkName(name), namespace: checkNamespace(opts.namespace), resourceVersion: opts.resourceVersion || undefined };
    return (await this.#write(() => planStatus(this.#state.get(kind, name, target.namespace), target, status, this.#state.revisions()))) as R;
  }

  async delete(kind: string, name: string, opts: { namespace?: string } = {}): Promise<void> {
    this.#checkOpen();
    const target = { kind: checkKind(kind), name: checkName(name), namespace: checkNamespace(opts.namespace) };
    await this.#write(() => planDelete(this.#state.get(kind, name, target.namespace), target, this.#state.revisions(), this.#minting));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopFollowing();
    this.#state.history.close();
    await this.#serialTail;
    await this.#closeJournal();
  }

  // -------------------------------------------------------------------------------------------
  // Serial section: catch-ups and writes of this instance run one at a time.

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serialTail.then(() => {
      this.#checkOpen();
      return fn();
    });
    this.#serialTail = run.catch(() => undefined);
    return run;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error(`store ${this.dir} is closed`);
  }

  #sync(): Promise<void> {
    return this.#serial(() => this.#catchUp(false));
  }

  #write(plan: () => Plan): Promise<Resource> {
    return this.#serial(async () => {
      await this.#makeDirs();
      // The lock is taken before reading the journal: the plan must see the latest state.
      const lock = await FileLock.acquire(this.#lockPath, { timeoutMs: this.#lockTimeoutMs });
      try {
        await this.#catchUp(true);
        const p = plan();
        if (p.events.length > 0) {
          await this.#append(p.events);
          await this.#maybeCompact();
        }
        return structuredClone(p.result);
      } finally {
        await lock.release();
      }
    });
  }

  async #makeDirs(): Promise<void> {
    if (this.#madeDirs) return;
    // The journal holds Secrets (preshared keys): only the owner reads it, whatever the umask.
    await fsp.mkdir(this.#journalDir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.#journalDir, 0o700);
    this.#madeDirs = true;
  }

  // -------------------------------------------------------------------------------------------
  // Following the journal

  /** Applies everything committed to the journal since the last call. With the lock held, also
   * creates the journal, cuts a torn tail and removes leftover temp files. */
  async #catchUp(locked: boolean): Promise<void> {
    await this.#makeDirs();
    for (;;) {
      // List before reading to the end: a newer file is only created after the last commit to
      // the older one, so once it is listed, reading the older file to its end misses nothing.
      const { bases, temps } = await scanJournalDir(this.#journalDir);
      if (locked) {
        for (const t of temps) await fsp.unlink(path.join(this.#journalDir, t)).catch(() => undefined);
      }
      if (!this.#journal) {
        const latest = bases.at(-1);
        if (latest === undefined) {
          if (!locked) {
            this.#loaded = true; // empty: revision 0
            return;
          }
          await writeFileAtomic(this.#journalDir, journalFileName(0), encodeRecord({ snapshot: { format: JOURNAL_FORMAT, rv: '0', objects: [] } }));
          continue;
        }
        if (!(await this.#openJournal(latest))) continue;
      }
      await this.#readJournal(locked);
      const next = bases.find((b) => b > this.#journal!.base);
      if (next === undefined) {
        this.#loaded = true;
        return;
      }
      await this.#openJournal(next); // when it is gone already, the next listing finds its successor
    }
  }

  /** Switches to journal file `base`. Returns false when it no longer exists. */
  async #openJournal(base: number): Promise<boolean> {
    const file = path.join(this.#journalDir, journalFileName(base));
    let reader: FileHandle;
    try {
      reader = await fsp.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    try {
      const { lines } = await readLines(reader, 0);
      const first = lines[0];
      if (!first) throw new JournalCorruptError(file, 'no snapshot line');
      const rec = decodeRecord(first.text, `${file}:0`);
      if (!('snapshot' in rec)) throw new JournalCorruptError(file, 'first line is not a snapshot');
      const rv = parseResourceVersion(rec.snapshot.rv);
      if (rv > this.#state.revision) {
        // First load, or this process fell so far behind that the events between its revision
        // and this snapshot were compacted away: start over from the snapshot; watches that had
        // not seen those events end with Gone.
        if (this.#loaded) this.#logger.verbose(`journal compacted past revision ${this.#state.revision}; reloading at ${rv}`);
        this.#state.reset(rv, rec.snapshot.objects);
      }
      await this.#closeJournal();
      this.#journal = { base, path: file, reader, writer: undefined, offset: first.end, events: 0 };
      return true;
    } catch (err) {
      await reader.close();
      throw err;
    }
  }

  async #readJournal(locked: boolean): Promise<void> {
    const j = this.#journal!;
    const { lines, partialBytes } = await readLines(j.reader, j.offset);
    for (const line of lines) {
      const where = `${j.path}:${line.start}`;
      const rec = decodeRecord(line.text, where);
      if (!('events' in rec)) throw new JournalCorruptError(where, 'snapshot after the first line');
      for (const event of rec.events) {
        const rv = Number(event.object.metadata.resourceVersion);
        if (rv <= this.#state.revision) continue; // already known (switched from an older file)
        if (rv !== this.#state.revision + 1) throw new JournalCorruptError(where, `revision ${rv} does not follow ${this.#state.revision}`);
        this.#state.record(event);
      }
      j.events += rec.events.length;
      j.offset = line.end;
    }
    if (partialBytes > 0 && locked) {
      // No writer is active while we hold the lock: this is a write whose process died before
      // finishing it. It was never acknowledged; cut it off before appending after it.
      this.#logger.error(`cutting a torn write (${partialBytes} bytes) off the end of ${j.path}`);
      await truncateDurably(j.path, j.offset);
    }
  }

  async #append(events: PlannedEvent[]): Promise<void> {
    const j = this.#journal!;
    const record: CommitRecord = { rv: events.at(-1)!.object.metadata.resourceVersion, events };
    const data = Buffer.from(encodeRecord(record));
    j.writer ??= await fsp.open(j.path, 'a', 0o600);
    await appendDurably(j.writer, data);
    j.offset += data.length;
    j.events += events.length;
    for (const event of events) this.#state.record(event);
  }

  /** When the current file holds more than twice the retained history, starts a new file whose
   * snapshot is old enough that the last `historyLimit` events (at least) follow it. */
  async #maybeCompact(): Promise<void> {
    const j = this.#journal!;
    const keep = this.#state.history.limit;
    if (j.events <= 2 * keep) return;
    const { lines } = await readLines(j.reader, 0);
    const [first, ...rest] = lines;
    if (!first) return;
    const head = decodeRecord(first.text, `${j.path}:0`);
    if (!('snapshot' in head)) return;
    const commits = rest.map((l) => decodeRecord(l.text, `${j.path}:${l.start}`) as CommitRecord);
    let split = commits.length;
    for (let kept = 0; split > 0 && kept < keep; ) kept += commits[--split]!.events.length;
    if (split === 0) return;
    const base = Number(commits[split]!.events[0]!.object.metadata.resourceVersion) - 1;
    if (base <= j.base) return;
    const objects = new Map<string, Resource>();
    for (const obj of head.snapshot.objects) objects.set(keyOf(obj), obj);
    for (const commit of commits.slice(0, split)) {
      for (const { type, object } of commit.events) {
        if (type === 'DELETED') objects.delete(keyOf(object));
        else objects.set(keyOf(object), object);
      }
    }
    const snapshot = [...objects.values()].sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
    const content = encodeRecord({ snapshot: { format: JOURNAL_FORMAT, rv: String(base), objects: snapshot } })
      + rest.slice(split).map((l) => `${l.text}\n`).join('');
    await writeFileAtomic(this.#journalDir, journalFileName(base), content);
    // Keep the file just superseded (readers part-way through it move on to the new one); older
    // ones have been superseded twice and go.
    const { bases } = await scanJournalDir(this.#journalDir);
    for (const b of bases) {
      if (b < j.base) await fsp.unlink(path.join(this.#journalDir, journalFileName(b))).catch(() => undefined);
    }
  }

  async #closeJournal(): Promise<void> {
    const j = this.#journal;
    if (!j) return;
    this.#journal = undefined;
    await j.reader.close().catch(() => undefined);
    await j.writer?.close().catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Watch support: follow the journal while somebody watches.

  #watchStarted(): void {
    if (++this.#watchers === 1 && !this.#closed) this.#startFollowing();
  }

  #watchStopped(): void {
    if (--this.#watchers === 0) this.#stopFollowing();
  }

  #startFollowing(): void {
    this.#timer = setInterval(() => this.#scheduleSync(), this.#pollIntervalMs);
    if (!this.#useFsWatch) return;
    try {
      fs.mkdirSync(this.#journalDir, { recursive: true, mode: 0o700 });
      const watcher = fs.watch(this.#journalDir, { persistent: false }, () => this.#scheduleSync());
      watcher.on('error', () => {
        // inotify gone (directory removed, watch limit): the poll still runs.
        watcher.close();
        if (this.#fsWatcher === watcher) this.#fsWatcher = undefined;
      });
      this.#fsWatcher = watcher;
    } catch (err) {
      this.#logger.verbose(`fs.watch unavailable (${(err as Error).message}); polling only`);
    }
  }

  #stopFollowing(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#fsWatcher?.close();
    this.#fsWatcher = undefined;
  }

  #scheduleSync(): void {
    if (this.#syncScheduled || this.#closed) return;
    this.#syncScheduled = true;
    this.#serial(async () => {
      this.#syncScheduled = false;
      await this.#catchUp(false);
    }).catch((err: unknown) => {
      this.#syncScheduled = false;
      if (this.#closed) return;
      this.#logger.error(`following the journal failed: ${(err as Error).message}`);
      // Corruption does not go away by retrying: end the watches with it. Anything else (an
      // I/O error, too many open files) is retried on the next poll.
      if (err instanceof JournalCorruptError) this.#state.history.fail(err);
    });
  }
}
