// The weft command's top level: help goes to stdout and exits 0; an unknown command says so on
// stderr and exits 2 (the image's default CMD is `--help`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const weft = path.resolve(import.meta.dirname, '../../bin/weft');

test('weft --help, -h, help and no command print the usage on stdout and exit 0', () => {
  for (const args of [['--help'], ['-h'], ['help'], []]) {
    const r = spawnSync(weft, args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage:\n {2}weft demo/);
    assert.equal(r.stderr, '');
  }
});

test('an unknown command is named on stderr with the usage, exit 2', () => {
  const r = spawnSync(weft, ['nosuch'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^weft: unknown command 'nosuch'\nUsage:/);
});
