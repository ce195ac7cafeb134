// nft tables: each of weft's tables is replaced as a whole in one `nft -f -` transaction
// (declare, delete, redefine: atomic, no window without rules), and only when its fingerprint
// changed. The fingerprint (sha256 of the normalised body) travels in the table's own comment,
// "weft:<hex>", so a restarted process still knows what is loaded. nft 1.0.6 accepts table comments
// but does not print them in JSON (`nft -j list tables` has no "comment"), so comments are read from
// the text listing of weft's own tables.
import { createHash } from 'node:crypto';
import type { NftTable } from './types.ts';
import { KernelStateError } from './types.ts';

export const FINGERPRINT_TAG = 'weft:';

export interface NftTableRef {
  family: string;
  name: string;
}

export function tableId(t: NftTableRef): string {
  return `${t.family} ${t.name}`;
}

interface Scanned {
  /** The body normalised: comments dropped, whitespace outside strings collapsed, blank lines gone. */
  normalised: string;
  /** Top-level statements (brace depth 0). */
  topLevel: string[];
  error?: string;
}

function scan(body: string): Scanned {
  const lines: string[] = [];
  const topLevel: string[] = [];
  let depth = 0;
  let top = '';
  let error: string | undefined;
  const endStatement = () => {
    if (top.trim()) topLevel.push(top.trim());
    top = '';
  };
  for (const raw of body.split('\n')) {
    let line = '';
    let inString = false;
    let space = false;
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i]!;
      if (inString) {
        line += c;
        if (c === '"') inString = false;
        continue;
      }
      if (c === '#') break;
      if (c === ' ' || c === '\t' || c === '\r') {
        space = true;
        continue;
      }
      if (space && line !== '') line += ' ';
      if (space && depth === 0) top += ' ';
      space = false;
      line += c;
      if (c === '"') inString = true;
      if (c === '{') depth++;
      else if (c === '}') {
        depth--;
        if (depth < 0) {
          error ??= 'closes a brace it did not open (a body cannot end its table)';
          depth = 0;
        }
      } else if (depth === 0) {
        if (c === ';') endStatement();
        else top += c;
      }
    }
    if (inString) error ??= 'has an unterminated string';
    if (depth === 0) endStatement();
    if (line !== '') lines.push(line);
  }
  if (depth > 0) error ??= 'has an unclosed brace';
  return { normalised: lines.join('\n'), topLevel, ...(error ? { error } : {}) };
}

export function normaliseNftBody(body: string): string {
  return scan(body).normalised;
}

export function nftFingerprint(body: string): string {
  return createHash('sha256').update(normaliseNftBody(body)).digest('hex');
}

/** Throws when a body could escape its table or fight over the table comment. */
export function checkNftBody(body: unknown, what: string): string {
  if (typeof body !== 'string') throw new KernelStateError(`${what} must be a string`);
  if (body.includes('\0')) throw new KernelStateError(`${what} contains a NUL byte`);
  const s = scan(body);
  if (s.error) throw new KernelStateError(`${what} ${s.error}`);
  if (s.topLevel.some((st) => /^comment\b/.test(st))) throw new KernelStateError(`${what} sets the table comment, which weft uses for its fingerprint`);
  return body;
}

/** The atomic replace of one table. */
export function nftReplaceScript(t: NftTable, fingerprint: string): string {
  const head = `table ${t.family} ${t.name}`;
  return `${head} {}\ndelete ${head}\n${head} {\n\tcomment "${FINGERPRINT_TAG}${fingerprint}"\n${t.body}\n}\n`;
}

/** Tables in `nft -j list tables` whose name starts with `prefix`. */
export function parseTableList(json: unknown, prefix: string): NftTableRef[] {
  const items = (json as { nftables?: unknown[] } | undefined)?.nftables;
  if (!Array.isArray(items)) throw new Error('nft table list has no "nftables" array');
  const out: NftTableRef[] = [];
  for (const item of items as Array<{ table?: { family?: unknown; name?: unknown } }>) {
    const t = item.table;
    if (t && typeof t.family === 'string' && typeof t.name === 'string' && t.name.startsWith(prefix)) out.push({ family: t.family, name: t.name });
  }
  return out;
}

export interface ListedTable extends NftTableRef {
  /** The fingerprint from the table's "weft:" comment; "" when it has none. */
  fingerprint: string;
  /** The listing inside the table, one indentation level removed, comment line dropped. */
  body: string;
}

/**
 * A table listing without the parts the kernel changes by itself (counter and quota usage), so two
 * listings of an untouched table compare equal and a rule or chain changed by hand does not.
 */
export function stableListing(body: string): string {
  return body.replace(/packets \d+ bytes \d+/g, 'packets - bytes -').replace(/ used \d+ [a-z]+/g, '');
}

/** Parse the text of `nft list table …` (one or more tables). */
export function parseTableListing(text: string): ListedTable[] {
  const out: ListedTable[] = [];
  let cur: ListedTable | null = null;
  const body: string[] = [];
  for (const line of text.split('\n')) {
    const head = /^table (\S+) (\S+) \{$/.exec(line);
    if (head) {
      cur = { family: head[1]!, name: head[2]!, fingerprint: '', body: '' };
      body.length = 0;
      continue;
    }
    if (!cur) continue;
    if (line === '}') {
      cur.body = body.join('\n');
      out.push(cur);
      cur = null;
      continue;
    }
    const comment = /^\tcomment "(.*)"$/.exec(line);
    if (comment && body.length === 0) {
      if (comment[1]!.startsWith(FINGERPRINT_TAG)) cur.fingerprint = comment[1]!.slice(FINGERPRINT_TAG.length);
      continue;
    }
    body.push(line.startsWith('\t') ? line.slice(1) : line);
  }
  return out;
}
