// When the gateway writes what its probes found to the Peering's status. The probe runs every
// second; a status write is an API request, a new resourceVersion and a watch event for every
// watcher of Peerings (the controller, `weft peer`, kubectl -w, the remote's tooling), so writing
// every probe would put a constant load on the API server for nothing anyone reads. The status
// therefore changes when its meaning does — the Connected verdict, or a latency that moved far
// enough to matter — and otherwise once per heartbeat, which also refreshes the counters and the
// last handshake. This is how the kubelet reports Node status (on change, and every 5 minutes).
// Live figures (latency of every probe, bytes, handshake age) are on /metrics.

/** An unchanged status is re-written (with fresh counters) this often, as its heartbeat. */
export const HEARTBEAT_MS = 5 * 60_000;
/** Latencies of this many recent answered probes are summarised by their median. */
export const LATENCY_WINDOW = 10;
/** A latency is rewritten only when it moved by at least this much (ms)... */
export const LATENCY_MIN_STEP_MS = 5;
/** ...and by at least this factor. */
export const LATENCY_MIN_FACTOR = 2;

export interface ProbeVerdict {
  status: 'True' | 'False';
  reason: string;
}

/** What the gateway last wrote for one peering. */
export interface Reported {
  verdict: ProbeVerdict;
  latencyMs: number | undefined;
  atMs: number;
}

/**
 * A latency worth writing instead of the one on record: it appeared or vanished, or moved by at
 * least 5 ms and at least doubled or halved. The status gives the order of magnitude (a LAN's
 * 0.3 ms, another region's 40 ms); a busy machine's userspace tunnels swing between 0.4 and 4 ms
 * from one second to the next (measured: bench/api-writes.ts), which is not news. 0.3 → 9 ms or
 * 40 → 85 ms is.
 */
export function latencyMoved(recorded: number | undefined, now: number | undefined): boolean {
  if (recorded === undefined || now === undefined) return recorded !== now;
  const lo = Math.min(recorded, now);
  const hi = Math.max(recorded, now);
  return hi - lo >= LATENCY_MIN_STEP_MS && hi >= lo * LATENCY_MIN_FACTOR;
}

/** Whether this probe's result must be written (nothing written yet counts as a change). */
export function needsReport(last: Reported | undefined, verdict: ProbeVerdict, latencyMs: number | undefined, nowMs: number): boolean {
  if (!last) return true;
  if (last.verdict.status !== verdict.status || last.verdict.reason !== verdict.reason) return true;
  if (latencyMoved(last.latencyMs, latencyMs)) return true;
  return nowMs - last.atMs >= HEARTBEAT_MS;
}

/** The median of the recent answered probes' round trips (undefined while none answered). */
export function smoothedLatency(recent: readonly number[]): number | undefined {
  if (recent.length === 0) return undefined;
  const s = [...recent].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
