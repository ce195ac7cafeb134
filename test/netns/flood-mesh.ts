// Three clusters on the Kubernetes API, full mesh, and an attacker on their WAN: the setup of
// test/netns/gateway-flood.test.ts and bench/gateway-flood.ts.
//
// The topology is the lab's own (src/lab: `up()` without the fabric hooks, so namespaces, switches,
// pods and their CNI styles only): clusters a, b, c with 2 nodes × 1 pod each, every cluster on
// 10.0.0.0/16, their gateways on the WAN switch (bridge br0 in `wl<id>-wan`, one veth port per
// gateway). On it run weft's real daemons in Kubernetes mode, each cluster on its own API server
// (test/netns/k8s-cluster.ts: the in-process fake, or a real kube-apiserver when
// WEFT_TEST_KUBE_APISERVER and WEFT_TEST_ETCD are set; every daemon with its own ServiceAccount's
// credentials), reached from the namespaces through test/netns/api-bridge.ts:
// per cluster a controller and the active gateway replica in the gateway host's namespace and an
// agent on every node; cluster a also has a standby gateway replica on its node n2 (hostNetwork, as
// the Deployment runs it) that competes for the Lease `weft-gateway`. So a's gateway holds two
// tunnels, to b and to c.
//
// The attacker is a namespace of its own (`wt-<id>-atk`) joined to the WAN switch exactly as a
// gateway is (a veth whose switch end is a port of br0), with several addresses of the WAN subnet:
// nothing is linked to, or added in, the root namespace.
//
// observe() samples, for a while, everything the flood must not disturb: a's peering status
// (phase; probes answered and their latency, from /metrics), the Lease, the active gateway's /metrics (reconciles, event
// loop lag) and /healthz through a Unix-socket relay into its namespace, pod-to-pod pings across
// both tunnels, the tunnels' control-socket counters and the gateway process's CPU time.
//
// Cleanup: close() ends every process (by pid, and whatever is left inside the namespaces), removes
// the lab (`down()`: namespaces, wl<id>- sockets, state dir), the attacker namespace and the API
// servers; closeSync() does the same synchronously from a signal handler.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { NetLab, nodeBin, repoRoot, run, sleep } from './harness.ts';
import { closeCluster, cluster, startGateway, weft, type Cluster } from './k8s-cluster.ts';
import type { FloodReport } from './handshake-flood.ts';
export type { FloodReport };
import { procUsage } from './impl.ts';
import { readStats } from './uapi-client.ts';
import { down, freshLabId, up } from '../../src/lab/lab.ts';
import { planTopology, wireguardInterfacePrefix, type ClusterPlan, type LabTopology } from '../../src/lab/topology.ts';
import { NETNS_DIR } from '../../src/lab/netns.ts';
import { translate } from '../../src/ipam/index.ts';
import { Kinds, type ClusterNetworkSpec, type ClusterNetworkStatus, type FabricPeerSpec, type PeeringSpec, type PeeringStatus } from '../../src/control/resources.ts';
import type { Resource } from '../../src/store/types.ts';

export const FLOOD = path.join(repoRoot, 'test/netns/handshake-flood.ts');
export const CLUSTERS = ['a', 'b', 'c'] as const;
export type ClusterName = (typeof CLUSTERS)[number];
/** a's replicas: the active one on the gateway host, the standby on node n2. */
export const ACTIVE_IDENTITY = 'gw-gw';
export const STANDBY_IDENTITY = 'n2-gw';
const LEASE = { name: 'weft-gateway', namespace: 'weft-system' };
const METRICS_PORT = 9091;
const OUTPUT_KEEP = 32 << 10;

export interface MeshOptions {
  /** Lease duration of every gateway (WEFT_LEASE_DURATION_MS); the deployment's 5 s by default. */
  leaseMs?: number;
  /** Attacker source addresses on the WAN (each its own rate-limit bucket). */
  attackerAddresses?: number;
  log?: (line: string) => void;
}

export interface Tunnel {
  remote: ClusterName;
  interfaceName: string;
  port: number;
  socket: string;
}

export interface FloodConfig {
  rate: number;
  maxSeconds: number;
  /**
   * Scheduling niceness of the generator (default 19). A real attacker spends its own machine's
   * CPU; here it shares two vCPUs with every cluster, so by default it only gets what they leave.
   */
  nice?: number;
}


export interface Flood {
  child: ChildProcess;
  /** Stop it (SIGTERM) if still running and return its report. */
  report(): Promise<FloodReport>;
  running(): boolean;
}

export interface PeeringTrack {
  samples: number;
  /** Samples in which the Peering's phase was not Connected (time since start, phase, reason). */
  notConnected: { atMs: number; phase: string; reason?: string | undefined }[];
  /**
   * a's own peerings only, from its gateway's /metrics (the status is written only when the
   * verdict changes, so it says nothing about whether the probe still runs): the probe round trip
   * at every scrape that saw a newly answered probe, the probes answered over the phase, and the
   * longest stretch without a newly answered one (ms).
   */
  latencyMs: number[];
  probesAnswered: number;
  longestProbeGapMs: number;
}

export interface PingTrack {
  sent: number;
  received: number;
  rttMs: number[];
}

export interface HistogramDelta {
  count: number;
  sum: number;
  /** Upper bound (s, `+Inf` as Infinity) → reconciles that took at most that long, over the phase. */
  buckets: [number, number][];
}

export interface Observation {
  seconds: number;
  peerings: Record<string, PeeringTrack>;
  /** The remotes' view of a: b's and c's Peering a (their probes cross a's tunnels too). */
  remoteViews: Record<string, PeeringTrack>;
  lease: { holders: string[]; transitionsBefore: number; transitionsAfter: number; samples: number; maxRenewGapMs: number; renewals: number };
  reconciles: { ok: number; errors: number; histogram: HistogramDelta; scrapes: number; scrapeFailures: number; longestGapMs: number; maxScrapeMs: number };
  /** The active gateway's event-loop delay: max over the phase (prom-client, reset at each scrape). */
  eventLoopLagMaxMs: number;
  healthz: { samples: number; failures: number; latencyMs: number[] };
  /** Continuous pings from a/n1-p1 to the first pod of b and of c (0.2 s apart). */
  pings: Record<string, PingTrack>;
  /** Ping sweeps every pod of a → every pod of b and c; pairs that did not answer (2 tries each). */
  sweeps: { rounds: number; pairs: number; failures: string[] };
  /** Per tunnel of a: differences of its control-socket counters (`stats=1`) over the phase. */
  counters: Record<string, Record<string, number>>;
  gatewayCpuSeconds: number;
  /**
   * The active gateway's JavaScript (main) thread, from /proc/PID/task/PID/schedstat: CPU time it
   * ran and time it spent runnable but waiting for a CPU, in total and in the worst second; and the
   * CPU seconds of its other threads that used more than 1 % of a core (the devices' packet
   * threads, unnamed, show up as "MainThread").
   */
  jsThread: { runMs: number; waitMs: number; worstSecondWaitMs: number };
  busyThreads: { tid: string; comm: string; cpuSeconds: number; waitSeconds: number }[];
  standbyCpuSeconds: number;
  /** The active replica's process was alive at the end; the standby answered /readyz 503 throughout. */
  activeAlive: boolean;
  standbyReady: { samples: number; ready: number };
}

interface Proc {
  child: ChildProcess;
  label: string;
  output: () => string;
}

export class FloodMesh {
  readonly lab = NetLab.create();
  readonly stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-gwflood-'));
  readonly leaseMs: number;
  readonly log: (line: string) => void;
  topology!: LabTopology;
  readonly clusters = {} as Record<ClusterName, Cluster>;
  readonly procs: Proc[] = [];
  active!: Proc;
  standby!: Proc;
  attackerNs = '';
  attackerAddresses: string[] = [];
  private metricsSock = '';
  private closing: Promise<void> | undefined;
  private killed = false;
  private abort: () => void = () => {};
  /** Rejects once closeSync() ran: what build() awaits races it, so an interrupt never waits. */
  private readonly aborted = new Promise<never>((_, reject) => (this.abort = () => reject(new Aborted())));
  private readonly _handled = this.aborted.catch(() => {});
  private readonly attackerCount: number;

  private constructor(opts: MeshOptions) {
    this.leaseMs = opts.leaseMs ?? 5000;
    this.log = opts.log ?? (() => {});
    this.attackerCount = opts.attackerAddresses ?? 8;
  }

  /**
   * Build everything; on failure what was built is removed before the error is thrown. `hold`
   * gets the instance before anything is built, so a signal handler can closeSync() it meanwhile.
   */
  static async create(opts: MeshOptions = {}, hold?: (m: FloodMesh) => void): Promise<FloodMesh> {
    const m = new FloodMesh(opts);
    hold?.(m);
    try {
      await m.build();
      return m;
    } catch (err) {
      const logs = m.procs.map((p) => `--- ${p.label}\n${p.output().slice(-2000)}`).join('\n');
      await m.close();
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
  }

  plan(c: ClusterName): ClusterPlan {
    return this.topology.clusters.find((x) => x.name === c)!;
  }

  private spawn(label: string, ns: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = this.lab.spawn(ns, args, { env: { ...process.env, LOG_LEVEL: 'error', ...env } });
    return this.track(label, child);
  }

  private track(label: string, child: ChildProcess): Proc {
    // Always drain the pipes: a daemon blocked on a full stdout pipe would be a stall of our making.
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      if (out.length > OUTPUT_KEEP * 2) out = out.slice(-OUTPUT_KEEP);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const p = { child, label, output: () => out };
    this.procs.push(p);
    return p;
  }

  private async build(): Promise<void> {
    const id = freshLabId();
    this.log(`lab ${id}: building 3 clusters × 2 nodes × 1 pod (src/lab topology, no fabric hooks)`);
    const shape = { id, clusters: 3, nodesPerCluster: 2, podsPerNode: 1 };
    // Known before up() creates anything, so closeSync() finds every namespace even mid-build.
    this.topology = planTopology(shape);
    this.topology = await up({ stateDir: this.stateDir, ...shape, log: (l) => this.log(`  ${l}`) });
    for (const name of CLUSTERS) {
      const p = this.plan(name);
      const [n1, n2] = p.nodes;
      const nodes = { gw: p.gateway.underlayIP, n1: n1!.ip, n2: n2!.ip };
      const c = await Promise.race([cluster(this.lab, name, p.gateway.wanIP, nodes, [p.gateway.namespace, n1!.namespace, n2!.namespace]), this.aborted]);
      this.clusters[name] = c;
      for (const n of p.nodes) {
        await c.server.setNode(n.name, { internalIP: n.ip, podCIDRs: [n.podCIDR] });
        for (const pod of n.pods) await c.server.setPod('default', pod.name, { nodeName: n.name, podIP: pod.ip });
      }
      const prefix = wireguardInterfacePrefix(id, name);
      this.spawn(`${name}/controller`, p.gateway.namespace, [weft, 'controller', '--kubeconfig', c.kubeconfigs.controller, '--metrics-port', '0', '--interface-prefix', prefix]);
      for (const n of p.nodes) this.spawn(`${name}/agent-${n.name}`, n.namespace, [weft, 'agent', '--kubeconfig', c.kubeconfigs.agent, '--metrics-port', '0'], { NODE_NAME: n.name });
      const gw = this.track(`${name}/gateway`, startGateway(this.lab, p.gateway.namespace, c, 'gw', this.leaseMs));
      if (name === 'a') this.active = gw;
      // Two peerings per cluster: slots 0 and 1.
      for (const slot of [0, 1]) this.lab.trackSocket(`/var/run/wireguard/${prefix}${slot}.sock`);
    }
    // Every gateway active and programmed before a's standby starts (so the standby cannot win).
    for (const name of CLUSTERS) {
      const ns = this.plan(name).gateway.namespace;
      await this.waitFor(`gateway ${name} ready`, async () => (await this.readyz(ns)) === 200, 60_000, 500);
      await this.waitFor(`gateway ${name} published`, async () => (await this.clusterNetwork(name))?.status?.gatewayNodeIP, 20_000, 100);
    }
    const holder = (await this.lease()).holder;
    if (holder !== ACTIVE_IDENTITY) throw new Error(`a's Lease is held by ${holder}, expected ${ACTIVE_IDENTITY}`);
    const n2 = this.plan('a').nodes[1]!;
    this.standby = this.track('a/gateway-standby', startGateway(this.lab, n2.namespace, this.clusters.a, 'n2', this.leaseMs));
    await this.waitFor('standby answering /readyz', async () => (await this.readyz(n2.namespace)) === 503, 30_000, 500);
    this.log('gateways up: a active on its gateway host, a standby on a/n2; b and c one replica each');

    for (const [x, y] of [['a', 'b'], ['a', 'c'], ['b', 'c']] as const) {
      const t0 = Date.now();
      const out = await this.peeringCommand('peer', x, y);
      this.log(`weft peer ${x} ${y}: ${out} (${Date.now() - t0} ms)`);
    }
    for (const x of CLUSTERS) for (const y of CLUSTERS) if (x !== y) await this.waitFor(`${x}→${y} Connected`, async () => (await this.peering(x, y))?.status?.phase === 'Connected', 60_000, 250);

    // The attacker: a port of the WAN switch, as every gateway has.
    this.attackerNs = await this.lab.namespace('atk');
    this.attackerAddresses = Array.from({ length: this.attackerCount }, (_, i) => `203.0.113.${100 + i}`);
    await this.lab.veth(this.topology.wanNamespace, this.attackerNs, { ifA: 'atk0', ifB: 'eth0', b: this.attackerAddresses.map((a) => `${a}/24`), mtu: this.topology.wanMtu });
    await run('ip', ['-n', this.topology.wanNamespace, 'link', 'set', 'atk0', 'master', 'br0']);

    // /metrics and /healthz of a's active gateway, from here, through a Unix socket relay in its namespace.
    this.metricsSock = path.join(this.lab.tempDir('metrics'), 'gw.sock');
    const relay = `const net=require('net');net.createServer((c)=>{const u=net.connect(${METRICS_PORT},'127.0.0.1');c.pipe(u).pipe(c);const e=()=>{c.destroy();u.destroy()};c.on('error',e);u.on('error',e)}).listen(${JSON.stringify(this.metricsSock)},()=>console.log('ready'))`;
    const r = this.spawn('a/metrics-relay', this.plan('a').gateway.namespace, [nodeBin, '-e', relay]);
    await this.waitFor('metrics relay', () => r.output().includes('ready'), 10_000);
  }

  /** waitFor, but over at once when closeSync() ran (an interrupt must not wait out a timeout). */
  private async waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs: number, everyMs = 50): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      if (this.killed) throw new Aborted();
      try {
        const v = await check();
        if (v) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
      await Promise.race([sleep(everyMs), this.aborted]);
    }
  }

  /** `weft peer x y` or `weft unpeer x y` as a person with both kubeconfigs runs it; its output. */
  peeringCommand(verb: 'peer' | 'unpeer', x: ClusterName, y: ClusterName): Promise<string> {
    const extra = verb === 'peer' ? ['--timeout', '60'] : [];
    return this.cli(`weft ${verb} ${x} ${y}`, [weft, verb, '--kubeconfig', this.clusters[x].kubeconfig, '--remote-kubeconfig', this.clusters[y].kubeconfig, ...extra]);
  }

  /** A command in this (root) namespace, tracked like the daemons (closeSync ends it); its stdout. */
  private async cli(label: string, args: string[]): Promise<string> {
    if (this.killed) throw new Aborted();
    const p = this.track(label, spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
    if (code !== 0) throw new Error(`${label} exited ${code}: ${p.output().trim().slice(-500)}`);
    return p.output().trim();
  }

  // ---- reading the fabric ---------------------------------------------------------------------

  clusterNetwork(c: ClusterName): Promise<Resource<ClusterNetworkSpec, ClusterNetworkStatus> | undefined> {
    return this.clusters[c].store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
  }

  peering(local: ClusterName, remote: ClusterName): Promise<Resource<PeeringSpec, PeeringStatus> | undefined> {
    return this.clusters[local].store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, remote);
  }

  /** A gateway's /readyz status code in `ns` (0: no answer); ncat, lighter than a Node per poll. */
  async readyz(ns: string): Promise<number> {
    // The request comes from printf, not our stdin: a child that dies first (its namespace gone
    // at an interrupt) must not leave us an EPIPE on a pipe nobody listens to.
    const r = await this.lab.exec(ns, ['sh', '-c', `printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' | ncat -w 5 127.0.0.1 ${METRICS_PORT}`], { allowFail: true, timeoutMs: 10_000 }).catch(() => null);
    return Number(/^HTTP\/1\.[01] (\d{3})/.exec(r?.stdout ?? '')?.[1] ?? 0);
  }

  /** a's Lease as the API holds it (read in-process, so sampling it costs the gateways nothing). */
  async lease(): Promise<{ holder: string | undefined; transitions: number; renewTime: string | undefined }> {
    const l = (await this.clusters.a.server.getObject('leases', LEASE.name, LEASE.namespace)) as { spec?: { holderIdentity?: string; leaseTransitions?: number; renewTime?: string } } | undefined;
    return { holder: l?.spec?.holderIdentity || undefined, transitions: l?.spec?.leaseTransitions ?? 0, renewTime: l?.spec?.renewTime };
  }

  /** a's tunnels: from the FabricPeers (port, interface) and the control sockets. */
  async tunnels(): Promise<Tunnel[]> {
    const out: Tunnel[] = [];
    for (const remote of ['b', 'c'] as const) {
      const f = await this.clusters.a.store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, remote);
      if (!f) throw new Error(`no FabricPeer ${remote} in cluster a`);
      out.push({ remote, interfaceName: f.spec.interfaceName, port: f.spec.listenPort, socket: `/var/run/wireguard/${f.spec.interfaceName}.sock` });
    }
    return out;
  }

  /** Where a pod of `remote` is reached from `local` (its IP in local's remap of remote's pod CIDR). */
  async seenFrom(local: ClusterName, remote: ClusterName, ip: string): Promise<string> {
    const remap = (await this.peering(local, remote))?.status?.podCIDRRemap;
    if (!remap) throw new Error(`${local} has no remap for ${remote}`);
    return translate(ip, this.plan(remote).podCIDR, remap);
  }

  /** GET through the relay to a's active gateway; resolves with status, body and milliseconds. */
  gatewayHttp(p: string, timeoutMs = 10_000): Promise<{ code: number; body: string; ms: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.get({ socketPath: this.metricsSock, path: p, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${p}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  /**
   * test/netns/handshake-flood.ts from the attacker's addresses at a's WAN address, spread evenly
   * over `ports` (a's tunnel ports, or a closed port for a reference flood), every message with a
   * valid mac1 for `publicKey`.
   */
  startFlood(ports: readonly number[], publicKey: string, cfg: FloodConfig): Flood {
    const config = { targets: ports.map((port) => ({ host: this.plan('a').gateway.wanIP, port, publicKey })), binds: this.attackerAddresses, rate: cfg.rate, maxSeconds: cfg.maxSeconds };
    const p = this.spawn('attacker/flood', this.attackerNs, ['nice', '-n', String(cfg.nice ?? 19), nodeBin, FLOOD, JSON.stringify(config)]);
    const done = new Promise((r) => p.child.once('exit', r));
    return {
      child: p.child,
      running: () => p.child.exitCode === null && p.child.signalCode === null,
      async report() {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
        await Promise.race([done, sleep(15_000)]);
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
        const line = p.output().trim().split('\n').filter((l) => l.startsWith('{')).pop();
        if (!line) throw new Error(`the flood printed no report: ${p.output().slice(-500)}`);
        return JSON.parse(line) as FloodReport;
      },
    };
  }

  /**
   * The rate one generator reaches here now (initiations/s, at most `cap`): a short flood at `cap`.
   * The generator owes what it could not send and catches up in ever longer bursts, so a target
   * far above what it reaches would overrun its end by a lot; floods are started at this rate.
   */
  async calibrateFlood(ports: readonly number[], publicKey: string, cap: number, opts: { seconds?: number; nice?: number } = {}): Promise<number> {
    const seconds = opts.seconds ?? 3;
    const f = this.startFlood(ports, publicKey, { rate: cap, maxSeconds: seconds, ...(opts.nice !== undefined ? { nice: opts.nice } : {}) });
    await Promise.race([new Promise((r) => f.child.once('exit', r)), sleep(seconds * 4000 + 5000)]);
    return Math.min(cap, (await f.report()).rate);
  }

  // ---- observing --------------------------------------------------------------------------------

  /** Sample everything for `seconds` (or until `until` resolves, if earlier). */
  async observe(seconds: number, until?: Promise<unknown>): Promise<Observation> {
    const t0 = Date.now();
    const deadline = t0 + seconds * 1000;
    let stop = false;
    const stopped = new Promise<void>((r) => {
      const timer = setTimeout(r, seconds * 1000);
      void until?.then(() => {
        clearTimeout(timer);
        r();
      });
    }).then(() => {
      stop = true;
    });
    const tunnels = await this.tunnels();
    const counters0 = await Promise.all(tunnels.map((t) => readStats(t.socket)));
    const cpu0 = { gw: procUsage(this.active.child.pid!).cpuSeconds, sb: procUsage(this.standby.child.pid!).cpuSeconds };
    const lease0 = await this.lease();
    const a = this.plan('a');
    const remotePods = { b: this.plan('b').nodes.flatMap((n) => n.pods), c: this.plan('c').nodes.flatMap((n) => n.pods) };
    const aPods = a.nodes.flatMap((n) => n.pods);
    const targets: Record<string, string> = {};
    for (const r of ['b', 'c'] as const) for (const p of remotePods[r]) targets[`${r}/${p.name}`] = await this.seenFrom('a', r, p.ip);

    const track = (): PeeringTrack => ({ samples: 0, notConnected: [], latencyMs: [], probesAnswered: 0, longestProbeGapMs: 0 });
    const obs: Observation = {
      seconds: 0,
      peerings: { b: track(), c: track() },
      remoteViews: { b: track(), c: track() },
      lease: { holders: [], transitionsBefore: lease0.transitions, transitionsAfter: lease0.transitions, samples: 0, maxRenewGapMs: 0, renewals: 0 },
      reconciles: { ok: 0, errors: 0, histogram: { count: 0, sum: 0, buckets: [] }, scrapes: 0, scrapeFailures: 0, longestGapMs: 0, maxScrapeMs: 0 },
      eventLoopLagMaxMs: 0,
      healthz: { samples: 0, failures: 0, latencyMs: [] },
      pings: {},
      sweeps: { rounds: 0, pairs: 0, failures: [] },
      counters: {},
      gatewayCpuSeconds: 0,
      jsThread: { runMs: 0, waitMs: 0, worstSecondWaitMs: 0 },
      busyThreads: [],
      standbyCpuSeconds: 0,
      activeAlive: false,
      standbyReady: { samples: 0, ready: 0 },
    };

    const peeringLoop = async (tr: PeeringTrack, local: ClusterName, remote: ClusterName) => {
      while (!stop) {
        const st = (await this.peering(local, remote).catch(() => undefined))?.status;
        tr.samples++;
        if (st?.phase !== 'Connected') tr.notConnected.push({ atMs: Date.now() - t0, phase: st?.phase ?? 'missing', reason: st?.reason ?? st?.conditions?.find((c) => c.type === 'Connected')?.reason });
        await sleep(250);
      }
    };

    const leaseLoop = async () => {
      let lastRenew = lease0.renewTime;
      let lastRenewAt = Date.now();
      while (!stop) {
        const l = await this.lease().catch(() => undefined);
        if (!l) {
          await sleep(100);
          continue;
        }
        const now = Date.now();
        obs.lease.samples++;
        const h = l.holder ?? '(none)';
        if (!obs.lease.holders.includes(h)) obs.lease.holders.push(h);
        obs.lease.transitionsAfter = l.transitions;
        if (l.renewTime !== lastRenew) {
          obs.lease.renewals++;
          lastRenew = l.renewTime;
          lastRenewAt = now;
        }
        obs.lease.maxRenewGapMs = Math.max(obs.lease.maxRenewGapMs, now - lastRenewAt);
        await sleep(100);
      }
    };

    const metricsLoop = async () => {
      let first: Metrics | undefined;
      let last: Metrics | undefined;
      let lastOkAt = Date.now();
      const answered = (m: Metrics, r: string) => m.get(`weft_peering_probes_total{peering="${r}",result="answered"}`) ?? 0;
      const lastAnsweredAt: Record<string, number> = { b: Date.now(), c: Date.now() };
      // The first scrape also resets the event-loop delay histogram: the phase's maximum starts there.
      const scrape = async () => {
        const r = await this.gatewayHttp('/metrics').catch(() => null);
        const now = Date.now();
        obs.reconciles.scrapes++;
        if (!r || r.code !== 200) obs.reconciles.scrapeFailures++;
        else {
          obs.reconciles.maxScrapeMs = Math.max(obs.reconciles.maxScrapeMs, r.ms);
          const m = parseMetrics(r.body);
          if (!first) first = m;
          else obs.eventLoopLagMaxMs = Math.max(obs.eventLoopLagMaxMs, (m.get('weft_nodejs_eventloop_lag_max_seconds') ?? 0) * 1000);
          if (last && (m.get(OK) ?? 0) > (last.get(OK) ?? 0)) lastOkAt = now;
          for (const r of ['b', 'c']) {
            if (last && answered(m, r) > answered(last, r)) {
              lastAnsweredAt[r] = now;
              const rtt = m.get(`weft_peering_latency_seconds{peering="${r}",remote="${r}"}`);
              if (rtt !== undefined) obs.peerings[r]!.latencyMs.push(rtt * 1000);
            }
          }
          last = m;
        }
        obs.reconciles.longestGapMs = Math.max(obs.reconciles.longestGapMs, now - lastOkAt);
        for (const r of ['b', 'c']) obs.peerings[r]!.longestProbeGapMs = Math.max(obs.peerings[r]!.longestProbeGapMs, now - lastAnsweredAt[r]!);
      };
      while (!stop) {
        await scrape();
        await Promise.race([sleep(1000), stopped]);
      }
      await scrape();
      if (first && last) {
        obs.reconciles.ok = (last.get(OK) ?? 0) - (first.get(OK) ?? 0);
        obs.reconciles.errors = (last.get(ERR) ?? 0) - (first.get(ERR) ?? 0);
        obs.reconciles.histogram = histogramDelta(first, last, 'weft_reconcile_seconds', 'piece="gateway"');
        for (const r of ['b', 'c']) obs.peerings[r]!.probesAnswered = answered(last, r) - answered(first, r);
      }
    };

    const healthLoop = async () => {
      while (!stop) {
        const r = await this.gatewayHttp('/healthz', 5000).catch(() => null);
        obs.healthz.samples++;
        if (!r || r.code !== 200) obs.healthz.failures++;
        else obs.healthz.latencyMs.push(r.ms);
        await sleep(200);
      }
    };

    const standbyLoop = async () => {
      while (!stop) {
        const code = await this.readyz(a.nodes[1]!.namespace);
        obs.standbyReady.samples++;
        if (code === 200) obs.standbyReady.ready++;
        await Promise.race([sleep(2000), stopped]);
      }
    };

    const pingLoop = async (remote: 'b' | 'c') => {
      const dst = targets[`${remote}/${remotePods[remote][0]!.name}`]!;
      const tr: PingTrack = { sent: 0, received: 0, rttMs: [] };
      obs.pings[remote] = tr;
      const secs = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
      // Ends at the deadline, or when the phase stops (SIGINT: ping prints its summary).
      const p = this.spawn(`a/ping-${remote}`, aPods[0]!.namespace, ['ping', '-n', '-i', '0.2', '-W', '1', '-w', String(secs), dst]);
      const exited = new Promise((r) => p.child.once('exit', r));
      await Promise.race([exited, stopped]);
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGINT');
      await Promise.race([exited, sleep(5000)]);
      const out = p.output();
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
      tr.sent = m ? Number(m[1]) : 0;
      tr.received = m ? Number(m[2]) : 0;
      tr.rttMs = [...out.matchAll(/time=([\d.]+) ms/g)].map((x) => Number(x[1]));
    };

    const pid = this.active.child.pid!;
    const threads0 = threadTimes(pid);
    const schedLoop = async () => {
      let prev = threads0.get(String(pid));
      while (!stop) {
        await Promise.race([sleep(1000), stopped]);
        const cur = threadTimes(pid).get(String(pid));
        if (cur && prev) obs.jsThread.worstSecondWaitMs = Math.max(obs.jsThread.worstSecondWaitMs, cur.waitMs - prev.waitMs);
        prev = cur ?? prev;
      }
    };

    const sweepLoop = async () => {
      while (!stop) {
        for (const p of aPods) {
          for (const [label, dst] of Object.entries(targets)) {
            const r = await this.lab.exec(p.namespace, ['ping', '-n', '-c', '2', '-i', '0.3', '-W', '2', dst], { allowFail: true, timeoutMs: 15_000 });
            obs.sweeps.pairs++;
            if (r.code !== 0) obs.sweeps.failures.push(`a/${p.name} → ${label} (${dst}) at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          }
        }
        obs.sweeps.rounds++;
      }
    };

    await Promise.all([
      peeringLoop(obs.peerings.b!, 'a', 'b'),
      peeringLoop(obs.peerings.c!, 'a', 'c'),
      peeringLoop(obs.remoteViews.b!, 'b', 'a'),
      peeringLoop(obs.remoteViews.c!, 'c', 'a'),
      leaseLoop(),
      metricsLoop(),
      healthLoop(),
      standbyLoop(),
      pingLoop('b'),
      pingLoop('c'),
      sweepLoop(),
      schedLoop(),
      stopped,
    ]);
    obs.seconds = (Date.now() - t0) / 1000;
    const threads1 = threadTimes(pid);
    const main0 = threads0.get(String(pid));
    const main1 = threads1.get(String(pid));
    if (main0 && main1) Object.assign(obs.jsThread, { runMs: main1.runMs - main0.runMs, waitMs: main1.waitMs - main0.waitMs });
    for (const [tid, t] of threads1) {
      const cpu = (t.runMs - (threads0.get(tid)?.runMs ?? 0)) / 1000;
      if (tid !== String(pid) && cpu > 0.01 * obs.seconds) obs.busyThreads.push({ tid, comm: t.comm, cpuSeconds: cpu, waitSeconds: (t.waitMs - (threads0.get(tid)?.waitMs ?? 0)) / 1000 });
    }
    // A gateway that exited (e.g. lost its Lease) took its control sockets along: no counters then.
    const counters1 = await Promise.all(tunnels.map((t) => readStats(t.socket).catch(() => undefined)));
    for (const [i, t] of tunnels.entries()) {
      const d: Record<string, number> = {};
      for (const [k, v] of Object.entries(counters1[i] ?? {})) if (k.startsWith('handshake_') && v !== counters0[i]![k]) d[k] = Number(v - (counters0[i]![k] ?? 0n));
      obs.counters[t.interfaceName] = d;
    }
    obs.gatewayCpuSeconds = procUsage(this.active.child.pid!).cpuSeconds - cpu0.gw;
    obs.standbyCpuSeconds = procUsage(this.standby.child.pid!).cpuSeconds - cpu0.sb;
    obs.activeAlive = this.active.child.exitCode === null && this.active.child.signalCode === null;
    return obs;
  }

  /** The last lines every daemon printed (for a failure message). */
  logs(): string {
    return this.procs.filter((p) => !p.label.includes('/ping-')).map((p) => `--- ${p.label} (${p.child.exitCode ?? p.child.signalCode ?? 'running'})\n${p.output().slice(-1500)}`).join('\n');
  }

  // ---- cleanup ----------------------------------------------------------------------------------

  private namespaces(): string[] {
    const ns = this.topology ? this.topology.clusters.flatMap((c) => [c.switchNamespace, c.gateway.namespace, ...c.nodes.flatMap((n) => [n.namespace, ...n.pods.map((p) => p.namespace)])]) : [];
    if (this.topology) ns.unshift(this.topology.wanNamespace);
    if (this.attackerNs) ns.push(this.attackerNs);
    return ns;
  }

  /** Idempotent; also after closeSync() (it then removes what that left: temp files, API servers). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      // Our children first (by pid), then whatever is left inside the lab's namespaces, the lab.
      await this.lab.cleanup();
      await down({ stateDir: this.stateDir }).catch((err) => this.log(`lab down: ${(err as Error).message}`));
      for (const name of CLUSTERS) await closeCluster(this.clusters[name]).catch(() => {});
      fs.rmSync(this.stateDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  /** From a signal handler: SIGKILL everything inside our namespaces, delete them, remove sockets. */
  closeSync(): void {
    if (this.killed || this.closing) return;
    this.killed = true;
    this.abort();
    const names = this.namespaces().filter((n) => fs.existsSync(`${NETNS_DIR}/${n}`));
    const wanted = new Set<string>();
    for (const n of names) {
      try {
        const st = fs.statSync(`${NETNS_DIR}/${n}`);
        wanted.add(`${st.dev}:${st.ino}`);
      } catch {}
    }
    for (const p of this.procs) if (p.child.pid) tryKill(p.child.pid);
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      try {
        const st = fs.statSync(`/proc/${e}/ns/net`);
        if (wanted.has(`${st.dev}:${st.ino}`)) tryKill(Number(e));
      } catch {}
    }
    if (names.length) execFileSync('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] });
    const prefix = this.topology ? `wl${this.topology.id}-` : undefined;
    try {
      for (const f of fs.readdirSync('/var/run/wireguard')) if (prefix && f.startsWith(prefix) && f.endsWith('.sock')) fs.rmSync(`/var/run/wireguard/${f}`, { force: true });
    } catch {}
    fs.rmSync(this.stateDir, { recursive: true, force: true });
    // Files the async cleanups would remove: the API servers' kubeconfigs, our NetLab's temp dirs
    // (keys, bridge and relay sockets; named after its random id).
    for (const name of CLUSTERS) if (this.clusters[name]) fs.rmSync(path.dirname(this.clusters[name].kubeconfig), { recursive: true, force: true });
    for (const e of fs.readdirSync(os.tmpdir())) if (e.startsWith(`weft-${this.lab.id}-`)) fs.rmSync(path.join(os.tmpdir(), e), { recursive: true, force: true });
  }
}

class Aborted extends Error {
  constructor() {
    super('interrupted: the mesh was torn down');
  }
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

// ---- small helpers ------------------------------------------------------------------------------

const OK = 'weft_reconciles_total{piece="gateway",result="ok"}';
const ERR = 'weft_reconciles_total{piece="gateway",result="error"}';

/** Prometheus text → "name{labels without role}" → value. */
export type Metrics = Map<string, number>;

export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/).filter((l) => l && !l.startsWith('role='));
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

export function histogramDelta(a: Metrics, b: Metrics, name: string, selector: string): HistogramDelta {
  const buckets: [number, number][] = [];
  for (const [k, v] of b) {
    const m = new RegExp(`^${name}_bucket\\{(.*)\\}$`).exec(k);
    if (!m || !m[1]!.includes(selector)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)?.[1];
    if (!le) continue;
    buckets.push([le === '+Inf' ? Infinity : Number(le), v - (a.get(k) ?? 0)]);
  }
  buckets.sort((x, y) => x[0] - y[0]);
  const key = (suffix: string) => `${name}_${suffix}{${selector}}`;
  return { count: (b.get(key('count')) ?? 0) - (a.get(key('count')) ?? 0), sum: (b.get(key('sum')) ?? 0) - (a.get(key('sum')) ?? 0), buckets };
}

/** The smallest bucket bound that holds at least `p` % of the observations (an upper bound). */
export function histogramQuantile(h: HistogramDelta, p: number): number {
  if (h.count <= 0) return NaN;
  for (const [le, n] of h.buckets) if (n >= (p / 100) * h.count) return le;
  return Infinity;
}

/** Per thread of `pid`: name, ms on a CPU and ms runnable but waiting for one (schedstat). */
export function threadTimes(pid: number): Map<string, { comm: string; runMs: number; waitMs: number }> {
  const out = new Map<string, { comm: string; runMs: number; waitMs: number }>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const tid of tids) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(tid, { comm: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(), runMs: run! / 1e6, waitMs: wait! / 1e6 });
    } catch {}
  }
  return out;
}

export function percentileOf(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
