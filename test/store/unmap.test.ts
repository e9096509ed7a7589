/**
 * Unmapping many blocks at once (BlockTable.unmapRange, what unlink, truncation, punch and
 * the ranges moved by collapse/insert run): a run of consecutive physical blocks drops its
 * references with range statements, the blocks outside runs as one list, a list naming a
 * block twice goes block by block, and a few blocks go block by block. Whatever the path,
 * each block loses one reference per mapping dropped, a block whose last reference goes
 * joins the free list, and a shared block that keeps a reference does not. fsck (I1: every
 * block is in exactly one of refs and free_blocks; I2: refcount = the rows naming it)
 * checks each step, and the allocator's counters must match the tables. Outside a write
 * transaction unmapRange refuses before changing anything.
 */
import { describe, it, expect } from 'vitest';
import { fsck } from '../../src/store/fsck.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';

const BS = 4096;

describe('unmapRange', () => {
  it('drops one reference per mapping by runs, lists and single blocks alike', async () => {
    const { store } = newStore('unmap', BS);
    try {
      const vfs = vfsOf(store);
      const blocks = store.blocks;
      const db = store.db;
      const mk = async (name: string, n: number) => {
        const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from(name), 0o644, 2);
        if (n) await io.write(vfs, me, fh, inode.ino, Buffer.alloc(n * BS, 0x61), 0, 'kernel');
        vfs.writeback(inode);
        // Room for every range below (fsck's I6: no written block past EOF).
        db.prepare('UPDATE inodes SET size = ? WHERE ino = ?').run(256 * BS, inode.ino);
        return inode.ino;
      };
      const pblocksOf = (ino: number) => blocks.mapRange(ino, 0, 1e9).map((e) => e.pblock);
      const freeList = () => new Set(db.prepare('SELECT pblock FROM free_blocks').pluck().all() as number[]);
      const clean = () => {
        expect(fsck(db, store.sb).problems).toEqual([]);
        expect(blocks.used).toBe(db.prepare('SELECT count(*) FROM refs').pluck().get());
        expect(blocks.freeListed).toBe(db.prepare('SELECT count(*) FROM free_blocks').pluck().get());
      };

      // One run: a is written in order; b shares its first 20 blocks.
      const a = await mk('a', 64);
      const pa = pblocksOf(a);
      expect(pa).toEqual(pa.map((_, i) => pa[0] + i));
      const b = await mk('b', 0);
      store.txn(() => blocks.shareRange(a, 0, b, 0, 20));
      expect(store.txn(() => blocks.unmapRange(a, 0, Number.MAX_SAFE_INTEGER))).toBe(64);
      expect(pa.slice(0, 20).map((p) => blocks.refcount(p))).toEqual(Array(20).fill(1));
      expect(pa.slice(20).map((p) => blocks.refcount(p))).toEqual(Array(44).fill(0));
      let free = freeList();
      expect(pa.filter((p) => free.has(p))).toEqual(pa.slice(20));
      expect(blocks.countMapped(a)).toBe(0);
      clean();

      // A list outside runs: every other one of x's 64 blocks is freed; y's 32 then take
      // those, lowest first, two apart. z shares the first 8 of them.
      // c takes a's 44 freed blocks first, so that x is a run and y lands in x's holes.
      const c = await mk('c', 44);
      expect(new Set(pblocksOf(c))).toEqual(new Set(pa.slice(20)));
      const x = await mk('x', 64);
      const px = pblocksOf(x);
      for (let i = 0; i < 64; i += 2) store.txn(() => blocks.unmapRange(x, i, i));
      const y = await mk('y', 32);
      const py = pblocksOf(y);
      expect(py).toEqual(px.filter((_, i) => i % 2 === 0));
      const z = await mk('z', 0);
      store.txn(() => blocks.shareRange(y, 0, z, 0, 8));
      clean();
      expect(store.txn(() => blocks.unmapRange(y, 0, Number.MAX_SAFE_INTEGER))).toBe(32);
      expect(py.map((p) => blocks.refcount(p))).toEqual([...Array(8).fill(1), ...Array(24).fill(0)]);
      free = freeList();
      expect(py.filter((p) => free.has(p))).toEqual(py.slice(8));
      clean();

      // A run and a list in one range: w takes the 24 freed blocks, then a run past the
      // high-water mark; v shares a stretch across both parts.
      const w = await mk('w', 64);
      const pw = pblocksOf(w);
      expect(new Set(pw.slice(0, 24))).toEqual(new Set(py.slice(8)));
      expect(pw.slice(24)).toEqual(pw.slice(24).map((_, i) => pw[24] + i));
      const v = await mk('v', 0);
      store.txn(() => blocks.shareRange(w, 16, v, 0, 32));
      expect(store.txn(() => blocks.unmapRange(w, 0, Number.MAX_SAFE_INTEGER))).toBe(64);
      expect(pw.map((p) => blocks.refcount(p))).toEqual([...Array(16).fill(0), ...Array(32).fill(1), ...Array(16).fill(0)]);
      free = freeList();
      expect(pw.filter((p) => free.has(p))).toEqual([...pw.slice(0, 16), ...pw.slice(48)]);
      clean();

      // A file that shares blocks with itself: each block named twice loses two references.
      const d = await mk('d', 20);
      const pd = pblocksOf(d);
      store.txn(() => blocks.shareRange(d, 0, d, 20, 20));
      expect(pd.map((p) => blocks.refcount(p))).toEqual(Array(20).fill(2));
      const e = await mk('e', 0);
      store.txn(() => blocks.shareRange(d, 0, e, 0, 4));
      expect(store.txn(() => blocks.unmapRange(d, 0, Number.MAX_SAFE_INTEGER))).toBe(40);
      expect(pd.map((p) => blocks.refcount(p))).toEqual([...Array(4).fill(1), ...Array(16).fill(0)]);
      clean();

      // Its statements belong to one transaction: outside one it refuses before changing anything.
      expect(() => blocks.unmapRange(b, 0, Number.MAX_SAFE_INTEGER)).toThrow(/unmapRange must run inside a store transaction/);
      expect(blocks.countMapped(b)).toBe(20);

      // Removing the rest leaves every block free and no reference behind.
      for (const ino of [b, c, x, z, v, e]) store.txn(() => blocks.unmapRange(ino, 0, Number.MAX_SAFE_INTEGER));
      expect(blocks.used).toBe(0);
      expect(db.prepare('SELECT count(*) FROM refs').pluck().get()).toBe(0);
      clean();
    } finally {
      store.close();
    }
  });
});
