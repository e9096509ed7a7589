/**
 * The block map as fills read it, kept in memory in aligned groups of GROUP blocks.
 *
 * A cold 4 KiB read spent about 6.6 us of its 45 on the block-map query (measured through
 * the mount: fio randread on a cold 256 MiB file, 22k IOPS with the query and the block
 * read, 29k with the query alone, 36k with neither); the query alone, timed in a loop
 * outside the daemon, is 3.5-6 us. SQLite reads a whole 16 KiB page of the map to
 * answer one row, as a disk filesystem reads a whole block of its extent tree: so one
 * query learns the mappings of a group of neighbours (14 us for 64 rows, packed into one
 * number each), and the next reads near it are answered from here.
 *
 * Coherence is the hazard pagefs exists for: a fill that read a freed block's number
 * from here would read a block a punch gave away. So BlockTable, the only writer of the
 * map, tells this cache of every change in the same transaction, right after its
 * statement (set, setUnwritten, clearRange, dropRange, dropInode), and a rolled-back
 * transaction clears it all (BlockTable.restore). Fills read it with the mapping's
 * invalidate_lock held, as they read the store.
 *
 * Memory is bounded: at MAX_GROUPS groups (10 to 15 MiB with the per-inode maps that
 * hold them; the maps of 4 GiB of file data in 4 KiB blocks) the cache is emptied and
 * starts again.
 */
import type { FillEntry } from './blocks.js';
import { BMAP_UNWRITTEN } from './schema.js';

/** Blocks per group: one query of 64 rows costs about three of one row. */
export const GROUP = 64;
/** The most groups kept (each a Float64Array of GROUP entries). */
export const MAX_GROUPS = 16384;
/**
 * A group's entries are packed as pblock * 2 + unwritten (0: not mapped); the loader
 * packs the offset in the group above them: offset * PACK + pblock * 2 + unwritten, exact
 * in a double while 0 < pblock < PACK / 2 (2^45; a store's blocks are numbered from 1
 * and stay below its capacity). A row outside that, which only a damaged store holds,
 * is not cached: its group is asked of the store each time.
 */
export const PACK = 2 ** 46;
/** Ranges longer than this many groups are not cached (a fill never asks for one). */
const MAX_SPAN = 64;

/**
 * Loads the packed rows of `ino` in [first, first + GROUP): offset * PACK + pblock * 2 +
 * unwritten each, or -1 for a row it cannot pack.
 */
export type GroupLoader = (ino: number, first: number) => number[];
/** The uncached answer, for what is not cached (FillEntry rows, ascending). */
export type RangeQuery = (ino: number, first: number, last: number) => FillEntry[];

export interface MapCacheStats {
  /** Groups a lookup found cached. */
  hits: number;
  /** Groups read from the store. */
  loads: number;
  /** Lookups answered by the store directly (too long a range, or a row that does not pack). */
  bypasses: number;
  /** Times the cache was emptied (a rolled-back transaction, or the bound reached). */
  resets: number;
}

export class MapCache {
  private readonly byIno = new Map<number, Map<number, Float64Array>>();
  private groups = 0;
  readonly stats: MapCacheStats = { hits: 0, loads: 0, bypasses: 0, resets: 0 };

  constructor(private readonly load: GroupLoader, private readonly query: RangeQuery, private readonly maxGroups = MAX_GROUPS) {}

  /** Mapped blocks of `ino` in [first, last], ascending, as BlockTable.fillMap. */
  lookup(ino: number, first: number, last: number): FillEntry[] {
    const g0 = Math.floor(first / GROUP);
    const g1 = Math.floor(last / GROUP);
    if (g1 - g0 >= MAX_SPAN) {
      this.stats.bypasses++;
      return this.query(ino, first, last);
    }
    let mine = this.byIno.get(ino);
    const out: FillEntry[] = [];
    for (let g = g0; g <= g1; g++) {
      let entries = mine?.get(g);
      if (entries === undefined) {
        const loaded = this.loadGroup(ino, g);
        if (loaded === null) {
          this.stats.bypasses++;
          return this.query(ino, first, last);
        }
        entries = loaded;
        mine = this.byIno.get(ino);
      } else {
        this.stats.hits++;
      }
      const base = g * GROUP;
      const lo = Math.max(first, base) - base;
      const hi = Math.min(last, base + GROUP - 1) - base;
      for (let i = lo; i <= hi; i++) {
        const v = entries[i];
        if (v !== 0) out.push([base + i, Math.floor(v / 2), v % 2 === 1 ? BMAP_UNWRITTEN : 0]);
      }
    }
    return out;
  }

  private loadGroup(ino: number, g: number): Float64Array | null {
    const rows = this.load(ino, g * GROUP);
    const entries = new Float64Array(GROUP);
    for (const r of rows) {
      if (r < 0) return null;
      const at = Math.floor(r / PACK);
      entries[at] = r - at * PACK;
    }
    if (this.groups >= this.maxGroups) this.clear();
    let mine = this.byIno.get(ino);
    if (mine === undefined) {
      mine = new Map();
      this.byIno.set(ino, mine);
    }
    mine.set(g, entries);
    this.groups++;
    this.stats.loads++;
    return entries;
  }

  /** `fblock` of `ino` now maps `pblock` (flags: BMAP_UNWRITTEN or 0). */
  set(ino: number, fblock: number, pblock: number, flags: number): void {
    const entries = this.byIno.get(ino)?.get(Math.floor(fblock / GROUP));
    if (entries === undefined) return;
    if (!(pblock > 0 && pblock < PACK / 2)) {
      this.dropRange(ino, fblock, fblock);
      return;
    }
    entries[fblock % GROUP] = pblock * 2 + (flags & BMAP_UNWRITTEN ? 1 : 0);
  }

  /** The mapped `fblock` of `ino` is now unwritten or written, as `flags` says. */
  setUnwritten(ino: number, fblock: number, flags: number): void {
    const entries = this.byIno.get(ino)?.get(Math.floor(fblock / GROUP));
    if (entries === undefined) return;
    const at = fblock % GROUP;
    const v = entries[at];
    if (v !== 0) entries[at] = v - (v % 2) + (flags & BMAP_UNWRITTEN ? 1 : 0);
  }

  /** [first, last] of `ino` maps nothing now. */
  clearRange(ino: number, first: number, last: number): void {
    const mine = this.byIno.get(ino);
    if (mine === undefined) return;
    for (const g of groupsIn(mine, first, last)) {
      const entries = mine.get(g)!;
      const base = g * GROUP;
      entries.fill(0, Math.max(first, base) - base, Math.min(last, base + GROUP - 1) - base + 1);
    }
  }

  /** Forgets the groups of `ino` that overlap [first, last]: the next lookup asks the store. */
  dropRange(ino: number, first: number, last: number): void {
    const mine = this.byIno.get(ino);
    if (mine === undefined) return;
    for (const g of groupsIn(mine, first, last)) {
      mine.delete(g);
      this.groups--;
    }
    if (mine.size === 0) this.byIno.delete(ino);
  }

  /** Forgets every group of `ino` (its map moved, or the inode left memory or the store). */
  dropInode(ino: number): void {
    const mine = this.byIno.get(ino);
    if (mine === undefined) return;
    this.groups -= mine.size;
    this.byIno.delete(ino);
  }

  /** Forgets everything (a rolled-back transaction, or the bound reached). */
  clear(): void {
    if (this.groups > 0) this.stats.resets++;
    this.byIno.clear();
    this.groups = 0;
  }

  /** Groups held. */
  get size(): number {
    return this.groups;
  }
}

/**
 * The groups held in `mine` that overlap [first, last]: found by walking the range when
 * it spans fewer groups than are held (a punch of one block in a file read whole), else
 * by walking the groups held (a truncation's range may end at 2^53).
 */
function groupsIn(mine: Map<number, Float64Array>, first: number, last: number): number[] {
  const g0 = Math.floor(first / GROUP);
  const g1 = Math.floor(last / GROUP);
  const out: number[] = [];
  if (g1 - g0 < mine.size) {
    for (let g = g0; g <= g1; g++) if (mine.has(g)) out.push(g);
  } else {
    for (const g of mine.keys()) if (g >= g0 && g <= g1) out.push(g);
  }
  return out;
}
