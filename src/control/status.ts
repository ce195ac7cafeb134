// Status writes shared by several writers (the controller owns the `Valid` condition, the gateway
// owns `Connected`), Kubernetes style: read, merge one's own part, write with the read
// resourceVersion, retry on Conflict. The phase is derived from the conditions so that neither
// writer can overwrite the other's verdict.
import { sameData } from '../store/objects.ts';
import { isStoreError, type Resource, type Store } from '../store/types.ts';
import type { Condition, PeeringPhase, PeeringStatus } from './resources.ts';

export async function patchStatus<S>(store: Store, kind: string, name: string, change: (current: S | undefined) => S | null): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const obj = await store.get<Resource<unknown, S>>(kind, name);
    if (!obj) return;
    const next = change(obj.status);
    // Compared as data: a real API server returns keys in its own order.
    if (next === null || sameData(next, obj.status)) return;
    try {
      await store.updateStatus(kind, name, next, { resourceVersion: obj.metadata.resourceVersion });
      return;
    } catch (err) {
      if (isStoreError(err, 'NotFound')) return;
      if (!isStoreError(err, 'Conflict')) throw err;
    }
  }
  throw new Error(`status of ${kind}/${name}: too many conflicting writers`);
}

/** Set one condition, keeping lastTransitionTime when its status did not change. */
export function setCondition(conditions: Condition[] | undefined, c: Omit<Condition, 'lastTransitionTime'>): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  const previous = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = previous && previous.status === c.status ? previous.lastTransitionTime : new Date().toISOString();
  const next: Condition = { ...c, lastTransitionTime };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

export function conditionOf(status: { conditions?: Condition[] } | undefined, type: string): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** Error when the configuration is invalid, Connected when the data path answers, else Connecting. */
export function derivePeeringStatus(status: PeeringStatus): PeeringStatus {
  const valid = conditionOf(status, 'Valid');
  const connected = conditionOf(status, 'Connected');
  let phase: PeeringPhase = 'Connecting';
  let reason: string | undefined;
  let message: string | undefined;
  if (valid?.status === 'False') {
    phase = 'Error';
    reason = valid.reason;
    message = valid.message;
  } else if (connected?.status === 'True') {
    phase = 'Connected';
  } else if (connected) {
    reason = connected.reason;
    message = connected.message;
    if (connected.reason === 'HandshakeFailed') phase = 'Error';
  }
  const out: PeeringStatus = { ...status, phase };
  if (reason) out.reason = reason;
  else delete out.reason;
  if (message) out.message = message;
  else delete out.message;
  return out;
}
