/**
 * The fsx checker (pagefs stress --fsx, and the fsx tests): a seeded random sequence of
 * writes, reads, mapped reads and writes, O_DIRECT reads, truncates, fallocate in every
 * mode the filesystem supports (collapse and insert through pagefs's ioctls on pagefs),
 * copy_file_range within and across files, lseek SEEK_DATA/SEEK_HOLE, fsync, and close
 * and reopen, over a few files, every read checked against an in-memory model of each
 * file (fsx-model.ts). The operations run in a worker thread (fsx-worker.ts, with the
 * engine in fsx-engine.ts) so that a hung mount never blocks the caller.
 *
 * On the first mismatch it stops and reports the seed, the operation number, the tail
 * of the operation log, the first differing range with the expected and actual bytes
 * and, when the bytes carry a block stamp, whose block they were. Works on any Linux
 * directory (a pagefs mount, tmpfs, ext4, XFS).
 */
import { Worker } from 'node:worker_threads';
import { distFile } from '../util/paths.js';
import { FSX_OPS, DEFAULT_MIX, type FsxOp, type FsxFailure } from './fsx-engine.js';
import type { FromWorker, ToWorker, WorkerConfig } from './fsx-worker.js';

export { FSX_OPS, DEFAULT_MIX, OP_HELP, FILE_ID_BASE, type FsxOp, type FsxFailure } from './fsx-engine.js';

export interface FsxOptions {
  dir: string;
  seed: number;
  ops: number;
  /** Number of files (default 2). */
  files?: number;
  /** Largest file size in bytes (default 256 KiB). */
  maxSize?: number;
  /** Longest single operation in bytes (default 64 KiB, at most maxSize). */
  maxOpLen?: number;
  /** Overrides of DEFAULT_MIX's weights; 0 switches an operation off. */
  mix?: Partial<Record<FsxOp, number>>;
  /**
   * Every remountEvery operations the files are closed and remount() is awaited (it may
   * unmount and mount again, or do anything else to the filesystem); then the files are
   * reopened and read whole against the model, and the run goes on.
   */
  remountEvery?: number;
  remount?: (at: { op: number; index: number }) => Promise<void>;
  onProbe?: (p: { blockSize: number; supported: string[]; skipped: string[]; shiftVia: string | null; workDir: string }) => void;
  onProgress?: (p: { ops: number; bytesChecked: number }) => void;
}

export interface FsxResult {
  seed: number;
  /** Operations done (all requested ones when clean). */
  ops: number;
  requestedOps: number;
  files: number;
  maxSize: number;
  blockSize: number;
  opCounts: Record<string, number>;
  bytesChecked: number;
  remounts: number;
  elapsedMs: number;
  /** Operations the filesystem lacks (probed at the start), with the errno that said so. */
  skipped: string[];
  /** 'fallocate' or 'ioctl' (pagefs): how collapse and insert were done, null when skipped. */
  shiftVia: string | null;
  /** The first mismatch or unexpected error; absent when clean. */
  failure?: FsxFailure;
  /** On failure: the files under test (left in place) and a dump of the model and the operation log. */
  workDir?: string;
  dumpDir?: string;
}

export const DEFAULTS = { files: 2, maxSize: 256 * 1024, maxOpLen: 64 * 1024 };

/** "write=10,read=0,copy=5" -> weights; throws an Error naming the bad entry. */
export function parseOpMix(text: string): Partial<Record<FsxOp, number>> {
  const out: Partial<Record<FsxOp, number>> = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z_]+)=(\d+)$/.exec(part);
    if (!m) throw new Error(`'${part}' is not NAME=WEIGHT`);
    if (!(FSX_OPS as readonly string[]).includes(m[1])) throw new Error(`unknown operation '${m[1]}' (known: ${FSX_OPS.join(', ')})`);
    const w = Number(m[2]);
    if (w > 1000) throw new Error(`weight ${w} of ${m[1]} is over 1000`);
    out[m[1] as FsxOp] = w;
  }
  return out;
}

export async function runFsx(o: FsxOptions): Promise<FsxResult> {
  const files = o.files ?? DEFAULTS.files;
  const maxSize = o.maxSize ?? DEFAULTS.maxSize;
  const maxOpLen = Math.min(o.maxOpLen ?? DEFAULTS.maxOpLen, maxSize);
  if (!Number.isInteger(files) || files < 1) throw new Error(`fsx: files must be at least 1, not ${files}`);
  if (!Number.isInteger(maxSize) || maxSize < 1024) throw new Error(`fsx: maxSize must be at least 1024, not ${maxSize}`);
  if (o.remountEvery && !o.remount) throw new Error('fsx: remountEvery needs a remount function');
  const cfg: WorkerConfig = {
    dir: o.dir, seed: o.seed, ops: o.ops, files, maxSize, maxOpLen,
    mix: { ...DEFAULT_MIX, ...o.mix },
    remountEvery: o.remountEvery ?? 0,
  };
  const t0 = Date.now();
  const worker = new Worker(distFile('stress/fsx-worker.js'), { workerData: cfg, trackUnmanagedFds: false });
  let blockSize = 0;
  let skipped: string[] = [];
  let shiftVia: string | null = null;
  return new Promise<FsxResult>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      f();
    };
    worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'probe':
          ({ blockSize, skipped, shiftVia } = m);
          o.onProbe?.(m);
          return;
        case 'progress':
          o.onProgress?.(m);
          return;
        case 'remount':
          o.remount!({ op: m.op, index: m.index }).then(
            () => worker.postMessage({ type: 'remounted' } satisfies ToWorker),
            (e) => worker.postMessage({ type: 'remounted', error: (e as Error)?.message ?? String(e) } satisfies ToWorker),
          );
          return;
        case 'crash':
          settle(() => reject(new Error(`fsx: ${m.message}`)));
          return;
        case 'done':
          settle(() => resolve({
            seed: o.seed, ops: m.state.ops, requestedOps: o.ops, files, maxSize, blockSize,
            opCounts: m.state.opCounts, bytesChecked: m.state.bytesChecked, remounts: m.state.remounts,
            elapsedMs: Date.now() - t0, skipped, shiftVia,
            ...(m.state.failure ? { failure: m.state.failure, workDir: m.workDir, dumpDir: m.dumpDir } : {}),
          }));
          return;
      }
    });
    worker.on('error', (e) => settle(() => reject(e)));
    worker.on('exit', (c) => settle(() => reject(new Error(`fsx: the worker exited (${c}) without a result`))));
  });
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The report: on failure the details, then always one summary line. (What was skipped is printed at the start, by the caller's onProbe.) */
export function formatFsx(r: FsxResult): string {
  const lines: string[] = [];
  const counts = Object.entries(r.opCounts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} ${k}`).join(', ');
  const secs = `${(r.elapsedMs / 1000).toFixed(1)} s`;
  const f = r.failure;
  if (!f) {
    lines.push(`fsx: clean: seed ${r.seed}, ${r.ops} ops (${counts || 'none'}), ${r.files} files, ${r.bytesChecked} bytes checked${r.remounts ? `, ${r.remounts} remounts` : ''}, ${secs}`);
    return lines.join('\n') + '\n';
  }
  const title = f.kind === 'error' ? 'ERROR' : 'MISMATCH';
  lines.push(`fsx: ${title} at op #${f.op} of ${r.requestedOps}, seed ${r.seed}, block size ${r.blockSize}: ${f.what}`);
  lines.push(`  during: ${f.opText}`);
  if (f.path) lines.push(`  file:   ${f.file} (${f.path})`);
  if (f.offset !== undefined && f.end !== undefined) {
    lines.push(`  first differing range: ${hex(f.offset)}..${hex(f.end)} (${f.end - f.offset} bytes; ${f.differing} bytes differ in the read of ${hex(f.readOffset!)}+${hex(f.expectedLength!)}, ${f.actualLength} returned)`);
    lines.push(`  expected at ${hex(f.offset)}: ${f.expectedHex || '(nothing)'}`);
    lines.push(`  actual   at ${hex(f.offset)}: ${f.actualHex || '(nothing)'}`);
    lines.push(`  expected bytes: ${f.expected}`);
    lines.push(`  actual bytes:   ${f.actual}`);
  }
  if (f.log.length) {
    lines.push(`  last ${f.log.length} operations:`);
    for (const l of f.log) lines.push(`    ${l}`);
  }
  if (r.dumpDir) lines.push(`  model and operation log: ${r.dumpDir}; the files under test stay in ${r.workDir}`);
  lines.push(`  repeat with: --seed ${r.seed} (same operations on a filesystem with the same block size and operations)`);
  lines.push(`fsx: ${title}: seed ${r.seed}, op #${f.op} of ${r.requestedOps}${f.offset !== undefined ? `, ${f.file} ${hex(f.offset)}..${hex(f.end!)}` : ''}, ${r.ops} ops (${counts || 'none'}), ${r.files} files, ${r.bytesChecked} bytes checked, ${secs}`);
  return lines.join('\n') + '\n';
}
