/**
 * What the fsx checker remembers to explain a mismatch: which operation each op number
 * was, which operation wrote each stamp generation, and where a read first differs from
 * the model. Kept apart from the engine so the engine holds only the run.
 */
import { classify, describeStamp, STAMP_LEN, type Stamp } from './stamp.js';

/** A growable array of unsigned integers indexed by op or generation number. */
class Table<T extends Uint8Array | Uint32Array> {
  constructor(public a: T, private readonly make: (n: number) => T) {}
  set(i: number, v: number): void {
    if (i >= this.a.length) {
      const n = this.make(Math.max(this.a.length * 2, i + 1));
      n.set(this.a);
      this.a = n;
    }
    this.a[i] = v;
  }
  get(i: number): number {
    return i < this.a.length ? this.a[i] : 0;
  }
}

export class Provenance {
  /** Op code (index in the op list + 1) of every operation so far. */
  private readonly opCodes = new Table(new Uint8Array(1024), (n) => new Uint8Array(n));
  /** The operation that wrote each stamp generation. */
  private readonly genOps = new Table(new Uint32Array(1024), (n) => new Uint32Array(n));
  private gen = 0;

  constructor(private readonly opNames: readonly string[]) {}

  opStarts(op: number, name: string): void {
    this.opCodes.set(op, this.opNames.indexOf(name) + 1);
  }

  /** A new stamp generation, written by operation `op`. */
  newGeneration(op: number): number {
    const g = ++this.gen;
    this.genOps.set(g, op);
    return g;
  }

  setBy(op: number): string {
    if (op === 0) return 'no operation (zeros since the file was created)';
    const c = this.opCodes.get(op);
    return `op #${op}${c ? ` (${this.opNames[c - 1]})` : ''}`;
  }

  describeStamp(s: Stamp, fileName: (id: number) => string): string {
    const writer = s.gen <= this.gen ? this.genOps.get(s.gen) : 0;
    return describeStamp(s, fileName) + (writer ? ` (written by op #${writer})` : '');
  }

  /** Whose data the byte at `i` of `buf` is: the stamp it belongs to, zeros, or neither. */
  whose(buf: Buffer, i: number, fileName: (id: number) => string): string {
    if (i >= buf.length) return 'nothing (the read ended here)';
    // The stamp the byte belongs to, if any: STAMP_LEN candidate starts.
    for (let s = Math.max(0, i - STAMP_LEN + 1); s <= i; s++) {
      if (s + STAMP_LEN > buf.length) break;
      const seen = classify(buf.subarray(s, s + STAMP_LEN));
      if (seen.kind === 'stamp') return this.describeStamp(seen.stamp, fileName);
    }
    const w = buf.subarray(i, Math.min(buf.length, i + 32));
    return w.every((b) => b === 0) ? 'zeros' : 'bytes that are no stamp (random data, or a torn block)';
  }
}

/**
 * Where `actual` differs from `expected`: the first differing byte, the end of the first
 * differing range (differing bytes less than 64 apart count as one range), and how many
 * bytes differ in all. A length difference counts as differing bytes.
 */
export function firstDifference(expected: Buffer, actual: Buffer): { first: number; last: number; differing: number } {
  const n = Math.max(actual.length, expected.length);
  const differs = (i: number) => i >= actual.length || i >= expected.length || actual[i] !== expected[i];
  let first = -1;
  let differing = 0;
  for (let i = 0; i < n; i++) if (differs(i)) { if (first < 0) first = i; differing++; }
  let last = first;
  for (let i = first; i < n && i - last < 64; i++) if (differs(i)) last = i;
  return { first, last, differing };
}

/** A fast seeded byte source for write data (xorshift32), itself seeded from the run's Rng. */
export function randomBytes(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = (seed | 0) || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  for (; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
