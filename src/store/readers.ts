/**
 * A pool of block-reader threads (reader-worker.ts). Reads go to the thread with the
 * fewest outstanding requests. A pool of size 0 reads synchronously on the caller's
 * connection instead (used where threads cannot run, and as a baseline).
 */
import { Worker } from 'node:worker_threads';
import { distFile } from '../util/paths.js';
import type { BlockTable } from './blocks.js';

interface Pending {
  resolve: (v: (Buffer | undefined)[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  outstanding: number;
  /** Requests sent to this thread and not answered yet. */
  ids: Set<number>;
}

export class ReaderPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Reads answered by threads, and the most that were outstanding at once (overlap). */
  readonly stats = { reads: 0, blocks: 0, maxOutstanding: 0, outstanding: 0 };

  constructor(storePath: string, threads: number, private readonly blocks: BlockTable, private readonly log: (msg: string) => void = () => undefined) {
    const script = distFile('store/reader-worker.js');
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(script, { workerData: { path: storePath } });
      const slot: Slot = { worker, outstanding: 0, ids: new Set() };
      worker.on('message', (msg: { id: number; bufs?: (ArrayBuffer | null)[]; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        slot.ids.delete(msg.id);
        slot.outstanding--;
        this.stats.outstanding--;
        if (msg.error !== undefined) p.reject(new Error(`block read: ${msg.error}`));
        else p.resolve(msg.bufs!.map((ab) => (ab ? Buffer.from(ab) : undefined)));
      });
      // A thread that dies (it could not open the store: removed before the thread got to
      // it) would leave every read sent to it waiting forever: drop it, fail what it held,
      // and read on the others, or on the caller's connection when none is left.
      const lost = (why: string) => {
        const at = this.slots.indexOf(slot);
        if (at < 0) return;
        this.slots.splice(at, 1);
        this.log(`block reader thread stopped (${why}); ${this.slots.length} left${this.slots.length ? '' : ', reading on the main connection'}`);
        for (const [id, p] of [...this.pending]) {
          if (!slot.ids.has(id)) continue;
          this.pending.delete(id);
          this.stats.outstanding--;
          p.reject(new Error(`block read: reader thread stopped (${why})`));
        }
      };
      worker.on('error', (e) => lost(e.message));
      worker.on('exit', (code) => lost(`exit ${code}`));
      worker.unref();
      this.slots.push(slot);
    }
  }

  get threads(): number {
    return this.slots.length;
  }

  read(pblocks: number[]): Promise<(Buffer | undefined)[]> {
    if (this.slots.length === 0) return Promise.resolve(pblocks.map((p) => this.blocks.readData(p)));
    let slot = this.slots[0];
    for (const s of this.slots) if (s.outstanding < slot.outstanding) slot = s;
    const id = this.nextId++;
    slot.outstanding++;
    slot.ids.add(id);
    this.stats.reads++;
    this.stats.blocks += pblocks.length;
    this.stats.outstanding++;
    if (this.stats.outstanding > this.stats.maxOutstanding) this.stats.maxOutstanding = this.stats.outstanding;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, pblocks });
    });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
