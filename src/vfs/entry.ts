/** lookup and forget: the kernel's references to inodes (nlookup). */
import type { Vfs } from './vfs.js';
import type { Inode } from './inode.js';
import { ROOT_INO } from '../store/schema.js';
import { fsErr } from '../util/errors.js';
import { checkName, dirInode } from './names.js';

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** The child named `name` of directory `parent`, with one more kernel lookup on it; null when absent. */
export function lookup(vfs: Vfs, parent: number, name: Buffer): Inode | null {
  // open_by_handle_at of a file the kernel no longer caches looks up "." under the file's
  // own node id: answer with the inode, whatever its type (FUSE export support).
  if (name.equals(DOT)) {
    const self = vfs.inode(parent);
    self.nlookup++;
    return self;
  }
  const dir = dirInode(vfs, parent);
  let ino: number | undefined;
  if (name.equals(DOTDOT)) ino = dir.ino === ROOT_INO ? ROOT_INO : vfs.store.dentries.parentOf(dir.ino);
  else {
    checkName(name);
    ino = vfs.store.dentries.lookup(parent, name);
  }
  if (ino === undefined) return null;
  const inode = vfs.inode(ino);
  inode.nlookup++;
  return inode;
}

export function forget(vfs: Vfs, ino: number, n: number): void {
  const inode = vfs.icache.get(ino);
  if (!inode) return;
  inode.nlookup = Math.max(0, inode.nlookup - n);
  vfs.release(inode);
}

export function getattr(vfs: Vfs, ino: number): Inode {
  const inode = vfs.inode(ino);
  if (inode.rec.nlink === 0 && inode.nlookup === 0 && inode.opens === 0) throw fsErr('ENOENT');
  return inode;
}
