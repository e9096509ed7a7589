/**
 * One process of the race stress (race.ts starts them): the writer, or a reader that
 * uses read(2), O_DIRECT read(2) or a shared mapping. Each prints JSON lines on stdout:
 * violations as they are found, and a summary at the end.
 *
 * The writer changes the target file (stamped writes, copy_file_range from a staging
 * file, punch hole, zero range, and in the shift variant insert+collapse) and after every operation that frees blocks writes
 * and fsyncs other files, so that the freed blocks are reused at once: a reader that
 * still maps a freed block then reads another file's stamp.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sys, FALLOC, PROT_READ, MAP_SHARED } from '../sys/index.js';
import { SharedModel } from './model.js';
import { stampBlock, classify, describeSeen, describeStamp, type Seen } from './stamp.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../vfs/shift.js';
import { Rng } from './rng.js';

export interface WorkerConfig {
  role: 'writer' | 'read' | 'direct' | 'mmap';
  id: number;
  target: string;
  others: string[];
  /** Source of copy_file_range into the target: blocks stamped as the target's. */
  staging: string;
  modelPath: string;
  blocks: number;
  blockSize: number;
  seed: number;
  variant: 'punch' | 'shift';
  stopOnFirst: boolean;
  /** The writer's operations that the filesystem supports (race.ts probes them). */
  ops: WriterOp[];
}

export type WriterOp = 'write' | 'copy' | 'punch' | 'zero' | 'shift';
/** Relative frequencies of the writer's operations. */
export const OP_WEIGHTS: Record<WriterOp, number> = { write: 35, copy: 15, punch: 30, zero: 20, shift: 20 };

function pick(rng: Rng, ops: WriterOp[]): WriterOp {
  const total = ops.reduce((t, o) => t + OP_WEIGHTS[o], 0);
  let r = rng.next() * total;
  for (const o of ops) if ((r -= OP_WEIGHTS[o]) < 0) return o;
  return ops[ops.length - 1];
}

export const TARGET_ID = 1;
export const fileName = (id: number) => (id === TARGET_ID ? 'the target file' : `other file ${id - TARGET_ID}`);

function out(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function writer(c: WorkerConfig, model: SharedModel): void {
  const rng = new Rng(c.seed);
  const bs = c.blockSize;
  const fd = fs.openSync(c.target, 'r+');
  const others = c.others.map((p) => fs.openSync(p, 'r+'));
  const staging = fs.openSync(c.staging, 'r+');
  let gen = 1;
  let ops = 0;
  const counts: Record<string, number> = {};
  const reuse = (n: number) => {
    const i = rng.int(others.length);
    const at = rng.int(c.blocks);
    const g = ++gen;
    const buf = Buffer.allocUnsafe(n * bs);
    for (let k = 0; k < n; k++) stampBlock({ file: TARGET_ID + 1 + i, block: at + k, gen: g }, bs, buf, k * bs);
    fs.writeSync(others[i], buf, 0, buf.length, at * bs);
    fs.fsyncSync(others[i]);
  };
  while (!model.stopped) {
    const n = 1 + rng.int(8);
    const b = rng.int(c.blocks - n);
    let op: string = pick(rng, c.ops);
    if (op === 'shift') {
      op = 'insert+collapse';
      // Insert first so the file never gets shorter than the readers' mappings.
      const k = rng.int(c.blocks - n);
      const j = rng.int(c.blocks - n);
      const lo = Math.min(k, j);
      model.begin(lo, c.blocks - lo);
      const before = model.entries(0, c.blocks + n);
      sys().ioctl(fd, PAGEFS_IOC_INSERT_RANGE, encodeRange(k * bs, n * bs));
      sys().ioctl(fd, PAGEFS_IOC_COLLAPSE_RANGE, encodeRange(j * bs, n * bs));
      fs.fstatSync(fd); // the kernel's cached size after a collapse (see src/vfs/shift.ts)
      // After insert at k: [k, k+n) holes, [k+n, ...) = old [k, ...). After collapse at j: drop [j, j+n).
      const afterInsert = [...before.slice(0, k), ...Array.from({ length: n }, () => ({ gen: 0, kind: 0, stampBlock: 0, seq: 0 })), ...before.slice(k, c.blocks)];
      const afterCollapse = [...afterInsert.slice(0, j), ...afterInsert.slice(j + n)].slice(0, c.blocks);
      model.end(lo, afterCollapse.slice(lo).map((e) => ({ gen: e.gen, kind: e.kind, stampBlock: e.stampBlock })));
      reuse(n);
    } else if (op === 'copy') {
      // The copy shares the staging file's blocks into the target (a remap on pagefs).
      op = 'copy';
      const g = ++gen;
      const buf = Buffer.allocUnsafe(n * bs);
      for (let k = 0; k < n; k++) stampBlock({ file: TARGET_ID, block: b + k, gen: g }, bs, buf, k * bs);
      fs.writeSync(staging, buf, 0, buf.length, b * bs);
      fs.fsyncSync(staging);
      model.begin(b, n);
      for (let done = 0; done < n * bs;) {
        const got = sys().copyFileRange(staging, b * bs + done, fd, b * bs + done, n * bs - done, 0);
        if (got <= 0) throw new Error(`copy_file_range returned ${got}`);
        done += got;
      }
      model.end(b, Array.from({ length: n }, (_, k) => ({ gen: g, kind: 1, stampBlock: b + k })));
    } else if (op === 'write') {
      const g = ++gen;
      const buf = Buffer.allocUnsafe(n * bs);
      for (let k = 0; k < n; k++) stampBlock({ file: TARGET_ID, block: b + k, gen: g }, bs, buf, k * bs);
      model.begin(b, n);
      fs.writeSync(fd, buf, 0, buf.length, b * bs);
      fs.fdatasyncSync(fd);
      model.end(b, Array.from({ length: n }, (_, k) => ({ gen: g, kind: 1, stampBlock: b + k })));
    } else {
      const zero = op === 'zero';
      model.begin(b, n);
      sys().fallocate(fd, zero ? FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE : FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, b * bs, n * bs);
      model.end(b, Array.from({ length: n }, () => ({ gen: 0, kind: 0, stampBlock: 0 })));
      reuse(n);
    }
    counts[op] = (counts[op] ?? 0) + 1;
    model.ops = ++ops;
  }
  for (const f of [fd, staging, ...others]) fs.closeSync(f);
  out({ type: 'summary', role: 'writer', id: c.id, ops, counts });
}

function reader(c: WorkerConfig, model: SharedModel): void {
  const rng = new Rng(c.seed * 7919 + c.id);
  const bs = c.blockSize;
  let readAt: (b: number, n: number) => Buffer;
  let close: () => void;
  if (c.role === 'mmap') {
    const fd = fs.openSync(c.target, 'r');
    const map = sys().mmap(fd, 0, c.blocks * bs, PROT_READ, MAP_SHARED);
    readAt = (b, n) => map.read(b * bs, n * bs);
    close = () => { map.munmap(); fs.closeSync(fd); };
  } else if (c.role === 'direct') {
    const fd = sys().openDirect(c.target, fs.constants.O_RDONLY);
    readAt = (b, n) => sys().preadDirect(fd, n * bs, b * bs);
    close = () => fs.closeSync(fd);
  } else {
    const fd = fs.openSync(c.target, 'r');
    readAt = (b, n) => {
      const buf = Buffer.allocUnsafe(n * bs);
      const got = fs.readSync(fd, buf, 0, buf.length, b * bs);
      return buf.subarray(0, got);
    };
    close = () => fs.closeSync(fd);
  }
  // O_DIRECT needs page-aligned offsets and lengths.
  const align = c.role === 'direct' ? Math.max(1, 4096 / bs) : 1;
  let reads = 0;
  let checked = 0;
  let violations = 0;
  while (!model.stopped) {
    const n = align * (1 + rng.int(2));
    const b = Math.floor(rng.int(c.blocks - n) / align) * align;
    const before = model.entries(b, n);
    const data = readAt(b, n);
    const after = model.entries(b, n);
    reads++;
    for (let k = 0; k < n; k++) {
      const block = data.subarray(k * bs, (k + 1) * bs);
      if (block.length < bs) continue;
      const seen = classify(block);
      const settled = before[k].seq === after[k].seq && before[k].seq % 2 === 0;
      const e = before[k];
      const expected = e.kind === 0 ? 'zeros' : describeStamp({ file: TARGET_ID, block: e.stampBlock, gen: e.gen }, fileName);
      let why: string | null = null;
      if (seen.kind === 'stamp' && seen.stamp.file !== TARGET_ID) why = 'another file\'s data';
      else if (settled) {
        checked++;
        if (!matches(seen, e)) why = e.kind === 0 ? 'stale data after a punch or zero returned' : 'stale or wrong data after a write returned';
      }
      if (why) {
        violations++;
        model.addViolation();
        out({
          type: 'violation', role: c.role, id: c.id, why, offset: (b + k) * bs, block: b + k, writerOps: model.ops,
          expected, actual: describeSeen(seen, fileName), actualHex: block.subarray(0, 32).toString('hex'),
          settled,
        });
        if (c.stopOnFirst) model.stop();
      }
    }
  }
  close();
  out({ type: 'summary', role: c.role, id: c.id, reads, checked, violations });
}

function matches(seen: Seen, e: { kind: number; gen: number; stampBlock: number }): boolean {
  if (e.kind === 0) return seen.kind === 'zero';
  return seen.kind === 'stamp' && seen.stamp.file === TARGET_ID && seen.stamp.gen === e.gen && seen.stamp.block === e.stampBlock;
}

function main(): void {
  const config = JSON.parse(process.argv[2]) as WorkerConfig;
  const model = SharedModel.open(config.modelPath, config.blocks + 64);
  try {
    if (config.role === 'writer') writer(config, model);
    else reader(config, model);
  } catch (e) {
    out({ type: 'error', role: config.role, id: config.id, message: (e as Error).message, code: (e as NodeJS.ErrnoException).code });
    model.stop();
    process.exitCode = 1;
  } finally {
    model.close();
  }
}

// Imported by race.ts for its types and constants; run only as a worker process.
if (process.argv[1] === fileURLToPath(import.meta.url)) main();
