/**
 * A small cold read is filled and answered in the same turn of the event loop when the
 * mapping's invalidate_lock is free (fillNow): no promise, and still under the lock until
 * its reply is sent. Everything else (a larger fill, a lock someone holds or waits for,
 * pages another fill is reading, the debugging aids) takes the asynchronous path.
 * Below the mount: the VFS with a real store.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Store } from '../../src/store/store.js';
import type { Vfs } from '../../src/vfs/vfs.js';
import { newStore, vfsOf, ROOT_CALLER as me, dropCleanPages } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import { ROOT_INO } from '../../src/store/schema.js';
import { OpCtx } from '../../src/cache/lockcheck.js';
import { fillDebug } from '../../src/cache/fill.js';
import type { Inode } from '../../src/vfs/inode.js';

const BS = 4096;
let store: Store | null = null;
afterEach(() => {
  store?.close();
  store = null;
  fillDebug.afterLookupMs = 0;
});

/** A 1 MiB file whose block b is filled with the byte b, written back, with no page cached. */
async function coldFile(): Promise<{ vfs: Vfs; inode: Inode; fh: number }> {
  store = newStore('readnow', BS).store;
  const vfs = vfsOf(store);
  const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
  const data = Buffer.alloc(256 * BS);
  for (let b = 0; b < 256; b++) data.fill(b, b * BS, (b + 1) * BS);
  await io.write(vfs, me, fh, inode.ino, data, 0, 'kernel');
  vfs.writeback(inode);
  dropCleanPages(vfs, inode);
  return { vfs, inode, fh };
}

function bytesOf(r: io.ReadResult): Buffer {
  const b = Buffer.concat(r.bufs);
  r.done?.();
  return b;
}

describe('reads filled in the same turn', () => {
  it('a cold 4 KiB read is answered without a promise, holding the invalidate_lock until its reply is sent', async () => {
    const { vfs, inode, fh } = await coldFile();
    const r = io.read(vfs, fh, inode.ino, BS, 7 * BS);
    expect(r).not.toBeInstanceOf(Promise);
    const rr = r as io.ReadResult;
    expect(inode.mapping!.invalidateLock.heldShared).toBe(true);
    expect(bytesOf(rr).equals(Buffer.alloc(BS, 7))).toBe(true);
    expect(inode.mapping!.invalidateLock.heldShared).toBe(false);
  });

  it('a fill larger than the source reads at once goes the asynchronous way, with the same bytes', async () => {
    const { vfs, inode, fh } = await coldFile();
    const r = io.read(vfs, fh, inode.ino, 16 * BS, 32 * BS);
    expect(r).toBeInstanceOf(Promise);
    const got = bytesOf(await r);
    for (let b = 0; b < 16; b++) expect(got.subarray(b * BS, (b + 1) * BS).equals(Buffer.alloc(BS, 32 + b)), `block ${32 + b}`).toBe(true);
  });

  it('a small read waits for a punch holding the invalidate_lock, and sees the hole it made', async () => {
    const { vfs, inode, fh } = await coldFile();
    const m = inode.mapping!;
    const punch = new OpCtx('test punch');
    await m.invalidateLock.acquire(punch, 'exclusive');
    const r = io.read(vfs, fh, inode.ino, BS, 9 * BS);
    expect(r).toBeInstanceOf(Promise);
    let answered = false;
    void (r as Promise<io.ReadResult>).then(() => { answered = true; });
    await new Promise((res) => setTimeout(res, 20));
    expect(answered).toBe(false);
    // What the punch does under the lock: unmap the block (the page is not cached).
    store!.txn(() => store!.blocks.unmapRange(inode.ino, 9, 9));
    m.invalidateLock.release(punch, 'exclusive');
    expect(bytesOf(await r).equals(Buffer.alloc(BS))).toBe(true);
  });

  it('a debugging delay keeps the asynchronous path, so its window stays open', async () => {
    const { vfs, inode, fh } = await coldFile();
    fillDebug.afterLookupMs = 1;
    const r = io.read(vfs, fh, inode.ino, BS, 3 * BS);
    expect(r).toBeInstanceOf(Promise);
    expect(bytesOf(await r).equals(Buffer.alloc(BS, 3))).toBe(true);
  });
});
