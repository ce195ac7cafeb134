// Load generator for bench/handshake-rate.ts, run as its own process inside the initiator-side
// namespace:
//   node bench/handshake-initiators.ts CONFIG.json
// It plays many WireGuard initiators at once. The Noise work and mac1/mac2/cookie replies run in
// the native addon's test hooks (native().handshakeTest: the same C++ the weft-wg devices use, on
// this process's main thread), so a handshake costs the generator about what it costs a
// responder, and no JavaScript cryptography is on the hot path: for each peer a real initiation
// (Initiator.initiate: fresh ephemeral, TAI64N timestamp strictly increasing per peer; then
// CookieGenerator.addMacs: mac1, and mac2 once the peer holds a cookie), then the responder's
// response (its mac1 checked with CookieChecker, the Noise handshake completed with
// Initiator.finish: session keys derived), a keepalive under the new keys (an empty transport
// message, as a real initiator sends when it has no data: only then does the responder count the
// handshake as complete), counted. A cookie reply is decrypted against the mac1 of the initiation
// it answers (CookieGenerator.consumeReply, one generator per peer, so per source address too)
// and the same initiation is sent again with a valid mac2.
//
// To tell whether it kept up, it reports its event-loop utilisation over the window (the share of
// wall time its one thread was busy rather than waiting in epoll) and how often it stood at its
// in-flight cap (every slot waiting for the responder) or had no peer ready to start.
//
// Protocol with the parent: one line `{"event":"ready"}` on stdout once the sockets are bound;
// the parent writes `go` on stdin; the generator warms up for `warmupSeconds`, prints
// `{"event":"measuring"}`, counts for `seconds`, prints one `{"event":"done",...}` line and exits.
// Bounded: it exits by itself if no `go` comes within 60 s, if stdin closes, or on SIGTERM/SIGINT
// (printing what it has).
import dgram from 'node:dgram';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { compareTai64n, tai64n } from '../src/wireguard/tai64n.ts';
import { native, type HandshakeTestHooks } from '../src/wireguard/native.ts';
import { aeadSeal, publicKeyOf, randomIndex } from '../src/wireguard/crypto.ts';
import { parseBase64Key } from '../src/wireguard/keys.ts';
import { MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_RESPONSE_SIZE, MESSAGE_TYPE_COOKIE_REPLY, MESSAGE_TYPE_RESPONSE } from '../src/wireguard/constants.ts';
import { buildTransport } from '../src/wireguard/messages.ts';

export interface InitiatorsConfig {
  /** Responder's underlay address and listen port. */
  host: string;
  port: number;
  /** Responder's static public key (base64). */
  responderPublicKey: string;
  /** JSON file holding `{ "privateKeys": [base64, …] }`: one initiator peer each. */
  keysFile: string;
  /** Local addresses to send from, one UDP socket each; peer i uses source i mod length. */
  sources: string[];
  warmupSeconds: number;
  seconds: number;
  /** Handshakes in flight at most (sent, not yet answered or timed out). */
  inflight: number;
  /** An unanswered initiation is given up after this long. */
  timeoutMs: number;
  /** Minimum time between two initiations of one peer (responder accepts one per 20 ms). */
  gapMs: number;
}

export interface InitiatorsReport {
  event: 'done';
  /** Length of the measured window (s). */
  seconds: number;
  /** Handshakes completed in the window (response verified, session keys derived, keepalive sent). */
  completed: number;
  /** Cookie replies received (and decrypted) in the window. */
  cookieReplies: number;
  /** Initiations sent in the window, including resends with mac2. */
  initiationsSent: number;
  /** Of those, resends answering a cookie reply. */
  resentWithMac2: number;
  /** Initiations given up (no response within timeoutMs) in the window. */
  timeouts: number;
  /** Responses that did not verify, cookie replies that did not decrypt, datagrams for no pending handshake. */
  badResponses: number;
  badCookies: number;
  stray: number;
  /** Distinct peers that completed at least one handshake in the window. */
  peersCompleted: number;
  /** Send-to-completion time of the handshakes completed in the window (ms). */
  latencyMedianMs: number;
  latencyP90Ms: number;
  /** Completions per whole second of the window. */
  perSecond: number[];
  /** This process's CPU seconds (user + system) over the window. */
  cpuSeconds: number;
  /**
   * Event-loop utilisation over the window (0–1): the share of wall time the generator's thread
   * ran callbacks instead of waiting for datagrams. Well below 1: it had time to spare.
   */
  eventLoopUtilization: number;
  /** Share of 5 ms samples in which every in-flight slot was taken (waiting on the responder). */
  atInflightCapShare: number;
  /** Share of samples with a free slot but no peer allowed to start yet (the per-peer gap). */
  noPeerReadyShare: number;
  /** Ended early by a signal or a closed stdin. */
  interrupted?: string;
}

type NativeInitiator = InstanceType<HandshakeTestHooks['Initiator']>;
type NativeCookieGenerator = InstanceType<HandshakeTestHooks['CookieGenerator']>;
type NativeCookieChecker = InstanceType<HandshakeTestHooks['CookieChecker']>;

interface PeerState {
  n: number;
  /** The Noise initiator; holds the state of this peer's one handshake in flight. */
  initiator: NativeInitiator;
  /** mac1/mac2 of our initiations and the cookie the responder gave this peer (its source address). */
  cookies: NativeCookieGenerator;
  /** mac1 check of the responses addressed to this peer (keyed by its public key). */
  responseMac1: NativeCookieChecker;
  lastTimestamp: Uint8Array | null;
  nextAt: number;
  socket: dgram.Socket;
}

interface Pending {
  peer: PeerState;
  /** The initiation as Initiator.initiate made it, mac1 and mac2 zero (addMacs copies it). */
  bare: Buffer;
  sentAt: number;
  resends: number;
}

const hooks = native().handshakeTest;
const EMPTY = new Uint8Array(0);
const NO_PSK = Buffer.alloc(32);
const cfg = JSON.parse(fs.readFileSync(process.argv[2] ?? '', 'utf8')) as InitiatorsConfig;
const responderStatic = parseBase64Key(cfg.responderPublicKey);
if (!responderStatic) throw new Error('bad responderPublicKey');
const responderKey = Buffer.from(responderStatic);
const privateKeys = (JSON.parse(fs.readFileSync(cfg.keysFile, 'utf8')) as { privateKeys: string[] }).privateKeys;
/** The hooks take whole milliseconds (≤ 1e12): this process's monotonic clock fits. */
const ms = (t: number) => Math.floor(t);

const sockets: dgram.Socket[] = [];
for (const address of cfg.sources) {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {});
  sockets.push(socket);
}

const peers: PeerState[] = privateKeys.map((b64, n) => {
  const privateKey = parseBase64Key(b64);
  if (!privateKey) throw new Error(`bad private key #${n}`);
  return {
    n,
    initiator: new hooks.Initiator(Buffer.from(privateKey), responderKey, NO_PSK),
    cookies: new hooks.CookieGenerator(responderKey),
    responseMac1: new hooks.CookieChecker(Buffer.from(publicKeyOf(privateKey))),
    lastTimestamp: null,
    nextAt: 0,
    socket: sockets[n % sockets.length]!,
  };
});

// ---- counters -------------------------------------------------------------------------------

type Phase = 'idle' | 'warmup' | 'measuring' | 'done';
let phase: Phase = 'idle';
let windowStart = 0;
let cpuStart = process.cpuUsage();
let eluStart = performance.eventLoopUtilization();
const c = { completed: 0, cookieReplies: 0, initiationsSent: 0, resentWithMac2: 0, timeouts: 0, badResponses: 0, badCookies: 0, stray: 0 };
const samples = { total: 0, atCap: 0, noPeer: 0 };
const latencies: number[] = [];
const perSecond: number[] = [];
const peersCompleted = new Set<number>();
const counting = () => phase === 'measuring';

// ---- the initiators -------------------------------------------------------------------------

const pending = new Map<number, Pending>();
/** Idle peers, in the order they may start again (their nextAt is non-decreasing). */
const ready: PeerState[] = [...peers];
let readyHead = 0;

/** A TAI64N label for now, strictly greater than the peer's previous one (the responder's replay rule). */
function nextTimestamp(previous: Uint8Array | null): Uint8Array {
  const now = tai64n();
  if (previous === null || compareTai64n(now, previous) > 0) return now;
  // Same 2^24 ns bucket as last time: step the nanosecond field by one instead.
  const out = Uint8Array.from(previous);
  const v = new DataView(out.buffer);
  const nanos = v.getUint32(8, false) + 1;
  if (nanos >= 1_000_000_000) {
    v.setBigUint64(0, v.getBigUint64(0, false) + 1n, false);
    v.setUint32(8, 0, false);
  } else v.setUint32(8, nanos, false);
  return out;
}

function freshIndex(): number {
  for (;;) {
    const i = randomIndex();
    if (i !== 0 && !pending.has(i)) return i;
  }
}

/** mac1 (and mac2 when the peer holds a fresh cookie) on a copy of the bare initiation, sent. */
function send(p: Pending, now: number): void {
  p.peer.socket.send(p.peer.cookies.addMacs(p.bare, ms(now)), cfg.port, cfg.host);
  if (counting()) c.initiationsSent++;
}

function start(peer: PeerState, now: number): void {
  const localIndex = freshIndex();
  const timestamp = nextTimestamp(peer.lastTimestamp);
  const bare = peer.initiator.initiate(localIndex, timestamp);
  if (!bare) throw new Error(`peer #${peer.n}: cannot create an initiation (low-order key?)`);
  peer.lastTimestamp = timestamp;
  const p: Pending = { peer, bare, sentAt: now, resends: 0 };
  pending.set(localIndex, p);
  send(p, now);
}

function finish(index: number, p: Pending, now: number): void {
  pending.delete(index);
  p.peer.nextAt = now + cfg.gapMs;
  ready.push(p.peer);
}

function pump(): void {
  if (phase !== 'warmup' && phase !== 'measuring') return;
  const now = performance.now();
  while (pending.size < cfg.inflight && readyHead < ready.length && ready[readyHead]!.nextAt <= now) {
    const peer = ready[readyHead++]!;
    start(peer, now);
  }
  if (readyHead > 4096 && readyHead * 2 > ready.length) {
    ready.splice(0, readyHead);
    readyHead = 0;
  }
}

function onMessage(msg: Buffer): void {
  if (phase !== 'warmup' && phase !== 'measuring') return;
  const now = performance.now();
  if (msg.length === MESSAGE_RESPONSE_SIZE && msg[0] === MESSAGE_TYPE_RESPONSE) {
    const receiver = msg.readUInt32LE(8);
    const p = pending.get(receiver);
    if (!p) {
      if (counting()) c.stray++;
      return;
    }
    const keys = p.peer.responseMac1.checkMac1(msg) ? p.peer.initiator.finish(msg) : null;
    if (!keys || keys.sendKey.length !== 32 || keys.receiveKey.length !== 32 || keys.localIndex !== receiver) {
      if (counting()) c.badResponses++;
      return;
    }
    // Confirm the session: keepalive = transport message, counter 0, empty payload.
    const keepalive = buildTransport(keys.remoteIndex, 0n, aeadSeal(keys.sendKey, 0n, EMPTY, EMPTY));
    p.peer.socket.send(keepalive, cfg.port, cfg.host);
    keys.sendKey.fill(0);
    keys.receiveKey.fill(0);
    if (counting()) {
      c.completed++;
      latencies.push(now - p.sentAt);
      peersCompleted.add(p.peer.n);
      const sec = Math.floor((now - windowStart) / 1000);
      if (sec < perSecond.length) perSecond[sec]!++;
    }
    finish(receiver, p, now);
    pump();
    return;
  }
  if (msg.length === MESSAGE_COOKIE_REPLY_SIZE && msg[0] === MESSAGE_TYPE_COOKIE_REPLY) {
    const receiver = msg.readUInt32LE(4);
    const p = pending.get(receiver);
    if (!p) {
      if (counting()) c.stray++;
      return;
    }
    // Decrypted against the mac1 this peer last sent (its pending initiation); the cookie is kept.
    if (!p.peer.cookies.consumeReply(msg, ms(now))) {
      if (counting()) c.badCookies++;
      return;
    }
    if (counting()) c.cookieReplies++;
    if (p.resends >= 3) return; // leave it to the timeout
    // The responder did no Diffie-Hellman for it: the same initiation (same timestamp) with mac2.
    p.resends++;
    if (counting()) c.resentWithMac2++;
    send(p, now);
    return;
  }
  if (counting()) c.stray++;
}

for (const s of sockets) s.on('message', onMessage);

function sweep(): void {
  const now = performance.now();
  for (const [index, p] of pending) {
    if (now - p.sentAt > cfg.timeoutMs) {
      if (counting()) c.timeouts++;
      finish(index, p, now);
    }
  }
  pump();
}

/** Why no initiation goes out right now: every slot taken, or no peer ready (or neither). */
function sample(): void {
  if (!counting()) return;
  samples.total++;
  if (pending.size >= cfg.inflight) samples.atCap++;
  else if (readyHead >= ready.length || ready[readyHead]!.nextAt > performance.now()) samples.noPeer++;
}

// ---- lifecycle ------------------------------------------------------------------------------

const percentile = (values: number[], q: number): number => {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((q / 100) * s.length) - 1))]!;
};

let pumpTimer: NodeJS.Timeout | undefined;
let sweepTimer: NodeJS.Timeout | undefined;
let sampleTimer: NodeJS.Timeout | undefined;
const phaseTimers: NodeJS.Timeout[] = [];

function report(interrupted?: string): void {
  if (phase === 'done') return;
  const wasMeasuring = phase === 'measuring';
  phase = 'done';
  const cpu = process.cpuUsage(cpuStart);
  const elu = performance.eventLoopUtilization(eluStart);
  const seconds = wasMeasuring ? (performance.now() - windowStart) / 1000 : 0;
  clearInterval(pumpTimer);
  clearInterval(sweepTimer);
  clearInterval(sampleTimer);
  for (const t of phaseTimers) clearTimeout(t);
  const out: InitiatorsReport = {
    event: 'done',
    seconds,
    ...c,
    peersCompleted: peersCompleted.size,
    latencyMedianMs: percentile(latencies, 50),
    latencyP90Ms: percentile(latencies, 90),
    perSecond,
    cpuSeconds: wasMeasuring ? (cpu.user + cpu.system) / 1e6 : 0,
    eventLoopUtilization: wasMeasuring ? elu.utilization : 0,
    atInflightCapShare: samples.total ? samples.atCap / samples.total : 0,
    noPeerReadyShare: samples.total ? samples.noPeer / samples.total : 0,
    ...(interrupted ? { interrupted } : {}),
  };
  process.stdout.write(JSON.stringify(out) + '\n', () => {
    for (const s of sockets) s.close();
    process.exit(0);
  });
}

function go(): void {
  if (phase !== 'idle') return;
  clearTimeout(noGo);
  phase = 'warmup';
  pumpTimer = setInterval(pump, 1);
  sweepTimer = setInterval(sweep, 50);
  sampleTimer = setInterval(sample, 5);
  pump();
  phaseTimers.push(
    setTimeout(() => {
      phase = 'measuring';
      windowStart = performance.now();
      cpuStart = process.cpuUsage();
      eluStart = performance.eventLoopUtilization();
      for (let i = 0; i < Math.ceil(cfg.seconds); i++) perSecond.push(0);
      process.stdout.write(JSON.stringify({ event: 'measuring' }) + '\n');
      phaseTimers.push(setTimeout(() => report(), cfg.seconds * 1000));
    }, cfg.warmupSeconds * 1000),
  );
}

const noGo = setTimeout(() => report('no go within 60 s'), 60_000);
let stdinBuf = '';
process.stdin.on('data', (d: Buffer) => {
  stdinBuf += d.toString();
  if (stdinBuf.includes('go\n')) go();
});
process.stdin.on('end', () => report('stdin closed'));
process.stdin.on('error', () => report('stdin error'));
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => report(sig));
process.stdout.write(JSON.stringify({ event: 'ready', peers: peers.length, sources: sockets.length }) + '\n');
