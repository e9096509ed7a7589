/**
 * Block stamps: every block a stress tool writes is its 32-byte stamp repeated, so that
 * any block read back names whose it is (file id, block number, generation) and a torn
 * or foreign block is recognised at once.
 *
 *   0  "PGST"  4  file id (u32)  8  block (u32)  12  generation (u32)
 *   16 check = file ^ block*2654435761 ^ gen*40503 (u32)  20..31  0xA5
 */
export const STAMP_LEN = 32;
const MAGIC = 0x54534750; // "PGST" little-endian

export interface Stamp {
  file: number;
  block: number;
  gen: number;
}

export type Seen =
  | { kind: 'zero' }
  | { kind: 'stamp'; stamp: Stamp }
  | { kind: 'torn'; first?: Stamp }
  | { kind: 'garbage' };

function check(s: Stamp): number {
  return (s.file ^ Math.imul(s.block, 2654435761) ^ Math.imul(s.gen, 40503)) >>> 0;
}

export function stampBlock(s: Stamp, size: number, out: Buffer = Buffer.allocUnsafe(size), at = 0): Buffer {
  const h = out.subarray(at, at + STAMP_LEN);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt32LE(s.file, 4);
  h.writeUInt32LE(s.block, 8);
  h.writeUInt32LE(s.gen, 12);
  h.writeUInt32LE(check(s), 16);
  h.fill(0xa5, 20, 32);
  for (let o = STAMP_LEN; o < size; o *= 2) out.copy(out, at + o, at, at + Math.min(o, size - o));
  return out;
}

function parse(b: Buffer): Stamp | undefined {
  if (b.length < STAMP_LEN || b.readUInt32LE(0) !== MAGIC) return undefined;
  const s = { file: b.readUInt32LE(4), block: b.readUInt32LE(8), gen: b.readUInt32LE(12) };
  return check(s) === b.readUInt32LE(16) ? s : undefined;
}

export function classify(block: Buffer): Seen {
  let zero = true;
  for (let i = 0; i < block.length; i += 8) {
    if (block.readBigUInt64LE(i) !== 0n) { zero = false; break; }
  }
  if (zero) return { kind: 'zero' };
  const first = parse(block);
  if (!first) return { kind: 'garbage' };
  for (let o = STAMP_LEN; o < block.length; o += STAMP_LEN) {
    if (block.compare(block, 0, STAMP_LEN, o, o + STAMP_LEN) !== 0) return { kind: 'torn', first };
  }
  return { kind: 'stamp', stamp: first };
}

export function describeSeen(s: Seen, fileName: (id: number) => string): string {
  switch (s.kind) {
    case 'zero': return 'zeros';
    case 'garbage': return 'bytes that are no stamp';
    case 'torn': return `a torn block starting with ${s.first ? describeStamp(s.first, fileName) : '?'}`;
    case 'stamp': return describeStamp(s.stamp, fileName);
  }
}

export function describeStamp(s: Stamp, fileName: (id: number) => string): string {
  return `block ${s.block} of ${fileName(s.file)}, generation ${s.gen}`;
}
