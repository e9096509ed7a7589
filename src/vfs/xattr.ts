/**
 * Extended attributes, with ext4's namespaces and errnos. The kernel has already checked
 * the name length (ERANGE over 255), the value size (E2BIG over 64 KiB) and who may
 * touch trusted.* and user.* on which file types.
 *
 * Limits (docs/DESIGN.md, "Limits"): ext4 keeps an inode's xattrs in the inode and one
 * block and answers ENOSPC when they do not fit; pagefs keeps them as rows, so its limits
 * are chosen, not forced: any value the VFS passes (up to 64 KiB), names of one inode up
 * to listxattr's 64 KiB (more could never be listed: the VFS caps the list buffer at
 * XATTR_LIST_MAX and answers E2BIG past it), and 1 MiB of names and values per inode.
 */
import type { Vfs, Caller } from './vfs.js';
import { fsErr } from '../util/errors.js';
import { aclKind } from '../util/posixacl.js';
import { setAcl, removeAcl, type AclKind } from './acl.js';
import { checkXattrWrite } from './flags.js';

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;
const PREFIXES = ['user.', 'trusted.', 'security.'];
/** listxattr(2)'s buffer limit (XATTR_LIST_MAX): the names, each with its NUL. */
export const XATTR_LIST_MAX = 65536;
/** All names and values of one inode. */
export const XATTR_TOTAL_MAX = 1 << 20;

/**
 * POSIX ACLs (system.posix_acl_*) live in acl.ts. Without FUSE_POSIX_ACL (vfs.posixAcl
 * false) they are refused with EOPNOTSUPP: stored but unenforced by the kernel, they
 * would make cp -a set modes through an ACL that nothing applies.
 */
function acl(vfs: Vfs, name: Buffer): AclKind | null {
  const kind = aclKind(name);
  if (kind && !vfs.posixAcl) throw fsErr('EOPNOTSUPP', 'the kernel did not grant FUSE_POSIX_ACL');
  return kind;
}

/** A known namespace with a name in it; a bare prefix ("user.") is EINVAL, as ext4. */
function checkNamespace(name: Buffer): void {
  const s = name.toString('latin1');
  const prefix = PREFIXES.find((p) => s.startsWith(p));
  if (!prefix) throw fsErr('EOPNOTSUPP');
  if (s.length === prefix.length) throw fsErr('EINVAL');
}

export function setxattr(vfs: Vfs, caller: Caller, ino: number, name: Buffer, value: Buffer, flags: number): void {
  const inode = vfs.inode(ino);
  // Immutable and append-only refuse before anything else, as the kernel's xattr_permission does; ACLs included.
  checkXattrWrite(inode);
  const kind = acl(vfs, name);
  if (kind) return setAcl(vfs, caller, inode, kind, value);
  checkNamespace(name);
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) throw fsErr('EINVAL');
  const cur = vfs.store.xattrs.get(ino, name);
  if (flags & XATTR_CREATE && cur !== undefined) throw fsErr('EEXIST');
  if (flags & XATTR_REPLACE && cur === undefined) throw fsErr('ENODATA');
  const others = vfs.store.xattrs.usage(ino, name);
  if (others.names + others.count + name.length + 1 > XATTR_LIST_MAX) throw fsErr('ENOSPC');
  if (others.names + others.values + name.length + value.length > XATTR_TOTAL_MAX) throw fsErr('ENOSPC');
  vfs.change([inode], () => {
    vfs.store.xattrs.set(ino, name, Buffer.from(value));
    inode.stamp('c');
    vfs.persist(inode);
  });
}

/** The value, or with size 0 its length only (the caller replies with a size then). */
export function getxattr(vfs: Vfs, ino: number, name: Buffer): Buffer {
  vfs.inode(ino);
  if (!acl(vfs, name)) checkNamespace(name);
  const v = vfs.store.xattrs.get(ino, name);
  if (v === undefined) throw fsErr('ENODATA');
  return v;
}

/** The names, each NUL-terminated, as listxattr(2) returns them. */
export function listxattr(vfs: Vfs, ino: number): Buffer {
  vfs.inode(ino);
  const parts: Buffer[] = [];
  for (const n of vfs.store.xattrs.list(ino)) parts.push(n, Buffer.from([0]));
  return Buffer.concat(parts);
}

export function removexattr(vfs: Vfs, ino: number, name: Buffer): void {
  const inode = vfs.inode(ino);
  checkXattrWrite(inode);
  const kind = acl(vfs, name);
  if (kind) return removeAcl(vfs, inode, kind);
  checkNamespace(name);
  vfs.change([inode], () => {
    if (!vfs.store.xattrs.remove(ino, name)) throw fsErr('ENODATA');
    inode.stamp('c');
    vfs.persist(inode);
  });
}
