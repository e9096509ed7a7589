/**
 * Eviction while the invalidate_lock is held (PageCache.shrink, evictable): a clean page
 * may leave the cache unless its mapping's lock is held exclusive or the page was used
 * since the grant of the lock's longest-standing shared holder. Below the mount: the VFS
 * over a real store, with a block source whose reads take as long as the test says.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { Vfs } from '../../src/vfs/vfs.js';
import { newStore, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { OpCtx } from '../../src/cache/lockcheck.js';
import type { Inode } from '../../src/vfs/inode.js';

const BS = 4096;
const MiB = 1 << 20;
let store: Store | null = null;
afterEach(() => {
  store?.close();
  store = null;
});

/** Block reads that read the store at once and answer when `gate` (if set) opens. */
interface Source {
  gate: Promise<void> | null;
  reads: number;
}

/** A VFS over a new store, its cache `cacheBytes`, its block reads held at the source's gate. */
function setup(cacheBytes: number, blockSize = BS): { vfs: Vfs; source: Source } {
  store = newStore('evict', blockSize, 128 * MiB).store;
  const blocks = store.blocks;
  const source: Source = { gate: null, reads: 0 };
  const vfs = new Vfs(store, {
    cacheBytes,
    readBlocks: async (pblocks) => {
      source.reads++;
      const bytes = pblocks.map((p) => blocks.readData(p));
      if (source.gate) await source.gate;
      else await new Promise((r) => setImmediate(r));
      return bytes;
    },
    readBlocksNow: { max: () => 0, read: () => [] },
  });
  return { vfs, source };
}

/** A file of `blocks` blocks, block b filled with the byte b % 251, written back, with no page cached. */
async function coldFile(vfs: Vfs, name: string, blocks: number): Promise<{ inode: Inode; fh: number }> {
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from(name), 0o644, 2);
  const bs = vfs.blockSize;
  const data = Buffer.alloc(blocks * bs);
  for (let b = 0; b < blocks; b++) data.fill(b % 251, b * bs, (b + 1) * bs);
  for (let off = 0; off < data.length; off += MiB) await io.write(vfs, me, fh, inode.ino, data.subarray(off, off + MiB), off, 'kernel');
  vfs.writeback(inode);
  dropCleanPages(vfs, inode);
  return { inode, fh };
}

/**
 * Reads all of a file of `blocks` blocks, 16 blocks a read: eviction pressure on the rest
 * of the cache. From the end backwards: a sequential stream would give its own pages back
 * behind it (read drop-behind), and evict little else.
 */
async function readThrough(vfs: Vfs, f: { inode: Inode; fh: number }, blocks: number): Promise<void> {
  const bs = vfs.blockSize;
  for (let b = Math.floor((blocks - 1) / 16) * 16; b >= 0; b -= 16) await readBytes(vfs, f.fh, f.inode.ino, 16 * bs, b * bs);
}

async function readBytes(vfs: Vfs, fh: number, ino: number, size: number, off: number): Promise<Buffer> {
  const r = await io.read(vfs, fh, ino, size, off);
  const b = Buffer.concat(r.bufs);
  r.done?.();
  return b;
}

describe('eviction while fills hold the invalidate_lock', () => {
  // Backwards, eviction alone keeps the cache at its cap (read drop-behind takes
  // sequential streams only); forwards, with the daemon's readahead making the fills
  // overlap, drop-behind and eviction share the work.
  for (const forwards of [false, true]) {
    it(`a stream of overlapping fills of one file, read ${forwards ? 'forwards' : 'backwards'}, is evicted behind it: the cache stays at its cap`, async () => {
      const { vfs } = setup(2 * MiB);
      const blocks = 8192; // 32 MiB, 16 times the cache
      const { inode, fh } = await coldFile(vfs, 'stream', blocks);
      const m = inode.mapping!;
      const chunk = 64 * 1024;
      const offsets = Array.from({ length: (blocks * BS) / chunk }, (_, i) => i * chunk);
      if (!forwards) offsets.reverse();
      let maxPages = 0;
      let lockFree = 0;
      const reader = async () => {
        for (let off = offsets.shift(); off !== undefined; off = offsets.shift()) {
          const r = await io.read(vfs, fh, inode.ino, chunk, off);
          const got = Buffer.concat(r.bufs);
          r.done?.();
          if (!m.invalidateLock.heldShared) lockFree++;
          maxPages = Math.max(maxPages, vfs.cache.count);
          for (let b = 0; b < chunk / BS; b++) {
            const fb = off / BS + b;
            expect(got.subarray(b * BS, (b + 1) * BS).equals(Buffer.alloc(BS, fb % 251)), `block ${fb}`).toBe(true);
          }
        }
      };
      // Four readers: whenever one is answered, the others' fills still hold the lock shared.
      await Promise.all([reader(), reader(), reader(), reader()]);
      const { evictions, droppedBehindReads } = vfs.cache.stats;
      if (forwards) expect(evictions + droppedBehindReads).toBeGreaterThan(blocks / 2);
      else {
        expect(evictions).toBeGreaterThan(blocks / 2);
        expect(droppedBehindReads).toBe(0);
      }
      // What four fills in flight hold, each up to the readahead window (64 pages) past its read, over the cap.
      expect(maxPages).toBeLessThanOrEqual(vfs.cache.capacityPages + 4 * (64 + chunk / BS));
      expect(lockFree).toBeLessThan(10);
    }, 60_000);
  }

  it('keeps a page written and written back while a fill of it was reading: the fill does not bring back the old bytes', async () => {
    const { vfs, source } = setup(256 * 1024); // 64 pages
    const { inode, fh } = await coldFile(vfs, 'target', 16);
    const other = await coldFile(vfs, 'other', 256);
    let open!: () => void;
    source.gate = new Promise((r) => { open = r; });
    // The fill of the target's 16 pages has looked up the map and read the old bytes; its answer waits at the gate.
    const pending = io.read(vfs, fh, inode.ino, 16 * BS, 0);
    await new Promise((r) => setImmediate(r));
    expect(source.reads).toBe(1);
    expect(inode.mapping!.invalidateLock.heldShared).toBe(true);
    const fresh = Buffer.alloc(BS, 0xee);
    await io.write(vfs, me, fh, inode.ino, fresh, 3 * BS, 'kernel');
    vfs.writeback(inode); // page 3 clean again, its block rewritten in place
    expect(inode.mapping!.get(3)!.dirty).toBe(0);
    // Fill the cache with the other file, several times over: page 3 is the coldest.
    source.gate = null;
    await readThrough(vfs, other, 256);
    expect(vfs.cache.stats.evictions).toBeGreaterThan(100);
    expect(inode.mapping!.get(3)?.data.equals(fresh)).toBe(true);
    open();
    const r = await pending;
    const got = Buffer.concat(r.bufs);
    r.done?.();
    expect(got.subarray(3 * BS, 4 * BS).equals(fresh)).toBe(true);
    expect(got.subarray(4 * BS, 5 * BS).equals(Buffer.alloc(BS, 4))).toBe(true);
    expect((await readBytes(vfs, fh, inode.ino, BS, 3 * BS)).equals(fresh)).toBe(true);
  });

  it('fills again a page of 1 KiB blocks that was partly uptodate and evicted while a fill read its other blocks', async () => {
    const bs = 1024;
    const { vfs, source } = setup(256 * 1024, bs); // 64 pages of four blocks
    const { inode, fh } = await coldFile(vfs, 'target', 64);
    const other = await coldFile(vfs, 'other', 1024);
    // Page 5 (blocks 20-23): blocks 20-22 rewritten whole and written back, so uptodate and clean; block 23 not cached.
    const fresh = Buffer.alloc(3 * bs, 0xee);
    await io.write(vfs, me, fh, inode.ino, fresh, 20 * bs, 'kernel');
    vfs.writeback(inode);
    expect(inode.mapping!.get(5)!.uptodate).toBe(0b0111);
    let open!: () => void;
    source.gate = new Promise((r) => { open = r; });
    const pending = io.read(vfs, fh, inode.ino, 4 * bs, 20 * bs);
    await new Promise((r) => setImmediate(r));
    expect(source.reads).toBe(1);
    // The page was used before the fill's grant: eviction may take it meanwhile.
    source.gate = null;
    await readThrough(vfs, other, 1024);
    expect(inode.mapping!.get(5)).toBeUndefined();
    open();
    const r = await pending;
    const got = Buffer.concat(r.bufs);
    r.done?.();
    expect(got.subarray(0, 3 * bs).equals(fresh)).toBe(true);
    expect(got.subarray(3 * bs).equals(Buffer.alloc(bs, 23))).toBe(true);
  });

  it('keeps what was used since the longest-standing of two shared holders was granted, until it lets go', async () => {
    const { vfs } = setup(256 * 1024);
    const { inode, fh } = await coldFile(vfs, 'held', 64);
    const other = await coldFile(vfs, 'other', 256);
    const m = inode.mapping!;
    const first = new OpCtx('test holder 1');
    const second = new OpCtx('test holder 2');
    await m.invalidateLock.acquire(first, 'shared');
    // Used after the first grant and before the second.
    await readBytes(vfs, fh, inode.ino, 64 * BS, 0);
    await m.invalidateLock.acquire(second, 'shared');
    await readThrough(vfs, other, 256);
    expect(m.pages.size).toBe(64);
    // Only the second holder is left, granted after the pages were used.
    m.invalidateLock.release(first, 'shared');
    await readThrough(vfs, other, 256);
    expect(m.pages.size).toBe(0);
    m.invalidateLock.release(second, 'shared');
  });

  it('evicts pages cached before a shared holder\'s grant, and none of a mapping held exclusive', async () => {
    const { vfs } = setup(256 * 1024);
    const { inode, fh } = await coldFile(vfs, 'held', 64);
    const other = await coldFile(vfs, 'other', 256);
    const m = inode.mapping!;
    await readBytes(vfs, fh, inode.ino, 64 * BS, 0);
    expect(m.pages.size).toBe(64);
    const ctx = new OpCtx('test holder');
    await m.invalidateLock.acquire(ctx, 'exclusive');
    await readThrough(vfs, other, 256);
    expect(m.pages.size).toBe(64);
    m.invalidateLock.release(ctx, 'exclusive');
    await m.invalidateLock.acquire(ctx, 'shared');
    await readThrough(vfs, other, 256);
    expect(m.pages.size).toBe(0);
    m.invalidateLock.release(ctx, 'shared');
  });
});
