/**
 * The periodic writeback takes only the files dirty for longer than the mount's dirty
 * expiry (Vfs.writebackAll), as the kernel's flusher takes only inodes dirtied more
 * than vm.dirty_expire_centisecs ago: random overwrites then reach the store once, at
 * their fsync, instead of once per round. Below the mount: the VFS with a real store.
 * (test/mount/dirty-expire.test.ts has the daemon's rounds.)
 */
import { describe, it, expect } from 'vitest';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';

const BS = 4096;

describe('periodic writeback with a dirty expiry', () => {
  it('writes back the files dirty for longer than the expiry and leaves the younger ones dirty; 0 takes them all', async () => {
    const { store } = newStore('dexpire', BS);
    const vfs = vfsOf(store, 1 << 20);
    try {
      const a = io.create(vfs, me, ROOT_INO, Buffer.from('a'), 0o644, 2);
      const b = io.create(vfs, me, ROOT_INO, Buffer.from('b'), 0o644, 2);
      await io.write(vfs, me, a.fh, a.inode.ino, Buffer.alloc(2 * BS, 1), 0, 'kernel');
      await io.write(vfs, me, b.fh, b.inode.ino, Buffer.alloc(2 * BS, 2), 0, 'kernel');
      const ma = a.inode.mapping!;
      const mb = b.inode.mapping!;
      // The time a mapping became dirty, not of its last write: pages written again
      // later do not make it younger.
      const bDirtied = mb.dirtiedAt;
      expect(bDirtied).toBeGreaterThan(0);
      await io.write(vfs, me, b.fh, b.inode.ino, Buffer.alloc(BS, 3), 4 * BS, 'kernel');
      expect(mb.dirtiedAt).toBe(bDirtied);
      // a became dirty 40 s ago.
      ma.dirtiedAt -= 40_000;

      vfs.writebackAll(30_000);
      expect(ma.dirtyPages.size).toBe(0);
      expect(store.inodes.get(a.inode.ino)!.size).toBe(2 * BS);
      expect(mb.dirtyPages.size).toBe(3);
      expect(store.inodes.get(b.inode.ino)!.size).toBe(0);

      vfs.writebackAll(0);
      expect(mb.dirtyPages.size).toBe(0);
      expect(store.inodes.get(b.inode.ino)!.size).toBe(5 * BS);

      // Clean, then dirty again: the clock starts anew.
      await io.write(vfs, me, b.fh, b.inode.ino, Buffer.alloc(BS, 4), 0, 'kernel');
      expect(mb.dirtiedAt).toBeGreaterThan(bDirtied);
      vfs.writebackAll(30_000);
      expect(mb.dirtyPages.size).toBe(1);
    } finally {
      store.close();
    }
  });
});
