// Hostile datagram sender for bad-input.test.ts, run inside a namespace as its own process:
//   node udp-sender.ts '{"host":"192.168.78.2","port":51002,"count":100000,"rate":20000,"maxSeconds":60,
//                        "mode":"fuzz"|"replay","replayFile":"/tmp/.../captured.hex","rounds":20}'
// fuzz: random datagrams of 0–1500 bytes, exact handshake sizes (148/92/64) with WireGuard type
//   headers and random content, type-4 headers with random receiver indices and counters, sizes
//   one-off from the exact ones, unknown types, and (if replayFile is given) mutated captures.
// replay: every captured datagram (one hex line each) resent `rounds` times, in capture order.
// Paced to `rate` datagrams/s and stopped at `maxSeconds`; prints {"sent":N,"errors":E,"seconds":S}.
import dgram from 'node:dgram';
import fs from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';

interface Args {
  host: string;
  port: number;
  count?: number;
  rate?: number;
  maxSeconds?: number;
  mode?: 'fuzz' | 'replay';
  replayFile?: string;
  rounds?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const rate = args.rate ?? 20_000;
const maxMs = (args.maxSeconds ?? 60) * 1000;
const captured = args.replayFile
  ? fs.readFileSync(args.replayFile, 'utf8').split('\n').filter(Boolean).map((h) => Buffer.from(h, 'hex'))
  : [];

// A pool of random bytes; datagrams are random windows of it with their header bytes overwritten.
const pool = randomBytes(1 << 22);
function random(n: number): Buffer {
  const off = randomInt(0, pool.length - n + 1);
  return Buffer.from(pool.subarray(off, off + n));
}
function withType(type: number, size: number): Buffer {
  const b = random(size);
  if (size >= 1) b[0] = type;
  if (size >= 4) b.fill(0, 1, 4);
  return b;
}

function fuzzDatagram(): Buffer {
  const r = randomInt(0, 100);
  if (r < 25) return random(randomInt(0, 1501));
  if (r < 35) return withType(1, 148);
  if (r < 45) return withType(2, 92);
  if (r < 52) return withType(3, 64);
  if (r < 72) {
    // Transport header with a random receiver index and counter, random ciphertext.
    const b = withType(4, randomInt(32, 1501));
    b.writeUInt32LE(randomInt(0, 2 ** 32), 4);
    return b;
  }
  if (r < 82) {
    // Wrong sizes for their type: handshakes one-off or truncated, transport below 32 bytes.
    const type = randomInt(1, 5);
    const exact = [0, 148, 92, 64, 32][type]!;
    const size = type === 4 ? randomInt(0, 32) : Math.max(0, exact + (randomInt(0, 2) ? 1 : -1) * randomInt(1, 40));
    return withType(type, size);
  }
  if (r < 88) {
    // Unknown message types, or a valid type with non-zero reserved bytes.
    const b = withType(randomInt(0, 2) ? randomInt(5, 256) : randomInt(1, 5), [148, 92, 64, 96][randomInt(0, 4)]!);
    if (b[0]! <= 4) b[randomInt(1, 4)] = randomInt(1, 256);
    return b;
  }
  if (captured.length) {
    // Captured real packets, mutated: one bit flipped, truncated, or counter changed.
    const c = Buffer.from(captured[randomInt(0, captured.length)]!);
    const how = randomInt(0, 3);
    if (how === 0 && c.length) {
      const i = randomInt(0, c.length);
      c[i] = c[i]! ^ (1 << randomInt(0, 8));
      return c;
    }
    if (how === 1) return c.subarray(0, randomInt(0, c.length));
    if (c[0] === 4 && c.length >= 16) c.writeBigUInt64LE(BigInt(randomInt(0, 2 ** 40)), 8);
    return c;
  }
  return random(randomInt(0, 1501));
}

const socket = dgram.createSocket(args.host.includes(':') ? 'udp6' : 'udp4');
let sent = 0;
let errors = 0;
const started = Date.now();

function sendOne(buf: Buffer): Promise<void> {
  return new Promise((resolve) => {
    socket.send(buf, args.port, args.host, (err) => {
      if (err) errors++;
      else sent++;
      resolve();
    });
  });
}

const list: Buffer[] | null =
  args.mode === 'replay' ? Array.from({ length: args.rounds ?? 20 }, () => captured).flat() : null;
const total = list ? list.length : (args.count ?? 100_000);
const batch = Math.max(1, Math.round(rate / 100)); // one batch per 10 ms
let next = 0;
while (next < total && Date.now() - started < maxMs) {
  const tick = Date.now();
  const end = Math.min(total, next + batch);
  const pending: Promise<void>[] = [];
  for (; next < end; next++) pending.push(sendOne(list ? list[next]! : fuzzDatagram()));
  await Promise.all(pending);
  const elapsed = Date.now() - tick;
  if (elapsed < 10) await new Promise((r) => setTimeout(r, 10 - elapsed));
}
socket.close();
process.stdout.write(JSON.stringify({ sent, errors, seconds: (Date.now() - started) / 1000, total }) + '\n');
