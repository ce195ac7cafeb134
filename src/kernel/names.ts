// Checks for the names and numbers that end up on an iproute2 batch line or an nft command: one
// stray space or newline there would change the meaning of the line, so they are strict.
import type { Ownership } from './types.ts';
import { KernelStateError } from './types.ts';

const IFNAME = /^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,14}$/;

export function requireIfname(name: unknown, what: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) {
    throw new KernelStateError(`${what} ${JSON.stringify(name)} is not a valid interface name (1-15 characters: letters, digits, _ . + -)`);
  }
  return name;
}

export function requireInt(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new KernelStateError(`${what} must be an integer ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A routing table id: 1..2^32-1, 'main' meaning 254. */
export function requireTable(value: unknown, what: string): number {
  if (value === 'main') return 254;
  return requireInt(value, what, 1, 0xffffffff);
}

export function tableName(table: number): string {
  return table === 254 ? 'main' : table === 255 ? 'local' : table === 253 ? 'default' : String(table);
}

/** Table as iproute2 prints it (-N gives numbers; without it the reserved ones have names). */
export function parseTableText(text: unknown): number | null {
  if (typeof text === 'number') return text;
  if (typeof text !== 'string') return 254; // iproute2 omits "table" for main without -d
  if (/^\d+$/.test(text)) return Number(text);
  return text === 'main' ? 254 : text === 'local' ? 255 : text === 'default' ? 253 : null;
}

const NFT_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

export function requireOwnership(owned: unknown): Ownership {
  const o = owned as Ownership | undefined;
  if (!o || typeof o !== 'object') throw new KernelStateError('owned: an Ownership {linkPrefix, routeProtocol, ruleProtocol, nftPrefix} is required');
  if (typeof o.linkPrefix !== 'string' || !/^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,13}$/.test(o.linkPrefix)) {
    throw new KernelStateError(`owned.linkPrefix ${JSON.stringify(o.linkPrefix)} must be a non-empty interface-name prefix`);
  }
  if (typeof o.nftPrefix !== 'string' || !NFT_NAME.test(o.nftPrefix)) {
    throw new KernelStateError(`owned.nftPrefix ${JSON.stringify(o.nftPrefix)} must be a non-empty nft identifier prefix`);
  }
  // 0-4 are unspec/redirect/kernel/boot/static: owning them would claim everybody's routes.
  requireInt(o.routeProtocol, 'owned.routeProtocol', 5, 255);
  requireInt(o.ruleProtocol, 'owned.ruleProtocol', 5, 255);
  return o;
}

export function requireNftName(name: unknown, prefix: string, what: string): string {
  if (typeof name !== 'string' || !NFT_NAME.test(name)) {
    throw new KernelStateError(`${what} ${JSON.stringify(name)} is not a valid nft table name (letters, digits, _ -)`);
  }
  if (!name.startsWith(prefix)) throw new KernelStateError(`${what} ${JSON.stringify(name)} does not start with the owned prefix ${JSON.stringify(prefix)}`);
  return name;
}
