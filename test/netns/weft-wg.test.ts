// weft-wg as a process: the wireguard-go command-line contract (daemon and foreground modes,
// socket lifecycle, stopping when the TUN goes away, working after the TUN moves to another
// namespace), the control socket on a real device (130,000 allowed IPs, port in use, counters),
// and the timers that show on the wire (persistent keepalive, handshake retries).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, nodeBin, repoRoot, run, sleep, waitFor } from './harness.ts';
import { socketPath, startDevice, weftWg } from './impl.ts';
import { WgPair, genKeyPair } from './wgpair.ts';
import { readStats } from './uapi-client.ts';

const weftWgBin = path.join(repoRoot, 'bin/weft-wg');

function pidsIn(ns: string): Promise<number[]> {
  return run('ip', ['netns', 'pids', ns]).then((r) => r.stdout.split(/\s+/).filter(Boolean).map(Number));
}

describe('weft-wg process contract', () => {
  const lab = NetLab.create();
  let ns: string;
  before(async () => {
    ns = await lab.namespace('proc');
  });
  after(() => lab.cleanup());

  test('without -f it returns only once the TUN and the 0600 socket exist, and SIGTERM removes both', async () => {
    const ifname = lab.ifname();
    const r = await lab.exec(ns, [weftWgBin, ifname]);
    assert.equal(r.code, 0);
    // No waiting: ready means ready when the command returns.
    const st = fs.statSync(socketPath(ifname));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    await lab.exec(ns, ['ip', 'link', 'show', ifname]);
    assert.match((await lab.exec(ns, ['wg', 'show', ifname])).stdout, new RegExp(`interface: ${ifname}`));
    const [pid] = await pidsIn(ns);
    assert.ok(pid, 'the daemon runs inside the namespace');
    process.kill(pid, 'SIGTERM');
    await waitFor('socket removed', () => !fs.existsSync(socketPath(ifname)), 5000);
    await waitFor('daemon exited', async () => (await pidsIn(ns)).length === 0, 5000);
    assert.notEqual((await lab.exec(ns, ['ip', 'link', 'show', ifname], { allowFail: true })).code, 0, 'TUN gone with the process');
  });

  test('deleting the TUN device stops the daemon and removes its socket', async () => {
    const ifname = lab.ifname();
    const dev = await startDevice(lab, ns, weftWg, ifname);
    await lab.exec(ns, ['ip', 'link', 'del', ifname]);
    const exit = await Promise.race([dev.exited, sleep(5000).then(() => null)]);
    assert.ok(exit, 'process exited after its TUN was deleted');
    assert.equal(exit.code, 0);
    assert.ok(!fs.existsSync(socketPath(ifname)));
  });

  test('a bad interface name or an existing socket is refused with a clear error', async () => {
    const bad = await lab.exec(ns, [weftWgBin, 'this-name-is-far-too-long'], { allowFail: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid interface name/);
    const ifname = lab.ifname();
    await startDevice(lab, ns, weftWg, ifname);
    const twice = await lab.exec(ns, [weftWgBin, ifname], { allowFail: true, timeoutMs: 20_000 });
    assert.notEqual(twice.code, 0, 'a second daemon for the same name must not start');
    assert.match(twice.stderr, /weft-wg: /);
    assert.match((await lab.exec(ns, ['wg', 'show', ifname])).stdout, /interface/, 'the first one still answers');
  });

  test('a port already in use answers EADDRINUSE and the device keeps its old port', async () => {
    const ifname = lab.ifname();
    await startDevice(lab, ns, weftWg, ifname);
    await lab.exec(ns, ['wg', 'set', ifname, 'listen-port', '40001']);
    const blocker = lab.spawn(ns, [nodeBin, '-e', "require('dgram').createSocket('udp6').bind(40002, () => console.log('bound'))"]);
    await new Promise((r) => blocker.stdout!.once('data', r));
    const r = await lab.exec(ns, ['wg', 'set', ifname, 'listen-port', '40002'], { allowFail: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Address already in use/);
    assert.match((await lab.exec(ns, ['wg', 'show', ifname, 'listen-port'])).stdout, /^40001$/m);
  });
});

describe('weft-wg on a live tunnel', () => {
  const lab = NetLab.create();
  let pair: WgPair;
  before(async () => {
    pair = await WgPair.create(lab, { initiator: weftWg, responder: weftWg });
    await pair.waitPing(pair.a, pair.b.tunnel.v4);
  });
  after(() => lab.cleanup());

  test('130,000 allowed IPs on one peer: set with wg setconf, read back, and the data path still routes', async (t) => {
    const { a, b } = pair;
    const lines: string[] = [];
    let chunk: string[] = [`${b.tunnel.v4}/32`, `${b.tunnel.v6}/128`];
    for (let i = 0; i < 130_000 - 2; i++) {
      chunk.push(`172.${16 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
      if (chunk.length === 500) {
        lines.push(`AllowedIPs = ${chunk.join(', ')}`);
        chunk = [];
      }
    }
    if (chunk.length) lines.push(`AllowedIPs = ${chunk.join(', ')}`);
    const conf = path.join(lab.tempDir('big'), 'big.conf');
    fs.writeFileSync(conf, `[Interface]\nPrivateKey = ${a.privateKey}\nListenPort = ${a.listenPort}\n\n[Peer]\nPublicKey = ${b.publicKey}\nEndpoint = ${b.underlay.v4}:${b.listenPort}\n${lines.join('\n')}\n`);
    const t0 = performance.now();
    await lab.exec(a.ns, ['wg', 'setconf', a.ifname, conf], { timeoutMs: 60_000 });
    const t1 = performance.now();
    const listed = (await lab.exec(a.ns, ['wg', 'show', a.ifname, 'allowed-ips'], { timeoutMs: 60_000 })).stdout;
    const t2 = performance.now();
    const count = listed.trim().split(/\s+/).length - 1; // first word is the peer key
    assert.equal(count, 130_000);
    assert.match(listed, /172\.17\.251\.205\/32/);
    t.diagnostic(`setconf ${(t1 - t0).toFixed(0)} ms, show allowed-ips ${(t2 - t1).toFixed(0)} ms`);
    await pair.waitPing(a, b.tunnel.v4);
    // And removing them all through the socket leaves the peer with none.
    await lab.exec(a.ns, ['wg', 'set', a.ifname, 'peer', b.publicKey, 'allowed-ips', `${b.tunnel.v4}/32,${b.tunnel.v6}/128`]);
    const after = (await lab.exec(a.ns, ['wg', 'show', a.ifname, 'allowed-ips'])).stdout.trim().split(/\s+/);
    assert.deepEqual(after.slice(1).sort(), [`${b.tunnel.v4}/32`, `${b.tunnel.v6}/128`].sort());
  });

  test('stats=1 reports packet-path and handshake counters that move with traffic and garbage', async () => {
    const { a, b } = pair;
    const before = await readStats(socketPath(b.ifname));
    assert.ok(before.udp_rx_packets! > 0n, 'the tunnel already carried packets');
    await pair.ping(a, b.tunnel.v4, { count: 3, interval: 0.2 });
    // Ten datagrams of sizes no WireGuard message has, from A's namespace to B's port.
    const sender = `const s=require('dgram').createSocket('udp4');let n=0;const go=()=>{if(n++===10)return s.close();s.send(Buffer.alloc(7+n),${b.listenPort},'${b.underlay.v4}',go)};go();`;
    await lab.exec(a.ns, [nodeBin, '-e', sender]);
    const afterStats = await waitFor('counters to move', async () => {
      const s = await readStats(socketPath(b.ifname));
      return s.drop_malformed! >= before.drop_malformed! + 10n ? s : null;
    }, 5000);
    assert.ok(afterStats!.udp_rx_packets! >= before.udp_rx_packets! + 3n);
    assert.ok(afterStats!.tun_tx_packets! > before.tun_tx_packets!);
  });

  test('persistent keepalive sends keepalives with no traffic', async () => {
    const { a, b } = pair;
    await lab.exec(a.ns, ['wg', 'set', a.ifname, 'peer', b.publicKey, 'persistent-keepalive', '1']);
    const rx0 = (await pair.peerOf(b))!.rxBytes;
    await sleep(3500);
    const rx1 = (await pair.peerOf(b))!.rxBytes;
    // A keepalive is a 32-byte transport message; at one per second at least two arrive in 3.5 s.
    assert.ok(rx1 - rx0 >= 64, `B received ${rx1 - rx0} bytes of keepalives`);
    await lab.exec(a.ns, ['wg', 'set', a.ifname, 'peer', b.publicKey, 'persistent-keepalive', 'off']);
  });

  test('fwmark marks the UDP socket: a policy rule on the mark decides where tunnel packets may go', async () => {
    const { a, b } = pair;
    await lab.exec(a.ns, ['ip', 'rule', 'add', 'priority', '100', 'fwmark', '0x77', 'prohibit']);
    try {
      await lab.exec(a.ns, ['wg', 'set', a.ifname, 'fwmark', '0x77']);
      assert.match((await lab.exec(a.ns, ['wg', 'show', a.ifname, 'fwmark'])).stdout, /^0x77$/m);
      const blocked = await pair.ping(a, b.tunnel.v4, { count: 3, interval: 0.2, waitSec: 1 });
      assert.equal(blocked.received, 0, 'marked tunnel packets hit the prohibit rule');
      await lab.exec(a.ns, ['wg', 'set', a.ifname, 'fwmark', 'off']);
      await pair.waitPing(a, b.tunnel.v4);
    } finally {
      await lab.exec(a.ns, ['ip', 'rule', 'del', 'priority', '100'], { allowFail: true });
    }
  });

  test('the TUN keeps working after it moves to another namespace (the socket stays where it was born)', async () => {
    const { a, b } = pair;
    const inner = await lab.namespace('inner');
    const moved = lab.ifname();
    const dev = await startDevice(lab, b.ns, weftWg, moved);
    const k = await genKeyPair();
    const key = path.join(lab.tempDir('mv'), 'k');
    fs.writeFileSync(key, k.privateKey + '\n', { mode: 0o600 });
    await lab.exec(b.ns, ['wg', 'set', moved, 'private-key', key, 'listen-port', '41000', 'peer', a.publicKey, 'endpoint', `${a.underlay.v4}:${a.listenPort}`, 'allowed-ips', '10.78.0.1/32']);
    await lab.exec(a.ns, ['wg', 'set', a.ifname, 'peer', k.publicKey, 'allowed-ips', '10.78.0.2/32']);
    await lab.exec(a.ns, ['ip', 'addr', 'add', '10.78.0.1/24', 'dev', a.ifname]);
    await lab.exec(b.ns, ['ip', 'link', 'set', moved, 'netns', inner]);
    await lab.exec(inner, ['ip', 'addr', 'add', '10.78.0.2/24', 'dev', moved]);
    await lab.exec(inner, ['ip', 'link', 'set', moved, 'up']);
    await waitFor('ping from the inner namespace through the moved TUN', async () => (await lab.exec(inner, ['ping', '-c', '1', '-W', '1', '10.78.0.1'], { allowFail: true })).code === 0, 10_000, 100);
    assert.ok(dev.running());
    // Deleting the namespace the TUN lives in deletes the TUN: the daemon notices and stops.
    await run('ip', ['netns', 'del', inner]);
    const exit = await Promise.race([dev.exited, sleep(5000).then(() => null)]);
    assert.ok(exit, 'daemon stopped when its TUN went away with its namespace');
    assert.ok(!fs.existsSync(socketPath(moved)));
    await lab.exec(a.ns, ['wg', 'set', a.ifname, 'peer', k.publicKey, 'remove']);
  });
});

describe('weft-wg handshake retries', () => {
  const lab = NetLab.create();
  after(() => lab.cleanup());

  test('an unanswered initiation is retried every REKEY_TIMEOUT (5 s + jitter), not more often', async () => {
    const ns = await lab.namespace('retry');
    await lab.exec(ns, ['ip', 'addr', 'add', '10.79.0.1/24', 'dev', 'lo']);
    const ifname = lab.ifname();
    await startDevice(lab, ns, weftWg, ifname);
    const k = await genKeyPair();
    const peer = await genKeyPair();
    const key = path.join(lab.tempDir('retry'), 'k');
    fs.writeFileSync(key, k.privateKey + '\n', { mode: 0o600 });
    // The "peer" is a plain UDP socket that counts what arrives and never answers.
    const listener = lab.spawn(ns, [nodeBin, '-e', `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>console.log(Date.now()+' '+m.length+' '+m[0]));s.bind(42000,'10.79.0.1',()=>console.log('ready'));`]);
    let seen = '';
    listener.stdout!.on('data', (d) => (seen += d));
    await waitFor('listener', () => seen.includes('ready'));
    await lab.exec(ns, ['wg', 'set', ifname, 'private-key', key, 'peer', peer.publicKey, 'endpoint', '10.79.0.1:42000', 'allowed-ips', '10.80.0.0/24']);
    await lab.exec(ns, ['ip', 'addr', 'add', '10.80.0.1/24', 'dev', ifname]);
    await lab.exec(ns, ['ip', 'link', 'set', ifname, 'up']);
    const start = Date.now();
    // Keep data flowing so the device keeps wanting a session.
    await lab.exec(ns, ['ping', '-c', '13', '-i', '0.5', '-W', '1', '10.80.0.9'], { allowFail: true, timeoutMs: 20_000 });
    const elapsed = Date.now() - start;
    // When each initiation arrived (the listener's clock is this machine's, like Date.now()).
    const initiations = [...seen.matchAll(/^(\d+) 148 1$/gm)].map((m) => Number(m[1]));
    const gaps = initiations.slice(1).map((at, i) => at - initiations[i]!);
    // The first at once, then one every 5–5.33 s while data keeps coming (the ~6.5 s of pings see
    // at least one retry); never one per data packet. Judged by the gaps, not by how many fit into
    // however long the pings took on this machine.
    assert.ok(initiations.length >= 2, `an initiation and at least one retry: ${seen}`);
    assert.ok(initiations[0]! - start < 5000, `the first initiation ${initiations[0]! - start} ms after the first ping`);
    for (const gap of gaps) assert.ok(gap >= 4900 && gap <= 6500, `retried after ${gap} ms (REKEY_TIMEOUT 5 s + up to 1/3 s jitter): gaps ${gaps.join(', ')} in ${elapsed} ms`);
  });
});
