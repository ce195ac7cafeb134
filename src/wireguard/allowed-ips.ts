// Cryptokey routing table (reference §4.8): which peer owns the longest prefix that contains an
// address. The device asks it twice per decision: "which peer do I encrypt to for this
// destination?" and "was this peer allowed to send from this source?".
//
// One path-compressed binary trie per address family (a PATRICIA trie, as in the kernel's
// allowedips.c and wireguard-go's allowedips.go): every node is a prefix (key, length); a node
// either carries a value (an allowed IP of some peer) or is a pure branch point with exactly two
// children. Compression keeps the depth bounded by the number of distinct branch points instead
// of the address width, so 130,000 routes insert and look up in well under a second.
//
// A per-value Set of the nodes it owns gives removal of every prefix of a peer without a walk and
// lists them in insertion order (for `wg show`).
import type { Prefix } from './prefix.ts';

// Keys are held as arrays of 16-bit words (2 for IPv4, 8 for IPv6) rather than Uint8Arrays: small
// integers stay unboxed in V8 and a plain array is far cheaper to allocate than a typed array,
// which matters when a peer brings 100,000 routes.
const WORD_BITS = 16;

class TrieNode<T> {
  /** Prefix length. */
  readonly bits: number;
  /** Address as 16-bit words, everything after `bits` zero. */
  readonly key: number[];
  parent: TrieNode<T> | null = null;
  child0: TrieNode<T> | null = null;
  child1: TrieNode<T> | null = null;
  /** Whether this node is an allowed IP (otherwise a branch point). */
  owned = false;
  value: T | undefined = undefined;

  constructor(key: number[], bits: number) {
    this.key = key;
    this.bits = bits;
  }
}

/** Address bytes to 16-bit words, keeping only the first `bits` bits. */
function toWords(bytes: Uint8Array, bits: number, out: number[] = new Array<number>(bytes.length >>> 1)): number[] {
  for (let w = 0; w < out.length; w++) {
    const word = (bytes[2 * w]! << 8) | bytes[2 * w + 1]!;
    const keep = bits - w * WORD_BITS;
    out[w] = keep >= WORD_BITS ? word : keep <= 0 ? 0 : word & (0xffff << (WORD_BITS - keep)) & 0xffff;
  }
  return out;
}

function toBytes(words: number[]): Uint8Array {
  const out = new Uint8Array(words.length * 2);
  for (let w = 0; w < words.length; w++) {
    out[2 * w] = words[w]! >>> 8;
    out[2 * w + 1] = words[w]! & 0xff;
  }
  return out;
}

/** A copy of `words` with every bit from `bits` on cleared. */
function maskWords(words: number[], bits: number): number[] {
  const out = words.slice();
  for (let w = 0; w < out.length; w++) {
    const keep = bits - w * WORD_BITS;
    if (keep <= 0) out[w] = 0;
    else if (keep < WORD_BITS) out[w] = out[w]! & (0xffff << (WORD_BITS - keep)) & 0xffff;
  }
  return out;
}

/** Bit `i` of a word array, counting from the most significant bit of word 0. */
function bitAt(words: number[], i: number): 0 | 1 {
  return ((words[i >>> 4]! >>> (15 - (i & 15))) & 1) as 0 | 1;
}

/**
 * Length of the common leading bits of `a` and `b`, capped at `limit`, comparing from bit `from`
 * on (the caller knows the bits before it agree: the walk down the trie already checked them).
 */
function commonBits(a: number[], b: number[], limit: number, from = 0): number {
  const words = (limit + WORD_BITS - 1) >>> 4;
  for (let w = from >>> 4; w < words; w++) {
    const x = a[w]! ^ b[w]!;
    if (x !== 0) {
      const n = w * WORD_BITS + Math.clz32(x) - 16;
      return n < limit ? n : limit;
    }
  }
  return limit;
}

function childOf<T>(node: TrieNode<T>, bit: 0 | 1): TrieNode<T> | null {
  return bit === 0 ? node.child0 : node.child1;
}

function setChild<T>(node: TrieNode<T>, bit: 0 | 1, child: TrieNode<T> | null): void {
  if (bit === 0) node.child0 = child;
  else node.child1 = child;
  if (child !== null) child.parent = node;
}

class Trie<T> {
  root: TrieNode<T> | null = null;
  readonly width: number;
  /** Reused for lookups so that the hot path allocates nothing. */
  readonly #scratch: number[];

  constructor(width: number) {
    this.width = width;
    this.#scratch = new Array<number>(width / WORD_BITS).fill(0);
  }

  /** Put `replacement` where `node` hangs (under its parent or as the root). */
  #replace(node: TrieNode<T>, replacement: TrieNode<T> | null): void {
    const parent = node.parent;
    if (parent === null) {
      this.root = replacement;
      if (replacement !== null) replacement.parent = null;
    } else {
      setChild(parent, parent.child0 === node ? 0 : 1, replacement);
    }
    node.parent = null;
  }

  /** The node for exactly (key, bits), created (and linked in) when absent. `key` is masked and kept. */
  nodeFor(key: number[], bits: number): TrieNode<T> {
    let parent: TrieNode<T> | null = null;
    let node = this.root;
    while (node !== null && node.bits <= bits && commonBits(node.key, key, node.bits, parent?.bits) === node.bits) {
      if (node.bits === bits) return node;
      parent = node;
      node = childOf(node, bitAt(key, node.bits));
    }
    const fresh = new TrieNode<T>(key, bits);
    if (node === null) {
      if (parent === null) this.root = fresh;
      else setChild(parent, bitAt(key, parent.bits), fresh);
      return fresh;
    }
    // `node` hangs where the new prefix belongs but does not lie inside it: either the new prefix
    // contains `node` (it becomes node's parent) or the two diverge (a branch point joins them).
    const common = commonBits(node.key, key, Math.min(bits, node.bits), parent?.bits);
    if (common === bits) {
      this.#replace(node, fresh);
      setChild(fresh, bitAt(node.key, bits), node);
      return fresh;
    }
    const branch = new TrieNode<T>(maskWords(key, common), common);
    this.#replace(node, branch);
    setChild(branch, bitAt(key, common), fresh);
    setChild(branch, bitAt(node.key, common), node);
    return fresh;
  }

  find(key: number[], bits: number): TrieNode<T> | null {
    let checked = 0;
    let node = this.root;
    while (node !== null && node.bits <= bits && commonBits(node.key, key, node.bits, checked) === node.bits) {
      if (node.bits === bits) return node;
      checked = node.bits;
      node = childOf(node, bitAt(key, node.bits));
    }
    return null;
  }

  lookup(address: Uint8Array): TrieNode<T> | null {
    const words = toWords(address, this.width, this.#scratch);
    let best: TrieNode<T> | null = null;
    let checked = 0;
    let node = this.root;
    while (node !== null && commonBits(node.key, words, node.bits, checked) === node.bits) {
      if (node.owned) best = node;
      if (node.bits === this.width) break;
      checked = node.bits;
      node = childOf(node, bitAt(words, node.bits));
    }
    return best;
  }

  /**
   * `node` just stopped being owned: splice out nodes that no longer earn their place (an
   * unowned node with fewer than two children), walking up as removals cascade.
   */
  prune(node: TrieNode<T>): void {
    let current: TrieNode<T> | null = node;
    while (current !== null && !current.owned) {
      const { child0, child1 } = current;
      if (child0 !== null && child1 !== null) return;
      const parent: TrieNode<T> | null = current.parent;
      this.#replace(current, child0 ?? child1);
      // With one child, the child took the slot and the parent's shape is unchanged; with none,
      // the parent lost a child and may itself have become superfluous.
      if (child0 !== null || child1 !== null) return;
      current = parent;
    }
  }

  clear(): void {
    this.root = null;
  }

  /** Every node, owned or branch point (iterative: the trie can be 128 deep). */
  countNodes(): number {
    let count = 0;
    const stack: TrieNode<T>[] = this.root === null ? [] : [this.root];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      count++;
      if (node.child0 !== null) stack.push(node.child0);
      if (node.child1 !== null) stack.push(node.child1);
    }
    return count;
  }
}

export class AllowedIps<T> {
  #v4 = new Trie<T>(32);
  #v6 = new Trie<T>(128);
  #byValue = new Map<T, Set<TrieNode<T>>>();
  #size = 0;

  #trie(family: 4 | 6): Trie<T> {
    return family === 4 ? this.#v4 : this.#v6;
  }

  static #checkPrefix(prefix: Prefix): void {
    const width = prefix.family === 4 ? 32 : prefix.family === 6 ? 128 : -1;
    if (width < 0) throw new RangeError(`unknown address family ${String(prefix.family)}`);
    if (prefix.bytes.length !== width / 8) throw new RangeError(`IPv${prefix.family} prefix needs ${width / 8} bytes`);
    if (!Number.isInteger(prefix.bits) || prefix.bits < 0 || prefix.bits > width) {
      throw new RangeError(`bad prefix length ${prefix.bits} for IPv${prefix.family}`);
    }
  }

  /** Give `prefix` to `value`; a prefix owned by another value moves (the kernel's semantics). */
  insert(prefix: Prefix, value: T): void {
    AllowedIps.#checkPrefix(prefix);
    // toWords copies (and masks), so the caller's array can change later without corrupting the trie.
    const node = this.#trie(prefix.family).nodeFor(toWords(prefix.bytes, prefix.bits), prefix.bits);
    if (node.owned) {
      if (node.value === value) return;
      this.#byValue.get(node.value as T)?.delete(node);
      this.#dropEmpty(node.value as T);
    } else {
      node.owned = true;
      this.#size++;
    }
    node.value = value;
    let set = this.#byValue.get(value);
    if (set === undefined) {
      set = new Set();
      this.#byValue.set(value, set);
    }
    set.add(node);
  }

  /** Remove `prefix` if `value` owns it; true when something was removed. */
  remove(prefix: Prefix, value: T): boolean {
    AllowedIps.#checkPrefix(prefix);
    const trie = this.#trie(prefix.family);
    const node = trie.find(toWords(prefix.bytes, prefix.bits), prefix.bits);
    if (node === null || !node.owned || node.value !== value) return false;
    this.#disown(trie, node);
    this.#byValue.get(value)?.delete(node);
    this.#dropEmpty(value);
    return true;
  }

  /** Remove every prefix of `value`. */
  removeValue(value: T): void {
    const set = this.#byValue.get(value);
    if (set === undefined) return;
    this.#byValue.delete(value);
    for (const node of set) this.#disown(this.#trie(node.key.length === 2 ? 4 : 6), node);
  }

  /** The value owning the longest prefix that contains `address`, if any. */
  lookup(family: 4 | 6, address: Uint8Array): T | undefined {
    const trie = family === 4 ? this.#v4 : family === 6 ? this.#v6 : null;
    if (trie === null || address.length !== trie.width / 8) return undefined;
    return trie.lookup(address)?.value;
  }

  /** Prefixes of `value`, in the order they were given to it. */
  prefixesOf(value: T): Prefix[] {
    const set = this.#byValue.get(value);
    if (set === undefined) return [];
    const out: Prefix[] = [];
    for (const node of set) {
      out.push({ family: node.key.length === 2 ? 4 : 6, bits: node.bits, bytes: toBytes(node.key) });
    }
    return out;
  }

  /** Number of prefixes of `value` (cheaper than prefixesOf(value).length). */
  countOf(value: T): number {
    return this.#byValue.get(value)?.size ?? 0;
  }

  /** Every value that owns at least one prefix. */
  values(): IterableIterator<T> {
    return this.#byValue.keys();
  }

  clear(): void {
    this.#v4.clear();
    this.#v6.clear();
    this.#byValue.clear();
    this.#size = 0;
  }

  /**
   * Trie nodes in use, prefixes plus branch points (diagnostics). Because a branch point always
   * has two children, this never exceeds 2 x size: removals must not leave dead nodes behind.
   */
  nodeCount(): number {
    return this.#v4.countNodes() + this.#v6.countNodes();
  }

  /** Total number of prefixes. */
  get size(): number {
    return this.#size;
  }

  #disown(trie: Trie<T>, node: TrieNode<T>): void {
    node.owned = false;
    node.value = undefined;
    this.#size--;
    trie.prune(node);
  }

  #dropEmpty(value: T): void {
    if (this.#byValue.get(value)?.size === 0) this.#byValue.delete(value);
  }
}
