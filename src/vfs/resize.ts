/**
 * Changing a file's size (setattr size, and the size-changing fallocate modes). Truncate
 * down moves blocks out from under cached pages, so it takes the invalidate_lock
 * exclusive, like punch hole: the same invalidation path (docs/LOCKING.md).
 */
import type { Vfs } from './vfs.js';
import type { Inode } from './inode.js';
import { assertHeld, type OpCtx } from '../cache/lockcheck.js';
import { fillLocked } from '../cache/fill.js';
import { invalidateRangeLocked } from '../cache/invalidate.js';
import { fsErr } from '../util/errors.js';

/** Requires i_rwsem exclusive; takes the invalidate_lock exclusive itself when shrinking. */
export async function setSizeLocked(vfs: Vfs, ctx: OpCtx, inode: Inode, size: number): Promise<void> {
  const m = inode.mapping;
  if (!m) throw fsErr('EINVAL');
  assertHeld(ctx, m.iRwsem, 'exclusive');
  if (size > vfs.maxFileSize) throw fsErr('EFBIG');
  const old = inode.rec.size;
  if (size >= old) {
    inode.rec.size = size;
    inode.stamp('mc');
    vfs.store.txn(() => vfs.persist(inode));
    return;
  }
  const bs = vfs.blockSize;
  await m.invalidateLock.acquire(ctx, 'exclusive');
  try {
    if (size % bs !== 0) {
      // The block that keeps the new EOF keeps its head; its tail must read as zeros if the file grows again.
      const idx = Math.floor(size / vfs.cache.pageSize);
      await fillLocked(ctx, m, idx, idx, vfs.src);
    }
    invalidateRangeLocked(ctx, m, size, Number.MAX_SAFE_INTEGER, vfs.store.blocks);
    inode.rec.size = size;
    inode.stamp('mc');
    // The block keeping the new EOF goes to the store zeroed in the same transaction as
    // the size: after a crash the store must never hold the new size over the old tail
    // bytes, which a later growth would show (found by the crash campaign).
    const tail = size % bs !== 0 ? tailBlock(vfs, inode, Math.floor(size / bs)) : null;
    vfs.store.txn(() => {
      vfs.store.blocks.unmapRange(inode.ino, Math.ceil(size / bs), Number.MAX_SAFE_INTEGER);
      if (tail) vfs.store.blocks.writeBlock(inode.ino, tail.fb, tail.bytes, tail.reserved);
      vfs.persist(inode);
    });
    if (tail) tail.written();
  } finally {
    m.invalidateLock.release(ctx, 'exclusive');
  }
}

/** The cached, dirty block `fb` (zeroed past EOF by the invalidation), to write now; null when it needs no write. */
function tailBlock(vfs: Vfs, inode: Inode, fb: number) {
  const { bpp, blockSize: bs } = vfs.cache;
  const page = inode.mapping!.get(Math.floor(fb / bpp));
  const bit = 1 << (fb % bpp);
  if (!page || !(page.dirty & bit)) return null;
  const b = fb % bpp;
  return {
    fb,
    bytes: page.data.subarray(b * bs, (b + 1) * bs),
    reserved: (page.reserved & bit) !== 0,
    written: () => {
      page.reserved &= ~bit;
      vfs.cache.markClean(page, bit);
    },
  };
}
