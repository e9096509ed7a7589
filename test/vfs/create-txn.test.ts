/**
 * What a create asks of the store: one transaction, no superblock update after the first
 * create of an opening (inodes of one opening share a generation; inode numbers are never
 * reused, so the pair stays unique), and no count query for the new file's st_blocks.
 * Below the mount, with a real store; test/mount has creates through the kernel.
 */
import { describe, it, expect } from 'vitest';
import { INO_RESERVE, type Store } from '../../src/store/store.js';
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
const inoSeq = (store: Store) => store.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'inodes'").pluck().get() as number;

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

  it('numbers inodes from a range reserved once per opening (no sqlite_sequence write per create), never reusing a number', () => {
    const file = newStoreFile('create');
    const used = new Set<number>();
    const make = (vfs: ReturnType<typeof open>['vfs'], name: string) => {
      const { inode } = io.create(vfs, me, ROOT_INO, Buffer.from(name), 0o644, 2);
      expect(used.has(inode.ino), `inode ${inode.ino} again`).toBe(false);
      used.add(inode.ino);
      return inode.ino;
    };
    {
      const { store, vfs } = open(file);
      try {
        const seq0 = inoSeq(store);
        const inos = [make(vfs, 'a0')];
        expect(inos[0]).toBe(seq0 + 1);
        expect(inoSeq(store)).toBe(seq0 + INO_RESERVE);
        for (let i = 1; i < 5; i++) inos.push(make(vfs, `a${i}`));
        expect(inos).toEqual([1, 2, 3, 4, 5].map((k) => seq0 + k));
        expect(inoSeq(store)).toBe(seq0 + INO_RESERVE); // not rewritten by each create
        // Past the range: one more reservation.
        let last = 0;
        for (let i = 5; i <= INO_RESERVE; i++) last = make(vfs, `a${i}`);
        expect(last).toBe(seq0 + INO_RESERVE + 1);
        expect(inoSeq(store)).toBe(seq0 + 2 * INO_RESERVE);
      } finally {
        store.close();
      }
    }
    {
      // A later opening starts above what the earlier one reserved, though it used little of it.
      const { store, vfs } = open(file);
      try {
        const before = Math.max(...used);
        const seq = inoSeq(store);
        expect(seq).toBeGreaterThanOrEqual(before + INO_RESERVE - 1);
        expect(make(vfs, 'b0')).toBe(seq + 1);
      } finally {
        store.close();
      }
    }
    {
      // The transaction that reserved rolls back: its numbers go unused or are inserted
      // later, and a later opening still starts above every number inserted.
      const { store, vfs } = open(file);
      try {
        const seqBefore = inoSeq(store);
        const dentries = store.dentries as unknown as { insert: (...a: unknown[]) => void };
        const real = dentries.insert;
        dentries.insert = () => { dentries.insert = real; throw new Error('injected'); };
        expect(() => io.create(vfs, me, ROOT_INO, Buffer.from('c0'), 0o644, 2)).toThrow('injected');
        expect(inoSeq(store)).toBe(seqBefore);
        for (let i = 1; i <= 3; i++) make(vfs, `c${i}`);
        expect(inoSeq(store)).toBeGreaterThanOrEqual(Math.max(...used.values()));
      } finally {
        store.close();
      }
    }
    {
      const { store, vfs } = open(file);
      try {
        const before = Math.max(...used);
        expect(make(vfs, 'd0')).toBeGreaterThan(before);
        const rows = store.db.prepare('SELECT count(*) FROM inodes').pluck().get() as number;
        expect(rows).toBe(used.size + 1); // the root
      } finally {
        store.close();
      }
    }
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
