// Desired-state kernel reconciler: controllers build a KernelState, reconcile() applies only the
// difference to what weft owns (links with its prefix, routes/rules with its protocol, nft tables
// with its prefix) and leaves everything else alone.
export { reconcile, teardown, readState } from './reconcile.ts';
export type { KernelOptions, ReadStateOptions } from './reconcile.ts';
export { KernelStateError } from './types.ts';
export type { KernelState, VxlanLink, RouteSpec, RuleSpec, NftTable, Ownership, ReconcileReport } from './types.ts';
export { nftFingerprint, normaliseNftBody } from './nft.ts';
export { normaliseState } from './desired.ts';
export type { CommandRunner, CommandResult } from './exec.ts';
