// The desired kernel state weft's controllers compute (pure data), and what the reconciler reports.
// Controllers never talk to the kernel: they build a KernelState and hand it to reconcile().

/** A VXLAN link weft owns (its name starts with Ownership.linkPrefix). */
export interface VxlanLink {
  kind: 'vxlan';
  name: string;
  /** VNI, 0..16777215. */
  id: number;
  /** UDP destination port. */
  port: number;
  /** Local underlay address (IPv4 or IPv6). */
  local: string;
  /** Point-to-point peer; without it, `fdb` lists the peers. */
  remote?: string;
  /** Underlay device. */
  dev?: string;
  mtu: number;
  /** Interface addresses, CIDR with host bits, e.g. "100.126.100.11/24". */
  addresses: string[];
  /** Remote underlay IPs for all-zero-MAC (flood) FDB entries. */
  fdb?: string[];
}

export interface RouteSpec {
  table: number | 'main';
  /** Destination network, CIDR (a bare address means a host route). */
  dst: string;
  via?: string;
  dev: string;
  onlink?: boolean;
  mtu?: number;
  src?: string;
  /** Route priority; defaults to the kernel's default (0 for IPv4, 1024 for IPv6). */
  metric?: number;
}

export interface RuleSpec {
  priority: number;
  table: number;
  fwmark?: number;
  /** Defaults to 0xffffffff when fwmark is given. */
  fwmask?: number;
  to?: string;
  from?: string;
  iif?: string;
  /** Address family; inferred from `to`/`from`, otherwise IPv4. */
  family?: 4 | 6;
}

export interface NftTable {
  family: 'ip' | 'ip6' | 'inet';
  name: string;
  /** Body inside `table <family> <name> { … }`. */
  body: string;
  /** Only in readState(): the fingerprint stored in the table's comment ("" when none). */
  fingerprint?: string;
}

export interface KernelState {
  links: VxlanLink[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  nftTables: NftTable[];
  /** e.g. {"net.ipv4.ip_forward": "1", "net.ipv4.conf.weft-vx.rp_filter": "2"} */
  sysctls: Record<string, string>;
}

/** What marks kernel objects as weft's: nothing else is ever changed or deleted. */
export interface Ownership {
  /** VXLAN links whose name starts with this, e.g. "weft-". */
  linkPrefix: string;
  /** weft's routes carry `proto <routeProtocol>`, e.g. 250. */
  routeProtocol: number;
  /** weft's rules carry `protocol <ruleProtocol>`. */
  ruleProtocol: number;
  /** nft tables whose name starts with this, e.g. "weft". */
  nftPrefix: string;
}

export interface ReconcileReport {
  /** One human line per applied change: "route add 10.70.0.0/16 table 1800", … */
  changed: string[];
  /** Kernel refusals and conflicts with state weft does not own. */
  errors: string[];
}

/** Thrown for invalid desired state, before anything is touched. */
export class KernelStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelStateError';
  }
}
