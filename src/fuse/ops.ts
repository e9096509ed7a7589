/**
 * The op table: one row per kernel op pagefs implements, naming how its result is
 * replied to and the VFS call that produces it. An op missing here is not registered
 * with libfuse at all (ENOSYS, forever, from the kernel's point of view): never leave a
 * row that answers ENOSYS for a "not now".
 */
import { OP, SET, KILL, OPEN_KEEP_CACHE, OPEN_NOFLUSH, A } from './binding.js';
import { toldVerdict, type KillVerdict } from '../vfs/killpriv.js';
import type { Vfs, Caller } from '../vfs/vfs.js';
import type { Inode } from '../vfs/inode.js';
import * as entry from '../vfs/entry.js';
import * as namei from '../vfs/namei.js';
import * as attr from '../vfs/attr.js';
import * as dir from '../vfs/readdir.js';
import * as io from '../vfs/io.js';
import * as alloc from '../vfs/alloc.js';
import * as copy from '../vfs/copy.js';
import * as xattr from '../vfs/xattr.js';
import { statfs } from '../vfs/statfs.js';
import * as shift from '../vfs/shift.js';
import * as flags from '../vfs/flags.js';
import { fsErr } from '../util/errors.js';
import type { ReadResult } from '../vfs/io.js';
import type { DirEntry } from '../vfs/readdir.js';

export type ReplyKind =
  | 'ok' | 'none' | 'entry' | 'create' | 'attr' | 'readlink' | 'open' | 'write' | 'read'
  | 'statfs' | 'xattr' | 'lseek' | 'dir' | 'dirplus' | 'ioctl' | 'statx';

export interface OpDef {
  name: string;
  reply: ReplyKind;
  /** A request libfuse never saw (STATX): its errors go out through replyRawErr. */
  raw?: boolean;
  run: (vfs: Vfs, c: Caller, ...args: any[]) => any;
}

export interface OpenOut { fh: number; flags: number }
export interface CreateOut { inode: Inode; fh: number; flags: number }
/** Value of an xattr request: the bytes, or their size when the caller asked with size 0. */
export type XattrOut = { size: number } | { data: Buffer };
/** An ioctl's result, with the bytes copied back to the caller's argument for _IOR commands. */
export type IoctlOut = number | { result: number; out: Buffer };
export interface DirOut { entries: DirEntry[]; maxSize: number; vfs: Vfs }

/**
 * Kernel page cache policy: keep it across opens (FOPEN_KEEP_CACHE). Every change of
 * file data passes through this kernel, which updates or drops its own pages, and what
 * changes behind its back is sent as notify_inval_inode.
 *
 * No FLUSH at close (FOPEN_NOFLUSH): pagefs has nothing to do at close(2). Space is
 * reserved at write time, so ENOSPC is never found late; data reaches the store at
 * release, fsync and the periodic writeback, as with ext4, whose close writes back
 * nothing either. The kernel handles POSIX locks itself (no GETLK/SETLK here), so no
 * lock owner needs the FLUSH. Each close waited for that round trip: 20,000 open(2) +
 * close(2) of a cached file on a tmpfs store, 3 alternating runs, 46-51 us a pair with
 * it (one outlier 122) and 29-34 us without. test/mount/requests.test.ts.
 * The kernel then also skips its own writeback at close: pages dirtied through mmap go
 * out at msync, fsync, the kernel's background writeback or unmount, not at close.
 */
const OPEN_FLAGS = OPEN_KEEP_CACHE | OPEN_NOFLUSH;

function xattrOut(value: Buffer, size: number): XattrOut {
  if (size === 0) return { size: value.length };
  if (value.length > size) throw fsErr('ERANGE');
  return { data: value };
}

function decodeSetattr(toSet: number, a: Float64Array, kill: KillVerdict): attr.AttrChange {
  const ch: attr.AttrChange = { kill };
  if (toSet & SET.MODE) ch.mode = a[A.mode];
  if (toSet & SET.UID) ch.uid = a[A.uid];
  if (toSet & SET.GID) ch.gid = a[A.gid];
  if (toSet & SET.SIZE) ch.size = a[A.size];
  if (toSet & SET.ATIME_NOW) ch.atime = 'now';
  else if (toSet & SET.ATIME) ch.atime = [a[A.atimeSec], a[A.atimeNsec]];
  if (toSet & SET.MTIME_NOW) ch.mtime = 'now';
  else if (toSet & SET.MTIME) ch.mtime = [a[A.mtimeSec], a[A.mtimeNsec]];
  if (toSet & SET.CTIME) ch.ctime = [a[A.ctimeSec], a[A.ctimeNsec]];
  return ch;
}

export const OPS: Record<number, OpDef> = {
  [OP.LOOKUP]: { name: 'lookup', reply: 'entry', run: (v, _c, parent: number, name: Buffer) => entry.lookup(v, parent, name) },
  [OP.FORGET]: { name: 'forget', reply: 'none', run: (v, _c, ino: number, n: number) => entry.forget(v, ino, n) },
  [OP.FORGET_MULTI]: {
    name: 'forget_multi', reply: 'none',
    run: (v, _c, pairs: Float64Array) => { for (let i = 0; i < pairs.length; i += 2) entry.forget(v, pairs[i], pairs[i + 1]); },
  },
  [OP.GETATTR]: { name: 'getattr', reply: 'attr', run: (v, _c, ino: number) => entry.getattr(v, ino) },
  [OP.SETATTR]: {
    name: 'setattr', reply: 'attr',
    run: (v, c, ino: number, toSet: number, a: Float64Array) => attr.setattr(v, c, ino, decodeSetattr(toSet, a, toldVerdict(v.killprivV2, toSet & KILL.SETATTR_SUIDGID))),
  },
  [OP.READLINK]: { name: 'readlink', reply: 'readlink', run: (v, _c, ino: number) => namei.readlink(v, ino) },
  [OP.MKNOD]: {
    name: 'mknod', reply: 'entry',
    run: (v, c, parent: number, name: Buffer, mode: number, rdev: number) => namei.makeNode(v, c, parent, name, mode, rdev),
  },
  [OP.MKDIR]: { name: 'mkdir', reply: 'entry', run: (v, c, parent: number, name: Buffer, mode: number) => namei.mkdir(v, c, parent, name, mode) },
  [OP.UNLINK]: { name: 'unlink', reply: 'ok', run: (v, _c, parent: number, name: Buffer) => namei.unlink(v, parent, name) },
  [OP.RMDIR]: { name: 'rmdir', reply: 'ok', run: (v, _c, parent: number, name: Buffer) => namei.rmdir(v, parent, name) },
  [OP.SYMLINK]: {
    name: 'symlink', reply: 'entry',
    run: (v, c, target: Buffer, parent: number, name: Buffer) => namei.symlink(v, c, target, parent, name),
  },
  [OP.RENAME]: {
    name: 'rename', reply: 'ok',
    run: (v, _c, parent: number, name: Buffer, np: number, nn: Buffer, flags: number) => namei.rename(v, parent, name, np, nn, flags),
  },
  [OP.LINK]: { name: 'link', reply: 'entry', run: (v, _c, ino: number, np: number, nn: Buffer) => namei.link(v, ino, np, nn) },
  [OP.OPEN]: {
    name: 'open', reply: 'open',
    run: (v, c, ino: number, flags: number, openFlags: number): OpenOut | Promise<OpenOut> => {
      const fh = io.open(v, c, ino, flags, toldVerdict(v.killprivV2, openFlags & KILL.OPEN_SUIDGID));
      return typeof fh === 'number' ? { fh, flags: OPEN_FLAGS } : fh.then((n) => ({ fh: n, flags: OPEN_FLAGS }));
    },
  },
  [OP.READ]: {
    name: 'read', reply: 'read',
    run: (v, _c, ino: number, size: number, off: number, fh: number): ReadResult | Promise<ReadResult> => io.read(v, fh, ino, size, off),
  },
  [OP.WRITE]: {
    name: 'write', reply: 'write',
    run: (v, c, ino: number, data: Buffer, off: number, fh: number, _writepage: number, _flags: number, writeFlags: number) =>
      io.write(v, c, fh, ino, data, off, toldVerdict(v.killprivV2, writeFlags & KILL.WRITE_SUIDGID)),
  },
  [OP.FLUSH]: { name: 'flush', reply: 'ok', run: (v, _c, ino: number, fh: number) => io.flush(v, fh, ino) },
  [OP.RELEASE]: { name: 'release', reply: 'ok', run: (v, _c, ino: number, fh: number) => io.release(v, fh, ino) },
  [OP.FSYNC]: { name: 'fsync', reply: 'ok', run: (v, _c, ino: number, _datasync: number, fh: number | null) => io.fsync(v, fh, ino) },
  [OP.OPENDIR]: { name: 'opendir', reply: 'open', run: (v, _c, ino: number, flags: number): OpenOut => ({ fh: dir.opendir(v, ino, flags), flags: 0 }) },
  [OP.READDIR]: {
    name: 'readdir', reply: 'dir',
    run: (v, _c, ino: number, size: number, off: number): DirOut => ({ entries: dir.readdir(v, ino, off, Math.ceil(size / 24) + 2), maxSize: size, vfs: v }),
  },
  [OP.READDIRPLUS]: {
    name: 'readdirplus', reply: 'dirplus',
    run: (v, _c, ino: number, size: number, off: number): DirOut => ({ entries: dir.readdir(v, ino, off, Math.ceil(size / 160) + 2), maxSize: size, vfs: v }),
  },
  [OP.RELEASEDIR]: { name: 'releasedir', reply: 'ok', run: (v, _c, ino: number, fh: number) => dir.releasedir(v, fh, ino) },
  [OP.FSYNCDIR]: { name: 'fsyncdir', reply: 'ok', run: (v, _c, ino: number) => io.fsync(v, null, ino) },
  [OP.STATFS]: { name: 'statfs', reply: 'statfs', run: (v) => statfs(v) },
  [OP.SETXATTR]: {
    name: 'setxattr', reply: 'ok',
    run: (v, c, ino: number, name: Buffer, value: Buffer, flags: number) => xattr.setxattr(v, c, ino, name, value, flags),
  },
  [OP.GETXATTR]: {
    name: 'getxattr', reply: 'xattr',
    run: (v, _c, ino: number, name: Buffer, size: number): XattrOut => xattrOut(xattr.getxattr(v, ino, name), size),
  },
  [OP.LISTXATTR]: { name: 'listxattr', reply: 'xattr', run: (v, _c, ino: number, size: number): XattrOut => xattrOut(xattr.listxattr(v, ino), size) },
  [OP.REMOVEXATTR]: { name: 'removexattr', reply: 'ok', run: (v, _c, ino: number, name: Buffer) => xattr.removexattr(v, ino, name) },
  // default_permissions: the kernel checks modes itself and calls access(2) through here only without it.
  [OP.ACCESS]: { name: 'access', reply: 'ok', run: (v, _c, ino: number) => { entry.getattr(v, ino); } },
  [OP.CREATE]: {
    name: 'create', reply: 'create',
    run: (v, c, parent: number, name: Buffer, mode: number, flags: number): CreateOut => ({ ...io.create(v, c, parent, name, mode, flags), flags: OPEN_FLAGS }),
  },
  [OP.FALLOCATE]: {
    name: 'fallocate', reply: 'ok',
    run: (v, c, ino: number, mode: number, off: number, len: number, fh: number) => alloc.fallocate(v, c, fh, ino, mode, off, len),
  },
  [OP.COPY_FILE_RANGE]: {
    name: 'copy_file_range', reply: 'write',
    run: (v, c, inoIn: number, offIn: number, fhIn: number, inoOut: number, offOut: number, fhOut: number, len: number, flags: number) => {
      if (flags !== 0) throw fsErr('EINVAL');
      return copy.copyFileRange(v, c, inoIn, offIn, fhIn, inoOut, offOut, fhOut, len);
    },
  },
  [OP.IOCTL]: {
    name: 'ioctl', reply: 'ioctl',
    run: async (v, c, ino: number, cmd: number, fh: number, _flags: number, inBuf: Buffer | null): Promise<IoctlOut> => {
      if (cmd === flags.FS_IOC_GETFLAGS) return { result: 0, out: flags.getFlags(v, fh, ino) };
      if (cmd === flags.FS_IOC_SETFLAGS) {
        flags.setFlags(v, c, fh, ino, inBuf);
        return 0;
      }
      if (cmd === flags.FS_IOC_FSGETXATTR) return { result: 0, out: flags.getXattrFlags(v, fh, ino) };
      if (cmd === flags.FS_IOC_FSSETXATTR) {
        flags.setXattrFlags(v, c, fh, ino, inBuf);
        return 0;
      }
      if (cmd === shift.PAGEFS_IOC_COLLAPSE_RANGE || cmd === shift.PAGEFS_IOC_INSERT_RANGE) {
        const { offset, length } = shift.decodeRange(inBuf);
        if (cmd === shift.PAGEFS_IOC_COLLAPSE_RANGE) await shift.collapseRange(v, fh, ino, offset, length);
        else await shift.insertRange(v, fh, ino, offset, length);
        return 0;
      }
      throw fsErr('ENOTTY');
    },
  },
  // The only request that asks for the birth time; libfuse 3.14 does not know it (statx.c).
  [OP.STATX]: { name: 'statx', reply: 'statx', raw: true, run: (v, _c, ino: number) => entry.getattr(v, ino) },
  [OP.LSEEK]: { name: 'lseek', reply: 'lseek', run: (v, _c, ino: number, off: number, whence: number, fh: number) => alloc.lseek(v, fh, ino, off, whence) },
};
