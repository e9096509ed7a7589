/**
 * pagefs clone SRC DST: a whole-file reflink through copy_file_range (FICLONE never
 * reaches a FUSE daemon), walking the source's data segments with SEEK_DATA/SEEK_HOLE
 * so that its holes stay holes.
 */
import fs from 'node:fs';
import { sys, SEEK_DATA, SEEK_HOLE } from '../sys/index.js';
import { UserError } from '../util/errors.js';
import { formatSize } from '../util/size.js';

export function cloneCommand(srcPath: string, dstPath: string, o: { force?: boolean }): void {
  const fail = (what: string, e: unknown) => {
    throw new UserError(`pagefs clone: ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  };
  let src: number;
  try {
    src = fs.openSync(srcPath, 'r');
  } catch (e) {
    return fail(srcPath, e);
  }
  let dst = -1;
  try {
    const st = fs.fstatSync(src);
    if (!st.isFile()) throw new UserError(`pagefs clone: ${srcPath} is not a regular file`);
    try {
      dst = fs.openSync(dstPath, o.force ? 'w' : 'wx', st.mode & 0o7777);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UserError(`pagefs clone: ${dstPath} exists (use --force to replace its contents)`);
      fail(dstPath, e);
    }
    const s = sys();
    let off = 0;
    let copied = 0;
    while (off < st.size) {
      let data: number;
      try {
        data = s.lseek(src, off, SEEK_DATA);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENXIO') break;
        throw e;
      }
      const hole = s.lseek(src, data, SEEK_HOLE);
      for (let at = data; at < hole;) {
        let n: number;
        try {
          n = s.copyFileRange(src, at, dst, at, hole - at, 0);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EXDEV') throw new UserError(`pagefs clone: ${srcPath} and ${dstPath} are not on the same filesystem`);
          return fail(`copy_file_range at ${at}`, e);
        }
        if (n === 0) break;
        at += n;
        copied += n;
      }
      off = hole;
    }
    fs.ftruncateSync(dst, st.size);
    process.stdout.write(`pagefs clone: ${srcPath} -> ${dstPath}: ${formatSize(st.size)}, ${formatSize(copied)} of data shared or copied\n`);
  } finally {
    fs.closeSync(src);
    if (dst >= 0) fs.closeSync(dst);
  }
}
