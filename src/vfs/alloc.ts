/**
 * fallocate (allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE) and lseek SEEK_DATA/SEEK_HOLE.
 *
 * Punch and zero move blocks out from under cached pages: i_rwsem exclusive (no write or
 * truncate meanwhile), then the invalidate_lock exclusive (no fill between its lookup
 * and its insert), then the cache is invalidated and the block map changed in one store
 * transaction, all before the reply. The kernel drops its own pages for the range only
 * after our reply (fuse_file_fallocate), so the next FUSE_READ must already find the new
 * truth here. Allocation (mode 0, KEEP_SIZE) moves no block and needs only i_rwsem.
 *
 * Preallocated blocks are UNWRITTEN: they count as used space but read as zeros and
 * count as holes for SEEK_DATA, as ext4's unwritten extents do.
 */
import type { Vfs, Caller } from './vfs.js';
import { killPriv, guessVerdict } from './killpriv.js';
import type { Inode } from './inode.js';
import { OpCtx, assertHeld } from '../cache/lockcheck.js';
import { fillLocked } from '../cache/fill.js';
import { invalidateRangeLocked } from '../cache/invalidate.js';
import { BMAP_UNWRITTEN } from '../store/schema.js';
import { fsErr } from '../util/errors.js';
import { checkFallocate } from './flags.js';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export async function fallocate(vfs: Vfs, caller: Caller, fh: number, ino: number, mode: number, off: number, len: number): Promise<void> {
  const inode = vfs.handle(fh, ino).inode;
  const m = inode.mapping;
  if (!m) throw fsErr('ENODEV');
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) throw fsErr('EOPNOTSUPP');
  const punch = (mode & FALLOC_FL_PUNCH_HOLE) !== 0;
  const zero = (mode & FALLOC_FL_ZERO_RANGE) !== 0;
  if (punch && zero) throw fsErr('EOPNOTSUPP');
  if (punch && !(mode & FALLOC_FL_KEEP_SIZE)) throw fsErr('EOPNOTSUPP');
  if (off < 0 || len <= 0) throw fsErr('EINVAL');
  checkFallocate(inode, mode, FALLOC_FL_KEEP_SIZE);
  if (off + len > vfs.maxFileSize) throw fsErr('EFBIG');
  const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
  const ctx = new OpCtx(punch ? 'fallocate(punch)' : zero ? 'fallocate(zero)' : 'fallocate');
  // The inode's new size and times go into the transaction that changes the blocks: one
  // commit per fallocate, not two (a punch was two commits, the second only for the
  // inode row), and no crash between them leaves the blocks changed and the times not.
  // That transaction is a Vfs.change of the inode, so a failed one puts the record back.
  const finish = () => {
    if (!keepSize && off + len > inode.rec.size) inode.rec.size = off + len;
    inode.stamp(punch || zero ? 'mc' : 'c');
    killPriv(inode, caller, guessVerdict(vfs.killprivV2, caller));
    vfs.persist(inode);
  };
  await m.iRwsem.acquire(ctx, 'exclusive');
  try {
    if (punch || zero) {
      await m.invalidateLock.acquire(ctx, 'exclusive');
      try {
        await clearRangeLocked(vfs, ctx, inode, off, off + len, zero, finish);
      } finally {
        m.invalidateLock.release(ctx, 'exclusive');
      }
    } else {
      preallocate(vfs, ctx, inode, off, off + len, finish);
    }
  } finally {
    m.iRwsem.release(ctx, 'exclusive');
  }
}

/**
 * Punch (zero = false) or zero [start, end): partial blocks are zeroed in the cache,
 * whole blocks are unmapped (and for zero, mapped again as UNWRITTEN blocks), and
 * `finish` runs in the same transaction.
 */
async function clearRangeLocked(vfs: Vfs, ctx: OpCtx, inode: Inode, start: number, end: number, zero: boolean, finish: () => void): Promise<void> {
  const m = inode.mapping!;
  // finish changes i_size; the unmapping must not race a fill's lookup and insert.
  assertHeld(ctx, m.iRwsem, 'exclusive');
  assertHeld(ctx, m.invalidateLock, 'exclusive');
  const bs = vfs.blockSize;
  const ps = vfs.cache.pageSize;
  if (!zero && end > inode.rec.size) {
    // As ext4_punch_hole: a punch past EOF ends at EOF rounded up to a page, so the
    // block holding EOF goes whole; preallocated blocks further out stay.
    end = Math.ceil(inode.rec.size / 4096) * 4096;
    if (end <= start) {
      vfs.change([inode], finish);
      return;
    }
  }
  const fbFirst = Math.ceil(start / bs);
  const fbEnd = Math.floor(end / bs);
  const whole = Math.max(0, fbEnd - fbFirst);
  if (zero && whole > vfs.store.blocks.free + countOwned(vfs, inode, fbFirst, fbEnd)) throw fsErr('ENOSPC');
  for (const at of [start, end]) {
    if (at % bs !== 0 && at < inode.rec.size + bs) {
      const idx = Math.floor(at / ps);
      await fillLocked(ctx, m, idx, idx, vfs.src);
    }
  }
  invalidateRangeLocked(ctx, m, start, end, vfs.store.blocks);
  // ZERO_RANGE leaves the range allocated, as ext4 does: its partly covered edge blocks
  // too, when they are holes and no dirty page will allocate them at writeback.
  const edges = zero ? [...new Set([Math.floor(start / bs), Math.floor((end - 1) / bs)])].filter((fb) =>
    (fb < fbFirst || fb >= fbEnd) && !vfs.store.blocks.mapOne(inode.ino, fb) && !dirtyBlock(vfs, inode, fb)) : [];
  if (edges.length > vfs.store.blocks.free) throw fsErr('ENOSPC');
  vfs.change([inode], () => {
    for (const fb of edges) vfs.store.blocks.setMap(inode.ino, fb, vfs.store.blocks.allocate(false), BMAP_UNWRITTEN);
    if (whole > 0) {
      vfs.store.blocks.unmapRange(inode.ino, fbFirst, fbEnd - 1);
      if (zero) {
        for (let fb = fbFirst; fb < fbEnd; fb++) vfs.store.blocks.setMap(inode.ino, fb, vfs.store.blocks.allocate(false), BMAP_UNWRITTEN);
      }
    }
    finish();
  });
}

function dirtyBlock(vfs: Vfs, inode: Inode, fb: number): boolean {
  const p = inode.mapping?.get(Math.floor(fb / vfs.cache.bpp));
  return !!p && (p.dirty & (1 << (fb % vfs.cache.bpp))) !== 0;
}

function countOwned(vfs: Vfs, inode: Inode, fbFirst: number, fbEnd: number): number {
  return fbEnd > fbFirst ? vfs.store.blocks.ownedBlocks(inode.ino, fbFirst, fbEnd - 1).length : 0;
}

/**
 * Maps every unmapped block touching [start, end) as UNWRITTEN, all or nothing, and runs
 * `finish` in the same transaction. A dirty block that holds a reservation gets its
 * block now, from that reservation, so that it is counted once (st_blocks, statfs) and
 * written in place at writeback.
 */
function preallocate(vfs: Vfs, ctx: OpCtx, inode: Inode, start: number, end: number, finish: () => void): void {
  assertHeld(ctx, inode.mapping!.iRwsem, 'exclusive'); // finish changes i_size
  const bs = vfs.blockSize;
  const { bpp } = vfs.cache;
  const fb0 = Math.floor(start / bs);
  const fb1 = Math.floor((end - 1) / bs);
  const blocks = vfs.store.blocks;
  const m = inode.mapping!;
  const mapped = new Set(blocks.mapRange(inode.ino, fb0, fb1).map((e) => e.fblock));
  const reservedPage = (fb: number) => {
    const p = m.get(Math.floor(fb / bpp));
    return p && p.reserved & (1 << (fb % bpp)) ? p : undefined;
  };
  // Counted from the mapped rows and the cached pages, never block by block: a range can
  // be 2^32 blocks, and a loop over it would stall every request for minutes. Reserved
  // holes get their block from their reservation, one by one; the runs of blocks between
  // them and the mapped ones are mapped a run at a time (BlockTable.mapUnwrittenRun).
  const reservedHoleList: number[] = [];
  for (const [idx, p] of m.pages) {
    for (let b = 0; b < bpp; b++) {
      const fb = idx * bpp + b;
      if (fb >= fb0 && fb <= fb1 && p.reserved & (1 << b) && !mapped.has(fb)) reservedHoleList.push(fb);
    }
  }
  const need = fb1 - fb0 + 1 - mapped.size - reservedHoleList.length;
  if (need > blocks.free) throw fsErr('ENOSPC');
  // The blocks the runs stop at: mapped ones, and reserved holes (never mapped).
  const stops = [...mapped, ...reservedHoleList].sort((a, b) => a - b);
  vfs.change([inode], () => {
    let from = fb0;
    for (const fb of stops) {
      blocks.mapUnwrittenRun(inode.ino, from, fb - 1);
      if (!mapped.has(fb)) blocks.setMap(inode.ino, fb, blocks.allocate(true), BMAP_UNWRITTEN);
      from = fb + 1;
    }
    blocks.mapUnwrittenRun(inode.ino, from, fb1);
    finish();
  });
  // Every reserved hole now has its block: its reservation is spent.
  for (const fb of reservedHoleList) reservedPage(fb)!.reserved &= ~(1 << (fb % bpp));
}

/**
 * SEEK_DATA / SEEK_HOLE. Data is a written mapped block or a dirty cached block (the
 * kernel does not flush before FUSE_LSEEK); EOF is a hole; at or past EOF is ENXIO.
 */
export function lseek(vfs: Vfs, fh: number, ino: number, off: number, whence: number): number {
  const inode = vfs.handle(fh, ino).inode;
  const size = inode.rec.size;
  if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw fsErr('EINVAL');
  // As ext4 (iomap_seek_data/hole): a negative offset is past the data, not invalid.
  if (off < 0 || off >= size) throw fsErr('ENXIO');
  const bs = vfs.blockSize;
  const lastBlock = Math.ceil(size / bs) - 1;
  const isData = dataTester(vfs, inode);
  let fb = Math.floor(off / bs);
  if (whence === SEEK_DATA) {
    for (; fb <= lastBlock; fb = isData.nextCandidate(fb)) {
      if (isData.test(fb)) return Math.max(off, fb * bs);
    }
    throw fsErr('ENXIO');
  }
  for (; fb <= lastBlock; fb++) if (!isData.test(fb)) return Math.max(off, fb * bs);
  return size;
}

function dataTester(vfs: Vfs, inode: Inode) {
  const m = inode.mapping;
  const { bpp } = vfs.cache;
  const blocks = vfs.store.blocks;
  const dirty = (fb: number): boolean => {
    const p = m?.get(Math.floor(fb / bpp));
    return !!p && (p.dirty & (1 << (fb % bpp))) !== 0;
  };
  const written = (fb: number): boolean => {
    const e = blocks.mapOne(inode.ino, fb);
    return !!e && !(e.flags & BMAP_UNWRITTEN);
  };
  return {
    test: (fb: number) => dirty(fb) || written(fb),
    /** The next block that could be data: the next mapped one, or the next dirty one, whichever is first. */
    nextCandidate(fb: number): number {
      const next = blocks.nextMapped(inode.ino, fb + 1)?.fblock ?? Number.MAX_SAFE_INTEGER;
      let best = next;
      if (m) for (const p of m.dirtyPages) for (let b = 0; b < bpp; b++) {
        const cand = p.index * bpp + b;
        if (cand > fb && cand < best && p.dirty & (1 << b)) best = cand;
      }
      return best;
    },
  };
}
