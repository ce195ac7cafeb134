// The control-socket text protocol without sockets: set parsing and validation, stream framing
// under arbitrary chunking, limits, and the exact `get` reply.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  UapiStreamParser,
  formatEndpoint,
  formatErrno,
  formatGet,
  formatGetReply,
  parseEndpoint,
  parseSetBody,
} from '../../src/wireguard/uapi/protocol.ts';
import type { UapiOperation } from '../../src/wireguard/uapi/protocol.ts';
import { Errno, UapiError } from '../../src/wireguard/uapi/types.ts';
import type { DeviceSnapshot } from '../../src/wireguard/uapi/types.ts';
import { formatPrefix, parsePrefix } from '../../src/wireguard/prefix.ts';
import type { Prefix } from '../../src/wireguard/prefix.ts';

const K1 = '11'.repeat(32);
const K2 = 'ab'.repeat(32);
const K3 = 'c0'.repeat(32);
const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
const prefix = (text: string): Prefix => {
  const p = parsePrefix(text);
  assert.ok(p, text);
  return p;
};
const body = (...lines: string[]) => lines.join('\n') + '\n\n';

function setErrno(text: string): number {
  try {
    parseSetBody(text);
  } catch (err) {
    assert.ok(err instanceof UapiError, `expected UapiError, got ${String(err)}`);
    return err.errno;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be rejected`);
}

/** Make parsed ops comparable with deepEqual (prefix bytes are Uint8Arrays either way). */
function feed(parser: UapiStreamParser, chunks: Uint8Array[], end = true): UapiOperation[] {
  const ops: UapiOperation[] = [];
  for (const c of chunks) ops.push(...parser.push(c));
  if (end) ops.push(...parser.end());
  return ops;
}

describe('set: device keys', () => {
  it('parses private_key, listen_port, fwmark and replace_peers', () => {
    const req = parseSetBody(body(`private_key=${K1.toUpperCase()}`, 'listen_port=51820', 'fwmark=4294967295', 'replace_peers=true'));
    assert.deepEqual(req.privateKey, bytes(K1));
    assert.equal(req.listenPort, 51820);
    assert.equal(req.fwmark, 0xffffffff);
    assert.equal(req.replacePeers, true);
    assert.deepEqual(req.peers, []);
  });

  it('leaves absent keys undefined and accepts the zero values', () => {
    const empty = parseSetBody('\n');
    assert.deepEqual(empty, { replacePeers: false, peers: [] });
    const zeros = parseSetBody(body(`private_key=${'0'.repeat(64)}`, 'listen_port=0', 'fwmark=0'));
    assert.deepEqual(zeros.privateKey, new Uint8Array(32));
    assert.equal(zeros.listenPort, 0);
    assert.equal(zeros.fwmark, 0);
  });

  it('takes the last value when a device key repeats', () => {
    assert.equal(parseSetBody(body('listen_port=1', 'listen_port=2')).listenPort, 2);
  });

  it('accepts leading zeros like Go ParseUint but nothing else that is not plain decimal', () => {
    assert.equal(parseSetBody(body('listen_port=00080')).listenPort, 80);
    for (const bad of ['65536', '-1', '+1', ' 1', '1 ', '1.0', '', '0x10', '1e3', '٣']) {
      assert.equal(setErrno(body(`listen_port=${bad}`)), Errno.EINVAL, `listen_port=${bad}`);
      assert.equal(setErrno(body(`public_key=${K1}`, `persistent_keepalive_interval=${bad}`)), Errno.EINVAL, `pka=${bad}`);
    }
    for (const bad of ['4294967296', '-1', '99999999999999999999', 'off', '0x1']) {
      assert.equal(setErrno(body(`fwmark=${bad}`)), Errno.EINVAL, `fwmark=${bad}`);
    }
  });

  it('rejects bad keys and values with -EINVAL', () => {
    const cases = [
      'private_key=' + K1.slice(2),
      'private_key=' + K1 + '00',
      'private_key=' + 'zz'.repeat(32),
      'private_key=',
      'replace_peers=false',
      'replace_peers=TRUE',
      'replace_peers=',
      'bogus=1',
      '=1',
      'get=1',
      // Peer keys before any public_key.
      'allowed_ip=10.0.0.0/8',
      'endpoint=1.2.3.4:5',
      'remove=true',
      'update_only=true',
      'preshared_key=' + K2,
      'persistent_keepalive_interval=25',
      'replace_allowed_ips=true',
      'protocol_version=1',
    ];
    for (const line of cases) assert.equal(setErrno(body(line)), Errno.EINVAL, line);
  });

  it('answers a line without "=" with -EPROTO', () => {
    assert.equal(setErrno(body('listen_port')), Errno.EPROTO);
    assert.equal(setErrno(body(`public_key=${K1}`, 'garbage')), Errno.EPROTO);
  });

  it('reports the first error even if later lines are also bad', () => {
    assert.equal(setErrno(body('listen_port=x', 'garbage')), Errno.EINVAL);
    assert.equal(setErrno(body('garbage', 'listen_port=x')), Errno.EPROTO);
  });
});

describe('set: peers', () => {
  it('parses every peer key', () => {
    const req = parseSetBody(
      body(
        `public_key=${K1}`,
        'update_only=true',
        `preshared_key=${K2}`,
        'endpoint=192.0.2.1:51820',
        'persistent_keepalive_interval=25',
        'protocol_version=1',
        'replace_allowed_ips=true',
        'allowed_ip=10.0.0.0/24',
        'allowed_ip=fd00::/64',
      ),
    );
    assert.equal(req.peers.length, 1);
    const p = req.peers[0]!;
    assert.deepEqual(p.publicKey, bytes(K1));
    assert.equal(p.updateOnly, true);
    assert.equal(p.remove, false);
    assert.deepEqual(p.presharedKey, bytes(K2));
    assert.deepEqual(p.endpoint, { address: '192.0.2.1', port: 51820 });
    assert.equal(p.persistentKeepaliveInterval, 25);
    assert.deepEqual(p.allowedIps, [{ op: 'replace' }, { op: 'add', prefix: prefix('10.0.0.0/24') }, { op: 'add', prefix: prefix('fd00::/64') }]);
  });

  it('leaves unset peer fields undefined', () => {
    const p = parseSetBody(body(`public_key=${K1}`)).peers[0]!;
    assert.deepEqual(p, { publicKey: bytes(K1), remove: false, updateOnly: false, allowedIps: [] });
  });

  it('keeps peers in order, the same key more than once', () => {
    const req = parseSetBody(body(`public_key=${K1}`, 'allowed_ip=10.1.0.0/16', `public_key=${K2}`, `public_key=${K1}`, 'allowed_ip=10.2.0.0/16'));
    assert.deepEqual(
      req.peers.map((p) => [Buffer.from(p.publicKey).toString('hex'), p.allowedIps.map((a) => (a.op === 'replace' ? 'replace' : formatPrefix(a.prefix)))]),
      [
        [K1, ['10.1.0.0/16']],
        [K2, []],
        [K1, ['10.2.0.0/16']],
      ],
    );
  });

  it('keeps allowed-IP operations in line order around replace_allowed_ips', () => {
    const req = parseSetBody(
      body(`public_key=${K1}`, 'allowed_ip=10.0.0.0/8', 'allowed_ip=-10.9.0.0/16', 'replace_allowed_ips=true', 'allowed_ip=10.1.0.0/16', 'allowed_ip=-10.1.0.0/16', 'replace_allowed_ips=true', 'allowed_ip=::/0'),
    );
    assert.deepEqual(req.peers[0]!.allowedIps, [
      { op: 'add', prefix: prefix('10.0.0.0/8') },
      { op: 'remove', prefix: prefix('10.9.0.0/16') },
      { op: 'replace' },
      { op: 'add', prefix: prefix('10.1.0.0/16') },
      { op: 'remove', prefix: prefix('10.1.0.0/16') },
      { op: 'replace' },
      { op: 'add', prefix: prefix('::/0') },
    ]);
  });

  it('masks host bits of allowed IPs', () => {
    const ops = parseSetBody(body(`public_key=${K1}`, 'allowed_ip=10.1.2.3/8', 'allowed_ip=-192.168.7.9/24', 'allowed_ip=fd00::1234:5678/64', 'allowed_ip=1.2.3.4/32', 'allowed_ip=::ffff:10.0.0.1/104')).peers[0]!.allowedIps;
    assert.deepEqual(
      ops.map((o) => (o.op === 'replace' ? 'replace' : `${o.op} ${formatPrefix(o.prefix)}`)),
      ['add 10.0.0.0/8', 'remove 192.168.7.0/24', 'add fd00::/64', 'add 1.2.3.4/32', 'add ::ffff:a00:0/104'],
    );
  });

  it('rejects malformed allowed IPs like Go netip.ParsePrefix', () => {
    for (const bad of ['10.0.0.1', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/08', '10.0.0.0/-1', '10.0.0.0/', '/8', '--10.0.0.0/8', '- 10.0.0.0/8', 'example.com/32', 'fe80::1%eth0/64', '10.0.0.256/32', '010.0.0.0/8', '10.0.0.0/8 ', '']) {
      assert.equal(setErrno(body(`public_key=${K1}`, `allowed_ip=${bad}`)), Errno.EINVAL, bad);
    }
  });

  it('rejects bad peer values and unknown peer keys with -EINVAL', () => {
    const cases = [
      'public_key=' + K1.slice(1),
      'public_key=',
      'update_only=false',
      'remove=1',
      'remove=',
      'preshared_key=' + K2.slice(2),
      'persistent_keepalive_interval=65536',
      'replace_allowed_ips=yes',
      'protocol_version=2',
      'protocol_version=',
      'protocol_version=01',
      // Device keys after the first public_key.
      'private_key=' + K2,
      'listen_port=1',
      'fwmark=1',
      'replace_peers=true',
      'bogus=1',
      'rx_bytes=0',
    ];
    for (const line of cases) assert.equal(setErrno(body(`public_key=${K1}`, line)), Errno.EINVAL, line);
  });

  it('marks remove=true and keeps nothing that follows for that peer (but still validates it)', () => {
    const req = parseSetBody(body(`public_key=${K1}`, 'allowed_ip=10.0.0.0/8', 'remove=true', 'allowed_ip=10.1.0.0/16', 'endpoint=1.2.3.4:5', 'update_only=true', `public_key=${K2}`, 'allowed_ip=10.2.0.0/16'));
    const [a, b] = req.peers;
    assert.equal(a!.remove, true);
    assert.equal(a!.updateOnly, false);
    assert.equal(a!.endpoint, undefined);
    assert.deepEqual(a!.allowedIps, [{ op: 'add', prefix: prefix('10.0.0.0/8') }]);
    // The next public_key starts afresh.
    assert.equal(b!.remove, false);
    assert.deepEqual(b!.allowedIps, [{ op: 'add', prefix: prefix('10.2.0.0/16') }]);
    assert.equal(setErrno(body(`public_key=${K1}`, 'remove=true', 'allowed_ip=nonsense')), Errno.EINVAL);
  });

  it('marks update_only=true', () => {
    const req = parseSetBody(body(`public_key=${K1}`, 'update_only=true', 'allowed_ip=10.0.0.0/8', `public_key=${K2}`));
    assert.equal(req.peers[0]!.updateOnly, true);
    assert.equal(req.peers[0]!.allowedIps.length, 1);
    assert.equal(req.peers[1]!.updateOnly, false);
  });
});

describe('endpoints', () => {
  it('parses IPv4, bracketed IPv6 and IPv6 with a zone, canonically', () => {
    assert.deepEqual(parseEndpoint('1.2.3.4:51820'), { address: '1.2.3.4', port: 51820 });
    assert.deepEqual(parseEndpoint('[2001:DB8:0:0::1]:0'), { address: '2001:db8::1', port: 0 });
    assert.deepEqual(parseEndpoint('[::1]:65535'), { address: '::1', port: 65535 });
    assert.deepEqual(parseEndpoint('[fe80::1%eth0]:51820'), { address: 'fe80::1%eth0', port: 51820 });
  });

  it('rejects hostnames, unbracketed IPv6, bracketed IPv4 and bad ports', () => {
    for (const bad of ['example.com:51820', 'localhost:1', '::1:51820', '2001:db8::1', '[1.2.3.4]:5', '[::1]', '[::1]51820', '[::1:5', '1.2.3.4', '1.2.3.4:', '1.2.3.4:65536', '1.2.3.4:-1', '1.2.3.4:+1', '1.2.3.4: 1', ' 1.2.3.4:1', '1.2.3.4%eth0:1', '[fe80::1%]:1', '']) {
      assert.equal(parseEndpoint(bad), null, bad);
      assert.equal(setErrno(body(`public_key=${K1}`, `endpoint=${bad}`)), Errno.EINVAL, bad);
    }
  });

  it('formats IPv6 in brackets', () => {
    assert.equal(formatEndpoint({ address: '1.2.3.4', port: 5 }), '1.2.3.4:5');
    assert.equal(formatEndpoint({ address: 'fd00::1', port: 5 }), '[fd00::1]:5');
  });
});

describe('stream framing', () => {
  const stream = Buffer.from(
    'get=1\n\n' +
      body('set=1', `private_key=${K1}`, 'listen_port=51820', `public_key=${K2}`, 'endpoint=[fd00::1]:9', 'allowed_ip=10.0.0.0/8', 'allowed_ip=-fd00::/64') +
      body('set=1', 'bogus=1', 'listen_port=1') +
      'get=1\n\n' +
      body('set=1', `public_key=${K3}`, 'remove=true') +
      'get=1\nx\n' +
      'get=1\n\n',
    'latin1',
  );

  it('produces the operations in order', () => {
    const ops = feed(new UapiStreamParser(), [stream]);
    assert.deepEqual(
      ops.map((o) => (o.kind === 'error' ? `error ${o.errno} ${o.close}` : o.kind)),
      // A get with a stray line is fatal: nothing after it on that connection is read.
      ['get', 'set', 'error 22 false', 'get', 'set', 'error 22 true'],
    );
    const first = ops[1] as Extract<UapiOperation, { kind: 'set' }>;
    assert.equal(first.request.listenPort, 51820);
    assert.deepEqual(first.request.peers[0]!.endpoint, { address: 'fd00::1', port: 9 });
    assert.deepEqual(first.request.peers[0]!.allowedIps, [
      { op: 'add', prefix: prefix('10.0.0.0/8') },
      { op: 'remove', prefix: prefix('fd00::/64') },
    ]);
  });

  it('gives the same result however the bytes are split', () => {
    const whole = feed(new UapiStreamParser(), [stream]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const ops = feed(new UapiStreamParser(), [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(ops, whole, `split at ${cut}`);
    }
    for (let cut = 0; cut + 7 <= stream.length; cut += 5) {
      const ops = feed(new UapiStreamParser(), [stream.subarray(0, cut), stream.subarray(cut, cut + 7), stream.subarray(cut + 7)]);
      assert.deepEqual(ops, whole, `three pieces at ${cut}`);
    }
    const byByte: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) byByte.push(Uint8Array.of(stream[i]!));
    assert.deepEqual(feed(new UapiStreamParser(), byByte), whole, 'byte by byte');
  });

  it('does not keep a reference to the caller\'s chunk', () => {
    const parser = new UapiStreamParser();
    const chunk = Buffer.from('get=');
    assert.deepEqual(parser.push(chunk), []);
    chunk.fill(0x78);
    assert.deepEqual(parser.push(Buffer.from('1\n\n')), [{ kind: 'get' }]);
  });

  it('stops at an unknown command with -EINVAL and ignores what follows', () => {
    for (const cmd of ['hello', '', 'get=2', 'GET=1', 'set=1 ', 'get=1\r', 'errno=0']) {
      const parser = new UapiStreamParser();
      const ops = feed(parser, [Buffer.from(`${cmd}\nget=1\n\n`)], false);
      assert.deepEqual(ops.map((o) => o.kind === 'error' && [o.errno, o.close]), [[Errno.EINVAL, true]], JSON.stringify(cmd));
      assert.equal(parser.closed, true);
      assert.deepEqual(parser.push(Buffer.from('get=1\n\n')), []);
    }
  });

  it('fails an over-long line with -EIO and stops, whether it arrives whole or in pieces', () => {
    const line = 'x'.repeat(5000);
    const whole = feed(new UapiStreamParser(), [Buffer.from(`set=1\nlisten_port=${line}\n\nget=1\n\n`)], false);
    assert.deepEqual(whole.map((o) => o.kind === 'error' && [o.errno, o.close]), [[Errno.EIO, true]]);
    // Without any newline the buffer must not grow past the limit either.
    const parser = new UapiStreamParser();
    const ops: UapiOperation[] = [];
    for (let i = 0; i < 100; i++) ops.push(...parser.push(Buffer.from('y'.repeat(100))));
    assert.deepEqual(ops.map((o) => o.kind === 'error' && [o.errno, o.close]), [[Errno.EIO, true]]);
    assert.equal(parser.closed, true);
    // Exactly at the limit is fine.
    const small = new UapiStreamParser({ maxLineBytes: 16 });
    assert.deepEqual(feed(small, [Buffer.from('set=1\nlisten_port=0001\n\n')]).map((o) => o.kind), ['set']);
    const over = new UapiStreamParser({ maxLineBytes: 16 });
    assert.deepEqual(feed(over, [Buffer.from('set=1\nlisten_port=00001\n\n')]).map((o) => o.kind === 'error' && o.errno), [Errno.EIO]);
  });

  it('fails a set body over the size limit with -EIO and stops', () => {
    const parser = new UapiStreamParser({ maxSetBytes: 100 });
    const lines = Array.from({ length: 20 }, (_, i) => `allowed_ip=10.0.${i}.0/24`);
    const ops = feed(parser, [Buffer.from(body('set=1', `public_key=${K1}`, ...lines) + 'get=1\n\n')], false);
    assert.deepEqual(ops.map((o) => o.kind === 'error' && [o.errno, o.close]), [[Errno.EIO, true]]);
  });

  it('keeps going after a bad set: the body is read up to its empty line', () => {
    const ops = feed(new UapiStreamParser(), [Buffer.from(body('set=1', 'listen_port', `public_key=${K1}`, 'allowed_ip=x') + 'get=1\n\n')]);
    assert.deepEqual(ops, [{ kind: 'error', errno: Errno.EPROTO, message: "line without '=': \"listen_port\"", close: false }, { kind: 'get' }]);
  });

  it('does not apply a set cut short by end of input', () => {
    const ops = feed(new UapiStreamParser(), [Buffer.from('set=1\nlisten_port=1\n')]);
    assert.deepEqual(ops.map((o) => o.kind === 'error' && [o.errno, o.close]), [[Errno.EPROTO, true]]);
    assert.deepEqual(feed(new UapiStreamParser(), [Buffer.from('set=1\nlisten_port=1')]).map((o) => o.kind === 'error' && o.errno), [Errno.EPROTO]);
    // A get without its empty line, or a half-sent command, gets no answer.
    assert.deepEqual(feed(new UapiStreamParser(), [Buffer.from('get=1\n')]), []);
    assert.deepEqual(feed(new UapiStreamParser(), [Buffer.from('get=')]), []);
  });

  it('treats non-ASCII bytes as invalid values, not as crashes', () => {
    const ops = feed(new UapiStreamParser(), [Buffer.from([...Buffer.from('set=1\nlisten_port=1'), 0xff, 0xfe, 0x0a, 0x0a, ...Buffer.from('get=1\n\n')])]);
    assert.deepEqual(ops.map((o) => (o.kind === 'error' ? o.errno : o.kind)), [Errno.EINVAL, 'get']);
  });
});

describe('get reply', () => {
  const snapshot: DeviceSnapshot = {
    privateKey: bytes(K1),
    listenPort: 51820,
    fwmark: 0x1234,
    peers: [
      {
        publicKey: bytes(K2),
        presharedKey: new Uint8Array(32),
        endpoint: { address: 'fd00::1', port: 9 },
        lastHandshakeTimeSec: 1700000000n,
        lastHandshakeTimeNsec: 123n,
        txBytes: 18446744073709551615n,
        rxBytes: 7n,
        persistentKeepaliveInterval: 25,
        allowedIps: [prefix('10.0.0.0/8'), prefix('fd00::/64')],
      },
      {
        publicKey: bytes(K3),
        presharedKey: bytes(K1),
        endpoint: null,
        lastHandshakeTimeSec: 0n,
        lastHandshakeTimeNsec: 0n,
        txBytes: 0n,
        rxBytes: 0n,
        persistentKeepaliveInterval: 0,
        allowedIps: [],
      },
    ],
  };

  it('writes wireguard-go\'s keys in wireguard-go\'s order', () => {
    assert.equal(
      formatGet(snapshot),
      [
        `private_key=${K1}`,
        'listen_port=51820',
        'fwmark=4660',
        `public_key=${K2}`,
        `preshared_key=${'0'.repeat(64)}`,
        'protocol_version=1',
        'endpoint=[fd00::1]:9',
        'last_handshake_time_sec=1700000000',
        'last_handshake_time_nsec=123',
        'tx_bytes=18446744073709551615',
        'rx_bytes=7',
        'persistent_keepalive_interval=25',
        'allowed_ip=10.0.0.0/8',
        'allowed_ip=fd00::/64',
        `public_key=${K3}`,
        `preshared_key=${K1}`,
        'protocol_version=1',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        'errno=0',
        '',
        '',
      ].join('\n'),
    );
  });

  it('omits an unset private key, port 0 and fwmark 0', () => {
    assert.equal(formatGet({ privateKey: null, listenPort: 0, fwmark: 0, peers: [] }), 'errno=0\n\n');
    assert.equal(formatGet({ privateKey: new Uint8Array(32), listenPort: 0, fwmark: 0, peers: [] }), 'errno=0\n\n');
    assert.equal(formatGet({ privateKey: null, listenPort: 1, fwmark: 0, peers: [] }), 'listen_port=1\nerrno=0\n\n');
  });

  it('formats errnos negated', () => {
    assert.equal(formatErrno(0), 'errno=0\n\n');
    assert.equal(formatErrno(Errno.EINVAL), 'errno=-22\n\n');
    assert.equal(formatErrno(-Errno.EADDRINUSE), 'errno=-98\n\n');
  });
});

describe('130,000 allowed IPs', () => {
  it('parses from 64 KiB chunks and formats back', () => {
    const count = 130_000;
    const lines = ['set=1', `public_key=${K1}`, 'replace_allowed_ips=true'];
    for (let i = 0; i < count; i++) {
      lines.push(i % 2 ? `allowed_ip=10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32` : `allowed_ip=fd00::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}/128`);
    }
    const input = Buffer.from(lines.join('\n') + '\n\n');
    const parser = new UapiStreamParser();
    const ops: UapiOperation[] = [];
    for (let off = 0; off < input.length; off += 65536) ops.push(...parser.push(input.subarray(off, off + 65536)));
    assert.equal(ops.length, 1);
    const op = ops[0]!;
    assert.equal(op.kind, 'set');
    const ips = op.kind === 'set' ? op.request.peers[0]!.allowedIps : [];
    assert.equal(ips.length, count + 1);
    const prefixes = ips.flatMap((o) => (o.op === 'add' ? [o.prefix] : []));
    const chunks = [...formatGetReply({ privateKey: null, listenPort: 0, fwmark: 0, peers: [{ publicKey: bytes(K1), presharedKey: new Uint8Array(32), endpoint: null, lastHandshakeTimeSec: 0n, lastHandshakeTimeNsec: 0n, txBytes: 0n, rxBytes: 0n, persistentKeepaliveInterval: 0, allowedIps: prefixes }] })];
    assert.ok(chunks.length > 10, 'reply is cut into chunks');
    const text = chunks.join('');
    const allowed = text.split('\n').filter((l) => l.startsWith('allowed_ip='));
    assert.equal(allowed.length, count);
    assert.equal(allowed[0], 'allowed_ip=fd00::/128');
    assert.equal(allowed[count - 2], 'allowed_ip=fd00::1:fbce/128');
    assert.equal(allowed[count - 1], `allowed_ip=10.1.251.207/32`);
    assert.ok(text.endsWith('errno=0\n\n'));
  });
});
