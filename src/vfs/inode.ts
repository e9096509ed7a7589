/**
 * The in-memory inode: the store's row plus what only a running daemon knows (how often
 * the kernel looked it up, how many handles are open, its page-cache mapping).
 *
 * `rec.size` is i_size, the size every request sees; the store's copy is brought up to
 * date by metadata transactions and by writeback, together with the blocks it covers.
 */
import type { InodeRecord } from '../store/inodes.js';
import type { Mapping } from '../cache/pagecache.js';
import { nowParts } from '../store/open.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;

export class Inode {
  /** Lookups the kernel holds (entry replies minus forgets). */
  nlookup = 0;
  /** Open file and directory handles. */
  opens = 0;
  /** Times or size changed in memory and not yet in the store (written at writeback). */
  metaDirty = false;
  /** Where the last write to the file ended, and where the run of writes each starting where the one before ended began (write-behind's stream). */
  writeEnd = -1;
  runStart = 0;
  constructor(public rec: InodeRecord, readonly mapping: Mapping | null) {}

  get ino(): number {
    return this.rec.ino;
  }
  get isDir(): boolean {
    return (this.rec.mode & S_IFMT) === S_IFDIR;
  }
  get isReg(): boolean {
    return (this.rec.mode & S_IFMT) === S_IFREG;
  }
  get isLnk(): boolean {
    return (this.rec.mode & S_IFMT) === S_IFLNK;
  }

  /** Marks times as changed now: 'm' mtime, 'c' ctime, 'a' atime. */
  stamp(which: string): void {
    const [s, ns] = nowParts();
    const r = this.rec;
    if (which.includes('m')) { r.mtimeS = s; r.mtimeNs = ns; }
    if (which.includes('c')) { r.ctimeS = s; r.ctimeNs = ns; }
    if (which.includes('a')) { r.atimeS = s; r.atimeNs = ns; }
    this.metaDirty = true;
  }
}
