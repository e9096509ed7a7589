/**
 * fsx's start-up probe, as xfstests' fsx does it: each optional operation is tried once
 * on a scratch file, and what the filesystem refuses (EOPNOTSUPP, ENOTTY, EXDEV, ...) is
 * skipped and said. Collapse and insert are tried as fallocate modes first, then as
 * pagefs's ioctls (the kernel's FUSE client refuses the modes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { sys, FALLOC, SEEK_DATA, SEEK_HOLE, PROT_READ, PROT_WRITE, MAP_SHARED, MS_SYNC } from '../sys/index.js';
import { PAGEFS_IOC_COLLAPSE_RANGE, PAGEFS_IOC_INSERT_RANGE, encodeRange } from '../vfs/shift.js';
import type { FsxOp } from './fsx-ops.js';

const PAGE = 4096;
const UNSUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP', 'ENOTTY', 'EXDEV', 'ENOSYS', 'ENODEV', 'EINVAL']);
const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

export interface Probe {
  blockSize: number;
  supported: FsxOp[];
  /** Operations the filesystem lacks, with the errno that said so. */
  skipped: string[];
  /** How collapse and insert are done: the fallocate modes, or pagefs's ioctls. */
  shiftVia: 'fallocate' | 'ioctl' | null;
}

/** Tries each optional operation in `work`; returns what works, what was skipped and why, and how shifts are done. */
export function probeOperations(work: string, bs: number): { ok: Set<FsxOp>; skipped: string[]; shiftVia: Probe['shiftVia'] } {
  const p = path.join(work, 'probe');
  const q = path.join(work, 'probe-copy');
  fs.writeFileSync(p, Buffer.alloc(8 * bs, 0x5a));
  fs.writeFileSync(q, '');
  const fd = fs.openSync(p, 'r+');
  const fq = fs.openSync(q, 'r+');
  const skipped: string[] = [];
  const ok = new Set<FsxOp>(['read', 'write', 'truncate', 'fsync', 'reopen']);
  const attempt = (op: FsxOp, f: () => void): boolean => {
    try {
      f();
      ok.add(op);
      return true;
    } catch (e) {
      if (!UNSUPPORTED.has(code(e))) throw e;
      skipped.push(`${op} (${code(e)})`);
      return false;
    }
  };
  let shiftVia: Probe['shiftVia'] = null;
  try {
    attempt('falloc', () => sys().fallocate(fd, 0, 8 * bs, bs));
    attempt('falloc_keep', () => sys().fallocate(fd, FALLOC.KEEP_SIZE, 12 * bs, bs));
    attempt('punch', () => sys().fallocate(fd, FALLOC.PUNCH_HOLE | FALLOC.KEEP_SIZE, 0, bs));
    attempt('zero', () => sys().fallocate(fd, FALLOC.ZERO_RANGE, bs, bs));
    attempt('zero_keep', () => sys().fallocate(fd, FALLOC.ZERO_RANGE | FALLOC.KEEP_SIZE, bs, bs));
    for (const [op, mode, ioc] of [['insert', FALLOC.INSERT_RANGE, PAGEFS_IOC_INSERT_RANGE], ['collapse', FALLOC.COLLAPSE_RANGE, PAGEFS_IOC_COLLAPSE_RANGE]] as const) {
      let viaFalloc = '';
      try {
        sys().fallocate(fd, mode, 0, bs);
        ok.add(op);
        shiftVia = 'fallocate';
        continue;
      } catch (e) {
        if (!UNSUPPORTED.has(code(e))) throw e;
        viaFalloc = code(e);
      }
      try {
        sys().ioctl(fd, ioc, encodeRange(0, bs));
        ok.add(op);
        shiftVia = 'ioctl';
      } catch (e) {
        if (!UNSUPPORTED.has(code(e))) throw e;
        skipped.push(`${op} (fallocate ${viaFalloc}, ioctl ${code(e)})`);
      }
    }
    attempt('copy', () => {
      sys().copyFileRange(fd, 0, fq, 0, bs, 0);
      sys().copyFileRange(fd, 0, fd, 4 * bs, bs, 0);
    });
    attempt('mapread', () => {
      const m = sys().mmap(fd, 0, bs, PROT_READ, MAP_SHARED);
      try { m.read(0, 1); } finally { m.munmap(); }
    });
    attempt('mapwrite', () => {
      const m = sys().mmap(fd, 0, bs, PROT_READ | PROT_WRITE, MAP_SHARED);
      try {
        m.write(0, Buffer.from([1]));
        m.msync(0, 1, MS_SYNC);
      } finally { m.munmap(); }
    });
    attempt('dread', () => {
      const d = sys().openDirect(p, fs.constants.O_RDONLY);
      try { sys().preadDirect(d, Math.max(PAGE, bs), 0); } finally { fs.closeSync(d); }
    });
    attempt('seek', () => {
      sys().lseek(fd, 0, SEEK_DATA);
      sys().lseek(fd, 0, SEEK_HOLE);
    });
  } finally {
    fs.closeSync(fd);
    fs.closeSync(fq);
    fs.rmSync(p);
    fs.rmSync(q);
  }
  return { ok, skipped, shiftVia };
}
