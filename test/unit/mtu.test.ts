import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  endpointFamily,
  MIN_MTU,
  pathMtu,
  VXLAN_OVERHEAD_IPV4,
  vxlanMtu,
  WIREGUARD_OVERHEAD_IPV4,
  WIREGUARD_OVERHEAD_IPV6,
  wireguardMtu,
} from '../../src/gateway/mtu.ts';

test('overheads: VXLAN 20+8+8+14, WireGuard 20|40 + 8 + 16 + 16', () => {
  assert.equal(VXLAN_OVERHEAD_IPV4, 50);
  assert.equal(WIREGUARD_OVERHEAD_IPV4, 60);
  assert.equal(WIREGUARD_OVERHEAD_IPV6, 80);
});

test('VXLAN MTU for a standard and a jumbo underlay', () => {
  assert.equal(vxlanMtu(1500), 1450);
  assert.equal(vxlanMtu(9000), 8950);
  assert.equal(vxlanMtu(1450), 1400);
});

test('WireGuard MTU by WAN family; unknown counts as IPv6', () => {
  assert.equal(wireguardMtu(1500, 4), 1440);
  assert.equal(wireguardMtu(1500, 6), 1420); // wg-quick's default
  assert.equal(wireguardMtu(1500, undefined), 1420);
  assert.equal(wireguardMtu(1280, 6), 1200); // IPv6 minimum link
  assert.equal(wireguardMtu(9000, 4), 8940);
});

test('path MTU is the smaller of fabric and tunnel', () => {
  assert.equal(pathMtu({ underlayMtu: 1500, wanMtu: 1500 }, 4), 1440);
  assert.equal(pathMtu({ underlayMtu: 1500, wanMtu: 1500 }, 6), 1420);
  // Jumbo underlay: the WAN decides.
  assert.equal(pathMtu({ underlayMtu: 9000, wanMtu: 1500 }, 4), 1440);
  assert.equal(pathMtu({ underlayMtu: 9000, wanMtu: 1500 }, 6), 1420);
  // Jumbo everywhere: VXLAN (8950) vs WireGuard (8940 over IPv4, 8920 over IPv6).
  assert.equal(pathMtu({ underlayMtu: 9000, wanMtu: 9000 }, 4), 8940);
  assert.equal(pathMtu({ underlayMtu: 9000, wanMtu: 9000 }, 6), 8920);
  // A small underlay: the fabric decides.
  assert.equal(pathMtu({ underlayMtu: 1400, wanMtu: 1500 }, 4), 1350);
});

test('MTUs that leave less than the IPv4 minimum, or are not MTUs, are refused', () => {
  assert.equal(MIN_MTU, 576);
  assert.equal(vxlanMtu(626), 576);
  assert.throws(() => vxlanMtu(625), /below the IPv4 minimum of 576/);
  assert.equal(wireguardMtu(656, 6), 576);
  assert.throws(() => wireguardMtu(655, 6), /below the IPv4 minimum/);
  assert.throws(() => wireguardMtu(655, undefined), /IPv6 \(assumed\)/);
  assert.throws(() => vxlanMtu(1500.5), /not an MTU/);
  assert.throws(() => vxlanMtu(Number.NaN), /not an MTU/);
  assert.throws(() => wireguardMtu(70000, 4), /not an MTU/);
});

test('endpoint family from the host literal', () => {
  assert.equal(endpointFamily('203.0.113.1'), 4);
  assert.equal(endpointFamily('2001:db8::1'), 6);
  assert.equal(endpointFamily('[2001:db8::1]'), 6);
  assert.equal(endpointFamily('gw.example.com'), undefined);
  assert.equal(endpointFamily(''), undefined);
  assert.equal(endpointFamily(undefined), undefined);
});
