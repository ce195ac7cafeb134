// The tunnel demo: two network namespaces joined by a veth "underlay", a weft-wg device in each,
// configured only with `wg` as a user would, then a ping and a short iperf3 run through the tunnel.
// Everything lives in namespaces this process creates and removes, also on failure or Ctrl-C.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface DemoOptions {
  weftWg: string; // path to bin/weft-wg
  seconds: number; // iperf3 duration
  log: (line: string) => void;
}

export async function runTunnelDemo(opts: DemoOptions): Promise<void> {
  const id = randomBytes(2).toString('hex');
  const ns = { a: `weft-demo-${id}-a`, b: `weft-demo-${id}-b` };
  const wg = { a: `wfd${id}a`, b: `wfd${id}b` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-demo-'));
  const inNs = (n: string, ...args: string[]) => exec('ip', ['netns', 'exec', n, ...args], { maxBuffer: 16 << 20 });
  const created: string[] = [];
  const cleanup = async () => {
    for (const n of created) {
      const { stdout } = await exec('ip', ['netns', 'pids', n]).catch(() => ({ stdout: '' }));
      for (const pid of stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGTERM');
        } catch {}
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const n of created) await exec('ip', ['netns', 'del', n]).catch(() => {});
    for (const w of Object.values(wg)) fs.rmSync(`/var/run/wireguard/${w}.sock`, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    opts.log(`creating namespaces ${ns.a} and ${ns.b} joined by a veth underlay`);
    for (const n of [ns.a, ns.b]) {
      await exec('ip', ['netns', 'add', n]);
      created.push(n);
      await inNs(n, 'ip', 'link', 'set', 'lo', 'up');
    }
    await exec('ip', ['-n', ns.a, 'link', 'add', 'under0', 'type', 'veth', 'peer', 'name', 'under0', 'netns', ns.b]);
    const under = { a: '10.250.0.1', b: '10.250.0.2' };
    const tunnel = { a: '10.99.0.1', b: '10.99.0.2' };
    for (const side of ['a', 'b'] as const) {
      await inNs(ns[side], 'ip', 'addr', 'add', `${under[side]}/24`, 'dev', 'under0');
      await inNs(ns[side], 'ip', 'link', 'set', 'under0', 'up');
    }
    opts.log(`starting weft-wg ${wg.a} and ${wg.b}`);
    const keys: Record<string, { priv: string; pub: string }> = {};
    for (const side of ['a', 'b'] as const) {
      await inNs(ns[side], opts.weftWg, wg[side]);
      const priv = (await exec('wg', ['genkey'])).stdout.trim();
      const pub = await new Promise<string>((resolve, reject) => {
        const p = spawn('wg', ['pubkey']);
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error('wg pubkey failed'))));
        p.stdin.end(priv + '\n');
      });
      fs.writeFileSync(path.join(dir, `${side}.key`), priv + '\n', { mode: 0o600 });
      keys[side] = { priv, pub };
    }
    for (const [side, other] of [['a', 'b'], ['b', 'a']] as const) {
      await inNs(ns[side], 'wg', 'set', wg[side], 'private-key', path.join(dir, `${side}.key`), 'listen-port', '51820',
        'peer', keys[other]!.pub, 'endpoint', `${under[other]}:51820`, 'allowed-ips', `${tunnel[other]}/32`);
      await inNs(ns[side], 'ip', 'addr', 'add', `${tunnel[side]}/24`, 'dev', wg[side]);
      await inNs(ns[side], 'ip', 'link', 'set', wg[side], 'up');
    }
    opts.log(`ping ${tunnel.b} from ${ns.a} through the tunnel`);
    const ping = await inNs(ns.a, 'ping', '-c', '5', '-i', '0.2', '-W', '2', tunnel.b);
    opts.log(ping.stdout.trim().split('\n').slice(-2).join('\n'));
    opts.log(`iperf3 TCP for ${opts.seconds} s through the tunnel`);
    const server = spawn('ip', ['netns', 'exec', ns.b, 'iperf3', '-s', '-1', '-B', tunnel.b], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    const iperf = await inNs(ns.a, 'iperf3', '-c', tunnel.b, '-t', String(opts.seconds), '-J');
    server.kill();
    const end = JSON.parse(iperf.stdout).end;
    opts.log(`throughput ${(end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s, retransmits ${end.sum_sent.retransmits}`);
    opts.log((await inNs(ns.a, 'wg', 'show', wg.a)).stdout.trim());
  } finally {
    opts.log('tearing down');
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
