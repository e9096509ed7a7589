/**
 * Directory listings. Cookies: 1 after ".", 2 after "..", and 2 + the dentry row id
 * after an entry. Row ids only grow, and a name keeps its row while it exists (a rename
 * over it or an exchange retargets the row), so a listing resumed at any cookie neither
 * repeats nor skips an entry that stayed in place while others came and went.
 */
import type { Vfs } from './vfs.js';
import type { InodeRecord } from '../store/inodes.js';
import { ROOT_INO } from '../store/schema.js';
import { dirInode } from './names.js';
import { fsErr } from '../util/errors.js';

export interface DirEntry {
  name: Buffer;
  ino: number;
  next: number;
  rec: InodeRecord;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

export function opendir(vfs: Vfs, ino: number, flags: number): number {
  const dir = dirInode(vfs, ino);
  return vfs.newHandle(dir, flags).fh;
}

/** Up to `max` entries after cookie `off`. Records come from memory when the inode is there, else from the store. */
export function readdir(vfs: Vfs, ino: number, off: number, max: number): DirEntry[] {
  const dir = dirInode(vfs, ino);
  const out: DirEntry[] = [];
  if (off < 1) out.push({ name: DOT, ino: dir.ino, next: 1, rec: dir.rec });
  if (off < 2) {
    const pino = dir.ino === ROOT_INO ? ROOT_INO : vfs.store.dentries.parentOf(dir.ino) ?? dir.ino;
    out.push({ name: DOTDOT, ino: pino, next: 2, rec: record(vfs, pino) ?? dir.rec });
  }
  if (max > out.length) {
    for (const row of vfs.store.dentries.list(ino, Math.max(0, off - 2), max - out.length)) {
      const rec = record(vfs, row.ino);
      if (!rec) throw fsErr('EIO', `dentry ${row.id} names missing inode ${row.ino}`);
      out.push({ name: row.name, ino: row.ino, next: row.id + 2, rec });
    }
  }
  return out;
}

function record(vfs: Vfs, ino: number): InodeRecord | undefined {
  return vfs.icache.get(ino)?.rec ?? vfs.store.inodes.get(ino);
}

/** The kernel took a reference on each readdirplus entry it was sent (except "." and ".."). */
export function lookedUp(vfs: Vfs, entries: DirEntry[]): void {
  for (const e of entries) {
    if (e.name.equals(DOT) || e.name.equals(DOTDOT)) continue;
    const inode = vfs.icache.get(e.ino) ?? vfs.adopt(e.rec);
    inode.nlookup++;
  }
}

export function releasedir(vfs: Vfs, fh: number, ino: number): void {
  vfs.closeHandle(vfs.handle(fh, ino));
}
