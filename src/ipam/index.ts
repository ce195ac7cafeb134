export { Ipam, parseRemoteCidr, DEFAULT_POOLS, DEFAULT_EXTERNAL_PREFIX_LENGTH } from './allocator.ts';
export type { IpamConfig, IpamSnapshot, IpamPeerSnapshot } from './allocator.ts';
export { IpamError } from './errors.ts';
export type { IpamErrorReason } from './errors.ts';
export { translate } from './translate.ts';
export { parseCidr, formatCidr, overlaps, contains } from './cidr.ts';
export type { Cidr } from './cidr.ts';
