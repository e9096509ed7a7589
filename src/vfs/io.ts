/**
 * File I/O: open, create, read, write, flush, release, fsync.
 *
 * Reads are served from the page cache. A read whose pages are all uptodate is answered
 * synchronously, in the same turn of the event loop, so nothing can change the pages
 * between assembling the reply and sending it. A read that must fill holds the mapping's
 * invalidate_lock shared from before the block-map lookup until its reply has been sent
 * (ReadResult.done), so no punch can free a block it read before the kernel has it.
 */
import type { Vfs, Caller } from './vfs.js';
import { killPriv, type KillVerdict } from './killpriv.js';
import type { Inode } from './inode.js';
import { S_IFREG, S_ISGID, S_ISUID } from './inode.js';
import { OpCtx } from '../cache/lockcheck.js';
import { fillLocked, fillNow, fillDebug } from '../cache/fill.js';
import { writeLocked } from '../cache/write.js';
import type { Page } from '../cache/pagecache.js';
import { makeNode } from './namei.js';
import { setSizeLocked } from './resize.js';
import { checkOpen, checkWrite } from './flags.js';

/** open(2) flag bits as the kernel passes them (asm-generic/fcntl.h). */
const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_TRUNC = 0o1000;
const O_DIRECT = 0o40000;
import { fsErr } from '../util/errors.js';

export interface ReadResult {
  bufs: Buffer[];
  /** Called once the reply is sent. */
  done?: () => void;
}

/** Longest readahead window, in pages, that the daemon adds after a sequential read. */
const RA_MAX_PAGES = 64;
/**
 * How far a stream's dirty pages may pass the write-behind size while a checkpoint is
 * due or running, before its next write waits for that checkpoint (write below). A
 * transaction of 1.25 times 32 MiB of 4 KiB blocks is about 3,500 frames of 16 KiB, under
 * the writer's own checkpoint at 4,096 (BACKSTOP_FRAMES).
 */
const WB_SLACK = 1.25;

/**
 * With FUSE_ATOMIC_O_TRUNC the kernel passes O_TRUNC to open instead of sending a
 * setattr first, so truncation happens here, through the same path as truncate(2), and
 * so does the clearing of set-ID bits it brings, even of an empty file (`kill`).
 */
export function open(vfs: Vfs, caller: Caller, ino: number, flags: number, kill: KillVerdict): number | Promise<number> {
  const inode = vfs.inode(ino);
  if (inode.isDir) throw fsErr('EISDIR');
  checkOpen(inode, flags);
  const writable = (flags & O_ACCMODE) !== O_RDONLY;
  if (!(flags & O_TRUNC) || !writable || !inode.isReg) return vfs.newHandle(inode, flags).fh;
  if (inode.rec.mode & (S_ISUID | S_ISGID)) vfs.change([inode], () => { if (killPriv(inode, caller, kill)) vfs.persist(inode); });
  if (inode.rec.size === 0) return vfs.newHandle(inode, flags).fh;
  return (async () => {
    const ctx = new OpCtx('open(O_TRUNC)');
    const m = inode.mapping!;
    await m.iRwsem.acquire(ctx, 'exclusive');
    try {
      await setSizeLocked(vfs, ctx, inode, 0);
    } finally {
      m.iRwsem.release(ctx, 'exclusive');
    }
    return vfs.newHandle(inode, flags).fh;
  })();
}

export function create(vfs: Vfs, caller: Caller, parent: number, name: Buffer, mode: number, flags: number): { inode: Inode; fh: number } {
  const inode = makeNode(vfs, caller, parent, name, S_IFREG | (mode & 0o7777), 0);
  return { inode, fh: vfs.newHandle(inode, flags).fh };
}

function views(pages: Page[], ps: number, off: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  for (const p of pages) {
    const start = p.index * ps;
    out.push(p.data.subarray(Math.max(off, start) - start, Math.min(end, start + ps) - start));
  }
  return out;
}

export function read(vfs: Vfs, fh: number, ino: number, size: number, off: number): ReadResult | Promise<ReadResult> {
  const inode = vfs.handle(fh, ino).inode;
  const m = inode.mapping;
  if (!m) throw fsErr('EISDIR');
  const end = Math.min(off + size, inode.rec.size);
  if (off >= end) return { bufs: [] };
  const cache = vfs.cache;
  const ps = cache.pageSize;
  const idx0 = Math.floor(off / ps);
  const idx1 = Math.floor((end - 1) / ps);
  const sequential = idx0 === m.raNext || idx0 === m.raNext - 1;
  m.raNext = idx1 + 1;
  // A new stream (or a random read): drop-behind starts over from here, and what reads
  // of the stream before still have to finish drops nothing (their cursor is gone).
  if (!sequential) {
    m.dropNext = idx0;
    m.readStream++;
  }
  const stream = m.readStream;

  const pages: Page[] = [];
  for (let idx = idx0; idx <= idx1; idx++) {
    const p = m.get(idx);
    if (!p || p.uptodate !== cache.fullMask) break;
    pages.push(p);
  }
  if (pages.length === idx1 - idx0 + 1) {
    cache.stats.hits += pages.length;
    for (const p of pages) cache.touch(p);
    return { bufs: views(pages, ps, off, end) };
  }
  cache.stats.misses += idx1 - idx0 + 1 - pages.length;

  m.raWindow = sequential ? Math.min(RA_MAX_PAGES, Math.max(4, m.raWindow * 2)) : 0;
  const lastPage = Math.floor((inode.rec.size - 1) / ps);
  const raLast = Math.min(lastPage, idx1 + m.raWindow);
  const ctx = new OpCtx('read');
  const locked = !fillDebug.noInvalidateLock;
  const release = () => { if (locked) m.invalidateLock.release(ctx, 'shared'); };
  const reply = (filled: Page[]): ReadResult => {
    cache.stats.readaheadPages += raLast - idx1;
    // The size may have shrunk while we waited: never return bytes past the current EOF.
    const stop = Math.min(end, inode.rec.size);
    const bufs = off < stop ? views(filled.slice(0, idx1 - idx0 + 1), ps, off, stop) : [];
    // Once the kernel has the pages (the reply is sent) and our hold is gone, a stream's
    // pages behind this read leave the cache (PageCache.dropBehindRead).
    return { bufs, done: () => { release(); if (sequential && m.readStream === stream) cache.dropBehindRead(m, idx0); vfs.balance(); } };
  };
  const waiting = locked ? m.invalidateLock.acquire(ctx, 'shared') : undefined;
  // The lock was free and the fill is small: answered in this turn, without the promises
  // and microtask turns of the path below (cold 4 KiB reads: 74 -> 69 us of daemon CPU each).
  if (!waiting) {
    let filled: Page[] | undefined;
    try {
      filled = fillNow(ctx, m, idx0, raLast, vfs.src);
    } catch (e) {
      release();
      throw e;
    }
    if (filled) return reply(filled);
  }
  return (async () => {
    try {
      await waiting;
      return reply(await fillLocked(ctx, m, idx0, raLast, vfs.src));
    } catch (e) {
      release();
      throw e;
    }
  })();
}

export async function write(vfs: Vfs, caller: Caller, fh: number, ino: number, data: Buffer, off: number, kill: KillVerdict): Promise<number> {
  const h = vfs.handle(fh, ino);
  const inode = h.inode;
  const m = inode.mapping;
  if (!m) throw fsErr('EISDIR');
  checkWrite(inode);
  if (off >= vfs.maxFileSize) throw fsErr('EFBIG');
  if (off + data.length > vfs.maxFileSize) data = data.subarray(0, vfs.maxFileSize - off);
  if (data.length === 0) return 0;
  const ctx = new OpCtx('write');
  await m.iRwsem.acquire(ctx, 'exclusive');
  let streaming = false;
  try {
    const appended = off >= inode.rec.size;
    await writeLocked(ctx, m, off, data, vfs.src, vfs.store.blocks, { grow: (end) => { if (end > inode.rec.size) inode.rec.size = end; } });
    if (off !== inode.writeEnd) inode.runStart = off;
    inode.writeEnd = off + data.length;
    streaming = appended || inode.writeEnd - inode.runStart >= vfs.writeBehindPages * vfs.cache.pageSize;
    inode.stamp('mc');
    killPriv(inode, caller, kill);
  } finally {
    m.iRwsem.release(ctx, 'exclusive');
  }
  // Write-behind for a stream: a file written at its end, or a sequential overwrite (as
  // of space fio or a database preallocated): a run of writes each starting where the one
  // before ended, as long as the write-behind itself (two random writes that happen to
  // touch must not write back every dirty page of the file). Left to the cache cap, the
  // whole file would be written back at once, one transaction whose WAL grows as large as
  // the file, in memory touched for the first time (a 1 GiB sequential overwrite of a
  // preallocated file: 110 MiB/s and 1.3 GiB of RSS with a 1536M cache, against 171 MiB/s
  // and 166 MiB appended). A stream seldom writes its pages again, so writing them back
  // early costs no second write (it would for random overwrites, which wait for the cap
  // or fsync). The pages written back then leave the cache (drop-behind,
  // PageCache.dropBehind). While a background checkpoint is due or running, the
  // write-behind waits for it, so that the next transaction restarts the WAL instead of
  // growing it: the stream goes on into the cache up to WB_SLACK times the size, then its
  // write waits for the checkpoint (the kernel sends the stream's next write only after
  // this reply). It used to go on up to twice the size and then write back regardless,
  // into a WAL the thread had not finished: one transaction of 64 MiB, or two without a
  // restart between them, passed the writer's own checkpoint (4,096 frames), which then
  // copied everything again on the event loop: 16.6% of the main thread's perf samples in
  // a 1 GiB sequential write, none since (src/store/checkpointer.ts).
  if (streaming && m.dirtyPages.size >= vfs.writeBehindPages) {
    const cp = vfs.store.checkpoints;
    if (!cp?.busy) vfs.writeBehind(inode);
    else if (m.dirtyPages.size >= WB_SLACK * vfs.writeBehindPages) {
      await cp.idle();
      if (m.dirtyPages.size >= vfs.writeBehindPages) vfs.writeBehind(inode);
    }
  }
  vfs.balance();
  // An O_DIRECT write went around the kernel's page cache, and for an async one that does
  // not grow the file the kernel drops no page (EXPLICIT_INVAL_DATA leaves that to us):
  // drop the range before the write is reported done, so no buffered read sees old bytes.
  if (h.flags & O_DIRECT) await vfs.invalidator.invalInodeNow(ino, off, data.length);
  return data.length;
}

/** close(2) of one descriptor: nothing to do; data reaches the store at release and fsync. */
export function flush(vfs: Vfs, fh: number, ino: number): void {
  vfs.handle(fh, ino);
}

export function release(vfs: Vfs, fh: number, ino: number): void {
  const h = vfs.handle(fh, ino);
  try {
    vfs.writeback(h.inode);
  } finally {
    // The descriptor is gone whatever writeback said (the store's disk may be full):
    // the dirty pages stay for the next writeback, the handle must not.
    vfs.closeHandle(h);
  }
}

export function fsync(vfs: Vfs, fh: number | null, ino: number): void {
  const inode = fh === null ? vfs.inode(ino) : vfs.handle(fh, ino).inode;
  vfs.writeback(inode, true);
}
