/**
 * A set of non-negative integers kept as bits in chunks of 4,096, allocated only where a
 * bit was set: file block numbers reach 2^51, and a sparse file written at a few far
 * offsets must cost a few chunks, not a bitmap as long as its largest offset.
 */
const CHUNK = 4096;

export class SparseBitset {
  private readonly chunks = new Map<number, Uint32Array>();

  has(i: number): boolean {
    const c = this.chunks.get(Math.floor(i / CHUNK));
    if (c === undefined) return false;
    const o = i % CHUNK;
    return (c[o >>> 5] & (1 << (o & 31))) !== 0;
  }

  add(i: number): void {
    const k = Math.floor(i / CHUNK);
    let c = this.chunks.get(k);
    if (c === undefined) {
      c = new Uint32Array(CHUNK / 32);
      this.chunks.set(k, c);
    }
    const o = i % CHUNK;
    c[o >>> 5] |= 1 << (o & 31);
  }

  /** Removes [first, last]; walks the chunks held, not the range (ranges may end at 2^53). */
  deleteRange(first: number, last: number): void {
    for (const [k, c] of this.chunks) {
      const lo = k * CHUNK;
      const hi = lo + CHUNK - 1;
      if (hi < first || lo > last) continue;
      if (first <= lo && hi <= last) {
        this.chunks.delete(k);
        continue;
      }
      for (let i = Math.max(first, lo); i <= Math.min(last, hi); i++) {
        const o = i - lo;
        c[o >>> 5] &= ~(1 << (o & 31));
      }
      if (c.every((w) => w === 0)) this.chunks.delete(k);
    }
  }

  get empty(): boolean {
    return this.chunks.size === 0;
  }
}
