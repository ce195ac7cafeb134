// Published vectors several crypto tests share (the TypeScript primitives in crypto.test.ts, the
// native ones in native-handshake-crypto.test.ts).

/** wireguard-go device/kdf_test.go: KDF1/2/3 outputs t0..t2 for (key, input), hex. */
export const KDF_VECTORS = [
  {
    key: '746573742d6b6579',
    input: '746573742d696e707574',
    t0: '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
    t1: 'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
    t2: 'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
  },
  {
    key: '776972656775617264',
    input: '776972656775617264',
    t0: '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
    t1: '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
    t2: '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
  },
  {
    key: '',
    input: '',
    t0: '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
    t1: '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
    t2: '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
  },
];

/**
 * Curve25519 points of order 1, 2, 4 and 8 and their non-canonical encodings (the list the
 * kernel's curve25519 selftest and libsodium's blocklist use), hex: X25519 with any of them gives
 * the all-zero shared secret that WireGuard refuses.
 */
export const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];
