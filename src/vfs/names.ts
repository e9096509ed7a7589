/** Name and directory checks shared by the namespace ops, with the errnos ext4 gives. */
import type { Vfs } from './vfs.js';
import type { Inode } from './inode.js';
import { NAME_MAX } from './vfs.js';
import { fsErr } from '../util/errors.js';

export function checkName(name: Buffer): void {
  if (name.length === 0) throw fsErr('ENOENT');
  if (name.length > NAME_MAX) throw fsErr('ENAMETOOLONG');
  if (name.includes(0x2f) || name.includes(0)) throw fsErr('EINVAL');
}

export function dirInode(vfs: Vfs, ino: number): Inode {
  const dir = vfs.inode(ino);
  if (!dir.isDir) throw fsErr('ENOTDIR');
  return dir;
}

/** True when `ino` is `ancestor` or lies below it (a directory may not move into itself). */
export function isWithin(vfs: Vfs, ino: number, ancestor: number): boolean {
  let cur: number | undefined = ino;
  for (let depth = 0; cur !== undefined && depth < 100000; depth++) {
    if (cur === ancestor) return true;
    if (cur === 1) return false;
    cur = vfs.store.dentries.parentOf(cur);
  }
  return false;
}
