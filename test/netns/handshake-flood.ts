// Handshake flood for handshake-load.test.ts, run inside a namespace as its own process:
//   node handshake-flood.ts '{"host":"…","port":N,"bind":"…","responderPublicKey":"<base64>","rate":R,"maxSeconds":S}'
// Sends initiations with random content but a VALID mac1 for the responder's public key, so they
// pass the cheap check and cost the responder real work: the shape of a handshake DoS. Sources
// rotate over many ports of `bind`. Stops after maxSeconds or on SIGTERM; prints what it sent and
// how many cookie replies came back.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { hash, mac } from '../../src/wireguard/crypto.ts';

const args = JSON.parse(process.argv[2] ?? '{}') as { host: string; port: number; bind: string; responderPublicKey: string; rate: number; maxSeconds: number };
const mac1Key = hash(Buffer.from('mac1----'), Buffer.from(args.responderPublicKey, 'base64'));
const family = args.host.includes(':') ? 'udp6' : 'udp4';
const sockets = Array.from({ length: 16 }, () => dgram.createSocket(family));
let sent = 0;
let cookieReplies = 0;
await Promise.all(sockets.map((s) => new Promise<void>((r) => s.bind(0, args.bind, () => r()))));
for (const s of sockets) s.on('message', (m) => m.length === 64 && m[0] === 3 && cookieReplies++);

const start = Date.now();
const perTick = Math.max(1, Math.round(args.rate / 100));
const timer = setInterval(() => {
  if (Date.now() - start > args.maxSeconds * 1000) return finish();
  for (let i = 0; i < perTick; i++) {
    const msg = randomBytes(148);
    msg.writeUInt32LE(1, 0);
    msg.set(mac(mac1Key, msg.subarray(0, 116)), 116);
    msg.fill(0, 132); // no cookie yet: mac2 all zero
    sockets[sent % sockets.length]!.send(msg, args.port, args.host);
    sent++;
  }
}, 10);

function finish() {
  clearInterval(timer);
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ sent, cookieReplies, seconds: (Date.now() - start) / 1000 }) + '\n');
    for (const s of sockets) s.close();
  }, 200);
}
process.on('SIGTERM', finish);
