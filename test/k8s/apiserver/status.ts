// metav1.Status failures, worded as the real API server words them, and label/field selectors.
import { causeText, type Cause } from './schema.ts';
import { qualifiedKind, qualifiedResource, type ResourceType } from './registry.ts';

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: { reason?: string; type?: string; message: string; field?: string }[] };
  code: number;
}

export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusBody['details'];

  constructor(code: number, reason: string, message: string, details?: StatusBody['details']) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): StatusBody {
    const s: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

function details(rt: ResourceType, name: string | undefined): NonNullable<StatusBody['details']> {
  const d: NonNullable<StatusBody['details']> = { kind: rt.resource };
  if (name !== undefined) d.name = name;
  if (rt.group) d.group = rt.group;
  return d;
}

export const errors = {
  notFound: (rt: ResourceType, name: string) => new ApiError(404, 'NotFound', `${qualifiedResource(rt)} ${JSON.stringify(name)} not found`, details(rt, name)),
  alreadyExists: (rt: ResourceType, name: string) => new ApiError(409, 'AlreadyExists', `${qualifiedResource(rt)} ${JSON.stringify(name)} already exists`, details(rt, name)),
  conflict: (rt: ResourceType, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(rt)} ${JSON.stringify(name)}: ${why}`, details(rt, name)),
  invalid: (rt: ResourceType, name: string, causes: Cause[]) => {
    const text = causes.length === 1 ? causeText(causes[0]!) : `[${causes.map(causeText).join(', ')}]`;
    return new ApiError(422, 'Invalid', `${qualifiedKind(rt)} ${JSON.stringify(name)} is invalid: ${text}`, {
      name,
      ...(rt.group ? { group: rt.group } : {}),
      kind: rt.kind,
      causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
    });
  },
  badRequest: (message: string) => new ApiError(400, 'BadRequest', message),
  invalidPatch: (message: string) => new ApiError(422, 'Invalid', message),
  gone: (message: string) => new ApiError(410, 'Expired', message),
  methodNotAllowed: (message: string) => new ApiError(405, 'MethodNotAllowed', message),
  unsupportedMediaType: (type: string) =>
    new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got ${type})`),
  unauthorized: () => new ApiError(401, 'Unauthorized', 'Unauthorized'),
  /** What the real server answers when an apply cannot be decoded or typed (Status reason InternalError). */
  internal: (message: string) => new ApiError(500, 'InternalError', message),
  pageNotFound: () => new ApiError(404, 'NotFound', 'the server could not find the requested resource'),
};

// ---------------------------------------------------------------------------------------------
// Selectors

type Requirement = { key: string; op: '=' | '!=' | 'in' | 'notin' | 'exists' | '!'; values: string[] };

export interface Selector {
  matches(obj: Record<string, unknown>): boolean;
  empty: boolean;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(text: string | null): Selector {
  const reqs: Requirement[] = [];
  for (const part of splitTopLevel(text ?? '')) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([^\s=!]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      reqs.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) });
    } else if ((m = part.match(/^([^\s=!]+)\s*(==|=|!=)\s*([^\s=!]*)$/))) {
      reqs.push({ key: m[1]!, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] });
    } else if ((m = part.match(/^!\s*([^\s=!]+)$/))) {
      reqs.push({ key: m[1]!, op: '!', values: [] });
    } else if ((m = part.match(/^([^\s=!(),]+)$/))) {
      reqs.push({ key: m[1]!, op: 'exists', values: [] });
    } else {
      throw errors.badRequest(`unable to parse requirement: ${JSON.stringify(part)}`);
    }
  }
  return {
    empty: reqs.length === 0,
    matches(obj) {
      const labels = (((obj.metadata ?? {}) as Record<string, unknown>).labels ?? {}) as Record<string, string>;
      return reqs.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        const v = labels[r.key];
        switch (r.op) {
          case '=':
            return has && v === r.values[0];
          case '!=':
            return !has || v !== r.values[0];
          case 'in':
            return has && r.values.includes(v!);
          case 'notin':
            return !has || !r.values.includes(v!);
          case 'exists':
            return has;
          case '!':
            return !has;
        }
      });
    },
  };
}

const FIELD_PATHS: Record<string, string[]> = {
  'metadata.name': ['metadata', 'name'],
  'metadata.namespace': ['metadata', 'namespace'],
  'spec.nodeName': ['spec', 'nodeName'],
  'status.phase': ['status', 'phase'],
  'status.podIP': ['status', 'podIP'],
};

export function parseFieldSelector(text: string | null, rt: ResourceType): Selector {
  const reqs: { path: string[]; neg: boolean; value: string }[] = [];
  for (const part of splitTopLevel(text ?? '')) {
    const m = part.match(/^([^=!]+)(==|=|!=)(.*)$/);
    if (!m) throw errors.badRequest(`invalid selector: ${JSON.stringify(part)}; can't understand ${JSON.stringify(part)}`);
    const field = m[1]!.trim();
    const p = FIELD_PATHS[field];
    if (!p || (field.startsWith('spec.') && rt.kind !== 'Pod') || (field.startsWith('status.') && rt.kind !== 'Pod')) {
      throw errors.badRequest(`field label not supported: ${field}`);
    }
    reqs.push({ path: p, neg: m[2] === '!=', value: m[3]!.trim() });
  }
  return {
    empty: reqs.length === 0,
    matches(obj) {
      return reqs.every((r) => {
        let cur: unknown = obj;
        for (const k of r.path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
        const v = typeof cur === 'string' ? cur : '';
        return r.neg ? v !== r.value : v === r.value;
      });
    },
  };
}
