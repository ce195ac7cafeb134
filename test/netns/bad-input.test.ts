// Bad input must be dropped without harm: a live pair passes traffic while a third namespace sends
// 100,000 hostile datagrams and replays captured real handshake and data packets to one device's
// listen port, and garbage is written to that device's control socket. Afterwards the device is
// alive, answers `wg show` with unchanged configuration, its peer's endpoint was not hijacked, and
// the real peers still ping each other.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, sleep, waitFor } from './harness.ts';
import { implsUnderTest, weftWg, type WgImpl } from './impl.ts';
import { WgPair, formatEndpoint, parsePing, type WgDump } from './wgpair.ts';

const senderScript = path.join(path.dirname(new URL(import.meta.url).pathname), 'udp-sender.ts');

const FUZZ_COUNT = Number(process.env.WEFT_BAD_INPUT_COUNT ?? 100_000);
const FUZZ_RATE = Number(process.env.WEFT_BAD_INPUT_RATE ?? 20_000); // datagrams per second
const ATTACKER = { v4: '192.168.78.1', v6: 'fd00:78::1' };
const VICTIM = { v4: '192.168.78.2', v6: 'fd00:78::2' };

/** UDP payloads of a pcap file (Ethernet, IPv4/IPv6 without extension headers). */
function pcapUdpPayloads(buf: Buffer): Buffer[] {
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && buf.readUInt32BE(0) !== 0xa1b2c3d4 && buf.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file');
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  if (u32(20) !== 1) throw new Error(`unexpected pcap link type ${u32(20)}`);
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const incl = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (frame.length < 14) continue;
    const etherType = frame.readUInt16BE(12);
    let l4: Buffer | null = null;
    if (etherType === 0x0800) {
      const ihl = (frame[14]! & 0x0f) * 4;
      if (frame[14 + 9] === 17) l4 = frame.subarray(14 + ihl);
    } else if (etherType === 0x86dd) {
      if (frame[14 + 6] === 17) l4 = frame.subarray(14 + 40);
    }
    if (l4 && l4.length >= 8) out.push(Buffer.from(l4.subarray(8, l4.readUInt16BE(4))));
  }
  return out;
}

/** One exchange on the control socket: write `data`, collect the reply until "\n\n", close or timeout. */
function uapiExchange(sock: string, data: Buffer | string, timeoutMs = 5000): Promise<{ reply: string; closed: boolean; timedOut: boolean; error?: string }> {
  return new Promise((resolve) => {
    const c = net.createConnection(sock);
    let reply = '';
    let done = false;
    const finish = (r: { closed: boolean; timedOut: boolean; error?: string }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      resolve({ reply, ...r });
    };
    const timer = setTimeout(() => finish({ closed: false, timedOut: true }), timeoutMs);
    c.on('connect', () => c.write(data));
    c.on('data', (d) => {
      reply += d.toString('latin1');
      if (reply.endsWith('\n\n')) finish({ closed: false, timedOut: false });
    });
    c.on('end', () => finish({ closed: true, timedOut: false }));
    c.on('close', () => finish({ closed: true, timedOut: false }));
    // EPIPE/ECONNRESET when the server hangs up on garbage mid-write: acceptable.
    c.on('error', (e) => finish({ closed: true, timedOut: false, error: e.message }));
  });
}

/**
 * Drop and traffic counters through weft's control-socket extension `stats=1` (one `name=value`
 * line per counter, then `errno=0`); null when the implementation does not answer it
 * (wireguard-go has no counters).
 */
async function readStats(sock: string): Promise<Map<string, bigint> | null> {
  const r = await uapiExchange(sock, 'stats=1\n\n');
  if (!/(^|\n)errno=0\n\n$/.test(r.reply)) return null;
  const out = new Map<string, bigint>();
  for (const line of r.reply.split('\n')) {
    const m = /^([a-z0-9_]+)=(\d+)$/.exec(line);
    if (m && m[1] !== 'errno') out.set(m[1]!, BigInt(m[2]!));
  }
  return out.size ? out : null;
}

type Stats = Map<string, bigint>;

/**
 * The counters once `settled` holds for them (the victim may still be working through the
 * datagrams in its socket buffer when the sender is done), or as they are after `timeoutMs`.
 */
async function statsOnce(sock: string, settled: (s: Stats) => boolean, timeoutMs = 10_000): Promise<Stats | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await readStats(sock);
    if (!s || settled(s) || Date.now() > deadline) return s;
    await sleep(100);
  }
}
function delta(after: Stats, before: Stats, key: string): number {
  return Number((after.get(key) ?? 0n) - (before.get(key) ?? 0n));
}
/** Sum of every drop counter's growth (packet path and handshakes). */
function dropDelta(after: Stats, before: Stats): number {
  return [...after.keys()].filter((k) => /(^|_)drop_/.test(k)).reduce((n, k) => n + delta(after, before, k), 0);
}
function grownDrops(after: Stats, before: Stats): string {
  return [...after.keys()].filter((k) => /(^|_)drop_/.test(k) && delta(after, before, k) > 0).map((k) => `${k}+${delta(after, before, k)}`).join(' ');
}

/** UDP MIB counters of a namespace, IPv4 + IPv6 summed. */
async function udpStats(lab: NetLab, ns: string): Promise<{ inDatagrams: number; noPorts: number; rcvbufErrors: number; inErrors: number }> {
  const v4 = (await lab.exec(ns, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = v4[0]!.split(/\s+/).slice(1);
  const vals = v4[1]!.split(/\s+/).slice(1).map(Number);
  const get4 = (k: string) => vals[names.indexOf(k)] ?? 0;
  const v6 = (await lab.exec(ns, ['cat', '/proc/net/snmp6'])).stdout;
  const get6 = (k: string) => Number(new RegExp(`^Udp6${k}\\s+(\\d+)`, 'm').exec(v6)?.[1] ?? 0);
  const both = (k: string) => get4(k) + get6(k);
  return { inDatagrams: both('InDatagrams'), noPorts: both('NoPorts'), rcvbufErrors: both('RcvbufErrors'), inErrors: both('InErrors') };
}

function configOf(d: WgDump) {
  return {
    privateKey: d.privateKey,
    publicKey: d.publicKey,
    listenPort: d.listenPort,
    fwmark: d.fwmark,
    peers: d.peers.map((p) => ({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: p.endpoint, allowedIps: [...p.allowedIps].sort(), keepalive: p.persistentKeepalive })),
  };
}

function badInputSuite(impl: WgImpl): void {
  describe(`bad input: ${impl.name}`, () => {
    const lab = NetLab.create();
    let pair: WgPair;
    let nsX: string;
    let captured: Buffer[] = [];
    let baseline: ReturnType<typeof configOf>;
    // Counter snapshots (null: the implementation exposes none).
    const stats: { start: Stats | null; afterReplay: Stats | null; afterFuzz: Stats | null } = { start: null, afterReplay: null, afterFuzz: null };
    let fuzzDelivered = 0;
    let monitor: ChildProcess | null = null;
    let monitorOut = '';
    const victimEndpoint = () => formatEndpoint(pair.a.underlay.v4, pair.a.listenPort);

    before(async () => {
      pair = await WgPair.create(lab, { initiator: impl, responder: impl });
      // The attacker namespace reaches the victim (B) over its own veth; it is no WireGuard peer.
      nsX = await lab.namespace('x');
      await lab.veth(nsX, pair.b.ns, { a: [`${ATTACKER.v4}/24`, `${ATTACKER.v6}/64`], b: [`${VICTIM.v4}/24`, `${VICTIM.v6}/64`] });
    });
    after(async () => {
      if (monitor && monitor.exitCode === null) monitor.kill('SIGINT');
      await lab.cleanup();
    });

    test('capture a real handshake and data packets sent to the victim', async () => {
      const file = path.join(pair.dir, 'capture.pcap');
      const cap = lab.spawn(pair.b.ns, ['tcpdump', '-n', '-U', '-s', '2000', '-w', file, '-i', pair.b.veth, `udp and dst port ${pair.b.listenPort}`]);
      let err = '';
      cap.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      await waitFor('tcpdump listening', () => /listening on/.test(err) || cap.exitCode !== null, 10_000);
      assert.equal(cap.exitCode, null, `tcpdump: ${err}`);
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 10_000);
      const r = await pair.ping(pair.a, pair.b.tunnel.v4, { count: 5, interval: 0.1 });
      assert.equal(r.received, 5);
      await pair.ping(pair.a, pair.b.tunnel.v6, { count: 5, interval: 0.1 });
      await sleep(200);
      cap.kill('SIGINT');
      await waitFor('tcpdump exit', () => cap.exitCode !== null || cap.signalCode !== null, 5000);
      captured = pcapUdpPayloads(fs.readFileSync(file));
      const types = captured.map((b) => b[0]);
      assert.ok(types.includes(1), `captured a handshake initiation (types seen: ${[...new Set(types)].join(',')})`);
      assert.ok(types.filter((t) => t === 4).length >= 5, 'captured data packets');
      fs.writeFileSync(path.join(pair.dir, 'captured.hex'), captured.map((b) => b.toString('hex')).join('\n') + '\n');
      baseline = configOf(await pair.dump(pair.b));
      assert.equal(baseline.peers[0]?.endpoint, victimEndpoint());
      stats.start = await readStats(pair.b.device.socket);
      if (impl === weftWg) assert.ok(stats.start, 'weft-wg answers stats=1 with its counters');
    });

    test('start a ping between the real peers for the duration of the attack', async () => {
      monitor = lab.spawn(pair.a.ns, ['ping', '-n', '-i', '0.2', '-W', '1', '-w', '120', pair.b.tunnel.v4]);
      monitor.stdout?.on('data', (d: Buffer) => (monitorOut += d.toString()));
      await waitFor('first monitor reply', () => /time=/.test(monitorOut), 5000);
    });

    test('replay captured handshake and data packets (20 rounds)', async (t) => {
      const r = await runSender({ host: VICTIM.v4, port: pair.b.listenPort, mode: 'replay', replayFile: path.join(pair.dir, 'captured.hex'), rounds: 20, rate: 5000, maxSeconds: 30 });
      t.diagnostic(`replayed ${r.sent} datagrams in ${r.seconds.toFixed(1)} s`);
      assert.equal(r.sent, captured.length * 20);
      assert.ok(pair.b.device.running(), 'victim alive');
      const dataReplayed = captured.filter((b) => b[0] === 4).length * 20;
      const initiationsDropped = (s1: Stats, s0: Stats) => delta(s1, s0, 'handshake_drop_replayed_timestamp') + delta(s1, s0, 'handshake_drop_initiation_flood');
      if (stats.start) {
        const s0 = stats.start;
        stats.afterReplay = await statsOnce(pair.b.device.socket, (s) => delta(s, s0, 'drop_replay') >= dataReplayed * 0.9 && initiationsDropped(s, s0) >= 1);
      } else {
        await sleep(300);
        stats.afterReplay = await readStats(pair.b.device.socket);
      }
      if (stats.start && stats.afterReplay) {
        const s0 = stats.start;
        const s1 = stats.afterReplay;
        t.diagnostic(`drop counters: ${grownDrops(s1, s0)}`);
        assert.ok(delta(s1, s0, 'drop_replay') >= dataReplayed * 0.9, `replayed data packets counted as replays (${delta(s1, s0, 'drop_replay')} of ${dataReplayed})`);
        const initiations = initiationsDropped(s1, s0);
        assert.ok(initiations >= 1, 'replayed initiations dropped (replayed timestamp or flood)');
        assert.equal(delta(s1, s0, 'handshake_initiations_accepted'), 0, 'no replayed initiation was accepted');
      }
      const peer = await pair.peerOf(pair.b);
      assert.equal(peer?.endpoint, victimEndpoint(), 'replayed packets from another address did not move the endpoint');
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 5_000);
    });

    test(`${FUZZ_COUNT} random, truncated and mutated datagrams (IPv4 and IPv6 outer)`, async (t) => {
      const v6Count = Math.round(FUZZ_COUNT / 5);
      const budget = Math.max(30, Math.ceil((FUZZ_COUNT / FUZZ_RATE) * 4));
      const common = { port: pair.b.listenPort, mode: 'fuzz' as const, rate: FUZZ_RATE, maxSeconds: budget, replayFile: path.join(pair.dir, 'captured.hex') };
      const s0 = await udpStats(lab, pair.b.ns);
      const r4 = await runSender({ ...common, host: VICTIM.v4, count: FUZZ_COUNT - v6Count });
      const r6 = await runSender({ ...common, host: VICTIM.v6, count: v6Count });
      const s1 = await udpStats(lab, pair.b.ns);
      t.diagnostic(`sent ${r4.sent} over IPv4 in ${r4.seconds.toFixed(1)} s, ${r6.sent} over IPv6 in ${r6.seconds.toFixed(1)} s`);
      const delivered = s1.inDatagrams - s0.inDatagrams;
      const overflow = s1.rcvbufErrors - s0.rcvbufErrors;
      t.diagnostic(`victim namespace UDP: ${delivered} delivered to sockets, ${overflow} receive-buffer overflows, ${s1.noPorts - s0.noPorts} to closed ports, ${s1.inErrors - s0.inErrors} input errors`);
      assert.equal(r4.sent + r6.sent, FUZZ_COUNT, 'every datagram was sent within the time budget');
      // The datagrams reached the device's socket (not lost on the way): the test exercised it.
      assert.ok(delivered + overflow >= FUZZ_COUNT * 0.95, `datagrams reached the listen port (${delivered} + ${overflow} overflowed of ${FUZZ_COUNT})`);
      assert.ok(pair.b.device.running(), `victim alive: ${pair.b.device.output().slice(-500)}`);
      fuzzDelivered = delivered;
      const fuzzKinds = ['drop_malformed', 'drop_unknown_index', 'drop_decrypt', 'handshake_drop_bad_mac1'];
      if (stats.afterReplay) {
        const s0 = stats.afterReplay;
        stats.afterFuzz = await statsOnce(pair.b.device.socket, (s) => fuzzKinds.every((k) => delta(s, s0, k) > 0) && dropDelta(s, s0) >= fuzzDelivered * 0.95);
      } else {
        await sleep(300);
        stats.afterFuzz = await readStats(pair.b.device.socket);
      }
      if (stats.afterReplay && stats.afterFuzz) {
        const s0 = stats.afterReplay;
        const s1 = stats.afterFuzz;
        t.diagnostic(`drop counters: ${grownDrops(s1, s0)}`);
        for (const k of fuzzKinds) {
          assert.ok(delta(s1, s0, k) > 0, `${k} grew`);
        }
        // Every hostile datagram that reached the socket is dropped and counted under some reason
        // (the real peers' ping traffic is the only non-hostile input meanwhile).
        const drops = dropDelta(s1, s0);
        assert.ok(drops >= fuzzDelivered * 0.95, `drops counted for the delivered datagrams (${drops} of ${fuzzDelivered})`);
        assert.equal(delta(s1, s0, 'handshake_initiations_accepted'), 0, 'no forged initiation accepted');
        assert.equal(delta(s1, s0, 'handshake_responses_accepted'), 0, 'no forged response accepted');
      }
    });

    test('garbage on the control socket gets errors or a hang-up, never a crash', async (t) => {
      const sock = pair.b.device.socket;
      const aPub = Buffer.from(pair.a.publicKey, 'base64').toString('hex');
      // Well-formed requests with an invalid value: must answer a non-zero errno and change nothing.
      const invalid = [
        'set=1\nbogus_key=1\n\n',
        'set=1\nprivate_key=not-a-key\n\n',
        'set=1\nprivate_key=' + 'ab'.repeat(31) + '\n\n',
        'set=1\nlisten_port=notaport\n\n',
        'set=1\nlisten_port=70000\n\n',
        'set=1\nfwmark=-1\n\n',
        `set=1\npublic_key=${aPub}\nallowed_ip=300.1.2.3/40\n\n`,
        `set=1\npublic_key=${aPub}\nallowed_ip=10.0.0.0/33\n\n`,
        `set=1\npublic_key=${aPub}\nendpoint=nowhere\n\n`,
        `set=1\npublic_key=${aPub}\nprotocol_version=2\n\n`,
        `set=1\npublic_key=${aPub}\npersistent_keepalive_interval=70000\n\n`,
        `set=1\npublic_key=${aPub}\npreshared_key=zz\n\n`,
        'set=1\npublic_key=xyz\n\n',
        'set=1\n=\n\n',
        'set=1\nnoequals\n\n',
      ];
      const seen: string[] = [];
      for (const req of invalid) {
        const r = await uapiExchange(sock, req);
        assert.ok(!r.timedOut, `no hang on ${JSON.stringify(req)}`);
        seen.push(r.reply ? r.reply.trim() : 'hang-up');
        if (!r.closed || r.reply) assert.match(r.reply, /^errno=-?[1-9]\d*\n\n$/, `non-zero errno for ${JSON.stringify(req)}: got ${JSON.stringify(r.reply)}`);
      }
      t.diagnostic(`replies to invalid set requests: ${seen.join(' ')}`);
      // Unknown operations, random lines, binary noise, a huge line, truncated requests.
      const garbage: (string | Buffer)[] = [
        'hello\n\n',
        'GET=1\n\n',
        'get=2\n\n',
        'get=1\nextra=1\n\n',
        'set=1\n',
        'set=1\nlisten_po',
        '\n\n\n\n',
        randomBytes(65536),
        Buffer.concat([Buffer.from('set=1\n'), randomBytes(4096), Buffer.from('\n\n')]),
        Array.from({ length: 200 }, () => randomBytes(24).toString('base64')).join('\n') + '\n\n',
        'set=1\nunknown_' + 'k'.repeat(100) + '=' + 'v'.repeat(100) + '\n\n',
        'set=1\nx=' + 'a'.repeat(4 << 20) + '\n\n',
        'a'.repeat(4 << 20),
      ];
      const outcomes: string[] = [];
      for (const g of garbage) {
        // A request that never ends (no blank line) may legitimately wait; anything else must finish.
        const unterminated = typeof g === 'string' ? !g.endsWith('\n\n') : !g.subarray(-2).equals(Buffer.from('\n\n'));
        const r = await uapiExchange(sock, g, unterminated ? 2_000 : 10_000);
        const what = typeof g === 'string' ? JSON.stringify(g.slice(0, 40)) : `${g.length} random bytes`;
        if (!unterminated) assert.ok(!r.timedOut, `no hang on ${what}`);
        outcomes.push(r.reply ? JSON.stringify(r.reply.length > 40 ? '…' + r.reply.slice(-40) : r.reply) : r.timedOut ? 'waiting' : 'hang-up');
        if (r.reply) assert.match(r.reply, /errno=-?\d+\n\n$/, `reply to ${what} ends with an errno: ${JSON.stringify(r.reply.slice(-80))}`);
        assert.ok(pair.b.device.running(), `victim alive after ${what}`);
      }
      t.diagnostic(`garbage outcomes: ${outcomes.join(' | ')}`);
      // Many idle connections at once, then abandoned.
      const idle = await Promise.all(Array.from({ length: 64 }, () => new Promise<net.Socket>((resolve) => {
        const c = net.createConnection(sock);
        c.on('error', () => {});
        c.on('connect', () => resolve(c));
        setTimeout(() => resolve(c), 3000).unref();
      })));
      const show = await pair.wg(pair.b, ['show', pair.b.ifname, 'dump']);
      assert.equal(show.code, 0, 'wg show answers while 64 idle connections are open');
      for (const c of idle) c.destroy();
      assert.deepEqual(configOf(await pair.dump(pair.b)), baseline, 'configuration unchanged by the rejected requests');
    });

    test('afterwards: alive, wg show answers, config and endpoint intact, real peers still talk', async (t) => {
      assert.ok(pair.b.device.running(), 'victim process alive');
      assert.ok(pair.a.device.running(), 'peer process alive');
      const dump = await pair.dump(pair.b);
      assert.deepEqual(configOf(dump), baseline, 'configuration unchanged');
      await pair.waitPing(pair.a, pair.b.tunnel.v4, 15_000);
      const r = await pair.ping(pair.a, pair.b.tunnel.v4, { count: 5, interval: 0.2 });
      assert.equal(r.received, 5, 'ping A→B');
      const r6 = await pair.ping(pair.b, pair.a.tunnel.v6, { count: 5, interval: 0.2 });
      assert.equal(r6.received, 5, 'ping B→A (v6)');
      monitor?.kill('SIGINT');
      await waitFor('monitor ping exit', () => monitor!.exitCode !== null || monitor!.signalCode !== null, 5000);
      const m = parsePing(monitorOut);
      t.diagnostic(`ping during the attack: ${m.received}/${m.transmitted} answered`);
      assert.ok(m.received > 0 && m.received >= m.transmitted * 0.5, `real traffic kept flowing during the attack (${m.received}/${m.transmitted})`);
      if (!stats.start) t.diagnostic(`${impl.name} exposes no counters (stats=1): only liveness and traffic asserted`);
    });

    async function runSender(a: Record<string, unknown>): Promise<{ sent: number; errors: number; seconds: number }> {
      const maxSeconds = Number(a.maxSeconds ?? 60);
      const r = await lab.exec(nsX, [nodeBin, senderScript, JSON.stringify(a)], { timeoutMs: (maxSeconds + 30) * 1000, allowFail: true });
      assert.equal(r.code, 0, `sender failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { sent: number; errors: number; seconds: number };
    }
  });
}

for (const impl of implsUnderTest()) badInputSuite(impl);
