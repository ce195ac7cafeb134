import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  LabError,
  labIdOfNamespace,
  planBuild,
  planTopology,
  resolveTarget,
  splitPodCIDR,
  topologyNamespaces,
  wireguardInterfacePrefix,
  type LabTopology,
} from '../../src/lab/topology.ts';
import {
  MARKER_FILE,
  STATE_FILE,
  claimStateDir,
  clearStateDir,
  createLabState,
  newLabState,
  readLabState,
  recordSockets,
  updateLabState,
  validateLabState,
} from '../../src/lab/state.ts';

test('default topology: names, addresses, alternating styles, overlapping pod CIDRs', () => {
  const t = planTopology({ id: 'x1', clusters: 3 });
  assert.equal(t.prefix, 'wlx1-');
  assert.equal(t.wanNamespace, 'wlx1-wan');
  assert.deepEqual(t.clusters.map((c) => [c.name, c.style, c.podCIDR, c.gateway.wanIP]), [
    ['a', 'bridge', '10.0.0.0/16', '203.0.113.1'],
    ['b', 'routed', '10.0.0.0/16', '203.0.113.2'],
    ['c', 'bridge', '10.0.0.0/16', '203.0.113.3'],
  ]);
  const b = t.clusters[1]!;
  assert.equal(b.switchNamespace, 'wlx1-b-sw');
  assert.equal(b.gateway.namespace, 'wlx1-b-gw');
  assert.equal(b.gateway.underlayIP, '192.168.100.254');
  assert.equal(b.serviceCIDR, '10.96.0.0/12');
  assert.deepEqual(b.nodes.map((n) => [n.name, n.namespace, n.ip, n.podCIDR]), [
    ['n1', 'wlx1-b-n1', '192.168.100.11', '10.0.1.0/24'],
    ['n2', 'wlx1-b-n2', '192.168.100.12', '10.0.2.0/24'],
  ]);
  const pods = b.nodes.flatMap((n) => n.pods);
  assert.deepEqual(pods.map((p) => [p.name, p.namespace, p.ip, p.cidr, p.gateway]), [
    ['n1-p1', 'wlx1-b-n1-p1', '10.0.1.11', '10.0.1.11/32', '169.254.1.1'],
    ['n1-p2', 'wlx1-b-n1-p2', '10.0.1.12', '10.0.1.12/32', '169.254.1.1'],
    ['n2-p1', 'wlx1-b-n2-p1', '10.0.2.11', '10.0.2.11/32', '169.254.1.1'],
    ['n2-p2', 'wlx1-b-n2-p2', '10.0.2.12', '10.0.2.12/32', '169.254.1.1'],
  ]);
  const a1 = t.clusters[0]!.nodes[0]!.pods[0]!;
  assert.deepEqual([a1.cidr, a1.gateway, a1.hostInterface], ['10.0.1.11/24', '10.0.1.1', 'veth-p1']);
  assert.equal(topologyNamespaces(t).length, 1 + 3 * (2 + 2 + 4));
  assert.equal(new Set(topologyNamespaces(t)).size, topologyNamespaces(t).length);
  for (const ns of topologyNamespaces(t)) assert.equal(labIdOfNamespace(ns), 'x1', ns);
});

test('styles option picks per cluster, cycling', () => {
  const t = planTopology({ id: 's', clusters: 3, styles: ['routed'] });
  assert.deepEqual(t.clusters.map((c) => c.style), ['routed', 'routed', 'routed']);
  const u = planTopology({ id: 's', clusters: 4, styles: ['routed', 'bridge', 'bridge'] });
  assert.deepEqual(u.clusters.map((c) => c.style), ['routed', 'bridge', 'bridge', 'routed']);
});

test('pod CIDR split: /24 blocks from block 1, equal smaller blocks when the pool is small', () => {
  assert.deepEqual(splitPodCIDR('10.0.0.0/16', 3), ['10.0.1.0/24', '10.0.2.0/24', '10.0.3.0/24']);
  assert.deepEqual(splitPodCIDR('10.244.0.0/16', 1), ['10.244.1.0/24']);
  assert.deepEqual(splitPodCIDR('172.16.0.0/22', 3), ['172.16.1.0/24', '172.16.2.0/24', '172.16.3.0/24']);
  assert.deepEqual(splitPodCIDR('172.16.0.0/22', 4), ['172.16.0.128/25', '172.16.1.0/25', '172.16.1.128/25', '172.16.2.0/25']);
  assert.deepEqual(splitPodCIDR('10.1.2.0/24', 2), ['10.1.2.64/26', '10.1.2.128/26']);
  assert.throws(() => splitPodCIDR('10.1.2.0/29', 3), LabError);
  // the plan uses the blocks; pods fit the smaller blocks
  const t = planTopology({ id: 'p', podCIDR: '10.1.2.0/24', nodesPerCluster: 2, podsPerNode: 3 });
  const n2 = t.clusters[0]!.nodes[1]!;
  assert.equal(n2.podCIDR, '10.1.2.128/26');
  assert.deepEqual(n2.pods.map((p) => p.cidr), ['10.1.2.139/26', '10.1.2.140/26', '10.1.2.141/26']);
  assert.equal(t.clusters[1]!.nodes[1]!.pods[0]!.cidr, '10.1.2.139/32');
});

test('bad options are rejected with a reason', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ id: 'Bad' }, /lab id/],
    [{ id: 'toolongid9' }, /lab id/],
    [{ id: 'x', clusters: 0 }, /clusters/],
    [{ id: 'x', clusters: 27 }, /clusters/],
    [{ id: 'x', nodesPerCluster: 2.5 }, /nodes per cluster/],
    [{ id: 'x', podCIDR: '10.96.0.0/16' }, /overlaps the service CIDR/],
    [{ id: 'x', podCIDR: '192.168.0.0/16' }, /overlaps the node network/],
    [{ id: 'x', podCIDR: '10.0.0.1/16' }, /host bits/],
    [{ id: 'x', podCIDR: '10.0.0.0/26', podsPerNode: 20 }, /do not fit/],
    [{ id: 'x', styles: ['vxlan'] }, /unknown pod-network style/],
    [{ id: 'x', styles: [] }, /style/],
    [{ id: 'x', wanMtu: 100 }, /WAN MTU/],
  ];
  for (const [opts, re] of bad) {
    assert.throws(() => planTopology(opts as { id: string }), (e: unknown) => e instanceof LabError && re.test(e.message), JSON.stringify(opts));
  }
});

test('exec targets and namespace names', () => {
  const t = planTopology({ id: 'q7' });
  assert.equal(resolveTarget(t, 'a/n1-p2'), 'wlq7-a-n1-p2');
  assert.equal(resolveTarget(t, 'b/n2'), 'wlq7-b-n2');
  assert.equal(resolveTarget(t, 'a/gw'), 'wlq7-a-gw');
  assert.equal(resolveTarget(t, 'b/sw'), 'wlq7-b-sw');
  assert.equal(resolveTarget(t, 'wan'), 'wlq7-wan');
  assert.equal(resolveTarget(t, 'wlq7-b-n1-p1'), 'wlq7-b-n1-p1');
  assert.equal(resolveTarget(t, 'c/n1'), undefined);
  assert.equal(resolveTarget(t, 'a/n3'), undefined);
  assert.equal(resolveTarget(t, 'a/n1-p3'), undefined);
  assert.equal(resolveTarget(t, 'nonsense'), undefined);
  assert.equal(labIdOfNamespace('wlab12-a-n10-p3'), 'ab12');
  assert.equal(labIdOfNamespace('wlab12-wan'), 'ab12');
  for (const n of ['wlab12', 'wlab12-', 'wlab12-a-n0', 'wlab12-aa-sw', 'wlab12-a-n1-p', 'wt-ab-a-n1', 'wlAB-wan', 'wlab12-a-sw2', 'wlan0-foo']) {
    assert.equal(labIdOfNamespace(n), undefined, n);
  }
  const wg = wireguardInterfacePrefix('abcdefgh', 'z');
  assert.equal(wg, 'wlabcdefgh-z');
  assert.ok(wg.length <= 12, 'room for a three-digit slot within 15 characters');
});

/**
 * Replays a build plan against a model of the namespaces' interfaces: every interface is created
 * once per namespace, referenced only after it exists (created in an earlier stage, or earlier in
 * the same step), links only reach namespaces of the lab, and each namespace has at most one step
 * per stage (steps of a stage run in parallel).
 */
function replay(t: LabTopology): Map<string, Set<string>> {
  const plan = planBuild(t);
  const all = new Set(plan.namespaces);
  const ifs = new Map<string, Set<string>>([...all].map((n) => [n, new Set(['lo'])]));
  const configured = new Set<string>();
  for (const phase of plan.phases) {
    for (const stage of phase.stages) {
      const seen = new Set<string>();
      const pending: Array<[string, string]> = [];
      for (const step of stage) {
        assert.ok(all.has(step.namespace), `step in unknown namespace ${step.namespace}`);
        assert.ok(!seen.has(step.namespace), `two steps for ${step.namespace} in one stage`);
        seen.add(step.namespace);
        configured.add(step.namespace);
        const local = new Set(ifs.get(step.namespace)!);
        for (const line of step.ip) {
          const add = /^link add (\S+)(?: mtu \d+)? type (bridge|veth)(?: peer name (\S+)(?: mtu \d+)? netns (\S+))?$/.exec(line);
          if (add) {
            const [, name, kind, peer, peerNs] = add;
            assert.ok(name!.length <= 15, `interface name too long: ${name}`);
            assert.ok(!local.has(name!), `${name} created twice in ${step.namespace}`);
            local.add(name!);
            ifs.get(step.namespace)!.add(name!);
            if (kind === 'veth') {
              assert.ok(peer && peerNs && all.has(peerNs), `veth ${name} to a namespace outside the lab: ${line}`);
              assert.notEqual(peerNs, step.namespace);
              assert.ok(peer!.length <= 15);
              assert.ok(!ifs.get(peerNs!)!.has(peer!), `${peer} created twice in ${peerNs}`);
              pending.push([peerNs!, peer!]);
            }
            continue;
          }
          for (const m of line.matchAll(/(?:dev|master) (\S+)/g)) assert.ok(local.has(m[1]!), `${step.namespace}: "${line}" uses ${m[1]} before it exists`);
          const set = /^link set (\S+)/.exec(line);
          if (set) assert.ok(local.has(set[1]!), `${step.namespace}: "${line}" before ${set[1]} exists`);
        }
        for (const [k] of step.sysctl) {
          const dev = /^net\.ipv4\.(?:conf|neigh)\.([^.]+)\./.exec(k)?.[1];
          if (dev && dev !== 'all' && dev !== 'default') assert.ok(local.has(dev), `${step.namespace}: sysctl ${k} before ${dev} exists`);
        }
      }
      // Far ends appear once the stage is over (a parallel step may not rely on them).
      for (const [ns, name] of pending) ifs.get(ns)!.add(name);
    }
  }
  for (const ns of all) assert.ok(configured.has(ns), `${ns} is never configured`);
  return ifs;
}

test('build plan: unique interfaces per namespace, created before use, links stay inside the lab', () => {
  for (const opts of [{ id: 'u' }, { id: 'v', clusters: 4, nodesPerCluster: 3, podsPerNode: 5 }, { id: 'w', clusters: 1, nodesPerCluster: 1, podsPerNode: 0 }]) {
    const t = planTopology(opts);
    const ifs = replay(t);
    assert.deepEqual([...ifs.get(t.wanNamespace)!].sort(), ['br0', ...t.clusters.map((c) => `gw-${c.name}`), 'lo'].sort());
    for (const c of t.clusters) {
      assert.deepEqual([...ifs.get(c.gateway.namespace)!].sort(), ['eth0', 'lo', 'wan0']);
      for (const n of c.nodes) {
        const expect = ['lo', 'eth0', ...(c.style === 'bridge' ? ['cni0'] : []), ...n.pods.map((p) => p.hostInterface)];
        assert.deepEqual([...ifs.get(n.namespace)!].sort(), expect.sort());
        for (const p of n.pods) assert.deepEqual([...ifs.get(p.namespace)!].sort(), ['eth0', 'lo']);
      }
    }
  }
});

test('build plan: addresses, routes and sysctls per style', () => {
  const t = planTopology({ id: 'r', wanMtu: 1400 });
  const steps = planBuild(t).phases.flatMap((p) => p.stages.flat());
  const ipOf = (ns: string) => steps.filter((s) => s.namespace === ns).flatMap((s) => s.ip);
  const sysOf = (ns: string) => steps.filter((s) => s.namespace === ns).flatMap((s) => s.sysctl);
  // bridge node: cni0 holds .1, host-gw route to the other node's block
  const an1 = ipOf('wlr-a-n1');
  assert.ok(an1.includes('addr add 192.168.100.11/24 dev eth0'));
  assert.ok(an1.includes('addr add 10.0.1.1/24 dev cni0'));
  assert.ok(an1.includes('route add 10.0.2.0/24 via 192.168.100.12 dev eth0'));
  assert.ok(an1.includes('route add default via 192.168.100.1 dev eth0'));
  assert.ok(!an1.some((l) => l.includes('10.0.1.0/24 via')));
  assert.deepEqual(sysOf('wlr-a-n1'), [['net.ipv4.ip_forward', '1']]);
  assert.deepEqual(ipOf('wlr-a-n1-p2'), ['link set lo up', 'addr add 10.0.1.12/24 dev eth0', 'link set eth0 up', 'route add default via 10.0.1.1 dev eth0']);
  // routed node: /32 per pod, proxy ARP, blackhole for the rest of the block
  const bn2 = ipOf('wlr-b-n2');
  assert.ok(bn2.includes('route add 10.0.2.11/32 dev cali-p1 scope link'));
  assert.ok(bn2.includes('route add blackhole 10.0.2.0/24'));
  assert.ok(bn2.includes('route add 10.0.1.0/24 via 192.168.100.11 dev eth0'));
  assert.ok(!bn2.some((l) => /addr add .* dev cali/.test(l)), 'the node end of a routed pod veth has no address');
  assert.deepEqual(new Map(sysOf('wlr-b-n2')).get('net.ipv4.conf.cali-p2.proxy_arp'), '1');
  assert.deepEqual(ipOf('wlr-b-n2-p1').slice(1), [
    'addr add 10.0.2.11/32 dev eth0',
    'link set eth0 up',
    'route add 169.254.1.1 dev eth0 scope link',
    'route add default via 169.254.1.1 dev eth0',
  ]);
  // gateway and WAN
  assert.ok(ipOf('wlr-b-gw').includes('addr add 203.0.113.2/24 dev wan0'));
  assert.ok(ipOf('wlr-b-gw').includes('addr add 192.168.100.254/24 dev eth0'));
  assert.ok(ipOf('wlr-wan').includes('link add gw-b mtu 1400 type veth peer name wan0 mtu 1400 netns wlr-b-gw'));
  // nothing is ever aimed at the root namespace: every step names a lab namespace
  for (const s of steps) assert.equal(labIdOfNamespace(s.namespace), 'r');
});

test('state file round trip, exclusive create, locked update, marker-guarded clearing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-labstate-'));
  try {
    const sd = path.join(dir, 'state');
    const t = planTopology({ id: 'k9', clusters: 3, styles: ['routed', 'bridge'], podCIDR: '10.8.0.0/16' });
    claimStateDir(sd);
    assert.ok(fs.existsSync(path.join(sd, MARKER_FILE)));
    const s = newLabState(t.options, topologyNamespaces(t), new Date('2026-01-02T03:04:05Z'));
    createLabState(sd, s);
    const back = readLabState(sd)!;
    assert.deepEqual(back, s);
    assert.deepEqual(planTopology(back.options), t, 'the topology is recomputed from the stored options');
    assert.throws(() => createLabState(sd, s), /a lab \(id k9\) already exists/);
    const u = await updateLabState(sd, (x) => {
      x.phase = 'ready';
      x.extra.fabric = { pids: [1, 2] };
    });
    assert.equal(u.phase, 'ready');
    await recordSockets(sd, ['wlk9-ab', '/var/run/wireguard/wlk9-ba.sock', 'wlk9-ab']);
    const r = readLabState(sd)!;
    assert.deepEqual(r.sockets, ['/var/run/wireguard/wlk9-ab.sock', '/var/run/wireguard/wlk9-ba.sock']);
    assert.deepEqual(r.extra, { fabric: { pids: [1, 2] } });
    assert.equal(r.phase, 'ready');

    assert.throws(() => validateLabState({ ...r, version: 2 }), /version/);
    assert.throws(() => validateLabState({ ...r, namespaces: [1] }), /namespaces/);
    assert.throws(() => validateLabState({ ...r, options: { ...r.options, clusters: -1 } }), /options/);
    assert.throws(() => validateLabState([]), /object/);
    fs.writeFileSync(path.join(sd, STATE_FILE), '{oops');
    assert.throws(() => readLabState(sd), /not valid JSON/);

    fs.mkdirSync(path.join(sd, 'store'));
    fs.writeFileSync(path.join(sd, 'store', 'x'), 'y');
    assert.equal(clearStateDir(sd), true);
    assert.deepEqual(fs.readdirSync(sd), []);
    assert.equal(readLabState(sd), undefined);

    // a directory that is not the lab's is neither claimed nor emptied
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'precious'), '1');
    assert.throws(() => claimStateDir(other), /not a weft lab dir/);
    assert.equal(clearStateDir(other), false);
    assert.deepEqual(fs.readdirSync(other), ['precious']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
