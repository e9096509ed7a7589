/**
 * Stores and VFSes for tests below the mount: a new store file in its own temporary
 * directory, removed after the test that made it (the importing file's afterEach).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { createStoreFile } from '../../src/store/open.js';
import { Store } from '../../src/store/store.js';
import { Vfs, type Caller } from '../../src/vfs/vfs.js';
import type { Inode } from '../../src/vfs/inode.js';

/** The caller of the VFS calls in these tests: root, umask 022. */
export const ROOT_CALLER: Caller = { uid: 0, gid: 0, pid: process.pid, umask: 0o022 };

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A new store file (mkfs'd, not opened); `prefix` names its directory. */
export function newStoreFile(prefix: string, blockSize = 4096, capacityBytes = 64 << 20): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pagefs-${prefix}-`));
  dirs.push(dir);
  const file = path.join(dir, 'store.db');
  createStoreFile(file, blockSize, capacityBytes);
  return file;
}

/** Opens a store file for writing, as the daemon does. */
export function openStore(file: string): Store {
  return Store.open(file, { readonly: false, cmd: 'test' });
}

/** A new store, opened. */
export function newStore(prefix: string, blockSize = 4096, capacityBytes = 64 << 20): { file: string; store: Store } {
  const file = newStoreFile(prefix, blockSize, capacityBytes);
  return { file, store: openStore(file) };
}

/** A VFS over a store, with a page cache of `cacheBytes`. */
export function vfsOf(store: Store, cacheBytes = 16 << 20): Vfs {
  return new Vfs(store, { cacheBytes });
}

/** One 1 MiB chunk whose bytes name their offset in the file (`off`), so a misplaced block shows. */
export function offsetChunk(off: number): Buffer {
  const b = Buffer.alloc(1 << 20);
  for (let i = 0; i < b.length; i += 8) b.writeUInt32LE((off + i) >>> 3, i);
  return b;
}

/** Drops a file's clean pages from the cache, so that its next reads come from the store (dirty pages stay). */
export function dropCleanPages(vfs: Vfs, inode: Inode): void {
  for (const p of [...inode.mapping!.pages.values()]) if (!p.dirty) vfs.cache.remove(p);
}
