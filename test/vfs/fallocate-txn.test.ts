/**
 * fallocate commits once: the blocks it changes and the inode's new size and times go to
 * the store in one transaction (a punch was two commits, the second for the inode row
 * alone). Below the mount: the VFS with a real store; test/mount/fallocate.test.ts has
 * the modes' behaviour through the mount.
 */
import { describe, it, expect } from 'vitest';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { fallocate, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from '../../src/vfs/alloc.js';
import { ROOT_INO } from '../../src/store/schema.js';

const BS = 4096;

/** A store with one file of 16 written blocks, written back. */
async function setup(mode: number) {
  const { store } = newStore('falloc', BS);
  const vfs = vfsOf(store);
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), mode, 2);
  await io.write(vfs, me, fh, inode.ino, Buffer.alloc(16 * BS, 0x61), 0, 'kernel');
  vfs.writeback(inode);
  return { store, vfs, inode, fh };
}

describe('fallocate', () => {
  it('commits once per call, blocks and inode row together, in every mode', async () => {
    const { store, vfs, inode, fh } = await setup(0o644);
    try {
      const cases: [string, number, number, number][] = [
        ['punch of a whole block', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * BS, BS],
        ['punch with partial edges', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 * BS + 100, 2 * BS],
        ['punch past EOF, nothing to do', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * BS, BS],
        ['zero range', FALLOC_FL_ZERO_RANGE, 8 * BS, 2 * BS],
        ['preallocation growing the file', 0, 16 * BS, 4 * BS],
      ];
      for (const [what, mode, off, len] of cases) {
        const before = store.commits;
        const mtime = [inode.rec.mtimeS, inode.rec.mtimeNs];
        await new Promise((r) => setTimeout(r, 2));
        await fallocate(vfs, me, fh, inode.ino, mode, off, len);
        expect(store.commits - before, what).toBe(1);
        // What that one commit wrote: the inode row as it is in memory.
        expect(store.inodes.get(inode.ino), what).toEqual(inode.rec);
        if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) expect([inode.rec.mtimeS, inode.rec.mtimeNs], what).not.toEqual(mtime);
      }
      expect(inode.rec.size).toBe(20 * BS);
      expect(store.blocks.mapOne(inode.ino, 2)).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it('a transaction that fails changes neither the store nor the inode in memory', async () => {
    const { store, vfs, inode, fh } = await setup(0o4755);
    try {
      // The inode row's update fails, as on a full or failing disk, after the blocks changed.
      const update = store.inodes.update.bind(store.inodes);
      store.inodes.update = () => { throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' }); };
      const cases: [string, number, number, number][] = [
        ['punch', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * BS, BS],
        ['punch past EOF', FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * BS, BS],
        ['zero range', FALLOC_FL_ZERO_RANGE, 8 * BS, 2 * BS],
        ['preallocation growing the file', 0, 16 * BS, 4 * BS],
      ];
      const used = store.blocks.used;
      for (const [what, mode, off, len] of cases) {
        const caller: Caller = { ...me, uid: 1000, gid: 1000 }; // clears set-ID bits (killpriv) when it succeeds
        await expect(fallocate(vfs, caller, fh, inode.ino, mode, off, len), what).rejects.toThrow(/disk I\/O error/);
        expect(inode.rec, what).toEqual(store.inodes.get(inode.ino));
        expect(inode.metaDirty, what).toBe(false);
        expect(store.blocks.used, what).toBe(used);
        expect(store.blocks.mapOne(inode.ino, 2), what).toBeDefined();
      }
      store.inodes.update = update;
    } finally {
      store.close();
    }
  });
});
