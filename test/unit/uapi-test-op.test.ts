// weft's TEST-ONLY `test=1` control-socket operation (uapi/protocol.ts): parsing and framing. What
// it does to a device is covered by test/netns/key-lifetime.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UapiStreamParser, parseTestBody } from '../../src/wireguard/uapi/protocol.ts';
import { Errno, UapiError } from '../../src/wireguard/uapi/types.ts';

const K1 = '11'.repeat(32);
const K2 = 'ab'.repeat(32);

test('test=1 body: peer sections with age_keypairs_ms and send_counter', () => {
  const req = parseTestBody(`peer=${K1}\nage_keypairs_ms=181000\npeer=${K2}\nsend_counter=18446744073709543422\nage_keypairs_ms=0\n`);
  assert.equal(req.peers.length, 2);
  assert.equal(Buffer.from(req.peers[0]!.publicKey).toString('hex'), K1);
  assert.equal(req.peers[0]!.ageKeypairsMs, 181000);
  assert.equal(req.peers[0]!.sendCounter, undefined);
  assert.equal(req.peers[1]!.sendCounter, 2n ** 64n - 2n ** 13n - 2n);
  assert.equal(req.peers[1]!.ageKeypairsMs, 0);
  assert.deepEqual(parseTestBody(''), { peers: [] });
});

test('test=1 body: bad lines are EINVAL (EPROTO without "=")', () => {
  const errno = (body: string) => {
    try {
      parseTestBody(body);
    } catch (err) {
      assert.ok(err instanceof UapiError);
      return err.errno;
    }
    return 0;
  };
  assert.equal(errno('age_keypairs_ms=5\n'), Errno.EINVAL, 'before any peer=');
  assert.equal(errno(`peer=${K1.slice(2)}\n`), Errno.EINVAL);
  assert.equal(errno(`peer=${K1}\nage_keypairs_ms=-1\n`), Errno.EINVAL);
  assert.equal(errno(`peer=${K1}\nage_keypairs_ms=1000000000001\n`), Errno.EINVAL);
  assert.equal(errno(`peer=${K1}\nsend_counter=18446744073709551616\n`), Errno.EINVAL, '2^64');
  assert.equal(errno(`peer=${K1}\nsend_counter=0x10\n`), Errno.EINVAL);
  assert.equal(errno(`peer=${K1}\nendpoint=1.2.3.4:5\n`), Errno.EINVAL, 'set keys are not test keys');
  assert.equal(errno(`peer=${K1}\nnonsense\n`), Errno.EPROTO);
  assert.equal(errno(`peer=${K1}\nsend_counter=18446744073709551615\n`), 0, '2^64 - 1 is allowed');
});

test('framing: test=1 is one operation; a bad body answers without closing; an unterminated one is fatal', () => {
  const parser = new UapiStreamParser();
  const ops = parser.push(Buffer.from(`test=1\npeer=${K1}\nage_keypairs_ms=1\n\ntest=1\nbogus=1\n\nget=1\n\n`));
  assert.deepEqual(ops.map((o) => o.kind), ['test', 'error', 'get']);
  assert.equal(ops[1]!.kind === 'error' && ops[1]!.close, false);
  const cut = new UapiStreamParser();
  assert.deepEqual(cut.push(Buffer.from(`test=1\npeer=${K1}\n`)), []);
  const end = cut.end();
  assert.equal(end.length, 1);
  assert.ok(end[0]!.kind === 'error' && end[0]!.close && end[0]!.errno === Errno.EPROTO);
});
