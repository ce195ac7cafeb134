// Key encodings: the control socket speaks lowercase hex, people and config files speak base64.
export const KEY_LENGTH = 32;

/** Parse a 64-character hex key; null when malformed. */
export function parseHexKey(text: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{64}$/.test(text)) return null;
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

export function toHex(key: Uint8Array): string {
  return Buffer.from(key).toString('hex');
}

export function parseBase64Key(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)) return null;
  return Uint8Array.from(Buffer.from(text, 'base64'));
}

export function toBase64(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

export function isZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

/** Constant-time equality for secrets and MACs. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}
