// Local session indices: the 32-bit numbers a remote puts in the `receiver` field of responses,
// cookie replies and transport packets. Random (so they do not leak how many sessions we have),
// unique per device, and tied to what they identify: a handshake in progress or an installed keypair.
import { randomIndex } from './crypto.ts';

export class IndexTable<T> {
  private readonly entries = new Map<number, T>();

  /** Allocate a fresh random index for `value`. */
  allocate(value: T): number {
    for (;;) {
      const index = randomIndex();
      if (!this.entries.has(index)) {
        this.entries.set(index, value);
        return index;
      }
    }
  }

  /** Re-tag an index that is already ours (a handshake index becoming its keypair's index). */
  set(index: number, value: T): void {
    this.entries.set(index, value);
  }

  get(index: number): T | undefined {
    return this.entries.get(index);
  }

  free(index: number | null | undefined): void {
    if (index !== null && index !== undefined) this.entries.delete(index);
  }

  get size(): number {
    return this.entries.size;
  }
}
