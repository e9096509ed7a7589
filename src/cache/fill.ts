/**
 * Filling the page cache from the store: the path the invalidate_lock exists for.
 *
 * A fill looks up the block map, then reads the blocks, then inserts their bytes into
 * pages. Between the lookup and the insert a punch could free a looked-up block and a
 * write to another file reuse it; the page would then hold stale or foreign bytes. So
 * the whole sequence runs with the mapping's invalidate_lock held shared, and every
 * operation that moves blocks takes it exclusive (design.md §1; Jan Kara's 2021 rule
 * that read-IO submission itself, not only the insert, happens under the lock, because
 * with blocks smaller than a page a fill of a partly uptodate page reads blocks a punch
 * may be freeing).
 *
 * A fill never overwrites a block that is already uptodate: a write that landed while
 * the fill was reading is newer than what the fill read.
 */
import { assertHeld, type OpCtx } from './lockcheck.js';
import type { Mapping, Page } from './pagecache.js';
import type { FillEntry } from '../store/blocks.js';
import type { BlockData } from '../store/readers.js';
import { BMAP_UNWRITTEN } from '../store/schema.js';

export interface BlockSource {
  /** Mapped blocks of `ino` in [first, last], ascending (synchronous: the store's map lookup). */
  lookup(ino: number, first: number, last: number): FillEntry[];
  /** Reads whole blocks by physical number (BlockData: valid until its release, if it has one). */
  read(pblocks: number[]): Promise<BlockData>;
  /** Reads of at most `max` blocks the source answers at once, on this thread (fillNow). */
  now?: { max(): number; read(pblocks: number[]): (Buffer | undefined)[] };
}

/** Debugging aids for the negative control (pagefs mount --unsafe-no-invalidate-lock, --inject-delay). */
export const fillDebug = {
  noInvalidateLock: false,
  afterLookupMs: 0,
  beforeInsertMs: 0,
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The blocks of pages [first, last] that are not uptodate, as file block numbers. */
export function missingBlocks(mapping: Mapping, first: number, last: number): number[] {
  const { bpp, fullMask } = mapping.cache;
  const out: number[] = [];
  for (let idx = first; idx <= last; idx++) {
    const page = mapping.get(idx);
    const up = page ? page.uptodate : 0;
    if (up === fullMask) continue;
    for (let b = 0; b < bpp; b++) if (!(up & (1 << b))) out.push(idx * bpp + b);
  }
  return out;
}

/**
 * Makes pages [first, last] fully uptodate. Requires the invalidate_lock held (shared or
 * exclusive: a punch fills the partial blocks it is about to zero).
 */
export async function fillLocked(ctx: OpCtx, mapping: Mapping, first: number, last: number, src: BlockSource): Promise<Page[]> {
  if (!fillDebug.noInvalidateLock) assertHeld(ctx, mapping.invalidateLock, 'shared');
  const cache = mapping.cache;
  const { bpp } = cache;
  const all = missingBlocks(mapping, first, last);
  // Pages another fill is already reading: wait for it rather than read them twice
  // (the kernel's readahead and ours overlap). Then look again, in case that fill failed.
  const waits = new Set<Promise<void>>();
  const missing = all.filter((fb) => {
    const p = mapping.filling.get(Math.floor(fb / bpp));
    if (p) waits.add(p);
    return !p;
  });
  if (missing.length > 0) {
    let done!: () => void;
    const mine = new Promise<void>((r) => { done = r; });
    const myPages = [...new Set(missing.map((fb) => Math.floor(fb / bpp)))];
    for (const idx of myPages) mapping.filling.set(idx, mine);
    try {
      await fillBlocks(mapping, missing, src);
    } finally {
      for (const idx of myPages) if (mapping.filling.get(idx) === mine) mapping.filling.delete(idx);
      done();
    }
  }
  if (waits.size > 0) {
    await Promise.all(waits);
    return fillLocked(ctx, mapping, first, last, src);
  }
  return uptodatePages(mapping, first, last) ?? fillLocked(ctx, mapping, first, last, src);
}

/**
 * fillLocked in the same turn of the event loop, for a fill small enough for the
 * source to read at once (a cold 4 KiB read): nothing can run between the block-map
 * lookup and the insert, and no promise is made. Undefined, having changed nothing, when
 * it cannot: another fill is reading some of the pages, the blocks are too many for the
 * source's `now`, or a debugging aid wants the asynchronous path with its windows.
 * Requires the invalidate_lock held, as fillLocked.
 */
export function fillNow(ctx: OpCtx, mapping: Mapping, first: number, last: number, src: BlockSource): Page[] | undefined {
  if (fillDebug.noInvalidateLock || fillDebug.afterLookupMs > 0 || fillDebug.beforeInsertMs > 0 || !src.now) return undefined;
  assertHeld(ctx, mapping.invalidateLock, 'shared');
  const { bpp } = mapping.cache;
  const missing = missingBlocks(mapping, first, last);
  if (missing.length > src.now.max()) return undefined;
  for (const fb of missing) if (mapping.filling.has(Math.floor(fb / bpp))) return undefined;
  if (missing.length > 0) {
    const plan = planFill(mapping, missing, src);
    insertFilled(mapping, missing, plan, plan.toRead.length > 0 ? src.now.read(plan.toRead) : []);
  }
  return uptodatePages(mapping, first, last);
}

/**
 * Pages [first, last], touched, once all are in the cache and uptodate; undefined, and
 * the caller fills again, when one is not. Eviction spares the pages used since a
 * holder's grant of the invalidate_lock (pagecache.ts), which this fill's own inserts
 * are, but not a page cached before the grant and left alone since, nor anything when
 * the lock was switched off (the negative control). With blocks smaller than a page,
 * such a page may have been partly uptodate: evicted while this fill read its missing
 * blocks, it is back holding only those.
 */
function uptodatePages(mapping: Mapping, first: number, last: number): Page[] | undefined {
  const cache = mapping.cache;
  const pages: Page[] = [];
  for (let idx = first; idx <= last; idx++) {
    const p = mapping.get(idx);
    if (!p || p.uptodate !== cache.fullMask) return undefined;
    cache.touch(p);
    pages.push(p);
  }
  return pages;
}

/** What a fill reads: the physical blocks of the mapped, written ones among `missing`, and for which file blocks. */
interface FillPlan {
  toRead: number[];
  readFor: number[];
}

/**
 * Both lists are ascending (the map lookup's entries and `missing`), so they are walked
 * side by side: a Map of a fill's entries, built and dropped per fill, was a tenth of the
 * main thread's garbage-collection work in a cold sequential read.
 */
function planFill(mapping: Mapping, missing: number[], src: BlockSource): FillPlan {
  const entries = src.lookup(mapping.ino, missing[0], missing[missing.length - 1]);
  const toRead: number[] = [];
  const readFor: number[] = [];
  let e = 0;
  for (const fb of missing) {
    while (e < entries.length && entries[e][0] < fb) e++;
    if (e === entries.length) break;
    const entry = entries[e];
    if (entry[0] === fb && !(entry[2] & BMAP_UNWRITTEN)) {
      toRead.push(entry[1]);
      readFor.push(fb);
    }
  }
  return { toRead, readFor };
}

/** Looks up, reads and inserts the given blocks (not uptodate, ascending). */
async function fillBlocks(mapping: Mapping, missing: number[], src: BlockSource): Promise<void> {
  const plan = planFill(mapping, missing, src);
  if (fillDebug.afterLookupMs > 0) await sleep(fillDebug.afterLookupMs);
  const datas: BlockData = plan.toRead.length > 0 ? await src.read(plan.toRead) : [];
  try {
    if (fillDebug.beforeInsertMs > 0) await sleep(fillDebug.beforeInsertMs);
    insertFilled(mapping, missing, plan, datas);
  } finally {
    datas.release?.();
  }
}

/** Puts what a fill read into pages; blocks without bytes (holes, unwritten) read as zeros. Never overwrites an uptodate block. */
function insertFilled(mapping: Mapping, missing: number[], plan: FillPlan, datas: (Buffer | undefined)[]): void {
  const cache = mapping.cache;
  const { bpp, blockSize } = cache;
  const { readFor } = plan;
  let r = 0; // readFor is the ascending subset of missing that was read: walked alongside
  for (const fb of missing) {
    const idx = Math.floor(fb / bpp);
    const bit = 1 << (fb % bpp);
    let page = mapping.get(idx);
    const bytes = r < readFor.length && readFor[r] === fb ? datas[r++] : undefined;
    if (!page) {
      if (bpp === 1 && (!bytes || bytes.length === blockSize)) {
        cache.insert(mapping, idx, bytes).uptodate = 1;
        continue;
      }
      page = cache.insert(mapping, idx);
    }
    if (page.uptodate & bit) continue;
    const at = (fb % bpp) * blockSize;
    if (bytes) bytes.copy(page.data, at, 0, blockSize);
    else page.data.fill(0, at, at + blockSize);
    page.uptodate |= bit;
  }
}

/** Takes the invalidate_lock shared (unless the unsafe debug switch is on) around fillLocked, then runs `use` before releasing it. */
export async function withFilled<T>(ctx: OpCtx, mapping: Mapping, first: number, last: number, src: BlockSource,
  use: (pages: Page[]) => T): Promise<T> {
  const lock = mapping.invalidateLock;
  const locked = !fillDebug.noInvalidateLock;
  if (locked) await lock.acquire(ctx, 'shared');
  try {
    return use(await fillLocked(ctx, mapping, first, last, src));
  } finally {
    if (locked) lock.release(ctx, 'shared');
  }
}
