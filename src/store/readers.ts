/**
 * A pool of block-reader threads (reader-worker.ts). Reads go to the thread with the
 * fewest outstanding requests. A pool of size 0 reads synchronously on the caller's
 * connection instead (used where threads cannot run, and as a baseline).
 *
 * Small reads (at most SYNC_MAX_BYTES) are read synchronously on the caller's connection
 * even with threads: the trip to a thread and back (two thread wake-ups and two
 * messages) cost more than the read. Measured with fio on a cold 64 MiB file, 4 KiB
 * random reads: median completion latency 31-36 us synchronous, 57-63 us through a
 * thread. Large reads (readahead, sequential) still go to the threads, where they overlap
 * other requests. Either way the caller holds the invalidate_lock across its lookup and
 * this read; nothing else changes.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { distFile } from '../util/paths.js';
import type { BlockTable } from './blocks.js';

/**
 * What a read gives back: each block's bytes (undefined for a block with no row). Bytes a
 * thread read may be views of its staging area, valid until `release` is called, which
 * the reader calls once it has copied them (fill.ts, right after its insert).
 */
export type BlockData = (Buffer | undefined)[] & { release?: () => void };

interface Pending {
  resolve: (v: BlockData) => void;
  reject: (e: Error) => void;
  /** Kept so that a read held by a thread that died can be sent again. */
  pblocks: number[];
  /** The staging bay the thread writes the bytes into, or -1: they come as transferred buffers. */
  bay: number;
}

interface Slot {
  worker: Worker;
  outstanding: number;
  /** Requests sent to this thread and not answered yet. */
  ids: Set<number>;
  /** Bays of its staging area (BAYS of BAY_BYTES, shared with the thread) no read holds. */
  freeBays: number[];
}

/**
 * A thread writes the blocks it read into a staging area it shares with the caller, one
 * bay per read in flight, instead of handing back a buffer per block: those were
 * allocated by the thread and freed by the caller's garbage collector, and the thread's
 * malloc then kept growing its heap into fresh memory (malloc and sysmalloc were a third
 * of the thread's samples in a profile of a cold sequential read). A read larger than a
 * bay, or sent while all of a thread's bays are held, still comes back as buffers. A bay
 * holds the largest fill of a read: 1 MiB requests plus 256 KiB of readahead.
 */
export const BAY_BYTES = 1280 << 10;
const BAYS = 4;

/**
 * How many reader threads a mount has unless told: one on a machine with two CPUs or
 * fewer, two otherwise. The main thread needs a CPU of its own; on two CPUs a second
 * reader thread only competes with it and with the process reading: 1 GiB cold
 * sequential read (fio scripts/fio/seqread.fio, tmpfs store, 256 MiB cache), 5
 * alternating runs on 2 CPUs, 2 threads 443 MiB/s against 1 thread 484 (medians; the one
 * thread faster in every pair), daemon CPU 3.5 against 3.3 s. Cold random 4 KiB reads
 * through mmap did not change (15,300 against 14,200-15,300 IOPS). Machines with more
 * CPUs were not measured and keep the two threads they had.
 */
export function defaultReaderThreads(cpus = os.availableParallelism()): number {
  return cpus <= 2 ? 1 : 2;
}

/** Reads of at most this many bytes of blocks skip the threads (one 16 KiB run, or one page of 1 KiB blocks). */
export const SYNC_MAX_BYTES = 16384;

export class ReaderPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Reads answered by threads, and the most that were outstanding at once (overlap). */
  readonly stats = { reads: 0, blocks: 0, maxOutstanding: 0, outstanding: 0, syncReads: 0, stagedReads: 0 };
  private readonly syncMaxBlocks: number;

  constructor(storePath: string, threads: number, private readonly blocks: BlockTable, private readonly blockSize: number,
    private readonly log: (msg: string) => void = () => undefined) {
    this.syncMaxBlocks = Math.floor(SYNC_MAX_BYTES / blockSize);
    const script = distFile('store/reader-worker.js');
    for (let i = 0; i < threads; i++) {
      const stage = new SharedArrayBuffer(BAYS * BAY_BYTES);
      const worker = new Worker(script, { workerData: { path: storePath, stage, bayBytes: BAY_BYTES, blockSize } });
      const slot: Slot = { worker, outstanding: 0, ids: new Set(), freeBays: Array.from({ length: BAYS }, (_, i) => i) };
      worker.on('message', (msg: { id: number; bufs?: (ArrayBuffer | null)[]; lens?: Int32Array; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        slot.ids.delete(msg.id);
        slot.outstanding--;
        this.stats.outstanding--;
        const freeBay = () => { if (p.bay >= 0) slot.freeBays.push(p.bay); };
        if (msg.error !== undefined) {
          freeBay();
          p.reject(new Error(`block read: ${msg.error}`));
        } else if (msg.lens) {
          const base = p.bay * BAY_BYTES;
          const out: BlockData = Array.from(msg.lens, (len, i) => (len < 0 ? undefined : Buffer.from(stage, base + i * blockSize, len)));
          let held = true;
          out.release = () => { if (held) { held = false; freeBay(); } };
          p.resolve(out);
        } else {
          freeBay();
          p.resolve(msg.bufs!.map((ab) => (ab ? Buffer.from(ab) : undefined)));
        }
      });
      // A thread that dies (it could not open the store: removed before the thread got to
      // it, which a loaded machine makes likely) would leave every read sent to it waiting
      // forever: drop it and send what it held again, to the others or to the caller's
      // connection when none is left. The caller still holds its invalidate_lock across the
      // lookup and this read, so reading again elsewhere reads the same blocks.
      const lost = (why: string) => {
        const at = this.slots.indexOf(slot);
        if (at < 0) return;
        this.slots.splice(at, 1);
        this.log(`block reader thread stopped (${why}); ${this.slots.length} left${this.slots.length ? '' : ', reading on the main connection'}`);
        for (const id of slot.ids) {
          const p = this.pending.get(id);
          if (!p) continue;
          this.pending.delete(id);
          this.stats.outstanding--;
          this.read(p.pblocks).then(p.resolve, p.reject);
        }
        slot.ids.clear();
      };
      // A worker's uncaught throw arrives as a copy of whatever was thrown, not always an Error.
      worker.on('error', (e: unknown) => lost(e instanceof Error ? e.message : JSON.stringify(e)));
      worker.on('exit', (code) => lost(`exit ${code}`));
      worker.unref();
      this.slots.push(slot);
    }
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Staging bays no read holds, over all threads (all of them once every read was released). */
  get idleBays(): number {
    let n = 0;
    for (const s of this.slots) n += s.freeBays.length;
    return n;
  }

  /** Reads answered on the caller's connection at once (BlockSource.now): the small ones, or all when no thread is left. */
  readonly now = {
    max: (): number => (this.slots.length === 0 ? Infinity : this.syncMaxBlocks),
    read: (pblocks: number[]): (Buffer | undefined)[] => {
      this.stats.syncReads++;
      return pblocks.map((p) => this.blocks.readData(p));
    },
  };

  read(pblocks: number[]): Promise<BlockData> {
    if (pblocks.length <= this.now.max()) return Promise.resolve(this.now.read(pblocks));
    let slot = this.slots[0];
    for (const s of this.slots) if (s.outstanding < slot.outstanding) slot = s;
    const bay = pblocks.length * this.blockSize <= BAY_BYTES ? slot.freeBays.pop() ?? -1 : -1;
    if (bay >= 0) this.stats.stagedReads++;
    const id = this.nextId++;
    slot.outstanding++;
    slot.ids.add(id);
    this.stats.reads++;
    this.stats.blocks += pblocks.length;
    this.stats.outstanding++;
    if (this.stats.outstanding > this.stats.maxOutstanding) this.stats.maxOutstanding = this.stats.outstanding;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, pblocks, bay });
      slot.worker.postMessage({ id, pblocks, bay });
    });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
