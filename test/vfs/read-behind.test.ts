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
import type { Vfs } from '../../src/vfs/vfs.js';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';
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

/** One 1 MiB chunk whose bytes name their offset, so a misplaced block shows. */
function chunk(off: number): Buffer {
  const b = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i += 8) b.writeUInt32LE((off + i) >>> 3, i);
  return b;
}

/** A 40 MiB file written back, with no page cached, in a VFS with a 64 MiB cache (it would hold all of it). */
async function coldFile(): Promise<{ vfs: Vfs; inode: Inode; fh: number }> {
  store = newStore('readbehind', BS, 256 * MiB).store;
  const vfs = vfsOf(store, 64 * MiB);
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
  for (let off = 0; off < TOTAL; off += MiB) await io.write(vfs, me, fh, inode.ino, chunk(off), off, 'kernel');
  vfs.writeback(inode);
  for (const p of [...inode.mapping!.pages.values()]) vfs.cache.remove(p);
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
});
