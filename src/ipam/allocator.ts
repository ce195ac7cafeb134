// The IPAM allocator: which local range stands for each remote cluster's pod CIDR and external
// CIDR, and which range is our own external CIDR. Pure and synchronous: no I/O, no clock. The
// caller persists `snapshot()` (JSON) and hands it back to the constructor after a restart.
//
// Every range this cluster routes is either local (pod, service, node, reserved — plus the special
// ranges nobody may use) or a stand-in (our external CIDR, each peer's pod remap and external
// remap). Invariants: stand-ins overlap neither each other nor anything local, and every stand-in
// lies inside a remap pool. A stand-in for a remote CIDR is the real CIDR when that lies inside a
// pool and collides with nothing, else the lowest free aligned block of the same length, trying
// the pools in order. Each side decides on its own; they never agree.
//
// The pools are the trust boundary for addresses: a remote's announcement is only a request, and
// whatever it announces (8.0.0.0/8, this cluster's VPC resolver, another peer's WAN address) can
// only ever be routed as a block of the pools, which the administrator chose for the purpose.
//
// Methods either succeed or throw an IpamError and leave the state exactly as it was.
import {
  firstFreeBlock,
  formatCidr,
  contains,
  overlaps,
  parseCidr,
  sameCidr,
  SPECIAL_RANGES,
  specialRangeOverlapping,
} from './cidr.ts';
import type { Cidr } from './cidr.ts';
import { IpamError } from './errors.ts';

export interface IpamConfig {
  /** Local pod CIDR, e.g. "10.0.0.0/16". */
  podCIDR: string;
  /** Local service CIDR, e.g. "10.96.0.0/12". */
  serviceCIDR: string;
  /** Node/underlay networks, e.g. ["192.168.10.0/24"]. */
  nodeCIDRs: string[];
  /** Anything else never to hand out (fabric/internal ranges). */
  reserved?: string[];
  /** Where remaps and our external CIDR come from, tried in order (default DEFAULT_POOLS). */
  pools?: string[];
  /** The largest range a remote may announce, as a prefix length (default 12: a /12 at most). */
  maxRemoteCIDRSize?: number;
  /** Prefix length of our own external CIDR (8-30), default 16. */
  externalPrefixLength?: number;
}

export interface IpamPeerSnapshot {
  remotePodCIDR: string;
  podRemap: string;
  remoteExternalCIDR: string | null;
  externalRemap: string | null;
}

export interface IpamSnapshot {
  version: 1;
  externalCIDR: string | null;
  peers: Record<string, IpamPeerSnapshot>;
}

/** The private ranges (RFC 1918) and the shared address space (RFC 6598): never routed publicly. */
export const DEFAULT_POOLS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
export const DEFAULT_MAX_REMOTE_CIDR_SIZE = 12;
export const DEFAULT_EXTERNAL_PREFIX_LENGTH = 16;
/** Accepted prefix lengths for CIDRs a peer announces (and for our external CIDR). */
export const REMOTE_MIN_BITS = 8;
export const REMOTE_MAX_BITS = 30;

/**
 * Validate a CIDR announced by a remote cluster: strict syntax, network address, length 8-30, and
 * not in 0.0.0.0/8, loopback, link-local, multicast or 240.0.0.0/4. Throws IpamError
 * 'InvalidCIDR' (or 'Unsupported' for IPv6) with a message fit for a status condition.
 */
export function parseRemoteCidr(text: unknown, what = 'remote CIDR'): Cidr {
  const cidr = parseCidr(text, what);
  if (cidr.bits < REMOTE_MIN_BITS || cidr.bits > REMOTE_MAX_BITS) {
    throw new IpamError(
      'InvalidCIDR',
      `${what} ${formatCidr(cidr)}: prefix length must be between /${REMOTE_MIN_BITS} and /${REMOTE_MAX_BITS}`,
    );
  }
  const special = specialRangeOverlapping(cidr);
  if (special !== undefined) {
    throw new IpamError('InvalidCIDR', `${what} ${formatCidr(cidr)} lies in the ${special}, which cannot be routed`);
  }
  return cidr;
}

interface PeerRecord {
  remotePod: Cidr;
  podRemap: Cidr;
  remoteExternal: Cidr | null;
  externalRemap: Cidr | null;
}

interface Labelled {
  cidr: Cidr;
  what: string;
}

/** Which stand-in to leave out when computing what is taken (the one being replaced). */
interface Exclude {
  peer: string;
  kind: 'pod' | 'external';
}

export class Ipam {
  /** Local ranges plus the special ranges: never handed out, never kept as a real CIDR. */
  readonly #local: Labelled[];
  readonly #pools: Cidr[];
  readonly #externalBits: number;
  readonly #maxRemoteBits: number;
  #external: Cidr | null = null;
  readonly #peers = new Map<string, PeerRecord>();

  constructor(config: IpamConfig, snapshot?: IpamSnapshot) {
    if (config === null || typeof config !== 'object') throw new IpamError('InvalidConfig', 'IPAM config must be an object');
    const pod = parseLocal(config.podCIDR, 'podCIDR');
    const service = parseLocal(config.serviceCIDR, 'serviceCIDR');
    if (overlaps(pod, service)) {
      throw new IpamError('Overlap', `podCIDR ${formatCidr(pod)} overlaps serviceCIDR ${formatCidr(service)}`);
    }
    const nodes = parseLocalList(config.nodeCIDRs, 'nodeCIDRs', false);
    const reserved = parseLocalList(config.reserved, 'reserved', true);
    const pools = parseLocalList(config.pools ?? [...DEFAULT_POOLS], 'pools', true);
    for (let i = 0; i < pools.length; i++) {
      for (let j = i + 1; j < pools.length; j++) {
        if (overlaps(pools[i]!, pools[j]!)) {
          throw new IpamError('Overlap', `pools ${formatCidr(pools[i]!)} and ${formatCidr(pools[j]!)} overlap; list each range once`);
        }
      }
    }
    const externalBits = config.externalPrefixLength ?? DEFAULT_EXTERNAL_PREFIX_LENGTH;
    if (!Number.isInteger(externalBits) || externalBits < REMOTE_MIN_BITS || externalBits > REMOTE_MAX_BITS) {
      throw new IpamError(
        'InvalidConfig',
        `externalPrefixLength must be an integer between ${REMOTE_MIN_BITS} and ${REMOTE_MAX_BITS}, got ${String(externalBits)}`,
      );
    }
    const maxRemote = config.maxRemoteCIDRSize ?? DEFAULT_MAX_REMOTE_CIDR_SIZE;
    if (!Number.isInteger(maxRemote) || maxRemote < REMOTE_MIN_BITS || maxRemote > REMOTE_MAX_BITS) {
      throw new IpamError('InvalidConfig', `maxRemoteCIDRSize must be an integer between ${REMOTE_MIN_BITS} and ${REMOTE_MAX_BITS}, got ${String(maxRemote)}`);
    }
    this.#maxRemoteBits = maxRemote;
    this.#local = [
      { cidr: pod, what: `local pod CIDR ${formatCidr(pod)}` },
      { cidr: service, what: `local service CIDR ${formatCidr(service)}` },
      ...nodes.map((cidr) => ({ cidr, what: `node CIDR ${formatCidr(cidr)}` })),
      ...reserved.map((cidr) => ({ cidr, what: `reserved range ${formatCidr(cidr)}` })),
      ...SPECIAL_RANGES,
    ];
    this.#pools = pools;
    this.#externalBits = externalBits;
    if (snapshot !== undefined) this.#load(snapshot);
  }

  /** Our external CIDR: allocated once from the pools, never overlapping local ranges or remaps. */
  externalCIDR(): string {
    if (this.#external === null) {
      this.#external = this.#allocate(this.#externalBits, this.#taken(null), 'our external CIDR');
    }
    return formatCidr(this.#external);
  }

  /**
   * Local stand-in for `peerId`'s pod CIDR: the real CIDR when it collides with nothing local or
   * allocated, else the lowest free block of the same size from the pools. Same answer for the
   * same announcement; a different announcement re-allocates.
   */
  remapPodCIDR(peerId: string, remotePodCIDR: string): string {
    checkPeerId(peerId);
    const real = this.#announced(remotePodCIDR, `pod CIDR of peer ${JSON.stringify(peerId)}`);
    const record = this.#peers.get(peerId);
    if (record && sameCidr(record.remotePod, real)) return formatCidr(record.podRemap);
    if (record?.remoteExternal && overlaps(record.remoteExternal, real)) {
      throw new IpamError(
        'Overlap',
        `peer ${JSON.stringify(peerId)} announces pod CIDR ${formatCidr(real)} overlapping its own external CIDR ${formatCidr(record.remoteExternal)}`,
      );
    }
    const remap = this.#choose(real, this.#taken({ peer: peerId, kind: 'pod' }), `pod CIDR of peer ${JSON.stringify(peerId)}`);
    this.#peers.set(
      peerId,
      record
        ? { ...record, remotePod: real, podRemap: remap }
        : { remotePod: real, podRemap: remap, remoteExternal: null, externalRemap: null },
    );
    return formatCidr(remap);
  }

  /** Same as remapPodCIDR for the remote's external CIDR. The peer's pod CIDR must be known first. */
  remapExternalCIDR(peerId: string, remoteExternalCIDR: string): string {
    checkPeerId(peerId);
    const real = this.#announced(remoteExternalCIDR, `external CIDR of peer ${JSON.stringify(peerId)}`);
    const record = this.#peers.get(peerId);
    if (!record) {
      throw new IpamError('UnknownPeer', `peer ${JSON.stringify(peerId)} has no pod CIDR remap yet; call remapPodCIDR first`);
    }
    if (record.remoteExternal && record.externalRemap && sameCidr(record.remoteExternal, real)) {
      return formatCidr(record.externalRemap);
    }
    if (overlaps(record.remotePod, real)) {
      throw new IpamError(
        'Overlap',
        `peer ${JSON.stringify(peerId)} announces external CIDR ${formatCidr(real)} overlapping its own pod CIDR ${formatCidr(record.remotePod)}`,
      );
    }
    const remap = this.#choose(
      real,
      this.#taken({ peer: peerId, kind: 'external' }),
      `external CIDR of peer ${JSON.stringify(peerId)}`,
    );
    this.#peers.set(peerId, { ...record, remoteExternal: real, externalRemap: remap });
    return formatCidr(remap);
  }

  /** Forget a peer and free its ranges. Unknown peers are ignored. */
  release(peerId: string): void {
    this.#peers.delete(peerId);
  }

  lookup(peerId: string): { podRemap: string; externalRemap: string | null } | undefined {
    const record = this.#peers.get(peerId);
    if (!record) return undefined;
    return {
      podRemap: formatCidr(record.podRemap),
      externalRemap: record.externalRemap ? formatCidr(record.externalRemap) : null,
    };
  }

  /** JSON-serialisable state; peers in sorted id order so equal states serialise identically. */
  snapshot(): IpamSnapshot {
    const peers: Record<string, IpamPeerSnapshot> = {};
    for (const id of [...this.#peers.keys()].sort()) {
      const r = this.#peers.get(id)!;
      // defineProperty, not assignment: a peer called "__proto__" must stay an ordinary key.
      Object.defineProperty(peers, id, {
        value: {
          remotePodCIDR: formatCidr(r.remotePod),
          podRemap: formatCidr(r.podRemap),
          remoteExternalCIDR: r.remoteExternal ? formatCidr(r.remoteExternal) : null,
          externalRemap: r.externalRemap ? formatCidr(r.externalRemap) : null,
        },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return { version: 1, externalCIDR: this.#external ? formatCidr(this.#external) : null, peers };
  }

  /** Peers a snapshot held with a stand-in outside the pools (an older rule): dropped on load, re-placed on their next remap. */
  droppedOnLoad(): string[] {
    return [...this.#dropped];
  }

  // ---- internals ----

  readonly #dropped: string[] = [];

  /** A remote's announced CIDR: well formed, routable, and no larger than this cluster accepts. */
  #announced(text: unknown, what: string): Cidr {
    const cidr = parseRemoteCidr(text, what);
    if (cidr.bits < this.#maxRemoteBits) {
      throw new IpamError('TooLarge', `${what} ${formatCidr(cidr)} is larger than this cluster accepts from a remote (a /${this.#maxRemoteBits} at most: ClusterNetwork maxRemoteCIDRSize)`);
    }
    return cidr;
  }

  /** Everything a new stand-in must avoid, minus the one stand-in being replaced. */
  #taken(exclude: Exclude | null): Labelled[] {
    const out = [...this.#local];
    if (this.#external) out.push({ cidr: this.#external, what: `our external CIDR ${formatCidr(this.#external)}` });
    for (const [id, r] of this.#peers) {
      if (!(exclude?.peer === id && exclude.kind === 'pod')) {
        out.push({ cidr: r.podRemap, what: `pod CIDR stand-in ${formatCidr(r.podRemap)} of peer ${JSON.stringify(id)}` });
      }
      if (r.externalRemap && !(exclude?.peer === id && exclude.kind === 'external')) {
        out.push({
          cidr: r.externalRemap,
          what: `external CIDR stand-in ${formatCidr(r.externalRemap)} of peer ${JSON.stringify(id)}`,
        });
      }
    }
    return out;
  }

  /** The real CIDR when it lies in a pool and is free, else a same-size block from the pools. */
  #choose(real: Cidr, taken: Labelled[], what: string): Cidr {
    const clash = taken.find((t) => overlaps(t.cidr, real));
    const inPool = this.#pools.some((pool) => contains(pool, real));
    if (!clash && inPool) return real;
    const why = clash ? `${formatCidr(real)} collides with the ${clash.what}` : `${formatCidr(real)} lies outside the remap pools`;
    return this.#allocate(real.bits, taken, `${what} (${why})`);
  }

  /** Lowest free aligned block of length `bits`, pools in order. */
  #allocate(bits: number, taken: Labelled[], what: string): Cidr {
    const cidrs = taken.map((t) => t.cidr);
    for (const pool of this.#pools) {
      const block = firstFreeBlock(pool, bits, cidrs);
      if (block) return block;
    }
    const pools = this.#pools.map(formatCidr).join(', ') || 'none configured';
    throw new IpamError('PoolExhausted', `no free /${bits} block left in the pools (${pools}) for ${what}`);
  }

  /** Restore a snapshot, refusing anything malformed or no longer compatible with the config. */
  #load(snapshot: unknown): void {
    if (snapshot === null || typeof snapshot !== 'object') throw invalid('must be an object');
    const s = snapshot as Record<string, unknown>;
    if (s.version !== 1) throw invalid(`unsupported version ${JSON.stringify(s.version)} (expected 1)`);
    // A Kubernetes API server stores an empty map applied into a preserve-unknown-fields field as
    // null (server-side apply drops empty objects there): no peers, not a broken snapshot.
    const peerMap = s.peers === null ? {} : s.peers;
    if (typeof peerMap !== 'object' || Array.isArray(peerMap)) throw invalid('"peers" must be an object');

    const standIns: Labelled[] = [];
    let external: Cidr | null = null;
    if (s.externalCIDR !== null) {
      external = snapshotCidr(() => parseCidr(s.externalCIDR, 'externalCIDR'));
      if (external.bits !== this.#externalBits) {
        throw conflict(`our external CIDR ${formatCidr(external)} is a /${external.bits} but externalPrefixLength is ${this.#externalBits}`);
      }
      this.#checkFromPools(external, 'our external CIDR');
      standIns.push({ cidr: external, what: `our external CIDR ${formatCidr(external)}` });
    }

    const peers = new Map<string, PeerRecord>();
    for (const id of Object.keys(peerMap)) {
      const raw = (peerMap as Record<string, unknown>)[id];
      if (id === '' || raw === null || typeof raw !== 'object') throw invalid(`peer ${JSON.stringify(id)} is malformed`);
      const p = raw as Record<string, unknown>;
      const name = `peer ${JSON.stringify(id)}`;
      const remotePod = snapshotCidr(() => parseRemoteCidr(p.remotePodCIDR, `${name} remotePodCIDR`));
      const podRemap = snapshotCidr(() => parseCidr(p.podRemap, `${name} podRemap`));
      if (podRemap.bits !== remotePod.bits) throw invalid(`${name} podRemap ${formatCidr(podRemap)} is not the size of ${formatCidr(remotePod)}`);
      const peerStandIns: Labelled[] = [{ cidr: podRemap, what: `pod CIDR stand-in ${formatCidr(podRemap)} of ${name}` }];

      let remoteExternal: Cidr | null = null;
      let externalRemap: Cidr | null = null;
      if ((p.remoteExternalCIDR === null) !== (p.externalRemap === null)) {
        throw invalid(`${name} must have both remoteExternalCIDR and externalRemap, or neither`);
      }
      if (p.remoteExternalCIDR !== null) {
        remoteExternal = snapshotCidr(() => parseRemoteCidr(p.remoteExternalCIDR, `${name} remoteExternalCIDR`));
        externalRemap = snapshotCidr(() => parseCidr(p.externalRemap, `${name} externalRemap`));
        if (externalRemap.bits !== remoteExternal.bits) {
          throw invalid(`${name} externalRemap ${formatCidr(externalRemap)} is not the size of ${formatCidr(remoteExternal)}`);
        }
        if (overlaps(remoteExternal, remotePod)) {
          throw invalid(`${name} external CIDR ${formatCidr(remoteExternal)} overlaps its pod CIDR ${formatCidr(remotePod)}`);
        }
        peerStandIns.push({ cidr: externalRemap, what: `external CIDR stand-in ${formatCidr(externalRemap)} of ${name}` });
      }
      // Kept by an older rule (real CIDRs outside any pool) or with pools since narrowed: this
      // peer is placed anew at its next remap rather than refusing every peer's snapshot.
      const outside = peerStandIns.find((x) => !this.#pools.some((pool) => contains(pool, x.cidr)));
      if (outside) {
        this.#dropped.push(`${outside.what} lies outside the remap pools; ${name} is placed anew`);
        continue;
      }
      standIns.push(...peerStandIns);
      peers.set(id, { remotePod, podRemap, remoteExternal, externalRemap });
    }

    // Stand-ins against the (possibly changed) local ranges: a conflict with the config.
    for (const standIn of standIns) {
      const clash = this.#local.find((l) => overlaps(l.cidr, standIn.cidr));
      if (clash) throw conflict(`${standIn.what} overlaps the ${clash.what}`);
    }
    // Stand-ins against each other: the snapshot contradicts itself. Two CIDRs are nested or
    // disjoint, so after sorting by start any overlap shows up between neighbours.
    const sorted = [...standIns].sort((a, b) => a.cidr.start - b.cidr.start);
    for (let i = 1; i < sorted.length; i++) {
      if (overlaps(sorted[i - 1]!.cidr, sorted[i]!.cidr)) {
        throw invalid(`${sorted[i - 1]!.what} overlaps ${sorted[i]!.what}`);
      }
    }

    this.#external = external;
    for (const [id, r] of peers) this.#peers.set(id, r);
  }

  /** Our external CIDR was allocated from the pools, so it must still lie in one. */
  #checkFromPools(cidr: Cidr, what: string): void {
    if (!this.#pools.some((pool) => contains(pool, cidr))) {
      throw conflict(`${what} ${formatCidr(cidr)} is outside every configured pool (${this.#pools.map(formatCidr).join(', ') || 'none'})`);
    }
  }
}

function checkPeerId(peerId: unknown): asserts peerId is string {
  if (typeof peerId !== 'string' || peerId === '') throw new IpamError('InvalidPeer', 'peer id must be a non-empty string');
}

function parseLocal(text: unknown, what: string): Cidr {
  const cidr = parseCidr(text, what);
  if (cidr.bits === 0) throw new IpamError('InvalidCIDR', `${what} ${formatCidr(cidr)} covers every address; use a real range`);
  return cidr;
}

function parseLocalList(list: unknown, what: string, optional: boolean): Cidr[] {
  if (list === undefined && optional) return [];
  if (!Array.isArray(list)) throw new IpamError('InvalidConfig', `${what} must be a list of CIDRs`);
  return list.map((text, i) => parseLocal(text, `${what}[${i}]`));
}

function invalid(message: string): IpamError {
  return new IpamError('InvalidSnapshot', `IPAM snapshot is invalid: ${message}`);
}

function conflict(message: string): IpamError {
  return new IpamError('SnapshotConflict', `IPAM snapshot no longer fits the configuration: ${message}`);
}

/** Parse a CIDR from a snapshot, turning a parse error into InvalidSnapshot. */
function snapshotCidr(parse: () => Cidr): Cidr {
  try {
    return parse();
  } catch (err) {
    if (err instanceof IpamError) throw invalid(err.message);
    throw err;
  }
}
