/**
 * The fills' block-map cache (src/store/mapcache.ts) must answer exactly as the store
 * does after every change to the map, or a fill reads a block a punch gave away. Random
 * sequences of every BlockTable operation that changes the map (map, write with copy on
 * write, unmap to a block or to the end, share, collapse and insert shifts, preallocated
 * runs, runs written to new blocks as writeback writes them, forgetting an inode, and transactions rolled back after some of them), with lookups in between
 * that load groups into the cache; after each step every inode's map, read through the
 * cache, equals the bmap rows. The same sequences check each inode's count of mapped
 * blocks (st_blocks), which every change keeps in memory and in its inode row
 * (inodes.blocks, schema.ts I10): both equal the number of bmap rows after each step,
 * and inside a transaction, before the count is written, the one in memory does.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import fc from 'fast-check';
import { newStoreFile } from '../helpers/store.js';
import { Store } from '../../src/store/store.js';
import { MapCache, GROUP, PACK } from '../../src/store/mapcache.js';
import { BMAP_UNWRITTEN } from '../../src/store/schema.js';
import { fsck } from '../../src/store/fsck.js';
import type { FillEntry } from '../../src/store/blocks.js';

const BS = 4096;
const INOS = [2, 3];
/** Ranges checked after each step: near blocks over several groups, and a far group. */
const RANGES: [number, number][] = [[0, 511], [37, 140], [100_000, 100_000 + 2 * GROUP]];

const ino = fc.constantFrom(...INOS);
// Few blocks, so that steps meet on the same ones (a write to a shared or an unwritten block).
const fb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 20 }) },
  { weight: 2, arbitrary: fc.integer({ min: 60, max: 140 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 100_010 }) },
);
const n = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 80 }));
/** Blocks that single-block steps pick: fewer still, so that writes find blocks mapped, unwritten or shared. */
const one = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 7 }) },
  { weight: 2, arbitrary: fc.integer({ min: 60, max: 67 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 100_003 }) },
);
const change = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('map' as const), ino, fb: one, unwritten: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('write' as const), ino, fb: one }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('unmap' as const), ino, fb, n, toEnd: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('share' as const), src: ino, sfb: fb, dst: ino, dfb: fb, n }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('share' as const), src: ino, sfb: one, dst: ino, dfb: one, n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('shift' as const), ino, fb, n, collapse: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('forget' as const), ino, count: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('prealloc' as const), ino, fb, n: fc.integer({ min: 1, max: 200 }) }) },
  // As writeback: the unmapped runs of a dirty range written to new blocks, every
  // `reservedEvery`th block holding a reservation (0: none).
  { weight: 2, arbitrary: fc.record({ k: fc.constant('writeRun' as const), ino, fb, n: fc.integer({ min: 1, max: 200 }), reservedEvery: fc.integer({ min: 0, max: 3 }) }) },
  // Hands out every freed block (to blocks far out, past the checked ranges), so that the
  // next allocations come from the high-water mark.
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drain' as const), ino }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('read' as const), ino, fb, n }) },
);
type Change = typeof change extends fc.Arbitrary<infer T> ? T : never;
const step = fc.oneof(
  { weight: 6, arbitrary: change },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('rollback' as const), inner: fc.array(change, { minLength: 1, maxLength: 4 }) }) },
  // Several changes in one committed transaction, as a writeback batch or a copy makes.
  { weight: 1, arbitrary: fc.record({ k: fc.constant('group' as const), inner: fc.array(change, { minLength: 2, maxLength: 8 }) }) },
);
type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;

/**
 * What fsck finds wrong with the store, and where the allocator's figures in memory
 * differ from its tables (the high-water mark, blocks allocated, blocks free-listed).
 */
function storeProblems(store: Store): string[] {
  const one = (sql: string) => store.db.prepare(sql).pluck().get() as number;
  const b = store.blocks;
  const memory = [
    ['high-water mark', b.hwm, one('SELECT next_pblock FROM superblock')],
    ['allocated', b.used, one('SELECT count(*) FROM refs')],
    ['free-listed', b.freeListed, one('SELECT count(*) FROM free_blocks')],
  ].filter(([, mem, rows]) => mem !== rows).map(([what, mem, rows]) => `${what}: ${mem} in memory, ${rows} in the tables`);
  return [...fsck(store.db, store.sb).problems, ...memory];
}

/**
 * Runs the random sequences, each on a new store whose map cache holds at most `groups`
 * groups (a new store each, so that its high-water mark stays near what the sequence
 * allocated and a drain of its free list stays short); returns what they met and the
 * caches' figures, summed.
 */
function runSequences(groups: number | undefined) {
  const ran = { steps: 0, rollbacks: 0, unwrittenWrites: 0, sharedWrites: 0, runsPastFreeList: 0, writtenRunsPastFreeList: 0, runShares: 0 };
  const stats = { hits: 0, loads: 0, bypasses: 0, resets: 0, groups: 0 };
  const bytes = Buffer.alloc(BS, 0x5a);
  // Copies of one new store file: cheaper than making each.
  const template = newStoreFile('mapcache', BS, 1 << 30);
  const file = `${template}.seq`;
  const sequence = (steps: Step[]) => {
    // A WAL left by a sequence whose store was not closed would be replayed onto the copy.
    for (const f of [`${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    fs.copyFileSync(template, file);
    const store = Store.open(file, { readonly: false, cmd: 'test', mapCacheGroups: groups });
    try {
      runOn(store, steps);
    } finally {
      ran.runShares += store.blocks.runShares;
      const s = store.blocks.mapCacheStats();
      for (const k of ['hits', 'loads', 'bypasses', 'resets'] as const) stats[k] += s[k];
      stats.groups = Math.max(stats.groups, s.groups);
      store.close();
    }
  };
  const runOn = (store: Store, steps: Step[]) => {
    const blocks = store.blocks;
    // Inode rows for the inodes the steps change (numbers 2 and 3: the next the store hands out).
    store.txn(() => {
      // Sizes past every block the steps reach, so that fsck's I6 (no written block past
      // EOF) holds, and a name each in the root directory, for their link counts.
      for (const i of INOS) {
        expect(store.inodes.insert({ ...store.inodes.get(1)!, mode: 0o100644, nlink: 1, size: 2 ** 40 })).toBe(i);
        store.dentries.insert(1, Buffer.from(`f${i}`), i);
      }
    });
    const mapped = store.db.prepare('SELECT count(*) FROM bmap WHERE ino = ?').pluck();
    const counted = store.db.prepare('SELECT blocks FROM inodes WHERE ino = ?').pluck();
    const rows = store.db.prepare(`SELECT b.fblock, b.pblock, b.flags, r.refcount FROM bmap b LEFT JOIN refs r ON r.pblock = b.pblock
      WHERE b.ino = ? AND b.fblock >= ? AND b.fblock <= ? ORDER BY b.fblock`).raw();
    const freeList = store.db.prepare('SELECT pblock FROM free_blocks ORDER BY pblock').pluck();
    const check = (what: string) => {
      for (const i of INOS) {
        for (const [a, b] of RANGES) {
          const all = rows.all(i, a, b) as [number, number, number, number | null][];
          const got = blocks.fillMap(i, a, b);
          const want = all.map(([f, p, fl]) => [f, p, fl & BMAP_UNWRITTEN]);
          // Arrays of numbers: equal as JSON exactly when deeply equal, and far quicker to
          // compare than toEqual, which then runs only to show the difference.
          if (JSON.stringify(got) !== JSON.stringify(want)) expect(got, `${what}: inode ${i} [${a}, ${b}]`).toEqual(want);
          // A block remembered as owned is mapped with refcount 1 (a write then takes no reservation for it).
          const refcounts = new Map(all.map(([f, , , r]) => [f, r]));
          for (let f = a; f <= b; f++) {
            if (blocks.knownOwned(i, f) && refcounts.get(f) !== 1) expect.fail(`${what}: block ${f} of inode ${i} is remembered as owned, refcount ${refcounts.get(f)}`);
          }
        }
      }
      for (const i of INOS) {
        expect(counted.get(i), `${what}: inode ${i}'s row's count`).toBe(mapped.get(i));
        expect(blocks.countMapped(i), `${what}: inode ${i}'s count`).toBe(mapped.get(i));
      }
    };
    let drained = 0;
    /** The unmapped runs of [fb, fb + n) of `i`. */
    const holes = (i: number, fb: number, n: number) => {
      let from = fb;
      const runs: [number, number][] = [];
      for (const e of blocks.mapRange(i, fb, fb + n - 1)) {
        if (e.fblock > from) runs.push([from, e.fblock - 1]);
        from = e.fblock + 1;
      }
      if (from <= fb + n - 1) runs.push([from, fb + n - 1]);
      return runs;
    };
    const apply = (c: Change) => {
      switch (c.k) {
        case 'map':
          if (!blocks.mapOne(c.ino, c.fb)) {
            const p = blocks.allocate(false);
            blocks.setMap(c.ino, c.fb, p, c.unwritten ? BMAP_UNWRITTEN : 0);
            // A written block has its bytes (fsck's I3), as a writeback gives it.
            if (!c.unwritten) blocks.writeData(p, bytes);
          }
          break;
        case 'write': {
          const cur = blocks.mapOne(c.ino, c.fb);
          if (cur && cur.flags & BMAP_UNWRITTEN) ran.unwrittenWrites++;
          if (cur && cur.refcount > 1) ran.sharedWrites++;
          blocks.writeBlock(c.ino, c.fb, bytes, false);
          break;
        }
        case 'unmap':
          blocks.unmapRange(c.ino, c.fb, c.toEnd ? Number.MAX_SAFE_INTEGER : c.fb + c.n - 1);
          break;
        case 'share':
          // As copy.ts: the destination range is unmapped first; ranges of one file must not overlap.
          if (c.src === c.dst && c.dfb < c.sfb + c.n && c.sfb < c.dfb + c.n) break;
          blocks.unmapRange(c.dst, c.dfb, c.dfb + c.n - 1);
          blocks.shareRange(c.src, c.sfb, c.dst, c.dfb, c.n);
          break;
        case 'shift':
          // As shift.ts: a collapse unmaps the range it removes first.
          if (c.collapse) {
            blocks.unmapRange(c.ino, c.fb, c.fb + c.n - 1);
            blocks.shift(c.ino, c.fb + c.n, -c.n);
          } else {
            blocks.shift(c.ino, c.fb, c.n);
          }
          break;
        case 'prealloc': {
          // As fallocate: the unmapped runs of the range, each mapped UNWRITTEN at once.
          for (const [a, b] of holes(c.ino, c.fb, c.n)) {
            if (b - a + 1 > blocks.freeListed) ran.runsPastFreeList++;
            blocks.mapUnwrittenRun(c.ino, a, b);
          }
          break;
        }
        case 'writeRun': {
          const reservedBefore = blocks.snapshot().reserved;
          for (const [a, b] of holes(c.ino, c.fb, c.n)) {
            const len = b - a + 1;
            const reserved = Array.from({ length: len }, (_, j) => c.reservedEvery > 0 && j % c.reservedEvery === 0);
            blocks.reserve(reserved.filter(Boolean).length);
            // Bytes that name their block, so that a block written to the wrong place shows.
            const datas = reserved.map((_, j) => Buffer.alloc(BS, `${c.ino}:${a + j};`));
            // The blocks allocate() would hand out one by one: freed ones first, lowest
            // first (design.md: freed blocks are reused), then the high-water mark's.
            const freed = freeList.all() as number[];
            const want = Array.from({ length: len }, (_, j) => (j < freed.length ? freed[j] : blocks.hwm + j - freed.length));
            if (len - freed.length >= 2) ran.writtenRunsPastFreeList++;
            blocks.writeNewRun(c.ino, a, datas, reserved);
            expect(blocks.freeListed).toBe(Math.max(0, freed.length - len));
            // Each block mapped written, to its block, owned and known to be, holding its bytes
            // (compared as JSON: expect() per block was most of the test's time).
            const got = blocks.mapRange(c.ino, a, b).map((e) => [e.fblock, e.pblock, e.flags, e.refcount, blocks.knownOwned(c.ino, e.fblock),
              blocks.readData(e.pblock)?.equals(datas[e.fblock - a]) ?? false]);
            const expected = want.map((p, j) => [a + j, p, 0, 1, true, true]);
            if (JSON.stringify(got) !== JSON.stringify(expected)) expect(got, `the run [${a}, ${b}] of inode ${c.ino}`).toEqual(expected);
          }
          // Each reservation was spent on its block.
          expect(blocks.snapshot().reserved).toBe(reservedBefore);
          break;
        }
        case 'drain':
          // (A shift may have moved earlier drained blocks onto the next numbers: only unmapped ones.)
          while (blocks.freeListed > 0) {
            const fb = 200_000 + drained++;
            if (!blocks.mapOne(c.ino, fb)) blocks.setMap(c.ino, fb, blocks.allocate(false), BMAP_UNWRITTEN);
          }
          break;
        case 'forget':
          // forgetInode also drops the count kept in memory: the next is read from the row.
          if (c.count) blocks.forgetInode(c.ino);
          else blocks.forgetCached(c.ino);
          break;
        case 'read':
          blocks.fillMap(c.ino, c.fb, c.fb + c.n - 1);
          expect(blocks.countMapped(c.ino), 'the count inside the transaction').toBe(mapped.get(c.ino));
          break;
      }
    };
    check('start');
    for (const s of steps) {
      ran.steps++;
      if (s.k === 'rollback') {
        ran.rollbacks++;
        expect(() => store.txn(() => {
          for (const c of s.inner) apply(c);
          // The lookups inside the transaction load groups holding what it changed.
          for (const i of INOS) blocks.fillMap(i, 0, 511);
          throw new Error('roll back');
        })).toThrow('roll back');
        check(`after rolling back ${JSON.stringify(s.inner)}`);
      } else if (s.k === 'group') {
        store.txn(() => { for (const c of s.inner) apply(c); });
        check(`after ${JSON.stringify(s.inner)}`);
      } else {
        store.txn(() => apply(s));
        check(`after ${JSON.stringify(s)}`);
      }
    }
    // fsck finds nothing (among its invariants I1 to I3: every block below the high-water
    // mark allocated or free, none past it, refcounts equal to the map rows naming them,
    // every mapped block allocated), and the allocator's figures in memory are the tables'.
    expect(storeProblems(store)).toEqual([]);
  };
  fc.assert(fc.property(fc.array(step, { minLength: 5, maxLength: 40, size: 'max' }), sequence), { numRuns: 600, seed: 4242 });
  return { ran, stats };
}

describe('block-map cache', () => {
  it('answers as the bmap rows after every change, rolled-back transactions included', () => {
    const { ran, stats } = runSequences(undefined);
    // The sequences met the cases that matter: writes into unwritten and into shared blocks.
    expect(ran.rollbacks).toBeGreaterThan(50);
    expect(ran.unwrittenWrites).toBeGreaterThan(50);
    expect(ran.sharedWrites).toBeGreaterThan(20);
    // Preallocated runs that took blocks past the high-water mark, not only freed ones.
    expect(ran.runsPastFreeList).toBeGreaterThan(50);
    // And written runs (writeback's) that did.
    expect(ran.writtenRunsPastFreeList).toBeGreaterThan(50);
    // Shares of ranges that are one run of physical blocks (shareRange's own path) and of others.
    expect(ran.runShares).toBeGreaterThan(50);
    // The cache was used, not bypassed, and never reached its bound: lookups found groups it held.
    expect(stats.hits).toBeGreaterThan(ran.steps);
    expect(stats.bypasses).toBe(0);
    expect(stats.resets).toBe(ran.rollbacks);
  }, 120_000);

  it('answers the same when its bound empties it in the middle of the changes', () => {
    // Three groups: every check loads more than that, so the cache is emptied again and again.
    const { ran, stats } = runSequences(3);
    expect(stats.resets).toBeGreaterThan(ran.steps);
    expect(stats.groups).toBeLessThanOrEqual(3);
    expect(stats.hits).toBeGreaterThan(0);
  }, 120_000);

  it('empties itself at its bound, and bypasses what it cannot hold, with the same answers', () => {
    // A map of one inode held in a plain array: group loads pack it as blocks.ts's query does.
    const map = new Map<number, [number, number]>([[3, [7, 0]], [70, [9, BMAP_UNWRITTEN]], [200, [11, 0]], [5000, [PACK, 0]]]);
    const query = (_ino: number, a: number, b: number): FillEntry[] =>
      [...map].filter(([f]) => f >= a && f <= b).sort((x, y) => x[0] - y[0]).map(([f, [p, fl]]) => [f, p, fl]);
    const load = (_ino: number, first: number): number[] =>
      query(0, first, first + GROUP - 1).map(([f, p, fl]) => (p < PACK / 2 ? (f - first) * PACK + p * 2 + fl : -1));
    const cache = new MapCache(load, query, 2);
    for (const [a, b] of [[0, 10], [64, 127], [128, 255], [0, 255]] as [number, number][]) expect(cache.lookup(9, a, b)).toEqual(query(9, a, b));
    expect(cache.stats.resets).toBeGreaterThan(0);
    expect(cache.size).toBeLessThanOrEqual(2);
    // A block numbered beyond what packs exactly, and a range longer than 64 groups: asked of the store.
    expect(cache.lookup(9, 4990, 5010)).toEqual([[5000, PACK, 0]]);
    expect(cache.lookup(9, 0, 64 * GROUP)).toEqual(query(9, 0, 64 * GROUP));
    expect(cache.stats.bypasses).toBe(2);
  });
});
