/**
 * Namespace operations: mknod, mkdir, symlink, link, unlink, rmdir, rename, readlink.
 * Each change is one store transaction; an entry's inode gains a kernel lookup when the
 * reply hands it to the kernel (the caller of these functions replies with an entry).
 */
import type { Vfs, Caller } from './vfs.js';
import { LINK_MAX, PATH_MAX } from './vfs.js';
import { Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './inode.js';
import { checkName, dirInode, isWithin } from './names.js';
import { fsErr } from '../util/errors.js';
import { inheritAcl, storeInherited } from './acl.js';
import { checkCreate, checkDelete, checkLink } from './flags.js';

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const NODE_TYPES = new Set([S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK]);

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

function prepareNew(vfs: Vfs, parentIno: number, name: Buffer): Inode {
  const parent = dirInode(vfs, parentIno);
  checkName(name);
  if (parent.rec.nlink === 0) throw fsErr('ENOENT', 'directory was removed');
  if (vfs.store.dentries.lookup(parentIno, name) !== undefined) throw fsErr('EEXIST');
  checkCreate(parent);
  return parent;
}

function addEntry(vfs: Vfs, parent: Inode, name: Buffer, inode: Inode): void {
  vfs.store.dentries.insert(parent.ino, name, inode.ino);
  parent.stamp('mc');
  vfs.persist(parent);
}

/** Creates a non-directory, non-symlink inode named `name`; used by mknod and create. */
export function makeNode(vfs: Vfs, caller: Caller, parentIno: number, name: Buffer, mode: number, rdev: number): Inode {
  const parent = prepareNew(vfs, parentIno, name);
  if (!NODE_TYPES.has(mode & S_IFMT)) throw fsErr('EINVAL');
  const inh = inheritAcl(vfs, parent, mode, caller.umask);
  return vfs.change([parent], () => {
    const inode = vfs.createInode(caller, parent, inh.mode, rdev, null);
    storeInherited(vfs, inode, inh);
    addEntry(vfs, parent, name, inode);
    inode.nlookup++;
    return inode;
  });
}

export function mkdir(vfs: Vfs, caller: Caller, parentIno: number, name: Buffer, mode: number): Inode {
  const parent = prepareNew(vfs, parentIno, name);
  if (parent.rec.nlink >= LINK_MAX) throw fsErr('EMLINK');
  const inh = inheritAcl(vfs, parent, S_IFDIR | (mode & 0o7777), caller.umask);
  return vfs.change([parent], () => {
    const inode = vfs.createInode(caller, parent, inh.mode, 0, null);
    storeInherited(vfs, inode, inh);
    parent.rec.nlink++;
    addEntry(vfs, parent, name, inode);
    inode.nlookup++;
    return inode;
  });
}

export function symlink(vfs: Vfs, caller: Caller, target: Buffer, parentIno: number, name: Buffer): Inode {
  const parent = prepareNew(vfs, parentIno, name);
  if (target.length === 0) throw fsErr('ENOENT');
  if (target.length >= PATH_MAX) throw fsErr('ENAMETOOLONG');
  return vfs.change([parent], () => {
    const inode = vfs.createInode(caller, parent, S_IFLNK | 0o777, 0, Buffer.from(target));
    addEntry(vfs, parent, name, inode);
    inode.nlookup++;
    return inode;
  });
}

export function link(vfs: Vfs, ino: number, newParent: number, newName: Buffer): Inode {
  const inode = vfs.inode(ino);
  if (inode.isDir) throw fsErr('EPERM');
  const parent = prepareNew(vfs, newParent, newName);
  checkLink(inode, parent);
  if (inode.rec.nlink === 0) throw fsErr('ENOENT');
  if (inode.rec.nlink >= LINK_MAX) throw fsErr('EMLINK');
  return vfs.change([inode, parent], () => {
    inode.rec.nlink++;
    inode.stamp('c');
    vfs.persist(inode);
    addEntry(vfs, parent, newName, inode);
    inode.nlookup++;
    return inode;
  });
}

function existing(vfs: Vfs, parentIno: number, name: Buffer): { parent: Inode; inode: Inode } {
  const parent = dirInode(vfs, parentIno);
  checkName(name);
  const ino = vfs.store.dentries.lookup(parentIno, name);
  if (ino === undefined) throw fsErr('ENOENT');
  return { parent, inode: vfs.inode(ino) };
}

/** Drops one name of `inode` inside a transaction (the dentry row is removed by the caller). */
function dropLink(vfs: Vfs, parent: Inode, inode: Inode): void {
  if (inode.isDir) {
    inode.rec.nlink = 0;
    parent.rec.nlink--;
  } else {
    inode.rec.nlink--;
  }
  inode.stamp('c');
  vfs.persist(inode);
}

export function unlink(vfs: Vfs, parentIno: number, name: Buffer): void {
  const { parent, inode } = existing(vfs, parentIno, name);
  if (inode.isDir) throw fsErr('EISDIR');
  checkDelete(parent, inode);
  removeEntry(vfs, parent, name, inode);
}

/** Removes the entry `name` of `parent` naming `inode`, in one transaction, then frees the inode if nobody holds it. */
function removeEntry(vfs: Vfs, parent: Inode, name: Buffer, inode: Inode): void {
  vfs.change([parent, inode], () => {
    vfs.store.dentries.remove(parent.ino, name);
    dropLink(vfs, parent, inode);
    parent.stamp('mc');
    vfs.persist(parent);
  });
  vfs.release(inode);
}

export function rmdir(vfs: Vfs, parentIno: number, name: Buffer): void {
  if (name.equals(Buffer.from('.'))) throw fsErr('EINVAL');
  if (name.equals(Buffer.from('..'))) throw fsErr('ENOTEMPTY');
  const { parent, inode } = existing(vfs, parentIno, name);
  if (!inode.isDir) throw fsErr('ENOTDIR');
  checkDelete(parent, inode);
  if (!vfs.store.dentries.isEmpty(inode.ino)) throw fsErr('ENOTEMPTY');
  removeEntry(vfs, parent, name, inode);
}

export function rename(vfs: Vfs, parentIno: number, name: Buffer, newParentIno: number, newName: Buffer, flags: number): void {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) throw fsErr('EINVAL', 'RENAME_WHITEOUT is not supported');
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) throw fsErr('EINVAL');
  const { parent, inode: src } = existing(vfs, parentIno, name);
  const newParent = dirInode(vfs, newParentIno);
  checkName(newName);
  const dstIno = vfs.store.dentries.lookup(newParentIno, newName);
  const dst = dstIno === undefined ? null : vfs.inode(dstIno);
  if (src.isDir && newParentIno !== parentIno && isWithin(vfs, newParentIno, src.ino)) throw fsErr('EINVAL');
  // The kernel's lookup answers these before vfs_rename's permission checks.
  if (dst && flags & RENAME_NOREPLACE) throw fsErr('EEXIST');
  if (!dst && flags & RENAME_EXCHANGE) throw fsErr('ENOENT');
  if (dst !== src) {
    // vfs_rename: may_delete on the source, then may_delete or may_create on the target.
    checkDelete(parent, src);
    if (dst) checkDelete(newParent, dst);
    else checkCreate(newParent);
  }
  if (flags & RENAME_EXCHANGE && dst) {
    if (dst.isDir && newParentIno !== parentIno && isWithin(vfs, parentIno, dst.ino)) throw fsErr('EINVAL');
    return exchange(vfs, parent, name, src, newParent, newName, dst);
  }
  if (dst) {
    if (dst === src) return;
    if (src.isDir && !dst.isDir) throw fsErr('ENOTDIR');
    if (!src.isDir && dst.isDir) throw fsErr('EISDIR');
    if (dst.isDir && !vfs.store.dentries.isEmpty(dst.ino)) throw fsErr('ENOTEMPTY');
  } else if (src.isDir && newParentIno !== parentIno && newParent.rec.nlink >= LINK_MAX) {
    throw fsErr('EMLINK');
  }
  vfs.change([src, parent, newParent, dst], () => {
    vfs.store.dentries.remove(parentIno, name);
    if (dst) {
      vfs.store.dentries.retarget(newParentIno, newName, src.ino);
      dropLink(vfs, newParent, dst);
    } else {
      vfs.store.dentries.insert(newParentIno, newName, src.ino);
    }
    if (src.isDir && parent !== newParent) {
      parent.rec.nlink--;
      newParent.rec.nlink++;
    }
    src.stamp('c');
    vfs.persist(src);
    parent.stamp('mc');
    vfs.persist(parent);
    if (newParent !== parent) {
      newParent.stamp('mc');
      vfs.persist(newParent);
    }
  });
  if (dst) vfs.release(dst);
}

function exchange(vfs: Vfs, parent: Inode, name: Buffer, src: Inode, newParent: Inode, newName: Buffer, dst: Inode): void {
  vfs.change([src, dst, parent, newParent], () => {
    vfs.store.dentries.retarget(parent.ino, name, dst.ino);
    vfs.store.dentries.retarget(newParent.ino, newName, src.ino);
    if (parent !== newParent && src.isDir !== dst.isDir) {
      const moved = src.isDir ? 1 : -1;
      parent.rec.nlink -= moved;
      newParent.rec.nlink += moved;
    }
    for (const i of new Set([src, dst, parent, newParent])) {
      i.stamp(i === src || i === dst ? 'c' : 'mc');
      vfs.persist(i);
    }
  });
}

export function readlink(vfs: Vfs, ino: number): Buffer {
  const inode = vfs.inode(ino);
  if (!inode.isLnk || !inode.rec.target) throw fsErr('EINVAL');
  return inode.rec.target;
}
