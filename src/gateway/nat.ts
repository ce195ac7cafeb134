// The nftables table of one peering on the gateway: prefix NAT between the local stand-ins
// (remaps) and the remote's real ranges, the per-peering conntrack zone and mark that steer
// translated packets into the right tunnel, and MSS clamping. One table per peering, so adding or
// removing a peering replaces exactly one table, atomically.
//
// Hooks, in the order a packet meets them (priorities are nft's named ones):
//
//   raw      prerouting/output  ct zone set Z     a conntrack zone per peering: two peers may use
//                                                 the same real CIDR, so their flows can have the
//                                                 same 5-tuple after translation; zones keep them
//                                                 apart (without them the second flow is merged
//                                                 into the first, or dropped on a NAT clash)
//   mangle   prerouting         ct mark set M     fabric → remap, or anything from the tunnel
//                                meta mark set    only for packets NOT from this tunnel: they are
//                                  ct mark        the ones that must be routed into it (rule
//                                                 `fwmark M lookup T`, T: default dev <if>); a
//                                                 packet from the tunnel carrying M would be routed
//                                                 straight back into it
//   route    output             the same for the gateway's own traffic (the probe, replies)
//   dstnat   prerouting/output  remap → real (host bits kept); our external → our node network
//   mangle   forward            only fabric ↔ this tunnel; TCP MSS clamped to the route MTU
//   srcnat   postrouting/input  real remote → remap (receivers see stable senders they can
//                               answer, also on the gateway itself); our node network (and its
//                               overlay image, for CNIs that masquerade) → our external CIDR
//
// The text is stable for equal inputs (fingerprints must not churn) and was checked with
// `nft -c` (nft 1.0.6): `dnat ip prefix to` keeps host bits; `dstnat`/`srcnat` priority names are
// only accepted on prerouting/postrouting, so output and input use the numbers (-100, 100).
import { createHash } from 'node:crypto';
import type { FabricPeerSpec } from '../control/resources.ts';
import type { NftTable } from '../kernel/types.ts';
import { FABRIC_LINK } from '../fabric/overlay.ts';

export const NFT_TABLE_PREFIX = 'weft_';
const MAX_NAME = 64;

/**
 * nft table name for a peering: `weft_<remoteClusterId>` with every character outside
 * [A-Za-z0-9_] replaced by "_" ("cluster-b" → "weft_cluster_b"). Over-long ids are cut and given
 * a hash suffix, so the name stays unique and bounded.
 */
export function nftTableName(remoteClusterId: string): string {
  const clean = remoteClusterId.replace(/[^A-Za-z0-9_]/g, '_');
  const name = NFT_TABLE_PREFIX + clean;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(remoteClusterId).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_NAME - 9)}_${hash}`;
}

export interface PeerNatInput {
  peer: FabricPeerSpec;
  /** Conntrack zone of this peering (1-65535, distinct per peering). */
  zone: number;
  /** Our external CIDR (what remotes use for our node network). */
  externalCIDR: string;
  /** The node CIDR our external CIDR stands for (same prefix length). */
  nodeCIDR: string;
  /** Where `nodeCIDR`'s hosts live on the overlay (same prefix length): see overlayImage(). */
  nodeOverlayImage: string;
}

function hexMark(mark: number): string {
  return `0x${mark.toString(16).padStart(8, '0')}`;
}

function chain(name: string, header: string, rules: string[]): string {
  return [`chain ${name} {`, `\t${header}; policy accept;`, ...rules.map((r) => `\t${r}`), '}'].join('\n');
}

/** The table of one peering. Inputs are assumed valid (see validate.ts). */
export function peerNftTable(input: PeerNatInput): NftTable {
  const { peer, zone, externalCIDR, nodeCIDR, nodeOverlayImage } = input;
  const tun = JSON.stringify(peer.interfaceName);
  const vx = JSON.stringify(FABRIC_LINK);
  const mark = hexMark(peer.mark);
  const remaps = `{ ${peer.podCIDRRemap}, ${peer.externalCIDRRemap} }`;
  const chains = [
    chain('zone_prerouting', 'type filter hook prerouting priority raw', [
      `iifname ${vx} ip daddr ${remaps} ct zone set ${zone}`,
      `iifname ${tun} ct zone set ${zone}`,
    ]),
    chain('zone_output', 'type filter hook output priority raw', [`ip daddr ${remaps} ct zone set ${zone}`]),
    chain('mark_prerouting', 'type filter hook prerouting priority mangle', [
      `iifname ${vx} ip daddr ${remaps} ct mark set ${mark}`,
      `iifname ${tun} ct mark set ${mark}`,
      `iifname != ${tun} ct mark ${mark} meta mark set ct mark`,
    ]),
    chain('mark_output', 'type route hook output priority mangle', [
      `ip daddr ${remaps} ct mark set ${mark}`,
      `ct mark ${mark} meta mark set ct mark`,
    ]),
    chain('dnat_prerouting', 'type nat hook prerouting priority dstnat', [
      `iifname ${vx} ip daddr ${peer.podCIDRRemap} dnat ip prefix to ${peer.remotePodCIDR}`,
      `iifname ${vx} ip daddr ${peer.externalCIDRRemap} dnat ip prefix to ${peer.remoteExternalCIDR}`,
      `iifname ${tun} ip daddr ${externalCIDR} dnat ip prefix to ${nodeCIDR}`,
    ]),
    chain('dnat_output', 'type nat hook output priority -100', [
      `ip daddr ${peer.podCIDRRemap} dnat ip prefix to ${peer.remotePodCIDR}`,
      `ip daddr ${peer.externalCIDRRemap} dnat ip prefix to ${peer.remoteExternalCIDR}`,
    ]),
    chain('forward', 'type filter hook forward priority mangle', [
      `iifname ${tun} oifname != ${vx} drop`,
      `oifname ${tun} iifname != ${vx} drop`,
      `oifname ${tun} tcp flags syn tcp option maxseg size set rt mtu`,
      `iifname ${tun} tcp flags syn tcp option maxseg size set rt mtu`,
    ]),
    chain('snat_postrouting', 'type nat hook postrouting priority srcnat', [
      `iifname ${tun} ip saddr ${peer.remotePodCIDR} snat ip prefix to ${peer.podCIDRRemap}`,
      `iifname ${tun} ip saddr ${peer.remoteExternalCIDR} snat ip prefix to ${peer.externalCIDRRemap}`,
      `oifname ${tun} ip saddr ${nodeCIDR} snat ip prefix to ${externalCIDR}`,
      `oifname ${tun} ip saddr ${nodeOverlayImage} snat ip prefix to ${externalCIDR}`,
    ]),
    chain('snat_input', 'type nat hook input priority 100', [
      `iifname ${tun} ip saddr ${peer.remotePodCIDR} snat ip prefix to ${peer.podCIDRRemap}`,
      `iifname ${tun} ip saddr ${peer.remoteExternalCIDR} snat ip prefix to ${peer.externalCIDRRemap}`,
    ]),
  ];
  return { family: 'ip', name: nftTableName(peer.remoteClusterId), body: chains.join('\n') + '\n' };
}

/** The whole `table <family> <name> { … }` text, as `nft -f` takes it. */
export function nftTableText(table: NftTable): string {
  const body = table.body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => `\t${l}`)
    .join('\n');
  return `table ${table.family} ${table.name} {\n${body}\n}\n`;
}
