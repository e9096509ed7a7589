/**
 * A write transaction puts the allocator's counters back when it fails, and only then:
 * once it committed, a throw from the work after the commit (telling the checkpoint
 * thread, ending a store fault) must leave them as the commit left them, or the next
 * allocation hands out a block in use again.
 */
import { describe, it, expect } from 'vitest';
import { newStore } from '../helpers/store.js';

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
});
