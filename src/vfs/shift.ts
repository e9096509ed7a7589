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
import { withFilled } from '../cache/fill.js';
import { fsErr } from '../util/errors.js';
import { checkShift } from './flags.js';

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
  // vfs_fallocate refuses append-only and immutable files before the filesystem checks its arguments.
  checkShift(inode);
  if (!inode.mapping) throw fsErr('ENODEV');
  if (offset % bs !== 0 || length % bs !== 0 || length <= 0) throw fsErr('EINVAL');
  if (offset + length >= inode.rec.size) throw fsErr('EINVAL');
  await shift(vfs, inode, offset, -length);
}

export async function insertRange(vfs: Vfs, fh: number, ino: number, offset: number, length: number): Promise<void> {
  const inode = vfs.handle(fh, ino).inode;
  const bs = vfs.blockSize;
  // vfs_fallocate refuses append-only and immutable files before the filesystem checks its arguments.
  checkShift(inode);
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
  // The kernel's i_size: an insert raises it here (copy_file_range, O_APPEND and mmap use
  // the cached size without asking). A collapse cannot lower it from the daemon: the
  // invalidation above marks the attributes stale, and the caller's next fstat, lseek
  // SEEK_END or stat refreshes them; pagefs collapse and the stress tools fstat at once.
  if (delta > 0) await raiseKernelSize(vfs, inode);
}

const KERNEL_PAGE = 4096;

/**
 * FUSE_NOTIFY_STORE raises the kernel's i_size only when it carries data, and puts that
 * data into the kernel's page cache: so we send the file's own last byte (two when the
 * last byte starts a page: a store at a page's start that reaches EOF would mark the
 * page uptodate with unset bytes after it). i_rwsem is held so no write changes those
 * bytes meanwhile; a store takes no lock a FUSE request of ours would need.
 */
async function raiseKernelSize(vfs: Vfs, inode: Inode): Promise<void> {
  const m = inode.mapping!;
  const ctx = new OpCtx('insert_range(size)');
  await m.iRwsem.acquire(ctx, 'exclusive');
  try {
    const size = inode.rec.size;
    if (size < 2) return;
    const at = (size - 1) % KERNEL_PAGE === 0 ? size - 2 : size - 1;
    const ps = vfs.cache.pageSize;
    const bytes = await withFilled(ctx, m, Math.floor(at / ps), Math.floor((size - 1) / ps), vfs.src, (pages) => {
      const out = Buffer.alloc(size - at);
      let w = 0;
      for (const p of pages) {
        const start = p.index * ps;
        w += p.data.copy(out, w, Math.max(at, start) - start, Math.min(size, start + ps) - start);
      }
      return out;
    });
    await vfs.invalidator.storeKernel(inode.ino, at, bytes);
  } finally {
    m.iRwsem.release(ctx, 'exclusive');
  }
}
