/**
 * Removing or zeroing cached data because blocks move: punch hole, zero range,
 * truncate, copy destinations. Requires the mapping's invalidate_lock exclusive: no fill
 * may be between its block-map lookup and its insert while pages go away (fill.ts).
 *
 * Whole blocks in the range lose their uptodate and dirty bits (and give back their
 * reservations); the part of a block the range covers is zeroed in place, and the block
 * stays uptodate and, when the store holds other bytes for it, becomes dirty so that
 * writeback stores the zeros. A page with no
 * uptodate block left is removed.
 */
import { assertHeld, type OpCtx } from './lockcheck.js';
import type { Mapping } from './pagecache.js';
import type { BlockTable } from '../store/blocks.js';
import { reservationsNeeded } from './write.js';
import { BMAP_UNWRITTEN } from '../store/schema.js';

export function invalidateRangeLocked(ctx: OpCtx, mapping: Mapping, start: number, end: number, blocks: BlockTable): void {
  assertHeld(ctx, mapping.invalidateLock, 'exclusive');
  if (end <= start) return;
  const cache = mapping.cache;
  const { pageSize: ps, blockSize: bs, bpp } = cache;
  const idx0 = Math.floor(start / ps);
  const idx1 = Math.floor((end - 1) / ps);
  // A partly zeroed block becomes dirty when it holds bytes the store must lose: it is
  // dirty already, or mapped and written. In a hole or an unwritten block the store
  // reads zeros anyway, and dirtying it would allocate a block (ext4 allocates none).
  // Reserve first, so ENOSPC comes before any change.
  const partial = new Set<number>();
  if (start % bs !== 0) partial.add(Math.floor(start / bs));
  if (end % bs !== 0) partial.add(Math.floor(end / bs));
  const toDirty = new Set<number>();
  const needs: number[] = [];
  for (const fb of partial) {
    const page = mapping.get(Math.floor(fb / bpp));
    const bit = 1 << (fb % bpp);
    if (!page || !(page.uptodate & bit)) continue;
    const e = blocks.mapOne(mapping.ino, fb);
    if (!(page.dirty & bit) && !(e && !(e.flags & BMAP_UNWRITTEN))) continue;
    toDirty.add(fb);
    needs.push(...reservationsNeeded(mapping, fb, fb, blocks));
  }
  blocks.reserve(needs.length);
  for (const fb of needs) mapping.get(Math.floor(fb / bpp))!.reserved |= 1 << (fb % bpp);
  const visit = (idx: number) => {
    const page = mapping.get(idx);
    if (!page) return;
    const pageStart = idx * ps;
    for (let b = 0; b < bpp; b++) {
      const bStart = pageStart + b * bs;
      const bEnd = bStart + bs;
      const bit = 1 << b;
      if (bEnd <= start || bStart >= end) continue;
      if (bStart >= start && bEnd <= end) {
        page.data.fill(0, b * bs, (b + 1) * bs);
        page.uptodate &= ~bit;
        if (page.reserved & bit) blocks.unreserve(1);
        page.reserved &= ~bit;
        cache.markClean(page, bit);
      } else if (page.uptodate & bit) {
        page.data.fill(0, Math.max(start, bStart) - pageStart, Math.min(end, bEnd) - pageStart);
        if (toDirty.has(idx * bpp + b)) cache.markDirty(page, bit);
      }
    }
    if (page.uptodate === 0) cache.remove(page);
  };
  if (idx1 - idx0 > mapping.pages.size) {
    for (const idx of [...mapping.pages.keys()]) if (idx >= idx0 && idx <= idx1) visit(idx);
  } else {
    for (let idx = idx0; idx <= idx1; idx++) visit(idx);
  }
  cache.stats.invalidations++;
}
