// The gateway of one cluster: one userspace WireGuard device per peering (in this process, each
// with its own control socket so `wg show` works), prefix NAT and policy routing from the plan,
// and an end-to-end probe per peering that reports state and latency on the Peering (when they
// change: status-report.ts).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { generatePrivateKey, publicKeyOf } from '../wireguard/crypto.ts';
import { Device } from '../wireguard/device.ts';
import { parseBase64Key, toBase64 } from '../wireguard/keys.ts';
import { formatPrefix, parsePrefix } from '../wireguard/prefix.ts';
import { UapiServer } from '../wireguard/uapi/server.ts';
import type { PeerSet } from '../wireguard/uapi/types.ts';
import { reconcile as reconcileKernel } from '../kernel/index.ts';
import { inform, type Informer } from '../store/informer.ts';
import type { Resource, Store } from '../store/types.ts';
import { Kinds, effectiveCluster, type SecretSpec, type ClusterNetworkSpec, type ClusterNetworkStatus, type FabricPeerSpec, type NodeSpec, type PeeringStatus, type PodSpec } from '../control/resources.ts';
import { conditionOf, derivePeeringStatus, patchStatus, setCondition } from '../control/status.ts';
import { presharedKeyFrom } from '../control/validate.ts';
import { planGateway } from './plan.ts';
import { acceptPeers } from './validate.ts';
import { probeSource } from './probe.ts';
import { LATENCY_WINDOW, needsReport, smoothedLatency, type Reported } from './status-report.ts';
import { ReconcileLoop } from '../control/reconcile-loop.ts';
import { WEFT_OWNERSHIP } from '../fabric/ownership.ts';
import type { Logger } from '../log.ts';
import type { WeftMetrics } from '../observe/metrics.ts';

const run = promisify(execFile);
/** A peering whose tunnel never completed a handshake for this long is reported as failing. */
const HANDSHAKE_GRACE_MS = 15_000;
/** A connected peering is reported down only after this many probes in a row went unanswered. */
const PROBE_FAILURES_TO_DOWN = 3;

export interface GatewayOptions {
  log: Logger;
  /** File holding the gateway's WireGuard private key (created on first start, mode 0600). */
  keyFile: string;
  /** Interface on the node network (the VXLAN fabric's underlay). */
  underlayDev: string;
  /**
   * This replica's node IP when it differs per replica (Kubernetes: from NODE_NAME's Node). It is
   * published as ClusterNetwork status.gatewayNodeIP when this replica becomes active, so nodes
   * and remotes follow a failover. Unset: the spec's gatewayNodeIP (the lab, a fixed gateway host).
   */
  nodeIP?: string;
  resyncMs?: number;
  probeMs?: number;
  metrics?: WeftMetrics;
}

interface Tunnel {
  device: Device;
  server: UapiServer;
  spec: FabricPeerSpec;
  createdAt: number;
  /** The endpoint we last configured from the plan ("host:port"). */
  configuredEndpoint: string | null;
  /** Consecutive failed probes since the last answered one. */
  probeFailures: number;
  lastLatencyMs: number | undefined;
  /** Round trips of the last answered probes (the status carries their median). */
  recentLatencies: number[];
  /** The Connected verdict's reason as last decided (events are raised on changes). */
  lastReason: string | undefined;
  /** What was last written to the Peering's status (see status-report.ts for when it is again). */
  reported: Reported | undefined;
}

type WireguardPlan = ReturnType<typeof planGateway>['wireguard'][number];

export class Gateway {
  private readonly store: Store;
  private readonly opts: GatewayOptions;
  private readonly privateKey: Uint8Array;
  readonly publicKey: string;
  private readonly tunnels = new Map<string, Tunnel>();
  private informer: Informer | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private readonly loop: ReconcileLoop;
  /** The FabricPeers last left out of the plan (said once, when the set changes). */
  private refusedBefore = '';

  constructor(store: Store, opts: GatewayOptions) {
    this.store = store;
    this.opts = opts;
    this.loop = new ReconcileLoop('gateway', () => this.reconcile(), opts);
    this.privateKey = loadOrCreateKey(opts.keyFile);
    this.publicKey = toBase64(publicKeyOf(this.privateKey));
  }

  /** Readiness: the gateway was programmed at least once. */
  get reconciledOnce(): boolean {
    return this.loop.reconciledOnce;
  }

  async start(): Promise<void> {
    const nodeIP = this.opts.nodeIP;
    await patchStatus<ClusterNetworkStatus>(this.store, Kinds.ClusterNetwork, 'local', (s) => ({ ...s, gatewayPublicKey: this.publicKey, ...(nodeIP ? { gatewayNodeIP: nodeIP } : {}) }));
    this.informer = inform(this.store, [Kinds.ClusterNetwork, Kinds.Node, Kinds.Pod, Kinds.FabricPeer, Kinds.Secret], () => void this.trigger(), {
      onError: (err) => this.opts.log.error(`watch: ${err.message}`),
    });
    this.timers.push(setInterval(() => void this.trigger(), this.opts.resyncMs ?? 2000));
    this.timers.push(setInterval(() => void this.probeAll(), this.opts.probeMs ?? 1000));
  }

  /** Stop serving; kernel state stays so that a restart does not flap routes (it is reconciled). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.informer?.stop();
    for (const t of this.timers) clearInterval(t);
    await this.loop.stop();
    for (const [name, t] of this.tunnels) await this.closeTunnel(name, t);
  }

  trigger(): Promise<void> {
    return this.loop.trigger();
  }

  /** Returns { changed } once the gateway was programmed, undefined while inputs are missing. */
  private async reconcile(): Promise<{ changed: number } | undefined> {
    if (this.stopped) return undefined;
    const cluster = await this.store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
    const externalCIDR = cluster?.status?.externalCIDR;
    if (!cluster || !externalCIDR) return undefined;
    if (cluster.status?.gatewayPublicKey !== this.publicKey) {
      await patchStatus<ClusterNetworkStatus>(this.store, Kinds.ClusterNetwork, 'local', (s) => ({ ...s, gatewayPublicKey: this.publicKey }));
    }
    const nodes = (await this.store.list<Resource<NodeSpec>>(Kinds.Node)).items.map((n) => ({ name: n.metadata.name, internalIP: n.spec.internalIP, podCIDRs: n.spec.podCIDRs }));
    const pods = (await this.store.list<Resource<PodSpec>>(Kinds.Pod)).items.map((p) => ({ name: p.metadata.name, nodeName: p.spec.nodeName, podIP: p.spec.podIP }));
    const fabric = (await this.store.list<Resource<FabricPeerSpec>>(Kinds.FabricPeer)).items;
    const effective = effectiveCluster(cluster.spec, cluster.status);
    // One broken or hostile FabricPeer costs only itself: the others are programmed, revoked ones removed.
    const { accepted: peers, refused } = acceptPeers(fabric.map((f) => f.spec), effective, externalCIDR);
    const refusedText = refused.join('; ');
    if (refusedText && refusedText !== this.refusedBefore) this.opts.log.error(`left out of the plan: ${refusedText}`);
    this.refusedBefore = refusedText;
    const plan = planGateway({ cluster: effective, externalCIDR, nodes, pods, peers, underlayDev: this.opts.underlayDev });

    // Tunnels first: the plan's routes point at their interfaces.
    const wanted = new Map(plan.wireguard.map((w) => [w.interfaceName, w]));
    for (const [name, t] of this.tunnels) if (!wanted.has(name)) await this.closeTunnel(name, t);
    for (const w of plan.wireguard) {
      const spec = peers.find((p) => p.interfaceName === w.interfaceName)!;
      let t = this.tunnels.get(w.interfaceName);
      if (!t) {
        const device = new Device(w.interfaceName, { log: this.opts.log, mtu: w.mtu });
        // Without its control socket the tunnel is not ours to keep: close it, or every retry finds
        // the TUN device still held (TUNSETIFF: busy).
        const server = await UapiServer.listen(w.interfaceName, device).catch((err: unknown) => {
          device.close();
          throw err;
        });
        t = { device, server, spec, createdAt: Date.now(), configuredEndpoint: null, probeFailures: 0, lastLatencyMs: undefined, recentLatencies: [], lastReason: undefined, reported: undefined };
        this.tunnels.set(w.interfaceName, t);
        device.onGone((why) => {
          this.opts.log.error(`tunnel ${w.interfaceName} gone (${why}); recreating`);
          void this.closeTunnel(w.interfaceName, t!).then(() => this.trigger());
        });
        this.opts.log.verbose(`tunnel ${w.interfaceName} for ${spec.remoteClusterId} on port ${w.listenPort}`);
      }
      t.spec = spec;
      const ref = spec.presharedKeySecretRef;
      const psk = ref ? presharedKeyFrom((await this.store.get<Resource<SecretSpec>>(Kinds.Secret, ref.name))?.spec, ref.key) : null;
      if (ref && !psk) this.opts.log.error(`tunnel ${w.interfaceName}: preshared key ${ref.name} unreadable; keeping the tunnel's current key`);
      this.configureTunnel(t, w, ref ? psk : new Uint8Array(32));
      if (!linkIsUpWithMtu(w.interfaceName, w.mtu)) await run('ip', ['link', 'set', 'dev', w.interfaceName, 'mtu', String(w.mtu), 'up']);
      // Only now is the tunnel listening: tell the remote (through the peering) where to send.
      const localEndpoint = { host: cluster.spec.gatewayEndpoint.host, port: w.listenPort };
      const tunnel = t;
      await patchStatus<PeeringStatus>(this.store, Kinds.Peering, peeringNameOf(spec), (s) => {
        // The probe writes only when its result changes; if what we reported is no longer there
        // (the Peering was recreated, someone replaced its status), the next probe writes it again.
        const connected = conditionOf(s, 'Connected');
        if (tunnel.reported && (connected?.status !== tunnel.reported.verdict.status || connected.reason !== tunnel.reported.verdict.reason)) tunnel.reported = undefined;
        return s?.localEndpoint?.host === localEndpoint.host && s.localEndpoint.port === localEndpoint.port ? null : derivePeeringStatus({ ...(s ?? { phase: 'Connecting' }), localEndpoint });
      });
    }
    const report = await reconcileKernel(plan.kernel, { owned: WEFT_OWNERSHIP });
    for (const line of report.changed) this.opts.log.verbose(`kernel: ${line}`);
    for (const line of report.errors) this.opts.log.error(`kernel: ${line}`);
    return { changed: report.changed.length };
  }

  /** Fill the per-peering gauges from the tunnels (called at scrape time). */
  exportMetrics(m: WeftMetrics): void {
    m.peeringUp.reset();
    m.peeringLatency.reset();
    m.tunnelBytes.reset();
    m.tunnelHandshakeAge.reset();
    m.tunnelDrops.reset();
    for (const t of this.tunnels.values()) {
      const peering = peeringNameOf(t.spec);
      const labels = { peering, remote: t.spec.remoteClusterId };
      m.peeringUp.set(labels, t.probeFailures === 0 && t.lastLatencyMs !== undefined ? 1 : 0);
      if (t.lastLatencyMs !== undefined) m.peeringLatency.set(labels, t.lastLatencyMs / 1000);
      const peer = t.device.snapshot().peers[0];
      if (peer) {
        m.tunnelBytes.set({ peering, direction: 'tx' }, Number(peer.txBytes));
        m.tunnelBytes.set({ peering, direction: 'rx' }, Number(peer.rxBytes));
        if (peer.lastHandshakeTimeSec > 0n) m.tunnelHandshakeAge.set({ peering }, Date.now() / 1000 - Number(peer.lastHandshakeTimeSec));
      }
      for (const [name, value] of Object.entries(t.device.stats())) {
        if (name.startsWith('drop_') || name.startsWith('handshake_drop_')) m.tunnelDrops.set({ peering, reason: name.replace(/^(handshake_)?drop_/, '$1') }, Number(value));
      }
    }
  }

  /** Bring a device to the planned configuration, touching only what differs (no session reset). */
  /** `presharedKey` null means "leave as is" (its Secret is unreadable right now). */
  private configureTunnel(t: Tunnel, w: WireguardPlan, presharedKey: Uint8Array | null): void {
    const snap = t.device.snapshot();
    const current = snap.peers.find((p) => toBase64(p.publicKey) === w.peer.publicKey);
    // A changed remote key means a different peer: remove the old one.
    const stale: PeerSet[] = snap.peers
      .filter((p) => p !== current)
      .map((p) => ({ publicKey: p.publicKey, remove: true, updateOnly: false, allowedIps: [] }));
    const peer: PeerSet = { publicKey: parseBase64Key(w.peer.publicKey)!, remove: false, updateOnly: false, allowedIps: [] };
    const want = [...w.peer.allowedIPs].sort();
    const have = (current?.allowedIps ?? []).map(formatPrefix).sort();
    if (want.join() !== have.join()) peer.allowedIps = [{ op: 'replace' }, ...want.map((c) => ({ op: 'add' as const, prefix: parsePrefix(c)! }))];
    // Set the endpoint only when the announced one changed, so a roaming peer's learned one stays.
    const ep = w.peer.endpoint;
    const epKey = ep && ep.port > 0 ? `${ep.host}:${ep.port}` : null;
    if (epKey && (epKey !== t.configuredEndpoint || !current)) peer.endpoint = { address: ep!.host, port: ep!.port };
    if (current?.persistentKeepaliveInterval !== w.peer.persistentKeepalive) peer.persistentKeepaliveInterval = w.peer.persistentKeepalive;
    if (presharedKey && (!current || Buffer.compare(Buffer.from(current.presharedKey), Buffer.from(presharedKey)) !== 0)) peer.presharedKey = presharedKey;
    const needDevice = !snap.privateKey || toBase64(snap.privateKey) !== toBase64(this.privateKey) || snap.listenPort !== w.listenPort;
    const needPeer =
      !current || peer.allowedIps.length > 0 || peer.endpoint !== undefined || peer.persistentKeepaliveInterval !== undefined || peer.presharedKey !== undefined;
    if (!needDevice && !needPeer && stale.length === 0) return;
    t.device.applySet({
      ...(needDevice ? { privateKey: this.privateKey, listenPort: w.listenPort } : {}),
      replacePeers: false,
      peers: [...stale, ...(needPeer ? [peer] : [])],
    });
    if (epKey) t.configuredEndpoint = epKey;
  }

  private async closeTunnel(name: string, t: Tunnel): Promise<void> {
    this.tunnels.delete(name);
    await t.server.close().catch(() => {});
    t.device.close();
  }

  /** Probe every tunnel end to end and record the result on its Peering. */
  private async probeAll(): Promise<void> {
    if (this.stopped) return;
    const cluster = await this.store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
    if (!cluster) return;
    const source = probeSource(effectiveCluster(cluster.spec, cluster.status));
    await Promise.all([...this.tunnels.values()].map((t) => this.probe(t, source).catch((err) => this.opts.log.error(`probe ${t.spec.remoteClusterId}: ${err.message}`))));
  }

  private async probe(t: Tunnel, sourceIP: string): Promise<void> {
    const name = peeringNameOf(t.spec);
    let latencyMs: number | undefined;
    if (t.spec.remoteEndpoint.port > 0 || Number(t.device.snapshot().peers[0]?.lastHandshakeTimeSec ?? 0) > 0) {
      const r = await run('ping', ['-n', '-c', '1', '-W', '1', '-m', String(t.spec.mark), '-I', sourceIP, t.spec.probeTarget]).catch(() => null);
      const m = r?.stdout.match(/time=([\d.]+) ms/);
      if (m) latencyMs = Number(m[1]);
      this.opts.metrics?.peeringProbes.inc({ peering: name, result: latencyMs === undefined ? 'unanswered' : 'answered' });
    }
    // Read the tunnel after the probe: the probe itself may have completed the first handshake.
    const peer = t.device.snapshot().peers[0];
    const handshakeSec = peer ? Number(peer.lastHandshakeTimeSec) : 0;
    t.probeFailures = latencyMs === undefined ? t.probeFailures + 1 : 0;
    t.lastLatencyMs = latencyMs;
    if (latencyMs !== undefined) {
      t.recentLatencies.push(latencyMs);
      if (t.recentLatencies.length > LATENCY_WINDOW) t.recentLatencies.shift();
    }
    // One lost probe on a busy machine is not an outage: keep the verdict until several in a row fail.
    const held = latencyMs === undefined && t.probeFailures < PROBE_FAILURES_TO_DOWN && t.lastReason === 'ProbeSucceeded';
    const waited = Date.now() - t.createdAt;
    const verdict =
      latencyMs !== undefined || held
        ? { status: 'True' as const, reason: 'ProbeSucceeded', message: `probe to ${t.spec.probeTarget} answers through the tunnel` }
        : t.spec.remoteEndpoint.port === 0 && handshakeSec === 0
          ? { status: 'False' as const, reason: 'WaitingForRemote', message: 'the remote has not told us its tunnel port yet' }
          : handshakeSec === 0 && waited > HANDSHAKE_GRACE_MS
            ? { status: 'False' as const, reason: 'HandshakeFailed', message: `no WireGuard handshake with ${t.spec.remoteEndpoint.host}:${t.spec.remoteEndpoint.port} in ${Math.round(waited / 1000)} s: check the remote public key, endpoint and firewall` }
            : { status: 'False' as const, reason: handshakeSec === 0 ? 'Handshaking' : 'ProbeFailed', message: handshakeSec === 0 ? 'waiting for the first handshake' : `handshake done but ${t.spec.probeTarget} did not answer` };
    if (verdict.status === 'False') t.recentLatencies.length = 0;
    if (verdict.reason !== t.lastReason) {
      // A peering that cannot complete a handshake is something to tell people about, once.
      if (verdict.reason === 'HandshakeFailed') await this.store.recordEvent?.({ kind: Kinds.Peering, name }, 'Warning', verdict.reason, verdict.message);
      if (verdict.reason === 'ProbeSucceeded' && t.lastReason !== undefined) await this.store.recordEvent?.({ kind: Kinds.Peering, name }, 'Normal', 'Connected', verdict.message);
      t.lastReason = verdict.reason;
    }
    const latency = smoothedLatency(t.recentLatencies);
    const now = Date.now();
    if (!needsReport(t.reported, verdict, latency, now)) return;
    await patchStatus<PeeringStatus>(this.store, Kinds.Peering, name, (s) => {
      const next: PeeringStatus = {
        ...(s ?? { phase: 'Connecting' }),
        conditions: setCondition(s?.conditions, { type: 'Connected', ...verdict }),
        txBytes: Number(peer?.txBytes ?? 0),
        rxBytes: Number(peer?.rxBytes ?? 0),
        lastHeartbeatTime: new Date(now).toISOString(),
      };
      if (latency !== undefined) next.latencyMs = latency;
      else delete next.latencyMs;
      if (handshakeSec > 0) next.lastHandshake = new Date(handshakeSec * 1000).toISOString();
      return derivePeeringStatus(next);
    });
    t.reported = { verdict: { status: verdict.status, reason: verdict.reason }, latencyMs: latency, atMs: now };
  }
}

/** The Peering and the FabricPeer share a name: the remote cluster id. */
function peeringNameOf(spec: FabricPeerSpec): string {
  return spec.remoteClusterId;
}

/** Whether the link is administratively up with this MTU (sysfs; no process per resync). */
function linkIsUpWithMtu(name: string, mtu: number): boolean {
  try {
    const flags = parseInt(fs.readFileSync(`/sys/class/net/${name}/flags`, 'utf8'), 16);
    return (flags & 0x1) === 0x1 && Number(fs.readFileSync(`/sys/class/net/${name}/mtu`, 'utf8')) === mtu;
  } catch {
    return false;
  }
}

function loadOrCreateKey(file: string): Uint8Array {
  try {
    const key = parseBase64Key(fs.readFileSync(file, 'utf8').trim());
    if (key) return key;
    throw new Error(`${file} does not hold a base64 WireGuard private key`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = generatePrivateKey();
  fs.writeFileSync(file, toBase64(key) + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}
