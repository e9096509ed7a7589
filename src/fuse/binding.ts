/**
 * The contract between JavaScript and native-shim (the N-API addon over libfuse3's
 * low-level API). The addon holds no filesystem policy: it mounts, reads each request
 * on the JavaScript thread (Node's event loop polls /dev/fuse), decodes it into plain
 * numbers and Buffers, hands it to one JavaScript handler, and encodes the replies that
 * JavaScript sends back, at once or later.
 *
 * Every request handle (`Req`) must receive exactly one reply call; the dispatcher in
 * dispatch.ts guarantees that.
 *
 * Numbers: inode numbers, file handles and offsets cross as doubles. Inode numbers and
 * handles are small (SQLite rowids, counters). Offsets above 2^53 lose precision, but
 * every such offset is beyond the maximum file size, so the errno decision is the same.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export type Req = number & { readonly __req: unique symbol };

/** Attribute record layout shared with C: fill a Float64Array(ATTR_LEN) at these indices. */
export const A = {
  ino: 0, mode: 1, nlink: 2, uid: 3, gid: 4, rdev: 5, size: 6, blocks: 7, blksize: 8,
  atimeSec: 9, atimeNsec: 10, mtimeSec: 11, mtimeNsec: 12, ctimeSec: 13, ctimeNsec: 14,
} as const;
export const ATTR_LEN = 15;

/** Bits of the open-reply flags argument (fuse_file_info fields). */
export const OPEN_DIRECT_IO = 1;
export const OPEN_KEEP_CACHE = 2;
export const OPEN_NONSEEKABLE = 4;
export const OPEN_CACHE_READDIR = 8;
export const OPEN_NOFLUSH = 16;

/** SETATTR to_set bits, as in fuse_lowlevel.h. */
export const SET = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, FORCE: 1 << 9, CTIME: 1 << 10,
  KILL_SUID: 1 << 11, KILL_SGID: 1 << 12, FILE: 1 << 13, KILL_PRIV: 1 << 14,
  OPEN: 1 << 15, TIMES_SET: 1 << 16, TOUCH: 1 << 17,
} as const;

/**
 * The kernel's word, under FUSE_HANDLE_KILLPRIV_V2, that a caller without CAP_FSETID
 * wrote or truncated (or anyone changed the owner): clear the set-ID bits. SETATTR's
 * FATTR_KILL_SUIDGID arrives as libfuse's SET.KILL_SUID (the same bit, 1 << 11).
 */
export const KILL = { WRITE_SUIDGID: 1 << 2, OPEN_SUIDGID: 1 << 0, SETATTR_SUIDGID: SET.KILL_SUID } as const;

/**
 * Op codes. The handler is called as handler(op, req, uid, gid, pid, umask, ...args)
 * with the per-op args listed here (fh is null where libfuse passed no fuse_file_info).
 */
export const OP = {
  INIT: 1,            // (capable, want, protoMajor, protoMinor, maxWrite, maxReadahead, killprivV2: 0|1) — req is 0, no reply
  DESTROY: 2,         // () — req is 0, no reply
  EXIT: 3,            // (rc) — the connection ended and no request is read any more; req is 0, no reply
  LOOKUP: 4,          // (parent, name: Buffer)
  FORGET: 5,          // (ino, nlookup) — reply with replyNone
  FORGET_MULTI: 6,    // (pairs: Float64Array [ino0, n0, ino1, n1, ...]) — reply with replyNone
  GETATTR: 7,         // (ino, fh | null)
  SETATTR: 8,         // (ino, toSet, attr: Float64Array(ATTR_LEN), fh | null)  attr holds mode, uid, gid, size, a/m/ctime
  READLINK: 9,        // (ino)
  MKNOD: 10,          // (parent, name, mode, rdev)
  MKDIR: 11,          // (parent, name, mode)
  UNLINK: 12,         // (parent, name)
  RMDIR: 13,          // (parent, name)
  SYMLINK: 14,        // (target: Buffer, parent, name)
  RENAME: 15,         // (parent, name, newparent, newname, flags)
  LINK: 16,           // (ino, newparent, newname)
  OPEN: 17,           // (ino, flags, openFlags)  openFlags: the kernel's FUSE_OPEN_* (KILL.OPEN_SUIDGID)
  READ: 18,           // (ino, size, off, fh)
  WRITE: 19,          // (ino, data: Buffer, off, fh, writepage: 0|1, flags, writeFlags)  data is owned by JS; writeFlags: FUSE_WRITE_* (KILL.WRITE_SUIDGID)
  FLUSH: 20,          // (ino, fh, lockOwner)
  RELEASE: 21,        // (ino, fh, flags)
  FSYNC: 22,          // (ino, datasync: 0|1, fh)
  OPENDIR: 23,        // (ino, flags)
  READDIR: 24,        // (ino, size, off, fh)
  READDIRPLUS: 25,    // (ino, size, off, fh)
  RELEASEDIR: 26,     // (ino, fh)
  FSYNCDIR: 27,       // (ino, datasync, fh)
  STATFS: 28,         // (ino)
  SETXATTR: 29,       // (ino, name: Buffer, value: Buffer, flags)
  GETXATTR: 30,       // (ino, name: Buffer, size)
  LISTXATTR: 31,      // (ino, size)
  REMOVEXATTR: 32,    // (ino, name: Buffer)
  ACCESS: 33,         // (ino, mask)
  CREATE: 34,         // (parent, name, mode, flags)
  FALLOCATE: 35,      // (ino, mode, offset, length, fh)
  COPY_FILE_RANGE: 36,// (inoIn, offIn, fhIn, inoOut, offOut, fhOut, len, flags)
  LSEEK: 37,          // (ino, off, whence, fh)
  IOCTL: 38,          // (ino, cmd, fh, flags, inBuf: Buffer | null, outSize)
  STATX: 39,          // (ino, mask) — read before libfuse (native-shim/src/statx.c); reply with replyStatx / replyRawErr only
} as const;
export type OpCode = (typeof OP)[keyof typeof OP];

export type Handler = (op: number, req: Req, uid: number, gid: number, pid: number, umask: number, ...args: any[]) => void;

export interface MountConfig {
  /** Op codes to register with libfuse; an op not listed is absent (ENOSYS from libfuse). */
  ops: number[];
  /** FUSE_CAP_* bits to add to conn->want when the kernel offers them. */
  want: number;
  /** FUSE_CAP_* bits to clear from conn->want. */
  unwant: number;
  maxWrite: number;
  maxReadahead: number;
  /** Time granularity in nanoseconds (conn->time_gran). */
  timeGran: number;
  /**
   * Answer INIT with FUSE_HANDLE_KILLPRIV_V2 when the kernel offers it (libfuse 3.14 cannot
   * ask for it; the addon adds it to libfuse's reply). INIT's last argument says whether it did.
   */
  killprivV2: boolean;
  /**
   * Microseconds the read loop polls /dev/fuse (and the event loop's descriptor) before
   * the event loop may sleep, after a request that came within that long of the daemon
   * finishing the one before; 0 never polls. At most 10,000. native-shim/src/session.c.
   */
  pollUs: number;
}

export interface Session {
  readonly __session: unique symbol;
}

export interface FuseBinding {
  /** Creates the session (fuse_session_new with argv), mounts and starts reading requests in the event loop. Throws on failure with .errno. */
  mount(mountpoint: string, argv: string[], config: MountConfig, handler: Handler): Session;
  /** fuse_session_exit + a lazy unmount; the EXIT event follows once the connection ends (at once for an idle mount). */
  unmount(session: Session): void;

  replyErr(req: Req, errno: number): void;
  replyNone(req: Req): void;
  replyEntry(req: Req, ino: number, generation: number, attr: Float64Array, attrTimeout: number, entryTimeout: number): void;
  replyCreate(req: Req, ino: number, generation: number, attr: Float64Array, attrTimeout: number, entryTimeout: number, fh: number, openFlags: number): void;
  replyAttr(req: Req, attr: Float64Array, attrTimeout: number): void;
  replyReadlink(req: Req, target: Buffer): void;
  replyOpen(req: Req, fh: number, openFlags: number): void;
  replyWrite(req: Req, count: number): void;
  replyBuf(req: Req, data: Buffer | null): void;
  /** fuse_reply_iov over the given buffers, without joining them first. */
  replyIov(req: Req, bufs: Buffer[]): void;
  replyStatfs(req: Req, bsize: number, frsize: number, blocks: number, bfree: number, bavail: number,
    files: number, ffree: number, favail: number, namemax: number): void;
  replyXattr(req: Req, size: number): void;
  replyLseek(req: Req, off: number): void;
  replyIoctl(req: Req, result: number, out: Buffer | null): void;
  /** Answers a STATX request (basic stats from attr, plus the birth time). */
  replyStatx(req: Req, attr: Float64Array, btimeSec: number, btimeNsec: number, attrTimeout: number): void;
  /** The error reply of a STATX request (libfuse never saw it, so replyErr cannot answer it). */
  replyRawErr(req: Req, errno: number): void;
  /**
   * Packs directory entries with fuse_add_direntry (plus = false) or fuse_add_direntry_plus
   * (plus = true) into at most maxSize bytes, replies, and returns how many entries fit.
   * nums holds per entry [ino, generation, nextOff, mode] (4 doubles); attrs holds per entry
   * ATTR_LEN doubles (plus only; may be empty otherwise).
   */
  replyDir(req: Req, maxSize: number, plus: boolean, names: Buffer[], nums: Float64Array, attrs: Float64Array,
    attrTimeout: number, entryTimeout: number): number;

  /** fuse_lowlevel_notify_inval_inode on a worker thread; resolves to 0 or a negative errno. */
  notifyInvalInode(session: Session, ino: number, off: number, len: number): Promise<number>;
  /** fuse_lowlevel_notify_store on a worker thread (non-empty data past the kernel's i_size raises it); 0 or a negative errno. */
  notifyStore(session: Session, ino: number, off: number, data: Buffer): Promise<number>;
  /** fuse_lowlevel_notify_inval_entry on a worker thread; resolves to 0 or a negative errno. */
  notifyInvalEntry(session: Session, parent: number, name: Buffer): Promise<number>;
}

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

let cached: any;
/** Loads native-shim/build/Release/pagefs_native.node (built by `npm run build:addon`). */
export function loadNative(): any {
  if (!cached) cached = require(path.join(here, '..', '..', 'native-shim', 'build', 'Release', 'pagefs_native.node'));
  return cached;
}

export function fuseBinding(): FuseBinding {
  return loadNative().fuse as FuseBinding;
}
