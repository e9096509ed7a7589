/**
 * What the block table remembers of a file's own blocks (BlockTable.ownedKnown, for a
 * write's reservations) lives only as long as the inode does in memory: kept for every
 * file ever written back, it would grow without bound. Below the mount, with a real store.
 */
import { describe, it, expect, afterEach } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { newStore, vfsOf, ROOT_CALLER as me } from '../helpers/store.js';
import * as io from '../../src/vfs/io.js';
import * as entry from '../../src/vfs/entry.js';
import { ROOT_INO } from '../../src/store/schema.js';

const BS = 4096;
let store: Store | null = null;
afterEach(() => {
  store?.close();
  store = null;
});

describe('owned-block memory', () => {
  it('is set by writeback, and dropped when the inode leaves memory (closed and forgotten)', async () => {
    store = newStore('owned', BS).store;
    const vfs = vfsOf(store);
    const { inode, fh } = io.create(vfs, me, ROOT_INO, Buffer.from('f'), 0o644, 2);
    await io.write(vfs, me, fh, inode.ino, Buffer.alloc(4 * BS, 0x61), 0, 'kernel');
    io.release(vfs, fh, inode.ino);
    for (let fb = 0; fb < 4; fb++) expect(store.blocks.knownOwned(inode.ino, fb), `block ${fb} after writeback`).toBe(true);
    entry.forget(vfs, inode.ino, inode.nlookup);
    expect(vfs.icache.has(inode.ino)).toBe(false);
    for (let fb = 0; fb < 4; fb++) expect(store.blocks.knownOwned(inode.ino, fb), `block ${fb} after forget`).toBe(false);
    // Asked again, the store still says they are the file's own.
    expect(store.blocks.ownedBlocks(inode.ino, 0, 3)).toEqual([0, 1, 2, 3]);
  });
});
