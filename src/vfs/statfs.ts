/** statfs: sizes from the configured capacity; reserved (delayed-allocation) blocks count as used. */
import type { Vfs } from './vfs.js';
import { NAME_MAX } from './vfs.js';

export interface StatfsOut {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

/** Inodes are rows, limited only by space; report a large fixed pool as btrfs and XFS do. */
const INODE_POOL = 2 ** 32;

export function statfs(vfs: Vfs): StatfsOut {
  const b = vfs.store.blocks;
  // Rows of unlinked files waiting for their batch are gone for everyone but the store.
  const files = vfs.store.inodes.count() - vfs.orphansWaiting;
  const free = Math.max(0, b.free);
  return {
    bsize: vfs.blockSize, frsize: vfs.blockSize, blocks: b.capacity, bfree: free, bavail: free,
    files: INODE_POOL, ffree: INODE_POOL - files, namemax: NAME_MAX,
  };
}
