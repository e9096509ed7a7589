/**
 * A write transaction puts the allocator's counters back when it fails, and only then:
 * once it committed, a throw from the work after the commit (telling the checkpoint
 * thread, ending a store fault) must leave them as the commit left them, or the next
 * allocation hands out a block in use again.
 */
import { describe, it, expect } from 'vitest';
import { newStore } from '../helpers/store.js';
import { BMAP_UNWRITTEN } from '../../src/store/schema.js';

describe('store transactions', () => {
  it('a throw after the commit keeps what the commit allocated', () => {
    const { store } = newStore('txn');
    try {
      const blocks = store.blocks;
      store.checkpoints = {
        committed() { throw new Error('after the commit'); },
        busy: false,
        unhurried: <T>(fn: () => T) => fn(),
      };
      let first = 0;
      expect(() => store.txn(() => {
        first = blocks.allocate(false);
        blocks.setMap(2, 0, first, 0);
      })).toThrow('after the commit');
      store.checkpoints = null;
      // Committed: the row is there, and the next block is another one.
      expect(blocks.mapRange(2, 0, 0).map((e) => e.pblock)).toEqual([first]);
      const second = store.txn(() => blocks.allocate(false));
      expect(second).not.toBe(first);
      expect(blocks.used).toBe(2);
      // And a transaction that fails before its commit still puts them back.
      expect(() => store.txn(() => { blocks.allocate(false); throw new Error('before the commit'); })).toThrow('before the commit');
      expect(blocks.used).toBe(2);
      expect(store.txn(() => blocks.allocate(false))).toBe(second + 1);
    } finally {
      store.close();
    }
  });

  it('a run of new blocks that does not fit fails with ENOSPC and changes nothing', () => {
    // 16 blocks of 4 KiB: 3 used and freed again (so a run takes them first, one by one),
    // and 4 held by reservations of dirty blocks elsewhere.
    const { store } = newStore('txn-run', 4096, 16 * 4096);
    try {
      const blocks = store.blocks;
      const data = (n: number) => Array.from({ length: n }, (_, j) => Buffer.alloc(4096, j + 1));
      store.txn(() => {
        for (let fb = 0; fb < 3; fb++) blocks.setMap(3, fb, blocks.allocate(false), BMAP_UNWRITTEN);
      });
      store.txn(() => blocks.unmapRange(3, 0, 2));
      blocks.reserve(4);
      const before = blocks.snapshot();
      expect(before).toEqual({ hwm: 4, used: 0, reserved: 4, freeListed: 3 });
      // 14 blocks, the first with one of those reservations: the 3 freed, then 11 more
      // past the high-water mark, which with the 3 left reserved make 17, one too many.
      const reserved = Array.from({ length: 14 }, (_, j) => j === 0);
      expect(() => store.txn(() => blocks.writeNewRun(2, 0, data(14), reserved))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
      // Rolled back, the freed blocks' writes with it.
      expect(blocks.snapshot()).toEqual(before);
      expect(blocks.mapRange(2, 0, 100)).toEqual([]);
      expect(store.db.prepare('SELECT count(*) FROM free_blocks').pluck().get()).toBe(3);
      expect(store.db.prepare('SELECT count(*) FROM refs').pluck().get()).toBe(0);
      // 13 fit exactly, and spend the one reservation.
      store.txn(() => blocks.writeNewRun(2, 0, data(13), reserved.slice(0, 13)));
      expect(blocks.snapshot()).toEqual({ hwm: 14, used: 13, reserved: 3, freeListed: 0 });
      expect(blocks.free).toBe(0);
      expect(blocks.mapRange(2, 0, 100).map((e) => [e.fblock, e.pblock, e.flags, e.refcount])).toEqual(
        Array.from({ length: 13 }, (_, j) => [j, j + 1, 0, 1]));
      expect(blocks.readData(13)).toEqual(Buffer.alloc(4096, 13));
    } finally {
      store.close();
    }
  });
});
