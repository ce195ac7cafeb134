// How weft recognises its own kernel state on a shared host: link names start with "weft-", routes
// and rules carry protocol 250 (iproute2 lets us name it; the number is what the kernel keeps), and
// nft tables start with "weft". Nothing else on the host is ever touched.
import type { Ownership } from '../kernel/index.ts';

export const WEFT_OWNERSHIP: Ownership = {
  linkPrefix: 'weft-',
  routeProtocol: 250,
  ruleProtocol: 250,
  nftPrefix: 'weft',
};
