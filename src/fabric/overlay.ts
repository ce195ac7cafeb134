// The node↔gateway overlay: one VXLAN link per host ("weft-vx"), addressed out of the cluster's
// fabric CIDR. A host's overlay address is its node IP with the fabric CIDR's network bits put in
// place of its own (the host bits below the fabric prefix are kept):
//
//   node 192.168.100.11 (node CIDR 192.168.100.0/24), fabric 100.126.0.0/16  →  100.126.100.11
//
// so the overlay address is readable at a glance and needs no allocation. The fabric CIDR must be
// at least as large as the node CIDR, otherwise two nodes of one node network would collide (their
// differing bits would be overwritten). With several node CIDRs, each maps onto one block of the
// fabric ("overlay image") and those blocks must not overlap: checked by overlayImageClashes().
import { containsAddress, formatCidr, formatIPv4, overlaps, parseCidr, parseIPv4 } from '../ipam/cidr.ts';
import type { Cidr } from '../ipam/cidr.ts';

/** The VXLAN link weft owns on every host of the fabric (agents and the gateway). */
export const FABRIC_LINK = 'weft-vx';
/** Routing table of the agent's remap routes, and of the gateway's node-host routes. */
export const FABRIC_TABLE = 1800;
/** Priority of the agent's `lookup 1800` rule (before main at 32766). */
export const AGENT_RULE_PRIORITY = 1800;

export class OverlayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OverlayError';
  }
}

function parse(text: string, what: string): Cidr {
  try {
    return parseCidr(text, what);
  } catch (err) {
    throw new OverlayError((err as Error).message);
  }
}

function address(text: string, what: string): number {
  try {
    return parseIPv4(text, what);
  } catch (err) {
    throw new OverlayError((err as Error).message);
  }
}

/** Replace the top `fabric.bits` bits of `value` with the fabric's network bits. */
function intoFabric(value: number, fabric: Cidr): number {
  const size = 2 ** (32 - fabric.bits);
  return fabric.start + (value % size);
}

/**
 * The overlay (fabric) address of a host: `nodeIP` with the fabric CIDR's network bits.
 * Throws OverlayError when the fabric CIDR is smaller than the node CIDR, when `nodeIP` is not a
 * host of `nodeCIDR` (outside it, or its network/broadcast address), or when the result would be
 * the fabric's network or broadcast address.
 */
export function overlayIP(nodeIP: string, nodeCIDR: string, fabricCIDR: string): string {
  const ip = address(nodeIP, 'node IP');
  const node = parse(nodeCIDR, 'node CIDR');
  const fabric = parse(fabricCIDR, 'fabric CIDR');
  if (fabric.bits > node.bits) {
    throw new OverlayError(
      `fabric CIDR ${formatCidr(fabric)} is smaller than node CIDR ${formatCidr(node)}: nodes would share overlay addresses`,
    );
  }
  if (!containsAddress(node, ip)) throw new OverlayError(`node IP ${nodeIP} is not in node CIDR ${formatCidr(node)}`);
  const nodeSize = 2 ** (32 - node.bits);
  if (nodeSize > 2 && (ip === node.start || ip === node.start + nodeSize - 1)) {
    throw new OverlayError(`node IP ${nodeIP} is the ${ip === node.start ? 'network' : 'broadcast'} address of node CIDR ${formatCidr(node)}`);
  }
  const out = intoFabric(ip, fabric);
  const size = 2 ** (32 - fabric.bits);
  if (size > 2 && (out === fabric.start || out === fabric.start + size - 1)) {
    throw new OverlayError(
      `node IP ${nodeIP} maps onto the ${out === fabric.start ? 'network' : 'broadcast'} address of fabric CIDR ${formatCidr(fabric)}`,
    );
  }
  return formatIPv4(out);
}

/**
 * The block of the fabric CIDR a node CIDR maps onto (same prefix length as the node CIDR): where
 * the overlay addresses of that node network's hosts live. 192.168.100.0/24 in 100.126.0.0/16 →
 * 100.126.100.0/24.
 */
export function overlayImage(nodeCIDR: string, fabricCIDR: string): string {
  const node = parse(nodeCIDR, 'node CIDR');
  const fabric = parse(fabricCIDR, 'fabric CIDR');
  if (fabric.bits > node.bits) {
    throw new OverlayError(`fabric CIDR ${formatCidr(fabric)} is smaller than node CIDR ${formatCidr(node)}`);
  }
  return formatCidr({ start: intoFabric(node.start, fabric), bits: node.bits });
}

/** Pairs of node CIDRs whose overlay images overlap (their hosts could share overlay addresses). */
export function overlayImageClashes(nodeCIDRs: readonly string[], fabricCIDR: string): string[] {
  const images = nodeCIDRs.map((c) => parse(overlayImage(c, fabricCIDR), 'overlay image'));
  const out: string[] = [];
  for (let i = 0; i < images.length; i++) {
    for (let j = i + 1; j < images.length; j++) {
      if (overlaps(images[i]!, images[j]!)) {
        out.push(
          `node CIDRs ${nodeCIDRs[i]} and ${nodeCIDRs[j]} map onto overlapping overlay blocks ` +
            `${formatCidr(images[i]!)} and ${formatCidr(images[j]!)} of fabric CIDR ${fabricCIDR}`,
        );
      }
    }
  }
  return out;
}

/** The node CIDR (of `nodeCIDRs`) that holds `ip`, or undefined. */
export function nodeCIDROf(ip: string, nodeCIDRs: readonly string[]): string | undefined {
  let value: number;
  try {
    value = parseIPv4(ip);
  } catch {
    return undefined;
  }
  return nodeCIDRs.find((c) => {
    try {
      return containsAddress(parseCidr(c), value);
    } catch {
      return false;
    }
  });
}

/** "addr/len" of a host's overlay address on the fabric link. */
export function overlayInterfaceAddress(nodeIP: string, nodeCIDRs: readonly string[], fabricCIDR: string): string {
  const nodeCIDR = nodeCIDROf(nodeIP, nodeCIDRs);
  if (nodeCIDR === undefined) throw new OverlayError(`node IP ${nodeIP} is in none of the node CIDRs ${nodeCIDRs.join(', ')}`);
  return `${overlayIP(nodeIP, nodeCIDR, fabricCIDR)}/${parse(fabricCIDR, 'fabric CIDR').bits}`;
}

/** Overlay address of a host whose node CIDR is found among `nodeCIDRs`. */
export function overlayOf(nodeIP: string, nodeCIDRs: readonly string[], fabricCIDR: string): string {
  return overlayInterfaceAddress(nodeIP, nodeCIDRs, fabricCIDR).split('/')[0]!;
}
