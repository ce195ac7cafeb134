// What the API server does with a CRD's structural schema on every write of a custom resource:
// fill in defaults, prune the fields the schema does not declare, validate (with the CEL rules
// through their JavaScript twins), and report each problem as a metav1.StatusCause. Validation and
// pruning are src/k8s/schema.ts (the one validator of weft's schemas, shared with the schema
// tests); defaulting, the cause shape and list types for server-side apply are here.
import { prune as pruneSchema, structuralProblems, validate as validateSchema, type CelTwin, type FieldError, type JSONSchemaProps } from '../../../src/k8s/schema.ts';

export type Schema = JSONSchemaProps;

/** One problem, as metav1.StatusCause carries it (message without the field prefix). */
export interface Cause {
  reason: FieldError['type'];
  message: string;
  field: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

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

/** The object with unknown fields dropped and defaults applied; `dropped` collects the pruned paths. */
export function pruneAndDefault(schema: Schema, obj: Record<string, unknown>, dropped: string[]): Record<string, unknown> {
  return applyDefaults(schema, pruneSchema(schema, obj, '', dropped)) as Record<string, unknown>;
}

/** Every problem of a whole object against its CRD schema (CEL rules run through `cel` twins). */
export function validateObject(schema: Schema, obj: unknown, opts: { cel?: Readonly<Record<string, CelTwin>>; old?: unknown }): Cause[] {
  return validateSchema(schema, obj, { ...(opts.cel ? { cel: opts.cel } : {}), ...(opts.old === undefined ? {} : { old: opts.old }) }).map((e) => ({
    reason: e.type,
    field: e.field,
    message: e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message,
  }));
}

/** A cause as one line of an Invalid Status message: "spec.size: Invalid value: 0: ...". */
export function causeText(c: Cause): string {
  return c.field ? `${c.field}: ${c.message}` : c.message;
}

export function checkStructural(schema: Schema): string[] {
  return structuralProblems(schema);
}

/** The schema of the value at a field path (elements "f:name", "v:..."), if the schema says. */
function schemaAt(root: Schema | undefined, path: string[]): Schema | undefined {
  let s = root;
  for (const el of path) {
    if (!s) return undefined;
    if (el.startsWith('f:')) {
      const name = el.slice(2);
      s = s.properties?.[name] ?? (isObject(s.additionalProperties) ? (s.additionalProperties as Schema) : undefined);
    } else s = s.items;
  }
  return s;
}

/**
 * Whether the list at `path` is a set (each member owned on its own by server-side apply):
 * metadata.finalizers always, others when the schema says x-kubernetes-list-type: set. Lists of
 * other types are atomic here (map lists are owned as a whole: a simplification).
 */
export function setListResolver(schema: Schema | undefined): (path: string[]) => boolean {
  return (path) => {
    if (path.length === 2 && path[0] === 'f:metadata' && path[1] === 'f:finalizers') return true;
    return schemaAt(schema, path)?.['x-kubernetes-list-type'] === 'set';
  };
}
