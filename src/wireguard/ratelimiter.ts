// Per-source rate limit on handshake messages while the device is under load (reference §4.4).
//
// A token bucket per source address: 20 packets per second sustained, bursts of 5. Only sources
// that proved they own their address (valid mac2) reach this limiter, so keying by address is
// meaningful. IPv6 sources are keyed by their /64, because one host usually controls a whole /64
// and could otherwise rotate addresses to get a fresh bucket each time (the kernel does the same);
// IPv4-mapped IPv6 addresses (from a dual-stack socket) count as the IPv4 address they carry.
//
// Time is injected (`nowMs`) so the behaviour is testable. Tokens are kept in milliseconds of
// credit: one packet costs 1000/20 = 50 ms, the bucket holds 5 x 50 ms.
import {
  RATELIMITER_GC_INTERVAL_MS,
  RATELIMITER_PACKETS_BURSTABLE,
  RATELIMITER_PACKETS_PER_SECOND,
} from './constants.ts';
import { parseAddress } from './prefix.ts';

const PACKET_COST_MS = 1000 / RATELIMITER_PACKETS_PER_SECOND;
const MAX_TOKENS_MS = PACKET_COST_MS * RATELIMITER_PACKETS_BURSTABLE;

interface Bucket {
  tokens: number;
  lastMs: number;
}

export interface RateLimiterOptions {
  /**
   * Cap on tracked sources; new sources beyond it are refused until garbage collection frees
   * room (the kernel bounds its table the same way), so a flood of spoofed-but-valid sources
   * cannot grow memory without bound. Default 65536.
   */
  maxEntries?: number;
}

/** The bucket key of a source address: the IPv4 address, or the first 64 bits of an IPv6 one. */
export function rateLimitKey(address: string): string {
  const parsed = parseAddress(address);
  if (parsed === null) return address; // not an IP literal: still limit it, by its text
  const b = parsed.bytes;
  if (parsed.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return `6:${Buffer.from(b.subarray(0, 8)).toString('hex')}`;
}

export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #lastGcMs: number | null = null;
  #maxEntries: number;

  constructor(options: RateLimiterOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 1 << 16;
  }

  /** Whether a handshake message from `address` may be processed now (spends a token if so). */
  allow(address: string, nowMs: number): boolean {
    if (this.#lastGcMs === null) this.#lastGcMs = nowMs;
    else if (nowMs - this.#lastGcMs >= RATELIMITER_GC_INTERVAL_MS) this.gc(nowMs);

    const key = rateLimitKey(address);
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxEntries) return false;
      // A new source starts with a full bucket and spends one token on this packet.
      this.#buckets.set(key, { tokens: MAX_TOKENS_MS - PACKET_COST_MS, lastMs: nowMs });
      return true;
    }
    // Clocks may step backwards in tests or after suspend: never refill negative time.
    const elapsed = Math.max(0, nowMs - bucket.lastMs);
    bucket.tokens = Math.min(MAX_TOKENS_MS, bucket.tokens + elapsed);
    bucket.lastMs = nowMs;
    if (bucket.tokens >= PACKET_COST_MS) {
      bucket.tokens -= PACKET_COST_MS;
      return true;
    }
    return false;
  }

  /**
   * Forget sources idle for at least RATELIMITER_GC_INTERVAL_MS. Their bucket has refilled
   * completely by then (1 s x 20/s > 5), so forgetting them changes no decision. Called lazily by
   * allow(); the device may also call it from a timer.
   */
  gc(nowMs: number): void {
    this.#lastGcMs = nowMs;
    for (const [key, bucket] of this.#buckets) {
      if (nowMs - bucket.lastMs >= RATELIMITER_GC_INTERVAL_MS) this.#buckets.delete(key);
    }
  }

  /** Number of sources currently tracked. */
  size(): number {
    return this.#buckets.size;
  }

  clear(): void {
    this.#buckets.clear();
  }
}
