// A structural-schema validator for custom resources: what the Kubernetes API server does with a
// CRD's `openAPIV3Schema` (apiextensions.k8s.io/v1) when an object is written, for the parts weft's
// CRDs use. Used by the schema tests and by the in-process API server of the Kubernetes tests.
//
// Covered: type, nullable (a null for a non-nullable field is dropped, as the server prunes it),
// properties / required / additionalProperties, items, enum, pattern (unanchored, as in the
// server), the formats the server checks that weft uses (ipv4, ipv6, cidr, date-time, byte,
// int32, int64), minimum / maximum (and the exclusive flags), min/maxLength (in characters),
// min/maxItems, min/maxProperties, allOf / anyOf / oneOf / not, x-kubernetes-list-type set and map
// (duplicates refused), x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string, pruning
// of unknown fields, and x-kubernetes-validations through JavaScript twins of the CEL rules
// (there is no CEL interpreter here: each rule weft writes has its twin next to it in crds.ts).
//
// Error strings follow the server's: `spec.port: Invalid value: 70000: spec.port in body should be
// less than or equal to 65535`, `spec.key: Required value`, `status.phase: Unsupported value: ...`.
import net from 'node:net';

export type SchemaType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

/** JSONSchemaProps as apiextensions.k8s.io/v1 spells it (the subset a structural schema may use). */
export interface JSONSchemaProps {
  type?: SchemaType;
  description?: string;
  format?: string;
  pattern?: string;
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minProperties?: number;
  maxProperties?: number;
  required?: string[];
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: JSONSchemaProps | boolean;
  items?: JSONSchemaProps;
  allOf?: JSONSchemaProps[];
  anyOf?: JSONSchemaProps[];
  oneOf?: JSONSchemaProps[];
  not?: JSONSchemaProps;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: ValidationRule[];
}

export type FieldErrorType = 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueNotSupported' | 'FieldValueDuplicate' | 'FieldValueTooLong' | 'FieldValueTooMany' | 'FieldValueTypeInvalid';

export interface FieldError {
  /** Dotted path with [i] for list items, as the API server reports it ("spec.nodeCIDRs[1]"). */
  field: string;
  type: FieldErrorType;
  /** The whole sentence, as it appears in the server's 422 response. */
  message: string;
}

/** A JavaScript twin of a CEL rule: true when the value passes. */
export type CelTwin = (self: unknown, oldSelf?: unknown) => boolean;

export interface ValidateOptions {
  /** Twins of the x-kubernetes-validations rules, by rule text. */
  cel?: Readonly<Record<string, CelTwin>>;
  /** A rule without a twin is an error (tests) rather than skipped (a lenient fake server). */
  strictCel?: boolean;
  /** The stored object, for transition rules (rules that mention oldSelf). */
  old?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (isObject(v)) return '"object"';
  if (Array.isArray(v)) return '"array"';
  return String(v);
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

const DATE_TIME = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt ](?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The formats the API server validates (the ones weft uses; others are ignored, as the server ignores unknown ones). */
export function checkFormat(format: string, value: unknown): boolean {
  switch (format) {
    case 'ipv4':
      return typeof value === 'string' && net.isIPv4(value);
    case 'ipv6':
      return typeof value === 'string' && net.isIPv6(value);
    case 'cidr': {
      if (typeof value !== 'string') return false;
      const slash = value.indexOf('/');
      if (slash < 0) return false;
      const family = net.isIP(value.slice(0, slash));
      const len = value.slice(slash + 1);
      return family !== 0 && /^\d{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
    }
    case 'date-time':
    case 'datetime':
      return typeof value === 'string' && DATE_TIME.test(value) && !Number.isNaN(Date.parse(value.replace(' ', 'T')));
    case 'byte':
      return typeof value === 'string' && BASE64.test(value);
    case 'int32':
      return typeof value !== 'number' || (value >= -(2 ** 31) && value < 2 ** 31);
    case 'int64':
      return typeof value !== 'number' || Number.isSafeInteger(value) || !Number.isInteger(value);
    default:
      return true;
  }
}

const patternCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (!re) {
    re = new RegExp(pattern);
    patternCache.set(pattern, re);
  }
  return re;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Validate `value` at `path` against `schema`; errors in the API server's words. */
export function validate(schema: JSONSchemaProps, value: unknown, opts: ValidateOptions = {}, path = ''): FieldError[] {
  const errors: FieldError[] = [];
  walk(schema, value, path, opts, opts.old, errors);
  return errors;
}

function walk(schema: JSONSchemaProps, value: unknown, path: string, opts: ValidateOptions, old: unknown, errors: FieldError[]): void {
  const invalid = (detail: string, v: unknown = value) =>
    errors.push({ field: path, type: 'FieldValueInvalid', message: `${path}: Invalid value: ${show(v)}: ${detail}` });
  const at = path === '' ? 'body' : `${path} in body`;

  if (value === null) {
    if (!schema.nullable) errors.push({ field: path, type: 'FieldValueTypeInvalid', message: `${path}: Invalid value: "null": ${at} must be of type ${schema.type ?? 'object'}: "null"` });
    return;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) invalid(`${at} must be of type integer or string: "${typeOf(value)}"`);
  } else if (schema.type) {
    const actual = typeOf(value);
    const ok = schema.type === 'number' ? typeof value === 'number' : actual === schema.type;
    if (!ok) {
      errors.push({ field: path, type: 'FieldValueTypeInvalid', message: `${path}: Invalid value: ${show(value)}: ${at} must be of type ${schema.type}: "${actual}"` });
      return;
    }
  }

  if (schema.enum && !schema.enum.some((e) => deepEqual(e, value))) {
    errors.push({ field: path, type: 'FieldValueNotSupported', message: `${path}: Unsupported value: ${show(value)}: supported values: ${schema.enum.map(show).join(', ')}` });
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.maxLength !== undefined && length > schema.maxLength) errors.push({ field: path, type: 'FieldValueTooLong', message: `${path}: Too long: may not be more than ${schema.maxLength} bytes` });
    if (schema.minLength !== undefined && length < schema.minLength) invalid(`${at} should be at least ${schema.minLength} chars long`);
    if (schema.pattern !== undefined && !regex(schema.pattern).test(value)) invalid(`${at} should match '${schema.pattern}'`);
  }
  if (schema.format && !checkFormat(schema.format, value)) invalid(`${at} must be of type ${schema.format}: ${show(value)}`);
  if (typeof value === 'number') {
    if (schema.maximum !== undefined && (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum)) {
      invalid(`${at} should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`);
    }
    if (schema.minimum !== undefined && (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum)) {
      invalid(`${at} should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`);
    }
    if (schema.multipleOf !== undefined && value % schema.multipleOf !== 0) invalid(`${at} should be a multiple of ${schema.multipleOf}`);
  }

  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push({ field: path, type: 'FieldValueTooMany', message: `${path}: Too many: ${value.length}: must have at most ${schema.maxItems} items` });
    if (schema.minItems !== undefined && value.length < schema.minItems) invalid(`${at} should have at least ${schema.minItems} items`);
    const listType = schema['x-kubernetes-list-type'];
    if (listType === 'set' || schema.uniqueItems) {
      value.forEach((v, i) => {
        if (value.slice(0, i).some((w) => deepEqual(v, w))) errors.push({ field: `${path}[${i}]`, type: 'FieldValueDuplicate', message: `${path}[${i}]: Duplicate value: ${show(v)}` });
      });
    } else if (listType === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] ?? [];
      const seen: unknown[][] = [];
      value.forEach((v, i) => {
        if (!isObject(v)) return;
        const k = keys.map((name) => v[name]);
        if (seen.some((s) => deepEqual(s, k))) {
          errors.push({ field: `${path}[${i}]`, type: 'FieldValueDuplicate', message: `${path}[${i}]: Duplicate value: {${keys.map((name, j) => `"${name}":${show(k[j])}`).join(',')}}` });
        }
        seen.push(k);
      });
    }
    if (schema.items) {
      const oldList = Array.isArray(old) ? old : undefined;
      value.forEach((v, i) => walk(schema.items!, v, `${path}[${i}]`, opts, oldItem(schema, oldList, v, i), errors));
    }
  }

  if (isObject(value)) {
    const n = Object.keys(value).length;
    if (schema.maxProperties !== undefined && n > schema.maxProperties) errors.push({ field: path, type: 'FieldValueTooMany', message: `${path}: Too many: ${n}: must have at most ${schema.maxProperties} items` });
    if (schema.minProperties !== undefined && n < schema.minProperties) invalid(`${at} should have at least ${schema.minProperties} properties`);
    for (const name of schema.required ?? []) {
      // A null for a non-nullable field is pruned by the server before validation: it counts as absent.
      const v = value[name];
      const prunedNull = v === null && !schema.properties?.[name]?.nullable;
      if (!Object.hasOwn(value, name) || prunedNull) errors.push({ field: join(path, name), type: 'FieldValueRequired', message: `${join(path, name)}: Required value` });
    }
    const oldObj = isObject(old) ? old : undefined;
    for (const [name, v] of Object.entries(value)) {
      const sub = schema.properties?.[name] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      if (!sub) continue; // unknown: pruned (see unknownFields), or kept by preserve-unknown-fields
      if (v === null && !sub.nullable) continue; // pruned
      walk(sub, v, join(path, name), opts, oldObj?.[name], errors);
    }
  }

  for (const sub of schema.allOf ?? []) walk(sub, value, path, opts, old, errors);
  if (schema.anyOf && !schema.anyOf.some((sub) => validate(sub, value, { ...opts, old }, path).length === 0)) {
    const inner = schema.anyOf.flatMap((sub) => validate(sub, value, { ...opts, old }, path).map((e) => e.message.replace(/^[^:]*: /, '')));
    invalid(`${at} must match at least one schema in anyOf (${inner.join('; ')})`);
  }
  if (schema.oneOf && schema.oneOf.filter((sub) => validate(sub, value, { ...opts, old }, path).length === 0).length !== 1) invalid(`${at} must validate one and only one schema (oneOf)`);
  if (schema.not && validate(schema.not, value, { ...opts, old }, path).length === 0) invalid(`${at} must not validate the schema (not)`);

  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const mentionsOld = /\boldSelf\b/.test(rule.rule);
    if (mentionsOld && old === undefined && !rule.optionalOldSelf) continue; // transition rules run on updates only
    const twin = opts.cel?.[rule.rule];
    if (!twin) {
      if (opts.strictCel) invalid(`no JavaScript twin for the CEL rule ${JSON.stringify(rule.rule)}`);
      continue;
    }
    let ok: boolean;
    try {
      ok = twin(value, old);
    } catch {
      ok = false;
    }
    if (!ok) {
      const field = rule.fieldPath ? `${path}${rule.fieldPath}` : path;
      errors.push({ field, type: rule.reason ?? 'FieldValueInvalid', message: `${field}: Invalid value: ${show(value)}: ${rule.message ?? `failed rule: ${rule.rule}`}` });
    }
  }
}

/** The stored counterpart of a list item: by map keys for map lists, by position otherwise (as CEL's oldSelf). */
function oldItem(schema: JSONSchemaProps, oldList: unknown[] | undefined, item: unknown, i: number): unknown {
  if (!oldList) return undefined;
  if (schema['x-kubernetes-list-type'] === 'map' && isObject(item)) {
    const keys = schema['x-kubernetes-list-map-keys'] ?? [];
    return oldList.find((o) => isObject(o) && keys.every((k) => deepEqual(o[k], item[k])));
  }
  return schema['x-kubernetes-list-type'] === 'set' ? undefined : oldList[i];
}

/** Paths of the fields the API server would silently drop (pruning) from `value`. */
export function unknownFields(schema: JSONSchemaProps, value: unknown, path = ''): string[] {
  const out: string[] = [];
  prune(schema, value, path, out);
  return out;
}

/** A copy of `value` with the unknown fields pruned, as the API server stores it; `dropped` collects their paths. */
export function prune(schema: JSONSchemaProps, value: unknown, path = '', dropped: string[] = []): unknown {
  if (schema['x-kubernetes-preserve-unknown-fields'] && !schema.properties && !schema.items && !schema.additionalProperties) return structuredClone(value);
  if (Array.isArray(value)) {
    return schema.items ? value.map((v, i) => prune(schema.items!, v, `${path}[${i}]`, dropped)) : structuredClone(value);
  }
  if (!isObject(value)) return value;
  if (schema.type !== 'object' && !schema['x-kubernetes-preserve-unknown-fields'] && !schema.properties) return value;
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    // The object's own metadata is ObjectMeta, owned by the server: never pruned by the CRD schema.
    if (path === '' && name === 'metadata') {
      out[name] = structuredClone(v);
      continue;
    }
    const sub = schema.properties?.[name] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
    if (sub) {
      if (v === null && !sub.nullable) {
        dropped.push(join(path, name));
        continue;
      }
      out[name] = prune(sub, v, join(path, name), dropped);
    } else if (schema['x-kubernetes-preserve-unknown-fields'] || schema.additionalProperties === true) {
      out[name] = structuredClone(v);
    } else {
      dropped.push(join(path, name));
    }
  }
  return out;
}

const JUNCTOR_FORBIDDEN = ['type', 'description', 'default', 'additionalProperties', 'nullable'] as const;

/**
 * Why a schema is not structural (empty when it is): the rules the API server enforces when a CRD
 * is created, so that a schema that passes here is not refused by `kubectl apply`.
 */
export function structuralProblems(schema: JSONSchemaProps, path = 'openAPIV3Schema', root = true): string[] {
  const problems: string[] = [];
  const say = (p: string, what: string) => problems.push(`${p}: ${what}`);
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (!schema.type && !schema['x-kubernetes-int-or-string'] && !preserve) say(path, 'type must not be empty');
  if (root && schema.type !== 'object') say(path, 'the root must be of type object');
  if (schema.properties && schema.additionalProperties !== undefined) say(path, 'properties and additionalProperties are mutually exclusive');
  if (schema.type === 'array' && !schema.items) say(path, 'items must be specified for arrays');
  if (schema['x-kubernetes-int-or-string'] && schema.type) say(path, 'x-kubernetes-int-or-string must not be combined with a type');
  if (schema.pattern !== undefined) {
    try {
      new RegExp(schema.pattern);
      if (/\(\?[=!<]|\\[1-9]|\\k</.test(schema.pattern)) say(path, 'pattern uses lookaround or backreferences, which Go (RE2) does not support');
    } catch (err) {
      say(path, `pattern does not compile: ${(err as Error).message}`);
    }
  }
  for (const e of schema.enum ?? []) {
    const t = typeOf(e);
    if (schema.type && !(t === schema.type || (schema.type === 'number' && t === 'integer'))) say(path, `enum value ${show(e)} is not of type ${schema.type}`);
  }
  const listType = schema['x-kubernetes-list-type'];
  if (listType && schema.type !== 'array') say(path, 'x-kubernetes-list-type is for arrays only');
  if (listType === 'set' && schema.items && (schema.items.type === 'object' || schema.items.type === 'array')) say(path, 'a set list must have scalar items');
  if (listType === 'map') {
    const keys = schema['x-kubernetes-list-map-keys'] ?? [];
    if (keys.length === 0) say(path, 'a map list needs x-kubernetes-list-map-keys');
    if (schema.items?.type !== 'object') say(path, 'a map list must have object items');
    for (const k of keys) {
      const p = schema.items?.properties?.[k];
      if (!p) say(path, `map key ${k} is not a property of the items`);
      else if (p.type === 'object' || p.type === 'array') say(path, `map key ${k} must be a scalar`);
      if (p && !(schema.items?.required ?? []).includes(k) && p.default === undefined) say(path, `map key ${k} must be required or have a default`);
    }
  } else if (schema['x-kubernetes-list-map-keys']) say(path, 'x-kubernetes-list-map-keys needs x-kubernetes-list-type: map');
  for (const req of schema.required ?? []) if (schema.properties && !schema.properties[req] && !preserve) say(path, `required property ${req} is not defined`);
  for (const rule of schema['x-kubernetes-validations'] ?? []) if (typeof rule.rule !== 'string' || rule.rule.trim() === '') say(path, 'a validation rule must not be empty');

  if (root && schema.properties?.metadata) {
    const m = schema.properties.metadata;
    const extra = Object.keys(m).filter((k) => k !== 'type' && k !== 'properties');
    const props = Object.keys(m.properties ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
    if (m.type !== 'object' || extra.length || props.length) say(`${path}.properties[metadata]`, 'only type: object (and constraints on name / generateName) are allowed for metadata');
  }
  for (const [name, sub] of Object.entries(schema.properties ?? {})) {
    if (root && name === 'metadata') continue;
    problems.push(...structuralProblems(sub, `${path}.properties[${name}]`, false));
  }
  if (isObject(schema.additionalProperties)) problems.push(...structuralProblems(schema.additionalProperties, `${path}.additionalProperties`, false));
  if (schema.items) problems.push(...structuralProblems(schema.items, `${path}.items`, false));
  const junctors: [string, JSONSchemaProps][] = [
    ...(schema.allOf ?? []).map((s, i) => [`allOf[${i}]`, s] as [string, JSONSchemaProps]),
    ...(schema.anyOf ?? []).map((s, i) => [`anyOf[${i}]`, s] as [string, JSONSchemaProps]),
    ...(schema.oneOf ?? []).map((s, i) => [`oneOf[${i}]`, s] as [string, JSONSchemaProps]),
    ...(schema.not ? [['not', schema.not] as [string, JSONSchemaProps]] : []),
  ];
  for (const [where, sub] of junctors) problems.push(...junctorProblems(sub, `${path}.${where}`));
  return problems;
}

/** Inside allOf/anyOf/oneOf/not only value validations are allowed (no types, descriptions, defaults...). */
function junctorProblems(schema: JSONSchemaProps, path: string): string[] {
  const problems: string[] = [];
  for (const k of JUNCTOR_FORBIDDEN) if (schema[k] !== undefined) problems.push(`${path}: ${k} must not be set inside a logical junctor`);
  for (const k of Object.keys(schema)) if (k.startsWith('x-kubernetes-')) problems.push(`${path}: ${k} must not be set inside a logical junctor`);
  for (const sub of Object.values(schema.properties ?? {})) problems.push(...junctorProblems(sub, `${path}.properties`));
  if (schema.items) problems.push(...junctorProblems(schema.items, `${path}.items`));
  for (const sub of [...(schema.allOf ?? []), ...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.not ? [schema.not] : [])]) problems.push(...junctorProblems(sub, path));
  return problems;
}
