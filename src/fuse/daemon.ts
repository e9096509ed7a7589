/**
 * The daemon: opens the store, claims it, mounts through the addon and serves until the
 * kernel unmounts (or a signal asks us to), then writes everything back and releases
 * the store. Runs in its own process: nothing here may touch the mountpoint's files.
 */
import { fuseBinding, OP, type MountConfig, type Session } from './binding.js';
import { Dispatcher } from './dispatch.js';
import { NotifyQueue } from './notify.js';
import { serveControl, sweepStaleControls } from './control.js';
import { Store, currentOwner } from '../store/store.js';
import { Vfs } from '../vfs/vfs.js';
import { ReaderPool } from '../store/readers.js';
import { Checkpointer } from '../store/checkpointer.js';
import { fillDebug } from '../cache/fill.js';
import { lockChecker } from '../cache/lockcheck.js';
import { storeFault } from '../store/faults.js';
import { setReadahead } from './readahead.js';
import { sys } from '../sys/index.js';
import v8 from 'node:v8';

export interface DaemonOptions {
  store: string;
  mountpoint: string;
  /** Options for libfuse's mount (allow_other, ro, ...), without pagefs's own. */
  fuseOpts: string[];
  cacheBytes: number;
  debugLocks: boolean;
  unsafeNoInvalidateLock: boolean;
  delays: { afterLookup: number; beforeInsert: number };
  writebackIntervalMs: number;
  /** Dirty data younger than this waits for a later periodic writeback (Vfs.writebackAll); 0: every round takes all. */
  dirtyExpireMs: number;
  /** Block-reader threads (0: read on the event loop's thread). */
  readThreads: number;
  /** MountConfig.pollUs: how long to poll for the next request before sleeping. */
  pollUs: number;
  log: (msg: string) => void;
  /** Called once the kernel has sent INIT: the mount answers. */
  onReady: () => void;
}

/** FUSE_CAP_* bits (fuse_common.h). */
const CAP = {
  ASYNC_READ: 1 << 0,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  AUTO_INVAL_DATA: 1 << 12,
  READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  POSIX_ACL: 1 << 19,
  EXPLICIT_INVAL_DATA: 1 << 25,
};

export function mountConfig(pollUs = 0): MountConfig {
  return {
    ops: Dispatcher.opCodes(),
    // Our own invalidations are explicit (notify_inval_inode); AUTO_INVAL_DATA would drop
    // the kernel's whole cache of a file whenever its mtime moves, i.e. after every write.
    // POSIX_ACL: the kernel enforces ACLs; the mode/ACL bookkeeping is ours (src/vfs/acl.ts).
    // DONT_MASK: the umask or the parent's default ACL, never both, applies to a new
    // inode, so the kernel must leave the mode alone and send the umask beside it.
    want: CAP.ASYNC_READ | CAP.READDIRPLUS | CAP.PARALLEL_DIROPS | CAP.EXPLICIT_INVAL_DATA | CAP.EXPORT_SUPPORT
      | CAP.POSIX_ACL | CAP.DONT_MASK,
    // Splice would hand us pipe buffers we then copy anyway; writeback cache moves size and
    // mtime ownership into the kernel (design.md §5a): off until the page cache is proven.
    unwant: CAP.AUTO_INVAL_DATA | CAP.WRITEBACK_CACHE | CAP.SPLICE_READ | CAP.SPLICE_WRITE | CAP.SPLICE_MOVE | CAP.READDIRPLUS_AUTO,
    maxWrite: 1 << 20,
    maxReadahead: 1 << 20,
    timeGran: 1,
    // Without it every write and fallocate first costs a GETXATTR(security.capability)
    // round trip (the kernel's file_remove_privs); with it the kernel marks a file without
    // set-ID bits and capabilities S_NOSEC and asks no more, and we clear set-ID bits
    // ourselves (src/vfs/killpriv.ts).
    killprivV2: true,
    pollUs,
  };
}

/**
 * How often glibc's free memory goes back to the kernel (malloc_trim). Page Buffers,
 * WRITE payload copies and reader-thread blobs are freed by V8's GC in bursts, in the
 * middle of malloc's arenas, where glibc keeps them resident: measured under
 * scripts/load.mjs (256 MiB cache), RSS tracked what the cache held only with this.
 * A trim blocks the event loop (25 ms on average, 315 ms at most, every second, in a
 * 10-minute load run on a machine at load 25): every 5 seconds, not every second.
 */
const TRIM_INTERVAL_MS = 5000;
const trimStats = { trims: 0, ms: 0, maxMs: 0 };
function trimMalloc(): void {
  const t0 = process.hrtime.bigint();
  sys().mallocTrim();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  trimStats.trims++;
  trimStats.ms += ms;
  trimStats.maxMs = Math.max(trimStats.maxMs, ms);
}

/**
 * How long the kernel may trust what a reply told it, in seconds.
 *
 * Names change only through this kernel: the daemon never adds, renames or removes an
 * entry by itself (an orphan has no name left, and nothing else writes a mounted store),
 * and no lookup result, positive or negative, goes stale behind the kernel's back. So a
 * dentry may stand for long; an hour, not forever, bounds the cost of a mistake in that
 * reasoning. With 1 s, every path the kernel had not walked in the last second cost a
 * LOOKUP again: an rm of files listed a few seconds before was LOOKUP, GETATTR of the
 * directory and UNLINK per file instead of the last two.
 *
 * Attributes stay at 1 s. The daemon changes some where the reply does not tell the
 * kernel (the set-ID bits a write clears under handle_killpriv_v2, the ctime of a flags
 * ioctl); it makes the kernel drop those before replying (src/vfs/staleattrs.ts), and the
 * short timeout bounds the cost of a case that list misses.
 */
const ENTRY_TIMEOUT_S = 3600;
const ATTR_TIMEOUT_S = 1;

export function runDaemon(opts: DaemonOptions): Promise<number> {
  // V8 frees dead ArrayBuffers (WRITE payloads, blobs from SQLite) on a helper thread
  // by default; its free() calls then contend with this thread's malloc() for glibc's
  // arena lock and hand memory back to the kernel in bursts. Measured on this kind of VM:
  // a loop allocating 4 KiB Buffers cost 3.5 us each with the concurrent sweeper and
  // 0.7 us without it, with a tenth of the page faults and of the system time.
  v8.setFlagsFromString('--no-concurrent-array-buffer-sweeping');
  lockChecker.enabled = opts.debugLocks;
  lockChecker.report = (m) => opts.log(`LOCK CHECKER: ${m}`);
  fillDebug.noInvalidateLock = opts.unsafeNoInvalidateLock;
  fillDebug.afterLookupMs = opts.delays.afterLookup;
  fillDebug.beforeInsertMs = opts.delays.beforeInsert;

  const store = Store.open(opts.store, { readonly: false, cmd: 'pagefs mount' });
  store.health.log = opts.log;
  store.claim(currentOwner());
  store.upgrade();
  const fuse = fuseBinding();
  const notify = new NotifyQueue(fuse, opts.log);
  const readers = new ReaderPool(opts.store, opts.readThreads, store.blocks, store.sb.blockSize, opts.log);
  const vfs = new Vfs(store, { cacheBytes: opts.cacheBytes, invalidator: notify, readBlocks: (p) => readers.read(p), readBlocksNow: readers.now, allocSlab: (n) => sys().slab(n) });
  const orphans = vfs.recoverOrphans();
  if (orphans > 0) opts.log(`removed ${orphans} orphaned inode(s): unlinked files the last daemon had not removed (it was killed, or the store refused it at unmount)`);

  let dispatcher: Dispatcher | undefined;
  let checkpointer: Checkpointer | null = null;
  const stopControl = serveControl(process.pid, () => ({
    pid: process.pid,
    store: opts.store,
    mountpoint: opts.mountpoint,
    cache: {
      ...vfs.cache.stats,
      pages: vfs.cache.count,
      dirtyPages: vfs.cache.dirtyCount,
      frameBytes: vfs.cache.frames.bytes,
      idleFrames: vfs.cache.frames.idle,
      capacityPages: vfs.cache.capacityPages,
      pageSize: vfs.cache.pageSize,
    },
    readers: { threads: readers.threads, idleBays: readers.idleBays, ...readers.stats },
    blocks: { used: store.blocks.used, reserved: store.blocks.reserved, capacity: store.blocks.capacity },
    mapCache: store.blocks.mapCacheStats(),
    commits: store.commits,
    checkpoints: checkpointer?.stats ?? null,
    requests: dispatcher?.requestCounts() ?? {},
    inodesInMemory: vfs.icache.size,
    openHandles: vfs.handles.size,
    lockChecker: { enabled: lockChecker.enabled, violations: lockChecker.violations },
    unsafeNoInvalidateLock: fillDebug.noInvalidateLock,
    // Where the daemon's resident memory goes: V8's heap, external memory (page Buffers,
    // WRITE payload copies not yet collected), and the malloc trims (scripts/load.mjs).
    memory: { ...process.memoryUsage(), trim: trimStats },
  }), opts.log);

  void sweepStaleControls(opts.mountpoint).then((gone) => {
    if (gone.length > 0) opts.log(`removed ${gone.length} control socket(s) of pagefs daemons that died without unmounting`);
  });

  return new Promise<number>((resolve) => {
    let session: Session | null = null;
    let timer: NodeJS.Timeout | null = null;
    let trimTimer: NodeJS.Timeout | null = null;
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      if (trimTimer) clearInterval(trimTimer);
      stopControl();
      try {
        vfs.shutdown();
        store.release();
      } catch (e) {
        const fault = storeFault(e);
        opts.log(fault ? `shutdown: the store could not be written, whatever was still dirty is lost: ${fault.message}` : `shutdown: ${(e as Error).stack}`);
        code = 1;
      }
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, onSignal);
      // The other connections go first, so that the writer's close is the store's last:
      // SQLite then copies the whole WAL into the store's file and removes it, and the
      // unmounted store is one file again (with a reader thread still open, the WAL stayed
      // beside it, and the file alone missed what was written).
      void Promise.all([checkpointer?.close(), readers.close()]).then(() => {
        try {
          store.close();
        } catch (e) {
          opts.log(`shutdown: closing the store: ${(e as Error).message}`);
          code = 1;
        }
        resolve(code);
      });
    };
    const dispatch = dispatcher = new Dispatcher(vfs, fuse, {
      attrTimeout: ATTR_TIMEOUT_S,
      entryTimeout: ENTRY_TIMEOUT_S,
      log: opts.log,
      onEvent: (op, args) => {
        if (op === OP.INIT) {
          vfs.posixAcl = (args[1] & CAP.POSIX_ACL) !== 0;
          vfs.killprivV2 = args[6] === 1;
          if (!vfs.posixAcl) opts.log('the kernel did not grant FUSE_POSIX_ACL: system.posix_acl_* xattrs are refused (EOPNOTSUPP)');
          opts.log(`mounted ${opts.store} on ${opts.mountpoint} (FUSE ${args[2]}.${args[3]}, max_write ${args[4]}, max_readahead ${args[5]}, want 0x${(args[1] >>> 0).toString(16)}${vfs.killprivV2 ? ', handle_killpriv_v2' : ''})`);
          // INIT's max_readahead is the kernel's offer, its bdi's current window (128 KiB):
          // the window we want goes to sysfs. Ready only once it is set.
          void setReadahead(opts.mountpoint, mountConfig().maxReadahead).then((msg) => {
            if (msg) opts.log(msg);
            opts.onReady();
          });
        } else if (op === OP.EXIT) {
          opts.log(`unmounted ${opts.mountpoint}`);
          // After an aborted connection the mount is still there, dead: detach it (a no-op after umount).
          if (session) fuse.unmount(session);
          finish(0);
        }
      },
    });
    const onSignal = (sig: string) => {
      opts.log(`${sig}: unmounting ${opts.mountpoint}`);
      if (session) fuse.unmount(session);
    };
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, onSignal);
    const argv = ['pagefs', '-o', ['default_permissions', `fsname=${opts.store}`, 'subtype=pagefs', ...opts.fuseOpts].join(',')];
    try {
      session = fuse.mount(opts.mountpoint, argv, mountConfig(opts.pollUs), dispatch.handle);
    } catch (e) {
      finished = true;
      stopControl();
      store.release();
      store.close();
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, onSignal);
      throw e;
    }
    notify.session = session;
    checkpointer = new Checkpointer(opts.store, store.db, opts.log);
    store.checkpoints = checkpointer;
    const periodic = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        // A store fault: the pages stay dirty, the rows stay waiting, for the next round; said once, not every interval.
        const fault = storeFault(e);
        if (fault) store.health.fault(fault);
        else opts.log(`${what}: ${(e as Error).stack}`);
      }
    };
    timer = setInterval(() => {
      // Apart: a writeback the store refuses must not hold back the reap.
      periodic('periodic writeback', () => vfs.writebackAll(opts.dirtyExpireMs));
      periodic('removing unlinked inodes', () => vfs.reapOrphans());
    }, opts.writebackIntervalMs);
    timer.unref();
    trimTimer = setInterval(trimMalloc, TRIM_INTERVAL_MS);
    trimTimer.unref();
  });
}
