/**
 * The dispatcher: every request from the addon comes here, runs its op's VFS call and
 * gets exactly one reply. A handler that returns a plain value is answered in the same
 * turn of the event loop (no request can run in between); one that returns a promise is
 * answered when it settles. Errors: FsError -> its errno; a fault of the store's file
 * (src/store/faults.ts) -> its errno and one log line per fault; anything else -> EIO and
 * a log line with the stack, and the daemon keeps serving.
 */
import type { FuseBinding, Req } from './binding.js';
import { OP } from './binding.js';
import { OPS, type OpDef, type ReplyKind, type OpenOut, type CreateOut, type XattrOut, type DirOut, type IoctlOut } from './ops.js';
import { encodeAttr, scratchAttr } from './attrs.js';
import type { Vfs, Caller } from '../vfs/vfs.js';
import type { Inode } from '../vfs/inode.js';
import type { ReadResult } from '../vfs/io.js';
import type { StatfsOut } from '../vfs/statfs.js';
import { lookedUp } from '../vfs/readdir.js';
import { FsError, errnoNumber } from '../util/errors.js';
import { LockOrderError } from '../cache/lockcheck.js';
import { storeFault } from '../store/faults.js';

export interface DispatchOptions {
  attrTimeout: number;
  entryTimeout: number;
  log: (msg: string) => void;
  /** Lifecycle events (INIT, DESTROY, EXIT) go here. */
  onEvent: (op: number, args: number[]) => void;
}

export class Dispatcher {
  readonly inflight = new Set<number>();
  errors = 0;
  /** Requests received, by op code (control socket: which round trips a workload costs). */
  private readonly received: number[] = [];

  constructor(private readonly vfs: Vfs, private readonly fuse: FuseBinding, private readonly opts: DispatchOptions) {}

  /** The op codes to register with libfuse. */
  static opCodes(): number[] {
    return Object.keys(OPS).map(Number);
  }

  readonly handle = (op: number, req: Req, uid: number, gid: number, pid: number, umask: number, ...args: any[]): void => {
    const def = OPS[op];
    this.received[op] = (this.received[op] ?? 0) + 1;
    if (!def) {
      if (op === OP.INIT || op === OP.DESTROY || op === OP.EXIT) this.opts.onEvent(op, args);
      else this.fuse.replyErr(req, errnoNumber('ENOSYS'));
      return;
    }
    const caller: Caller = { uid, gid, pid, umask };
    let result: unknown;
    try {
      result = def.run(this.vfs, caller, ...args);
    } catch (e) {
      this.fail(req, def, e);
      return;
    }
    // A reply carrying the inode's attributes (SETATTR) refreshes them by itself.
    if (def.reply === 'attr') caller.staleAttrs = undefined;
    if (result instanceof Promise || caller.staleAttrs) {
      this.inflight.add(req);
      const done = (r: unknown) => { this.inflight.delete(req); this.send(req, def, r); };
      Promise.resolve(result).then(
        // Read here, not before: an async op may note an inode after its first await.
        (r) => { if (caller.staleAttrs) void this.dropStaleAttrs(caller, def).then(() => done(r)); else done(r); },
        (e) => { this.inflight.delete(req); this.fail(req, def, e); },
      );
    } else {
      this.send(req, def, result);
    }
  };

  /**
   * The kernel drops its cached attributes of the inodes the request changed behind its
   * back (src/vfs/staleattrs.ts), before the reply, so that the caller's next stat or exec
   * sees the change. Attributes only (offset -1): that takes no lock the request may hold.
   */
  private async dropStaleAttrs(caller: Caller, def: OpDef): Promise<void> {
    try {
      for (const ino of caller.staleAttrs ?? []) await this.vfs.invalidator.invalInodeNow(ino, -1, 0);
    } catch (e) {
      // The change itself succeeded and is answered; the kernel just keeps old attributes a while.
      this.opts.log(`${def.name}: attribute invalidation failed: ${(e as Error)?.message ?? e}`);
    }
  }

  /** Requests received so far by op name, for ops the kernel has sent at least once. */
  requestCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.received.forEach((n, op) => { const def = OPS[op]; if (def && n) out[def.name] = n; });
    return out;
  }

  private fail(req: Req, def: OpDef, e: unknown): void {
    if (e instanceof FsError) {
      this.replyErr(req, def, e.errno);
      return;
    }
    // The store's file failed (full, read-only, removed, locked): logged once per fault, not per request.
    const fault = storeFault(e);
    if (fault) {
      this.vfs.store.health.fault(fault);
      this.replyErr(req, def, errnoNumber(fault.errno));
      return;
    }
    this.errors++;
    const code = (e as { code?: unknown })?.code;
    if (typeof code === 'string' && code.startsWith('SQLITE_')) {
      this.opts.log(`${def.name}: store error ${code}: ${(e as Error).message}`);
      this.replyErr(req, def, errnoNumber('EIO'));
      return;
    }
    const what = e instanceof LockOrderError ? 'lock checker' : 'internal error';
    this.opts.log(`${def.name}: ${what}: ${(e as Error)?.stack ?? e}`);
    this.replyErr(req, def, errnoNumber('EIO'));
  }

  /** A forget expects no reply at all, even when it failed (a store fault at its writeback); STATX came around libfuse. */
  private replyErr(req: Req, def: OpDef, errno: number): void {
    if (def.reply === 'none') this.fuse.replyNone(req);
    else if (def.raw) this.fuse.replyRawErr(req, errno);
    else this.fuse.replyErr(req, errno);
  }

  private send(req: Req, def: OpDef, r: any): void {
    try {
      this.reply(req, def.reply, r);
    } catch (e) {
      this.fail(req, def, e);
    }
  }

  private reply(req: Req, kind: ReplyKind, r: any): void {
    const f = this.fuse;
    const { attrTimeout, entryTimeout } = this.opts;
    switch (kind) {
      case 'ok': return f.replyErr(req, 0);
      case 'none': return f.replyNone(req);
      case 'entry': {
        const inode = r as Inode | null;
        if (!inode) return f.replyEntry(req, 0, 0, scratchAttr, 0, entryTimeout);
        return f.replyEntry(req, inode.ino, inode.rec.generation, encodeAttr(this.vfs, inode.rec), attrTimeout, entryTimeout);
      }
      case 'create': {
        const c = r as CreateOut;
        return f.replyCreate(req, c.inode.ino, c.inode.rec.generation, encodeAttr(this.vfs, c.inode.rec), attrTimeout, entryTimeout, c.fh, c.flags);
      }
      case 'attr': return f.replyAttr(req, encodeAttr(this.vfs, (r as Inode).rec), attrTimeout);
      case 'statx': {
        const rec = (r as Inode).rec;
        return f.replyStatx(req, encodeAttr(this.vfs, rec), rec.btimeS, rec.btimeNs, attrTimeout);
      }
      case 'readlink': return f.replyReadlink(req, r as Buffer);
      case 'open': return f.replyOpen(req, (r as OpenOut).fh, (r as OpenOut).flags);
      case 'write': return f.replyWrite(req, r as number);
      case 'read': {
        const rr = r as ReadResult;
        try {
          f.replyIov(req, rr.bufs);
        } finally {
          rr.done?.();
        }
        return;
      }
      case 'statfs': {
        const s = r as StatfsOut;
        return f.replyStatfs(req, s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, s.namemax);
      }
      case 'xattr': {
        const x = r as XattrOut;
        return 'size' in x ? f.replyXattr(req, x.size) : f.replyBuf(req, x.data);
      }
      case 'lseek': return f.replyLseek(req, r as number);
      case 'ioctl': {
        const o = r as IoctlOut;
        return typeof o === 'number' ? f.replyIoctl(req, o, null) : f.replyIoctl(req, o.result, o.out);
      }
      case 'dir':
      case 'dirplus': return this.replyDir(req, r as DirOut, kind === 'dirplus');
    }
  }

  private replyDir(req: Req, d: DirOut, plus: boolean): void {
    const n = d.entries.length;
    const nums = new Float64Array(n * 4);
    const attrs = new Float64Array(plus ? n * 15 : 0);
    const names: Buffer[] = [];
    d.entries.forEach((e, i) => {
      names.push(e.name);
      nums[i * 4] = e.ino;
      nums[i * 4 + 1] = e.rec.generation;
      nums[i * 4 + 2] = e.next;
      nums[i * 4 + 3] = e.rec.mode;
      if (plus) encodeAttr(this.vfs, e.rec, attrs, i * 15);
    });
    const packed = this.fuse.replyDir(req, d.maxSize, plus, names, nums, attrs, this.opts.attrTimeout, this.opts.entryTimeout);
    if (plus) lookedUp(this.vfs, d.entries.slice(0, packed));
  }
}
