/**
 * POSIX ACLs on pagefs inodes: the parts FUSE leaves to the filesystem.
 *
 * With FUSE_POSIX_ACL the kernel checks permissions against the ACLs itself (it reads
 * them through getxattr and caches them), validates every ACL a program sets and checks
 * that the caller owns the file. What it does not do, unlike ext4's own ->set_acl and
 * ->setattr (fs/fuse/acl.c: "Fuse userspace is responsible for updating access
 * permissions in the inode"), is done here, as ext4 does it:
 * - setting an access ACL sets the mode it stands for, and one the mode alone expresses
 *   is not stored at all (posix_acl_update_mode);
 * - chmod rewrites the owner, other and mask entries of the access ACL (posix_acl_chmod);
 * - a new inode under a directory with a default ACL gets it, masked by the create mode,
 *   and no umask; otherwise the umask applies (posix_acl_create). FUSE_DONT_MASK makes
 *   the kernel send the mode unmasked, with the caller's umask beside it.
 * The values are stored as xattr rows, in the kernel's xattr format (src/util/posixacl.ts).
 */
import type { Vfs, Caller } from './vfs.js';
import type { Inode } from './inode.js';
import { S_IFMT, S_IFDIR, S_IFLNK, S_ISGID } from './inode.js';
import { ACL_ACCESS, ACL_DEFAULT, decodeAcl, encodeAcl, aclMode, createMasq, chmodMasq } from '../util/posixacl.js';
import { fsErr } from '../util/errors.js';
import { callerInGroup } from './killpriv.js';

export type AclKind = 'access' | 'default';

const NAME: Record<AclKind, Buffer> = { access: Buffer.from(ACL_ACCESS), default: Buffer.from(ACL_DEFAULT) };

/** setxattr of an ACL name. The kernel has already checked ownership and validity; we check again, as the store must never hold a bad ACL. */
export function setAcl(vfs: Vfs, caller: Caller, inode: Inode, kind: AclKind, value: Buffer): void {
  if (inode.isLnk) throw fsErr('EOPNOTSUPP', 'symlinks carry no ACLs');
  const entries = decodeAcl(value);
  if (entries.length === 0) return removeAcl(vfs, inode, kind);
  if (kind === 'default' && !inode.isDir) throw fsErr('EACCES', 'a default ACL only on a directory');
  const r = inode.rec;
  vfs.change([inode], () => {
    if (kind === 'access') {
      const { mode, equivalent } = aclMode(entries, r.mode);
      // posix_acl_update_mode's rule; libfuse 3.14 drops the kernel's FUSE_SETXATTR_ACL_KILL_SGID. uid 0 stands in for CAP_FSETID.
      r.mode = caller.uid === 0 || callerInGroup(caller, r.gid) ? mode : mode & ~S_ISGID;
      if (equivalent) vfs.store.xattrs.remove(inode.ino, NAME.access);
      else vfs.store.xattrs.set(inode.ino, NAME.access, encodeAcl(entries));
    } else {
      vfs.store.xattrs.set(inode.ino, NAME.default, encodeAcl(entries));
    }
    inode.stamp('c');
    vfs.persist(inode);
  });
}

/** removexattr of an ACL name: as on ext4, removing an ACL that is not there succeeds, and the mode stays. */
export function removeAcl(vfs: Vfs, inode: Inode, kind: AclKind): void {
  if (inode.isLnk) throw fsErr('EOPNOTSUPP', 'symlinks carry no ACLs');
  vfs.change([inode], () => {
    if (!vfs.store.xattrs.remove(inode.ino, NAME[kind])) return;
    inode.stamp('c');
    vfs.persist(inode);
  });
}

/** What a new inode gets from its parent: its mode, and the ACL rows to store with it. */
export interface Inherited {
  mode: number;
  access: Buffer | null;
  default: Buffer | null;
}

/** posix_acl_create: `mode` is the create mode as the caller passed it (FUSE_DONT_MASK), `umask` the caller's. */
export function inheritAcl(vfs: Vfs, parent: Inode, mode: number, umask: number): Inherited {
  const none = { access: null, default: null };
  if ((mode & S_IFMT) === S_IFLNK) return { mode, ...none };
  const dflt = vfs.store.xattrs.get(parent.ino, NAME.default);
  const entries = dflt ? decodeAcl(dflt) : [];
  if (entries.length === 0) return { mode: mode & ~(umask & 0o777), ...none };
  const { acl, mode: masked } = createMasq(entries, mode);
  return { mode: masked, access: acl && encodeAcl(acl), default: (mode & S_IFMT) === S_IFDIR ? dflt! : null };
}

/** Stores an inherited ACL with its new inode; inside the creating transaction. */
export function storeInherited(vfs: Vfs, inode: Inode, inh: Inherited): void {
  if (inh.access) vfs.store.xattrs.set(inode.ino, NAME.access, inh.access);
  if (inh.default) vfs.store.xattrs.set(inode.ino, NAME.default, inh.default);
}

/** After a chmod, inside its transaction: the access ACL follows the new mode. */
export function chmodAcl(vfs: Vfs, inode: Inode): void {
  const cur = vfs.store.xattrs.get(inode.ino, NAME.access);
  if (!cur) return;
  vfs.store.xattrs.set(inode.ino, NAME.access, encodeAcl(chmodMasq(decodeAcl(cur), inode.rec.mode)));
}
