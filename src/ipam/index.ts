export { Ipam, parseRemoteCidr, DEFAULT_POOLS, DEFAULT_EXTERNAL_PREFIX_LENGTH, DEFAULT_MAX_REMOTE_CIDR_SIZE } from './allocator.ts';
export type { IpamConfig, IpamSnapshot, IpamPeerSnapshot } from './allocator.ts';
export { IpamError } from './errors.ts';
export type { IpamErrorReason } from './errors.ts';
export { translate } from './translate.ts';
export { parseCidr, formatCidr, overlaps, contains } from './cidr.ts';
export type { Cidr } from './cidr.ts';
