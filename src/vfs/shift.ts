/**
 * COLLAPSE_RANGE and INSERT_RANGE, with ext4's rules. The kernel's FUSE client rejects
 * these fallocate modes before any daemon sees them (fuse_file_fallocate's mode filter),
 * so they arrive as pagefs ioctls on the open file (restricted _IOW ioctls do reach
 * FUSE daemons). They are the hardest case for the invalidate_lock: every page after
 * the offset changes meaning.
 *
 * The kernel did not see these changes, so we drop its cached pages ourselves: once
 * before (notify_inval_inode writes back pages dirtied through mmap, at their old
 * offsets, while those offsets still mean what they meant), and once after, before the
 * reply (pages faulted in meanwhile: once the ioctl has returned none may be served). Between the two, a store through a shared mapping can still
 * land at its pre-shift offset: the same gap the kernel leaves for copy_file_range.
 */
import type { Vfs } from './vfs.js';
import type { Inode } from './inode.js';
import { OpCtx } from '../cache/lockcheck.js';
import { invalidateRangeLocked } from '../cache/invalidate.js';
import { fsErr } from '../util/errors.js';

/** _IOW('P', nr, struct { u64 offset; u64 length; }) */
const iow = (nr: number, size: number) => ((1 << 30) | (size << 16) | (0x50 << 8) | nr) >>> 0;
export const PAGEFS_IOC_COLLAPSE_RANGE = iow(1, 16);
export const PAGEFS_IOC_INSERT_RANGE = iow(2, 16);

export function encodeRange(offset: number, length: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(offset), 0);
  b.writeBigUInt64LE(BigInt(length), 8);
  return b;
}

export function decodeRange(b: Buffer | null): { offset: number; length: number } {
  if (!b || b.length < 16) throw fsErr('EINVAL');
  const off = b.readBigUInt64LE(0);
  const len = b.readBigUInt64LE(8);
  // Anything past 2^53 is past the maximum file size anyway; keep it huge, not wrapped.
  return { offset: off > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(off), length: len > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(len) };
}

export async function collapseRange(vfs: Vfs, fh: number, ino: number, offset: number, length: number): Promise<void> {
  const inode = vfs.handle(fh, ino).inode;
  const bs = vfs.blockSize;
  if (!inode.mapping) throw fsErr('ENODEV');
  if (offset % bs !== 0 || length % bs !== 0 || length <= 0) throw fsErr('EINVAL');
  if (offset + length >= inode.rec.size) throw fsErr('EINVAL');
  await shift(vfs, inode, offset, -length);
}

export async function insertRange(vfs: Vfs, fh: number, ino: number, offset: number, length: number): Promise<void> {
  const inode = vfs.handle(fh, ino).inode;
  const bs = vfs.blockSize;
  if (!inode.mapping) throw fsErr('ENODEV');
  if (offset % bs !== 0 || length % bs !== 0 || length <= 0) throw fsErr('EINVAL');
  if (offset >= inode.rec.size) throw fsErr('EINVAL');
  if (inode.rec.size + length > vfs.maxFileSize) throw fsErr('EFBIG');
  await shift(vfs, inode, offset, length);
}

async function shift(vfs: Vfs, inode: Inode, offset: number, delta: number): Promise<void> {
  const m = inode.mapping!;
  const bs = vfs.blockSize;
  await vfs.invalidator.invalInodeNow(inode.ino, offset, 0);
  const ctx = new OpCtx(delta < 0 ? 'collapse_range' : 'insert_range');
  await m.iRwsem.acquire(ctx, 'exclusive');
  try {
    // Checked again under the lock: the size may have changed while we flushed.
    if (delta < 0 ? offset - delta >= inode.rec.size : offset >= inode.rec.size) throw fsErr('EINVAL');
    await m.invalidateLock.acquire(ctx, 'exclusive');
    try {
      // Dirty pages carry their offsets; the store must have them before the blocks move.
      vfs.writeback(inode);
      invalidateRangeLocked(ctx, m, offset, Number.MAX_SAFE_INTEGER, vfs.store.blocks);
      const fb = offset / bs;
      const n = Math.abs(delta) / bs;
      inode.rec.size += delta;
      inode.stamp('mc');
      vfs.store.txn(() => {
        if (delta < 0) {
          vfs.store.blocks.unmapRange(inode.ino, fb, fb + n - 1);
          vfs.store.blocks.shift(inode.ino, fb + n, -n);
        } else {
          vfs.store.blocks.shift(inode.ino, fb, n);
        }
        vfs.persist(inode);
      });
    } finally {
      m.invalidateLock.release(ctx, 'exclusive');
    }
  } finally {
    m.iRwsem.release(ctx, 'exclusive');
  }
  // Before replying: once the ioctl returns, no read may find a pre-shift page in the kernel.
  await vfs.invalidator.invalInodeNow(inode.ino, offset, 0);
}
