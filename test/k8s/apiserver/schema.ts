// Structural OpenAPI v3 schemas as a CustomResourceDefinition carries them, and what the API
// server does with them on every write of a custom resource: apply defaults, prune fields the
// schema does not declare (unless x-kubernetes-preserve-unknown-fields), then validate and report
// every problem as a cause with the field path and the wording kube-openapi uses.
import net from 'node:net';

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  pattern?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  format?: string;
  nullable?: boolean;
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: unknown[];
}

/** One problem, as metav1.StatusCause carries it. */
export interface Cause {
  reason: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueNotSupported' | 'FieldValueForbidden' | 'FieldValueTooLong' | 'FieldValueTooMany' | 'FieldValueDuplicate';
  message: string;
  field: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go's %v-ish rendering of a value in an "Invalid value: ..." message. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return `"${Array.isArray(v) ? 'array' : 'object'}"`;
  return String(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

// ---------------------------------------------------------------------------------------------
// Defaulting and pruning

/** Fills in `default`s of absent properties (recursively), as the API server does on write. */
export function applyDefaults(schema: Schema | undefined, value: unknown): unknown {
  if (!schema) return value;
  if (isObject(value)) {
    const out: Record<string, unknown> = { ...value };
    for (const [k, sub] of Object.entries(schema.properties ?? {})) {
      if (out[k] === undefined && sub.default !== undefined) out[k] = structuredClone(sub.default);
      if (out[k] !== undefined) out[k] = applyDefaults(sub, out[k]);
    }
    if (isObject(schema.additionalProperties)) {
      for (const k of Object.keys(out)) if (!(k in (schema.properties ?? {}))) out[k] = applyDefaults(schema.additionalProperties, out[k]);
    }
    return out;
  }
  if (Array.isArray(value) && schema.items) return value.map((v) => applyDefaults(schema.items, v));
  return value;
}

/** Drops what the schema does not declare; `dropped` collects the paths (for warnings / Strict). */
export function prune(schema: Schema | undefined, value: unknown, path: string, dropped: string[]): unknown {
  if (!schema || schema['x-kubernetes-int-or-string']) return value;
  if (isObject(value)) {
    if (schema.type !== undefined && schema.type !== 'object') return value; // a type error, reported by validate
    const props = schema.properties;
    const extra = schema.additionalProperties;
    const keepUnknown = schema['x-kubernetes-preserve-unknown-fields'] === true;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const sub = props?.[k] ?? (isObject(extra) ? extra : undefined);
      if (sub) out[k] = prune(sub, v, join(path, k), dropped);
      else if (keepUnknown || extra === true) out[k] = v;
      else dropped.push(join(path, k));
    }
    return out;
  }
  if (Array.isArray(value) && schema.items) return value.map((v, i) => prune(schema.items, v, `${path}[${i}]`, dropped));
  return value;
}

// ---------------------------------------------------------------------------------------------
// Validation

const FORMATS: Record<string, (s: string) => boolean> = {
  ipv4: (s) => net.isIPv4(s),
  ipv6: (s) => net.isIPv6(s),
  ip: (s) => net.isIP(s) !== 0,
  cidr: (s) => {
    const slash = s.indexOf('/');
    if (slash < 0) return false;
    const ip = s.slice(0, slash);
    const bits = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return false;
    const v = net.isIP(ip);
    return v !== 0 && Number(bits) <= (v === 4 ? 32 : 128);
  },
  'date-time': (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
  hostname: (s) => s.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i.test(s),
  uuid: (s) => /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(s),
  byte: (s) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0,
};

function invalid(path: string, value: unknown, detail: string): Cause {
  return { reason: 'FieldValueInvalid', field: path, message: `Invalid value: ${showValue(value)}: ${detail}` };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every problem of `value` against `schema`, at `path` ("spec", "spec.size", "spec.list[0]"). */
export function validate(schema: Schema | undefined, value: unknown, path: string): Cause[] {
  if (!schema) return [];
  const causes: Cause[] = [];
  const at = path;
  if (value === null) {
    if (schema.nullable || schema['x-kubernetes-preserve-unknown-fields']) return [];
    return [invalid(at, value, `${at} in body must be of type ${schema.type ?? 'object'}: "null"`)];
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value)))) {
      causes.push(invalid(at, value, `${at} in body must be of type integer or string: "${typeName(value)}"`));
    }
    return causes;
  }
  const t = schema.type;
  const actual = typeName(value);
  const typeOk =
    t === undefined ||
    (t === 'object' && actual === 'object') ||
    (t === 'array' && actual === 'array') ||
    (t === 'string' && actual === 'string') ||
    (t === 'boolean' && actual === 'boolean') ||
    (t === 'integer' && actual === 'integer') ||
    (t === 'number' && (actual === 'number' || actual === 'integer'));
  if (!typeOk) return [invalid(at, value, `${at} in body must be of type ${t}: "${actual}"`)];

  if (schema.enum && !schema.enum.some((e) => sameJson(e, value))) {
    causes.push({
      reason: 'FieldValueNotSupported',
      field: at,
      message: `Unsupported value: ${showValue(value)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`,
    });
  }
  if (typeof value === 'string') {
    const len = [...value].length;
    if (schema.minLength !== undefined && len < schema.minLength) causes.push(invalid(at, value, `${at} in body should be at least ${schema.minLength} chars long`));
    if (schema.maxLength !== undefined && len > schema.maxLength) {
      causes.push({ reason: 'FieldValueTooLong', field: at, message: `Too long: may not be more than ${schema.maxLength} bytes` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) causes.push(invalid(at, value, `${at} in body should match '${schema.pattern}'`));
    if (schema.format !== undefined) {
      const check = FORMATS[schema.format];
      if (check && !check(value)) causes.push(invalid(at, value, `${at} in body must be of type ${schema.format}: ${JSON.stringify(value)}`));
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)) {
      causes.push(invalid(at, value, `${at} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`));
    }
    if (schema.maximum !== undefined && (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)) {
      causes.push(invalid(at, value, `${at} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`));
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) causes.push(invalid(at, value.length, `${at} in body should have at least ${schema.minItems} items`));
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      causes.push({ reason: 'FieldValueTooMany', field: at, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items` });
    }
    if (schema['x-kubernetes-list-type'] === 'set') {
      const seen = new Set<string>();
      value.forEach((item, i) => {
        const key = JSON.stringify(item);
        if (seen.has(key)) causes.push({ reason: 'FieldValueDuplicate', field: `${at}[${i}]`, message: `Duplicate value: ${showValue(item)}` });
        seen.add(key);
      });
    }
    if (schema.items) value.forEach((item, i) => causes.push(...validate(schema.items, item, `${at}[${i}]`)));
  }
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) causes.push(invalid(at, keys.length, `${at} in body should have at least ${schema.minProperties} properties`));
    if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) causes.push(invalid(at, keys.length, `${at} in body should have at most ${schema.maxProperties} properties`));
    for (const req of schema.required ?? []) {
      if (value[req] === undefined) causes.push({ reason: 'FieldValueRequired', field: join(at, req), message: 'Required value' });
    }
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (sub) causes.push(...validate(sub, v, join(at, k)));
    }
  }
  return causes;
}

/** A cause as one line of an Invalid Status message: "spec.size: Invalid value: 0: ...". */
export function causeText(c: Cause): string {
  return `${c.field}: ${c.message}`;
}

/** The structural-schema rules a CRD's schema must follow that matter here (types everywhere). */
export function checkStructural(schema: Schema, path = 'openAPIV3Schema'): string[] {
  const problems: string[] = [];
  const walk = (s: Schema, p: string, root: boolean) => {
    if (s.type === undefined && !s['x-kubernetes-int-or-string'] && !(s['x-kubernetes-preserve-unknown-fields'] && !root)) problems.push(`${p}.type: Required value: must not be empty for specified object fields`);
    for (const [k, sub] of Object.entries(s.properties ?? {})) walk(sub, `${p}.properties[${k}]`, false);
    if (isObject(s.additionalProperties)) walk(s.additionalProperties as Schema, `${p}.additionalProperties`, false);
    if (s.items) walk(s.items, `${p}.items`, false);
    if (s.type === 'array' && !s.items) problems.push(`${p}.items: Required value: must be specified`);
  };
  walk(schema, path, true);
  return problems;
}

export type { Json };
