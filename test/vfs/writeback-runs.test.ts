/**
 * Writeback gathers the dirty blocks that have no mapping into runs of consecutive file
 * blocks and writes each with BlockTable.writeNewRun; every other block goes through
 * writeBlock, in ascending order. With 1 KiB blocks (four to a page) the dirty blocks of
 * a page may be any subset, so runs start and end inside pages and meet blocks that are
 * mapped (overwritten in place), shared with another file (copied on write) and free-listed
 * blocks handed out again. After one writeback of all of that, the file reads back from
 * the store as written, the other file keeps its bytes, and fsck finds nothing.
 * Below the mount: the VFS with a real store.
 */
import { describe, it, expect } from 'vitest';
import crypto from 'node:crypto';
import type { Vfs } from '../../src/vfs/vfs.js';
import { newStore, vfsOf, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { copyFileRange } from '../../src/vfs/copy.js';
import { fallocate, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../../src/vfs/alloc.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { fsck } from '../../src/store/fsck.js';
import type { Inode } from '../../src/vfs/inode.js';

const BS = 1024;
const KiB = 1024;

/** The whole file, read from the store: its pages leave the cache first. */
async function readFromStore(vfs: Vfs, inode: Inode, fh: number): Promise<Buffer> {
  dropCleanPages(vfs, inode);
  const r = await io.read(vfs, fh, inode.ino, inode.rec.size, 0);
  const b = Buffer.concat(r.bufs);
  r.done?.();
  return b;
}

describe('writeback runs', () => {
  it('runs of new blocks among mapped, shared and partly dirty blocks of 1 KiB read back as written', async () => {
    const { store } = newStore('wbruns', BS, 64 << 20);
    try {
      const vfs = vfsOf(store);
      expect(vfs.cache.bpp).toBe(4);
      const rnd = (n: number) => crypto.randomBytes(n);
      const write = async (inode: Inode, fh: number, model: Buffer | null, off: number, data: Buffer) => {
        await io.write(vfs, me, fh, inode.ino, data, off, 'kernel');
        if (model) data.copy(model, off);
      };

      // The other file: 64 KiB, written back; its second 16 KiB are shared below.
      const a = io.create(vfs, me, ROOT_INO, Buffer.from('a'), 0o644, 2);
      const aBytes = rnd(64 * KiB);
      await write(a.inode, a.fh, null, 0, aBytes);
      // A file whose blocks are freed again, so that the free list hands out 8 blocks.
      const b = io.create(vfs, me, ROOT_INO, Buffer.from('b'), 0o644, 2);
      await write(b.inode, b.fh, null, 0, rnd(8 * KiB));

      // The file under test: its first 32 KiB written back (mapped, owned).
      const f = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      const model = Buffer.alloc(128 * KiB);
      await write(f.inode, f.fh, model, 0, rnd(32 * KiB));
      io.fsync(vfs, a.fh, a.inode.ino);
      io.fsync(vfs, b.fh, b.inode.ino);
      io.fsync(vfs, f.fh, f.inode.ino);
      await fallocate(vfs, me, b.fh, b.inode.ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 8 * KiB);
      expect(store.blocks.freeListed).toBe(8);
      // Blocks 48-63 of f shared with blocks 16-31 of a.
      expect(await copyFileRange(vfs, me, a.inode.ino, 16 * KiB, a.fh, f.inode.ino, 48 * KiB, f.fh, 16 * KiB)).toBe(16 * KiB);
      aBytes.copy(model, 48 * KiB, 16 * KiB, 32 * KiB);
      expect(store.blocks.sharedCount()).toBe(16);

      // Dirty blocks: parts of mapped blocks, runs of holes beginning and ending inside
      // pages, parts of shared blocks, a hole left between, and an end in the middle of a page.
      await write(f.inode, f.fh, model, 10 * KiB + 300, rnd(5000));
      await write(f.inode, f.fh, model, 30 * KiB, rnd(11 * KiB + 512));
      await write(f.inode, f.fh, model, 45 * KiB + 512, rnd(6 * KiB));
      await write(f.inode, f.fh, model, 66 * KiB + 700, rnd(KiB));
      await write(f.inode, f.fh, model, 70 * KiB, rnd(20 * KiB + 100));
      const size = 90 * KiB + 100;
      expect(f.inode.rec.size).toBe(size);

      const runs: { n: number; freeListed: number }[] = [];
      const writeNewRun = store.blocks.writeNewRun.bind(store.blocks);
      store.blocks.writeNewRun = (ino, first, datas, reserved) => {
        runs.push({ n: datas.length, freeListed: store.blocks.freeListed });
        writeNewRun(ino, first, datas, reserved);
      };
      io.fsync(vfs, f.fh, f.inode.ino);
      // Runs were written (32-41, 45-47, 66-67, 70-90), the first partly from the free list.
      expect(runs.map((r) => r.n)).toEqual([10, 3, 2, 21]);
      expect(runs[0].freeListed).toBe(8);
      expect(runs[0].n).toBeGreaterThan(8);
      expect(store.blocks.freeListed).toBe(0);

      expect((await readFromStore(vfs, f.inode, f.fh)).equals(model.subarray(0, size))).toBe(true);
      expect((await readFromStore(vfs, a.inode, a.fh)).equals(aBytes)).toBe(true);
      // The shared blocks written were copied: 48-51 (the last in part), by one write.
      expect(store.blocks.sharedCount()).toBe(12);
      expect(fsck(store.db, store.sb).problems).toEqual([]);
    } finally {
      store.close();
    }
  });
});
