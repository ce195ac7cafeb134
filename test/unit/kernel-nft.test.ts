// nft fingerprints, body checks, the atomic replace script and parsing of nft's listings (captured
// from a test namespace with nft 1.0.6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { checkNftBody, nftFingerprint, nftReplaceScript, normaliseNftBody, parseTableList, parseTableListing } from '../../src/kernel/nft.ts';
import { KernelStateError } from '../../src/kernel/types.ts';

const fixture = (name: string) => fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const body = `
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16   # remap
  }
`;

test('normalisation ignores indentation, blank lines and # comments, not strings', () => {
  assert.equal(normaliseNftBody(body), 'chain pre {\ntype nat hook prerouting priority dstnat; policy accept;\nip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16\n}');
  const same = 'chain pre {\n\ttype nat hook prerouting priority dstnat;   policy accept;\n\n\tip daddr 10.70.0.0/16 dnat ip prefix to 10.0.0.0/16\n}';
  assert.equal(nftFingerprint(body), nftFingerprint(same));
  assert.notEqual(nftFingerprint(body), nftFingerprint(body.replace('10.70.0.0', '10.71.0.0')));
  assert.notEqual(nftFingerprint('chain c { comment "a  b" }'), nftFingerprint('chain c { comment "a b" }'));
  assert.equal(normaliseNftBody('chain c { comment "# not a comment" }'), 'chain c { comment "# not a comment" }');
  assert.match(nftFingerprint(body), /^[0-9a-f]{64}$/);
});

test('a body cannot close its table, leave a string open, or set the table comment', () => {
  assert.equal(checkNftBody(body, 'b'), body);
  const bad: Array<[string, RegExp]> = [
    ['chain a { }\n}\ndelete table inet foreign\ntable ip weft-x {', /closes a brace it did not open/],
    ['chain a {', /unclosed brace/],
    ['chain a { comment "x }', /unterminated string/],
    ['comment "mine"', /table comment/],
    ['flags dormant; comment "mine"', /table comment/],
  ];
  for (const [text, msg] of bad) {
    assert.throws(() => checkNftBody(text, 'nftTables[0].body'), (e: unknown) => e instanceof KernelStateError && msg.test(e.message), text);
  }
  // A chain or rule comment is fine.
  checkNftBody('chain a {\n comment "chain comment"\n counter comment "rule comment"\n}', 'b');
});

test('replace script: declare, delete, redefine with the fingerprint comment, in one transaction', () => {
  assert.equal(
    nftReplaceScript({ family: 'ip', name: 'weft-nat', body: 'chain c {\n}' }, 'abc'),
    'table ip weft-nat {}\ndelete table ip weft-nat\ntable ip weft-nat {\n\tcomment "weft:abc"\nchain c {\n}\n}\n',
  );
});

test('table list (JSON) and listings (text) as nft 1.0.6 prints them', () => {
  assert.deepEqual(parseTableList(JSON.parse(fixture('kernel-nft-tables.json')), 'weft'), [
    { family: 'ip', name: 'weft-nat' },
    { family: 'inet', name: 'weft-filter' },
  ]);
  const listed = parseTableListing(fixture('kernel-nft-table.txt'));
  assert.deepEqual(
    listed.map((t) => [t.family, t.name, t.fingerprint]),
    [
      ['ip', 'weft-nat', 'def'],
      ['inet', 'weft-filter', '0123'],
    ],
  );
  assert.equal(listed[0]!.body, 'chain pre {\n\ttype nat hook prerouting priority dstnat; policy accept;\n\tip daddr 10.70.0.0/16 dnat prefix to 10.0.0.0/16\n}');
  const full = parseTableListing(fixture('kernel-nft-table-full.txt'));
  assert.match(full[0]!.body, /elements = \{ 10\.0\.0\.1, 10\.0\.0\.2 \}/);
  assert.deepEqual(parseTableListing('table ip weft-x {\n\tchain c {\n\t}\n}\n')[0]!.fingerprint, '', 'no comment: no fingerprint');
});
