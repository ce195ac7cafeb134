// The shapes the control socket (`wg`'s cross-platform protocol) reads from and writes to a device.
// A `set` is parsed and validated whole into a SetRequest before anything is applied, so a bad line
// answers an errno and changes nothing.
import type { Prefix } from '../prefix.ts';

export type AllowedIpOp = { op: 'replace' } | { op: 'add'; prefix: Prefix } | { op: 'remove'; prefix: Prefix };

export interface PeerSet {
  publicKey: Uint8Array;
  remove: boolean;
  updateOnly: boolean;
  presharedKey?: Uint8Array;
  endpoint?: { address: string; port: number };
  persistentKeepaliveInterval?: number;
  /** In the order the lines came: `replace_allowed_ips=true` clears what came before it. */
  allowedIps: AllowedIpOp[];
}

export interface SetRequest {
  /** All-zero clears the key. Stored clamped. */
  privateKey?: Uint8Array;
  listenPort?: number;
  /** 0 clears. */
  fwmark?: number;
  replacePeers: boolean;
  /** In order; the same public key may appear more than once. */
  peers: PeerSet[];
}

export interface PeerSnapshot {
  publicKey: Uint8Array;
  presharedKey: Uint8Array; // all-zero when none
  endpoint: { address: string; port: number } | null;
  lastHandshakeTimeSec: bigint;
  lastHandshakeTimeNsec: bigint;
  txBytes: bigint;
  rxBytes: bigint;
  persistentKeepaliveInterval: number;
  allowedIps: Prefix[];
}

export interface DeviceSnapshot {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  peers: PeerSnapshot[];
}

/** An errno the control socket reports (as a negative number, like wireguard-go). */
export class UapiError extends Error {
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
  }
}

export const Errno = {
  EIO: 5,
  EINVAL: 22,
  EADDRINUSE: 98,
  EPROTO: 71,
  ENOANO: 55,
} as const;

/** What the control socket needs from a device. */
export interface UapiDevice {
  snapshot(): DeviceSnapshot;
  /** Apply a validated request; throw UapiError on a semantic failure (e.g. port in use). */
  applySet(request: SetRequest): void;
  /** Counters for weft's `stats=1` extension (drops by reason, traffic); optional. */
  stats?(): Record<string, number | bigint>;
}
