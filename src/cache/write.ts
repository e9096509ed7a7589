/**
 * Writes into the page cache (write-through from the kernel's point of view: the data is
 * in our cache when FUSE_WRITE is answered, and reaches the store at writeback).
 *
 * Space is reserved here, not at writeback: a block that will need allocating (a hole,
 * or a block shared with another file) reserves one block now, so ENOSPC goes to the
 * writer and writeback can never fail for lack of space (delayed allocation, as ext4 and
 * XFS do it).
 */
import { assertHeld, type OpCtx } from './lockcheck.js';
import { fillLocked, withFilled, type BlockSource } from './fill.js';
import type { Mapping } from './pagecache.js';
import type { BlockTable } from '../store/blocks.js';

export interface WriteOpts {
  /** The caller already holds the mapping's invalidate_lock (a copy destination), so partial blocks are filled under it instead of taking it again. */
  invalidateHeld?: boolean;
  /**
   * Called with the end of the written range as soon as the pages hold the data, in the
   * same turn: the caller raises the file size there. Raised after writeLocked's promise
   * settles instead, a writeback running in between (another request's balance()) saw
   * the old size and dropped the new blocks past it as beyond EOF, marking them clean:
   * the data was lost (test/mount/copy.test.ts, 256 KiB cache, after the event loop
   * began reading requests itself).
   */
  grow?: (end: number) => void;
}

/**
 * Bytes [off, off + data.length) of the file, into cache pages; requires i_rwsem
 * exclusive.
 */
export async function writeLocked(ctx: OpCtx, mapping: Mapping, off: number, data: Buffer, src: BlockSource, blocks: BlockTable,
  opts: WriteOpts = {}): Promise<void> {
  const invalidateHeld = opts.invalidateHeld ?? false;
  assertHeld(ctx, mapping.iRwsem, 'exclusive');
  const cache = mapping.cache;
  const { blockSize: bs, pageSize: ps, bpp } = cache;
  const end = off + data.length;
  const fb0 = Math.floor(off / bs);
  const fb1 = Math.floor((end - 1) / bs);

  // Blocks written only in part keep their other bytes: read them first. A clean page
  // filled here can be evicted while we wait for the next fill, so look again until all
  // are uptodate at once; from there on nothing awaits until the data is in the pages.
  const partial = partialBlocks(off, end, bs, fb0, fb1);
  const notUptodate = () => partial.filter((fb) => !((mapping.get(Math.floor(fb / bpp))?.uptodate ?? 0) & (1 << (fb % bpp))));
  for (let missing = notUptodate(); missing.length > 0; missing = notUptodate()) {
    for (const fb of missing) {
      const idx = Math.floor(fb / bpp);
      if (invalidateHeld) await fillLocked(ctx, mapping, idx, idx, src);
      else await withFilled(ctx, mapping, idx, idx, src, () => undefined);
    }
  }

  const needs = reservationsNeeded(mapping, fb0, fb1, blocks);
  blocks.reserve(needs.length);

  let pos = off;
  while (pos < end) {
    const idx = Math.floor(pos / ps);
    const pageStart = idx * ps;
    const stop = Math.min(end, pageStart + ps);
    let page = mapping.get(idx);
    if (!page && pos === pageStart && stop === pageStart + ps) {
      page = cache.insert(mapping, idx, data.subarray(pos - off, stop - off));
    } else {
      page ??= cache.insert(mapping, idx);
      data.copy(page.data, pos - pageStart, pos - off, stop - off);
    }
    const b0 = Math.floor((pos - pageStart) / bs);
    const b1 = Math.floor((stop - 1 - pageStart) / bs);
    let mask = 0;
    for (let b = b0; b <= b1; b++) mask |= 1 << b;
    page.uptodate |= mask;
    cache.markDirty(page, mask);
    cache.touch(page);
    pos = stop;
  }
  for (const fb of needs) mapping.get(Math.floor(fb / bpp))!.reserved |= 1 << (fb % bpp);
  opts.grow?.(end);
}

function partialBlocks(off: number, end: number, bs: number, fb0: number, fb1: number): number[] {
  const out: number[] = [];
  if (off % bs !== 0) out.push(fb0);
  if (end % bs !== 0 && (fb1 !== fb0 || out.length === 0)) out.push(fb1);
  return out;
}

/** Blocks in [fb0, fb1] that will need a new block at writeback and hold no reservation yet. */
export function reservationsNeeded(mapping: Mapping, fb0: number, fb1: number, blocks: BlockTable): number[] {
  const { bpp } = mapping.cache;
  const reserved = (fb: number) => ((mapping.get(Math.floor(fb / bpp))?.reserved ?? 0) & (1 << (fb % bpp))) !== 0;
  // Most writes overwrite blocks known to be the file's own or already reserved: then
  // the store need not be asked.
  let known = true;
  for (let fb = fb0; fb <= fb1 && known; fb++) known = reserved(fb) || blocks.knownOwned(mapping.ino, fb);
  if (known) return [];
  const owned = blocks.ownedBlocks(mapping.ino, fb0, fb1);
  let e = 0;
  const out: number[] = [];
  for (let fb = fb0; fb <= fb1; fb++) {
    while (e < owned.length && owned[e] < fb) e++;
    if (e < owned.length && owned[e] === fb) continue;
    if (reserved(fb)) continue;
    out.push(fb);
  }
  return out;
}
