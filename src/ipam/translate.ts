// Map an address from one prefix to another of the same length, keeping the host bits: what the
// gateway's nftables `dnat ip prefix to` / `snat ip prefix to` does to each packet. Used to tell a
// person (or a probe) which address a remote pod has on this side.
import { containsAddress, formatCidr, formatIPv4, parseCidr, parseIPv4 } from './cidr.ts';
import { IpamError } from './errors.ts';

export function translate(address: string, from: string, to: string): string {
  const addr = parseIPv4(address, 'address');
  const src = parseCidr(from, 'source prefix');
  const dst = parseCidr(to, 'target prefix');
  if (src.bits !== dst.bits) {
    throw new IpamError(
      'PrefixLengthMismatch',
      `cannot translate between ${formatCidr(src)} and ${formatCidr(dst)}: prefix lengths differ`,
    );
  }
  if (!containsAddress(src, addr)) {
    throw new IpamError('AddressOutsidePrefix', `${address} is not inside ${formatCidr(src)}`);
  }
  // The offset inside `src` is below the size of both prefixes, so the result stays inside `dst`.
  return formatIPv4(dst.start + (addr - src.start));
}
