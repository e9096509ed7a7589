/**
 * Inode flags (chattr/lsattr: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS) and their enforcement.
 *
 * The kernel's FUSE client turns these ioctls into FUSE_IOCTL itself (fs/fuse/ioctl.c
 * fuse_fileattr_get/set): it opens the file or directory read-only on its own (FUSE_OPEN
 * or FUSE_OPENDIR), sends the ioctl with an int-sized argument, and releases. Before
 * that the VFS has checked ownership and, for a change of append-only or immutable,
 * CAP_LINUX_IMMUTABLE (fileattr_set_prepare); we check uid 0 again for those two.
 *
 * Enforcement is ours alone: the VFS tests IS_IMMUTABLE / IS_APPEND on inode->i_flags,
 * which FUSE never sets from the daemon's answers, so every path that ext4 refuses with
 * EPERM asks the functions below (open, setattr, the namespace ops, xattrs, fallocate,
 * copy_file_range, collapse/insert). The rules and their order follow fs/namei.c
 * (may_open, may_delete, may_create, vfs_link), fs/attr.c (may_setattr), fs/xattr.c
 * (xattr_permission), fs/open.c (vfs_fallocate, do_truncate) and ext4's own checks
 * (ext4_setattr, ext4_write_checks).
 *
 * Flags pagefs keeps: append-only, immutable, noatime, nodump. noatime and nodump are
 * only stored (pagefs does not update atime on reads; nodump is for dump(8)).
 * Any other flag ext4 lets a user set answers EOPNOTSUPP (as ext4 answers a flag it
 * cannot honour); flags ext4 shows but never lets anyone set (the htree index, inline
 * data, ...) are dropped silently, as ext4 does, because chattr writes back what it read.
 */
import type { Vfs, Caller } from './vfs.js';
import type { Inode } from './inode.js';
import type { AttrChange } from './attr.js';
import { fsErr } from '../util/errors.js';
import { attrsChangedBehindKernel } from './staleattrs.js';
import { INODE_FLAGS } from '../store/schema.js';

export const FS_IMMUTABLE_FL = 0x10;
export const FS_APPEND_FL = 0x20;
export const FS_NODUMP_FL = 0x40;
export const FS_NOATIME_FL = 0x80;
/** What pagefs stores and reports (schema.ts, invariant I9). */
export const SUPPORTED_FLAGS = INODE_FLAGS;
/** ext4's EXT4_FL_USER_VISIBLE and EXT4_FL_USER_MODIFIABLE (fs/ext4/ext4.h). */
const EXT4_VISIBLE = 0x725bdbff;
const EXT4_MODIFIABLE = 0x624bc0ff;

/** _IOR('f', 1, long) and _IOW('f', 2, long) on a 64-bit kernel; the argument is an int all the same. */
export const FS_IOC_GETFLAGS = 0x80086601;
export const FS_IOC_SETFLAGS = 0x40086602;
/**
 * _IOR/_IOW('X', 31/32, struct fsxattr): xfs_io's chattr, and (seen on Linux 6.18) also
 * the kernel's own way to read the old flags inside FS_IOC_SETFLAGS: vfs_fileattr_set
 * asks fileattr_get without flags_valid, which FUSE turns into FS_IOC_FSGETXATTR.
 * Answering that with ENOTTY made every chattr fail with EOPNOTSUPP.
 */
export const FS_IOC_FSGETXATTR = 0x801c581f;
export const FS_IOC_FSSETXATTR = 0x401c5820;
const FSXATTR_SIZE = 28;
/** FS_XFLAG_* for each FS_*_FL pagefs keeps (include/uapi/linux/fs.h). */
const XFLAGS: [number, number][] = [[FS_IMMUTABLE_FL, 0x8], [FS_APPEND_FL, 0x10], [FS_NOATIME_FL, 0x40], [FS_NODUMP_FL, 0x80]];

const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
const O_APPEND = 0o2000;

const immutable = (i: Inode) => (i.rec.flags & FS_IMMUTABLE_FL) !== 0;
const appendOnly = (i: Inode) => (i.rec.flags & FS_APPEND_FL) !== 0;
const eperm = (what: string) => fsErr('EPERM', what);

export function getFlags(vfs: Vfs, fh: number, ino: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(vfs.handle(fh, ino).inode.rec.flags & SUPPORTED_FLAGS);
  return out;
}

export function setFlags(vfs: Vfs, caller: Caller, fh: number, ino: number, arg: Buffer | null): void {
  if (!arg || arg.length < 4) throw fsErr('EINVAL', 'FS_IOC_SETFLAGS needs an int argument');
  const asked = arg.readUInt32LE(0);
  if (asked & ~EXT4_VISIBLE) throw fsErr('EOPNOTSUPP');
  apply(vfs, caller, vfs.handle(fh, ino).inode, asked & EXT4_MODIFIABLE);
}

/** struct fsxattr: xflags, extsize, nextents, projid, cowextsize, 8 bytes of padding. */
export function getXattrFlags(vfs: Vfs, fh: number, ino: number): Buffer {
  const flags = vfs.handle(fh, ino).inode.rec.flags;
  const out = Buffer.alloc(FSXATTR_SIZE);
  let x = 0;
  for (const [fl, xfl] of XFLAGS) if (flags & fl) x |= xfl;
  out.writeUInt32LE(x >>> 0, 0);
  return out;
}

export function setXattrFlags(vfs: Vfs, caller: Caller, fh: number, ino: number, arg: Buffer | null): void {
  if (!arg || arg.length < FSXATTR_SIZE) throw fsErr('EINVAL', 'FS_IOC_FSSETXATTR needs a struct fsxattr');
  const inode = vfs.handle(fh, ino).inode;
  let x = arg.readUInt32LE(0);
  // No project quotas and no extent size hints: ext4 without the project feature refuses a project id.
  if (arg.readUInt32LE(12) !== 0) throw fsErr('EOPNOTSUPP', 'project ids are not supported');
  let flags = 0;
  for (const [fl, xfl] of XFLAGS) if (x & xfl) { flags |= fl; x &= ~xfl; }
  if (x !== 0) throw fsErr('EOPNOTSUPP', `xflags 0x${(x >>> 0).toString(16)} are not supported`);
  apply(vfs, caller, inode, flags);
}

function apply(vfs: Vfs, caller: Caller, inode: Inode, flags: number): void {
  if (flags & ~SUPPORTED_FLAGS) throw fsErr('EOPNOTSUPP', `flags 0x${(flags & ~SUPPORTED_FLAGS).toString(16)} are not supported`);
  const old = inode.rec.flags;
  if ((old ^ flags) & (FS_IMMUTABLE_FL | FS_APPEND_FL) && caller.uid !== 0) throw eperm('only root may change append-only or immutable');
  // ext4_ioctl_check_immutable: a file that stays immutable keeps its other flags too.
  if (old & flags & FS_IMMUTABLE_FL && (old & ~FS_IMMUTABLE_FL) !== (flags & ~FS_IMMUTABLE_FL)) throw eperm('immutable');
  vfs.store.txn(() => {
    inode.rec.flags = flags;
    inode.stamp('c');
    vfs.persist(inode);
  });
  // An ioctl's reply makes the kernel drop no attribute: it would show the old ctime.
  attrsChangedBehindKernel(caller, inode.ino);
}

/** may_open: nobody writes an immutable file; an append-only one opens for writing only with O_APPEND, never O_TRUNC. */
export function checkOpen(inode: Inode, flags: number): void {
  const writing = (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
  if (writing && immutable(inode)) throw eperm('immutable');
  if (appendOnly(inode) && (((flags & O_ACCMODE) !== 0 && !(flags & O_APPEND)) || (flags & O_TRUNC))) throw eperm('append-only');
}

/** ext4_setattr and may_setattr: immutable refuses every change; append-only refuses all but size-less "touch". */
export function checkSetattr(inode: Inode, ch: AttrChange): void {
  if (immutable(inode)) throw eperm('immutable');
  if (!appendOnly(inode)) return;
  const explicitTime = Array.isArray(ch.atime) || Array.isArray(ch.mtime);
  if (ch.size !== undefined || ch.mode !== undefined || ch.uid !== undefined || ch.gid !== undefined || explicitTime) throw eperm('append-only');
}

/** Writes to the data of a file (write, fallocate, copy_file_range destination, collapse/insert): never into an immutable file. */
export function checkWrite(inode: Inode): void {
  if (immutable(inode)) throw eperm('immutable');
}

/** vfs_fallocate: an append-only file allows only plain allocation (mode 0 or KEEP_SIZE). */
export function checkFallocate(inode: Inode, mode: number, keepSize: number): void {
  checkWrite(inode);
  if (appendOnly(inode) && (mode & ~keepSize)) throw eperm('append-only');
}

/** Collapse and insert move existing data: refused on immutable and append-only files. */
export function checkShift(inode: Inode): void {
  checkWrite(inode);
  if (appendOnly(inode)) throw eperm('append-only');
}

/** may_create: no new entry in an immutable directory (an append-only one takes new entries). */
export function checkCreate(dir: Inode): void {
  if (immutable(dir)) throw eperm('immutable directory');
}

/** may_delete: no entry leaves an immutable or append-only directory, and no immutable or append-only inode loses a name. */
export function checkDelete(dir: Inode, victim: Inode): void {
  if (immutable(dir) || appendOnly(dir)) throw eperm('directory is immutable or append-only');
  if (immutable(victim) || appendOnly(victim)) throw eperm('immutable or append-only');
}

/** vfs_link: an immutable or append-only inode gets no new name. */
export function checkLink(inode: Inode, dir: Inode): void {
  if (immutable(inode) || appendOnly(inode)) throw eperm('immutable or append-only');
  checkCreate(dir);
}

/** xattr_permission: set and remove are writes, refused on immutable and append-only inodes alike. */
export function checkXattrWrite(inode: Inode): void {
  if (immutable(inode) || appendOnly(inode)) throw eperm('immutable or append-only');
}
