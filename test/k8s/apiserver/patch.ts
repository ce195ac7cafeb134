// The non-apply patch formats: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
import { canonicalJson } from '../../../src/store/objects.ts';
import { errors } from './status.ts';

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Obj = isObject(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parsePointer(ptr: string): string[] {
  if (ptr === '') return [];
  if (!ptr.startsWith('/')) throw errors.badRequest(`invalid JSON pointer ${JSON.stringify(ptr)}`);
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, tokens: string[], ptr: string): { parent: Obj | unknown[]; last: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw errors.invalidPatch(`doc is missing path: ${JSON.stringify(ptr)}`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw errors.invalidPatch(`doc is missing path: ${JSON.stringify(ptr)}`);
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function getAt(doc: unknown, ptr: string): unknown {
  let cur: unknown = doc;
  for (const t of parsePointer(ptr)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw errors.invalidPatch(`doc is missing path: ${JSON.stringify(ptr)}`);
  }
  return cur;
}

function removeAt(doc: unknown, ptr: string): unknown {
  const tokens = parsePointer(ptr);
  if (tokens.length === 0) throw errors.invalidPatch('cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens, ptr);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw errors.invalidPatch(`Unable to remove nonexistent key: ${last}: missing value`);
    return parent.splice(i, 1)[0];
  }
  if (!(last in parent)) throw errors.invalidPatch(`Unable to remove nonexistent key: ${last}: missing value`);
  const v = parent[last];
  delete parent[last];
  return v;
}

function addAt(doc: unknown, ptr: string, value: unknown, replace: boolean): unknown {
  const tokens = parsePointer(ptr);
  if (tokens.length === 0) return structuredClone(value);
  const { parent, last } = parentOf(doc, tokens, ptr);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i >= parent.length)) throw errors.invalidPatch(`index out of range: ${last}`);
    if (replace) parent[i] = structuredClone(value);
    else parent.splice(i, 0, structuredClone(value));
  } else {
    if (replace && !(last in parent)) throw errors.invalidPatch(`replace operation does not apply: doc is missing key: ${ptr}: missing value`);
    parent[last] = structuredClone(value);
  }
  return doc;
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('a JSON patch must be a list of operations');
  let cur = structuredClone(doc);
  for (const op of ops as Obj[]) {
    const path = String(op.path ?? '');
    switch (op.op) {
      case 'add':
        cur = addAt(cur, path, op.value, false);
        break;
      case 'replace':
        cur = addAt(cur, path, op.value, true);
        break;
      case 'remove':
        removeAt(cur, path);
        break;
      case 'test':
        if (canonicalJson(getAt(cur, path)) !== canonicalJson(op.value)) throw errors.invalidPatch(`testing value ${path} failed`);
        break;
      case 'move': {
        const v = removeAt(cur, String(op.from));
        cur = addAt(cur, path, v, false);
        break;
      }
      case 'copy':
        cur = addAt(cur, path, getAt(cur, String(op.from)), false);
        break;
      default:
        throw errors.badRequest(`Unexpected kind: ${String(op.op)}`);
    }
  }
  return cur;
}
