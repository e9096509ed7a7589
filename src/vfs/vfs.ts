/**
 * The filesystem's shared state: the store, the page cache, the inode cache and the
 * open handles. Op families (entry.ts, attr.ts, namei.ts, readdir.ts, io.ts, alloc.ts,
 * copy.ts, xattr.ts) are functions over a Vfs; they never call one another, and what
 * they share lives here.
 *
 * Inode lifetime: an inode stays in memory while the kernel holds lookups on it or a
 * handle is open. When both reach zero its dirty pages are written back and it leaves
 * memory; if its link count is zero too, its blocks, xattrs and row are removed (an
 * unlinked file lives until its last close, as POSIX requires): at once, in one
 * transaction, when it maps blocks, so that their space is free when the FORGET or
 * RELEASE is done; in a later batch when it maps none (reapOrphans).
 */
import type { Store } from '../store/store.js';
import type { InodeRecord } from '../store/inodes.js';
import { ROOT_INO } from '../store/schema.js';
import { PageCache } from '../cache/pagecache.js';
import { writebackMapping } from '../cache/writeback.js';
import type { BlockSource } from '../cache/fill.js';
import { SYNC_MAX_BYTES } from '../store/readers.js';
import { Inode, S_IFMT, S_IFREG } from './inode.js';
import { fsErr } from '../util/errors.js';
import { storeFault } from '../store/faults.js';
import { nowParts } from '../store/open.js';
import type { SlabAllocator } from '../cache/frames.js';

/**
 * The most unlinked inodes without blocks whose rows wait for one transaction
 * (reapOrphans). The daemon also reaps them every writeback interval and at unmount.
 */
const REAP_BATCH = 1024;

/** How much a file written at its end may hold dirty before its writeback starts (io.write); at most a quarter of the cache. */
const WRITE_BEHIND_BYTES = 32 << 20;

/** Kernel-cache notifications the domain asks for; src/fuse/ sends them out of band. */
export interface Invalidator {
  /** Queues a drop of the kernel's pages [off, off + len) (len 0: to EOF), sent after the current reply. */
  invalInode(ino: number, off: number, len: number): void;
  /** The same, sent now; resolves once the kernel has written back and dropped the pages. Never call it holding a lock WRITE needs. */
  invalInodeNow(ino: number, off: number, len: number): Promise<void>;
  invalEntry(parent: number, name: Buffer): void;
  /** Puts `data` into the kernel's page cache at `off` now, raising its cached size to off + length if larger (notify_store). */
  storeKernel(ino: number, off: number, data: Buffer): Promise<void>;
}

export interface Caller {
  uid: number;
  gid: number;
  pid: number;
  umask: number;
  /**
   * Inodes whose attributes this request changed beyond what its reply tells the kernel
   * (the set-ID bits a write clears, the ctime of a flags ioctl): the kernel would show its
   * cached ones until the attribute timeout, so the dispatcher makes it drop them before
   * replying (staleattrs.ts).
   */
  staleAttrs?: number[];
}

export interface Handle {
  fh: number;
  inode: Inode;
  flags: number;
}

export interface VfsOptions {
  cacheBytes: number;
  invalidator?: Invalidator;
  /** Reads block bytes (a ReaderPool); by default synchronously on the store's connection. */
  readBlocks?: BlockSource['read'];
  /** The reads it answers at once (the pool's `now`); by default those of at most SYNC_MAX_BYTES, as the pool's. */
  readBlocksNow?: BlockSource['now'];
  /** Memory for the page cache's frames (the daemon's: huge-page slabs from the addon); by default Buffers. */
  allocSlab?: SlabAllocator;
}

export const NAME_MAX = 255;
export const PATH_MAX = 4096;
export const LINK_MAX = 65000;

export class Vfs {
  readonly cache: PageCache;
  /** Dirty pages of a file being written at its end that start its writeback (io.write). */
  readonly writeBehindPages: number;
  readonly src: BlockSource;
  readonly icache = new Map<number, Inode>();
  readonly handles = new Map<number, Handle>();
  readonly blockSize: number;
  /**
   * ext4's s_maxbytes for the same block size: 2^32 - 1 blocks (its extents start at a
   * 32-bit block number and it keeps the last block free so an extent can end there), so
   * 16 TiB - 4 KiB with 4 KiB blocks. EFBIG at and past it, as on ext4.
   */
  readonly maxFileSize: number;
  invalidator: Invalidator;
  /** The kernel enforces POSIX ACLs (FUSE_POSIX_ACL granted at INIT); without it acl.ts is off. */
  posixAcl = true;
  /** The kernel leaves clearing set-ID bits to us (HANDLE_KILLPRIV_V2 at INIT; killpriv.ts). */
  killprivV2 = false;
  private nextFh = 1;
  /** Unlinked inodes nobody holds that map no block: orphans in the store (I7) until reapOrphans removes their rows. */
  private readonly doomed = new Set<number>();

  constructor(readonly store: Store, opts: VfsOptions) {
    this.blockSize = store.sb.blockSize;
    this.maxFileSize = this.blockSize * (2 ** 32 - 1);
    this.cache = new PageCache(Math.max(4096, this.blockSize), this.blockSize, opts.cacheBytes, opts.allocSlab);
    this.writeBehindPages = Math.max(16, Math.min(this.cache.capacityPages >> 2, WRITE_BEHIND_BYTES / this.cache.pageSize));
    this.invalidator = opts.invalidator ?? { invalInode() {}, async invalInodeNow() {}, invalEntry() {}, async storeKernel() {} };
    const blocks = store.blocks;
    this.src = {
      lookup: (ino, first, last) => blocks.fillMap(ino, first, last),
      read: opts.readBlocks ?? (async (pblocks) => pblocks.map((p) => blocks.readData(p))),
      now: opts.readBlocksNow ?? { max: () => Math.floor(SYNC_MAX_BYTES / this.blockSize), read: (pblocks) => pblocks.map((p) => blocks.readData(p)) },
    };
  }

  /**
   * Removes orphans left by a daemon that died with unlinked files open or waiting for
   * reapOrphans (invariant I7), in one transaction: after an rm of many empty files that
   * can be thousands.
   */
  recoverOrphans(): number {
    return this.destroyAll(this.store.inodes.orphans());
  }

  /** The inode, loading it from the store; ENOENT if the kernel names one that is gone. */
  inode(ino: number): Inode {
    let inode = this.icache.get(ino);
    if (!inode) {
      const rec = this.store.inodes.get(ino);
      // An unlinked inode lives only while it is in memory: a row with no link left that
      // is not (an orphan whose removal waits for reapOrphans) is gone, and a file handle
      // (open_by_handle_at, a LOOKUP of ".") must not bring it back: ESTALE, as on ext4.
      if (!rec || rec.nlink === 0) throw fsErr('ENOENT', `no inode ${ino}`);
      inode = this.adopt(rec);
    }
    return inode;
  }

  adopt(rec: InodeRecord): Inode {
    const mapping = (rec.mode & S_IFMT) === S_IFREG ? this.cache.newMapping(rec.ino) : null;
    const inode = new Inode(rec, mapping);
    this.icache.set(rec.ino, inode);
    return inode;
  }

  /** Creates an inode row (inside the caller's transaction) and returns it in memory. */
  createInode(caller: Caller, parent: Inode, mode: number, rdev: number, target: Buffer | null): Inode {
    const [s, ns] = nowParts();
    let gid = caller.gid;
    // BSD group semantics under a set-group-ID directory, as ext4 (grpid off) does.
    if (parent.rec.mode & 0o2000) {
      gid = parent.rec.gid;
      if ((mode & S_IFMT) === 0o040000) mode |= 0o2000;
    }
    const rec = {
      generation: this.store.newGeneration(), mode, nlink: (mode & S_IFMT) === 0o040000 ? 2 : 1,
      uid: caller.uid, gid, rdev, size: target ? target.length : 0, flags: 0,
      atimeS: s, atimeNs: ns, mtimeS: s, mtimeNs: ns, ctimeS: s, ctimeNs: ns, btimeS: s, btimeNs: ns, target,
    };
    const ino = this.store.inodes.insert(rec, this.store.newIno());
    this.store.blocks.countNew(ino);
    return this.adopt({ ino, ...rec });
  }

  /**
   * A store transaction that changes these inodes: if it fails (a store fault rolled it
   * back), their in-memory records are put back too, so memory never holds a link count
   * or mode the store does not (a later persist would write it, and fsck would find it).
   */
  change<T>(inodes: (Inode | null)[], fn: () => T): T {
    const saved = [...new Set(inodes)].filter((i): i is Inode => i !== null).map((i) => ({ i, rec: { ...i.rec }, metaDirty: i.metaDirty, nlookup: i.nlookup }));
    try {
      return this.store.txn(fn);
    } catch (e) {
      for (const { i, rec, metaDirty, nlookup } of saved) {
        Object.assign(i.rec, rec);
        i.metaDirty = metaDirty;
        i.nlookup = nlookup;
      }
      throw e;
    }
  }

  /** Writes the inode row; call inside a transaction or alone (its own transaction). */
  persist(inode: Inode): void {
    this.store.inodes.update(inode.rec);
    inode.metaDirty = false;
  }

  newHandle(inode: Inode, flags: number): Handle {
    const h = { fh: this.nextFh++, inode, flags };
    this.handles.set(h.fh, h);
    inode.opens++;
    return h;
  }

  handle(fh: number | null, ino: number): Handle {
    const h = fh === null ? undefined : this.handles.get(fh);
    if (!h || h.inode.ino !== ino) throw fsErr('EBADF', `no handle ${fh} for inode ${ino}`);
    return h;
  }

  closeHandle(h: Handle): void {
    if (!this.handles.delete(h.fh)) return;
    h.inode.opens--;
    this.release(h.inode);
  }

  /** Writes back an inode's dirty pages and its row, in one transaction. */
  writeback(inode: Inode, durable = false): void {
    const m = inode.mapping;
    if (!m || m.dirtyPages.size === 0) {
      if (durable) this.store.durably(() => this.persist(inode));
      else if (inode.metaDirty) this.store.txn(() => this.persist(inode)); // txn: it checks the store is still there
      return;
    }
    writebackMapping(m, this.store, {
      persist: () => this.persist(inode),
      durable,
      endBlock: Math.ceil(inode.rec.size / this.blockSize),
    });
  }

  /**
   * Write-behind of a file being written at its end (io.write), then drop-behind of the
   * pages it wrote back, the last one kept for the next write.
   */
  writeBehind(inode: Inode): void {
    const m = inode.mapping!;
    const written = [...m.dirtyPages];
    this.writeback(inode);
    this.cache.dropBehind(m, written, Math.floor(Math.max(0, inode.rec.size - 1) / this.cache.pageSize));
  }

  /** Keeps the cache under its cap, writing back the coldest dirty mappings when clean pages are not enough. */
  balance(): void {
    if (this.cache.shrink() === 0) return;
    for (const inode of this.icache.values()) {
      if (inode.mapping && inode.mapping.dirtyPages.size > 0) this.writeback(inode);
      if (this.cache.shrink() === 0) return;
    }
  }

  /**
   * Writes back every inode, except (for the periodic writeback) those whose mapping
   * became dirty less than `expireMs` ago (Mapping.dirtiedAt), which wait for a later
   * round, their fsync, close or the cache cap: pages written again and again (random
   * overwrites) then go to the store once instead of once per round. 0 takes them all.
   */
  writebackAll(expireMs = 0): void {
    const cutoff = performance.now() - expireMs;
    for (const inode of this.icache.values()) {
      const m = inode.mapping;
      if (expireMs > 0 && m && m.dirtyPages.size > 0 && m.dirtiedAt > cutoff) continue;
      this.writeback(inode);
    }
  }

  /** Called when a lookup count or an open count drops: frees what nobody uses. */
  release(inode: Inode): void {
    if (inode.nlookup > 0 || inode.opens > 0 || inode.ino === ROOT_INO) return;
    if (inode.rec.nlink === 0) {
      this.dropPages(inode);
      // An orphan that maps no block frees no space when it goes, only its row (and any
      // xattrs): that can wait and go with others in one commit. An rm of many files
      // otherwise commits twice per file, once for the name and once here at FORGET.
      // Meanwhile the row is an orphan in the store, which a crash leaves valid (I7).
      if (this.store.blocks.countMapped(inode.ino) === 0) this.doomed.add(inode.ino);
      else this.store.txn(() => this.destroyLocked(inode.ino));
    } else {
      this.writeback(inode);
      this.dropPages(inode);
      this.store.blocks.forgetCached(inode.ino);
    }
    this.icache.delete(inode.ino);
    // After the inode left memory: a batch the store refuses now stays waiting, and this
    // inode with it, but nothing of it is left in the inode cache.
    if (this.doomed.size >= REAP_BATCH) this.reapOrphans();
  }

  private dropPages(inode: Inode): void {
    const m = inode.mapping;
    if (!m) return;
    for (const page of [...m.pages.values()]) {
      if (page.reserved) {
        let n = 0;
        for (let b = page.reserved; b; b &= b - 1) n++;
        this.store.blocks.unreserve(n);
        page.reserved = 0;
      }
      this.cache.remove(page);
    }
  }

  /** Unlinked inodes whose rows are still in the store, waiting for reapOrphans; statfs does not count them. */
  get orphansWaiting(): number {
    return this.doomed.size;
  }

  /**
   * Removes the rows of the unlinked inodes release() left waiting, in one transaction.
   * If it fails (a store fault) they stay waiting for the next call.
   */
  reapOrphans(): number {
    const n = this.destroyAll([...this.doomed]);
    this.doomed.clear();
    return n;
  }

  /** Removes these unlinked inodes in one transaction (none: no transaction); returns how many. */
  private destroyAll(inos: number[]): number {
    if (inos.length > 0) {
      this.store.txn(() => {
        for (const ino of inos) this.destroyLocked(ino);
      });
    }
    return inos.length;
  }

  /** Removes an unlinked inode's blocks, xattrs and row, in the caller's transaction. */
  private destroyLocked(ino: number): void {
    this.store.assertInTxn('destroying an inode');
    this.store.blocks.unmapRange(ino, 0, Number.MAX_SAFE_INTEGER);
    this.store.xattrs.removeAll(ino);
    this.store.inodes.delete(ino);
    this.store.blocks.forgetInode(ino);
  }

  /** Flushes everything (unmount, SIGTERM): every dirty page reaches the store durably. */
  shutdown(): void {
    this.writebackAll();
    try {
      this.reapOrphans();
    } catch (e) {
      // Rows the store cannot take now stay orphans, which the next mount removes (I7):
      // nothing is lost, so no store fault here makes the unmount a failure.
      if (!storeFault(e)) throw e;
    }
    this.store.durably(() => undefined);
  }
}
