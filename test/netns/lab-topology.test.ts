// The lab topology for real, through the CLI: 2 clusters × 2 nodes × 2 pods (a: bridge, b: routed),
// pings inside each cluster, over the underlay and over the WAN, status, exec, refusal of a second
// `up`, `down`, and cleaning up after an `up` killed halfway or a lost lab.json.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeBin, repoRoot, run, sleep, waitFor, type RunResult } from './harness.ts';
import { down, orphanLabIds } from '../../src/lab/lab.ts';
import { listNamespaces } from '../../src/lab/netns.ts';
import { labIdOfNamespace } from '../../src/lab/topology.ts';

const cli = path.join(repoRoot, 'src/cli/weft.ts');
const weft = (args: string[], timeoutMs = 60_000): Promise<RunResult> => run(nodeBin, [cli, ...args], { allowFail: true, timeoutMs });

/** A lab id no other run uses: 't' + 5 random base-36 characters, checked against the machine. */
function uniqueId(): string {
  for (;;) {
    const id = 't' + BigInt('0x' + randomBytes(5).toString('hex')).toString(36).slice(-5);
    if (!orphanLabIds().includes(id)) return id;
  }
}

const ofLab = (id: string) => listNamespaces().filter((n) => labIdOfNamespace(n) === id);
const rootLinks = async () => (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim()).filter((x): x is string => !!x).sort();

describe('weft lab (2 clusters × 2 nodes × 2 pods)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-lab-test-'));
  const stateDir = path.join(tmp, 'state');
  const id = uniqueId();
  const ids = [id];
  const P = `wl${id}-`;
  let upResult: RunResult;
  let upMs = 0;
  let linksBefore: string[] = [];

  before(async () => {
    linksBefore = await rootLinks();
    const t = performance.now();
    upResult = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2', '--pods', '2', '--id', id, '--wan-mtu', '1400', '--state-dir', stateDir]);
    upMs = performance.now() - t;
    process.stderr.write(`# lab up took ${upMs.toFixed(0)} ms:\n${upResult.stdout.replace(/^/gm, '#   ')}\n`);
  });

  after(async () => {
    // Whatever happened, nothing of ours stays: the state dirs' labs and every id we used.
    for (const i of ids) await down({ stateDir: path.join(tmp, `cleanup-${i}`), id: i }).catch(() => {});
    await down({ stateDir, id }).catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('up builds every namespace in seconds and touches nothing in the root namespace', async () => {
    assert.equal(upResult.code, 0, upResult.stderr);
    assert.match(upResult.stdout, /building cluster a: bridge pod network, 2 nodes, 4 pods … done in [\d.]+ s/);
    assert.match(upResult.stdout, /building cluster b: routed pod network, 2 nodes, 4 pods … done in [\d.]+ s/);
    assert.ok(upMs < 10_000, `up took ${upMs} ms`);
    assert.equal(ofLab(id).length, 1 + 2 * (2 + 2 + 4));
    assert.deepEqual(await rootLinks(), linksBefore);
  });

  const ping = async (ns: string, to: string) => {
    const r = await run('ip', ['netns', 'exec', P + ns, 'ping', '-c', '1', '-W', '2', to], { allowFail: true });
    return `${ns} → ${to}: ${r.code === 0 ? 'ok' : 'FAIL'}`;
  };
  const allOk = async (checks: Array<[string, string]>) => {
    const results = await Promise.all(checks.map(([ns, to]) => ping(ns, to)));
    assert.deepEqual(results.filter((r) => !r.endsWith('ok')), [], results.join('\n'));
  };

  for (const c of ['a', 'b']) {
    test(`cluster ${c}: pod↔pod on one node and across nodes, pod→own node`, async () => {
      await allOk([
        [`${c}-n1-p1`, '10.0.1.12'],
        [`${c}-n1-p2`, '10.0.1.11'],
        [`${c}-n1-p1`, '10.0.2.11'],
        [`${c}-n2-p2`, '10.0.1.11'],
        [`${c}-n2-p1`, '10.0.2.12'],
        [`${c}-n1-p2`, '192.168.100.11'],
        [`${c}-n2-p1`, '192.168.100.12'],
        [`${c}-n1`, '10.0.2.12'],
      ]);
    });
    test(`cluster ${c}: gateway↔nodes on the underlay`, async () => {
      await allOk([
        [`${c}-gw`, '192.168.100.11'],
        [`${c}-gw`, '192.168.100.12'],
        [`${c}-n1`, '192.168.100.254'],
        [`${c}-n2`, '192.168.100.254'],
        [`${c}-n1`, '192.168.100.12'],
      ]);
    });
  }

  test('gateway↔gateway over the WAN (MTU as asked)', async () => {
    await allOk([
      ['a-gw', '203.0.113.2'],
      ['b-gw', '203.0.113.1'],
    ]);
    const link = await run('ip', ['-n', `${P}a-gw`, '-o', 'link', 'show', 'wan0']);
    assert.match(link.stdout, /mtu 1400 /);
    // the clusters overlap but stay apart: a's node IP answers only inside a
    const r = await run('ip', ['netns', 'exec', `${P}a-gw`, 'ping', '-c', '1', '-W', '1', '10.0.1.11'], { allowFail: true });
    assert.notEqual(r.code, 0, 'a gateway has no route into the pod network without the fabric');
  });

  test('status --json describes clusters, nodes and pods', async () => {
    const r = await weft(['lab', 'status', '--json', '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.id, id);
    assert.equal(s.phase, 'ready');
    assert.deepEqual(s.missingNamespaces, []);
    assert.deepEqual(s.peerings, []);
    assert.deepEqual(s.wan, { namespace: `${P}wan`, cidr: '203.0.113.0/24', mtu: 1400 });
    assert.deepEqual(s.clusters.map((c: { name: string; style: string }) => [c.name, c.style]), [['a', 'bridge'], ['b', 'routed']]);
    const b = s.clusters[1];
    assert.equal(b.podCIDR, '10.0.0.0/16');
    assert.deepEqual(b.gateway, { namespace: `${P}b-gw`, underlayIP: '192.168.100.254', wanIP: '203.0.113.2' });
    assert.deepEqual(b.nodes, [
      { name: 'n1', namespace: `${P}b-n1`, ip: '192.168.100.11', podCIDR: '10.0.1.0/24' },
      { name: 'n2', namespace: `${P}b-n2`, ip: '192.168.100.12', podCIDR: '10.0.2.0/24' },
    ]);
    assert.deepEqual(b.pods[3], { name: 'n2-p2', namespace: `${P}b-n2-p2`, node: 'n2', ip: '10.0.2.12' });
    const text = await weft(['lab', 'status', '--state-dir', stateDir]);
    assert.match(text.stdout, /cluster b {2}routed pod network/);
  });

  test('exec runs in the named namespace and passes the exit code on', async () => {
    const addr = await weft(['lab', 'exec', '--state-dir', stateDir, 'b/n2-p1', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    assert.equal(addr.code, 0, addr.stderr);
    assert.match(addr.stdout, /inet 10\.0\.2\.11\/32 /);
    const gw = await weft(['lab', 'exec', '--state-dir', stateDir, 'a/gw', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'wan0']);
    assert.match(gw.stdout, /inet 203\.0\.113\.1\/24 /);
    const code = await weft(['lab', 'exec', '--state-dir', stateDir, 'a/n1', '--', 'sh', '-c', 'exit 7']);
    assert.equal(code.code, 7);
    const bad = await weft(['lab', 'exec', '--state-dir', stateDir, 'c/n1', '--', 'true']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no "c\/n1" in lab/);
  });

  test('a second up in the same state dir refuses and leaves the lab alone', async () => {
    const r = await weft(['lab', 'up', '--state-dir', stateDir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`a lab \\(id ${id}\\) already exists .*weft lab down`));
    assert.equal(ofLab(id).length, 17);
    await allOk([['a-n1-p1', '10.0.2.11']]);
  });

  test('down ends processes, removes every namespace and the state; again is a no-op', async () => {
    // a process inside the lab (a daemon the fabric would start) and one that ignores SIGTERM
    const inPod = spawn('ip', ['netns', 'exec', `${P}a-n1-p1`, 'sleep', '300'], { stdio: 'ignore' });
    const stubborn = spawn('ip', ['netns', 'exec', `${P}b-gw`, 'sh', '-c', 'trap "" TERM; sleep 300 & wait'], { stdio: 'ignore' });
    await waitFor('processes inside the lab', async () => (await run('ip', ['netns', 'pids', `${P}b-gw`])).stdout.trim().split(/\s+/).length >= 2);
    const t = performance.now();
    const r = await weft(['lab', 'down', '--state-dir', stateDir]);
    process.stderr.write(`# lab down took ${(performance.now() - t).toFixed(0)} ms: ${r.stdout.trim()}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ofLab(id), []);
    assert.deepEqual(fs.readdirSync(stateDir), []);
    await waitFor('processes ended', () => inPod.exitCode !== null || inPod.signalCode !== null);
    await waitFor('stubborn process ended', () => stubborn.exitCode !== null || stubborn.signalCode !== null);
    const again = await weft(['lab', 'down', '--state-dir', stateDir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no lab/);
    assert.deepEqual(await rootLinks(), linksBefore);
  });

  test('an up killed halfway is removed by down', async () => {
    const sd = path.join(tmp, 'crash');
    const cid = uniqueId();
    ids.push(cid);
    const child = spawn(nodeBin, [cli, 'lab', 'up', '--clusters', '6', '--nodes', '3', '--pods', '6', '--concurrency', '1', '--id', cid, '--state-dir', sd], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor('cluster a built', () => out.includes('building cluster a'), 20_000, 5);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const state = JSON.parse(fs.readFileSync(path.join(sd, 'lab.json'), 'utf8'));
    assert.equal(state.id, cid);
    assert.ok(ofLab(cid).length > 0);
    const st = await weft(['lab', 'status', '--json', '--state-dir', sd]);
    assert.equal(JSON.parse(st.stdout).id, cid);
    const r = await weft(['lab', 'down', '--state-dir', sd]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ofLab(cid), []);
    assert.deepEqual(fs.readdirSync(sd), []);
  });

  test('a damaged lab.json still names the lab for down', async () => {
    const sd = path.join(tmp, 'damaged');
    const did = uniqueId();
    ids.push(did);
    const u = await weft(['lab', 'up', '--clusters', '1', '--nodes', '1', '--pods', '1', '--id', did, '--state-dir', sd]);
    assert.equal(u.code, 0, u.stderr);
    const file = path.join(sd, 'lab.json');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 60));
    const st = await weft(['lab', 'status', '--state-dir', sd]);
    assert.equal(st.code, 1);
    assert.match(st.stderr, /not valid JSON/);
    const r = await weft(['lab', 'down', '--state-dir', sd]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ofLab(did), []);
    assert.deepEqual(fs.readdirSync(sd), []);
  });

  test('without lab.json, down names the orphaned lab and removes it by id', async () => {
    const sd = path.join(tmp, 'lost');
    const oid = uniqueId();
    ids.push(oid);
    // What a crash can leave: part of a lab, a process inside it, and no state file.
    const made = [`wl${oid}-wan`, `wl${oid}-a-sw`, `wl${oid}-a-n1`, `wl${oid}-a-n1-p1`];
    await run('ip', ['-batch', '-'], { input: made.map((n) => `netns add ${n}`).join('\n') + '\n' });
    const sleeper = spawn('ip', ['netns', 'exec', made[2]!, 'sleep', '300'], { stdio: 'ignore' });
    await waitFor('sleeper inside', async () => (await run('ip', ['netns', 'pids', made[2]!])).stdout.trim() !== '');
    const refuse = await weft(['lab', 'down', '--state-dir', sd]);
    assert.equal(refuse.code, 1);
    assert.match(refuse.stderr, new RegExp(`namespaces of labs? .*\\b${oid}\\b.*--id ID.*--force`));
    assert.deepEqual(ofLab(oid).sort(), [...made].sort(), 'nothing removed without --id or --force');
    const r = await weft(['lab', 'down', '--state-dir', sd, '--id', oid]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(ofLab(oid), []);
    await waitFor('sleeper ended', () => sleeper.exitCode !== null || sleeper.signalCode !== null);
    await sleep(10);
  });
});
