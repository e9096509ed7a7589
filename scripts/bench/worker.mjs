#!/usr/bin/env node
/**
 * Measurements that fio cannot make, each run by bench.mjs as its own process so that
 * nothing of the benchmark driver (heap, open files) is in the way. Prints one JSON
 * object on stdout. Usage: node scripts/bench/worker.mjs KIND ARGS...
 *
 *   churn BYTES                  populate then free BYTES of anonymous memory (half of it
 *                                in 4 KiB pages, half advised for huge pages)
 *   copy SRC DST                 copy_file_range of all of SRC into a new DST, then
 *                                fsync; MiB/s and the free space (statfs) it took
 *   create DIR N | stat DIR N | unlink DIR N
 *                                N files f0000000.. in DIR: create (open O_CREAT|O_EXCL,
 *                                close), stat(2), unlink; ops/s
 *   lookup DIR N NAME...         stat DIR, then time stat(2) of each NAME in it, N times
 *                                over the list; mean microseconds per stat
 *   punch FILE BLOCKSIZE OFF...  one fallocate(PUNCH_HOLE|KEEP_SIZE) of BLOCKSIZE at each
 *                                offset; microseconds per punch (each, in order)
 *   prealloc FILE BYTES          fallocate(mode 0) of BYTES, then fsync
 *   pwrite FILE BLOCKSIZE OFF... write BLOCKSIZE bytes at each offset, then fsync
 *
 * stat is stat(2), the basic fields, as C programs, ls and find ask for them; node's
 * fs.statSync is statx(2) with the birth time too, which a FUSE daemon that serves birth
 * times (pagefs) answers with a FUSE_STATX request after each LOOKUP, and one that does
 * not (fuse2fs, bindfs) never sees: the same call would not ask the same of each system.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const now = () => Number(process.hrtime.bigint()) / 1e9;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fname = (i) => `f${String(i).padStart(7, '0')}`;

async function sys() {
  const m = await import(path.join(ROOT, 'dist', 'sys', 'index.js'));
  return { s: m.sys(), FALLOC: m.FALLOC };
}

function freeBytes(dir) {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
}

const [kind, ...args] = process.argv.slice(2);
switch (kind) {
  case 'churn': {
    // Half in ordinary 4 KiB pages (what the kernel's page cache and tmpfs take), half in
    // memory advised for transparent huge pages (what pagefs's page frames take,
    // src/cache/frames.ts): the first touch of either kind is slow on this VM until the
    // host has backed it again, and each system should find its kind warm.
    const total = Number(args[0]);
    const chunk = 256 * 1024 * 1024;
    const t0 = now();
    const keep = [];
    const { s } = await sys();
    for (let done = 0, i = 0; done < total; done += chunk, i++) {
      const n = Math.min(chunk, total - done);
      const b = i % 2 === 0 ? Buffer.allocUnsafeSlow(n) : s.slab(n);
      b.fill(0xa5);
      keep.push(b);
    }
    out({ bytes: total, seconds: now() - t0 });
    break; // freed when the process exits
  }
  case 'copy': {
    const { s } = await sys();
    const [src, dst] = args;
    const size = fs.statSync(src).size;
    const fdIn = fs.openSync(src, 'r');
    const fdOut = fs.openSync(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    const dir = path.dirname(dst);
    const before = freeBytes(dir);
    const t0 = now();
    let off = 0;
    let calls = 0;
    while (off < size) {
      const n = s.copyFileRange(fdIn, off, fdOut, off, Math.min(size - off, 1 << 30), 0);
      calls++;
      if (n <= 0) throw new Error(`copy_file_range returned ${n} at offset ${off} of ${size}`);
      off += n;
    }
    fs.fsyncSync(fdOut);
    const seconds = now() - t0;
    fs.closeSync(fdOut);
    fs.closeSync(fdIn);
    const after = freeBytes(dir);
    out({ bytes: size, seconds, calls, mibps: size / 1048576 / seconds, spaceTaken: before - after });
    break;
  }
  case 'create':
  case 'stat':
  case 'unlink': {
    const [dir, nArg] = args;
    const n = Number(nArg);
    const names = Array.from({ length: n }, (_, i) => path.join(dir, fname(i)));
    const { s } = await sys();
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const t0 = now();
    if (kind === 'create') for (const p of names) fs.closeSync(fs.openSync(p, flags, 0o644));
    else if (kind === 'stat') for (const p of names) s.stat(p);
    else for (const p of names) fs.unlinkSync(p);
    const seconds = now() - t0;
    out({ ops: n, seconds, opsPerSec: n / seconds });
    break;
  }
  case 'lookup': {
    const [dir, repArg, ...names] = args;
    const { s } = await sys();
    s.stat(dir);
    const reps = Number(repArg);
    const t0 = now();
    for (let r = 0; r < reps; r++) for (const nm of names) s.stat(path.join(dir, nm));
    const seconds = now() - t0;
    const ops = reps * names.length;
    out({ ops, seconds, usPerOp: (seconds / ops) * 1e6 });
    break;
  }
  case 'punch': {
    const { s, FALLOC } = await sys();
    const [file, bsArg, ...offs] = args;
    const bs = Number(bsArg);
    const fd = fs.openSync(file, 'r+');
    const us = [];
    for (const o of offs) {
      const t0 = now();
      s.fallocate(fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, Number(o), bs);
      us.push((now() - t0) * 1e6);
    }
    fs.closeSync(fd);
    out({ us });
    break;
  }
  case 'prealloc': {
    const { s } = await sys();
    const [file, bytes] = args;
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    const t0 = now();
    s.fallocate(fd, 0, 0, Number(bytes));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    out({ seconds: now() - t0 });
    break;
  }
  case 'pwrite': {
    const [file, bsArg, ...offs] = args;
    const buf = Buffer.alloc(Number(bsArg), 0x5a);
    const fd = fs.openSync(file, 'r+');
    const t0 = now();
    for (const o of offs) fs.writeSync(fd, buf, 0, buf.length, Number(o));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    out({ seconds: now() - t0 });
    break;
  }
  default:
    process.stderr.write(`worker: unknown kind '${kind}'\n`);
    process.exit(2);
}
