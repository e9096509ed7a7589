/**
 * When the rows of unlinked inodes leave the store. An inode nobody holds that maps
 * blocks goes at once, so its space is free; one that maps none waits for a batch
 * (Vfs.reapOrphans), and whatever a daemon left waiting when it died goes at the next
 * mount in one transaction. Below the mount; test/mount/commits.test.ts counts the
 * commits of an rm through the kernel.
 */
import { describe, it, expect } from 'vitest';
import * as io from '../../src/vfs/io.js';
import * as entry from '../../src/vfs/entry.js';
import * as namei from '../../src/vfs/namei.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { newStoreFile, openStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';

/** Creates `name` (optionally writing one block and syncing it), closes it, unlinks it and drops the kernel's lookup. */
async function createAndRemove(vfs: ReturnType<typeof vfsOf>, name: string, withBlock: boolean): Promise<number> {
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from(name), 0o644, 2);
  if (withBlock) {
    await io.write(vfs, me, fh, inode.ino, Buffer.alloc(4096, 0x61), 0, 'keep');
    io.fsync(vfs, fh, inode.ino);
  }
  io.release(vfs, fh, inode.ino);
  namei.unlink(vfs, ROOT_INO, Buffer.from(name));
  entry.forget(vfs, inode.ino, 1);
  return inode.ino;
}

describe('orphans', () => {
  it('an unlinked inode with blocks goes at once; ones without wait and go together in one transaction', async () => {
    const store = openStore(newStoreFile('orphans'));
    const vfs = vfsOf(store);
    try {
      const usedBefore = store.blocks.used;
      const full = await createAndRemove(vfs, 'full', true);
      expect(store.inodes.get(full)).toBeUndefined();
      expect(store.blocks.used).toBe(usedBefore);
      const empty: number[] = [];
      for (let i = 0; i < 5; i++) empty.push(await createAndRemove(vfs, `e${i}`, false));
      expect(vfs.orphansWaiting).toBe(5);
      for (const ino of empty) expect(store.inodes.get(ino)?.nlink).toBe(0);
      expect(vfs.icache.has(empty[0])).toBe(false);
      const before = store.commits;
      expect(vfs.reapOrphans()).toBe(5);
      expect(store.commits - before).toBe(1);
      for (const ino of empty) expect(store.inodes.get(ino)).toBeUndefined();
      expect(vfs.orphansWaiting).toBe(0);
      expect(vfs.reapOrphans()).toBe(0);
      expect(store.commits - before).toBe(1);
    } finally {
      store.close();
    }
  });

  it('orphans left waiting by a daemon that stopped go at the next opening, in one transaction', async () => {
    const file = newStoreFile('orphans');
    let store = openStore(file);
    try {
      const vfs = vfsOf(store);
      for (let i = 0; i < 40; i++) await createAndRemove(vfs, `e${i}`, false);
      expect(vfs.orphansWaiting).toBe(40);
    } finally {
      store.close(); // as a killed daemon would: no shutdown, nothing reaped
    }
    store = openStore(file);
    try {
      const vfs = vfsOf(store);
      const before = store.commits;
      expect(vfs.recoverOrphans()).toBe(40);
      expect(store.commits - before).toBe(1);
      expect(store.inodes.count()).toBe(1);
    } finally {
      store.close();
    }
  });
});
