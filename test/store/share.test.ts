/**
 * Block sharing in the store (BlockTable.shareRange, what copy_file_range's remap runs):
 * every block mapped into the destination gains one reference per time it is mapped,
 * also when the source range names a block more than once (a file that shares blocks
 * with itself); unwritten source blocks leave holes; overlapping ranges are refused. A
 * range whose written blocks are one run of physical blocks takes a path of its own.
 * fsck (invariant I2: refcount = the bmap rows naming the block) checks each step.
 */
import { describe, it, expect } from 'vitest';
import { fsck } from '../../src/store/fsck.js';
import * as io from '../../src/vfs/io.js';
import { fallocate } from '../../src/vfs/alloc.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';

const BS = 4096;

describe('shareRange', () => {
  it('adds a reference per mapping, blocks named twice in the source range counted twice', async () => {
    const { store } = newStore('share', BS);
    try {
      const vfs = vfsOf(store);
      const mk = async (name: string, blocks: number) => {
        const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from(name), 0o644, 2);
        if (blocks) await io.write(vfs, me, fh, inode.ino, Buffer.alloc(blocks * BS, 0x61), 0, 'kernel');
        vfs.writeback(inode);
        return inode.ino;
      };
      const a = await mk('a', 4);
      const b = await mk('b', 0);
      const c = await mk('c', 0);
      // Sizes that cover every range below (fsck's I6: no written block past EOF).
      for (const ino of [a, b, c]) store.db.prepare('UPDATE inodes SET size = ? WHERE ino = ?').run(32 * BS, ino);
      const blocks = store.blocks;
      const pblocks = blocks.mapRange(a, 0, 3).map((e) => e.pblock);
      expect(new Set(pblocks).size).toBe(4);
      const refs = () => pblocks.map((p) => blocks.refcount(p));
      const clean = () => expect(fsck(store.db, store.sb).problems).toEqual([]);

      // Distinct blocks: one reference more each.
      store.txn(() => blocks.shareRange(a, 0, b, 0, 4));
      expect(refs()).toEqual([2, 2, 2, 2]);
      clean();
      // a shares with itself: a[4..8) = a[0..4).
      store.txn(() => blocks.shareRange(a, 0, a, 4, 4));
      expect(refs()).toEqual([3, 3, 3, 3]);
      clean();
      // Both took the path of one run of physical blocks (a was written in order); the
      // next two ranges name blocks out of order and twice, and take the general one.
      expect(blocks.runShares).toBe(2);
      // a[0..8) names each block twice: c gains two references to each.
      store.txn(() => blocks.shareRange(a, 0, c, 0, 8));
      expect(refs()).toEqual([5, 5, 5, 5]);
      expect(blocks.mapRange(c, 0, 7).map((e) => e.pblock)).toEqual([...pblocks, ...pblocks]);
      clean();
      // Partly repeated: a[1..8) names blocks 1, 2 and 3 twice and block 0 once.
      store.txn(() => blocks.shareRange(a, 1, b, 10, 7));
      expect(refs()).toEqual([6, 7, 7, 7]);
      clean();
      expect(store.blocks.countMapped(c)).toBe(8);
      expect(blocks.runShares).toBe(2);

      // Unwritten (preallocated) source blocks leave holes and gain no reference.
      const { inode: u, fh: ufh } = io.create(vfs, me, ROOT_INO, Buffer.from('u'), 0o644, 2);
      await io.write(vfs, me, ufh, u.ino, Buffer.alloc(BS, 0x62), 0, 'kernel');
      vfs.writeback(u);
      await fallocate(vfs, me, ufh, u.ino, 0, BS, 2 * BS);
      const um = blocks.mapRange(u.ino, 0, 2);
      expect(um.map((e) => e.flags & 1)).toEqual([0, 1, 1]);
      const d = await mk('d', 0);
      store.db.prepare('UPDATE inodes SET size = ? WHERE ino = ?').run(32 * BS, d);
      store.txn(() => blocks.shareRange(u.ino, 0, d, 0, 3));
      expect(blocks.mapRange(d, 0, 2).map((e) => e.pblock)).toEqual([um[0].pblock]);
      expect(um.map((e) => blocks.refcount(e.pblock))).toEqual([2, 1, 1]);
      clean();
      // Overlapping ranges of one file are the caller's mistake, refused before anything changes.
      expect(() => store.txn(() => blocks.shareRange(a, 0, a, 2, 4))).toThrow(/overlap/);
      expect(refs()).toEqual([6, 7, 7, 7]);
    } finally {
      store.close();
    }
  });
});
