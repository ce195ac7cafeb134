// An exclusive lock between processes sharing a directory, made of a lock file. Node has no
// flock(2), so the lock is a file created atomically with link(2) (it appears with its content
// complete, or not at all) naming its holder: pid, pid namespace and process start time. A
// holder that died (no such process, a zombie, or the pid now belongs to a process that started
// at another time) left a stale lock, which the next contender removes. Removal is serialised by
// a second, short-lived guard file and re-checks the lock's content under the guard, so a
// contender never removes a lock someone else has just taken. (What remains: if a process dies
// while holding the guard — a few microseconds — two contenders may both clear the guard.)
// Holders in another pid namespace cannot be judged and are waited for.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

interface Holder {
  pid: number;
  pidns: string;
  start: string;
  token: string;
}

export interface FileLockOptions {
  /** Give up (throw) after waiting this long for a live holder. Default 30 s. */
  timeoutMs?: number;
  /** A lock file whose content cannot be read as a holder is stale once this old. Default 5 s. */
  unreadableStaleMs?: number;
}

let selfIdentity: { pidns: string; start: string } | undefined;

function identity(): { pidns: string; start: string } {
  if (!selfIdentity) {
    let pidns = `host:${os.hostname()}`;
    try {
      pidns = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      // not Linux: fall back to the host name
    }
    const stat = procStat(process.pid);
    selfIdentity = { pidns, start: typeof stat === 'object' ? stat.start : '' };
  }
  return selfIdentity;
}

/** State letter and start time (clock ticks since boot) of a process, from /proc/<pid>/stat. */
function procStat(pid: number): { state: string; start: string } | undefined | 'no-proc' {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return fs.existsSync('/proc/self/stat') ? undefined : 'no-proc';
    }
    return 'no-proc';
  }
  // "pid (comm) state ppid ..." — comm may contain spaces and parentheses; fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: fields[19] ?? '' };
}

function isAlive(holder: Holder): boolean {
  const self = identity();
  if (holder.pidns !== self.pidns) return true; // another pid namespace or host: cannot tell
  if (holder.pid === process.pid) return holder.start === self.start || holder.start === '';
  const stat = procStat(holder.pid);
  if (stat === 'no-proc') {
    try {
      process.kill(holder.pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  if (stat === undefined) return false;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return holder.start === '' || stat.start === holder.start;
}

type Reading = { kind: 'absent' } | { kind: 'holder'; holder: Holder; raw: string } | { kind: 'unreadable'; raw: string; ageMs: number };

async function readHolder(path: string): Promise<Reading> {
  let raw: string;
  let ageMs: number;
  try {
    const [text, st] = await Promise.all([fsp.readFile(path, 'utf8'), fsp.stat(path)]);
    raw = text;
    ageMs = Date.now() - st.mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw err;
  }
  try {
    const h = JSON.parse(raw) as Holder;
    if (typeof h.pid === 'number' && typeof h.pidns === 'string' && typeof h.start === 'string' && typeof h.token === 'string') {
      return { kind: 'holder', holder: h, raw };
    }
  } catch {
    // fall through
  }
  return { kind: 'unreadable', raw, ageMs };
}

function isStale(r: Reading, opts: Required<FileLockOptions>): boolean {
  if (r.kind === 'holder') return !isAlive(r.holder);
  if (r.kind === 'unreadable') return r.ageMs > opts.unreadableStaleMs;
  return false;
}

const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/** Creates `path` as a copy of `source`'s content, failing with EEXIST when it exists. */
async function createExclusive(source: string, path: string, content: string): Promise<void> {
  try {
    await fsp.link(source, path);
  } catch (err) {
    if (!LINK_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    // No hard links on this filesystem: create-exclusive then write. Readers may briefly see an
    // empty file, which counts as unreadable (stale only once old).
    const fh = await fsp.open(path, 'wx', 0o600);
    try {
      await fh.writeFile(content);
    } finally {
      await fh.close();
    }
  }
}

export class FileLock {
  readonly path: string;
  readonly #token: string;
  #released = false;

  private constructor(path: string, token: string) {
    this.path = path;
    this.#token = token;
  }

  static async acquire(path: string, options: FileLockOptions = {}): Promise<FileLock> {
    const opts: Required<FileLockOptions> = { timeoutMs: 30_000, unreadableStaleMs: 5_000, ...options };
    const token = randomBytes(12).toString('hex');
    const content = JSON.stringify({ pid: process.pid, ...identity(), token } satisfies Holder);
    const staged = `${path}.${token}.tmp`;
    await fsp.writeFile(staged, content);
    const deadline = Date.now() + opts.timeoutMs;
    let delay = 1;
    try {
      for (;;) {
        try {
          await createExclusive(staged, path, content);
          return new FileLock(path, token);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const reading = await readHolder(path);
        if (reading.kind === 'absent') continue;
        if (isStale(reading, opts)) {
          await breakStale(path, reading, staged, content, opts);
          continue;
        }
        if (Date.now() > deadline) {
          const who = reading.kind === 'holder' ? `pid ${reading.holder.pid}` : 'an unknown holder';
          throw new Error(`timed out after ${opts.timeoutMs} ms waiting for lock ${path} (held by ${who})`);
        }
        await sleep(delay + Math.random() * delay);
        delay = Math.min(delay * 2, 20);
      }
    } finally {
      await fsp.unlink(staged).catch(() => undefined);
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const reading = await readHolder(this.path);
    // Only remove the lock if it is still ours (nobody can take it from a live holder).
    if (reading.kind === 'holder' && reading.holder.token === this.#token) await fsp.unlink(this.path);
  }
}

/** Removes a stale lock, unless it changed hands meanwhile. */
async function breakStale(path: string, seen: Reading, staged: string, content: string, opts: Required<FileLockOptions>): Promise<void> {
  if (seen.kind === 'absent') return;
  const guard = `${path}.break`;
  try {
    await createExclusive(staged, guard, content);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const holder = await readHolder(guard);
    if (isStale(holder, opts)) await fsp.unlink(guard).catch(() => undefined);
    else await sleep(1);
    return;
  }
  try {
    const now = await readHolder(path);
    if (now.kind !== 'absent' && now.raw === seen.raw) await fsp.unlink(path).catch(() => undefined);
  } finally {
    const mine = await readHolder(guard);
    if (mine.kind !== 'absent' && mine.raw === content) await fsp.unlink(guard).catch(() => undefined);
  }
}
