/**
 * Writeback: a mapping's dirty blocks go to the store in one transaction, together with
 * the inode's size and times (`persist`), so the store never holds a size that
 * disagrees with the blocks written under it. Synchronous from start to end: no request
 * can see the mapping half written back.
 */
import type { Mapping } from './pagecache.js';
import type { Store } from '../store/store.js';
import type { MapEntry } from '../store/blocks.js';

export interface WritebackOpts {
  /** Called inside the transaction, after the blocks: writes the inode row. */
  persist: () => void;
  /** Commit with synchronous=FULL (fsync). */
  durable: boolean;
  /** Blocks at or beyond this file block are past EOF: dropped, not written. */
  endBlock: number;
}

export function writebackMapping(mapping: Mapping, store: Store, opts: WritebackOpts): number {
  const cache = mapping.cache;
  const { bpp, blockSize: bs } = cache;
  const pages = [...mapping.dirtyPages].sort((a, b) => a.index - b.index);
  const run = opts.durable ? store.durably.bind(store) : store.txn.bind(store);
  run(() => {
    // One lookup for the whole dirty range instead of one per block.
    const entries = pages.length > 0
      ? store.blocks.mapRange(mapping.ino, pages[0].index * bpp, pages[pages.length - 1].index * bpp + bpp - 1)
      : [];
    const byBlock = new Map<number, MapEntry>();
    for (const e of entries) byBlock.set(e.fblock, e);
    // Consecutive unmapped blocks (a file written at its end) go to the store as runs.
    let runFirst = -1;
    const runData: Buffer[] = [];
    const runReserved: boolean[] = [];
    const endRun = () => {
      if (runData.length > 0) store.blocks.writeNewRun(mapping.ino, runFirst, runData, runReserved);
      runData.length = 0;
      runReserved.length = 0;
    };
    for (const page of pages) {
      for (let b = 0; b < bpp; b++) {
        const bit = 1 << b;
        if (!(page.dirty & bit)) continue;
        const fb = page.index * bpp + b;
        if (fb >= opts.endBlock) continue;
        const data = page.data.subarray(b * bs, (b + 1) * bs);
        const cur = byBlock.get(fb);
        if (cur) {
          endRun();
          store.blocks.writeBlock(mapping.ino, fb, data, (page.reserved & bit) !== 0, cur);
          continue;
        }
        if (runData.length > 0 && fb !== runFirst + runData.length) endRun();
        if (runData.length === 0) runFirst = fb;
        runData.push(data);
        runReserved.push((page.reserved & bit) !== 0);
      }
    }
    endRun();
    opts.persist();
  });
  for (const page of pages) {
    for (let b = 0; b < bpp; b++) {
      const bit = 1 << b;
      if (page.dirty & bit && page.index * bpp + b >= opts.endBlock && page.reserved & bit) store.blocks.unreserve(1);
    }
    page.reserved &= ~page.dirty;
    cache.markClean(page, page.dirty);
  }
  cache.stats.writebackPages += pages.length;
  if (pages.length > 0) cache.stats.writebacks++;
  return pages.length;
}
