// Key lifetime (reference §4.5), weft-wg ↔ weft-wg: REKEY_AFTER_TIME (120 s), REJECT_AFTER_TIME
// (180 s) on both sides, the initiator's rekey on receive (165 s), REKEY_AFTER_MESSAGES (2^60) and
// REJECT_AFTER_MESSAGES (2^64 - 2^13 - 1), each checked where it shows: on the wire (tcpdump on the
// underlay), in `wg show` and in the `stats=1` counters.
//
// Nobody waits minutes: the devices run with WEFT_WG_TEST_HOOKS=1, which lets the control socket's
// TEST-ONLY `test=1` operation move a peer's keypairs back in time (age_keypairs_ms) or set the
// current keypair's next send counter (send_counter). Each case has its own pair of devices.
//
// A (initiator) knows B's endpoint; B learns A's from the first handshake. At most one initiation
// per REKEY_TIMEOUT (5 s) per peer: cases that need a rekey at once first wait until 5.5 s after
// the pair's first handshake (`settle`), and the REJECT_AFTER_MESSAGES case relies on that gate
// to keep A without a fresh keypair while it exhausts the old one.
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, nodeBin, sleep, waitFor } from './harness.ts';
import { socketPath, startDevice, weftWg } from './impl.ts';
import { type Side, WgPair, genKeyPair } from './wgpair.ts';
import { Capture } from './capture.ts';
import { errnoOf, readStats, uapi } from './uapi-client.ts';

const HOOKS = { WEFT_WG_TEST_HOOKS: '1' };
const REKEY_AFTER_MESSAGES = 2n ** 60n;
const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;

function stats(s: Side): Promise<Record<string, bigint>> {
  return readStats(socketPath(s.ifname));
}

const hex = (base64Key: string) => Buffer.from(base64Key, 'base64').toString('hex');

/** TEST ONLY operation on `s` for its peer (the other side); returns the errno of the answer. */
async function testOp(s: Side, peerPublicKey: string, lines: string[]): Promise<number> {
  return errnoOf(await uapi(socketPath(s.ifname), `test=1\npeer=${hex(peerPublicKey)}\n${lines.join('\n')}\n\n`));
}

async function hook(pair: WgPair, s: Side, lines: string[]): Promise<void> {
  assert.equal(await testOp(s, pair.other(s).publicKey, lines), 0, `test=1 ${lines.join(' ')} on ${s.label}`);
}

interface Bed {
  lab: NetLab;
  pair: WgPair;
  /** Date.now() before the first handshake started: the first keypairs are younger than this. */
  before: number;
  /** Date.now() when the first handshake was known complete (the first ping answered). */
  readyAt: number;
}

/** A fresh weft-wg pair with test hooks, tunnel up (A initiated), removed when the test ends. */
async function bed(t: TestContext): Promise<Bed> {
  const lab = NetLab.create();
  t.after(() => lab.cleanup());
  const pair = await WgPair.create(lab, { initiator: weftWg, responder: weftWg, env: HOOKS });
  const before = Date.now();
  await pair.waitPing(pair.a, pair.b.tunnel.v4);
  return { lab, pair, before, readyAt: Date.now() };
}

/**
 * `age_keypairs_ms` that makes the first keypairs at most `targetMs` old now (they have been
 * ageing in real time since the handshake, up to Date.now() - b.before).
 */
function ageAtMost(b: Bed, targetMs: number): string {
  const shift = Math.floor(targetMs - (Date.now() - b.before));
  assert.ok(shift > 0);
  return `age_keypairs_ms=${shift}`;
}

let nextPort = 45000;

/**
 * `count` numbered UDP datagrams through the tunnel from `from` to `to`'s tunnel address, one every
 * `intervalMs`; resolves with the numbers `to` received (duplicates included), once all arrived or
 * after `waitMs`. Unlike ping, nothing is retransmitted, so "sent N, received these" is exact.
 */
async function udpFlow(b: Bed, from: Side, to: Side, count: number, intervalMs: number, waitMs: number): Promise<number[]> {
  const port = nextPort++;
  const listener = b.lab.spawn(to.ns, [nodeBin, '-e',
    `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>console.log('got '+m.toString()));s.bind(${port},'${to.tunnel.v4}',()=>console.log('ready'));`]);
  let heard = '';
  listener.stdout!.on('data', (d: Buffer) => (heard += d.toString()));
  const got = () => [...heard.matchAll(/^got (\d+)$/gm)].map((m) => Number(m[1]));
  try {
    await waitFor('UDP listener', () => heard.includes('ready'), 5000);
    await b.lab.exec(from.ns, [nodeBin, '-e',
      `const s=require('dgram').createSocket('udp4');let i=0;const go=()=>{if(i===${count})return s.close();s.send(String(i++),${port},'${to.tunnel.v4}',()=>setTimeout(go,${intervalMs}))};go();`]);
    await waitFor(`${count} datagrams at ${to.label}`, () => got().length >= count, waitMs, 50).catch(() => {});
    return got();
  } finally {
    if (listener.pid) process.kill(listener.pid, 'SIGTERM');
  }
}

/** Wait until A may send a new initiation (REKEY_TIMEOUT after the first one, plus margin). */
async function settle(b: Bed): Promise<void> {
  const wait = b.readyAt + 5500 - Date.now();
  if (wait > 0) await sleep(wait);
}

async function latestHandshake(pair: WgPair, s: Side): Promise<number> {
  const p = await pair.peerOf(s);
  assert.ok(p, `${s.label} has its peer`);
  return p.latestHandshake;
}

const grew = (after: Record<string, bigint>, before: Record<string, bigint>, key: string) => after[key]! > before[key]!;

describe('test=1 (TEST ONLY) is off unless WEFT_WG_TEST_HOOKS=1', () => {
  const lab = NetLab.create();
  after(() => lab.cleanup());

  test('a device started without the switch answers errno=-22 and changes nothing; with it, an unknown peer is -2', async () => {
    const ns = await lab.namespace('hooks');
    const plain = lab.ifname();
    const hooked = lab.ifname();
    await startDevice(lab, ns, weftWg, plain);
    await startDevice(lab, ns, weftWg, hooked, { env: HOOKS });
    const k = await genKeyPair();
    const peer = await genKeyPair();
    const key = path.join(lab.tempDir('hooks'), 'k');
    fs.writeFileSync(key, k.privateKey + '\n', { mode: 0o600 });
    for (const ifname of [plain, hooked]) {
      await lab.exec(ns, ['wg', 'set', ifname, 'private-key', key, 'peer', peer.publicKey, 'allowed-ips', '10.90.0.0/24']);
    }
    const op = `test=1\npeer=${hex(peer.publicKey)}\nage_keypairs_ms=200000\n\n`;
    // Disabled: refused, and the connection stays usable for the next operation.
    const reply = await uapi(socketPath(plain), op + 'get=1\n\n', 2);
    assert.match(reply, /^errno=-22\n\n/, reply);
    assert.match(reply, /public_key=/, 'the get after the refused test=1 was answered');
    // Enabled: a known peer without keypairs can be aged (nothing to age), an unknown one cannot,
    // and a send counter needs a current keypair.
    assert.equal(errnoOf(await uapi(socketPath(hooked), op)), 0);
    assert.equal(errnoOf(await uapi(socketPath(hooked), `test=1\npeer=${'77'.repeat(32)}\nage_keypairs_ms=1\n\n`)), -2);
    assert.equal(errnoOf(await uapi(socketPath(hooked), `test=1\npeer=${hex(peer.publicKey)}\nsend_counter=5\n\n`)), -2);
    assert.equal(errnoOf(await uapi(socketPath(hooked), `test=1\npeer=${hex(peer.publicKey)}\nsend_counter=18446744073709551616\n\n`)), -22);
    assert.equal(errnoOf(await uapi(socketPath(hooked), `test=1\nage_keypairs_ms=1\n\n`)), -22);
  });
});

describe('key lifetime, weft-wg ↔ weft-wg', () => {
  test('REKEY_AFTER_TIME: the initiator sending on a keypair older than 120 s starts a handshake, with no packet lost', async (t) => {
    const b = await bed(t);
    const { pair } = b;
    const { a } = pair;
    await settle(b);
    const s0 = await stats(a);
    const hsA0 = await latestHandshake(pair, a);
    const hsB0 = await latestHandshake(pair, pair.b);
    const pinging = pair.ping(a, pair.b.tunnel.v4, { count: 40, interval: 0.1, waitSec: 2 });
    await sleep(300);
    // At most 116 s old, for the 1.5 s it is used: no rekey yet.
    await hook(pair, a, [ageAtMost(b, 116_000)]);
    await sleep(1500);
    assert.equal((await stats(a)).handshake_responses_accepted, s0.handshake_responses_accepted, 'no rekey below 120 s');
    await hook(pair, a, ['age_keypairs_ms=6000']); // now past 120 s (and well below 165 s)
    const s1 = await waitFor('a new handshake completed by A', async () => {
      const s = await stats(a);
      return grew(s, s0, 'handshake_responses_accepted') ? s : null;
    }, 5000);
    const r = await pinging;
    assert.equal(r.transmitted, 40);
    assert.equal(r.received, 40, 'traffic never stopped during the rekey');
    assert.equal(s1!.drop_expired_key, s0.drop_expired_key);
    assert.ok((await latestHandshake(pair, a)) > hsA0, 'A: latest handshake moved');
    assert.ok((await latestHandshake(pair, pair.b)) > hsB0, 'B: latest handshake moved');
  });

  test('REJECT_AFTER_TIME, initiator: a keypair older than 180 s neither receives nor sends; a new handshake carries the staged packets', async (t) => {
    const b = await bed(t);
    const { pair, lab } = b;
    const { a } = pair;
    const B = pair.b;
    await settle(b);
    const cap = await Capture.start(lab, a.ns, a.veth);
    assert.equal((await pair.ping(a, B.tunnel.v4, { count: 1 })).received, 1);
    await sleep(100);
    const oldIndices = new Set(cap.from(a.underlay.v4).filter((d) => d.type === 4).map((d) => d.receiver));
    assert.equal(oldIndices.size, 1, 'one session in use before');
    const sA0 = await stats(a);
    const mark = Date.now();
    await hook(pair, a, ['age_keypairs_ms=181000']);
    // B's keypair is still fresh: what it sends arrives under A's expired one and is refused.
    assert.equal((await pair.ping(B, a.tunnel.v4, { count: 1, waitSec: 1 })).received, 0);
    const sA1 = await stats(a);
    assert.ok(grew(sA1, sA0, 'drop_expired_key'), `A counted the refused packet (drop_expired_key ${sA0.drop_expired_key} → ${sA1.drop_expired_key})`);
    assert.equal(sA1.handshake_responses_accepted, sA0.handshake_responses_accepted, 'receiving under an expired keypair starts nothing');
    // A's own packets are staged, not sent under the expired keypair, until the new handshake.
    const got = await udpFlow(b, a, B, 3, 20, 8000);
    assert.deepEqual(got, [0, 1, 2], 'the staged datagrams went out, once each and in order, after the new handshake');
    assert.ok(grew(await stats(a), sA0, 'handshake_responses_accepted'));
    await cap.stop();
    const sent = cap.from(a.underlay.v4, mark);
    const transport = sent.filter((d) => d.type === 4);
    assert.deepEqual(transport.filter((d) => oldIndices.has(d.receiver)), [], 'nothing sent under the expired keypair');
    assert.ok(transport.length >= 3, `the datagrams went out under the new session (${transport.length} transport messages)`);
    assert.ok(sent.some((d) => d.type === 1), 'A sent an initiation');
  });

  test('REJECT_AFTER_TIME, responder: it refuses packets under a keypair older than 180 s; a new handshake restores traffic', async (t) => {
    const b = await bed(t);
    const { pair } = b;
    const { a } = pair;
    const B = pair.b;
    const sA0 = await stats(a);
    const sB0 = await stats(B);
    await hook(pair, B, ['age_keypairs_ms=181000']);
    const r = await pair.ping(a, B.tunnel.v4, { count: 3, interval: 0.2, waitSec: 1 });
    assert.equal(r.received, 0);
    const sB1 = await stats(B);
    assert.ok(sB1.drop_expired_key! >= sB0.drop_expired_key! + 3n, `B refused the pings (drop_expired_key ${sB0.drop_expired_key} → ${sB1.drop_expired_key})`);
    assert.equal(sB1.tun_tx_packets, sB0.tun_tx_packets, 'nothing reached B\'s TUN');
    // Data sent and nothing authenticated heard back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s):
    // the "new handshake" timer fires on A (its pings) or on B (its last reply before the ageing),
    // whichever started first, and the new session carries traffic again.
    await pair.waitPing(a, B.tunnel.v4, 30_000);
    const handshakes = (s: Record<string, bigint>) => s.handshake_initiations_accepted! + s.handshake_responses_accepted!;
    assert.ok(handshakes(await stats(B)) > handshakes(sB0), 'B took part in a new handshake');
    assert.ok(handshakes(await stats(a)) > handshakes(sA0), 'A took part in a new handshake');
  });

  test('rekey on receive: the initiator receiving under a keypair older than 165 s starts a handshake, even with nothing to send', async (t) => {
    const b = await bed(t);
    const { pair } = b;
    const { a } = pair;
    const B = pair.b;
    await settle(b);
    // A received data last (the echo reply) and sent nothing since: its passive keepalive is due
    // 10 s later and, sent on an old keypair, would rekey through the send-side rule. Turning
    // persistent keepalive on sends one keepalive at once, which settles that; then off again.
    await pair.wg(a, ['set', a.ifname, 'peer', B.publicKey, 'persistent-keepalive', '25']);
    await pair.wg(a, ['set', a.ifname, 'peer', B.publicKey, 'persistent-keepalive', '0']);
    const sA0 = await stats(a);
    const rxA0 = (await pair.peerOf(a))!.rxBytes;
    const txA0 = (await pair.peerOf(a))!.txBytes;
    await hook(pair, a, [ageAtMost(b, 160_000)]);
    // B sends keepalives (one at once, then every second); A has nothing to send back.
    await pair.wg(B, ['set', B.ifname, 'peer', a.publicKey, 'persistent-keepalive', '1']);
    await sleep(2500);
    const sA1 = await stats(a);
    assert.ok((await pair.peerOf(a))!.rxBytes >= rxA0 + 64, 'A received keepalives');
    assert.equal(sA1.handshake_responses_accepted, sA0.handshake_responses_accepted, 'no rekey on receive below 165 s');
    await hook(pair, a, ['age_keypairs_ms=8000']); // now past 165 s, below 180 s
    const txBeforeRekey = (await pair.peerOf(a))!.txBytes;
    assert.equal(txBeforeRekey, txA0, 'A sent nothing, so only the receive-side rule can start the handshake');
    await waitFor('A rekeys on receive', async () => grew(await stats(a), sA0, 'handshake_responses_accepted'), 5000);
    await pair.wg(B, ['set', B.ifname, 'peer', a.publicKey, 'persistent-keepalive', '0']);
  });

  test('REKEY_AFTER_MESSAGES: the message with counter 2^60 starts a handshake, on the initiator and on the responder', async (t) => {
    const b = await bed(t);
    const { pair, lab } = b;
    const { a } = pair;
    const B = pair.b;
    await settle(b);
    const cap = await Capture.start(lab, a.ns, a.veth);
    const sA0 = await stats(a);
    await hook(pair, a, [`send_counter=${REKEY_AFTER_MESSAGES - 2n}`]);
    const mark = Date.now();
    for (let i = 0; i < 2; i++) assert.equal((await pair.ping(a, B.tunnel.v4, { count: 1 })).received, 1);
    await sleep(1000);
    assert.equal((await stats(a)).handshake_responses_accepted, sA0.handshake_responses_accepted, 'counters 2^60-2 and 2^60-1 start nothing');
    assert.equal((await pair.ping(a, B.tunnel.v4, { count: 1 })).received, 1);
    await waitFor('A rekeys after 2^60 messages', async () => grew(await stats(a), sA0, 'handshake_responses_accepted'), 5000);
    // The responder counts its messages too (wireguard-go keepKeyFreshSending, kernel keep_key_fresh).
    // First let A's confirming keepalive make the new keypair B's current one.
    await sleep(500);
    const sB0 = await stats(B);
    await hook(pair, B, [`send_counter=${REKEY_AFTER_MESSAGES - 1n}`]);
    assert.equal((await pair.ping(B, a.tunnel.v4, { count: 2, interval: 0.2 })).received, 2);
    await waitFor('B rekeys after 2^60 messages', async () => grew(await stats(B), sB0, 'handshake_responses_accepted'), 5000);
    await cap.stop();
    const counters = cap.from(a.underlay.v4, mark).filter((d) => d.type === 4).map((d) => d.counter!);
    for (const c of [REKEY_AFTER_MESSAGES - 2n, REKEY_AFTER_MESSAGES - 1n, REKEY_AFTER_MESSAGES]) {
      assert.ok(counters.includes(c), `A sent counter ${c} (saw ${counters.join(', ')})`);
    }
    const fromB = cap.from(B.underlay.v4, mark);
    assert.ok(fromB.some((d) => d.type === 4 && d.counter === REKEY_AFTER_MESSAGES), 'B sent counter 2^60');
    assert.ok(fromB.some((d) => d.type === 1), 'B sent an initiation');
  });

  test('REJECT_AFTER_MESSAGES: a keypair sends up to counter 2^64-2^13-2 and never beyond; a new handshake restores traffic', async (t) => {
    const b = await bed(t);
    const { pair, lab } = b;
    const { a } = pair;
    const B = pair.b;
    // No settle: A's first initiation was under 5 s ago, so the rekey it asks for at once
    // (the counter is far past 2^60) has to wait and the old keypair runs out first.
    const cap = await Capture.start(lab, a.ns, a.veth);
    const sA0 = await stats(a);
    const sB0 = await stats(B);
    const mark = Date.now();
    await hook(pair, a, [`send_counter=${REJECT_AFTER_MESSAGES - 3n}`]);
    const got = await udpFlow(b, a, B, 8, 30, 10_000);
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7], 'every datagram arrived once, in order: 3 under the old keypair, 5 staged for the new one');
    await cap.stop();
    const transport = cap.from(a.underlay.v4, mark).filter((d) => d.type === 4);
    const old = transport.filter((d) => d.counter! >= REKEY_AFTER_MESSAGES);
    assert.deepEqual(
      old.map((d) => d.counter),
      [REJECT_AFTER_MESSAGES - 3n, REJECT_AFTER_MESSAGES - 2n, REJECT_AFTER_MESSAGES - 1n],
      'the old keypair used its last three counters, in order, and stopped',
    );
    const fresh = transport.filter((d) => d.receiver !== old[0]!.receiver);
    assert.ok(fresh.length >= 5, `the five staged datagrams went out under a new session (${fresh.length})`);
    const sB1 = await stats(B);
    assert.equal(sB1.drop_replay, sB0.drop_replay, 'B never saw a counter at or past the limit');
    assert.ok(grew(await stats(a), sA0, 'handshake_responses_accepted'));
  });
});
