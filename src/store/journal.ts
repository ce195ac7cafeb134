// The on-disk format of the file store: a directory of journal files, each a JSON-lines file
// named after the revision of the snapshot on its first line:
//
//   journal/00000000000000000412.jsonl
//     {"snapshot":{"format":1,"rv":"412","objects":[...]}}      every object at revision 412
//     {"rv":"413","events":[{"type":"ADDED","object":{...}}]}   one line per committed write
//     {"rv":"415","events":[{"type":"MODIFIED",...},{"type":"DELETED",...}]}
//
// A commit is one line written with one append and made durable (fdatasync) before the write is
// acknowledged; a line without its final newline is a torn write from a writer that died, never
// acknowledged, and is cut off by the next writer. Compaction writes a new file (temp file,
// fsync, rename, fsync of the directory) whose snapshot is older than the newest events by at
// least the retained history, so a reader can always move from one file to the next.
import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { PlannedEvent } from './objects.ts';
import type { Resource } from './types.ts';

export const JOURNAL_FORMAT = 1;
export const TEMP_PREFIX = '.tmp-';
const NAME = /^(\d{20})\.jsonl$/;

export interface SnapshotRecord {
  snapshot: { format: number; rv: string; objects: Resource[] };
}

export interface CommitRecord {
  rv: string;
  events: PlannedEvent[];
}

export type JournalRecord = SnapshotRecord | CommitRecord;

export class JournalCorruptError extends Error {
  constructor(where: string, detail: string) {
    super(`store journal is corrupt at ${where}: ${detail}`);
    this.name = 'JournalCorruptError';
  }
}

export function journalFileName(base: number): string {
  return `${String(base).padStart(20, '0')}.jsonl`;
}

export interface JournalDir {
  /** Snapshot revisions of the journal files present, ascending. */
  bases: number[];
  /** Leftover temp files (only a lock holder writes them, so the next one may remove them). */
  temps: string[];
}

export async function scanJournalDir(dir: string): Promise<JournalDir> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { bases: [], temps: [] };
    throw err;
  }
  const bases: number[] = [];
  const temps: string[] = [];
  for (const name of names) {
    const m = NAME.exec(name);
    if (m) bases.push(Number(m[1]));
    else if (name.startsWith(TEMP_PREFIX)) temps.push(name);
  }
  return { bases: bases.sort((a, b) => a - b), temps };
}

export function encodeRecord(record: JournalRecord): string {
  return `${JSON.stringify(record)}\n`;
}

function isResource(v: unknown): v is Resource {
  const o = v as Resource | null;
  return typeof o === 'object' && o !== null && typeof o.kind === 'string' && typeof o.metadata === 'object' && o.metadata !== null
    && typeof o.metadata.name === 'string' && typeof o.metadata.resourceVersion === 'string';
}

export function decodeRecord(text: string, where: string): JournalRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JournalCorruptError(where, `not JSON (${(err as Error).message})`);
  }
  const rec = value as Partial<SnapshotRecord & CommitRecord> | null;
  if (typeof rec === 'object' && rec !== null) {
    const snap = rec.snapshot;
    if (snap !== undefined) {
      if (snap.format !== JOURNAL_FORMAT) throw new JournalCorruptError(where, `unknown journal format ${JSON.stringify(snap.format)}`);
      if (typeof snap.rv === 'string' && Array.isArray(snap.objects) && snap.objects.every(isResource)) return { snapshot: snap };
    } else if (typeof rec.rv === 'string' && Array.isArray(rec.events) && rec.events.length > 0
      && rec.events.every((e) => (e.type === 'ADDED' || e.type === 'MODIFIED' || e.type === 'DELETED') && isResource(e.object))) {
      return { rv: rec.rv, events: rec.events };
    }
  }
  throw new JournalCorruptError(where, 'not a journal record');
}

export interface Line {
  text: string;
  start: number;
  /** Offset just past the newline. */
  end: number;
}

/** The complete lines from `offset` to the end of the file, and how many bytes follow the last
 * newline (a line still being written, or a torn one). */
export async function readLines(fh: FileHandle, offset: number): Promise<{ lines: Line[]; partialBytes: number }> {
  const chunks: Buffer[] = [];
  let position = offset;
  const chunk = Buffer.allocUnsafe(1 << 16);
  for (;;) {
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    chunks.push(Buffer.from(chunk.subarray(0, bytesRead)));
    position += bytesRead;
  }
  const data = Buffer.concat(chunks);
  const lines: Line[] = [];
  let start = 0;
  for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
    lines.push({ text: data.toString('utf8', start, nl), start: offset + start, end: offset + nl + 1 });
    start = nl + 1;
  }
  return { lines, partialBytes: data.length - start };
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `name` in `dir` so that it either does not exist or holds all of `data`, durably. */
export async function writeFileAtomic(dir: string, name: string, data: string): Promise<void> {
  const temp = path.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${name}`);
  const fh = await fsp.open(temp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(temp, path.join(dir, name));
  } catch (err) {
    await fsp.unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Appends all of `data` at the end of the file and makes it durable. */
export async function appendDurably(fh: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await fh.write(data, written, data.length - written);
    written += bytesWritten;
  }
  await fh.datasync();
}

/** Cuts the file back to `length` bytes, durably (removes a torn last line). */
export async function truncateDurably(file: string, length: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.truncate(length);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
