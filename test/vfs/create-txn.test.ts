/**
 * What a create asks of the store: one transaction, no superblock update after the first
 * create of an opening (inodes of one opening share a generation; inode numbers are never
 * reused, so the pair stays unique), and no count query for the new file's st_blocks.
 * Below the mount, with a real store; test/mount has creates through the kernel.
 */
import { describe, it, expect } from 'vitest';
import type { Store } from '../../src/store/store.js';
import * as io from '../../src/vfs/io.js';
import { encodeAttr } from '../../src/fuse/attrs.js';
import { A } from '../../src/fuse/binding.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { newStoreFile, openStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';


function open(file: string) {
  const store = openStore(file);
  return { store, vfs: vfsOf(store) };
}

const nextGeneration = (store: Store) => store.db.prepare('SELECT next_generation FROM superblock').pluck().get() as number;

describe('create', () => {
  it('takes a generation from the superblock once per opening of the store, and each opening a new one', () => {
    const file = newStoreFile('create');
    const gens: number[][] = [];
    for (let opening = 0; opening < 2; opening++) {
      const { store, vfs } = open(file);
      try {
        const g0 = nextGeneration(store);
        const mine: number[] = [];
        for (let i = 0; i < 5; i++) {
          const before = store.commits;
          const { inode } = io.create(vfs, me, ROOT_INO, Buffer.from(`f${opening}-${i}`), 0o644, 2);
          expect(store.commits - before).toBe(1);
          mine.push(store.inodes.get(inode.ino)!.generation);
        }
        expect(nextGeneration(store)).toBe(g0 + 1);
        expect(new Set(mine)).toEqual(new Set([g0]));
        gens.push(mine);
      } finally {
        store.close();
      }
    }
    expect(gens[1][0]).toBeGreaterThan(gens[0][0]);
  });

  it('knows a new file maps no block without asking the store', () => {
    const { store, vfs } = open(newStoreFile('create'));
    try {
      const stmt = (store.blocks as unknown as { counts(): { get: { get: (...a: unknown[]) => unknown } } }).counts().get;
      const real = stmt.get;
      let asked = 0;
      stmt.get = (...a: unknown[]) => { asked++; return real.apply(stmt, a); };
      const { inode } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      expect(encodeAttr(vfs, inode.rec)[A.blocks]).toBe(0);
      expect(asked).toBe(0);
      // An inode loaded from the store is counted there.
      vfs.icache.delete(inode.ino);
      store.blocks.forgetInode(inode.ino);
      expect(encodeAttr(vfs, vfs.inode(inode.ino).rec)[A.blocks]).toBe(0);
      expect(asked).toBe(1);
    } finally {
      store.close();
    }
  });
});
