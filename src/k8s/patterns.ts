// Regular expressions for the CRD schemas, generated rather than written by hand so that each one
// says exactly what the code accepts (src/ipam/cidr.ts, src/wireguard/keys.ts, src/control/validate.ts).
//
// They must mean the same thing to the API server (Go's RE2) and to JavaScript (the tests and the
// in-process API server), so they use only the syntax both read alike: anchors, literal characters,
// character classes, `(?:...)` groups, `|` and bounded `{m,n}` repetition. OpenAPI patterns are not
// anchored implicitly; every pattern here carries its own `^...$`.

/** Compress a set of single characters (digits or hex digits) into a regex atom: `7`, `[0-4]`, `[02468]`. */
function charClass(chars: Iterable<string>): string {
  const sorted = [...new Set(chars)].sort();
  if (sorted.length === 1) return escape(sorted[0]!);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]!.charCodeAt(0) === sorted[j]!.charCodeAt(0) + 1) j++;
    parts.push(j - i >= 2 ? `${sorted[i]}-${sorted[j]}` : sorted.slice(i, j + 1).join(''));
    i = j + 1;
  }
  return `[${parts.join('')}]`;
}

function escape(c: string): string {
  return /[\\^$.|?*+()[\]{}\/-]/.test(c) ? `\\${c}` : c;
}

/** One regex for a set of strings that all have the same length: a trie whose siblings with equal subtrees share a class. */
function sameLength(strings: readonly string[]): string {
  if (strings[0] === '') return '';
  const byFirst = new Map<string, string[]>();
  for (const s of strings) {
    const rest = byFirst.get(s[0]!) ?? [];
    rest.push(s.slice(1));
    byFirst.set(s[0]!, rest);
  }
  // Siblings whose remainders produce the same sub-regex merge into one character class.
  const bySub = new Map<string, string[]>();
  for (const [first, rests] of byFirst) {
    const sub = sameLength([...new Set(rests)].sort());
    bySub.set(sub, [...(bySub.get(sub) ?? []), first]);
  }
  const alternatives = [...bySub].map(([sub, firsts]) => charClass(firsts) + sub);
  return alternatives.length === 1 ? alternatives[0]! : `(?:${alternatives.join('|')})`;
}

/** A regex (unanchored, grouped) matching exactly the given decimal numbers, written without leading zeros. */
export function numbersPattern(values: Iterable<number>): string {
  const byLength = new Map<number, string[]>();
  for (const v of [...new Set(values)].sort((a, b) => a - b)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`numbersPattern: ${v} is not a natural number`);
    const s = String(v);
    byLength.set(s.length, [...(byLength.get(s.length) ?? []), s]);
  }
  if (byLength.size === 0) throw new RangeError('numbersPattern: empty set');
  const alternatives = [...byLength.values()].map((group) => sameLength(group));
  return alternatives.length === 1 ? alternatives[0]! : `(?:${alternatives.join('|')})`;
}

const range = (n: number, step = 1) => Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);

/** One octet of a dotted quad: 0-255, no leading zeros (as parseIPv4 in src/ipam/cidr.ts). */
export const OCTET = numbersPattern(range(256));

/** A dotted-quad IPv4 address. */
export const IPV4 = `^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`;

/**
 * An IPv4 CIDR in the strict form parseCidr accepts: a.b.c.d/len with len 0-32, no leading zeros,
 * and no host bits set (10.0.0.1/16 is refused: it almost always means a typo). For a prefix
 * length p = 8k + r, octets before k are free, octet k is a multiple of 2^(8-r), the rest are 0.
 */
export const IPV4_CIDR = (() => {
  const groups: string[] = [];
  for (let k = 0; k <= 4; k++) {
    const lead = `${OCTET}\\.`.repeat(k);
    const tails: string[] = [];
    if (k === 4) {
      groups.push(`${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}/32`);
      break;
    }
    for (let r = 0; r < 8; r++) {
      const boundary = numbersPattern(range(256, 2 ** (8 - r)));
      const zeros = '\\.0'.repeat(3 - k);
      tails.push(`${boundary}${zeros}/${8 * k + r}`);
    }
    groups.push(`${lead}(?:${tails.join('|')})`);
  }
  return `^(?:${groups.join('|')})$`;
})();

/**
 * An IPv6 address in its textual forms without an embedded IPv4 tail or a zone: eight groups, or
 * `::` standing for one or more zero groups with up to seven explicit groups around it.
 */
export const IPV6 = (() => {
  const h = '[0-9A-Fa-f]{1,4}';
  const forms = [`(?:${h}:){7}${h}`];
  for (let left = 0; left <= 7; left++) {
    const head = left === 0 ? '' : left === 1 ? h : `(?:${h}:){${left - 1}}${h}`;
    const maxRight = 7 - left;
    const tail = maxRight === 0 ? '' : maxRight === 1 ? `(?:${h})?` : `(?:${h}(?::${h}){0,${maxRight - 1}})?`;
    forms.push(`${head}::${tail}`);
  }
  return `^(?:${forms.join('|')})$`;
})();

/** A WireGuard key in base64: 32 bytes, so 43 significant characters (the last with 2 zero bits) and one '='. */
export const WIREGUARD_KEY = '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$';

/** An RFC 1123 DNS label (what a cluster id must be: it names objects, interfaces and nft tables). */
export const DNS_LABEL = '^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$';

/** A Linux interface name weft may create: letters, digits, '_' and '-' (no '.', it splits sysctl keys). */
export const INTERFACE_NAME = '^[A-Za-z0-9_][A-Za-z0-9_-]*$';

/** metav1.Condition.type: an optional DNS-subdomain prefix and '/', then a qualified name. */
export const CONDITION_TYPE = '^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';

/** metav1.Condition.reason: CamelCase, machine-readable. */
export const CONDITION_REASON = '^[A-Za-z](?:[A-Za-z0-9_,:]*[A-Za-z0-9_])?$';
