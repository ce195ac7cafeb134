// Field ownership (metadata.managedFields), as server-side apply keeps it. A field path is a list
// of elements: "f:<name>" for a field of an object, "v:<json>" for a member of a set list
// (metadata.finalizers, x-kubernetes-list-type: set). Objects are granular (every field is owned on
// its own); other lists are atomic (owned as a whole), as they are for CRDs that do not say
// otherwise (map lists are atomic here too: a simplification). The encoding on the
// wire is FieldsV1, the nested-object form the real API server uses.
import { canonicalJson } from '../../../src/store/objects.ts';

export type Path = string[];
type Obj = Record<string, unknown>;

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Obj;
  subresource?: string;
}

/** A manager's ownership while a write is computed. */
export interface Owner {
  manager: string;
  operation: 'Apply' | 'Update';
  subresource: string | undefined;
  apiVersion: string;
  time: string;
  fields: Set<string>;
}

/** Conflicts of an apply, one per field and manager. */
export interface FieldConflict {
  manager: string;
  apiVersion: string;
  field: string;
}

export class ApplyConflictError extends Error {
  readonly conflicts: FieldConflict[];
  constructor(conflicts: FieldConflict[]) {
    // The real server's layout (kube-apiserver 1.32): one line for a single conflict, else a
    // block per manager listing its fields.
    const head = `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: `;
    const byManager = new Map<string, string[]>();
    for (const c of conflicts) byManager.set(c.manager, [...(byManager.get(c.manager) ?? []), c.field]);
    super(
      conflicts.length === 1
        ? `${head}conflict with "${conflicts[0]!.manager}": ${conflicts[0]!.field}`
        : `${head}${[...byManager].map(([m, fields]) => `conflicts with "${m}":\n${fields.map((f) => `- ${f}`).join('\n')}`).join('\n')}`,
    );
    this.conflicts = conflicts;
  }
}

const key = (p: Path): string => JSON.stringify(p);
const unkey = (k: string): Path => JSON.parse(k) as Path;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether the list at a path is a set (members owned one by one) rather than atomic. */
export type SetLists = (path: Path) => boolean;

const finalizersOnly: SetLists = (path) => path.length === 2 && path[0] === 'f:metadata' && path[1] === 'f:finalizers';

/** ".spec.remoteEndpoint.port", ".metadata.finalizers[=\"x\"]" — how conflicts name fields. */
export function showPath(p: Path): string {
  return p.map((e) => (e.startsWith('f:') ? `.${e.slice(2)}` : `[=${e.slice(2)}]`)).join('');
}

// ---------------------------------------------------------------------------------------------
// Field sets of objects

function collect(value: unknown, path: Path, out: Set<string>, isSet: SetLists): void {
  if (isObject(value)) {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    if (keys.length === 0 && path.length > 0) out.add(key(path));
    for (const k of keys) collect(value[k], [...path, `f:${k}`], out, isSet);
  } else if (Array.isArray(value) && value.length > 0 && isSet(path)) {
    for (const item of value) out.add(key([...path, `v:${JSON.stringify(item)}`]));
  } else {
    out.add(key(path));
  }
}

/**
 * The fields of `obj` a write through `subresource` can touch: for the main resource every
 * top-level field but apiVersion, kind, metadata (and status when it is a subresource), plus the
 * labels, annotations, finalizers and ownerReferences of metadata; for "status", status alone.
 */
export function fieldSet(obj: Obj | undefined, subresource: string | undefined, statusSubresource: boolean, isSet: SetLists = finalizersOnly): Set<string> {
  const out = new Set<string>();
  if (!obj) return out;
  if (subresource === 'status') {
    if (obj.status !== undefined) collect(obj.status, ['f:status'], out, isSet);
    return out;
  }
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined || k === 'apiVersion' || k === 'kind' || k === 'metadata') continue;
    if (k === 'status' && statusSubresource) continue;
    collect(v, [`f:${k}`], out, isSet);
  }
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences']) {
    if (meta[k] !== undefined) collect(meta[k], ['f:metadata', `f:${k}`], out, isSet);
  }
  return out;
}

export function lookup(obj: unknown, path: Path): { found: boolean; value?: unknown } {
  let cur: unknown = obj;
  for (const el of path) {
    if (el.startsWith('v:')) {
      if (!Array.isArray(cur)) return { found: false };
      const want = el.slice(2);
      const hit = cur.find((x) => JSON.stringify(x) === want);
      if (hit === undefined) return { found: false };
      cur = hit;
      continue;
    }
    if (!isObject(cur) || !(el.slice(2) in cur) || cur[el.slice(2)] === undefined) return { found: false };
    cur = cur[el.slice(2)];
  }
  return { found: true, value: cur };
}

function assign(obj: Obj, path: Path, value: unknown): void {
  let cur: Obj = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const name = path[i]!.slice(2);
    const next = path[i + 1]!;
    if (next.startsWith('v:')) {
      if (!Array.isArray(cur[name])) cur[name] = [];
      const list = cur[name] as unknown[];
      if (!list.some((x) => JSON.stringify(x) === next.slice(2))) list.push(structuredClone(value));
      return;
    }
    if (!isObject(cur[name])) cur[name] = {};
    cur = cur[name] as Obj;
  }
  cur[path[path.length - 1]!.slice(2)] = structuredClone(value);
}

/** Removes the field (or set member), then parents it left empty (below the top level). */
function remove(obj: Obj, path: Path, owned: (p: Path) => boolean): void {
  const chain: Obj[] = [obj];
  let cur: unknown = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const name = path[i]!.slice(2);
    const next = path[i + 1]!;
    if (!isObject(cur)) return;
    if (next.startsWith('v:')) {
      const list = cur[name];
      if (!Array.isArray(list)) return;
      const idx = list.findIndex((x) => JSON.stringify(x) === next.slice(2));
      if (idx >= 0) list.splice(idx, 1);
      if (list.length === 0) delete cur[name];
      pruneUp(chain, path.slice(0, i + 1), owned);
      return;
    }
    cur = cur[name];
    if (isObject(cur)) chain.push(cur);
  }
  if (!isObject(cur)) return;
  delete cur[path[path.length - 1]!.slice(2)];
  pruneUp(chain, path.slice(0, -1), owned);
}

function pruneUp(chain: Obj[], parentPath: Path, owned: (p: Path) => boolean): void {
  // chain[i] is the object at parentPath.slice(0, i); stop at the top-level fields.
  for (let depth = parentPath.length; depth >= 2; depth--) {
    const node = chain[depth];
    const parent = chain[depth - 1];
    if (!node || !parent) return;
    const p = parentPath.slice(0, depth);
    if (Object.keys(node).length > 0 || owned(p)) return;
    delete parent[p[p.length - 1]!.slice(2)];
  }
}

function overlaps(a: Path, b: Path): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// FieldsV1 encoding

export function encodeFields(fields: Set<string>): Obj {
  const root: Obj = {};
  const paths = [...fields].map(unkey);
  const members = new Set(fields);
  for (const p of paths) {
    let node = root;
    for (const el of p) node = (node[el] ??= {}) as Obj;
  }
  // A member that also has owned children is marked with ".".
  for (const p of paths) {
    let node: Obj = root;
    for (const el of p) node = node[el] as Obj;
    if (Object.keys(node).some((k) => k !== '.') && members.has(key(p))) node['.'] = {};
  }
  return root;
}

export function decodeFields(tree: unknown): Set<string> {
  const out = new Set<string>();
  const walk = (node: unknown, path: Path) => {
    if (!isObject(node)) return;
    const children = Object.keys(node).filter((k) => k !== '.');
    if (path.length > 0 && (children.length === 0 || '.' in node)) out.add(key(path));
    for (const k of children) walk(node[k], [...path, k]);
  };
  walk(tree, []);
  return out;
}

export function readOwners(obj: Obj | undefined): Owner[] {
  const meta = obj && isObject(obj.metadata) ? obj.metadata : {};
  const entries = Array.isArray(meta.managedFields) ? (meta.managedFields as ManagedFieldsEntry[]) : [];
  return entries.map((e) => ({
    manager: e.manager,
    operation: e.operation,
    subresource: e.subresource || undefined,
    apiVersion: e.apiVersion,
    time: e.time,
    fields: decodeFields(e.fieldsV1),
  }));
}

/** Writes the owners into obj.metadata.managedFields, dropping fields the object no longer has. */
export function writeOwners(obj: Obj, owners: Owner[]): void {
  const meta = obj.metadata as Obj;
  const entries: ManagedFieldsEntry[] = [];
  for (const o of owners) {
    for (const k of [...o.fields]) if (!lookup(obj, unkey(k)).found) o.fields.delete(k);
    if (o.fields.size === 0) continue;
    const e: ManagedFieldsEntry = { manager: o.manager, operation: o.operation, apiVersion: o.apiVersion, time: o.time, fieldsType: 'FieldsV1', fieldsV1: encodeFields(o.fields) };
    if (o.subresource) e.subresource = o.subresource;
    entries.push(e);
  }
  if (entries.length > 0) meta.managedFields = entries;
  else delete meta.managedFields;
}

function ownerFor(owners: Owner[], manager: string, operation: Owner['operation'], subresource: string | undefined, apiVersion: string, now: string): Owner {
  let o = owners.find((x) => x.manager === manager && x.operation === operation && x.subresource === subresource);
  if (!o) {
    o = { manager, operation, subresource, apiVersion, time: now, fields: new Set() };
    owners.push(o);
  }
  return o;
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

// ---------------------------------------------------------------------------------------------
// Writes

export interface ApplyArgs {
  live: Obj | undefined;
  /** The applied configuration, already reduced to what the subresource may set. */
  config: Obj;
  manager: string;
  force: boolean;
  subresource: string | undefined;
  statusSubresource: boolean;
  apiVersion: string;
  now: string;
  isSet?: SetLists;
}

/**
 * Server-side apply: merges `config` into `live` (a fresh object when absent). Fields whose value
 * changes and that another manager owns are conflicts (ApplyConflictError) unless `force`, which
 * takes them over. Fields this manager applied before and now leaves out are removed when no other
 * manager owns them. Returns the merged object with its managedFields.
 */
export function serverSideApply(a: ApplyArgs): Obj {
  const owners = readOwners(a.live);
  const base: Obj = a.live ? structuredClone(a.live) : { apiVersion: a.config.apiVersion, kind: a.config.kind, metadata: {} };
  const applied = fieldSet(a.config, a.subresource, a.statusSubresource, a.isSet);
  const me = ownerFor(owners, a.manager, 'Apply', a.subresource, a.apiVersion, a.now);
  const before = new Set(me.fields);

  const conflicts: FieldConflict[] = [];
  const stolen: { owner: Owner; field: string }[] = [];
  for (const k of applied) {
    const p = unkey(k);
    const mine = lookup(a.config, p);
    const theirs = lookup(base, p);
    if (theirs.found && canonicalJson(theirs.value) === canonicalJson(mine.value)) continue; // same value: shared
    if (theirs.found && isObject(theirs.value) && isObject(mine.value)) continue; // an (empty) object merges: no value of theirs changes
    for (const o of owners) {
      if (o === me) continue;
      for (const f of o.fields) {
        if (!overlaps(unkey(f), p)) continue;
        conflicts.push({ manager: o.manager, apiVersion: o.apiVersion, field: showPath(unkey(f)) });
        stolen.push({ owner: o, field: f });
      }
    }
  }
  if (conflicts.length > 0 && !a.force) throw new ApplyConflictError(conflicts);
  for (const s of stolen) s.owner.fields.delete(s.field);

  const result = base;
  for (const k of applied) {
    const p = unkey(k);
    const value = lookup(a.config, p).value;
    if (isObject(value) && isObject(lookup(result, p).value)) continue; // an empty object merges into what is there
    assign(result, p, value);
  }
  me.fields = applied;
  const ownedByAnyone = (p: Path) => owners.some((o) => o.fields.has(key(p)));
  for (const k of before) {
    if (applied.has(k)) continue;
    const p = unkey(k);
    if (lookup(a.config, p).found) continue; // still applied, now as the parent of applied fields
    const kept = owners.some((o) => o !== me && [...o.fields].some((f) => overlaps(unkey(f), p)));
    if (!kept) remove(result, p, ownedByAnyone);
  }
  if (!sameSet(before, applied)) me.time = a.now;
  me.apiVersion = a.apiVersion;
  writeOwners(result, owners);
  return result;
}

/**
 * A non-apply write (create, update, patch) by `manager`: it becomes the owner of every field it
 * changed, which no other manager keeps; fields that disappeared belong to nobody.
 */
export function trackUpdate(
  old: Obj | undefined,
  next: Obj,
  manager: string,
  subresource: string | undefined,
  statusSubresource: boolean,
  apiVersion: string,
  now: string,
  isSet: SetLists = finalizersOnly,
): void {
  const owners = readOwners(old);
  const before = fieldSet(old, subresource, statusSubresource, isSet);
  const after = fieldSet(next, subresource, statusSubresource, isSet);
  const changed: Path[] = [];
  for (const k of new Set([...before, ...after])) {
    const p = unkey(k);
    const x = lookup(old, p);
    const y = lookup(next, p);
    if (x.found !== y.found || canonicalJson(x.value) !== canonicalJson(y.value)) changed.push(p);
  }
  if (changed.length > 0) {
    const me = ownerFor(owners, manager, 'Update', subresource, apiVersion, now);
    for (const o of owners) {
      if (o === me) continue;
      for (const f of [...o.fields]) if (changed.some((p) => overlaps(unkey(f), p))) o.fields.delete(f);
    }
    for (const p of changed) if (lookup(next, p).found) me.fields.add(key(p));
    me.time = now;
    me.apiVersion = apiVersion;
  }
  writeOwners(next, owners);
}

/**
 * What the real server does on a PUT to /status whose body's metadata lacks labels, annotations
 * or finalizers the object has: the status strategy keeps the values, but field management has
 * already seen them "removed" by this update, so every manager's ownership of them is gone.
 */
export function dropMetadataOwnershipMissingFrom(obj: Obj, bodyMetadata: Obj): void {
  const owners = readOwners(obj);
  for (const o of owners) {
    for (const f of [...o.fields]) {
      const p = unkey(f);
      const field = p[1]?.slice(2);
      if (p[0] === 'f:metadata' && (field === 'labels' || field === 'annotations' || field === 'finalizers') && bodyMetadata[field] === undefined) o.fields.delete(f);
    }
  }
  writeOwners(obj, owners);
}

/** Drops ownership of fields the object no longer has. */
export function dropMissingOwnership(obj: Obj): void {
  if (obj.metadata && typeof obj.metadata === 'object') writeOwners(obj, readOwners(obj));
}

/** Two objects that differ only in managedFields timestamps are the same write. */
export function sameIgnoringTimes(a: Obj, b: Obj): boolean {
  const strip = (o: Obj) => {
    const c = structuredClone(o);
    const m = c.metadata as Obj | undefined;
    if (m && Array.isArray(m.managedFields)) for (const e of m.managedFields as Obj[]) delete e.time;
    return canonicalJson(c);
  };
  return strip(a) === strip(b);
}
