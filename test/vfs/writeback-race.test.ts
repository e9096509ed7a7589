/**
 * A writeback that runs while a write is finishing must not lose it. The write's pages
 * hold the data before the write's promise settles; a writeback in between (another
 * request's balance() or the periodic timer) once saw the old file size and dropped the
 * new blocks past it as beyond EOF. Below the mount: the VFS with a real store, and a
 * writeback after every microtask while a write that extends the file is in flight.
 */
import { describe, it, expect } from 'vitest';
import { newStore, vfsOf, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import type { Vfs } from '../../src/vfs/vfs.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';

const BS = 4096;

async function readAll(vfs: Vfs, fh: number, ino: number, size: number): Promise<Buffer> {
  const r = await io.read(vfs, fh, ino, size, 0);
  const out = Buffer.concat(r.bufs);
  r.done?.();
  return out;
}

describe('writeback during a write', () => {
  it('keeps every byte of writes that extend the file, with writebacks at every microtask', async () => {
    const { store } = newStore('wbrace', BS);
    const vfs = vfsOf(store, 256 << 10);
    try {
      const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      let want = Buffer.alloc(0);
      for (let round = 0; round < 40; round++) {
        // An unaligned tail, so the last block is written in part and needs a fill first.
        const data = Buffer.alloc(BS * 3 + 1000 + round * 37, round + 1);
        const off = want.length;
        let settled = false;
        const w = io.write(vfs, me, fh, inode.ino, data, off).then(() => { settled = true; });
        for (let i = 0; i < 50 && !settled; i++) {
          vfs.writeback(inode);
          await Promise.resolve();
        }
        await w;
        want = Buffer.concat([want, data]);
        vfs.writeback(inode);
        // Drop every clean page, so the read below comes from the store.
        dropCleanPages(vfs, inode);
        expect(inode.rec.size).toBe(want.length);
        const got = await readAll(vfs, fh, inode.ino, want.length);
        expect(got.length).toBe(want.length);
        expect(got.equals(want), `round ${round}: the store lost part of the write`).toBe(true);
      }
    } finally {
      store.close();
    }
  }, 60_000);
});
