/**
 * The race stress (pagefs stress --race, the demo, and the page-cache race test):
 * several processes read one target file with read(2), O_DIRECT read(2) and a shared
 * mapping while a writer punches, zeroes, rewrites, copies into (copy_file_range, a
 * remap on pagefs) and in the shift variant inserts and collapses ranges of it and reuses the freed blocks for other files. Every block
 * carries a stamp; the shared model (model.ts) says what each settled block must hold.
 *
 * Verdict: clean when no read returned another file's block and no read that did not
 * overlap an operation on its block returned anything but what the model says. Works on
 * any Linux filesystem directory (the shift variant needs pagefs's ioctls).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { distFile } from '../util/paths.js';
import { SharedModel } from './model.js';
import { stampBlock } from './stamp.js';
import { TARGET_ID, type WorkerConfig, type WriterOp } from './race-worker.js';
import { sys, FALLOC } from '../sys/index.js';
import { PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../vfs/shift.js';

export interface RaceOptions {
  dir: string;
  seed: number;
  durationMs: number;
  readers: number;
  directReaders: number;
  mappers: number;
  blocks: number;
  variant: 'punch' | 'shift';
  stopOnFirst: boolean;
  /** The run goes on past durationMs until the writer has done this many operations (at most 45 s more): on a loaded machine the workers' start-up can eat a short run. */
  minWriterOps?: number;
  onProgress?: (p: { elapsedMs: number; ops: number; violations: number }) => void;
}

export interface Violation {
  role: string;
  id: number;
  why: string;
  offset: number;
  block: number;
  writerOps: number;
  expected: string;
  actual: string;
  actualHex: string;
  settled: boolean;
}

export interface RaceResult {
  seed: number;
  blockSize: number;
  elapsedMs: number;
  writerOps: number;
  opCounts: Record<string, number>;
  reads: number;
  checkedBlocks: number;
  violations: Violation[];
  errors: string[];
  /** Writer operations the filesystem does not support, probed at the start (like fsx). */
  skipped: string[];
}

/** Tries each writer operation once on a scratch file; what fails with EOPNOTSUPP/ENOTTY/EXDEV is skipped. */
async function probe(work: string, bs: number, variant: 'punch' | 'shift'): Promise<{ ops: WriterOp[]; skipped: string[] }> {
  const p = path.join(work, 'probe');
  const q = path.join(work, 'probe-copy');
  await fs.promises.writeFile(p, Buffer.alloc(4 * bs, 1));
  await fs.promises.writeFile(q, '');
  const fd = fs.openSync(p, 'r+');
  const fq = fs.openSync(q, 'r+');
  const ops: WriterOp[] = ['write'];
  const skipped: string[] = [];
  const tryOp = (op: WriterOp, f: () => void) => {
    try {
      f();
      ops.push(op);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTTY' && code !== 'EXDEV' && code !== 'EINVAL') throw e;
      skipped.push(`${op} (${code})`);
    }
  };
  try {
    tryOp('copy', () => sys().copyFileRange(fd, 0, fq, 0, bs, 0));
    tryOp('punch', () => sys().fallocate(fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, 0, bs));
    tryOp('zero', () => sys().fallocate(fd, FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE, 0, bs));
    if (variant === 'shift') tryOp('shift', () => sys().ioctl(fd, PAGEFS_IOC_INSERT_RANGE, encodeRange(0, bs)));
  } finally {
    fs.closeSync(fd);
    fs.closeSync(fq);
    await fs.promises.rm(p);
    await fs.promises.rm(q);
  }
  return { ops, skipped };
}

export async function runRace(o: RaceOptions): Promise<RaceResult> {
  const bs = fs.statfsSync(o.dir).bsize;
  const work = path.join(o.dir, `race-${process.pid}-${o.seed}`);
  await fs.promises.mkdir(work);
  const target = path.join(work, 'target');
  const others = [0, 1, 2].map((i) => path.join(work, `other-${i}`));
  // Every block starts stamped generation 1, and is in the store before the race begins.
  const init = Buffer.allocUnsafe(o.blocks * bs);
  for (let b = 0; b < o.blocks; b++) stampBlock({ file: TARGET_ID, block: b, gen: 1 }, bs, init, b * bs);
  const fh = await fs.promises.open(target, 'w+');
  await fh.write(init, 0, init.length, 0);
  await fh.sync();
  await fh.close();
  const staging = path.join(work, 'staging');
  for (const p of [...others, staging]) await fs.promises.writeFile(p, '');

  const { ops, skipped } = await probe(work, bs, o.variant);
  const modelPath = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `pagefs-race-${process.pid}-${o.seed}.model`);
  const model = SharedModel.create(modelPath, o.blocks + 64);
  model.begin(0, o.blocks);
  model.end(0, Array.from({ length: o.blocks }, (_, b) => ({ gen: 1, kind: 1, stampBlock: b })));

  const result: RaceResult = { seed: o.seed, blockSize: bs, elapsedMs: 0, writerOps: 0, opCounts: {}, reads: 0, checkedBlocks: 0, violations: [], errors: [], skipped };
  const base = { target, others, staging, modelPath, blocks: o.blocks, blockSize: bs, seed: o.seed, variant: o.variant, stopOnFirst: o.stopOnFirst, ops };
  const configs: WorkerConfig[] = [{ ...base, role: 'writer', id: 0 }];
  let id = 1;
  for (let i = 0; i < o.readers; i++) configs.push({ ...base, role: 'read', id: id++ });
  for (let i = 0; i < o.directReaders; i++) configs.push({ ...base, role: 'direct', id: id++ });
  for (let i = 0; i < o.mappers; i++) configs.push({ ...base, role: 'mmap', id: id++ });

  const t0 = Date.now();
  const exits = configs.map((c) => new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [distFile('stress/race-worker.js'), JSON.stringify(c)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    child.stdout.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        take(JSON.parse(line));
      }
    });
    child.stderr.on('data', (d) => { err += d.toString(); });
    const killer = setTimeout(() => child.kill('SIGKILL'), o.durationMs + 105_000);
    child.on('exit', (code, sig) => {
      clearTimeout(killer);
      if (code !== 0) result.errors.push(`${c.role} ${c.id} exited ${sig ?? code}: ${err.trim().split('\n').slice(-3).join(' | ')}`);
      resolve();
    });
  }));
  const take = (m: any) => {
    if (m.type === 'violation') result.violations.push(m);
    else if (m.type === 'error') result.errors.push(`${m.role} ${m.id}: ${m.code ?? ''} ${m.message}`);
    else if (m.type === 'summary' && m.role === 'writer') { result.writerOps = m.ops; result.opCounts = m.counts; }
    else if (m.type === 'summary') { result.reads += m.reads; result.checkedBlocks += m.checked; }
  };

  const ticker = setInterval(() => {
    const elapsedMs = Date.now() - t0;
    o.onProgress?.({ elapsedMs, ops: model.ops, violations: model.violations });
    const enough = model.ops >= (o.minWriterOps ?? 0) || elapsedMs >= o.durationMs + 45_000;
    if (elapsedMs >= o.durationMs && enough) model.stop();
  }, 100);
  await Promise.all(exits);
  clearInterval(ticker);
  result.elapsedMs = Date.now() - t0;
  model.close();
  fs.rmSync(modelPath, { force: true });
  await fs.promises.rm(work, { recursive: true, force: true });
  return result;
}
