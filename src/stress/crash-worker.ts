/**
 * The workload process of the crash-under-load checker (crash.ts starts one per round):
 * a seeded random sequence of operations on K files at the root of a pagefs mount, until
 * the daemon is SIGKILLed under it and its system calls fail (ENOTCONN, ECONNABORTED).
 *
 * Before it issues an operation it appends one JSON line describing it to a log file
 * outside the mount (O_APPEND, fs.writeSync: a local file, intact whatever happens to the
 * mount), and after every fsync/fdatasync (of a file or of the directory) returns it
 * appends a line saying so. crash.ts replays that log to know what each file may hold.
 *
 * Operations: pwrite of whole stamped blocks (at most 256 KiB), ftruncate up and down
 * (to block boundaries and to any byte), punch hole (PUNCH_HOLE|KEEP_SIZE, whole blocks),
 * the atomic replace (write a temp file, fsync it, rename it over the file, fsync the
 * directory), unlink of an open file (then the name is created afresh and the directory
 * fsynced; the unlinked inode stays open, gets written and fsynced, an orphan at the
 * crash), and fsync or fdatasync of one file every 1 to 5 operations.
 *
 * Stamps: block b of file slot F carries stamp {file: F + 1, block: b, gen} where gen is
 * unique to the operation that wrote it, so any block read back names the operation.
 * Blocks written to unlinked inodes carry file id ORPHAN_ID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sys, FALLOC } from '../sys/index.js';
import { stampBlock } from './stamp.js';
import { Rng } from './rng.js';

export interface CrashWorkerConfig {
  /** The directory the files live in (the mount's root). */
  dir: string;
  /** The operation log, outside the mount. */
  log: string;
  seed: number;
  round: number;
  files: number;
  /** Largest file size; sizes and block ranges stay below it (rounded down to whole blocks). */
  maxFileSize: number;
  blockSize: number;
  /** First generation number this round hands out (unique across rounds). */
  genStart: number;
  /** The worker stops by itself after this long (a safety net; the daemon dies first). */
  maxMs: number;
}

/** The log's lines. `n` numbers the operations of one round; others say what completed. */
export type CrashLogLine =
  | { op: 'start'; round: number; seed: number; pid: number; genStart: number }
  | { n: number; op: 'open'; f: number }
  | { n: number; op: 'write'; f: number; b: number; nb: number; gen: number }
  | { n: number; op: 'truncate'; f: number; size: number }
  | { n: number; op: 'punch'; f: number; b: number; nb: number }
  | { n: number; op: 'tmp'; f: number; gen: number; nb: number; size: number }
  | { n: number; op: 'rename'; f: number }
  | { n: number; op: 'unlink'; f: number }
  | { n: number; op: 'create'; f: number }
  | { n: number; op: 'orphan-write'; gen: number; nb: number }
  | { fsynced: number; after: number; data: boolean }
  | { tmpsynced: number; after: number }
  | { dirsynced: true; after: number }
  | { op: 'error'; after: number; code?: string; message: string }
  | { op: 'done'; after: number };

export const FILE_PREFIX = 'crash-f';
export const fileNameOf = (f: number) => `${FILE_PREFIX}${f}`;
export const tmpNameOf = (f: number) => `${FILE_PREFIX}${f}.tmp`;
/** Stamp file id of slot f. */
export const stampIdOf = (f: number) => f + 1;
export const ORPHAN_ID = 0xffff;
export const stampFileName = (id: number) => (id === ORPHAN_ID ? 'an unlinked file' : id >= 1 && id < ORPHAN_ID ? fileNameOf(id - 1) : `unknown file id ${id}`);

/** Largest single pwrite. */
export const MAX_WRITE = 256 << 10;

function worker(c: CrashWorkerConfig): void {
  const rng = new Rng(c.seed);
  const bs = c.blockSize;
  const maxBlocks = Math.max(1, Math.floor(c.maxFileSize / bs));
  const maxSize = maxBlocks * bs;
  const writeBlocks = Math.max(1, Math.min(maxBlocks, MAX_WRITE / bs));
  const logFd = fs.openSync(c.log, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
  const log = (line: CrashLogLine) => { fs.writeSync(logFd, JSON.stringify(line) + '\n'); };
  const name = (f: number) => path.join(c.dir, fileNameOf(f));
  let n = 0;
  let gen = c.genStart;
  const t0 = Date.now();
  log({ op: 'start', round: c.round, seed: c.seed, pid: process.pid, genStart: c.genStart });
  try {
    const dirsync = () => {
      const d = fs.openSync(c.dir, 'r');
      try {
        fs.fsyncSync(d);
      } finally {
        fs.closeSync(d);
      }
      log({ dirsynced: true, after: n });
    };
    const stamped = (id: number, b: number, nb: number, g: number) => {
      const buf = Buffer.allocUnsafe(nb * bs);
      for (let k = 0; k < nb; k++) stampBlock({ file: id, block: b + k, gen: g }, bs, buf, k * bs);
      return buf;
    };
    const writeAll = (fd: number, buf: Buffer, pos: number) => {
      for (let done = 0; done < buf.length;) {
        const len = Math.min(MAX_WRITE, buf.length - done);
        done += fs.writeSync(fd, buf, done, len, pos + done);
      }
    };

    const fds: number[] = [];
    const sizes: number[] = [];
    for (let f = 0; f < c.files; f++) {
      log({ n: ++n, op: 'open', f });
      fds.push(fs.openSync(name(f), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644));
      sizes.push(fs.fstatSync(fds[f]).size);
    }
    dirsync();
    const orphans: number[] = [];
    process.stdout.write(JSON.stringify({ type: 'ready' }) + '\n');

    let last = 0;
    let untilSync = 1 + rng.int(5);
    while (Date.now() - t0 < c.maxMs) {
      const f = rng.int(c.files);
      const r = rng.int(100);
      if (r < 45) {
        // Mostly small writes, some up to MAX_WRITE.
        const nb = 1 + rng.int(rng.int(3) === 0 ? writeBlocks : Math.min(4, writeBlocks));
        const b = rng.int(maxBlocks - nb + 1);
        const g = gen++;
        const buf = stamped(stampIdOf(f), b, nb, g);
        log({ n: ++n, op: 'write', f, b, nb, gen: g });
        writeAll(fds[f], buf, b * bs);
        sizes[f] = Math.max(sizes[f], (b + nb) * bs);
      } else if (r < 62) {
        let size: number;
        const how = rng.int(3);
        if (how === 0) size = rng.int(maxSize + 1);
        else if (how === 1) size = Math.max(0, Math.min(maxSize, sizes[f] + rng.int(6 * bs + 1) - 3 * bs));
        else size = rng.int(maxBlocks + 1) * bs;
        log({ n: ++n, op: 'truncate', f, size });
        fs.ftruncateSync(fds[f], size);
        sizes[f] = size;
      } else if (r < 80) {
        const nb = 1 + rng.int(16);
        const b = rng.int(maxBlocks);
        log({ n: ++n, op: 'punch', f, b, nb });
        sys().fallocate(fds[f], FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, b * bs, nb * bs);
      } else if (r < 86) {
        // The atomic replace: temp file, fsync, rename over the file, fsync the directory.
        const nb = 1 + rng.int(Math.min(maxBlocks, 64));
        const size = rng.int(2) === 0 ? nb * bs : nb * bs - rng.int(bs);
        const g = gen++;
        const tmp = path.join(c.dir, tmpNameOf(f));
        log({ n: ++n, op: 'tmp', f, gen: g, nb, size });
        const tfd = fs.openSync(tmp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
        writeAll(tfd, stamped(stampIdOf(f), 0, nb, g), 0);
        if (size < nb * bs) fs.ftruncateSync(tfd, size);
        fs.fsyncSync(tfd);
        log({ tmpsynced: f, after: n });
        log({ n: ++n, op: 'rename', f });
        fs.renameSync(tmp, name(f));
        fs.closeSync(tfd);
        fs.closeSync(fds[f]);
        fds[f] = fs.openSync(name(f), fs.constants.O_RDWR);
        sizes[f] = size;
        dirsync();
      } else if (r < 90) {
        // Unlink the open file; it lives on as an orphan. The name is created afresh.
        log({ n: ++n, op: 'unlink', f });
        fs.unlinkSync(name(f));
        orphans.push(fds[f]);
        log({ n: ++n, op: 'create', f });
        fds[f] = fs.openSync(name(f), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
        sizes[f] = 0;
        dirsync();
        if (orphans.length > 3) fs.closeSync(orphans.shift()!);
      } else if (orphans.length > 0) {
        const fd = orphans[rng.int(orphans.length)];
        const nb = 1 + rng.int(8);
        const g = gen++;
        log({ n: ++n, op: 'orphan-write', gen: g, nb });
        writeAll(fd, stamped(ORPHAN_ID, 0, nb, g), 0);
        fs.fsyncSync(fd);
      } else {
        continue;
      }
      last = f;
      if (--untilSync === 0) {
        untilSync = 1 + rng.int(5);
        // Mostly the file just touched, else any.
        const g = rng.int(10) < 7 ? last : rng.int(c.files);
        const data = rng.int(10) < 4;
        if (data) fs.fdatasyncSync(fds[g]);
        else fs.fsyncSync(fds[g]);
        log({ fsynced: g, after: n, data });
      }
    }
    log({ op: 'done', after: n });
    process.stdout.write(JSON.stringify({ type: 'done', ops: n }) + '\n');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    log({ op: 'error', after: n, code: err.code, message: err.message });
    process.stdout.write(JSON.stringify({ type: 'error', after: n, code: err.code, message: err.message }) + '\n');
  }
}

function main(): void {
  worker(JSON.parse(process.argv[2]) as CrashWorkerConfig);
  // Descriptors on the dead mount are left for the kernel to drop at exit.
  process.exit(0);
}

// Imported by crash.ts for its types and names; run only as a worker process.
if (process.argv[1] === fileURLToPath(import.meta.url)) main();
