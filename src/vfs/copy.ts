/**
 * copy_file_range as a reflink-like remap. Whole blocks that line up in source and
 * destination are shared (the destination maps the source's physical block and its
 * refcount goes up; no byte is copied, no block is used); unaligned heads and tails are
 * copied through the page cache. A later write to either side copies the shared block
 * first (writeback's copy on write); punch, zero, truncate and collapse on either side
 * drop one reference; a block is free again only at refcount 0.
 *
 * The kernel has already checked flags (0), same-file overlap and clipped the length to
 * the source's EOF as it saw it (generic_copy_file_checks). Locks, docs/LOCKING.md:
 * both i_rwsems (source shared, destination exclusive), then both invalidate_locks
 * (source shared, destination exclusive), each pair in ascending inode number, one lock
 * when source and destination are the same file.
 */
import type { Vfs, Caller } from './vfs.js';
import { killPriv, guessVerdict } from './killpriv.js';
import type { Inode } from './inode.js';
import { OpCtx, type LockMode } from '../cache/lockcheck.js';
import { lockOrder, type RwLock } from '../cache/rwlock.js';
import { fillLocked } from '../cache/fill.js';
import { writeLocked } from '../cache/write.js';
import { invalidateRangeLocked } from '../cache/invalidate.js';
import { fsErr } from '../util/errors.js';
import { checkWrite } from './flags.js';

const CHUNK = 1 << 20;
/** Blocks shared per transaction. */
const SHARE_SLICE = 16384;
/** The reply's byte count is 32 bits (FUSE_COPY_FILE_RANGE); callers loop for more. */
const MAX_PER_CALL = 1 << 30;

export async function copyFileRange(vfs: Vfs, caller: Caller, inoIn: number, offIn: number, fhIn: number, inoOut: number, offOut: number, fhOut: number, len: number): Promise<number> {
  const src = vfs.handle(fhIn, inoIn).inode;
  const dst = vfs.handle(fhOut, inoOut).inode;
  if (!src.mapping || !dst.mapping) throw fsErr('EISDIR');
  if (offIn < 0 || offOut < 0) throw fsErr('EINVAL');
  if (src === dst && offIn < offOut + len && offOut < offIn + len) throw fsErr('EINVAL');
  checkWrite(dst);
  len = Math.min(len, MAX_PER_CALL);
  if (offOut + len > vfs.maxFileSize) {
    if (offOut >= vfs.maxFileSize) throw fsErr('EFBIG');
    len = vfs.maxFileSize - offOut;
  }
  const ctx = new OpCtx('copy_file_range');
  const held: [RwLock, LockMode][] = [];
  const take = async (locks: RwLock[], dstLock: RwLock) => {
    for (const l of lockOrder(locks)) {
      const mode: LockMode = l === dstLock ? 'exclusive' : 'shared';
      await l.acquire(ctx, mode);
      held.push([l, mode]);
    }
  };
  try {
    await take([src.mapping.iRwsem, dst.mapping.iRwsem], dst.mapping.iRwsem);
    await take([src.mapping.invalidateLock, dst.mapping.invalidateLock], dst.mapping.invalidateLock);
    len = Math.max(0, Math.min(len, src.rec.size - offIn));
    if (len === 0) return 0;
    // Blocks are shared from the store: the source's newest bytes must be there first.
    vfs.writeback(src);
    const bs = vfs.blockSize;
    let done = 0;
    if (offIn % bs === offOut % bs) {
      const head = Math.min(len, (bs - (offIn % bs)) % bs);
      const whole = Math.floor((len - head) / bs);
      if (head > 0) await copyBytes(vfs, ctx, src, offIn, dst, offOut, head);
      // In slices, each one transaction, yielding between them: a 1 GiB remap in one
      // transaction would keep every other request waiting for over a second.
      for (let k = 0; k < whole; k += SHARE_SLICE) {
        if (k > 0) await new Promise((r) => setImmediate(r));
        shareBlocks(vfs, ctx, src, (offIn + head) / bs + k, dst, (offOut + head) / bs + k, Math.min(SHARE_SLICE, whole - k));
      }
      done = head + whole * bs;
    }
    if (done < len) await copyBytes(vfs, ctx, src, offIn + done, dst, offOut + done, len - done);
    vfs.store.txn(() => {
      if (offOut + len > dst.rec.size) dst.rec.size = offOut + len;
      dst.stamp('mc');
      killPriv(dst, caller, guessVerdict(vfs.killprivV2, caller));
      vfs.persist(dst);
    });
  } finally {
    for (const [l, mode] of held.reverse()) l.release(ctx, mode);
  }
  vfs.balance();
  return len;
}

/**
 * Maps `n` blocks of `src` from `sfb` into `dst` at `dfb`: the destination's cached pages
 * of the range go (its invalidate_lock is held exclusive), its old blocks lose a
 * reference, the source's written blocks gain one. Unwritten source blocks leave holes.
 */
function shareBlocks(vfs: Vfs, ctx: OpCtx, src: Inode, sfb: number, dst: Inode, dfb: number, n: number): void {
  const bs = vfs.blockSize;
  invalidateRangeLocked(ctx, dst.mapping!, dfb * bs, (dfb + n) * bs, vfs.store.blocks);
  const blocks = vfs.store.blocks;
  vfs.store.txn(() => {
    blocks.unmapRange(dst.ino, dfb, dfb + n - 1);
    blocks.shareRange(src.ino, sfb, dst.ino, dfb, n);
  });
}

/** Copies bytes through the cache: source pages filled under its shared lock, written into the destination's pages. */
async function copyBytes(vfs: Vfs, ctx: OpCtx, src: Inode, offIn: number, dst: Inode, offOut: number, len: number): Promise<void> {
  const ps = vfs.cache.pageSize;
  for (let done = 0; done < len;) {
    const n = Math.min(CHUNK, len - done);
    const at = offIn + done;
    const pages = await fillLocked(ctx, src.mapping!, Math.floor(at / ps), Math.floor((at + n - 1) / ps), vfs.src);
    const buf = Buffer.allocUnsafe(n);
    let w = 0;
    for (const p of pages) {
      const start = p.index * ps;
      w += p.data.copy(buf, w, Math.max(at, start) - start, Math.min(at + n, start + ps) - start);
    }
    await writeLocked(ctx, dst.mapping!, offOut + done, buf, vfs.src, vfs.store.blocks, {
      invalidateHeld: true,
      grow: (end) => { if (end > dst.rec.size) dst.rec.size = end; },
    });
    done += n;
  }
}
