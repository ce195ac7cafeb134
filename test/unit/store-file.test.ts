// FileStore beyond the shared contract: durability across instances and restarts, several
// instances and real child processes on one directory (watch order, no lost or repeated events,
// no lost updates under compare-and-swap), torn writes and leftover temp files, compaction, and
// the directory lock (live holders block, dead holders' locks are broken).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { FileLock } from '../../src/store/file-lock.ts';
import { FileStore } from '../../src/store/file-store.ts';
import type { FileStoreOptions } from '../../src/store/file-store.ts';
import { StoreError } from '../../src/store/types.ts';
import type { Resource, Watch, WatchEvent } from '../../src/store/types.ts';

const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'weft-store-file-'));
after(() => fsp.rm(root, { recursive: true, force: true }));

const srcStore = path.resolve(import.meta.dirname, '../../src/store');
const storeUrl = pathToFileURL(path.join(srcStore, 'file-store.ts')).href;
const lockUrl = pathToFileURL(path.join(srcStore, 'file-lock.ts')).href;

// Child process programs (each a separate process with its own FileStore on the directory).
const scripts = {
  writer: `import { FileStore } from ${JSON.stringify(storeUrl)};
const [dir, prefix, count] = process.argv.slice(2);
const store = await FileStore.open(dir);
for (let i = 0; i < Number(count); i++) {
  await store.apply({ kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name: prefix + '-' + i }, spec: { i, by: prefix } });
}
await store.close();
`,
  cas: `import { FileStore } from ${JSON.stringify(storeUrl)};
const [dir, count] = process.argv.slice(2);
const store = await FileStore.open(dir);
let conflicts = 0;
for (let i = 0; i < Number(count); i++) {
  for (;;) {
    const cur = await store.get('Counter', 'c');
    try {
      await store.apply({ kind: 'Counter', apiVersion: 'test.weft.dev/v1', metadata: { name: 'c', resourceVersion: cur.metadata.resourceVersion }, spec: { value: cur.spec.value + 1 } });
      break;
    } catch (err) {
      if (err.code !== 'Conflict') throw err;
      conflicts++;
    }
  }
}
console.log('conflicts ' + conflicts);
await store.close();
`,
  holder: `import { FileLock } from ${JSON.stringify(lockUrl)};
const lock = await FileLock.acquire(process.argv[2]);
console.log('locked');
process.stdin.once('data', async () => {
  await lock.release();
  console.log('released');
  process.exit(0);
});
`,
};
const scriptPath = (name: keyof typeof scripts) => path.join(root, `${name}.mjs`);
for (const [name, text] of Object.entries(scripts)) await fsp.writeFile(path.join(root, `${name}.mjs`), text);

interface Child {
  proc: ChildProcess;
  /** Resolves with the next stdout line. */
  line(): Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function run(script: keyof typeof scripts, args: string[]): Child {
  const proc = spawn(process.execPath, [scriptPath(script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const lines = readline.createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  return {
    proc,
    async line() {
      const r = await lines.next();
      if (r.done) throw new Error(`child ${script} ended: ${stderr}`);
      return r.value;
    },
    exit,
  };
}

async function succeeded(child: Child): Promise<void> {
  const { code, signal, stderr } = await child.exit;
  assert.equal(code, 0, `child failed (${signal ?? code}): ${stderr}`);
}

let dirs = 0;
const newDir = () => path.join(root, `d${dirs++}`);

const opened: FileStore[] = [];
after(async () => {
  for (const s of opened) await s.close();
});
async function open(dir: string, opts?: FileStoreOptions): Promise<FileStore> {
  const s = await FileStore.open(dir, opts);
  opened.push(s);
  return s;
}

function widget(name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}) {
  return { kind: 'Widget', apiVersion: 'test.weft.dev/v1', metadata: { name, ...meta }, spec };
}

async function take(w: Watch<Resource>, n: number): Promise<Array<WatchEvent<Resource> & { type: 'ADDED' | 'MODIFIED' | 'DELETED' }>> {
  const it = w.events[Symbol.asyncIterator]();
  const out: Array<WatchEvent<Resource> & { type: 'ADDED' | 'MODIFIED' | 'DELETED' }> = [];
  while (out.length < n) {
    const r = await it.next();
    assert.equal(r.done, false, 'watch ended early');
    if (r.value.type !== 'BOOKMARK') out.push(r.value);
  }
  return out;
}

const rvs = (events: Array<{ object: Resource }>) => events.map((e) => Number(e.object.metadata.resourceVersion));
const consecutive = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const isGone = (err: unknown) => err instanceof StoreError && err.code === 'Gone';

describe('FileStore', { timeout: 120_000 }, () => {
  it('persists every write: a new instance sees the same objects, revision and history', async () => {
    const dir = newDir();
    const a = await open(dir);
    await a.apply(widget('one', { n: 1 }, { labels: { app: 'x' } }));
    await a.apply(widget('two', { n: 2 }, { namespace: 'ns' }));
    await a.updateStatus('Widget', 'one', { phase: 'Ready' });
    await a.apply(widget('held', { n: 3 }, { finalizers: ['test.weft.dev/keep'] }));
    await a.delete('Widget', 'held');
    await a.apply(widget('gone', { n: 4 }));
    await a.delete('Widget', 'gone');
    const before = await a.list('Widget');
    await a.close();

    const b = await open(dir);
    const afterRestart = await b.list('Widget');
    assert.deepEqual(afterRestart, before);
    assert.equal(afterRestart.resourceVersion, '7');
    assert.ok((await b.get('Widget', 'held'))?.metadata.deletionTimestamp, 'the terminating object survived the restart');
    const replay = await take(b.watch('Widget', { resourceVersion: '1' }), 6);
    assert.deepEqual(replay.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED two', 'MODIFIED one', 'ADDED held', 'MODIFIED held', 'ADDED gone', 'DELETED gone']);
    assert.deepEqual(rvs(replay), [2, 3, 4, 5, 6, 7]);
    const next = await b.apply(widget('three', { n: 5 }));
    assert.equal(next.metadata.resourceVersion, '8', 'the revision counter continues');
    const lazy = new FileStore(dir); // not opened explicitly: loads on first use
    opened.push(lazy);
    assert.equal((await lazy.get('Widget', 'three'))?.metadata.resourceVersion, '8');
  });

  it('lets several instances share a directory: reads see other writers, watches see every event once, in order', async () => {
    const dir = newDir();
    const a = await open(dir);
    const b = await open(dir);
    const watcher = await open(dir);
    const poller = await open(dir, { fsWatch: false, pollIntervalMs: 20 });

    await b.apply(widget('from-b', { n: 0 }));
    assert.equal((await a.get('Widget', 'from-b'))?.metadata.resourceVersion, '1', 'a write is visible to every instance once it resolved');
    await a.apply(widget('from-b', { n: 1 }), );
    assert.deepEqual((await b.get('Widget', 'from-b'))?.spec, { n: 1 });

    const start = (await watcher.list('Widget')).resourceVersion;
    const w1 = watcher.watch('Widget', { resourceVersion: start });
    const w2 = poller.watch('Widget', { resourceVersion: start });
    const n = 12;
    await Promise.all([
      (async () => { for (let i = 0; i < n; i++) await a.apply(widget(`a-${i}`, { i })); })(),
      (async () => { for (let i = 0; i < n; i++) await b.apply(widget(`b-${i}`, { i })); })(),
    ]);
    for (const w of [w1, w2]) {
      const events = await take(w, 2 * n);
      assert.deepEqual(rvs(events), consecutive(Number(start) + 1, 2 * n));
      const names = events.map((e) => e.object.metadata.name);
      assert.equal(new Set(names).size, 2 * n);
      for (const p of ['a', 'b']) {
        assert.deepEqual(names.filter((x) => x.startsWith(`${p}-`)), consecutive(0, n).map((i) => `${p}-${i}`), `${p}'s writes in the order made`);
      }
    }
    // Nothing more is pending: the next event is the next write.
    await b.apply(widget('sentinel', {}));
    for (const w of [w1, w2]) {
      const [ev] = await take(w, 1);
      assert.equal(ev!.object.metadata.name, 'sentinel');
      w.stop();
    }
  });

  it('sees a child process writing through its own store, interleaved with local writes, in revision order', async () => {
    const dir = newDir();
    const p = await open(dir);
    await p.apply(widget('seed', {}));
    const { resourceVersion } = await p.list('Widget');
    const w = p.watch('Widget', { resourceVersion });
    const n = 15;
    const child = run('writer', [dir, 'child', String(n)]);
    for (let i = 0; i < n; i++) await p.apply(widget(`parent-${i}`, { i }));
    await succeeded(child);
    const events = await take(w, 2 * n);
    assert.deepEqual(rvs(events), consecutive(Number(resourceVersion) + 1, 2 * n));
    const names = events.map((e) => e.object.metadata.name);
    assert.deepEqual(names.filter((x) => x.startsWith('child-')), consecutive(0, n).map((i) => `child-${i}`));
    assert.deepEqual(names.filter((x) => x.startsWith('parent-')), consecutive(0, n).map((i) => `parent-${i}`));
    assert.deepEqual(events.find((e) => e.object.metadata.name === 'child-3')?.object.spec, { i: 3, by: 'child' });
    await p.apply(widget('sentinel', {}));
    assert.equal((await take(w, 1))[0]!.object.metadata.name, 'sentinel', 'no event repeated');
    w.stop();
    assert.equal((await p.list('Widget')).items.length, 2 * n + 2);
  });

  it('loses no update when instances and a child process race compare-and-swap loops', async () => {
    const dir = newDir();
    const a = await open(dir);
    const b = await open(dir);
    await a.apply({ kind: 'Counter', apiVersion: 'test.weft.dev/v1', metadata: { name: 'c' }, spec: { value: 0 } });
    const perWriter = 20;
    let conflicts = 0;
    const increment = async (s: FileStore) => {
      for (let i = 0; i < perWriter; i++) {
        for (;;) {
          const cur = await s.get<Resource<{ value: number }>>('Counter', 'c');
          try {
            await s.apply({ kind: 'Counter', apiVersion: 'test.weft.dev/v1', metadata: { name: 'c', resourceVersion: cur!.metadata.resourceVersion }, spec: { value: cur!.spec.value + 1 } });
            break;
          } catch (err) {
            if (!(err instanceof StoreError && err.code === 'Conflict')) throw err;
            conflicts++;
          }
        }
      }
    };
    const child = run('cas', [dir, String(perWriter)]);
    await Promise.all([increment(a), increment(b)]);
    await succeeded(child);
    const final = await b.get<Resource<{ value: number }>>('Counter', 'c');
    assert.equal(final!.spec.value, 3 * perWriter);
    assert.equal(final!.metadata.generation, 3 * perWriter + 1);
    assert.equal(final!.metadata.resourceVersion, String(3 * perWriter + 1));
    assert.ok(conflicts >= 0);
  });

  it('ignores a torn write at the end of the journal and leftover temp files, and writes on cleanly', async () => {
    const dir = newDir();
    const a = await open(dir);
    await a.apply(widget('kept', { n: 1 }));
    await a.apply(widget('kept', { n: 2 }));
    await a.close();
    const journalDir = path.join(dir, 'journal');
    const [journal] = (await fsp.readdir(journalDir)).filter((f) => f.endsWith('.jsonl'));
    const journalPath = path.join(journalDir, journal!);
    // A writer that died half-way through its append, and a compaction that died before rename.
    await fsp.appendFile(journalPath, '{"rv":"3","events":[{"type":"MODIFIED","object":{"apiVersion":"test.weft');
    const temp = path.join(journalDir, '.tmp-0badc0ffee00-00000000000000000002.jsonl');
    await fsp.writeFile(temp, '{"snapshot":{"format":1,"rv":"2","objects":[{"kind":"Wid');

    const logged: string[] = [];
    const b = await open(dir, { logger: { error: (m) => logged.push(m), verbose: () => {} } });
    assert.deepEqual((await b.get('Widget', 'kept'))?.spec, { n: 2 });
    assert.equal((await b.list('Widget')).resourceVersion, '2', 'the torn write is not a revision');
    const w = b.watch('Widget', { resourceVersion: '2' });
    const written = await b.apply(widget('kept', { n: 3 }));
    assert.equal(written.metadata.resourceVersion, '3');
    const [ev] = await take(w, 1);
    assert.deepEqual(ev!.object.spec, { n: 3 });
    w.stop();
    assert.equal(fs.existsSync(temp), false, 'the leftover temp file was removed by the next writer');
    assert.match(logged.join('\n'), /cutting a torn write \(72 bytes\)/);
    const lines = (await fsp.readFile(journalPath, 'utf8')).split('\n');
    assert.equal(lines.pop(), '', 'the journal ends with a complete line');
    for (const line of lines) JSON.parse(line);
    assert.equal(lines.length, 4, 'snapshot + 3 commits, the torn bytes are gone');

    const c = await open(dir);
    assert.deepEqual((await c.get('Widget', 'kept'))?.spec, { n: 3 });
  });

  it('refuses a journal corrupt in the middle instead of guessing', async () => {
    const dir = newDir();
    const a = await open(dir);
    await a.apply(widget('x', { n: 1 }));
    await a.apply(widget('x', { n: 2 }));
    await a.close();
    const journalDir = path.join(dir, 'journal');
    const [journal] = (await fsp.readdir(journalDir)).filter((f) => f.endsWith('.jsonl'));
    const journalPath = path.join(journalDir, journal!);
    const lines = (await fsp.readFile(journalPath, 'utf8')).split('\n');
    lines[1] = '{"rv":"1","events":[garbage]}';
    await fsp.writeFile(journalPath, lines.join('\n'));
    await assert.rejects(FileStore.open(dir), /journal is corrupt/);
  });

  it('ends watches with an error when the journal turns corrupt under them', async () => {
    const dir = newDir();
    const a = await open(dir, { pollIntervalMs: 20, logger: { error: () => {}, verbose: () => {} } });
    await a.apply(widget('x', { n: 1 }));
    const w = a.watch('Widget', { resourceVersion: '1' });
    const journalDir = path.join(dir, 'journal');
    const [journal] = (await fsp.readdir(journalDir)).filter((f) => f.endsWith('.jsonl'));
    await fsp.appendFile(path.join(journalDir, journal!), '{"rv":"7","events":"nonsense"}\n');
    await assert.rejects(take(w, 1), /journal is corrupt/);
  });

  it('compacts the journal, keeps the retained history, and lets a lagging instance catch up', async () => {
    const dir = newDir();
    const limit = 4;
    const a = await open(dir, { historyLimit: limit });
    const lagging = await open(dir, { historyLimit: limit });
    const total = 40;
    for (let i = 0; i < total; i++) await a.apply(widget(`w${i % 5}`, { i }));
    const files = (await fsp.readdir(path.join(dir, 'journal'))).filter((f) => f.endsWith('.jsonl'));
    assert.ok(files.length <= 2, `old journal files are removed (${files.join(', ')})`);
    const base = Math.max(...files.map((f) => Number(f.slice(0, 20))));
    assert.ok(base > 0 && base <= total - limit, `the newest snapshot (${base}) leaves at least ${limit} events after it`);

    const expected = await a.list('Widget');
    assert.deepEqual(await lagging.list('Widget'), expected, 'an instance that missed compacted events reloads from the snapshot');
    const fresh = await open(dir, { historyLimit: limit });
    assert.deepEqual(await fresh.list('Widget'), expected);
    assert.deepEqual(expected.items.map((o) => (o.spec as { i: number }).i), [35, 36, 37, 38, 39]);

    await assert.rejects(async () => take(fresh.watch('Widget', { resourceVersion: '1' }), 1), isGone);
    const recent = await take(fresh.watch('Widget', { resourceVersion: String(total - limit) }), limit);
    assert.deepEqual(rvs(recent), consecutive(total - limit + 1, limit));
    await assert.rejects(async () => take(lagging.watch('Widget', { resourceVersion: '10' }), 1), isGone);
  });

  it('keeps the journal (which holds Secrets) to its owner whatever the umask: directory 0700, files 0600', async () => {
    const old = process.umask(0);
    try {
      const dir = newDir();
      const a = await open(dir, { historyLimit: 2 });
      for (let i = 0; i < 6; i++) await a.apply({ kind: 'Secret', apiVersion: 'v1', metadata: { name: `psk${i % 2}` }, spec: { data: { presharedKey: 'c2VjcmV0' } } });
      const journal = path.join(dir, 'journal');
      assert.equal((await fsp.stat(journal)).mode & 0o777, 0o700, 'journal directory');
      const files = await fsp.readdir(journal);
      assert.ok(files.length >= 1);
      for (const f of files) assert.equal((await fsp.stat(path.join(journal, f))).mode & 0o077, 0, `${f} is readable by no one but its owner`);
    } finally {
      process.umask(old);
    }
  });
});

describe('FileLock', { timeout: 60_000 }, () => {
  const lockPath = () => path.join(newDir() + '.lock');

  it('makes a second contender in the same process wait for the release', async () => {
    const p = lockPath();
    const first = await FileLock.acquire(p);
    const order: string[] = [];
    const second = FileLock.acquire(p).then((l) => {
      order.push('second acquired');
      return l;
    });
    for (let i = 0; i < 5; i++) await fsp.readFile(p); // give the contender turns to try
    order.push('first released');
    await first.release();
    await (await second).release();
    assert.deepEqual(order, ['first released', 'second acquired']);
    assert.equal(fs.existsSync(p), false);
  });

  it('makes a store write wait for a lock held by a live child process', async () => {
    const dir = newDir();
    const s = await open(dir);
    const holder = run('holder', [path.join(dir, 'lock')]);
    assert.equal(await holder.line(), 'locked');
    const order: string[] = [];
    const write = s.apply(widget('after-release', {})).then(() => order.push('write done'));
    for (let i = 0; i < 5; i++) await fsp.readFile(path.join(dir, 'lock'));
    order.push('release asked');
    holder.proc.stdin!.write('go\n');
    assert.equal(await holder.line(), 'released');
    await write;
    await succeeded(holder);
    assert.deepEqual(order, ['release asked', 'write done']);
  });

  it('breaks the lock of a process that died holding it', async () => {
    const dir = newDir();
    const s = await open(dir);
    const holder = run('holder', [path.join(dir, 'lock')]);
    assert.equal(await holder.line(), 'locked');
    holder.proc.kill('SIGKILL');
    assert.equal((await holder.exit).signal, 'SIGKILL');
    assert.ok(fs.existsSync(path.join(dir, 'lock')), 'the dead holder left its lock file behind');
    const w = await s.apply(widget('after-crash', {}));
    assert.equal(w.metadata.resourceVersion, '1');
    assert.equal(fs.existsSync(path.join(dir, 'lock')), false);
  });

  it('judges holders by pid and start time, and unreadable lock files by age', async () => {
    const token = 'feedfacefeedfacefeedface';
    const pidns = fs.readlinkSync('/proc/self/ns/pid');
    const startOf = (pid: number) => {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
    };
    // A live pid, but another start time: the holder died and its pid was reused (by us, or
    // by our parent).
    for (const pid of [process.pid, process.ppid]) {
      const reused = lockPath();
      await fsp.writeFile(reused, JSON.stringify({ pid, pidns, start: '1', token }));
      await (await FileLock.acquire(reused, { timeoutMs: 2_000 })).release();
      assert.equal(fs.existsSync(reused), false);
    }
    // A pid nobody has: a child that has exited (and been reaped).
    const exited = run('holder', [lockPath()]);
    exited.proc.kill('SIGKILL');
    await exited.exit;
    const dead = lockPath();
    await fsp.writeFile(dead, JSON.stringify({ pid: exited.proc.pid, pidns, start: '1', token }));
    await (await FileLock.acquire(dead, { timeoutMs: 2_000 })).release();
    // Another pid namespace cannot be judged: waited for.
    const foreign = lockPath();
    await fsp.writeFile(foreign, JSON.stringify({ pid: exited.proc.pid, pidns: 'pid:[1]', start: '1', token }));
    await assert.rejects(FileLock.acquire(foreign, { timeoutMs: 50 }), /timed out/);

    // A live process (our parent) with its real start time: waited for, until the timeout.
    const live = lockPath();
    await fsp.writeFile(live, JSON.stringify({ pid: process.ppid, pidns, start: startOf(process.ppid), token }));
    await assert.rejects(FileLock.acquire(live, { timeoutMs: 50 }), /timed out .*held by pid/);
    assert.ok(fs.existsSync(live), 'a live holder keeps its lock');

    // Unreadable content: only stale once old.
    const garbled = lockPath();
    await fsp.writeFile(garbled, 'not json');
    await assert.rejects(FileLock.acquire(garbled, { timeoutMs: 50 }), /timed out/);
    const past = new Date(Date.now() - 60_000);
    await fsp.utimes(garbled, past, past);
    await (await FileLock.acquire(garbled, { timeoutMs: 2_000 })).release();
  });
});
