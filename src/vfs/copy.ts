/**
 * copy_file_range. The kernel has already checked flags (0), overlap within one file and
 * clipped the length to the source's EOF as it saw it.
 *
 * This version copies bytes through the page cache: the source range is read under its
 * invalidate_lock shared (a fill) and written to the destination under its i_rwsem
 * exclusive, locks taken in the order of docs/LOCKING.md (both i_rwsems ascending, then
 * invalidate_locks). Block sharing (reflink) replaces the byte copy in copy/remap work.
 */
import type { Vfs } from './vfs.js';
import { OpCtx, type LockMode } from '../cache/lockcheck.js';
import { lockOrder, type RwLock } from '../cache/rwlock.js';
import { fillLocked } from '../cache/fill.js';
import { writeLocked } from '../cache/write.js';
import { fsErr } from '../util/errors.js';

const CHUNK = 1 << 20;

export async function copyFileRange(vfs: Vfs, inoIn: number, offIn: number, fhIn: number, inoOut: number, offOut: number, fhOut: number, len: number): Promise<number> {
  const src = vfs.handle(fhIn, inoIn).inode;
  const dst = vfs.handle(fhOut, inoOut).inode;
  if (!src.mapping || !dst.mapping) throw fsErr('EISDIR');
  if (src === dst && offIn < offOut + len && offOut < offIn + len) throw fsErr('EINVAL');
  if (offOut + len > vfs.maxFileSize) throw fsErr('EFBIG');
  len = Math.max(0, Math.min(len, src.rec.size - offIn));
  if (len === 0) return 0;
  const ctx = new OpCtx('copy_file_range');
  const rw = lockOrder([src.mapping.iRwsem, dst.mapping.iRwsem]);
  const held: [RwLock, LockMode][] = [];
  try {
    for (const l of rw) {
      await l.acquire(ctx, 'exclusive');
      held.push([l, 'exclusive']);
    }
    // The destination's pages change under it: exclusive. The source is only filled: shared.
    for (const l of lockOrder([src.mapping.invalidateLock, dst.mapping.invalidateLock])) {
      const mode: LockMode = l === dst.mapping.invalidateLock ? 'exclusive' : 'shared';
      await l.acquire(ctx, mode);
      held.push([l, mode]);
    }
    const ps = vfs.cache.pageSize;
    for (let done = 0; done < len;) {
      const n = Math.min(CHUNK, len - done);
      const at = offIn + done;
      const pages = await fillLocked(ctx, src.mapping, Math.floor(at / ps), Math.floor((at + n - 1) / ps), vfs.src);
      const buf = Buffer.allocUnsafe(n);
      let w = 0;
      for (const p of pages) {
        const start = p.index * ps;
        w += p.data.copy(buf, w, Math.max(at, start) - start, Math.min(at + n, start + ps) - start);
      }
      await writeLocked(ctx, dst.mapping, offOut + done, buf, vfs.src, vfs.store.blocks, true);
      done += n;
      if (offOut + done > dst.rec.size) dst.rec.size = offOut + done;
    }
    dst.stamp('mc');
  } finally {
    for (const [l, mode] of held.reverse()) l.release(ctx, mode);
  }
  vfs.balance();
  return len;
}
