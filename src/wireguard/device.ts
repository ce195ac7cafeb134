// A userspace WireGuard device: the configuration `wg` reads and writes, the peers, and the glue
// between the control plane (timers) and the native packet path, which runs the handshakes.
import { clampPrivateKey, publicKeyOf } from './crypto.ts';
import { equalBytes, isZero, toHex } from './keys.ts';
import { encodePrefixes, native as loadNative, type NativeCounters, type NativeDevice, type NativeEvent } from './native.ts';
import { Peer, type PeerHost } from './peer.ts';
import { AllowedIps } from './allowed-ips.ts';
import type { Prefix } from './prefix.ts';
import { Errno, UapiError, type DeviceSnapshot, type PeerSet, type SetRequest, type UapiDevice } from './uapi/types.ts';
import type { TestRequest, UapiTestHooks } from './uapi/protocol.ts';
import { silentLogger, type Logger } from '../log.ts';

export const DEFAULT_MTU = 1420;
/** How often peer timers are evaluated; every WireGuard timer is whole seconds, so 100 ms is ample. */
const TICK_MS = 100;

export interface DeviceOptions {
  mtu?: number;
  log?: Logger;
  /**
   * TEST ONLY: accept the control socket's `test=1` (applyTest). weft-wg sets it only when started
   * with WEFT_WG_TEST_HOOKS=1; never enable it on a production device.
   */
  testHooks?: boolean;
  /**
   * Segmentation offloads on the packet path (default true): TCP super-packets through the TUN,
   * UDP GSO/GRO on the socket. False only to measure what they bring (bench/wg-throughput.ts).
   */
  offloads?: boolean;
  /**
   * Extra threads per direction for the AEAD of a batch (default -1: automatic, none on a machine
   * with two cores or fewer, where the packet threads already have them; 0: none).
   */
  cryptoThreads?: number;
}

/** errno for "no such peer / no current keypair" in `test=1` answers. */
const ENOENT = 2;

interface StaticIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export class Device implements UapiDevice, UapiTestHooks, PeerHost {
  readonly native: NativeDevice;
  readonly log: Logger;
  readonly name: string;

  private staticIdentity: StaticIdentity | null = null;
  private fwmark = 0;
  /** Port as configured (0 = any) and as bound. */
  private configuredPort = 0;
  private port = 0;
  private readonly peers = new Map<string, Peer>();
  private readonly peersById = new Map<number, Peer>();
  private readonly allowedIps = new AllowedIps<Peer>();
  private nextPeerId = 1;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;
  private readonly goneListeners: ((reason: string) => void)[] = [];
  private readonly testHooks: boolean;

  constructor(ifname: string, options: DeviceOptions = {}) {
    this.log = options.log ?? silentLogger;
    this.testHooks = options.testHooks === true;
    this.native = loadNative().createDevice(ifname, options.mtu ?? DEFAULT_MTU, (events) => this.onEvents(events), {
      offloads: options.offloads ?? true,
      cryptoThreads: options.cryptoThreads ?? -1,
    });
    this.name = this.native.name;
    // Bind at once to a random port, as wireguard-go does when it comes up with listen_port 0.
    this.port = this.native.bind(0);
    this.native.start();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  peerByPublicKey(publicKey: Uint8Array): Peer | undefined {
    return this.peers.get(toHex(publicKey));
  }

  /** Called once when the TUN device disappears or the packet path fails. */
  onGone(listener: (reason: string) => void): void {
    this.goneListeners.push(listener);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    this.native.close();
  }

  /** Packet path and handshake counters (every drop by its reason). */
  counters(): NativeCounters {
    return this.native.counters();
  }

  /**
   * Flat counters for the control socket's `stats=1` (names in snake_case, like the protocol):
   * the handshake ones as `handshake_*` (e.g. handshake_cookie_replies_sent).
   */
  stats(): Record<string, number | bigint> {
    const out: Record<string, number | bigint> = {};
    const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    for (const [k, v] of Object.entries(this.native.counters())) out[snake(k)] = v;
    return out;
  }

  private onEvents(events: NativeEvent[]): void {
    if (this.closed) return;
    const now = this.native.now();
    for (const ev of events) {
      switch (ev.kind) {
        case 'handshake-complete':
          this.peerById(ev.peer)?.onHandshakeComplete(ev.initiator, now);
          break;
        case 'need-handshake':
          this.peerById(ev.peer)?.onNeedHandshake(now);
          break;
        case 'keypair-confirmed':
          this.peerById(ev.peer)?.onKeypairConfirmed(now);
          break;
        case 'device-gone':
          this.log.error(`Device ${this.name} gone: ${ev.reason}`);
          this.close();
          for (const l of this.goneListeners) l(ev.reason);
          return;
      }
    }
  }

  private peerById(id: number): Peer | undefined {
    return this.peersById.get(id);
  }

  private tick(): void {
    if (this.closed) return;
    const now = this.native.now();
    for (const peer of this.peers.values()) {
      try {
        peer.tick(now);
      } catch (err) {
        this.log.error(`${peer.name} - timer error: ${(err as Error).message}`);
      }
    }
  }

  // ---- control socket ----

  snapshot(): DeviceSnapshot {
    return {
      privateKey: this.staticIdentity?.privateKey ?? null,
      listenPort: this.port,
      fwmark: this.fwmark,
      peers: [...this.peers.values()].map((peer) => {
        const state = this.native.peerState(peer.id);
        return {
          publicKey: peer.publicKey,
          presharedKey: peer.presharedKey,
          endpoint: state.endpoint,
          lastHandshakeTimeSec: peer.lastHandshake.sec,
          lastHandshakeTimeNsec: peer.lastHandshake.nsec,
          txBytes: state.txBytes,
          rxBytes: state.rxBytes,
          persistentKeepaliveInterval: peer.persistentKeepaliveInterval,
          allowedIps: this.allowedIps.prefixesOf(peer),
        };
      }),
    };
  }

  applySet(req: SetRequest): void {
    if (this.closed) throw new UapiError(Errno.EIO, 'device is closed');
    const now = this.native.now();
    // What can fail in the kernel goes first, so a refused port or mark changes nothing else.
    // `wg setconf`/`syncconf` send listen_port=0 whenever the file has no ListenPort: keep the
    // random port we already have instead of moving to another one (wireguard-go would rebind).
    const portChanges = req.listenPort !== undefined && !(req.listenPort === 0 && this.configuredPort === 0) && req.listenPort !== this.port;
    if (portChanges) {
      try {
        this.port = this.native.bind(req.listenPort!);
      } catch (err) {
        throw new UapiError(Errno.EADDRINUSE, `cannot listen on port ${req.listenPort}: ${(err as Error).message}`);
      }
    }
    if (req.listenPort !== undefined) this.configuredPort = req.listenPort;
    if (req.fwmark !== undefined && req.fwmark !== this.fwmark) {
      try {
        this.native.setFwmark(req.fwmark);
        this.fwmark = req.fwmark;
      } catch (err) {
        throw new UapiError(Errno.EADDRINUSE, `cannot set fwmark ${req.fwmark}: ${(err as Error).message}`);
      }
    }
    if (req.privateKey !== undefined) this.setPrivateKey(req.privateKey);
    if (req.replacePeers) for (const peer of [...this.peers.values()]) this.removePeer(peer);
    for (const ps of req.peers) this.applyPeer(ps, now);
  }

  /**
   * TEST ONLY: the control socket's `test=1` (uapi/protocol.ts), a thin pass-through to the native
   * test hooks. Refused with EINVAL unless the device was created with `testHooks`. Every peer is
   * checked before anything changes.
   */
  applyTest(req: TestRequest): void {
    if (!this.testHooks) throw new UapiError(Errno.EINVAL, 'test hooks are disabled (weft-wg: WEFT_WG_TEST_HOOKS=1)');
    if (this.closed) throw new UapiError(Errno.EIO, 'device is closed');
    const targets = req.peers.map((op) => {
      const peer = this.peerByPublicKey(op.publicKey);
      if (!peer) throw new UapiError(ENOENT, `test: no peer ${toHex(op.publicKey)}`);
      return { peer, op };
    });
    for (const { peer, op } of targets) {
      if (op.ageKeypairsMs !== undefined) {
        this.native.testAgeKeypairs(peer.id, op.ageKeypairsMs);
        this.log.verbose(`${peer.name} - TEST: keypairs aged by ${op.ageKeypairsMs} ms`);
      }
      if (op.sendCounter !== undefined) {
        if (!this.native.testSetSendCounter(peer.id, op.sendCounter)) throw new UapiError(ENOENT, `test: ${peer.name} has no current keypair`);
        this.log.verbose(`${peer.name} - TEST: send counter set to ${op.sendCounter}`);
      }
    }
  }

  private setPrivateKey(key: Uint8Array): void {
    const next = isZero(key) ? null : clampPrivateKey(key);
    const current = this.staticIdentity?.privateKey ?? null;
    if ((next === null && current === null) || (next && current && equalBytes(next, current))) return;
    this.staticIdentity = next ? { privateKey: next, publicKey: publicKeyOf(next) } : null;
    // A peer with our own public key cannot exist: remove it.
    const own = this.staticIdentity && this.peers.get(toHex(this.staticIdentity.publicKey));
    if (own) this.removePeer(own);
    // The packet path derives the static-static secrets, mac1 and cookie keys from it.
    this.native.setPrivateKey(next ? Buffer.from(next) : null);
    for (const peer of this.peers.values()) peer.expireSessions();
  }

  private applyPeer(ps: PeerSet, now: number): void {
    // A peer with our own public key is ignored, lines and all (wireguard-go's "dummy" peer).
    if (this.staticIdentity && equalBytes(ps.publicKey, this.staticIdentity.publicKey)) return;
    const key = toHex(ps.publicKey);
    let peer = this.peers.get(key);
    if (ps.remove) {
      if (peer) this.removePeer(peer);
      return;
    }
    if (!peer) {
      if (ps.updateOnly) return;
      peer = new Peer(this, this.nextPeerId++, Uint8Array.from(ps.publicKey));
      this.peers.set(key, peer);
      this.peersById.set(peer.id, peer);
    }
    if (ps.presharedKey !== undefined) peer.presharedKey = ps.presharedKey;
    if (ps.endpoint !== undefined) {
      peer.configuredEndpoint = ps.endpoint;
      this.native.setEndpoint(peer.id, ps.endpoint.address, ps.endpoint.port);
      peer.onEndpointConfigured(now);
    }
    this.applyAllowedIps(peer, ps);
    if (ps.persistentKeepaliveInterval !== undefined) peer.setPersistentKeepalive(ps.persistentKeepaliveInterval, now);
  }

  /** Apply allowed-IP edits in order, batching consecutive additions into one native call. */
  private applyAllowedIps(peer: Peer, ps: PeerSet): void {
    let adds: Prefix[] = [];
    const flush = () => {
      if (adds.length) this.native.insertAllowedIps(peer.id, encodePrefixes(adds));
      adds = [];
    };
    for (const op of ps.allowedIps) {
      if (op.op === 'add') {
        this.allowedIps.insert(op.prefix, peer);
        adds.push(op.prefix);
        continue;
      }
      flush();
      if (op.op === 'replace') {
        this.allowedIps.removeValue(peer);
        this.native.clearAllowedIps(peer.id);
      } else if (this.allowedIps.remove(op.prefix, peer)) {
        this.native.removeAllowedIps(peer.id, encodePrefixes([op.prefix]));
      }
    }
    flush();
  }

  private removePeer(peer: Peer): void {
    this.allowedIps.removeValue(peer);
    peer.destroy();
    this.peers.delete(toHex(peer.publicKey));
    this.peersById.delete(peer.id);
  }
}
