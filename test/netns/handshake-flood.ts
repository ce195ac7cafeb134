// Handshake flood for the handshake-load tests and benchmarks, run inside a namespace as its own
// process:
//   node handshake-flood.ts '{"targets":[{"host":"…","port":N,"publicKey":"<base64>"}],
//                             "binds":["…"],"rate":R,"maxSeconds":S}'
// Sends initiations with random content but a VALID mac1 for each target's public key, so they
// pass the cheap check and would cost a responder real work: the shape of a handshake DoS. The
// load is spread evenly over the targets (e.g. every tunnel port of one gateway) and comes from
// several sockets on each address in `binds` (every address its own rate-limit bucket). mac1 only
// depends on the receiver's key, so a pool of messages per key is computed up front and the send
// loop only sends. Bounded: it stops after maxSeconds or on SIGTERM, and never queues more than a
// few thousand datagrams in the kernel-bound send queues (what it cannot send, it does not count).
// Prints one JSON line: what it sent, the rate achieved, and the cookie replies per target port.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { hash, mac } from '../../src/wireguard/crypto.ts';

interface Target {
  host: string;
  port: number;
  publicKey: string;
}
/** The JSON line it prints when it stops (`import type` of it does not run this script). */
export interface FloodReport {
  sent: number;
  /** Sends skipped because a socket's queue was full (not counted in `sent`). */
  skipped: number;
  seconds: number;
  rate: number;
  cookieReplies: number;
  /** Cookie replies by the target port that sent them. */
  cookieRepliesByPort: Record<string, number>;
}

const args = JSON.parse(process.argv[2] ?? '{}') as { targets: Target[]; binds: string[]; rate: number; maxSeconds: number };
const POOL = 512;
const SOCKETS_PER_BIND = 4;
const TICK_MS = 5;
const MAX_QUEUED_PER_SOCKET = 512;

const pools = args.targets.map((t) => {
  const mac1Key = hash(Buffer.from('mac1----'), Buffer.from(t.publicKey, 'base64'));
  return Array.from({ length: POOL }, () => {
    const msg = randomBytes(148);
    msg.writeUInt32LE(1, 0);
    msg.set(mac(mac1Key, msg.subarray(0, 116)), 116);
    msg.fill(0, 132); // no cookie: mac2 all zero
    return msg;
  });
});
const family = args.targets[0]!.host.includes(':') ? 'udp6' : 'udp4';
// Large receive buffers: at tens of thousands of cookie replies a second the default one drops them.
const sockets = args.binds.flatMap(() => Array.from({ length: SOCKETS_PER_BIND }, () => dgram.createSocket({ type: family, recvBufferSize: 4 << 20 })));
await Promise.all(sockets.map((s, i) => new Promise<void>((r) => s.bind(0, args.binds[Math.floor(i / SOCKETS_PER_BIND)], () => r()))));
const cookieRepliesByPort: Record<number, number> = {};
let cookieReplies = 0;
for (const s of sockets) {
  s.on('message', (m, rinfo) => {
    if (m.length !== 64 || m[0] !== 3) return;
    cookieReplies++;
    cookieRepliesByPort[rinfo.port] = (cookieRepliesByPort[rinfo.port] ?? 0) + 1;
  });
}

let sent = 0;
let skipped = 0;
const start = performance.now();
let credit = 0;
let last = start;
let finished = false;
const timer = setInterval(() => {
  const now = performance.now();
  if (now - start > args.maxSeconds * 1000) return finish();
  credit += ((now - last) / 1000) * args.rate;
  last = now;
  const n = Math.floor(credit);
  credit -= n;
  for (let i = 0; i < n; i++) {
    const k = sent + skipped;
    const s = sockets[k % sockets.length]!;
    if (s.getSendQueueCount() > MAX_QUEUED_PER_SOCKET) {
      skipped++;
      continue;
    }
    const t = k % args.targets.length;
    const target = args.targets[t]!;
    s.send(pools[t]![Math.floor(k / args.targets.length) % POOL]!, target.port, target.host);
    sent++;
  }
}, TICK_MS);

function finish() {
  if (finished) return;
  finished = true;
  clearInterval(timer);
  const seconds = (performance.now() - start) / 1000;
  setTimeout(() => {
    const report: FloodReport = { sent, skipped, seconds, rate: Math.round(sent / seconds), cookieReplies, cookieRepliesByPort };
    process.stdout.write(JSON.stringify(report) + '\n');
    for (const s of sockets) s.close();
  }, 200);
}
process.on('SIGTERM', finish);
