/**
 * Block map, allocator and refcounts: the part of the store that decides which physical
 * block holds which bytes of which file.
 *
 * Contract: every method that changes a table must run inside Store.txn (the allocator's
 * counters are restored if the transaction throws). Freed blocks keep their bytes and
 * are handed out again lowest-first, before the high-water mark grows, so that reuse is
 * immediate and deterministic, as on a small disk: the condition under which a stale
 * mapping shows another file's data, which the stress tests must be able to provoke.
 */
import type { Statement } from 'better-sqlite3';
import type { DB } from './open.js';
import { BMAP_UNWRITTEN } from './schema.js';
import { fsErr } from '../util/errors.js';
import { SparseBitset } from '../util/bitset.js';
import { MapCache, GROUP, PACK, MAX_GROUPS, type MapCacheStats } from './mapcache.js';
import { Unref } from './unref.js';
import { Share } from './share.js';

export interface MapEntry {
  fblock: number;
  pblock: number;
  flags: number;
  refcount: number;
}

/** A mapping as a fill needs it: [fblock, pblock, flags] (arrays: no object per row). */
export type FillEntry = [fblock: number, pblock: number, flags: number];

export interface AllocCounters {
  hwm: number;
  used: number;
  reserved: number;
  freeListed: number;
}

/** Blocks whose ownership one short ownedBlocks query learns together. */
const OWNED_GROUP = 64;

/**
 * Data rows one statement of writeNewRun inserts: each run() of better-sqlite3 builds its
 * result object and binds afresh, per call and not per row.
 */
const DATA_ROWS = 16;

export class BlockTable {
  /** Next physical block number never handed out (superblock.next_pblock). */
  hwm: number;
  /** Allocated blocks (rows of refs). */
  used: number;
  /** Blocks promised to dirty cache pages that will need one at writeback (delayed allocation). */
  reserved = 0;
  /** Rows of free_blocks: allocation skips the free-list query while it is empty. */
  freeListed: number;
  readonly capacity: number;
  /** Mapped blocks per inode, for st_blocks: read once from the inode row, then kept up to date by every map change. */
  private readonly mappedCounts = new Map<number, number>();
  /**
   * What this transaction's map changes did to each inode's count (inodes.blocks), written
   * by flushCounts just before the commit: one UPDATE per inode a transaction changed,
   * not one per block (a 32 MiB writeback maps 8,192).
   */
  private readonly pendingCounts = new Map<number, number>();
  /**
   * Prepared at first use: a store of format version 1 has no inodes.blocks until the
   * mount upgrades it (Store.upgrade), and fsck, stat and umount open such a store too.
   */
  private countStmts: { get: Statement; add: Statement } | null = null;
  /**
   * File blocks known to map a block of their own (refcount 1), per inode. Every write
   * asks which of its blocks it overwrites in place (reservationsNeeded); asking SQLite
   * was a tenth of the daemon's samples in a 4 KiB random-write profile. Only a positive
   * answer is kept: a bit is set by what finds or makes a block owned (ownedBlocks;
   * writeBlock and writeNewRun, for writeback and a truncation's tail block) and cleared
   * by everything that can unmap a block or share it (unmapRange, shareRange's source,
   * shift), so a set bit is always true; a rolled-back transaction forgets all. A block
   * that becomes owned behind a clear bit (the other file let go of its share) is only
   * asked about again.
   */
  private readonly ownedKnown = new Map<number, SparseBitset>();
  /** The map as fills read it, in groups (mapcache.ts): every change below is told to it, and nothing else may change it. */
  private readonly mapCache: MapCache;
  /** Dropping references and freeing blocks (unref.ts); the counters above stay here. */
  private readonly unref: Unref;
  /** Sharing ranges between files (share.ts); the counts and caches stay here. */
  private readonly share: Share;

  private readonly mapRangeStmt;
  private readonly mapOneStmt;
  private readonly ownedStmt;
  private readonly fillMapStmt;
  private readonly upsertMapStmt;
  private readonly deleteMapRangeStmt;
  private readonly mapRowsRangeStmt;
  private readonly lastMappedStmt;
  private readonly nextMappedStmt;
  private readonly popFreeStmt;
  private readonly popFreeRunStmt;
  private readonly listRefsStmt;
  private readonly listMapStmt;
  private readonly insertRefStmt;
  private readonly refcountStmt;
  private readonly readDataStmt;
  private readonly writeDataStmt;
  private readonly writeDataRowsStmt;
  /** writeDataRowsStmt's parameters, reused (cleared after each run, so no block's bytes stay referenced). */
  private readonly dataArgs: (number | Buffer)[] = new Array(2 * DATA_ROWS).fill(0);
  private readonly setFlagsStmt;
  private readonly sharedStmt;
  /** shareRange calls that took the path of one run of physical blocks (tests). */
  runShares = 0;
  private readonly freshRefsStmt;
  private readonly freshMapStmt;
  private readonly shiftStmt;
  private readonly unflipStmt;

  /**
   * `assertTxn` throws unless a write transaction is running (Store.assertInTxn): the
   * methods that change the tables with several statements call it, since a statement
   * that committed alone would leave the tables half changed if the next one failed.
   */
  constructor(private readonly db: DB, capacityBlocks: number, mapCacheGroups = MAX_GROUPS,
    private readonly assertTxn: (what: string) => void = () => {}) {
    this.capacity = capacityBlocks;
    this.hwm = db.prepare('SELECT next_pblock FROM superblock WHERE id = 1').pluck().get() as number;
    this.unref = new Unref(db);
    this.used = db.prepare('SELECT count(*) FROM refs').pluck().get() as number;
    this.freeListed = db.prepare('SELECT count(*) FROM free_blocks').pluck().get() as number;
    this.mapRangeStmt = db.prepare(`SELECT b.fblock, b.pblock, b.flags, r.refcount FROM bmap b JOIN refs r ON r.pblock = b.pblock
      WHERE b.ino = ? AND b.fblock >= ? AND b.fblock <= ? ORDER BY b.fblock`);
    // Asked by every write (its reservations): plucked numbers, no row objects, which were
    // half the cost of the lookup in a 4 KiB random write profile.
    this.ownedStmt = db.prepare(`SELECT b.fblock FROM bmap b JOIN refs r ON r.pblock = b.pblock
      WHERE b.ino = ? AND b.fblock >= ? AND b.fblock <= ? AND r.refcount = 1 ORDER BY b.fblock`).pluck();
    this.mapOneStmt = db.prepare(`SELECT b.fblock, b.pblock, b.flags, r.refcount FROM bmap b JOIN refs r ON r.pblock = b.pblock
      WHERE b.ino = ? AND b.fblock = ?`);
    // No join with refs and raw rows: a fill needs no refcount, and the rows are per block
    // (a 1 MiB read looks up 256), so objects and the join were most of the lookup's cost.
    // Ascending, said so: fills walk it alongside their missing blocks (fill.ts). The
    // primary key's order makes the ORDER BY free.
    this.fillMapStmt = db.prepare('SELECT fblock, pblock, flags FROM bmap WHERE ino = ? AND fblock >= ? AND fblock <= ? ORDER BY fblock').raw();
    // One number per row, not an array: half the cost of a group's load (64 rows).
    const groupStmt = db.prepare(`SELECT CASE WHEN pblock > 0 AND pblock < ${PACK / 2} THEN (fblock - ?) * ${PACK} + pblock * 2 + (flags & ${BMAP_UNWRITTEN}) ELSE -1 END
      FROM bmap WHERE ino = ? AND fblock >= ? AND fblock < ?`).pluck();
    this.mapCache = new MapCache((ino, first) => groupStmt.all(first, ino, first, first + GROUP) as number[],
      (ino, first, last) => this.fillMapStmt.all(ino, first, last) as FillEntry[], mapCacheGroups);
    this.upsertMapStmt = db.prepare('INSERT OR REPLACE INTO bmap (ino, fblock, pblock, flags) VALUES (?, ?, ?, ?)');
    this.deleteMapRangeStmt = db.prepare('DELETE FROM bmap WHERE ino = ? AND fblock >= ? AND fblock <= ?');
    this.mapRowsRangeStmt = db.prepare('SELECT pblock FROM bmap WHERE ino = ? AND fblock >= ? AND fblock <= ?').pluck();
    this.lastMappedStmt = db.prepare('SELECT max(fblock) FROM bmap WHERE ino = ?').pluck();
    this.nextMappedStmt = db.prepare(`SELECT b.fblock, b.pblock, b.flags, r.refcount FROM bmap b JOIN refs r ON r.pblock = b.pblock
      WHERE b.ino = ? AND b.fblock >= ? ORDER BY b.fblock LIMIT 1`);
    this.popFreeStmt = db.prepare('DELETE FROM free_blocks WHERE pblock = (SELECT min(pblock) FROM free_blocks) RETURNING pblock').pluck();
    // The lowest `n` freed blocks at once, and their refs and map rows from one JSON array
    // each (mapFreed): a 1 GiB file written where another was deleted took four
    // statements a block for its blocks, against one past the high-water mark.
    this.popFreeRunStmt = db.prepare('DELETE FROM free_blocks WHERE pblock IN (SELECT pblock FROM free_blocks ORDER BY pblock LIMIT ?) RETURNING pblock').pluck();
    this.listRefsStmt = db.prepare('INSERT INTO refs (pblock, refcount) SELECT value, 1 FROM json_each(?)');
    this.listMapStmt = db.prepare('INSERT INTO bmap (ino, fblock, pblock, flags) SELECT ?, ? + key, value, ? FROM json_each(?)');
    this.insertRefStmt = db.prepare('INSERT INTO refs (pblock, refcount) VALUES (?, 1)');
    this.refcountStmt = db.prepare('SELECT refcount FROM refs WHERE pblock = ?').pluck();
    this.readDataStmt = db.prepare('SELECT bytes FROM data WHERE pblock = ?').pluck();
    this.writeDataStmt = db.prepare('INSERT OR REPLACE INTO data (pblock, bytes) VALUES (?, ?)');
    this.writeDataRowsStmt = db.prepare(`INSERT OR REPLACE INTO data (pblock, bytes) VALUES ${Array(DATA_ROWS).fill('(?, ?)').join(', ')}`);
    this.setFlagsStmt = db.prepare('UPDATE bmap SET flags = ? WHERE ino = ? AND fblock = ?');
    this.sharedStmt = db.prepare('SELECT count(*) FROM refs WHERE refcount > 1').pluck();
    // A run of new blocks from the high-water mark, refs rows and map rows as one
    // statement each (mapFresh: preallocated runs and written ones).
    const series = 'WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?)';
    this.freshRefsStmt = db.prepare(`${series} INSERT INTO refs (pblock, refcount) SELECT i, 1 FROM s`);
    this.freshMapStmt = db.prepare(`${series} INSERT INTO bmap (ino, fblock, pblock, flags) SELECT ?, i, i + ?, ? FROM s`);
    this.share = new Share(db, this.freshMapStmt);
    // Moving rows through negative numbers first keeps (ino, fblock) unique at every step,
    // whatever order SQLite updates them in.
    this.shiftStmt = db.prepare('UPDATE bmap SET fblock = -(fblock + ?) - 1 WHERE ino = ? AND fblock >= ?');
    this.unflipStmt = db.prepare('UPDATE bmap SET fblock = -fblock - 1 WHERE ino = ? AND fblock < 0');
  }

  get free(): number {
    return this.capacity - this.used - this.reserved;
  }

  snapshot(): AllocCounters {
    return { hwm: this.hwm, used: this.used, reserved: this.reserved, freeListed: this.freeListed };
  }

  restore(c: AllocCounters): void {
    this.hwm = c.hwm;
    this.used = c.used;
    this.reserved = c.reserved;
    this.freeListed = c.freeListed;
    // A rolled-back transaction may have changed counts and owners: ask again.
    this.mappedCounts.clear();
    this.pendingCounts.clear();
    this.ownedKnown.clear();
    this.mapCache.clear();
  }

  /** Mapped blocks of `ino` in [first, last], ascending. */
  mapRange(ino: number, first: number, last: number): MapEntry[] {
    return this.mapRangeStmt.all(ino, first, last) as MapEntry[];
  }

  /** The block-map cache's figures (`pagefs stat`). */
  mapCacheStats(): MapCacheStats & { groups: number } {
    return { groups: this.mapCache.size, ...this.mapCache.stats };
  }

  /** Mapped blocks of `ino` in [first, last], ascending, without refcounts (for fills). */
  fillMap(ino: number, first: number, last: number): FillEntry[] {
    return this.mapCache.lookup(ino, first, last);
  }

  mapOne(ino: number, fblock: number): MapEntry | undefined {
    return this.mapOneStmt.get(ino, fblock) as MapEntry | undefined;
  }

  /** The first mapped block at or after `fblock`, for SEEK_DATA. */
  nextMapped(ino: number, fblock: number): MapEntry | undefined {
    return this.nextMappedStmt.get(ino, fblock) as MapEntry | undefined;
  }

  lastMapped(ino: number): number | null {
    return this.lastMappedStmt.get(ino) as number | null;
  }

  readData(pblock: number): Buffer | undefined {
    return this.readDataStmt.get(pblock) as Buffer | undefined;
  }

  refcount(pblock: number): number {
    return (this.refcountStmt.get(pblock) as number | undefined) ?? 0;
  }

  private counts(): { get: Statement; add: Statement } {
    return this.countStmts ??= {
      get: this.db.prepare('SELECT blocks FROM inodes WHERE ino = ?').pluck(),
      add: this.db.prepare('UPDATE inodes SET blocks = blocks + ? WHERE ino = ?'),
    };
  }

  /** Blocks mapped by `ino`, preallocated ones included (st_blocks counts them too). */
  countMapped(ino: number): number {
    let n = this.mappedCounts.get(ino);
    if (n === undefined) {
      n = ((this.counts().get.get(ino) as number | undefined) ?? 0) + (this.pendingCounts.get(ino) ?? 0);
      this.mappedCounts.set(ino, n);
    }
    return n;
  }

  /** Writes the counts this transaction changed into the inode rows; the store's txn calls it before committing. */
  flushCounts(): void {
    if (this.pendingCounts.size === 0) return;
    const { add } = this.counts();
    for (const [ino, d] of this.pendingCounts) if (d !== 0) add.run(d, ino);
    this.pendingCounts.clear();
  }

  /** A new inode maps no block: its st_blocks needs no count query. */
  countNew(ino: number): void {
    this.mappedCounts.set(ino, 0);
  }

  private countDelta(ino: number, d: number): void {
    const n = this.mappedCounts.get(ino);
    if (n !== undefined) this.mappedCounts.set(ino, n + d);
    this.pendingCounts.set(ino, (this.pendingCounts.get(ino) ?? 0) + d);
  }

  /** Forgets what is kept in memory of an inode's blocks (the inode was removed). */
  forgetInode(ino: number): void {
    this.mappedCounts.delete(ino);
    this.forgetCached(ino);
  }

  /**
   * Forgets which of an inode's blocks it owns and its cached map (the inode left memory,
   * or its map moved): about 1 KiB per inode and 4,096 blocks each, which kept for every
   * file ever read or written would grow without bound (the map cache has its own bound,
   * but a file nobody holds should not take its room). Its count stays: a few bytes, and
   * recounting a big file costs a scan of its block map.
   */
  forgetCached(ino: number): void {
    this.ownedKnown.delete(ino);
    this.mapCache.dropInode(ino);
  }

  private knowOwned(ino: number, fblock: number): void {
    let bits = this.ownedKnown.get(ino);
    if (bits === undefined) {
      bits = new SparseBitset();
      this.ownedKnown.set(ino, bits);
    }
    bits.add(fblock);
  }

  private unknowOwned(ino: number, first: number, last: number): void {
    const bits = this.ownedKnown.get(ino);
    if (bits === undefined) return;
    bits.deleteRange(first, last);
    if (bits.empty) this.ownedKnown.delete(ino);
  }

  /** `fblock` of `ino` is known, without asking the store, to map a block of its own. */
  knownOwned(ino: number, fblock: number): boolean {
    return this.ownedKnown.get(ino)?.has(fblock) ?? false;
  }

  sharedCount(): number {
    return this.sharedStmt.get() as number;
  }

  /**
   * Hands out one block with refcount 1. `fromReservation` says the caller holds a
   * reservation for it (delayed allocation at writeback), so the reserve shrinks instead
   * of the free space being checked again.
   */
  allocate(fromReservation: boolean): number {
    if (fromReservation) {
      this.reserved--;
    } else if (this.used + this.reserved >= this.capacity) {
      throw fsErr('ENOSPC');
    }
    let pblock = this.freeListed > 0 ? (this.popFreeStmt.get() as number | undefined) : undefined;
    if (pblock === undefined) {
      pblock = this.hwm++;
    } else {
      this.freeListed--;
    }
    this.insertRefStmt.run(pblock);
    this.used++;
    return pblock;
  }

  /** Promises `n` blocks to a future writeback, or throws ENOSPC. */
  reserve(n: number): void {
    if (n <= 0) return;
    if (this.used + this.reserved + n > this.capacity) throw fsErr('ENOSPC');
    this.reserved += n;
  }

  unreserve(n: number): void {
    this.reserved -= n;
    if (this.reserved < 0) throw new Error(`block reservation underflow (${this.reserved})`);
  }

  /** Drops one reference; at zero the block goes to the free list (its bytes stay). */
  private decref(pblock: number): void {
    if (this.unref.one(pblock)) this.countFreed(1);
  }

  private countFreed(n: number): void {
    this.freeListed += n;
    this.used -= n;
  }

  writeData(pblock: number, bytes: Buffer): void {
    this.writeDataStmt.run(pblock, bytes);
  }

  /** Maps an unmapped file block. */
  setMap(ino: number, fblock: number, pblock: number, flags: number): void {
    this.upsertMapStmt.run(ino, fblock, pblock, flags);
    this.mapCache.set(ino, fblock, pblock, flags);
    this.countDelta(ino, 1);
  }

  /**
   * Maps every block of [first, last] of `ino`, all unmapped, as UNWRITTEN to a new block
   * (preallocation), or throws ENOSPC having changed nothing. Blocks come as allocate()
   * hands them out (mapNew), freed ones first and lowest first (three statements for all
   * of them, mapFreed); the rest, once the free list is empty, are the next ones past the
   * high-water mark, and take two statements for the whole run instead of three per
   * block: an 8 GiB preallocation (2M blocks) took
   * 4.7-5.3 s block by block and 1.9-2.2 s as two statements, timed outside the daemon
   * on a store in /dev/shm. Requires a write transaction: if the second statement throws,
   * the first one's rows are undone only by its rollback.
   */
  mapUnwrittenRun(ino: number, first: number, last: number): void {
    this.assertTxn('mapUnwrittenRun');
    const n = last - first + 1;
    if (n <= 0) return;
    if (n > this.free) throw fsErr('ENOSPC');
    this.mapNew(ino, first, n, BMAP_UNWRITTEN);
  }

  /**
   * Maps the `n` blocks from `first` of `ino`, all unmapped, to new blocks with `flags`:
   * the lowest freed ones first (mapFreed), the rest past the high-water mark (mapFresh).
   * File block first + j gets freed[j] while j < freed.length, else base + j -
   * freed.length. The caller has checked the space.
   */
  private mapNew(ino: number, first: number, n: number, flags: number): { freed: number[]; base: number } {
    const k = Math.min(n, this.freeListed);
    const freed = k > 0 ? this.mapFreed(ino, first, k, flags) : [];
    const base = k < n ? this.mapFresh(ino, first + k, first + n - 1, flags) : 0;
    return { freed, base };
  }

  /**
   * Maps the `k` blocks from `first` of `ino`, all unmapped, to the k lowest freed blocks
   * with `flags`, and returns those blocks, ascending: the free list's rows go in one
   * statement and the refs and map rows come from one JSON array each. The caller has
   * checked the space and that the free list holds k.
   */
  private mapFreed(ino: number, first: number, k: number, flags: number): number[] {
    const pblocks = (this.popFreeRunStmt.all(k) as number[]).sort((a, b) => a - b);
    if (pblocks.length !== k) throw new Error(`free list holds ${pblocks.length} blocks, counted ${this.freeListed}`);
    const list = JSON.stringify(pblocks);
    this.listRefsStmt.run(list);
    this.listMapStmt.run(ino, first, flags, list);
    this.freeListed -= k;
    this.used += k;
    this.mapCache.dropRange(ino, first, first + k - 1);
    this.countDelta(ino, k);
    return pblocks;
  }

  /**
   * Maps [first, last] of `ino`, all unmapped, to the next blocks past the high-water
   * mark with `flags`: refs rows and map rows as one statement each. The caller has
   * checked the space.
   */
  private mapFresh(ino: number, first: number, last: number, flags: number): number {
    const base = this.hwm;
    this.freshRefsStmt.run(base, base + (last - first));
    this.freshMapStmt.run(first, last, ino, base - first, flags);
    this.hwm += last - first + 1;
    this.used += last - first + 1;
    this.mapCache.dropRange(ino, first, last);
    this.countDelta(ino, last - first + 1);
    return base;
  }

  /**
   * Writes whole blocks of file data to the unmapped file blocks `first` onwards of `ino`,
   * each to a new block, as writeBlock would one by one (`reserved[i]`: block i holds a
   * reservation): freed blocks first, lowest first, then past the high-water mark. Either
   * part's refs and map rows are one statement each instead of two per block, and the
   * freed ones leave the free list in one statement instead of one each (1 GiB written
   * through the mount where a 1 GiB file was just deleted, 4 alternating pairs: 276-290
   * -> 336-381 MiB/s, daemon CPU 3.7 -> 3.0 s). The store's part of a 1 GiB
   * sequential write, timed outside the daemon (store in /dev/shm): 6.9-7.6 -> 6.1-6.2 us
   * a block; through the mount, rotating runs: 277 -> 299 MiB/s (medians of 3 and 4
   * runs), daemon CPU 4.03 -> 3.73 s. The data rows go DATA_ROWS to a statement: in a
   * profile of that write, better-sqlite3's work around each run() (its result object,
   * binding) was about 6% of the main thread; 7 alternating runs through the mount, 397
   * -> 417 MiB/s (medians, faster in 5). Throws ENOSPC, with the transaction to roll
   * back, when the blocks without a reservation do not fit.
   */
  writeNewRun(ino: number, first: number, datas: Buffer[], reserved: boolean[]): void {
    this.assertTxn('writeNewRun');
    const n = datas.length;
    if (n === 1) return this.writeBlock(ino, first, datas[0], reserved[0], undefined);
    // As allocate(): a reserved block takes its reservation, any other needs free space.
    let withReservation = 0;
    for (let j = 0; j < n; j++) if (reserved[j]) withReservation++;
    if (n - withReservation > this.free) throw fsErr('ENOSPC');
    this.reserved -= withReservation;
    const { freed, base } = this.mapNew(ino, first, n, 0);
    const pblockOf = (j: number) => (j < freed.length ? freed[j] : base + j - freed.length);
    const args = this.dataArgs;
    let j = 0;
    for (; j + DATA_ROWS <= n; j += DATA_ROWS) {
      for (let k = 0; k < DATA_ROWS; k++) {
        args[2 * k] = pblockOf(j + k);
        args[2 * k + 1] = datas[j + k];
      }
      this.writeDataRowsStmt.run(args);
    }
    for (; j < n; j++) this.writeData(pblockOf(j), datas[j]);
    args.fill(0);
    for (j = 0; j < n; j++) this.knowOwned(ino, first + j);
  }

  setFlags(ino: number, fblock: number, flags: number): void {
    this.setFlagsStmt.run(flags, ino, fblock);
    this.mapCache.setUnwritten(ino, fblock, flags);
  }

  /** Unmaps [first, last] of `ino`, dropping one reference per mapped block; returns how many were mapped. */
  unmapRange(ino: number, first: number, last: number): number {
    this.assertTxn('unmapRange');
    this.unknowOwned(ino, first, last);
    const pblocks = this.mapRowsRangeStmt.all(ino, first, last) as number[];
    if (pblocks.length === 0) return 0;
    this.deleteMapRangeStmt.run(ino, first, last);
    this.mapCache.clearRange(ino, first, last);
    this.countDelta(ino, -pblocks.length);
    this.countFreed(this.unref.all(pblocks));
    return pblocks.length;
  }

  /**
   * Maps the written blocks of `src` in [sfb, sfb + n) into `dst` at `dfb` onwards, one
   * more reference each; unwritten source blocks leave holes. The destination range must
   * be unmapped and must not overlap the source range.
   */
  shareRange(src: number, sfb: number, dst: number, dfb: number, n: number): void {
    this.assertTxn('shareRange');
    // The reference counts below read the source range after the destination rows went in.
    if (src === dst && dfb < sfb + n && sfb < dfb + n) throw new Error(`shareRange: ranges [${sfb}, ${sfb + n}) and [${dfb}, ${dfb + n}) of inode ${src} overlap`);
    // The destination range is unmapped, so none of its bits is set.
    this.unknowOwned(src, sfb, sfb + n - 1);
    const { added, run } = this.share.range(src, sfb, sfb + n - 1, dst, dfb);
    if (run) this.runShares++;
    this.mapCache.dropRange(dst, dfb, dfb + n - 1);
    this.countDelta(dst, added);
  }

  /** Moves every mapping of `ino` at or after `from` by `delta` blocks (collapse: negative, insert: positive). */
  shift(ino: number, from: number, delta: number): void {
    this.forgetCached(ino);
    this.shiftStmt.run(delta, ino, from);
    this.unflipStmt.run(ino);
  }

  /**
   * Writes one whole block of file data at `fblock`, copying on write if the block is
   * shared. `cur` is the block's current mapping when the caller has looked it up already
   * (writeback looks up a whole range at once).
   */
  writeBlock(ino: number, fblock: number, bytes: Buffer, fromReservation: boolean, cur: MapEntry | undefined | null = null): void {
    if (cur === null) cur = this.mapOne(ino, fblock);
    if (cur && cur.refcount === 1) {
      if (fromReservation) this.unreserve(1);
      this.writeData(cur.pblock, bytes);
      if (cur.flags & BMAP_UNWRITTEN) this.setFlags(ino, fblock, cur.flags & ~BMAP_UNWRITTEN);
    } else {
      const pblock = this.allocate(fromReservation);
      this.writeData(pblock, bytes);
      if (cur) {
        this.upsertMapStmt.run(ino, fblock, pblock, 0);
        this.mapCache.set(ino, fblock, pblock, 0);
        this.decref(cur.pblock);
      } else {
        this.setMap(ino, fblock, pblock, 0);
      }
    }
    this.knowOwned(ino, fblock);
  }

  /**
   * The file blocks of `ino` in [first, last] mapped to a block of their own (refcount 1),
   * ascending: those a write overwrites in place; any other needs a new block.
   */
  ownedBlocks(ino: number, first: number, last: number): number[] {
    // A short range is widened to whole aligned groups of OWNED_GROUP blocks, all of them
    // remembered: the next random write nearby is then answered from memory (a 256 MiB
    // file is 1,024 such queries), and a group's query costs about what one block's did.
    const wide = last - first < OWNED_GROUP;
    const lo = wide ? first - (first % OWNED_GROUP) : first;
    const hi = wide ? last - (last % OWNED_GROUP) + OWNED_GROUP - 1 : last;
    const owned = this.ownedStmt.all(ino, lo, hi) as number[];
    for (const fb of owned) this.knowOwned(ino, fb);
    return wide ? owned.filter((fb) => fb >= first && fb <= last) : owned;
  }
}
