import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate } from '../../src/ipam/translate.ts';
import { IpamError } from '../../src/ipam/errors.ts';

function rejects(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof IpamError && err.reason === reason);
}

test('translate keeps the host bits (the example from DESIGN.md)', () => {
  assert.equal(translate('10.70.2.7', '10.70.0.0/16', '10.0.0.0/16'), '10.0.2.7');
  assert.equal(translate('10.0.1.5', '10.0.0.0/16', '10.71.0.0/16'), '10.71.1.5');
});

test('translate with several prefix lengths', () => {
  const cases: Array<[string, string, string, string]> = [
    ['10.1.2.3', '10.0.0.0/8', '11.0.0.0/8', '11.1.2.3'],
    ['10.0.255.255', '10.0.0.0/16', '172.20.0.0/16', '172.20.255.255'],
    ['10.0.0.0', '10.0.0.0/16', '172.20.0.0/16', '172.20.0.0'],
    ['10.3.200.9', '10.0.0.0/14', '10.4.0.0/14', '10.7.200.9'],
    ['192.168.1.77', '192.168.1.0/24', '10.9.8.0/24', '10.9.8.77'],
    ['10.0.0.13', '10.0.0.12/30', '172.16.0.0/30', '172.16.0.1'],
    ['10.0.0.5', '10.0.0.5/32', '10.9.9.9/32', '10.9.9.9'],
    ['255.255.255.254', '255.255.255.0/24', '0.0.0.0/24', '0.0.0.254'],
    ['1.2.3.4', '0.0.0.0/0', '0.0.0.0/0', '1.2.3.4'],
    ['10.96.17.3', '10.96.0.0/12', '100.64.0.0/12', '100.64.17.3'],
    ['10.111.255.255', '10.96.0.0/12', '100.64.0.0/12', '100.79.255.255'],
  ];
  for (const [address, from, to, want] of cases) {
    assert.equal(translate(address, from, to), want, `${address} ${from} -> ${to}`);
    // And back again.
    assert.equal(translate(want, to, from), address, `${want} ${to} -> ${from}`);
  }
});

test('translate rejects mismatched lengths, addresses outside the prefix and bad input', () => {
  rejects(() => translate('10.0.0.1', '10.0.0.0/16', '10.1.0.0/24'), 'PrefixLengthMismatch');
  rejects(() => translate('10.1.0.1', '10.0.0.0/16', '10.2.0.0/16'), 'AddressOutsidePrefix');
  rejects(() => translate('9.255.255.255', '10.0.0.0/8', '11.0.0.0/8'), 'AddressOutsidePrefix');
  rejects(() => translate('10.0.0.1', '10.0.0.1/16', '10.2.0.0/16'), 'InvalidCIDR');
  rejects(() => translate('10.0.0', '10.0.0.0/16', '10.2.0.0/16'), 'InvalidCIDR');
  rejects(() => translate('10.0.0.1/32', '10.0.0.0/16', '10.2.0.0/16'), 'InvalidCIDR');
  rejects(() => translate('fd00::1', 'fd00::/64', 'fd01::/64'), 'Unsupported');
});
