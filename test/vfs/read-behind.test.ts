/**
 * Read drop-behind: the clean pages a sequential read stream has answered leave the cache
 * behind it (PageCache.dropBehindRead), so a long cold read reuses a few frames instead
 * of touching new memory for every page; the kernel keeps its own copy of what it read.
 * Reads out of order drop nothing, and a page eviction's rule keeps (one used since the
 * grant of a holder of the invalidate_lock) stays until the stream's next read.
 * Below the mount: the VFS with a real store.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { Vfs } from '../../src/vfs/vfs.js';
import { newStore, vfsOf, offsetChunk as chunk, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { OpCtx } from '../../src/cache/lockcheck.js';
import type { Inode } from '../../src/vfs/inode.js';

const BS = 4096;
const MiB = 1 << 20;
const TOTAL = 40 * MiB;
let store: Store | null = null;
afterEach(() => {
  store?.close();
  store = null;
});

/**
 * Block reads that the test answers one by one, in the order it chooses, once `held` is
 * set (before that, at once). Every read goes this way: none is answered in the same turn.
 */
interface HeldReads {
  held: boolean;
  /** Reads waiting, oldest first: answer(i) lets the i-th of them finish. */
  waiting: (() => void)[];
}

/**
 * A 40 MiB file written back, with no page cached, in a VFS with a 64 MiB cache (it would
 * hold all of it); with `reads`, its block reads go through them.
 */
async function coldFile(reads?: HeldReads): Promise<{ vfs: Vfs; inode: Inode; fh: number }> {
  store = newStore('readbehind', BS, 256 * MiB).store;
  const blocks = store.blocks;
  const vfs = reads
    ? new Vfs(store, {
      cacheBytes: 64 * MiB,
      readBlocks: async (pblocks) => {
        const bytes = pblocks.map((p) => blocks.readData(p));
        if (reads.held) await new Promise<void>((r) => reads.waiting.push(r));
        return bytes;
      },
      readBlocksNow: { max: () => 0, read: () => [] },
    })
    : vfsOf(store, 64 * MiB);
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
  for (let off = 0; off < TOTAL; off += MiB) await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
  vfs.writeback(inode);
  dropCleanPages(vfs, inode);
  expect(vfs.cache.count).toBe(0);
  return { vfs, inode, fh };
}

/**
 * Reads the 1 MiB chunks at `offsets` with up to `inFlight` reads outstanding, as the
 * kernel's asynchronous readahead sends them, checking each chunk's bytes before its
 * reply is "sent" (done). Returns the most pages the cache held at once.
 */
async function readChunks(vfs: Vfs, inode: Inode, fh: number, offsets: number[], inFlight = 4): Promise<number> {
  let most = 0;
  const running = new Set<Promise<void>>();
  for (const off of offsets) {
    const one = (async () => {
      const r = await io.read(vfs, fh, inode.ino, MiB, off);
      most = Math.max(most, vfs.cache.count);
      expect(Buffer.concat(r.bufs).equals(chunk(off)), `MiB at ${off}`).toBe(true);
      r.done?.();
    })();
    running.add(one);
    void one.finally(() => running.delete(one));
    if (running.size >= inFlight) await Promise.race(running);
  }
  await Promise.all(running);
  return most;
}

const sequentialOffsets = Array.from({ length: TOTAL / MiB }, (_, i) => i * MiB);

/** Lets the waiting read at `i` finish, and gives the promises a turn to run. */
async function answer(reads: HeldReads, i: number): Promise<void> {
  reads.waiting.splice(i, 1)[0]();
  for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
}

async function bytesOf(r: io.ReadResult | Promise<io.ReadResult>, off: number): Promise<void> {
  const rr = await r;
  expect(Buffer.concat(rr.bufs).equals(chunk(off)), `MiB at ${off}`).toBe(true);
  rr.done?.();
}

describe('read drop-behind', () => {
  it('a sequential read stream gives back the pages behind it and reuses their frames, with the right bytes', async () => {
    const { vfs, inode, fh } = await coldFile();
    // The frames the writes used are idle in the pool, enough for what the stream holds.
    const slabs = vfs.cache.frames.slabs;
    expect(vfs.cache.frames.idle * vfs.cache.pageSize).toBeGreaterThanOrEqual(8 * MiB);
    const most = await readChunks(vfs, inode, fh, sequentialOffsets);
    const pagesPerRead = MiB / vfs.cache.pageSize;
    // Kept, the 40 MiB would be 10,240 pages in 20 slabs: the stream holds what its reads
    // in flight, the daemon's readahead and the cursor's lag of a few reads cover.
    expect(most).toBeLessThanOrEqual(8 * pagesPerRead);
    expect(vfs.cache.frames.slabs).toBe(slabs);
    expect(vfs.cache.stats.droppedBehindReads).toBeGreaterThan(TOTAL / vfs.cache.pageSize / 2);
    expect(vfs.cache.stats.evictions).toBe(0);
    // Read again, from frames other pages used: still the file's bytes.
    await readChunks(vfs, inode, fh, sequentialOffsets);
  });

  it('reads out of order drop nothing: every page read stays cached', async () => {
    const { vfs, inode, fh } = await coldFile();
    // A fixed shuffle in which no chunk follows the one before it.
    const n = TOTAL / MiB;
    const offsets = Array.from({ length: n }, (_, i) => ((i * 17) % n) * MiB);
    await readChunks(vfs, inode, fh, offsets, 1);
    expect(vfs.cache.stats.droppedBehindReads).toBe(0);
    expect(vfs.cache.count).toBe(TOTAL / vfs.cache.pageSize);
  });

  it('keeps the pages while an older holder of the invalidate_lock may be using them; the next read drops them', async () => {
    const { vfs, inode, fh } = await coldFile();
    const m = inode.mapping!;
    const ctx = new OpCtx('test fill');
    await m.invalidateLock.acquire(ctx, 'shared');
    try {
      await readChunks(vfs, inode, fh, sequentialOffsets.slice(0, 8));
      expect(vfs.cache.stats.droppedBehindReads).toBe(0);
      expect(m.pages.size).toBeGreaterThanOrEqual(8 * MiB / vfs.cache.pageSize);
    } finally {
      m.invalidateLock.release(ctx, 'shared');
    }
    // The stream goes on: its next reads drop what the holder kept, from the cursor on.
    await readChunks(vfs, inode, fh, sequentialOffsets.slice(8, 10), 1);
    expect(m.get(0)).toBeUndefined();
    expect(vfs.cache.stats.droppedBehindReads).toBeGreaterThanOrEqual(8 * MiB / vfs.cache.pageSize);
  });
  it('a read of the stream answered before an earlier one does not pass the earlier one\'s pages: the next read drops them', async () => {
    const reads: HeldReads = { held: false, waiting: [] };
    const { vfs, inode, fh } = await coldFile(reads);
    const m = inode.mapping!;
    reads.held = true;
    const first = io.read(vfs, fh, inode.ino, MiB, 0);
    const second = io.read(vfs, fh, inode.ino, MiB, MiB);
    await new Promise((r) => setImmediate(r));
    expect(reads.waiting.length).toBe(2);
    // The second read finishes first: the first one's pages are not in the cache yet.
    await answer(reads, 1);
    await bytesOf(second, MiB);
    expect(m.get(0)).toBeUndefined();
    await answer(reads, 0);
    await bytesOf(first, 0);
    expect(m.get(0)).toBeDefined();
    reads.held = false;
    await bytesOf(io.read(vfs, fh, inode.ino, MiB, 2 * MiB), 2 * MiB);
    // Both earlier reads' pages are gone, the first one's included.
    expect(m.get(0)).toBeUndefined();
    expect(m.get(255)).toBeUndefined();
    expect(m.get(300)).toBeUndefined();
    expect(vfs.cache.stats.droppedBehindReads).toBeGreaterThanOrEqual(512);
  });

  it('a read of an older stream answered after a read out of order drops nothing', async () => {
    const reads: HeldReads = { held: false, waiting: [] };
    const { vfs, inode, fh } = await coldFile(reads);
    const m = inode.mapping!;
    await bytesOf(io.read(vfs, fh, inode.ino, MiB, 8 * MiB), 8 * MiB);
    reads.held = true;
    const late = io.read(vfs, fh, inode.ino, MiB, 9 * MiB);
    await new Promise((r) => setImmediate(r));
    // A random read of the file's start, cached as random reads are.
    const random = io.read(vfs, fh, inode.ino, BS, 0);
    await new Promise((r) => setImmediate(r));
    await answer(reads, 1);
    const rr = await random;
    expect(rr.bufs.length).toBe(1);
    rr.done?.();
    expect(m.get(0)).toBeDefined();
    // The stream's read finishes last: the random read started a new stream, so it drops nothing.
    await answer(reads, 0);
    await bytesOf(late, 9 * MiB);
    expect(m.get(0)).toBeDefined();
    expect(vfs.cache.stats.droppedBehindReads).toBe(0);
  });

  it('passes the dirty pages of a stream (they stay) and drops the clean ones beyond them', async () => {
    const { vfs, inode, fh } = await coldFile();
    const m = inode.mapping!;
    // One page written and not written back, in the middle of the first MiB.
    await io.write(vfs, me, fh, inode.ino, Buffer.alloc(BS, 0xab), 100 * BS, 'kernel');
    expect(m.get(100)!.dirty).not.toBe(0);
    for (const off of [0, MiB, 2 * MiB]) {
      const r = await io.read(vfs, fh, inode.ino, MiB, off);
      r.done?.();
    }
    expect(m.get(100)).toBeDefined();
    expect(m.get(99)).toBeUndefined();
    expect(m.get(101)).toBeUndefined();
    expect(m.get(300)).toBeUndefined();
  });
});
