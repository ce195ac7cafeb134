// weft's Prometheus metrics, one registry per process. Gauges are filled from the state the pieces
// already keep (peering status, device counters) at scrape time, so nothing is counted twice.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class WeftMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'piece' | 'result'>;
  readonly reconcileSeconds: Histogram<'piece'>;
  readonly kernelChanges: Counter<'piece'>;
  readonly peeringUp: Gauge<'peering' | 'remote'>;
  readonly peeringLatency: Gauge<'peering' | 'remote'>;
  readonly peeringProbes: Counter<'peering' | 'result'>;
  readonly tunnelBytes: Gauge<'peering' | 'direction'>;
  readonly tunnelHandshakeAge: Gauge<'peering'>;
  readonly tunnelDrops: Gauge<'peering' | 'reason'>;
  readonly leader: Gauge;

  constructor(role: string) {
    this.registry.setDefaultLabels({ role });
    collectDefaultMetrics({ register: this.registry, prefix: 'weft_' });
    const r = [this.registry];
    this.reconciles = new Counter({ name: 'weft_reconciles_total', help: 'Reconcile runs by piece and result (ok, error).', labelNames: ['piece', 'result'], registers: r });
    this.reconcileSeconds = new Histogram({ name: 'weft_reconcile_seconds', help: 'Duration of reconcile runs.', labelNames: ['piece'], buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r });
    this.kernelChanges = new Counter({ name: 'weft_kernel_changes_total', help: 'Kernel objects (routes, rules, links, nft tables, sysctls) changed by reconciles.', labelNames: ['piece'], registers: r });
    this.peeringUp = new Gauge({ name: 'weft_peering_connected', help: '1 when the peering answers the end-to-end probe.', labelNames: ['peering', 'remote'], registers: r });
    this.peeringLatency = new Gauge({ name: 'weft_peering_latency_seconds', help: 'Last end-to-end probe round trip.', labelNames: ['peering', 'remote'], registers: r });
    this.peeringProbes = new Counter({ name: 'weft_peering_probes_total', help: 'End-to-end probes sent through the peering tunnel, by result (answered, unanswered).', labelNames: ['peering', 'result'], registers: r });
    this.tunnelBytes = new Gauge({ name: 'weft_tunnel_bytes', help: 'Bytes through the peering tunnel (WireGuard counters).', labelNames: ['peering', 'direction'], registers: r });
    this.tunnelHandshakeAge = new Gauge({ name: 'weft_tunnel_handshake_age_seconds', help: 'Seconds since the last completed WireGuard handshake.', labelNames: ['peering'], registers: r });
    this.tunnelDrops = new Gauge({ name: 'weft_tunnel_dropped_packets', help: 'Packets the tunnel dropped, by reason (malformed, replay, decrypt, source check, ...).', labelNames: ['peering', 'reason'], registers: r });
    this.leader = new Gauge({ name: 'weft_leader', help: '1 while this replica holds the leader lease.', registers: r });
  }

  /** Time a reconcile and count its outcome and kernel changes. */
  async timeReconcile<T extends { changed?: number } | void>(piece: string, fn: () => Promise<T>): Promise<T> {
    const end = this.reconcileSeconds.startTimer({ piece });
    try {
      const out = await fn();
      this.reconciles.inc({ piece, result: 'ok' });
      if (out && typeof out === 'object' && typeof out.changed === 'number' && out.changed > 0) this.kernelChanges.inc({ piece }, out.changed);
      return out;
    } catch (err) {
      this.reconciles.inc({ piece, result: 'error' });
      throw err;
    } finally {
      end();
    }
  }
}
