// Numbered datagrams for packet-order.test.ts, run inside a namespace as its own process.
//   node sequenced-udp.ts '{"mode":"receive","host":"10.1.0.2","port":6000}'
//     prints {"ready":true}, then on the end marker (or SIGTERM) one JSON summary:
//     {"received":N,"reordered":R,"duplicates":D,"highest":H}; reordered counts datagrams whose
//     number is below one already seen (a hole filled late), duplicates those seen twice.
//   node sequenced-udp.ts '{"mode":"send","host":"10.1.0.2","port":6000,"count":20000,"maxSeconds":20}'
//     sends 0..count-1 (uint32 big-endian first, sizes cycling 40..1400 bytes so some batches
//     mix large and small), 32 per millisecond at most, then the end marker a few times; prints
//     {"sent":N}.
import dgram from 'node:dgram';

interface Args {
  mode: 'send' | 'receive';
  host: string;
  port: number;
  count?: number;
  maxSeconds?: number;
}

const END = 0xffffffff;
const args = JSON.parse(process.argv[2] ?? '{}') as Args;
// The receiver asks for a large socket buffer (the kernel caps it at net.core.rmem_max): on a busy
// or slow machine this JavaScript process reads in bursts behind the sender's pace, and a datagram
// the buffer cannot hold is lost before the tunnel's order can be judged on it.
const sock = dgram.createSocket({ type: args.host.includes(':') ? 'udp6' : 'udp4', ...(args.mode === 'receive' ? { recvBufferSize: 4 << 20 } : {}) });

if (args.mode === 'receive') {
  const seen = new Set<number>();
  let highest = -1;
  let reordered = 0;
  let duplicates = 0;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    process.stdout.write(JSON.stringify({ received: seen.size, reordered, duplicates, highest }) + '\n');
    sock.close();
  };
  sock.on('message', (m) => {
    if (m.length < 4) return;
    const n = m.readUInt32BE(0);
    if (n === END) return finish();
    if (seen.has(n)) duplicates++;
    else if (n < highest) reordered++;
    seen.add(n);
    if (n > highest) highest = n;
  });
  process.on('SIGTERM', finish);
  sock.bind(args.port, args.host, () => process.stdout.write(JSON.stringify({ ready: true }) + '\n'));
} else {
  const count = args.count ?? 10_000;
  const deadline = Date.now() + (args.maxSeconds ?? 20) * 1000;
  let next = 0;
  const burst = () => {
    // 32 per millisecond at most: the sender's TUN sees runs of packets among the TCP flow's, yet
    // the receiving process (JavaScript) keeps up, so order is judged on nearly every datagram.
    for (let i = 0; i < 32 && next < count; i++, next++) {
      const b = Buffer.alloc(40 + ((next * 97) % 1361));
      b.writeUInt32BE(next, 0);
      sock.send(b, args.port, args.host);
    }
    if (next < count && Date.now() < deadline) setTimeout(burst, 1);
    else end(0);
  };
  const end = (k: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(END, 0);
    sock.send(b, args.port, args.host);
    if (k < 5) setTimeout(() => end(k + 1), 100);
    else {
      process.stdout.write(JSON.stringify({ sent: next }) + '\n');
      sock.close();
    }
  };
  burst();
}
