// The CRD schemas (src/k8s/crds.ts) against the code they describe: structural, patterns that mean
// what the code's parsers mean, good objects accepted, bad values refused with the field named, and
// every object the real controller and peering code write accepted without a field pruned.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { CEL_TWINS, CRDS, pruneResource, schemaOf, validateResource } from '../../src/k8s/crds.ts';
import { DNS_LABEL, INTERFACE_NAME, IPV4, IPV4_CIDR, IPV6, WIREGUARD_KEY, numbersPattern } from '../../src/k8s/patterns.ts';
import { structuralProblems, unknownFields, validate, type FieldError } from '../../src/k8s/schema.ts';
import { parseCidr, parseIPv4 } from '../../src/ipam/cidr.ts';
import { parseBase64Key, toBase64 } from '../../src/wireguard/keys.ts';
import { generatePrivateKey, publicKeyOf } from '../../src/wireguard/crypto.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import type { Resource, Store } from '../../src/store/types.ts';
import { PeeringController, SLOT_BASE } from '../../src/control/controller.ts';
import { peerClusters, unpeerClusters } from '../../src/control/peering.ts';
import { derivePeeringStatus, patchStatus, setCondition } from '../../src/control/status.ts';
import { validatePeeringSpec } from '../../src/control/validate.ts';
import { API_VERSION, Kinds, type Condition, type ClusterNetworkSpec, type ClusterNetworkStatus, type FabricPeerSpec, type PeeringSpec, type PeeringStatus } from '../../src/control/resources.ts';
import { silentLogger } from '../../src/log.ts';

const key = () => toBase64(publicKeyOf(generatePrivateKey()));
const KEY_A = key();
const KEY_B = key();
const NOW = '2026-11-24T08:00:00.000Z';

function clusterNetwork(spec: Partial<ClusterNetworkSpec> = {}, status?: ClusterNetworkStatus) {
  return {
    apiVersion: API_VERSION,
    kind: Kinds.ClusterNetwork,
    metadata: { name: 'local' },
    spec: {
      clusterId: 'edge-1',
      podCIDR: '10.0.0.0/16',
      serviceCIDR: '10.96.0.0/12',
      nodeCIDRs: ['192.168.10.0/24'],
      fabricCIDR: '100.126.0.0/16',
      vxlanId: 4242,
      vxlanPort: 4789,
      gatewayEndpoint: { host: '203.0.113.10', port: 0 },
      gatewayNodeIP: '192.168.10.5',
      underlayMtu: 1500,
      wanMtu: 1500,
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

function peering(spec: Partial<PeeringSpec> = {}, status?: PeeringStatus, name = spec.remoteClusterId ?? 'cloud-2') {
  return {
    apiVersion: API_VERSION,
    kind: Kinds.Peering,
    metadata: { name, namespace: 'weft-system' },
    spec: {
      remoteClusterId: 'cloud-2',
      remotePodCIDR: '10.0.0.0/16',
      remoteExternalCIDR: '10.201.0.0/24',
      remoteNodeCIDRs: ['172.20.0.0/24'],
      remoteEndpoint: { host: '198.51.100.7', port: 51820 },
      remotePublicKey: KEY_B,
      remoteGatewayNodeIP: '172.20.0.9',
      ...spec,
    },
    ...(status ? { status } : {}),
  };
}

function fabricPeer(spec: Partial<FabricPeerSpec> = {}) {
  return {
    apiVersion: API_VERSION,
    kind: Kinds.FabricPeer,
    metadata: { name: spec.remoteClusterId ?? 'cloud-2', namespace: 'weft-system' },
    spec: {
      remoteClusterId: 'cloud-2',
      remotePodCIDR: '10.0.0.0/16',
      remoteExternalCIDR: '10.201.0.0/24',
      podCIDRRemap: '10.70.0.0/16',
      externalCIDRRemap: '10.202.0.0/24',
      interfaceName: 'wg-cloud-2',
      listenPort: 51820,
      remoteEndpoint: { host: '198.51.100.7', port: 51821 },
      remotePublicKey: KEY_B,
      slot: 0,
      mark: 0x1000,
      table: 1900,
      probeTarget: '10.202.0.9',
      ...spec,
    },
  };
}

const connectedStatus: PeeringStatus = {
  phase: 'Connected',
  podCIDRRemap: '10.70.0.0/16',
  externalCIDRRemap: '10.202.0.0/24',
  localEndpoint: { host: '203.0.113.10', port: 51820 },
  latencyMs: 0.412,
  lastHandshake: NOW,
  txBytes: 123456,
  rxBytes: 654321,
  conditions: [
    { type: 'Valid', status: 'True', reason: 'Accepted', message: 'remote pods reachable at 10.70.0.0/16', lastTransitionTime: NOW },
    { type: 'Connected', status: 'True', reason: 'ProbeSucceeded', message: 'probe answered in 0.412 ms', lastTransitionTime: NOW },
  ],
};

/** Set a value at a dotted path ("spec.remoteEndpoint.port", "spec.nodeCIDRs.0"); undefined deletes it. */
function mutate<T>(obj: T, path: string, value: unknown): T {
  const copy = structuredClone(obj) as Record<string, unknown>;
  const parts = path.split('.');
  let at: Record<string, unknown> = copy;
  for (const p of parts.slice(0, -1)) at = at[p] as Record<string, unknown>;
  const last = parts.at(-1)!;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy as T;
}

type AnyObject = { kind: string; [field: string]: unknown };
/** A condition as the API allows it (metav1.Condition also has observedGeneration, which weft does not write yet). */
const cond = (c: Condition & { observedGeneration?: number }): Condition => c;

function assertAccepted(obj: AnyObject, what = obj.kind): void {
  const errors = validateResource(obj);
  assert.deepEqual(errors.map((e) => e.message), [], `${what} should be accepted`);
  assert.deepEqual(unknownFields(schemaOf(obj.kind), obj), [], `${what}: no field may be pruned`);
}

function assertRejected(obj: AnyObject, field: string, what: string): FieldError[] {
  const errors = validateResource(obj);
  assert.ok(errors.length > 0, `${what} should be rejected`);
  assert.ok(
    errors.some((e) => e.field === field),
    `${what}: expected an error on ${field}, got ${errors.map((e) => e.message).join(' | ')}`,
  );
  return errors;
}

describe('CRD schemas', () => {
  it('are structural (what the API server requires before it accepts a CRD)', () => {
    for (const crd of CRDS) assert.deepEqual(structuralProblems(crd.spec.versions[0]!.schema.openAPIV3Schema), [], crd.metadata.name);
  });

  it('have a JavaScript twin for every CEL rule', () => {
    const walk = (s: unknown, out: string[]) => {
      if (Array.isArray(s)) s.forEach((x) => walk(x, out));
      else if (s && typeof s === 'object') {
        for (const [k, v] of Object.entries(s)) {
          if (k === 'x-kubernetes-validations') for (const r of v as { rule: string }[]) out.push(r.rule);
          else walk(v, out);
        }
      }
      return out;
    };
    const rules = walk(CRDS, []);
    assert.ok(rules.length >= 4);
    for (const r of rules) assert.ok(CEL_TWINS[r], `no twin for ${r}`);
  });

  it('name the conditions list a map keyed by type, with the metav1.Condition shape', () => {
    for (const crd of CRDS) {
      const status = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.status!;
      const c = status.properties!.conditions!;
      assert.equal(c['x-kubernetes-list-type'], 'map', crd.metadata.name);
      assert.deepEqual(c['x-kubernetes-list-map-keys'], ['type']);
      assert.deepEqual(c.items!.required, ['type', 'status', 'lastTransitionTime', 'reason', 'message']);
      assert.deepEqual(c.items!.properties!.status!.enum, ['True', 'False', 'Unknown']);
      assert.deepEqual(crd.spec.versions[0]!.subresources, { status: {} });
    }
  });
});

describe('patterns mean what the code means', () => {
  const accepts = (pattern: string, s: string) => new RegExp(pattern).test(s);
  const parses = (f: () => unknown) => {
    try {
      f();
      return true;
    } catch {
      return false;
    }
  };

  it('numbersPattern matches exactly its set', () => {
    const sets = [[0], [0, 128], [0, 64, 128, 192], Array.from({ length: 128 }, (_, i) => 2 * i), Array.from({ length: 256 }, (_, i) => i), [7, 70, 700, 77]];
    for (const set of sets) {
      const re = new RegExp(`^${numbersPattern(set)}$`);
      for (let n = 0; n < 1000; n++) assert.equal(re.test(String(n)), set.includes(n), `${n} in ${set.length} values`);
      assert.equal(re.test('00'), false);
      assert.equal(re.test('01'), false);
    }
  });

  it('IPV4_CIDR agrees with parseCidr (strict: no host bits, no leading zeros, length 0-32)', () => {
    const samples = new Set<string>(['0.0.0.0/0', '1.0.0.0/0', '10.0.0.0/8', '10.0.0.1/8', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0', '010.0.0.0/8', '10.0.0.0/08',
      '256.0.0.0/8', '10.0.0.0/16 ', ' 10.0.0.0/16', '10.0.0/16', '10.0.0.0.0/16', '255.255.255.255/32', '255.255.255.254/31', '255.255.255.255/31', 'a.b.c.d/8', '10.0.0.0/-1', '::/0', '10.0.0.0/16/16']);
    let seed = 0x9e3779b9;
    const rand = (n: number) => {
      // xorshift32: deterministic, and its low bits are as good as its high ones.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    for (let i = 0; i < 6000; i++) {
      const bits = rand(34);
      const octets = [rand(256), rand(256), rand(256), rand(256)];
      // Half of the samples are proper networks for their length.
      if (i % 2 === 0 && bits <= 32) {
        const value = octets.reduce((a, o) => a * 256 + o, 0);
        const size = 2 ** (32 - bits);
        const start = value - (value % size);
        octets.splice(0, 4, Math.floor(start / 2 ** 24) % 256, Math.floor(start / 2 ** 16) % 256, Math.floor(start / 256) % 256, start % 256);
      }
      samples.add(`${octets.join('.')}/${bits}`);
    }
    let accepted = 0;
    for (const s of samples) {
      const want = parses(() => parseCidr(s));
      assert.equal(accepts(IPV4_CIDR, s), want, `${JSON.stringify(s)}: parseCidr ${want ? 'accepts' : 'refuses'} it`);
      if (want) accepted++;
    }
    assert.ok(accepted > 2000, `enough valid samples (${accepted})`);
  });

  it('IPV4 agrees with parseIPv4', () => {
    const samples = ['0.0.0.0', '255.255.255.255', '256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4/32', '::1', 'a.b.c.d', '1..3.4', '192.168.10.5'];
    for (let i = 0; i < 300; i++) samples.push(`${i % 300}.${(i * 7) % 260}.${(i * 13) % 256}.${(i * 31) % 270}`);
    for (const s of samples) assert.equal(accepts(IPV4, s), parses(() => parseIPv4(s)), s);
  });

  it('IPV6 agrees with net.isIPv6 on addresses without an IPv4 tail or a zone', () => {
    const samples = ['::', '::1', '1::', '2001:db8::1', '2001:db8:0:0:0:0:0:1', '2001:db8::0:1', 'fe80::1:2:3:4:5:6', 'fe80::1:2:3:4:5:6:7', '1:2:3:4:5:6:7::', '1:2:3:4:5:6::7',
      '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '12345::', 'g::1', ':::', '2001:DB8::AbCd', '::ffff:1', '1:2:3:4:5:6:7::8'];
    const hex = ['0', '1', 'a', 'ff', 'beef', 'F00D'];
    for (let n = 1; n <= 9; n++) {
      for (let cut = -1; cut < n; cut++) {
        const groups = Array.from({ length: n }, (_, i) => hex[(i * 5 + n) % hex.length]!);
        samples.push(cut < 0 ? groups.join(':') : `${groups.slice(0, cut).join(':')}::${groups.slice(cut).join(':')}`);
      }
    }
    for (const s of samples) assert.equal(accepts(IPV6, s), net.isIPv6(s), s);
  });

  it('WIREGUARD_KEY is parseBase64Key and real public keys match it', () => {
    for (let i = 0; i < 50; i++) assert.ok(accepts(WIREGUARD_KEY, key()));
    for (const s of [KEY_A.slice(0, -1), KEY_A + '=', KEY_A.replace(/.=$/, 'B='), 'A'.repeat(44), Buffer.alloc(33).toString('base64'), Buffer.alloc(32).toString('hex')]) {
      assert.equal(accepts(WIREGUARD_KEY, s), parseBase64Key(s) !== null, s);
    }
  });

  it('DNS_LABEL is what validatePeeringSpec accepts as a cluster id', () => {
    for (const id of ['a', 'edge-1', 'a'.repeat(63), 'Edge', 'edge_1', '-edge', 'edge-', '1', 'edge.1', '']) {
      const codeOk = !validatePeeringSpec(peering({ remoteClusterId: id }).spec, undefined).some((p) => p.startsWith('remoteClusterId'));
      assert.equal(accepts(DNS_LABEL, id) && id.length <= 63, codeOk, id);
    }
    assert.ok(accepts(INTERFACE_NAME, 'wg-cloud_2') && !accepts(INTERFACE_NAME, 'wg.cloud') && !accepts(INTERFACE_NAME, '-wg'));
  });
});

describe('good objects are accepted', () => {
  it('ClusterNetwork, bare and with status', () => {
    assertAccepted(clusterNetwork());
    assertAccepted(
      clusterNetwork({ gatewayEndpoint: { host: '2001:db8::10', port: 51820 }, nodeCIDRs: ['192.168.10.0/24', '192.168.11.0/24'] }, {
        externalCIDR: '10.201.0.0/24',
        gatewayPublicKey: KEY_A,
        conditions: [{ type: 'Ready', status: 'True', reason: 'Allocated', message: 'external CIDR 10.201.0.0/24', lastTransitionTime: NOW }],
      }),
    );
  });

  it('Peering: just announced (port 0), connecting, connected, in error', () => {
    assertAccepted(peering({ remoteEndpoint: { host: '198.51.100.7', port: 0 } }));
    assertAccepted(peering({}, { phase: 'Connecting', reason: 'WaitingForRemote', message: 'the remote has not told us its tunnel port yet' }));
    assertAccepted(peering({}, connectedStatus));
    assertAccepted(peering({}, { phase: 'Error', reason: 'InvalidPeering', message: 'remotePublicKey is this cluster’s own gateway key', conditions: [cond({ type: 'Valid', status: 'False', reason: 'InvalidPeering', message: 'x', lastTransitionTime: NOW, observedGeneration: 3 })] }));
  });

  it('FabricPeer and IpamState', () => {
    assertAccepted(fabricPeer());
    assertAccepted(fabricPeer({ slot: 98, listenPort: 51918, mark: 0xffffffff, table: 65535, interfaceName: 'a'.repeat(15), remoteEndpoint: { host: '::1', port: 0 } }));
    assertAccepted({
      apiVersion: API_VERSION,
      kind: Kinds.IpamState,
      metadata: { name: 'local', namespace: 'weft-system' },
      spec: { snapshot: { version: 1, externalCIDR: null, peers: { 'cloud-2': { remotePodCIDR: '10.0.0.0/16', podRemap: '10.70.0.0/16', remoteExternalCIDR: null, externalRemap: null } } } },
    });
  });
});

describe('bad values are rejected at the API server', () => {
  const cases: [string, AnyObject, string][] = [
    // CIDRs and addresses
    ['pod CIDR with host bits', clusterNetwork({ podCIDR: '10.0.0.1/16' }), 'spec.podCIDR'],
    ['service CIDR with a leading zero', clusterNetwork({ serviceCIDR: '010.96.0.0/12' }), 'spec.serviceCIDR'],
    ['node CIDR without a length', clusterNetwork({ nodeCIDRs: ['192.168.10.0'] }), 'spec.nodeCIDRs[0]'],
    ['node CIDR that is IPv6', clusterNetwork({ nodeCIDRs: ['fd00::/64'] }), 'spec.nodeCIDRs[0]'],
    ['duplicate node CIDRs', clusterNetwork({ nodeCIDRs: ['192.168.10.0/24', '192.168.10.0/24'] }), 'spec.nodeCIDRs[1]'],
    ['no node CIDR', clusterNetwork({ nodeCIDRs: [] }), 'spec.nodeCIDRs'],
    ['fabric CIDR /33', clusterNetwork({ fabricCIDR: '100.126.0.0/33' }), 'spec.fabricCIDR'],
    ['gateway node IP out of range', clusterNetwork({ gatewayNodeIP: '192.168.10.256' }), 'spec.gatewayNodeIP'],
    ['gateway node IP that is a name', clusterNetwork({ gatewayNodeIP: 'node-1.example.com' }), 'spec.gatewayNodeIP'],
    ['endpoint host that is a name', clusterNetwork({ gatewayEndpoint: { host: 'gw.example.com', port: 51820 } }), 'spec.gatewayEndpoint.host'],
    ['endpoint host with garbage', peering({ remoteEndpoint: { host: '198.51.100.7; rm -rf /', port: 1 } }), 'spec.remoteEndpoint.host'],
    ['remote pod CIDR with host bits', peering({ remotePodCIDR: '10.0.3.0/16' }), 'spec.remotePodCIDR'],
    ['remap with host bits (status)', peering({}, { ...connectedStatus, podCIDRRemap: '10.70.0.1/16' }), 'status.podCIDRRemap'],
    ['external CIDR with host bits (status)', clusterNetwork({}, { externalCIDR: '10.201.0.7/24' }), 'status.externalCIDR'],
    ['probe target that is a CIDR', fabricPeer({ probeTarget: '10.202.0.9/32' }), 'spec.probeTarget'],
    // ports and numbers
    ['port 70000', peering({ remoteEndpoint: { host: '198.51.100.7', port: 70000 } }), 'spec.remoteEndpoint.port'],
    ['negative port', clusterNetwork({ gatewayEndpoint: { host: '203.0.113.10', port: -1 } }), 'spec.gatewayEndpoint.port'],
    ['fractional port', fabricPeer({ listenPort: 51820.5 }), 'spec.listenPort'],
    ['listen port 0', fabricPeer({ listenPort: 0 }), 'spec.listenPort'],
    ['local endpoint port 0 (status)', peering({}, { ...connectedStatus, localEndpoint: { host: '203.0.113.10', port: 0 } }), 'status.localEndpoint.port'],
    ['VXLAN port 0', clusterNetwork({ vxlanPort: 0 }), 'spec.vxlanPort'],
    ['VNI beyond 24 bits', clusterNetwork({ vxlanId: 0x1000000 }), 'spec.vxlanId'],
    ['underlay MTU too small for VXLAN', clusterNetwork({ underlayMtu: 600 }), 'spec.underlayMtu'],
    ['WAN MTU too small for WireGuard over IPv6', clusterNetwork({ wanMtu: 650 }), 'spec.wanMtu'],
    ['mark 0', fabricPeer({ mark: 0 }), 'spec.mark'],
    ['mark beyond 32 bits', fabricPeer({ mark: 2 ** 32 }), 'spec.mark'],
    ['kernel table 254', fabricPeer({ table: 254 }), 'spec.table'],
    ['the fabric table', fabricPeer({ table: 1800 }), 'spec.table'],
    ['slot 500', fabricPeer({ slot: 500 }), 'spec.slot'],
    ['negative latency', peering({}, { ...connectedStatus, latencyMs: -1 }), 'status.latencyMs'],
    // keys and names
    ['key one byte short', peering({ remotePublicKey: Buffer.alloc(31, 7).toString('base64') }), 'spec.remotePublicKey'],
    ['key with a non-canonical last character', peering({ remotePublicKey: KEY_B.replace(/.=$/, 'B=') }), 'spec.remotePublicKey'],
    ['key in hex', fabricPeer({ remotePublicKey: Buffer.alloc(32, 1).toString('hex') }), 'spec.remotePublicKey'],
    ['bad gateway key (status)', clusterNetwork({}, { gatewayPublicKey: 'not-a-key' }), 'status.gatewayPublicKey'],
    ['uppercase cluster id', clusterNetwork({ clusterId: 'Edge-1' }), 'spec.clusterId'],
    ['cluster id with a dot', peering({ remoteClusterId: 'cloud.2' }, undefined, 'cloud.2'), 'spec.remoteClusterId'],
    ['cluster id of 64 characters', clusterNetwork({ clusterId: 'a'.repeat(64) }), 'spec.clusterId'],
    ['interface name of 16 characters', fabricPeer({ interfaceName: 'wg-0123456789abc' }), 'spec.interfaceName'],
    ['interface name with a dot', fabricPeer({ interfaceName: 'wg.cloud' }), 'spec.interfaceName'],
    ['the fabric link as interface', fabricPeer({ interfaceName: 'weft-vx' }), 'spec.interfaceName'],
    // required fields and types
    ['no spec', mutate(peering(), 'spec', undefined), 'spec'],
    ['no remote public key', mutate(peering(), 'spec.remotePublicKey', undefined), 'spec.remotePublicKey'],
    ['null remote pod CIDR', mutate(peering(), 'spec.remotePodCIDR', null), 'spec.remotePodCIDR'],
    ['endpoint without port', mutate(peering(), 'spec.remoteEndpoint.port', undefined), 'spec.remoteEndpoint.port'],
    ['no gateway node IP', mutate(clusterNetwork(), 'spec.gatewayNodeIP', undefined), 'spec.gatewayNodeIP'],
    ['no snapshot', { apiVersion: API_VERSION, kind: Kinds.IpamState, metadata: { name: 'local' }, spec: {} }, 'spec.snapshot'],
    ['port as a string', peering({ remoteEndpoint: { host: '198.51.100.7', port: '51820' as unknown as number } }), 'spec.remoteEndpoint.port'],
    ['node CIDRs as a string', clusterNetwork({ nodeCIDRs: '192.168.10.0/24' as unknown as string[] }), 'spec.nodeCIDRs'],
    ['endpoint as a string', fabricPeer({ remoteEndpoint: '198.51.100.7:51820' as unknown as { host: string; port: number } }), 'spec.remoteEndpoint'],
    ['snapshot as a list', { apiVersion: API_VERSION, kind: Kinds.IpamState, metadata: { name: 'local' }, spec: { snapshot: [] } }, 'spec.snapshot'],
    ['byte counter as a float', peering({}, { ...connectedStatus, txBytes: 1.5 }), 'status.txBytes'],
    // status and conditions
    ['unknown phase', peering({}, { ...connectedStatus, phase: 'Up' as 'Connected' }), 'status.phase'],
    ['status without phase', peering({}, mutate(connectedStatus, 'phase', undefined)), 'status.phase'],
    ['condition status Maybe', peering({}, { ...connectedStatus, conditions: [{ type: 'Valid', status: 'Maybe' as 'True', reason: 'Accepted', message: '', lastTransitionTime: NOW }] }), 'status.conditions[0].status'],
    ['condition without reason', clusterNetwork({}, { conditions: [mutate({ type: 'Ready', status: 'True', reason: 'Allocated', message: '', lastTransitionTime: NOW }, 'reason', undefined)] }), 'status.conditions[0].reason'],
    ['condition reason with spaces', clusterNetwork({}, { conditions: [{ type: 'Ready', status: 'True', reason: 'all good', message: '', lastTransitionTime: NOW }] }), 'status.conditions[0].reason'],
    ['condition time that is not a time', clusterNetwork({}, { conditions: [{ type: 'Ready', status: 'True', reason: 'Allocated', message: '', lastTransitionTime: 'yesterday' }] }), 'status.conditions[0].lastTransitionTime'],
    ['two conditions of one type', peering({}, { ...connectedStatus, conditions: [connectedStatus.conditions![0]!, { ...connectedStatus.conditions![0]!, status: 'False' }] }), 'status.conditions[1]'],
    ['negative observedGeneration', clusterNetwork({}, { conditions: [cond({ type: 'Ready', status: 'True', reason: 'Allocated', message: '', lastTransitionTime: NOW, observedGeneration: -1 })] }), 'status.conditions[0].observedGeneration'],
    ['last handshake that is not a time', peering({}, { ...connectedStatus, lastHandshake: '1700000000' }), 'status.lastHandshake'],
    // names (CEL rules)
    ['a second ClusterNetwork', mutate(clusterNetwork(), 'metadata.name', 'other'), ''],
    ['a Peering not named after its remote', peering({}, undefined, 'to-cloud'), ''],
    ['a FabricPeer not named after its remote', mutate(fabricPeer(), 'metadata.name', 'other'), ''],
    ['an IpamState not named local', { apiVersion: API_VERSION, kind: Kinds.IpamState, metadata: { name: 'state' }, spec: { snapshot: {} } }, ''],
  ];
  for (const [what, obj, field] of cases) {
    it(what, () => {
      assertRejected(obj, field, what);
    });
  }

  it('report errors in the API server’s words', () => {
    const [e] = validateResource(peering({ remoteEndpoint: { host: '198.51.100.7', port: 70000 } }));
    assert.equal(e!.message, 'spec.remoteEndpoint.port: Invalid value: 70000: spec.remoteEndpoint.port in body should be less than or equal to 65535');
    const [r] = validateResource(mutate(peering(), 'spec.remotePublicKey', undefined));
    assert.equal(r!.message, 'spec.remotePublicKey: Required value');
    const [u] = validateResource(peering({}, { ...connectedStatus, phase: 'Up' as 'Connected' }));
    assert.equal(u!.message, 'status.phase: Unsupported value: "Up": supported values: "Connecting", "Connected", "Error"');
  });

  it('prune unknown fields (and the check sees them)', () => {
    const obj = mutate(peering(), 'spec.remoteEndpoint.zone', 'eth0');
    const dropped: string[] = [];
    const stored = pruneResource(obj, dropped);
    assert.deepEqual(dropped, ['spec.remoteEndpoint.zone']);
    assert.deepEqual(stored.spec, peering().spec);
    // The free-form snapshot keeps everything.
    const ipam = { apiVersion: API_VERSION, kind: Kinds.IpamState, metadata: { name: 'local' }, spec: { snapshot: { version: 9, anything: { deep: [1, null] } } } };
    assert.deepEqual(unknownFields(schemaOf(Kinds.IpamState), ipam), []);
  });

  it('validate() alone reports a rule without a twin when strict', () => {
    const errors = validate({ type: 'object', 'x-kubernetes-validations': [{ rule: 'self.x > 0' }] }, {}, { strictCel: true });
    assert.equal(errors.length, 1);
    assert.deepEqual(validate({ type: 'object', 'x-kubernetes-validations': [{ rule: 'self.x > 0' }] }, {}), []);
  });
});

describe('what the real code writes fits the schemas', () => {
  /** Every object in the store, validated and checked for fields the API server would prune. */
  async function checkStore(store: Store, label: string): Promise<number> {
    let n = 0;
    for (const kind of [Kinds.ClusterNetwork, Kinds.Peering, Kinds.FabricPeer, Kinds.IpamState]) {
      for (const obj of (await store.list<Resource>(kind)).items) {
        assertAccepted(obj as unknown as AnyObject, `${label} ${kind}/${obj.metadata.name}`);
        n++;
      }
    }
    return n;
  }

  /** What the gateway writes (src/gateway/gateway.ts): its key, the tunnel endpoint, probe results. */
  async function actAsGateway(store: Store, publicKey: string, endpointHost: string): Promise<void> {
    await patchStatus<ClusterNetworkStatus>(store, Kinds.ClusterNetwork, 'local', (s) => ({ ...s, gatewayPublicKey: publicKey }));
    for (const fp of (await store.list<Resource<FabricPeerSpec>>(Kinds.FabricPeer)).items) {
      const localEndpoint = { host: endpointHost, port: fp.spec.listenPort };
      await patchStatus<PeeringStatus>(store, Kinds.Peering, fp.spec.remoteClusterId, (s) =>
        s?.localEndpoint?.port === localEndpoint.port ? null : derivePeeringStatus({ ...(s ?? { phase: 'Connecting' }), localEndpoint }),
      );
    }
  }

  async function probeResult(store: Store, name: string, ok: boolean): Promise<void> {
    await patchStatus<PeeringStatus>(store, Kinds.Peering, name, (s) =>
      derivePeeringStatus({
        ...(s ?? { phase: 'Connecting' }),
        conditions: setCondition(s?.conditions, ok ? { type: 'Connected', status: 'True', reason: 'ProbeSucceeded', message: 'probe answered in 0.3 ms' } : { type: 'Connected', status: 'False', reason: 'HandshakeFailed', message: 'no WireGuard handshake in 16 s' }),
        txBytes: 1024,
        rxBytes: 2048,
        ...(ok ? { latencyMs: 0.3 } : {}),
        lastHandshake: new Date(1_800_000_000_000).toISOString(),
      }),
    );
  }

  it('controller, peering and gateway status writes on two clusters', async () => {
    const a = { store: new MemoryStore(), label: 'a' };
    const b = { store: new MemoryStore(), label: 'b' };
    const specA = clusterNetwork({ clusterId: 'site-a', gatewayEndpoint: { host: '203.0.113.1', port: 0 } }).spec;
    const specB = clusterNetwork({ clusterId: 'site-b', gatewayEndpoint: { host: '203.0.113.2', port: 0 } }).spec;
    await a.store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: specA });
    await b.store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: specB });
    const controllers = [new PeeringController(a.store, { log: silentLogger, resyncMs: 20 }), new PeeringController(b.store, { log: silentLogger, resyncMs: 20 })];
    controllers.forEach((c) => c.start());
    const gateways = setInterval(() => {
      void actAsGateway(a.store, KEY_A, '203.0.113.1');
      void actAsGateway(b.store, KEY_B, '203.0.113.2');
    }, 10);
    try {
      await peerClusters(a, b, { timeoutMs: 10_000 });
      await controllers[0]!.trigger();
      await controllers[1]!.trigger();
      await probeResult(a.store, 'site-b', true);
      await probeResult(b.store, 'site-a', false);
      // An invalid announcement the controller refuses (a key the API would have accepted, but it is ours).
      await a.store.apply({ kind: Kinds.Peering, apiVersion: API_VERSION, metadata: { name: 'site-c' }, spec: { ...peering({ remoteClusterId: 'site-c', remotePublicKey: KEY_A }).spec } });
      await controllers[0]!.trigger();
      const c = await a.store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, 'site-c');
      assert.equal(c?.status?.phase, 'Error');

      const fp = await a.store.get<Resource<FabricPeerSpec>>(Kinds.FabricPeer, 'site-b');
      assert.equal(fp?.spec.listenPort, SLOT_BASE.listenPort);
      const p = await a.store.get<Resource<PeeringSpec, PeeringStatus>>(Kinds.Peering, 'site-b');
      assert.equal(p?.status?.phase, 'Connected');
      assert.ok(p?.status?.localEndpoint && p.status.podCIDRRemap && p.spec.remoteEndpoint.port > 0);

      const n = (await checkStore(a.store, 'a')) + (await checkStore(b.store, 'b'));
      assert.ok(n >= 9, `checked ${n} objects`);
      await unpeerClusters(a, b, { timeoutMs: 10_000 });
      await checkStore(a.store, 'a after unpeer');
    } finally {
      clearInterval(gateways);
      controllers.forEach((c) => c.stop());
      await a.store.close();
      await b.store.close();
    }
  });

  it('IPAM refusing the cluster configuration still writes a valid status', async () => {
    const store = new MemoryStore();
    // Pod and service networks overlap: the controller reports Ready=False.
    await store.apply({ kind: Kinds.ClusterNetwork, apiVersion: API_VERSION, metadata: { name: 'local' }, spec: clusterNetwork({ serviceCIDR: '10.0.128.0/17' }).spec });
    const c = new PeeringController(store, { log: silentLogger });
    await c.reconcile();
    const cn = await store.get<Resource<ClusterNetworkSpec, ClusterNetworkStatus>>(Kinds.ClusterNetwork, 'local');
    assert.equal(cn?.status?.conditions?.[0]?.status, 'False');
    await checkStore(store, 'refused');
    await store.close();
  });
});
