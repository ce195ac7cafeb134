// MTU arithmetic of the data path. A packet from a pod crosses, in order: the node's VXLAN link to
// the gateway (underlay MTU minus the VXLAN encapsulation), the WireGuard device of the peering
// (WAN MTU minus the WireGuard encapsulation), then the remote fabric. The largest inner packet that
// fits end to end (locally known part) is the smaller of the two.
//
//   VXLAN over IPv4 underlay:  outer IPv4 20 + UDP 8 + VXLAN header 8 + inner Ethernet 14 = 50
//   WireGuard over IPv4 WAN:   outer IPv4 20 + UDP 8 + data header 16 + Poly1305 tag 16  = 60
//   WireGuard over IPv6 WAN:   outer IPv6 40 + UDP 8 + data header 16 + Poly1305 tag 16  = 80
//
// (WireGuard's data header: type 4 + receiver index 4 + counter 8. Its padding to a multiple of 16
// is capped at the device MTU, so it never adds to the overhead.) 1500-byte links give
// 1450 / 1440 / 1420 — 1420 is wg-quick's default for the same reason.
//
// When the WAN family is unknown (the endpoint is a name, or not known yet), the IPv6 overhead is
// assumed: too small an MTU costs a little throughput, too large a one drops packets.
import net from 'node:net';

export const VXLAN_OVERHEAD_IPV4 = 20 + 8 + 8 + 14;
export const WIREGUARD_OVERHEAD_IPV4 = 20 + 8 + 16 + 16;
export const WIREGUARD_OVERHEAD_IPV6 = 40 + 8 + 16 + 16;
/** Every IPv4 host must accept 576-byte datagrams; no link of the fabric may be smaller. */
export const MIN_MTU = 576;
export const MAX_MTU = 65535;

export type WanFamily = 4 | 6 | undefined;

function checkLinkMtu(mtu: number, what: string): void {
  if (!Number.isInteger(mtu) || mtu < 1 || mtu > MAX_MTU) throw new RangeError(`${what} ${String(mtu)} is not an MTU (1-${MAX_MTU})`);
}

function checkResult(mtu: number, what: string, from: string): number {
  if (mtu < MIN_MTU) throw new RangeError(`${what} would be ${mtu} (from ${from}), below the IPv4 minimum of ${MIN_MTU}`);
  return mtu;
}

/** MTU of the VXLAN fabric link over an IPv4 underlay of MTU `underlayMtu`. */
export function vxlanMtu(underlayMtu: number): number {
  checkLinkMtu(underlayMtu, 'underlay MTU');
  return checkResult(underlayMtu - VXLAN_OVERHEAD_IPV4, 'the VXLAN MTU', `underlay MTU ${underlayMtu}`);
}

/** MTU of a WireGuard device whose WAN path has MTU `wanMtu`; unknown family counts as IPv6. */
export function wireguardMtu(wanMtu: number, family: WanFamily): number {
  checkLinkMtu(wanMtu, 'WAN MTU');
  const overhead = family === 4 ? WIREGUARD_OVERHEAD_IPV4 : WIREGUARD_OVERHEAD_IPV6;
  return checkResult(wanMtu - overhead, 'the WireGuard MTU', `WAN MTU ${wanMtu} over IPv${family ?? '6 (assumed)'}`);
}

/** Largest inner packet that crosses this cluster's fabric and a tunnel of WAN family `family`. */
export function pathMtu(cluster: { underlayMtu: number; wanMtu: number }, family: WanFamily): number {
  return Math.min(vxlanMtu(cluster.underlayMtu), wireguardMtu(cluster.wanMtu, family));
}

/** Address family of a WAN endpoint host: 4 or 6 for literals, undefined for names or nothing. */
export function endpointFamily(host: string | undefined): WanFamily {
  if (typeof host !== 'string') return undefined;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const kind = net.isIP(bare);
  return kind === 4 ? 4 : kind === 6 ? 6 : undefined;
}
