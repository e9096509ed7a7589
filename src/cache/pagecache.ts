/**
 * The daemon's page cache: pages of file data per mapping (one mapping per inode), one
 * LRU across all mappings, a cap in bytes, and the statistics `pagefs stat` shows.
 *
 * A page is max(4096, block size) bytes and covers `bpp` blocks (4 with 1 KiB blocks).
 * Each page tracks per block: uptodate (its bytes are the file's), dirty (newer than the
 * store), reserved (holds a block reservation for its writeback). A page may be partly
 * uptodate: a write that covers whole blocks needs no read of the rest.
 *
 * Who may remove a page: invalidation (punch, zero, truncate, copy destination) under
 * the mapping's invalidate_lock exclusive; eviction only of clean pages, and not of
 * - any page of a mapping whose invalidate_lock is held exclusive: a punch that filled a
 *   partial block to zero part of it would find the page gone and leave the old bytes in
 *   the store;
 * - a page used (inserted or touched) since the grant of the mapping's longest-standing
 *   shared holder (clock.ts). Such a page may be in that holder's hands: a read building
 *   its reply from it. And it covers the hazard of fills: a fill looked up the block map
 *   before a write and its writeback changed a block, and would re-create an evicted page
 *   from what it read, older than what the page held (fill.ts). Under a fill's shared
 *   hold only writeback changes blocks (everything else that moves them takes the lock
 *   exclusive), it writes only dirty blocks, and a block the fill is reading was not
 *   dirty when the fill began (it was not uptodate); so it was written after the grant,
 *   and writes touch their pages.
 * The kernel's reclaim skips locked folios and those in use in the same way, a page at a
 * time. The rule here was once per mapping (no eviction while anyone held its lock), which
 * a stream of overlapping fills of one file, a cold sequential read with readahead, held
 * for as long as the stream: each eviction walked every page of the file to evict none
 * (a fifth of the daemon's time), and the cache grew past its cap.
 */
import { RwLock, type LockStats } from './rwlock.js';
import { I_RWSEM, INVALIDATE_LOCK } from './lockcheck.js';
import { FramePool, type SlabAllocator } from './frames.js';
import { tick } from './clock.js';

/** The data of a page no longer in the cache: its frame went back to the pool, and a late write to it must fail, not land in another file's page. */
const GONE = Buffer.alloc(0);

export class Page {
  /** Guarded by the mapping's invalidate_lock for removal; by i_rwsem for dirtying writes. */
  uptodate = 0;
  dirty = 0;
  reserved = 0;
  /** When it was last inserted or touched (clock.ts); see evictable. */
  used = tick();
  prev: Page | null = null;
  next: Page | null = null;
  constructor(readonly mapping: Mapping, readonly index: number, public data: Buffer) {}
}

export interface CacheStats {
  hits: number;
  misses: number;
  readaheadPages: number;
  evictions: number;
  /** Clean pages a stream wrote, given back right after its write-behind (dropBehind). */
  droppedBehind: number;
  /** Clean pages a sequential read stream had answered, given back behind it (dropBehindRead). */
  droppedBehindReads: number;
  invalidations: number;
  writebackPages: number;
  writebacks: number;
  lock: LockStats;
}

export class Mapping {
  readonly pages = new Map<number, Page>();
  readonly dirtyPages = new Set<Page>();
  /**
   * When the mapping last went from clean to dirty (performance.now(), ms): the periodic
   * writeback takes only mappings dirty for longer than the mount's dirty expiry, as the
   * kernel's flusher takes only inodes dirtied more than vm.dirty_expire_centisecs ago.
   */
  dirtiedAt = 0;
  /** Serializes writes, truncate, fallocate and copy destinations (the kernel's i_rwsem, in the daemon). */
  readonly iRwsem: RwLock;
  /** Serializes cache fills (shared) against block moves under cached pages (exclusive). */
  readonly invalidateLock: RwLock;
  /** Pages a fill is reading now, and the promise that settles when it is done (no double reads). */
  readonly filling = new Map<number, Promise<void>>();
  /** Readahead state: the page index after the last read, and the current window in pages. */
  raNext = -1;
  raWindow = 0;
  /** Read drop-behind's cursor: the lowest page index it has not yet looked at (dropBehindRead). */
  dropNext = 0;
  /** Counts the read streams of this mapping: a read out of order starts a new one, and an older stream's reads drop nothing. */
  readStream = 0;

  constructor(readonly cache: PageCache, readonly ino: number) {
    this.iRwsem = new RwLock(I_RWSEM, ino, cache.stats.lock);
    this.invalidateLock = new RwLock(INVALIDATE_LOCK, ino, cache.stats.lock);
  }

  get(index: number): Page | undefined {
    return this.pages.get(index);
  }
}

export class PageCache {
  readonly bpp: number;
  readonly fullMask: number;
  readonly capacityPages: number;
  count = 0;
  dirtyCount = 0;
  readonly stats: CacheStats = {
    hits: 0, misses: 0, readaheadPages: 0, evictions: 0, droppedBehind: 0, droppedBehindReads: 0, invalidations: 0, writebackPages: 0, writebacks: 0,
    lock: { waits: 0, waitNs: 0n },
  };
  /** Most recently used first. */
  private head: Page | null = null;
  private tail: Page | null = null;
  /** Page memory (frames.ts). */
  readonly frames: FramePool;

  constructor(readonly pageSize: number, readonly blockSize: number, capacityBytes: number, allocSlab?: SlabAllocator) {
    this.bpp = pageSize / blockSize;
    this.fullMask = (1 << this.bpp) - 1;
    this.capacityPages = Math.max(64, Math.floor(capacityBytes / pageSize));
    this.frames = new FramePool(pageSize, allocSlab);
  }

  newMapping(ino: number): Mapping {
    return new Mapping(this, ino);
  }

  /**
   * A new page, not uptodate: a copy of `data` (one whole page) or zero-filled. Its
   * frame may have held another file's bytes, so all of it is written here.
   */
  insert(mapping: Mapping, index: number, data?: Buffer): Page {
    const frame = this.frames.take();
    if (data && data.length === this.pageSize) data.copy(frame);
    else {
      frame.fill(0);
      if (data) data.copy(frame);
    }
    const page = new Page(mapping, index, frame);
    mapping.pages.set(index, page);
    this.linkHead(page);
    this.count++;
    return page;
  }

  touch(page: Page): void {
    page.used = tick();
    if (this.head === page) return;
    this.unlink(page);
    this.linkHead(page);
  }

  markDirty(page: Page, mask: number): void {
    if (page.dirty === 0 && mask !== 0) {
      if (page.mapping.dirtyPages.size === 0) page.mapping.dirtiedAt = performance.now();
      page.mapping.dirtyPages.add(page);
      this.dirtyCount++;
    }
    page.dirty |= mask;
  }

  markClean(page: Page, mask: number): void {
    const was = page.dirty;
    page.dirty &= ~mask;
    if (was !== 0 && page.dirty === 0) {
      page.mapping.dirtyPages.delete(page);
      this.dirtyCount--;
    }
  }

  /** Removes a page; the caller has dealt with its dirty data and reservations. */
  remove(page: Page): void {
    if (page.mapping.pages.get(page.index) !== page) return;
    page.mapping.pages.delete(page.index);
    if (page.dirty !== 0) {
      page.mapping.dirtyPages.delete(page);
      this.dirtyCount--;
      page.dirty = 0;
    }
    this.unlink(page);
    this.count--;
    this.frames.give(page.data);
    page.data = GONE;
  }

  /**
   * Evicts clean pages from the cold end until the cache is under its cap. Returns the
   * number of pages still over the cap (dirty ones, or ones evictable says must stay): the
   * caller writes back and calls again.
   */
  shrink(): number {
    let over = this.count - this.capacityPages;
    let p = this.tail;
    while (over > 0 && p) {
      const prev = p.prev;
      if (p.dirty === 0 && evictable(p)) {
        this.remove(p);
        this.stats.evictions++;
        over--;
      }
      p = prev;
    }
    return Math.max(0, over);
  }

  /**
   * Drop-behind: gives the frames of `pages`, clean now, back to the pool, except the
   * page at index `keep` (the one a stream's next write continues). For a file written
   * at its end, right after its write-behind: the kernel keeps its own copy of every
   * page written through it, so a second copy here is seldom read, and keeping it made
   * every page of a long stream fresh memory, zeroed by the kernel at first touch.
   * Same rule as eviction (evictable).
   */
  dropBehind(mapping: Mapping, pages: Iterable<Page>, keep: number): number {
    let n = 0;
    for (const p of pages) {
      if (p.dirty !== 0 || p.index === keep || mapping.pages.get(p.index) !== p || !evictable(p)) continue;
      this.remove(p);
      n++;
    }
    this.stats.droppedBehind += n;
    return n;
  }

  /**
   * Read drop-behind: gives back the frames of the clean pages of `mapping` below
   * `before`, from its cursor on, once a sequential read stream has answered them. The
   * kernel keeps its own copy of every page it read through a mount that answers open
   * with keep_cache, so a second copy here is seldom read again, and keeping it made
   * every page of a long read fresh memory: a cold 1 GiB sequential read through a
   * 1536 MiB cache took 2.75-2.80 s of daemon CPU where a 256 MiB cache, whose frames
   * are reused after its first quarter, took 2.0-2.15. Stops at the first page eviction's
   * rule keeps (a read still being answered from it, or a fill since) and at the first
   * a fill is still reading (an earlier read of the stream that a later one overtook):
   * the next call goes on from there. Dirty pages stay, and are passed. At most
   * MAX_READ_DROP indices a call, so that a cursor held back (by a long hold of the lock)
   * catches up over several reads, not in one long walk.
   */
  dropBehindRead(mapping: Mapping, before: number): number {
    let i = mapping.dropNext;
    const stop = Math.min(before, i + MAX_READ_DROP);
    let n = 0;
    for (; i < stop; i++) {
      if (mapping.filling.has(i)) break;
      const p = mapping.pages.get(i);
      if (!p || p.dirty !== 0) continue;
      if (!evictable(p)) break;
      this.remove(p);
      n++;
    }
    mapping.dropNext = i;
    this.stats.droppedBehindReads += n;
    return n;
  }

  private linkHead(page: Page): void {
    page.prev = null;
    page.next = this.head;
    if (this.head) this.head.prev = page;
    this.head = page;
    if (!this.tail) this.tail = page;
  }

  private unlink(page: Page): void {
    if (page.prev) page.prev.next = page.next;
    else if (this.head === page) this.head = page.next;
    if (page.next) page.next.prev = page.prev;
    else if (this.tail === page) this.tail = page.prev;
    page.prev = page.next = null;
  }
}

/** The most page indices one read drop-behind looks at: four 1 MiB reads of 4 KiB pages. */
const MAX_READ_DROP = 1024;

/** Whether a clean page may leave the cache now (the rule at the top of this file). */
export function evictable(page: Page): boolean {
  const lock = page.mapping.invalidateLock;
  return !lock.heldExclusive && page.used < lock.oldestSharedGrant;
}
