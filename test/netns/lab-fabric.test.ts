// The fabric end to end, on the lab: three clusters with the same pod CIDR (one bridge-style, one
// routed-style, one bridge-style), peered in a full mesh by the real controllers, gateways and node
// agents. Every pod must reach every remote pod at its remapped address over ICMP, TCP and UDP and
// be seen there at a stable remapped address; processes restart without changing allocations or
// duplicating kernel state; deleted routes come back; bad peerings are refused with a reason and no
// kernel change; unpeer removes everything of that peering on both sides; down leaves nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeBin, repoRoot, run, sleep, waitFor } from './harness.ts';
import { translate } from '../../src/ipam/index.ts';
import { loadLab } from '../../src/lab/lab.ts';
import { clusterHandle, startProcess, waitConnected, type Role } from '../../src/lab/fabric.ts';
import { API_VERSION, Kinds, type PeeringStatus } from '../../src/control/resources.ts';
import type { Resource } from '../../src/store/types.ts';

const weft = path.join(repoRoot, 'bin/weft');
const echo = path.join(repoRoot, 'test/netns/echo.ts');
const ECHO_PORT = 7007;

interface Pod {
  name: string;
  namespace: string;
  ip: string;
}
interface Status {
  id: string;
  clusters: { name: string; podCIDR: string; serviceCIDR: string; nodeCIDR: string; gateway: { namespace: string }; nodes: { name: string; namespace: string }[]; pods: Pod[] }[];
  peerings: { local: string; remote: string; phase: string; seenAs: string; interfaceName?: string; latencyMs?: number; lastHandshake?: string; rxBytes?: number }[];
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]!);
  }));
}

describe('lab fabric: 3 clusters, same pod CIDR, full mesh', () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-lab-'));
  const servers: ChildProcess[] = [];
  let st: Status;
  const lab = (...args: string[]) => run(weft, ['lab', ...args, '--state-dir', stateDir], { timeoutMs: 120_000 });
  const status = async () => JSON.parse((await lab('status', '--json')).stdout) as Status;
  const cluster = (name: string) => st.clusters.find((c) => c.name === name)!;
  const remap = (local: string, remote: string) => st.peerings.find((p) => p.local === local && p.remote === remote)!.seenAs;
  /** Where a pod of `remote` is reached from `local`. */
  const seenFrom = (local: string, remote: string, ip: string) => translate(ip, cluster(remote).podCIDR, remap(local, remote));
  const inNs = (ns: string, args: string[], allowFail = false) => run('ip', ['netns', 'exec', ns, ...args], { allowFail, timeoutMs: 20_000 });

  before(async () => {
    const up = await lab('up', '--clusters', '3', '--nodes', '2', '--pods', '2', '--full-mesh');
    assert.match(up.stdout, /full mesh: 3 peerings connected/);
    st = await status();
    for (const c of st.clusters) {
      for (const p of c.pods) {
        const child = spawn('ip', ['netns', 'exec', p.namespace, nodeBin, echo, 'serve', String(ECHO_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
        servers.push(child);
        await new Promise((r) => child.stdout!.once('data', r));
      }
    }
  });

  after(async () => {
    for (const s of servers) s.kill();
    const down = await run(weft, ['lab', 'down', '--state-dir', stateDir], { allowFail: true, timeoutMs: 60_000 });
    const left = (await run('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => st && l.startsWith(`wl${st.id}-`));
    fs.rmSync(stateDir, { recursive: true, force: true });
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(left, [], 'down leaves no namespace behind');
  });

  test('status: every peering Connected, with a remap, latency, handshake and bytes', () => {
    assert.equal(st.peerings.length, 6);
    for (const p of st.peerings) {
      assert.equal(p.phase, 'Connected', `${p.local}→${p.remote}`);
      assert.ok(p.seenAs, 'remap present');
      assert.ok(typeof p.latencyMs === 'number' && p.latencyMs > 0, `latency ${p.latencyMs}`);
      assert.ok(p.lastHandshake && Date.parse(p.lastHandshake) > Date.now() - 300_000);
      assert.ok((p.rxBytes ?? 0) > 0);
    }
  });

  test('observability: /readyz on every process, and the gateway’s /metrics show each peering up with its traffic', async () => {
    const get = async (ns: string, port: number, p: string) => {
      const r = await inNs(ns, [nodeBin, '-e', `fetch('http://127.0.0.1:${port}${p}').then(async (r) => { console.log(r.status); console.log(await r.text()); })`]);
      const [code, ...body] = r.stdout.split('\n');
      return { code: Number(code), body: body.join('\n') };
    };
    const a = cluster('a');
    for (const [ns, port] of [[a.gateway.namespace, 9090], [a.gateway.namespace, 9091], [a.nodes[0]!.namespace, 9090]] as const) {
      const r = await get(ns, port, '/readyz');
      assert.equal(r.code, 200, `${ns}:${port} ready: ${r.body}`);
      assert.equal((await get(ns, port, '/healthz')).code, 200);
    }
    const m = (await get(a.gateway.namespace, 9090, '/metrics')).body;
    for (const remote of ['b', 'c']) {
      assert.match(m, new RegExp(`weft_peering_connected\\{[^}]*peering="${remote}"[^}]*\\} 1`), `peering ${remote} up in metrics`);
      assert.match(m, new RegExp(`weft_tunnel_bytes\\{[^}]*peering="${remote}"[^}]*direction="rx"[^}]*\\} [1-9]`));
    }
    assert.match(m, /weft_reconciles_total\{[^}]*piece="gateway"[^}]*result="ok"[^}]*\} [1-9]/);
    assert.match((await get(a.nodes[0]!.namespace, 9090, '/metrics')).body, /weft_reconcile_seconds_count\{[^}]*piece="agent"/);
  });

  test('IPAM: each remote is remapped away from local ranges and from every other remote', async () => {
    const { overlaps, parseCidr } = await import('../../src/ipam/index.ts');
    for (const c of st.clusters) {
      const mine = st.peerings.filter((p) => p.local === c.name).map((p) => p.seenAs);
      assert.equal(mine.length, 2);
      assert.ok(!overlaps(parseCidr(mine[0]!), parseCidr(mine[1]!)), `${c.name}: ${mine.join(' vs ')}`);
      for (const m of mine) for (const local of [c.podCIDR, c.serviceCIDR, c.nodeCIDR]) assert.ok(!overlaps(parseCidr(m), parseCidr(local)), `${c.name}: ${m} overlaps ${local}`);
    }
  });

  test('ICMP: every pod reaches every remote pod at its remapped address', async () => {
    const jobs: { from: Pod; to: string; label: string }[] = [];
    for (const x of st.clusters) for (const y of st.clusters) {
      if (x === y) continue;
      for (const p of x.pods) for (const q of y.pods) jobs.push({ from: p, to: seenFrom(x.name, y.name, q.ip), label: `${x.name}/${p.name} → ${y.name}/${q.name}` });
    }
    assert.equal(jobs.length, 96);
    const failed: string[] = [];
    await mapLimit(jobs, 8, async (j) => {
      const r = await inNs(j.from.namespace, ['ping', '-c', '1', '-W', '2', j.to], true);
      if (r.code !== 0) failed.push(`${j.label} (${j.to})`);
    });
    assert.deepEqual(failed, []);
  });

  test('TCP and UDP: the receiver sees the sender at the sender’s remapped address', async () => {
    const failed: string[] = [];
    const jobs: (() => Promise<void>)[] = [];
    for (const x of st.clusters) for (const y of st.clusters) {
      if (x === y) continue;
      const p = x.pods[0]!;
      for (const q of y.pods) for (const proto of ['tcp', 'udp']) {
        jobs.push(async () => {
          const r = await inNs(p.namespace, [nodeBin, echo, proto, seenFrom(x.name, y.name, q.ip), String(ECHO_PORT)], true);
          const expected = seenFrom(y.name, x.name, p.ip);
          if (r.code !== 0 || r.stdout.trim() !== expected) failed.push(`${proto} ${x.name}/${p.name} → ${y.name}/${q.name}: saw ${JSON.stringify(r.stdout.trim() || r.stderr.trim())}, want ${expected}`);
        });
      }
    }
    await mapLimit(jobs, 4, (j) => j());
    assert.deepEqual(failed, []);
  });

  test('MTU: bulk TCP crosses clusters (MSS clamped), DF packets fit the path MTU and larger ones are refused', async () => {
    const a = cluster('a').pods[0]!;
    const bPod = cluster('b').pods[1]!;
    const dst = seenFrom('a', 'b', bPod.ip);
    const server = spawn('ip', ['netns', 'exec', bPod.namespace, 'iperf3', '-s', '-1', '-p', '5299'], { stdio: 'ignore' });
    servers.push(server);
    await waitFor('iperf3 server listening', async () => (await inNs(bPod.namespace, ['ss', '-Htln', 'sport = :5299'], true)).stdout.trim() !== '', 10_000);
    const r = await inNs(a.namespace, ['iperf3', '-c', dst, '-p', '5299', '-t', '1', '-J']);
    const bps = JSON.parse(r.stdout).end.sum_received.bits_per_second as number;
    assert.ok(bps > 1e6, `bulk TCP across clusters: ${bps} bit/s`);
    // Path MTU: WAN 1500 − 60 (IPv4 + UDP + WireGuard) = 1440; pods still have MTU 1500.
    assert.equal((await inNs(a.namespace, ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1440 - 28), dst], true)).code, 0, 'a full-size DF packet fits');
    const big = await inNs(a.namespace, ['ping', '-c', '2', '-W', '1', '-M', 'do', '-s', String(1440 - 28 + 1), dst], true);
    assert.notEqual(big.code, 0, 'one byte more does not');
    assert.match(big.stdout + big.stderr, /mtu|too long|Frag needed/i, 'and the sender is told why (ICMP fragmentation needed)');
  });

  test('drift: a deleted route, rule and VXLAN link on a node come back within seconds', async () => {
    const node = cluster('a').nodes[0]!.namespace;
    const target = seenFrom('a', 'b', cluster('b').pods[0]!.ip);
    await run('ip', ['-n', node, 'route', 'del', remap('a', 'b'), 'table', '1800']);
    await waitFor('route back', async () => (await run('ip', ['-n', node, 'route', 'show', 'table', '1800'])).stdout.includes(remap('a', 'b')), 5000);
    await run('ip', ['-n', node, 'rule', 'del', 'priority', '1800']);
    await waitFor('rule back', async () => (await run('ip', ['-n', node, 'rule', 'show', 'priority', '1800'])).stdout.includes('1800'), 5000);
    await run('ip', ['-n', node, 'link', 'del', 'weft-vx']);
    await waitFor('link and traffic back', async () => (await inNs(cluster('a').pods[0]!.namespace, ['ping', '-c', '1', '-W', '1', target], true)).code === 0, 8000, 200);
  });

  test('restart: every process of cluster a killed and restarted; traffic resumes, allocations and kernel state unchanged', async () => {
    const ctx = loadLab(stateDir)!;
    const gw = cluster('a').gateway.namespace;
    const snapshot = async () => ({
      rules: (await run('ip', ['-n', gw, 'rule', 'show'])).stdout,
      tables: (await inNs(gw, ['nft', 'list', 'tables'])).stdout.split('\n').sort().join('\n'),
      links: (await run('ip', ['-n', gw, '-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0]).sort().join(' '),
      nodeRoutes: (await run('ip', ['-n', cluster('a').nodes[0]!.namespace, 'route', 'show', 'table', '1800'])).stdout,
    });
    const before = await snapshot();
    const remapsBefore = st.peerings.filter((p) => p.local === 'a').map((p) => `${p.remote}=${p.seenAs}`).sort();
    const pids = ctx.state.extra['pids-a'] as Record<string, number>;
    for (const [, pid] of Object.entries(pids)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    // `ip netns exec` execs node, so the recorded pid is the process itself.
    // Gone: no such process, or a zombie nobody has reaped yet (it holds nothing any more).
    const alive = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    await waitFor('the killed processes gone', () => !Object.values(pids).some(alive), 10_000);
    for (const role of Object.keys(pids) as Role[]) startProcess(ctx, 'a', role);
    await waitConnected(stateDir, 'a', 'b', 30_000);
    await waitConnected(stateDir, 'a', 'c', 30_000);
    const target = seenFrom('a', 'c', cluster('c').pods[1]!.ip);
    await waitFor('traffic a→c', async () => (await inNs(cluster('a').pods[1]!.namespace, ['ping', '-c', '1', '-W', '1', target], true)).code === 0, 10_000, 200);
    st = await status();
    assert.deepEqual(st.peerings.filter((p) => p.local === 'a').map((p) => `${p.remote}=${p.seenAs}`).sort(), remapsBefore, 'allocations survive restarts');
    const afterState = await snapshot();
    assert.equal(afterState.rules, before.rules, 'no duplicate or stray rules');
    assert.equal(afterState.tables, before.tables);
    assert.equal(afterState.links, before.links, 'same links (tunnels recreated, none duplicated)');
    assert.equal(afterState.nodeRoutes, before.nodeRoutes);
  });

  test('bad input: invalid peerings are refused with a reason, and the kernel does not change', async () => {
    const gw = cluster('a').gateway.namespace;
    const tablesBefore = (await inNs(gw, ['nft', 'list', 'ruleset'])).stdout;
    const h = clusterHandle(stateDir, 'a');
    try {
      const base = (await h.store.get<Resource<Record<string, unknown>>>(Kinds.Peering, 'b'))!.spec;
      const cases: [string, Record<string, unknown>, RegExp][] = [
        ['x1', { ...base, remoteClusterId: 'x1', remotePodCIDR: '10.0.0.1/16' }, /remotePodCIDR 10\.0\.0\.1\/16/],
        ['x2', { ...base, remoteClusterId: 'x2', remotePublicKey: 'not-a-key' }, /remotePublicKey/],
        ['duplicate', { ...base }, /already connects to cluster b/],
        ['x3', { ...base, remoteClusterId: 'x3', remoteExternalCIDR: base.remotePodCIDR }, /overlap/i],
        ['x4', { ...base, remoteClusterId: 'x4', presharedKeySecretRef: { name: 'nope' } }, /Secret nope does not exist/],
        ['x5', { ...base, remoteClusterId: 'x5', remotePodCIDR: '8.0.0.0/8' }, /8\.0\.0\.0\/8 is larger than this cluster accepts/],
        ['x6', { ...base, remoteClusterId: 'x6', remoteGatewayNodeIP: '198.51.100.7' }, /remoteGatewayNodeIP 198\.51\.100\.7 is not in remoteNodeCIDRs\[0\]/],
        ['hijack', { ...base, remoteClusterId: 'c' }, /named after its remote cluster: name hijack but remoteClusterId c/],
      ];
      for (const [name, spec] of cases) await h.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name }, spec });
      for (const [name, , reason] of cases) {
        const s = await waitFor(`status of ${name}`, async () => {
          const p = await h.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, name);
          return p?.status?.phase === 'Error' ? p.status : undefined;
        }, 10_000);
        assert.match(s!.message ?? '', reason, `${name}: ${s!.message}`);
        assert.ok(!(await h.store.get(Kinds.FabricPeer, name)), `${name}: nothing for the data plane`);
      }
      const status = (await lab('status')).stdout;
      assert.match(status, /x1/);
      await sleep(2500); // two gateway resyncs
      assert.equal((await inNs(gw, ['nft', 'list', 'ruleset'])).stdout, tablesBefore, 'kernel unchanged');
      for (const [name] of cases) await h.store.delete(Kinds.Peering, name);
      await waitFor('refused peerings gone', async () => (await h.store.list(Kinds.Peering)).items.length === 2, 10_000);
    } finally {
      await h.store.close();
    }
  });

  test('a remote pod CIDR inside our service range is remapped away from it; a wrong public key is reported as HandshakeFailed', async () => {
    const { overlaps, parseCidr } = await import('../../src/ipam/index.ts');
    const { generatePrivateKey, publicKeyOf } = await import('../../src/wireguard/crypto.ts');
    const h = clusterHandle(stateDir, 'a');
    try {
      const base = (await h.store.get<Resource<Record<string, unknown>>>(Kinds.Peering, 'b'))!.spec;
      const strangerKey = Buffer.from(publicKeyOf(generatePrivateKey())).toString('base64');
      await h.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name: 'svc' }, spec: {
        ...base, remoteClusterId: 'svc', remotePodCIDR: '10.96.0.0/16', remoteExternalCIDR: '10.250.0.0/24', remotePublicKey: strangerKey,
        remoteEndpoint: { host: (base.remoteEndpoint as { host: string }).host, port: 51899 },
      } });
      const accepted = await waitFor('svc accepted with a remap', async () => (await h.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, 'svc'))?.status?.podCIDRRemap, 10_000);
      assert.ok(!overlaps(parseCidr(accepted!), parseCidr(cluster('a').serviceCIDR)), `remap ${accepted} avoids the service range`);
      const failed = await waitFor('HandshakeFailed', async () => {
        const st = (await h.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, 'svc'))?.status;
        return st?.phase === 'Error' ? st : undefined;
      }, 30_000, 250);
      assert.equal(failed!.reason, 'HandshakeFailed');
      assert.match(failed!.message ?? '', /no WireGuard handshake/);
      await h.store.delete(Kinds.Peering, 'svc');
      await waitFor('svc gone', async () => !(await h.store.get(Kinds.Peering, 'svc')), 10_000);
    } finally {
      await h.store.close();
    }
  });

  test('a preshared key from a Secret: both tunnel ends hold the same key and traffic flows', async () => {
    await lab('unpeer', 'a', 'c');
    const out = await lab('peer', 'a', 'c', '--preshared-key');
    assert.match(out.stdout, /peered a and c, connected/);
    const rows = (await status()).peerings;
    const psk = async (local: string, remote: string) => {
      const gw = cluster(local).gateway.namespace;
      const ifname = rows.find((p) => p.local === local && p.remote === remote)!.interfaceName!;
      return (await inNs(gw, ['wg', 'show', ifname, 'preshared-keys'])).stdout.trim().split(/\s+/)[1];
    };
    const [ka, kc] = [await psk('a', 'c'), await psk('c', 'a')];
    assert.ok(ka && ka !== '(none)', `a's tunnel to c has a preshared key: ${ka}`);
    assert.equal(ka, kc, 'both ends hold the same key');
    st = await status();
    const target = seenFrom('a', 'c', cluster('c').pods[1]!.ip);
    assert.equal((await inNs(cluster('a').pods[0]!.namespace, ['ping', '-c', '1', '-W', '2', target], true)).code, 0);
  });

  test('weft peer/unpeer across two stores, and the declarative path: weft announce manifests exchanged and applied', async (t) => {
    const { default: YAML } = await import('yaml');
    const storeOf = (c: string) => path.join(stateDir, 'clusters', c, 'store');
    const cli = (...args: string[]) => run(weft, args, { timeoutMs: 60_000 });
    const pingBC = async () => (await inNs(cluster('b').pods[0]!.namespace, ['ping', '-c', '1', '-W', '2', seenFrom('b', 'c', cluster('c').pods[0]!.ip)], true)).code;
    assert.match((await cli('unpeer', '--store', storeOf('b'), '--remote-store', storeOf('c'))).stdout, /unpeered/);
    st = await status();
    assert.ok(!st.peerings.some((p) => p.local === 'b' && p.remote === 'c'));
    assert.match((await cli('peer', '--store', storeOf('b'), '--remote-store', storeOf('c'))).stdout, /peered, connected,/);
    st = await status();
    assert.equal(await pingBC(), 0);
    await cli('unpeer', '--store', storeOf('b'), '--remote-store', storeOf('c'));
    // Declarative: each side prints a manifest, the other applies it; a second round carries ports.
    const exchange = async () => {
      const forC = YAML.parse((await cli('announce', '--store', storeOf('b'), '--remote-id', 'c')).stdout);
      const forB = YAML.parse((await cli('announce', '--store', storeOf('c'), '--remote-id', 'b')).stdout);
      assert.equal(forC.kind, 'Peering');
      assert.equal(forC.metadata.name, 'b');
      for (const [c, m] of [['c', forC], ['b', forB]] as const) {
        const h = clusterHandle(stateDir, c);
        try {
          await h.store.apply({ kind: m.kind, apiVersion: m.apiVersion, metadata: { name: m.metadata.name }, spec: m.spec });
        } finally {
          await h.store.close();
        }
      }
      return [forC.spec.remoteEndpoint.port, forB.spec.remoteEndpoint.port];
    };
    assert.deepEqual(await exchange(), [0, 0], 'first round: no tunnel ports allocated yet');
    // Both controllers accept, both gateways listen: each side's Peering then reports its port.
    const t0 = Date.now();
    for (const [local, remote] of [['b', 'c'], ['c', 'b']] as const) {
      const h = clusterHandle(stateDir, local);
      try {
        await waitFor(`${local}: tunnel port for ${remote}`, async () => ((await h.store.get<Resource<unknown, PeeringStatus>>(Kinds.Peering, remote))?.status?.localEndpoint?.port ?? 0) > 0, 20_000, 100);
      } finally {
        await h.store.close();
      }
    }
    t.diagnostic(`both tunnel ports known ${Date.now() - t0} ms after the first exchange`);
    const ports = await exchange();
    assert.ok(ports.every((p) => p > 0), `second round carries the ports: ${ports}`);
    await waitConnected(stateDir, 'b', 'c', 20_000);
    st = await status();
    assert.equal(await pingBC(), 0);
  });

  test('unpeer a b removes every route, rule, nft table and tunnel of that peering on both sides', async () => {
    const before = { a: remap('a', 'b'), b: remap('b', 'a') };
    const rows = (await status()).peerings;
    const tunnel = (local: string, remote: string) => rows.find((p) => p.local === local && p.remote === remote)?.interfaceName;
    const tunnels = { a: tunnel('a', 'b'), b: tunnel('b', 'a') };
    assert.ok(tunnels.a && tunnels.b, `lab status names the tunnels: ${JSON.stringify(rows)}`);
    await lab('unpeer', 'a', 'b');
    for (const [local, remote] of [['a', 'b'], ['b', 'a']] as const) {
      const gw = cluster(local).gateway.namespace;
      await waitFor(`${local}: tunnel to ${remote} gone`, async () => {
        const links = (await run('ip', ['-n', gw, '-o', 'link', 'show'])).stdout;
        const tables = (await inNs(gw, ['nft', 'list', 'tables'])).stdout;
        return !links.includes(`${tunnels[local]}:`) && !tables.includes(`weft_${remote}`);
      }, 10_000);
      const node = cluster(local).nodes[0]!.namespace;
      await waitFor(`${local}: node routes to ${remote} gone`, async () => !(await run('ip', ['-n', node, 'route', 'show', 'table', '1800'])).stdout.includes(before[local]), 5000);
      const rules = (await run('ip', ['-n', gw, 'rule', 'show'])).stdout.split('\n').filter((l) => l.includes('lookup 19'));
      assert.equal(rules.length, 1, `${local}: only the other peering's rule is left: ${rules.join(' | ')}`);
    }
    // The other peerings still carry traffic.
    const target = seenFrom('a', 'c', cluster('c').pods[0]!.ip);
    assert.equal((await inNs(cluster('a').pods[0]!.namespace, ['ping', '-c', '1', '-W', '2', target], true)).code, 0);
  });
});
