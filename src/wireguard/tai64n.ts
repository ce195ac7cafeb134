// TAI64N timestamps (reference §4.7). The initiator puts one in every initiation; the responder
// accepts an initiation only if its timestamp is strictly greater than the last one it accepted
// from that peer, which defeats replay of captured initiations without any shared state.
//
// Layout: 8 bytes big-endian seconds with the TAI64 offset 2^62 + 10, then 4 bytes big-endian
// nanoseconds. The nanoseconds are rounded down to a multiple of 2^24 (about 16.8 ms) so that the
// timestamp does not leak a precise clock to an observer who can decrypt it (the responder).
import { TAI64N_SIZE } from './constants.ts';

const TAI64_BASE = 0x400000000000000an;
/** Low bits of the nanosecond field that are cleared (wireguard-go `whitenerMask`). */
const WHITENER_MASK = 0xffffff;

/**
 * The TAI64N label for a moment of wall-clock time.
 * @param nowMs milliseconds since the Unix epoch (Date.now() style); default: now.
 * @param nowNs the same moment in nanoseconds since the Unix epoch, for callers with a finer
 *   clock; when given it takes precedence over nowMs.
 */
export function tai64n(nowMs: number = Date.now(), nowNs?: bigint): Uint8Array {
  let seconds: bigint;
  let nanos: number;
  if (nowNs !== undefined) {
    seconds = nowNs / 1_000_000_000n;
    nanos = Number(nowNs % 1_000_000_000n);
    if (nanos < 0) {
      // BigInt division truncates toward zero; keep nanos in [0, 1e9) for instants before 1970.
      seconds -= 1n;
      nanos += 1_000_000_000;
    }
  } else {
    const wholeMs = Math.floor(nowMs);
    const secondsNumber = Math.floor(wholeMs / 1000);
    seconds = BigInt(secondsNumber);
    nanos = (wholeMs - secondsNumber * 1000) * 1_000_000;
  }
  const out = new Uint8Array(TAI64N_SIZE);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt.asUintN(64, TAI64_BASE + seconds), false);
  // `& ~mask` yields a signed 32-bit value; setUint32 stores its bit pattern, which is what we want.
  view.setUint32(8, (nanos & ~WHITENER_MASK) >>> 0, false);
  return out;
}

/** Byte-wise comparison (big-endian fields make it chronological): negative, zero or positive. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Seconds and nanoseconds since the Unix epoch encoded in a TAI64N label (for logs and tests). */
export function decodeTai64n(label: Uint8Array): { unixSeconds: bigint; nanoseconds: number } | null {
  if (label.length !== TAI64N_SIZE) return null;
  const view = new DataView(label.buffer, label.byteOffset, label.byteLength);
  return { unixSeconds: view.getBigUint64(0, false) - TAI64_BASE, nanoseconds: view.getUint32(8, false) };
}
