/**
 * The race stress's shared model: a small file in /dev/shm mapped MAP_SHARED by every
 * stress process, holding per block of the target file what a read must return.
 *
 * Each entry is a seqlock: the writer makes `seq` odd before it starts an operation on
 * the block and even again once the operation has returned and `gen`/`kind` say what
 * the block now holds. A reader that saw the same even `seq` before and after its read
 * must have read exactly that; a reader that saw it change raced the operation and may
 * see old or new bytes, but never another file's.
 *
 *   header (64 bytes): 0 stop flag, 4 writer operations done, 8 violations found
 *   entry b (16 bytes at 64 + 16 b): seq, gen, kind (0 zeros, 1 stamp), stamped block number
 */
import fs from 'node:fs';
import { sys, PROT_READ, PROT_WRITE, MAP_SHARED, type Mapping } from '../sys/index.js';

const HEADER = 64;
const ENTRY = 16;

export interface Entry {
  seq: number;
  gen: number;
  kind: number;
  stampBlock: number;
}

export class SharedModel {
  private constructor(private readonly map: Mapping, private readonly fd: number, readonly blocks: number) {}

  static create(path: string, blocks: number): SharedModel {
    fs.writeFileSync(path, Buffer.alloc(HEADER + blocks * ENTRY));
    return SharedModel.open(path, blocks);
  }

  static open(path: string, blocks: number): SharedModel {
    const fd = fs.openSync(path, 'r+');
    return new SharedModel(sys().mmap(fd, 0, HEADER + blocks * ENTRY, PROT_READ | PROT_WRITE, MAP_SHARED), fd, blocks);
  }

  close(): void {
    this.map.munmap();
    fs.closeSync(this.fd);
  }

  private u32(off: number): number {
    return this.map.read(off, 4).readUInt32LE(0);
  }

  private setU32(off: number, v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v >>> 0, 0);
    this.map.write(off, b);
  }

  get stopped(): boolean { return this.u32(0) !== 0; }
  stop(): void { this.setU32(0, 1); }
  get ops(): number { return this.u32(4); }
  set ops(n: number) { this.setU32(4, n); }
  get violations(): number { return this.u32(8); }
  addViolation(): void { this.setU32(8, this.violations + 1); }

  /** Entries [first, first + n) in one copy. */
  entries(first: number, n: number): Entry[] {
    const b = this.map.read(HEADER + first * ENTRY, n * ENTRY);
    const out: Entry[] = [];
    for (let i = 0; i < n; i++) {
      out.push({ seq: b.readUInt32LE(i * ENTRY), gen: b.readUInt32LE(i * ENTRY + 4), kind: b.readUInt32LE(i * ENTRY + 8), stampBlock: b.readUInt32LE(i * ENTRY + 12) });
    }
    return out;
  }

  /** Writer side: marks [first, first + n) as under change (odd seq). */
  begin(first: number, n: number): void {
    for (const [i, e] of this.entries(first, n).entries()) this.setU32(HEADER + (first + i) * ENTRY, e.seq + 1);
  }

  /** Writer side: sets what the blocks hold now and ends the change (even seq). */
  end(first: number, values: { gen: number; kind: number; stampBlock: number }[]): void {
    const cur = this.entries(first, values.length);
    values.forEach((v, i) => {
      const b = Buffer.allocUnsafe(12);
      b.writeUInt32LE(v.gen >>> 0, 0);
      b.writeUInt32LE(v.kind, 4);
      b.writeUInt32LE(v.stampBlock >>> 0, 8);
      this.map.write(HEADER + (first + i) * ENTRY + 4, b);
      this.setU32(HEADER + (first + i) * ENTRY, cur[i].seq + 1);
    });
  }
}
