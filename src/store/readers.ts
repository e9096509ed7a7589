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
}

export class ReaderPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Reads answered by threads, and the most that were outstanding at once (overlap). */
  readonly stats = { reads: 0, blocks: 0, maxOutstanding: 0, outstanding: 0 };

  constructor(storePath: string, threads: number, private readonly blocks: BlockTable) {
    const script = distFile('store/reader-worker.js');
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(script, { workerData: { path: storePath } });
      const slot: Slot = { worker, outstanding: 0 };
      worker.on('message', (msg: { id: number; bufs?: (ArrayBuffer | null)[]; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        slot.outstanding--;
        this.stats.outstanding--;
        if (msg.error !== undefined) p.reject(new Error(`block read: ${msg.error}`));
        else p.resolve(msg.bufs!.map((ab) => (ab ? Buffer.from(ab) : undefined)));
      });
      worker.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
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
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}
