/**
 * Write-behind: a file written at its end, or where its last write ended (a sequential
 * overwrite), starts its writeback once it holds Vfs.writeBehindPages dirty pages, so a long stream is written back in bounded
 * transactions instead of one as large as the file at fsync. Random overwrites inside the
 * file do not start it (a page written again would be written back again): they wait for
 * the cache cap or fsync. The pages a write-behind wrote back leave the cache
 * (drop-behind), so a stream reuses a few frames instead of touching new memory for every
 * page. Below the mount: the VFS with a real store.
 */
import { describe, it, expect } from 'vitest';
import type { Store } from '../../src/store/store.js';
import type { Vfs } from '../../src/vfs/vfs.js';
import { newStore, vfsOf, offsetChunk as chunk, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { fallocate } from '../../src/vfs/alloc.js';
import { ROOT_INO } from '../../src/store/schema.js';
import type { Inode } from '../../src/vfs/inode.js';
import { OpCtx } from '../../src/cache/lockcheck.js';

const BS = 4096;
const MiB = 1 << 20;

function setup(cacheBytes: number): { store: Store; vfs: Vfs } {
  const { store } = newStore('wbehind', BS, 256 * MiB);
  return { store, vfs: vfsOf(store, cacheBytes) };
}

/**
 * Writes `total` bytes to a new file in 1 MiB chunks from its start (at its end, unless
 * `prepare` gave it a size first); `after` runs after each write.
 */
async function stream(vfs: Vfs, total: number, after: () => void = () => undefined,
  prepare: (inode: Inode, fh: number) => Promise<void> = async () => undefined) {
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
  await prepare(inode, fh);
  for (let off = 0; off < total; off += MiB) {
    await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
    after();
  }
  return { inode, fh };
}

/** Reads the whole streamed file back and checks every chunk. */
async function expectReadsBack(vfs: Vfs, fh: number, ino: number, total: number): Promise<void> {
  const r = await io.read(vfs, fh, ino, total, 0);
  const got = Buffer.concat(r.bufs);
  r.done?.();
  expect(got.length).toBe(total);
  for (let off = 0; off < total; off += MiB) expect(got.subarray(off, off + MiB).equals(chunk(off)), `MiB at ${off}`).toBe(true);
}

describe('write-behind', () => {
  it('a file written at its end never holds much more than writeBehindPages dirty, and reads back whole from the store', async () => {
    const { store, vfs } = setup(64 * MiB);
    try {
      const limit = vfs.writeBehindPages;
      expect(limit).toBe((64 * MiB / vfs.cache.pageSize) / 4); // a quarter of this cache, under the 32 MiB bound
      const pagesPerWrite = MiB / vfs.cache.pageSize;
      let most = 0;
      const total = 40 * MiB;
      const { inode, fh } = await stream(vfs, total, () => { most = Math.max(most, vfs.cache.dirtyCount); });
      expect(most).toBeLessThan(limit + pagesPerWrite);
      expect(vfs.cache.stats.writebacks).toBeGreaterThanOrEqual(2);
      // What was written back is in the store: drop every clean page and read it all back.
      dropCleanPages(vfs, inode);
      await expectReadsBack(vfs, fh, inode.ino, total);
    } finally {
      store.close();
    }
  }, 60_000);

  it('goes on past its size while a checkpoint is due or running, then waits for it, and goes at its size once none is', async () => {
    const { store, vfs } = setup(64 * MiB);
    // The checkpointer as the store sees it (src/store/checkpointer.ts), busy on demand;
    // idle() answers when the test says the checkpoint has ended.
    const ends: (() => void)[] = [];
    let asked!: () => void;
    const idleAsked = new Promise<void>((resolve) => { asked = resolve; });
    const ck = {
      busy: true,
      committed: () => undefined,
      unhurried: <T>(fn: () => T) => fn(),
      idle: () => {
        asked();
        return new Promise<void>((resolve) => ends.push(resolve));
      },
    };
    store.checkpoints = ck;
    try {
      const limit = vfs.writeBehindPages;
      const pagesPerWrite = MiB / vfs.cache.pageSize;
      const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      // Each write returns until the stream holds 1.25 times the size; the write that
      // takes it there asks for the checkpoint's end and waits, with nothing written back.
      let off = 0;
      let waiting: Promise<number> | null = null;
      for (; off < 48 * MiB; off += MiB) {
        const w = io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
        if (await Promise.race([w.then(() => false), idleAsked.then(() => true)])) {
          waiting = w;
          break;
        }
      }
      expect(waiting).not.toBeNull();
      expect(ends.length).toBe(1);
      expect(vfs.cache.dirtyCount).toBe(Math.ceil(1.25 * limit / pagesPerWrite) * pagesPerWrite);
      expect(vfs.cache.stats.writebacks).toBe(0);
      // The checkpoint ends: the waiting write writes the stream back and returns.
      ends.shift()!();
      expect(await waiting).toBe(MiB);
      expect(vfs.cache.dirtyCount).toBe(0);
      expect(vfs.cache.stats.writebacks).toBe(1);
      // No checkpoint due: the write-behind goes at its size again, without waiting.
      ck.busy = false;
      let most = 0;
      for (off += MiB; off < 80 * MiB; off += MiB) {
        await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
        most = Math.max(most, vfs.cache.dirtyCount);
      }
      expect(ends.length).toBe(0);
      expect(most).toBeLessThan(limit + pagesPerWrite);
      dropCleanPages(vfs, inode);
      await expectReadsBack(vfs, fh, inode.ino, 80 * MiB);
    } finally {
      store.close();
    }
  }, 60_000);

  it('a sequential overwrite of preallocated space (fio\'s default) starts it too, and reads back whole', async () => {
    const { store, vfs } = setup(64 * MiB);
    try {
      const limit = vfs.writeBehindPages;
      const pagesPerWrite = MiB / vfs.cache.pageSize;
      const total = 40 * MiB;
      let most = 0;
      const { inode, fh } = await stream(vfs, total, () => { most = Math.max(most, vfs.cache.dirtyCount); }, async (inode, fh) => {
        await fallocate(vfs, me, fh, inode.ino, 0, 0, total);
        expect(inode.rec.size).toBe(total);
      });
      // Left to the cap, all 10,240 pages of this 64 MiB cache would stay dirty.
      expect(most).toBeLessThan(limit + pagesPerWrite);
      expect(vfs.cache.stats.droppedBehind).toBeGreaterThan(0);
      vfs.writeback(inode);
      dropCleanPages(vfs, inode);
      await expectReadsBack(vfs, fh, inode.ino, total);
    } finally {
      store.close();
    }
  }, 60_000);

  it('random overwrites inside the file do not start it: their pages stay dirty until the cap or fsync', async () => {
    const { store, vfs } = setup(64 * MiB);
    try {
      const limit = vfs.writeBehindPages;
      const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      const size = 40 * MiB;
      for (let off = 0; off < size; off += MiB) await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
      vfs.writeback(inode);
      const before = vfs.cache.stats.writebacks;
      const pages = size / vfs.cache.pageSize;
      const block = Buffer.alloc(BS, 0x5a);
      let written = 0;
      for (let i = 0; i < limit + 1000; i++) {
        const page = (i * 7919) % pages; // distinct pages, in no order
        await io.write(vfs, me, fh, inode.ino, block, page * vfs.cache.pageSize, 'kernel');
        written++;
        // Now and then the next write starts where this one ended, as random offsets do by chance.
        if (i % 100 === 99 && page + 1 < pages && (((i + 1) * 7919) % pages) !== page + 1) {
          await io.write(vfs, me, fh, inode.ino, block, (page + 1) * vfs.cache.pageSize, 'kernel');
          written++;
        }
      }
      expect(inode.mapping!.dirtyPages.size).toBeGreaterThan(limit + 1000);
      expect(inode.mapping!.dirtyPages.size).toBeLessThanOrEqual(written);
      expect(vfs.cache.stats.writebacks).toBe(before);
    } finally {
      store.close();
    }
  }, 60_000);

  it('drop-behind: the pages a write-behind wrote back leave the cache, all but the last, so a stream reuses its frames', async () => {
    const { store, vfs } = setup(64 * MiB);
    try {
      const limit = vfs.writeBehindPages;
      const pagesPerWrite = MiB / vfs.cache.pageSize;
      const total = 40 * MiB;
      let most = 0;
      const { inode, fh } = await stream(vfs, total, () => { most = Math.max(most, vfs.cache.count); });
      // Kept, the 40 MiB would be 10,240 pages in 20 slabs of this 64 MiB cache.
      expect(most).toBeLessThan(limit + pagesPerWrite + 1);
      const framesPerSlab = (2 << 20) / vfs.cache.pageSize;
      expect(vfs.cache.frames.slabs).toBeLessThanOrEqual(Math.ceil((limit + pagesPerWrite + 1) / framesPerSlab));
      expect(vfs.cache.stats.droppedBehind).toBeGreaterThan(0);
      // The last page written back stays: it is where the stream goes on.
      const lastWrittenBack = vfs.cache.stats.writebackPages - 1;
      expect(inode.mapping!.get(lastWrittenBack)).toBeDefined();
      // Frames reused by later pages hold the right bytes: everything reads back from the store.
      vfs.writeback(inode);
      await expectReadsBack(vfs, fh, inode.ino, total);
    } finally {
      store.close();
    }
  }, 60_000);

  it('drop-behind keeps the pages while a fill holds the mapping\'s invalidate_lock, as eviction does', async () => {
    const { store, vfs } = setup(64 * MiB);
    try {
      // The file's mapping exists once it is created, and the lock is taken before the first write.
      const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
      const m = inode.mapping!;
      const ctx = new OpCtx('test fill');
      await m.invalidateLock.acquire(ctx, 'shared');
      const total = 40 * MiB;
      try {
        for (let off = 0; off < total; off += MiB) await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
      } finally {
        m.invalidateLock.release(ctx, 'shared');
      }
      expect(vfs.cache.stats.writebacks).toBeGreaterThanOrEqual(2);
      expect(vfs.cache.stats.droppedBehind).toBe(0);
      expect(m.pages.size).toBe(total / vfs.cache.pageSize);
    } finally {
      store.close();
    }
  }, 60_000);
});
