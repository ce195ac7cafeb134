// The native packet path end to end, in two network namespaces joined by a veth (IPv4 and IPv6
// underlay). Each namespace runs a child process (fixtures/native-device.ts) owning one native
// device; the test plays the control plane: it installs a keypair with the keys swapped between the
// two sides (A initiator, B responder, so B must confirm its `next` keypair on A's first packet),
// sets endpoints and allowed IPs, configures the tunnel addresses and drives traffic with ping.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { NetLab, nodeBin, repoRoot, waitFor, sleep } from './harness.ts';
import { encodePrefixes } from '../../src/wireguard/native.ts';
import { generatePrivateKey, hash, mac, publicKeyOf } from '../../src/wireguard/crypto.ts';
import { parseAddress } from '../../src/wireguard/prefix.ts';
import { decode, encode } from './fixtures/json-wire.ts';

const fixture = path.join(repoRoot, 'test/netns/fixtures/native-device.ts');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Event = { kind: string; peer?: number; address?: string; port?: number; reason?: string; data?: Buffer };


/** A child process owning one native device, driven over JSON lines. */
class DeviceChild {
  readonly events: Event[] = [];
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private readonly child: ChildProcess;
  stderr = '';
  readonly ns: string;

  constructor(lab: NetLab, ns: string) {
    this.ns = ns;
    this.child = lab.spawn(ns, [nodeBin, fixture], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr!.on('data', (d) => (this.stderr += String(d)));
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const msg = decode(JSON.parse(line)) as { id?: number; ok?: boolean; result?: unknown; error?: string; code?: string; events?: Event[] };
      if (msg.events) {
        this.events.push(...msg.events);
        return;
      }
      const p = this.pending.get(msg.id!);
      this.pending.delete(msg.id!);
      if (msg.ok) p?.resolve(msg.result);
      else p?.reject(Object.assign(new Error(msg.error), { code: msg.code }));
    });
    this.child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`device child exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  private request(msg: Record<string, unknown>): Promise<any> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(JSON.stringify(encode({ id, ...msg })) + '\n');
    });
  }

  create(name: string, mtu: number): Promise<{ name: string }> {
    return this.request({ op: 'create', name, mtu });
  }

  call(method: string, ...args: unknown[]): Promise<any> {
    return this.request({ op: 'call', method, args });
  }

  async counters(): Promise<Record<string, bigint>> {
    return this.call('counters');
  }

  async waitEvent(what: string, pred: (e: Event) => boolean, timeoutMs = 10_000): Promise<Event> {
    return (await waitFor(what, () => this.events.find(pred), timeoutMs))!;
  }

  end(): void {
    this.child.stdin?.end();
  }
}

function prefixes(...cidrs: string[]): Buffer {
  return encodePrefixes(
    cidrs.map((c) => {
      const [addr, bits] = c.split('/');
      const a = parseAddress(addr!)!;
      return { family: a.family, bits: Number(bits), bytes: a.bytes };
    }),
  );
}

function delta(after: Record<string, bigint>, before: Record<string, bigint>, key: string): bigint {
  return after[key]! - before[key]!;
}

function rtt(pingOutput: string): number | undefined {
  const m = /= [\d.]+\/([\d.]+)\//.exec(pingOutput);
  return m ? Number(m[1]) : undefined;
}

describe('native datapath between two namespaces', { timeout: 120_000 }, () => {
  const lab = NetLab.create();
  let nsA: string, nsB: string, nsC: string;
  let a: DeviceChild, b: DeviceChild;
  let tunA: string, tunB: string;
  let portA: number, portB: number;
  const PEER_ON_A = 1; // B as seen by A
  const PEER_ON_B = 7; // A as seen by B
  const INDEX_A = 0x0a0a0001;
  const INDEX_B = 0x0b0b0001;
  const rtts: Record<string, number | undefined> = {};

  const ping = (ns: string, args: string[]) => lab.exec(ns, ['ping', '-n', ...args], { allowFail: true, timeoutMs: 30_000 });

  before(async () => {
    nsA = await lab.namespace('a');
    nsB = await lab.namespace('b');
    await lab.veth(nsA, nsB, { a: ['10.77.0.1/24', 'fd77::1/64'], b: ['10.77.0.2/24', 'fd77::2/64'] });
    a = new DeviceChild(lab, nsA);
    b = new DeviceChild(lab, nsB);
    tunA = (await a.create(lab.ifname('wn'), 1420)).name;
    tunB = (await b.create(lab.ifname('wn'), 1420)).name;
    portA = await a.call('bind', 0);
    portB = await b.call('bind', 0);
    // Static keys only identify the peers here: the test installs the keypairs itself.
    await a.call('addPeer', PEER_ON_A, crypto.randomBytes(32));
    await b.call('addPeer', PEER_ON_B, crypto.randomBytes(32));
    await a.call('insertAllowedIps', PEER_ON_A, prefixes('10.9.0.2/32', 'fd09::2/128'));
    await b.call('insertAllowedIps', PEER_ON_B, prefixes('10.9.0.1/32', 'fd09::1/128'));
    const aToB = crypto.randomBytes(32);
    const bToA = crypto.randomBytes(32);
    await a.call('installKeypair', PEER_ON_A, { localIndex: INDEX_A, remoteIndex: INDEX_B, sendKey: aToB, receiveKey: bToA, initiator: true });
    await b.call('installKeypair', PEER_ON_B, { localIndex: INDEX_B, remoteIndex: INDEX_A, sendKey: bToA, receiveKey: aToB, initiator: false });
    // A reaches B over IPv6; B is told A's IPv4 address and must learn the IPv6 one by roaming.
    await a.call('setEndpoint', PEER_ON_A, 'fd77::2', portB);
    await b.call('setEndpoint', PEER_ON_B, '10.77.0.1', portA);
    await a.call('start');
    await b.call('start');
    for (const [ns, tun, v4, v6] of [[nsA, tunA, '10.9.0.1/24', 'fd09::1/64'], [nsB, tunB, '10.9.0.2/24', 'fd09::2/64']] as const) {
      await lab.exec(ns, ['ip', 'addr', 'add', v4, 'dev', tun]);
      await lab.exec(ns, ['ip', 'addr', 'add', v6, 'dev', tun, 'nodad']);
      await lab.exec(ns, ['ip', 'link', 'set', tun, 'up']);
    }
  });

  after(async () => {
    a?.end();
    b?.end();
    await sleep(200);
    await lab.cleanup();
    console.log(`# ping RTT over the tunnel (avg ms): ${JSON.stringify(rtts)}`);
  });

  it('creates the TUN with the requested name and MTU', async () => {
    assert.match(tunA, /^wn/);
    assert.equal(await a.call('mtu'), 1420);
    const link = await lab.exec(nsA, ['ip', '-o', 'link', 'show', tunA]);
    assert.match(link.stdout, /mtu 1420/);
    assert.match(link.stdout, /POINTOPOINT/);
    assert.ok(portA > 0 && portB > 0 && portA !== 0);
  });

  it('stages on the responder until its keypair is confirmed by the first packet from the initiator', async () => {
    const state0 = await b.call('peerState', PEER_ON_B);
    assert.equal(state0.hasCurrentKeypair, false, 'responder keypair waits in next');
    // B speaks first: no usable keypair, so the echo request is staged and a handshake requested.
    const early = ping(nsB, ['-c', '1', '-W', '8', '10.9.0.1']);
    await b.waitEvent('need-handshake on B', (e) => e.kind === 'need-handshake' && e.peer === PEER_ON_B);
    assert.ok((await b.call('peerState', PEER_ON_B)).staged >= 1);
    // A's traffic confirms B's keypair; B then flushes the staged echo request.
    const r = await ping(nsA, ['-c', '3', '-i', '0.2', '-W', '2', '10.9.0.2']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await b.waitEvent('keypair-confirmed on B', (e) => e.kind === 'keypair-confirmed' && e.peer === PEER_ON_B);
    assert.equal(a.events.filter((e) => e.kind === 'keypair-confirmed').length, 0, 'the initiator confirms nothing');
    const er = await early;
    assert.equal(er.code, 0, `staged echo request was answered: ${er.stdout}`);
    const state1 = await b.call('peerState', PEER_ON_B);
    assert.equal(state1.hasCurrentKeypair, true);
    assert.equal(state1.staged, 0);
  });

  it('carries IPv4 and IPv6 both ways and learns endpoints by roaming', async () => {
    const ca0 = await a.counters();
    const sa0 = await a.call('peerState', PEER_ON_A);
    const sb0 = await b.call('peerState', PEER_ON_B);
    // Padding: an 84-byte echo travels as 32 + 96 bytes (plaintext padded to a multiple of 16).
    const first = await ping(nsA, ['-c', '5', '-i', '0.2', '-W', '2', '10.9.0.2']);
    assert.equal(first.code, 0, first.stdout);
    rtts['A->B v4'] = rtt(first.stdout);
    const sa01 = await a.call('peerState', PEER_ON_A);
    assert.equal(sa01.txBytes - sa0.txBytes, 5n * 128n, 'A sent 5 padded requests');
    assert.equal(sa01.rxBytes - sa0.rxBytes, 5n * 128n, 'A received 5 padded replies');
    for (const [ns, args, label] of [
      [nsB, ['-c', '5', '-i', '0.2', '-W', '2', '10.9.0.1'], 'B->A v4'],
      [nsA, ['-6', '-c', '5', '-i', '0.2', '-W', '2', 'fd09::2'], 'A->B v6'],
      [nsB, ['-6', '-c', '5', '-i', '0.2', '-W', '2', 'fd09::1'], 'B->A v6'],
      [nsA, ['-c', '3', '-i', '0.2', '-W', '2', '-s', '1392', '-M', 'do', '10.9.0.2'], 'A->B v4 full MTU'],
    ] as const) {
      const r = await ping(ns, [...args]);
      assert.equal(r.code, 0, `${label}: ${r.stdout}${r.stderr}`);
      rtts[label] = rtt(r.stdout);
    }
    // B was configured with A's IPv4 address but A talks to it over IPv6.
    const sb1 = await b.call('peerState', PEER_ON_B);
    assert.deepEqual(sb1.endpoint, { address: 'fd77::1', port: portA });
    // Switch A to B's IPv4 address: B roams back and reports plain IPv4 (not ::ffff:...).
    await a.call('setEndpoint', PEER_ON_A, '10.77.0.2', portB);
    const r = await ping(nsA, ['-c', '2', '-i', '0.2', '-W', '2', '10.9.0.2']);
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual((await b.call('peerState', PEER_ON_B)).endpoint, { address: '10.77.0.1', port: portA });
    assert.deepEqual((await a.call('peerState', PEER_ON_A)).endpoint, { address: '10.77.0.2', port: portB });

    const ca1 = await a.counters();
    const sa1 = await a.call('peerState', PEER_ON_A);
    for (const k of ['tunRxPackets', 'tunTxPackets', 'udpRxPackets', 'udpTxPackets']) {
      assert.ok(delta(ca1, ca0, k) >= 20n, `${k} grew: ${delta(ca1, ca0, k)}`);
    }
    for (const k of ['dropDecrypt', 'dropReplay', 'dropSourceCheck', 'dropInnerMalformed', 'dropUnknownIndex', 'dropExpiredKey']) {
      assert.equal(delta(ca1, ca0, k), 0n, `${k} stays 0`);
    }
    assert.ok(sa1.txBytes > sa0.txBytes && sa1.rxBytes > sa0.rxBytes, 'A peer bytes grew');
    assert.ok(sb1.txBytes > sb0.txBytes && sb1.rxBytes > sb0.rxBytes, 'B peer bytes grew');
    const now = await a.call('now');
    assert.ok(sa1.lastAuthSent > 0 && sa1.lastAuthSent <= now);
    assert.ok(sa1.lastAuthReceived > 0 && sa1.lastAuthReceived <= now);
    assert.equal(sa1.hasCurrentKeypair, true);
  });

  it('answers a destination without a peer with ICMP unreachable', async () => {
    const c0 = await a.counters();
    const r4 = await ping(nsA, ['-c', '2', '-i', '0.3', '-W', '2', '10.9.0.77']);
    assert.notEqual(r4.code, 0);
    // IPv4: from the unreachable address itself (see Device::answerUnreachable); IPv6: from the TUN's.
    assert.match(r4.stdout, /From 10\.9\.0\.77 icmp_seq=\d+ Destination Host Unreachable/, r4.stdout);
    const r6 = await ping(nsA, ['-6', '-c', '2', '-i', '0.3', '-W', '2', 'fd09::77']);
    assert.notEqual(r6.code, 0);
    assert.match(r6.stdout, /From fd09::1 icmp_seq=\d+ Destination unreachable: Address unreachable/, r6.stdout);
    const c1 = await a.counters();
    assert.ok(delta(c1, c0, 'dropNoPeer') >= 4n, `dropNoPeer ${delta(c1, c0, 'dropNoPeer')}`);
    assert.ok(delta(c1, c0, 'icmpUnreachableSent') >= 4n, `icmpUnreachableSent ${delta(c1, c0, 'icmpUnreachableSent')}`);
  });

  it('drops decrypted packets whose source is not allowed for the sending peer', async () => {
    await lab.exec(nsB, ['ip', 'addr', 'add', '10.9.0.3/32', 'dev', tunB]);
    const c0 = await a.counters();
    const r = await ping(nsB, ['-c', '3', '-i', '0.2', '-W', '1', '-I', '10.9.0.3', '10.9.0.1']);
    assert.notEqual(r.code, 0, 'no answer from a disallowed source');
    const c1 = await a.counters();
    assert.equal(delta(c1, c0, 'dropSourceCheck'), 3n);
    assert.equal(delta(c1, c0, 'dropDecrypt'), 0n);
    // The allowed source still works.
    assert.equal((await ping(nsB, ['-c', '1', '-W', '2', '10.9.0.1'])).code, 0);
  });

  it('sends keepalives; handshake-class messages from the network never reach JavaScript', async () => {
    const sa0 = await a.call('peerState', PEER_ON_A);
    const sb0 = await b.call('peerState', PEER_ON_B);
    const cb0 = await b.counters();
    assert.equal(await a.call('sendKeepalive', PEER_ON_A), true);
    await waitFor('keepalive received', async () => (await b.call('peerState', PEER_ON_B)).lastAuthReceived > sb0.lastAuthReceived);
    const sb1 = await b.call('peerState', PEER_ON_B);
    assert.equal(sb1.rxBytes - sb0.rxBytes, 32n, 'a keepalive is a bare 32-byte transport message');
    assert.equal(delta(await b.counters(), cb0, 'tunTxPackets'), 0n, 'nothing written to the TUN');
    const sa1 = await a.call('peerState', PEER_ON_A);
    assert.equal(sa1.txBytes - sa0.txBytes, 32n);
    assert.ok(sa1.lastAuthSent > sa0.lastAuthSent);

    // Handshake-class datagrams stay in the packet path: B has no private key, so the initiation
    // fails mac1, and the cookie reply answers no message of B's. Neither reaches JavaScript.
    const initiation = Buffer.alloc(148, 0xab);
    initiation.writeUInt32LE(1, 0);
    const eventsBefore = b.events.length;
    assert.equal(await a.call('sendToPeer', PEER_ON_A, initiation), true);
    const reply = Buffer.alloc(64, 0xcd);
    reply.writeUInt32LE(3, 0);
    await a.call('sendTo', '10.77.0.2', portB, reply);
    await waitFor('handshake messages counted on B', async () => {
      const c = await b.counters();
      return delta(c, cb0, 'handshakeDropBadMac1') === 1n && delta(c, cb0, 'handshakeDropUnknownIndex') === 1n;
    });
    assert.equal(b.events.length, eventsBefore, 'no event for unauthenticated handshake messages');
    assert.equal((await a.call('peerState', PEER_ON_A)).txBytes - sa1.txBytes, 148n, 'sendToPeer counts, sendTo does not');
    await assert.rejects(a.call('sendTo', 'nonsense', 1, reply), (err: NodeJS.ErrnoException) => err.code === 'EINVAL');
  });

  it('counts garbage datagrams as drops and keeps working', async () => {
    // Build the garbage here and classify it by the receive rules the device must follow.
    const REJECT = 2n ** 64n - 2n ** 13n - 1n;
    const datagrams: Buffer[] = [];
    const expected = {
      dropMalformed: 0n,
      dropUnknownIndex: 0n,
      dropDecrypt: 0n,
      dropReplay: 0n,
      handshakeDropBadMac1: 0n,
      handshakeDropUnknownIndex: 0n,
      handshakeDropUnknownPeerOrBadCrypto: 0n,
    };
    const add = (buf: Buffer, kind: keyof typeof expected) => {
      datagrams.push(buf);
      expected[kind]++;
    };
    const typed = (type: number, len: number) => {
      const buf = crypto.randomBytes(len);
      if (len > 0) buf[0] = type;
      if (len > 3) buf.fill(0, 1, 4);
      return buf;
    };
    add(Buffer.alloc(0), 'dropMalformed');
    for (let i = 0; i < 60; i++) {
      const buf = crypto.randomBytes(Math.floor(Math.random() * 200));
      if (buf.length >= 4 && buf[1] === 0 && buf[2] === 0 && buf[3] === 0) buf[1] = 1;
      add(buf, 'dropMalformed'); // reserved bytes not zero (or too short)
    }
    for (const [type, exact] of [[1, 148], [2, 92], [3, 64]] as const) {
      for (const len of [exact - 1, exact + 1, 4, 200]) add(typed(type, len), 'dropMalformed');
    }
    for (let len = 0; len < 32; len++) add(typed(4, len), 'dropMalformed'); // shorter than a keepalive
    for (const type of [0, 5, 6, 255]) add(typed(type, 100), 'dropMalformed');
    for (let i = 0; i < 80; i++) {
      const buf = typed(4, 32 + Math.floor(Math.random() * 1500));
      let index = buf.readUInt32LE(4);
      if (index === INDEX_A) index ^= 1;
      buf.writeUInt32LE(index, 4);
      add(buf, 'dropUnknownIndex');
    }
    for (let i = 0; i < 80; i++) {
      const buf = typed(4, 32 + Math.floor(Math.random() * 1500));
      buf.writeUInt32LE(INDEX_A, 4);
      buf.writeBigUInt64LE(BigInt(i), 8);
      add(buf, 'dropDecrypt'); // right index, forged ciphertext
    }
    for (const counter of [REJECT, REJECT + 1n, 2n ** 64n - 1n]) {
      const buf = typed(4, 64);
      buf.writeUInt32LE(INDEX_A, 4);
      buf.writeBigUInt64LE(counter, 8);
      add(buf, 'dropReplay'); // counter beyond REJECT_AFTER_MESSAGES: refused before decryption
    }
    // Exact-size handshake messages with random content: a wrong mac1, a cookie reply to nothing.
    for (let i = 0; i < 3; i++) add(typed(1, 148), 'handshakeDropBadMac1');
    for (let i = 0; i < 3; i++) add(typed(2, 92), 'handshakeDropBadMac1');
    for (let i = 0; i < 3; i++) {
      const buf = typed(3, 64);
      if (buf.readUInt32LE(4) === INDEX_A) buf.writeUInt32LE(INDEX_A ^ 1, 4);
      add(buf, 'handshakeDropUnknownIndex');
    }

    // With a private key on A, messages with a VALID mac1 and garbage behind it reach the
    // handshake workers and fail there: an initiation that does not decrypt (whatever its mac2),
    // a response to no handshake of A's. The wrong size with a valid mac1 is still malformed.
    const privA = generatePrivateKey();
    await a.call('setPrivateKey', Buffer.from(privA));
    const mac1Key = hash(Buffer.from('mac1----'), publicKeyOf(privA));
    const withMac1 = (type: number, len: number) => {
      const m = typed(type, len);
      m.set(mac(mac1Key, m.subarray(0, len - 32)), len - 32);
      return m;
    };
    for (let i = 0; i < 4; i++) add(withMac1(1, 148), 'handshakeDropUnknownPeerOrBadCrypto');
    for (let i = 0; i < 4; i++) {
      const m = withMac1(2, 92);
      assert.notEqual(m.readUInt32LE(8), INDEX_A);
      add(m, 'handshakeDropUnknownIndex');
    }
    for (const [type, len] of [[1, 149], [1, 147], [2, 93], [2, 91]] as const) add(withMac1(type, len), 'dropMalformed');

    const c0 = await a.counters();
    const events0 = a.events.length;
    const sender = `
      const dgram = require('node:dgram');
      const list = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
      const s = dgram.createSocket('udp4');
      s.bind(0, '10.77.0.2', async () => {
        for (const hex of list) {
          await new Promise((r) => s.send(Buffer.from(hex, 'hex'), ${portA}, '10.77.0.1', r));
        }
        console.log(s.address().port);
        s.close();
      });`;
    const sent = await lab.exec(nsB, [nodeBin, '-e', sender], { input: JSON.stringify(datagrams.map((d) => d.toString('hex'))) });
    assert.ok(Number(sent.stdout.trim()) > 0, sent.stderr);
    const c1 = (await waitFor(
      'garbage counted',
      async () => {
        const c = await a.counters();
        const settled = (Object.keys(expected) as (keyof typeof expected)[]).every((k) => delta(c, c0, k) >= expected[k]);
        return delta(c, c0, 'udpRxPackets') >= BigInt(datagrams.length) && settled ? c : undefined;
      },
      10_000,
    ))!;
    for (const key of Object.keys(expected) as (keyof typeof expected)[]) assert.equal(delta(c1, c0, key), expected[key], key);
    assert.equal(a.events.length, events0, 'nothing of it reached JavaScript');
    // The session is unharmed.
    const r = await ping(nsA, ['-c', '3', '-i', '0.2', '-W', '2', '10.9.0.2']);
    assert.equal(r.code, 0, r.stdout);
  });

  it('keeps the old socket when a re-bind fails, moves to a new port when it succeeds', async () => {
    const holder = lab.spawn(nsA, [nodeBin, '-e', "const s=require('node:dgram').createSocket('udp6');s.bind(0,()=>console.log(s.address().port))"]);
    const busyPort = await new Promise<number>((resolve) => holder.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    await assert.rejects(a.call('bind', busyPort), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE');
    assert.equal(await a.call('bind', portA), portA, 'same port: nothing to do');
    assert.equal((await ping(nsA, ['-c', '1', '-W', '2', '10.9.0.2'])).code, 0, 'old socket still in use');
    await a.call('setFwmark', 0x42);
    const fresh = await a.call('bind', 0);
    assert.notEqual(fresh, portA);
    // A's next packet comes from the new port; B follows by roaming.
    assert.equal((await ping(nsA, ['-c', '2', '-i', '0.2', '-W', '2', '10.9.0.2'])).code, 0);
    assert.deepEqual((await b.call('peerState', PEER_ON_B)).endpoint, { address: '10.77.0.1', port: fresh });
    const ss = await lab.exec(nsA, ['ss', '-uanH', '-e', 'sport', '=', `:${fresh}`]);
    assert.match(ss.stdout, /fwmark:0x42/, ss.stdout);
    portA = fresh;
    holder.kill('SIGTERM');
  });

  it('keeps working after its TUN moves to another namespace', async () => {
    nsC = await lab.namespace('c');
    await lab.exec(nsB, ['ip', 'link', 'set', tunB, 'netns', nsC]);
    await lab.exec(nsC, ['ip', 'addr', 'add', '10.9.0.2/24', 'dev', tunB]);
    await lab.exec(nsC, ['ip', 'link', 'set', tunB, 'up']);
    // B's process (and its UDP socket) stays in nsB; the TUN descriptor follows the interface.
    const r = await ping(nsC, ['-c', '3', '-i', '0.2', '-W', '2', '10.9.0.1']);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(await b.call('mtu'), 1420, 'last known MTU when the interface is out of reach');
  });

  it('reports device-gone when the TUN link is deleted, then refuses calls after close', async () => {
    await lab.exec(nsA, ['ip', 'link', 'del', tunA]);
    const gone = await a.waitEvent('device-gone on A', (e) => e.kind === 'device-gone', 5_000);
    assert.match(gone.reason!, /TUN/);
    await a.call('close');
    await a.call('close'); // idempotent
    await assert.rejects(a.call('addPeer', 99), (err: NodeJS.ErrnoException) => err.code === 'ERR_CLOSED');
    await assert.rejects(a.call('peerState', PEER_ON_A), (err: NodeJS.ErrnoException) => err.code === 'ERR_CLOSED');
    const c = await a.counters();
    assert.ok(c.tunRxPackets! > 0n, 'counters stay readable');
    // B is unaffected and still running.
    assert.equal((await b.call('peerState', PEER_ON_B)).hasCurrentKeypair, true);
    assert.equal(b.events.filter((e) => e.kind === 'device-gone').length, 0);
  });

  it('reports device-gone when the namespace holding the TUN is deleted', async () => {
    await lab.exec(nsB, ['ip', 'netns', 'del', nsC]);
    const gone = await b.waitEvent('device-gone on B', (e) => e.kind === 'device-gone', 10_000);
    assert.match(gone.reason!, /TUN/);
    await b.call('close');
  });
});

describe('native device lifecycle (N-API hygiene)', { timeout: 60_000 }, () => {
  const lab = NetLab.create();
  let ns: string;

  before(async () => {
    ns = await lab.namespace('l');
  });

  after(async () => {
    await lab.cleanup();
  });

  // Runs an ES module snippet with the addon loaded as `m`, inside the namespace.
  const runChild = (body: string, timeoutMs = 15_000) =>
    lab.exec(
      ns,
      [nodeBin, '--expose-gc', '--input-type=module', '-e', `const { native } = await import(${JSON.stringify(path.join(repoRoot, 'src/wireguard/native.ts'))});\nconst m = native();\n${body}`],
      { allowFail: true, timeoutMs },
    );

  it('collects an unstarted device (its TUN disappears) and rejects bad arguments', async () => {
    const [gcName, badName] = [lab.ifname('wl'), lab.ifname('wl')];
    const r = await runChild(`
      import('node:fs').then(async ({ existsSync }) => {
        const out = {};
        (() => { m.createDevice('${gcName}', 1420, () => {}); })();
        out.createdExists = existsSync('/sys/class/net/${gcName}');
        for (let i = 0; i < 20 && existsSync('/sys/class/net/${gcName}'); i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
        out.goneAfterGc = !existsSync('/sys/class/net/${gcName}');
        const codes = [];
        for (const f of [
          () => m.createDevice('x'.repeat(16), 1420, () => {}),
          () => m.createDevice('${badName}', 100, () => {}),
          () => m.createDevice('${badName}', 1420, 'nope'),
        ]) { try { f(); codes.push('no error'); } catch (e) { codes.push(e.code ?? e.name); } }
        const d = m.createDevice('${badName}', 1420, () => {});
        const K = Buffer.alloc(32, 9);
        for (const f of [
          () => d.addPeer(-1, K), () => d.addPeer(1.5, K), () => d.setEndpoint(1, '1.2.3.4', 1),
          () => { d.addPeer(1, K); d.addPeer(1, Buffer.alloc(32, 8)); }, () => d.addPeer(2, K), () => d.addPeer(3, Buffer.alloc(31)),
          () => d.addPeer(4), () => d.setPrivateKey(Buffer.alloc(16)), () => d.setPresharedKey(9, K),
          () => d.setEndpoint(1, 'not an address', 1),
          () => d.insertAllowedIps(1, Buffer.alloc(17)), () => d.insertAllowedIps(1, Buffer.from([4, 33, ...new Array(16).fill(0)])),
          () => d.installKeypair(1, { localIndex: 1, remoteIndex: 2, sendKey: Buffer.alloc(31), receiveKey: Buffer.alloc(32), initiator: true }),
          () => { d.start(); d.start(); },
        ]) { try { f(); codes.push('no error'); } catch (e) { codes.push(e.code ?? e.name); } }
        out.codes = codes;
        d.close();
        out.afterClose = (() => { try { d.bind(0); return 'no error'; } catch (e) { return e.code; } })();
        console.log(JSON.stringify(out));
      });`);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.createdExists, true);
    assert.equal(out.goneAfterGc, true, 'GC closed the unstarted device');
    assert.deepEqual(out.codes, [
      'EINVAL', 'RangeError', 'TypeError', // createDevice: name too long, MTU, callback
      'RangeError', 'TypeError', 'ENOENT', 'EEXIST', 'EEXIST', 'RangeError', 'TypeError', 'RangeError', 'ENOENT',
      'EINVAL', 'RangeError', 'RangeError', 'TypeError', 'ERR_STARTED',
    ]);
    assert.equal(out.afterClose, 'ERR_CLOSED');
  });

  it('releases the event loop on close() and stops running threads on process.exit()', async () => {
    const [one, two] = [lab.ifname('wl'), lab.ifname('wl')];
    // close(): nothing keeps the process alive afterwards, so it ends by itself.
    const closed = await runChild(`
      const d = m.createDevice('${one}', 1420, () => {});
      d.bind(0); d.start();
      setTimeout(() => { d.close(); console.log('closed'); }, 200);`);
    assert.equal(closed.code, 0, closed.stderr);
    assert.equal(closed.stdout.trim(), 'closed');
    // A running device never closed: the environment cleanup hook joins its threads at exit.
    const exited = await runChild(`
      const d = m.createDevice('${two}', 1420, () => {});
      d.bind(0); d.start();
      setTimeout(() => process.exit(0), 200);`);
    assert.equal(exited.code, 0, exited.stderr);
  });
});
