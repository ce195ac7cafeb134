// The one error type IPAM throws. `reason` is machine-readable (the controller branches on it and
// puts it in a status condition); `message` is a sentence a person can act on.

export type IpamErrorReason =
  /** Not a strict IPv4 CIDR/address: garbage, host bits set, bad prefix length, special range. */
  | 'InvalidCIDR'
  /** IPv6 (IPAM is IPv4 only for now). */
  | 'Unsupported'
  /** A configuration value of the wrong shape (not a list, prefix length out of range, ...). */
  | 'InvalidConfig'
  /** Two ranges that must be disjoint are not (pod/service, two pools, a peer's pod/external). */
  | 'Overlap'
  /** A remote announced a range larger than this cluster accepts (maxRemoteCIDRSize). */
  | 'TooLarge'
  /** No free block of the needed size is left in any pool. */
  | 'PoolExhausted'
  /** The snapshot is malformed or contradicts itself. */
  | 'InvalidSnapshot'
  /** The snapshot is well formed but no longer fits the configuration. */
  | 'SnapshotConflict'
  /** An operation that needs an existing peer was called for one IPAM does not know. */
  | 'UnknownPeer'
  /** The peer id is not a non-empty string. */
  | 'InvalidPeer'
  /** translate(): the two prefixes do not have the same length. */
  | 'PrefixLengthMismatch'
  /** translate(): the address is not inside the source prefix. */
  | 'AddressOutsidePrefix';

export class IpamError extends Error {
  readonly reason: IpamErrorReason;

  constructor(reason: IpamErrorReason, message: string) {
    super(message);
    this.name = 'IpamError';
    this.reason = reason;
  }
}
