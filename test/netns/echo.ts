// Echo fixture for the fabric tests, run inside a pod's namespace:
//   node echo.ts serve PORT          TCP and UDP on PORT; each answers with the sender's address
//   node echo.ts tcp|udp HOST PORT   asks once and prints the answer (the address the server saw)
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, a, b] = process.argv.slice(2);
if (mode === 'serve') {
  const port = Number(a);
  net.createServer((s) => s.end(`${s.remoteAddress}\n`)).listen(port, '0.0.0.0');
  const u = dgram.createSocket('udp4');
  u.on('message', (_m, rinfo) => u.send(`${rinfo.address}\n`, rinfo.port, rinfo.address));
  u.bind(port, '0.0.0.0', () => process.stdout.write('ready\n'));
} else {
  const host = a!;
  const port = Number(b);
  const fail = (why: string) => {
    process.stderr.write(`${why}\n`);
    process.exit(1);
  };
  setTimeout(() => fail('timeout'), 3000).unref();
  if (mode === 'tcp') {
    const s = net.connect(port, host);
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => {
      process.stdout.write(out);
      process.exit(0);
    });
    s.on('error', (e) => fail(e.message));
  } else {
    const u = dgram.createSocket('udp4');
    u.on('message', (m) => {
      process.stdout.write(m.toString());
      process.exit(0);
    });
    // Resend until answered: UDP may race the first handshake of a fresh tunnel.
    const send = () => u.send('ping', port, host);
    send();
    setInterval(send, 300).unref();
  }
}
