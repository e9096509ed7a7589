/** Encoding inode records into the attribute layout the addon reads (binding.ts A). */
import { A, ATTR_LEN } from './binding.js';
import type { InodeRecord } from '../store/inodes.js';
import type { Vfs } from '../vfs/vfs.js';
import { S_IFMT, S_IFREG } from '../vfs/inode.js';

/** One scratch record per process: the addon copies it during the reply call. */
export const scratchAttr = new Float64Array(ATTR_LEN);

export function encodeAttr(vfs: Vfs, rec: InodeRecord, out: Float64Array = scratchAttr, at = 0): Float64Array {
  out[at + A.ino] = rec.ino;
  out[at + A.mode] = rec.mode;
  out[at + A.nlink] = rec.nlink;
  out[at + A.uid] = rec.uid;
  out[at + A.gid] = rec.gid;
  out[at + A.rdev] = rec.rdev;
  out[at + A.size] = rec.size;
  out[at + A.blocks] = allocated512(vfs, rec);
  out[at + A.blksize] = vfs.cache.pageSize;
  out[at + A.atimeSec] = rec.atimeS;
  out[at + A.atimeNsec] = rec.atimeNs;
  out[at + A.mtimeSec] = rec.mtimeS;
  out[at + A.mtimeNsec] = rec.mtimeNs;
  out[at + A.ctimeSec] = rec.ctimeS;
  out[at + A.ctimeNsec] = rec.ctimeNs;
  return out;
}

/** st_blocks in 512-byte units: mapped blocks, plus dirty blocks still waiting for theirs. */
function allocated512(vfs: Vfs, rec: InodeRecord): number {
  if ((rec.mode & S_IFMT) !== S_IFREG) return Math.ceil(rec.size / 512);
  let n = vfs.store.blocks.countMapped(rec.ino);
  const m = vfs.icache.get(rec.ino)?.mapping;
  if (m) for (const p of m.dirtyPages) for (let r = p.reserved; r; r &= r - 1) n++;
  return n * (vfs.blockSize / 512);
}
