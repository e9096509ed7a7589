/** pagefs stat STORE|MOUNTPOINT [--json] */
import fs from 'node:fs';
import { Store } from '../store/store.js';
import { findMount, isPagefsMount } from './mounts.js';
import { formatSize } from '../util/size.js';
import { UserError } from '../util/errors.js';
import { queryControl } from '../fuse/control.js';
import type { CheckpointStats } from '../store/checkpointer.js';
import { GROUP, type MapCacheStats } from '../store/mapcache.js';

export async function statCommand(target: string, opts: { json?: boolean }): Promise<void> {
  let storePath = target;
  let mountpoint: string | null = null;
  let isDir = false;
  try {
    isDir = fs.statSync(target).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`pagefs stat: ${target}: ${(e as Error).message}`);
  }
  if (isDir) {
    const m = findMount(target);
    if (!m || !isPagefsMount(m)) throw new UserError(`pagefs stat: ${target} is a directory but not a pagefs mount`);
    storePath = m.source;
    mountpoint = m.mountpoint;
  }
  const store = Store.open(storePath, { readonly: false, cmd: 'pagefs stat' });
  let live: any = null;
  try {
    const sb = store.sb;
    const b = store.blocks;
    const owner = store.owner();
    const s = {
      store: storePath,
      mountpoint,
      daemonPid: owner?.pid ?? null,
      formatVersion: sb.formatVersion,
      uuid: sb.uuid,
      blockSize: sb.blockSize,
      capacityBlocks: sb.capacityBlocks,
      capacityBytes: sb.capacityBlocks * sb.blockSize,
      usedBlocks: b.used,
      sharedBlocks: b.sharedCount(),
      freeBlocks: sb.capacityBlocks - b.used,
      inodes: store.inodes.count(),
      live: null as any,
    };
    if (owner && mountpoint) {
      try {
        live = await queryControl(owner.pid);
      } catch (e) {
        throw new UserError(`pagefs stat: daemon pid ${owner.pid} did not answer on its control socket: ${(e as Error).message}`);
      }
      s.live = live;
      // The daemon's in-memory counts are ahead of the store's committed ones.
      s.usedBlocks = live.blocks.used;
      s.freeBlocks = live.blocks.capacity - live.blocks.used - live.blocks.reserved;
    }
    if (opts.json) {
      process.stdout.write(JSON.stringify(s) + '\n');
      return;
    }
    const lines = [
      ['store', storePath],
      ['mounted', owner ? `on ${mountpoint ?? '?'} by daemon pid ${owner.pid}` : 'no'],
      ['format', `version ${s.formatVersion}, uuid ${s.uuid}`],
      ['block size', `${s.blockSize} bytes`],
      ['capacity', `${formatSize(s.capacityBytes)} (${s.capacityBlocks} blocks)`],
      ['used', `${s.usedBlocks} blocks (${formatSize(s.usedBlocks * s.blockSize)})`],
      ['shared', `${s.sharedBlocks} blocks`],
      ['free', `${s.freeBlocks} blocks (${formatSize(s.freeBlocks * s.blockSize)})`],
      ['inodes', String(s.inodes)],
    ];
    if (live) {
      const c = live.cache;
      const lookups = c.hits + c.misses;
      lines.push(
        ['reserved', `${live.blocks.reserved} blocks (dirty pages waiting for writeback)`],
        ['commits', `${live.commits ?? 0} store transactions committed since the mount`],
        ['checkpoint', checkpointLine(live.checkpoints)],
        ['cache', `${c.pages} of ${c.capacityPages} pages of ${c.pageSize} bytes, ${c.dirtyPages} dirty`],
        ['hits', `${c.hits} hits, ${c.misses} misses (${lookups ? ((100 * c.hits) / lookups).toFixed(1) : '0.0'}% hit rate), ${c.readaheadPages} readahead pages`],
        ['evictions', `${c.evictions} evictions, ${c.droppedBehind ?? 0} pages dropped behind streaming writes, ${c.droppedBehindReads ?? 0} behind sequential reads, ${c.invalidations} invalidations`],
        ['writeback', `${c.writebacks} writebacks of ${c.writebackPages} pages`],
        ['locks', `${c.lock.waits} waits, ${(c.lock.waitNs / 1e6).toFixed(1)} ms waiting; checker ${live.lockChecker.enabled ? 'on' : 'off'}, ${live.lockChecker.violations} violations`],
        ['block map', mapCacheLine(live.mapCache)],
        ['readers', `${live.readers.threads} threads, ${live.readers.reads} reads of ${live.readers.blocks} blocks, at most ${live.readers.maxOutstanding} at once, ${live.readers.stagedReads ?? 0} through the staging bays; ${live.readers.syncReads ?? 0} small reads on the main thread`],
      );
      const reqs = Object.entries(live.requests ?? {}) as [string, number][];
      if (reqs.length) lines.push(['requests', reqs.sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(', ')]);
      const mem = live.memory;
      if (mem) {
        lines.push(['memory', `rss ${formatSize(mem.rss)}, JS heap ${formatSize(mem.heapUsed)} of ${formatSize(mem.heapTotal)}, ` +
          `external ${formatSize(mem.external)} (of which ArrayBuffers ${formatSize(mem.arrayBuffers)})` +
          (mem.trim ? `; ${mem.trim.trims} malloc trims, ${mem.trim.ms.toFixed(0)} ms in all, at most ${mem.trim.maxMs.toFixed(1)} ms` : '')]);
      }
      if (live.unsafeNoInvalidateLock) lines.push(['WARNING', 'mounted with --unsafe-no-invalidate-lock: reads may return stale data']);
    } else if (owner) {
      lines.push(['note', 'the daemon owns this store; stat its mountpoint for live figures']);
    }
    for (const [k, v] of lines) process.stdout.write(`${(k + ':').padEnd(12)}${v}\n`);
  } finally {
    store.close();
  }
}

/** The fills' block-map cache (src/store/mapcache.ts); absent from daemons older than it. */
function mapCacheLine(m: (MapCacheStats & { groups: number }) | undefined): string {
  if (!m) return 'not reported by this daemon';
  return `groups of ${GROUP} blocks cached for reads: ${m.groups}; groups found cached by lookups: ${m.hits}; groups loaded from the store: ${m.loads}; lookups not cached: ${m.bypasses}; emptied: ${m.resets} times`;
}

/** What the checkpoint thread did (src/store/checkpointer.ts). */
function checkpointLine(c: CheckpointStats | null | undefined): string {
  if (!c) return 'the writer makes its own (no checkpoint thread)';
  return `${c.checkpoints} on the checkpoint thread, ${c.ms.toFixed(0)} ms in all, ${c.failures} failed; WAL at most ${c.maxWalFrames} frames, ` +
    `${c.behind} left in it by the last` + (c.running ? '' : '; the thread stopped, the writer makes its own');
}
