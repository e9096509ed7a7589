/** The block-reader threads: what they read is what the caller's connection reads, and a thread that dies must not take the reads it held with it. */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { newStore } from '../helpers/store.js';
import { ReaderPool, SYNC_MAX_BYTES, BAY_BYTES } from '../../src/store/readers.js';

const BS = 4096;

describe('ReaderPool', () => {
  it('reads runs, single blocks, repeats and blocks with no row as the caller\'s connection does', async () => {
    const { file, store } = newStore('readers', BS);
    // Every block's bytes name it (and hold NUL bytes); blocks 20..29 and 50 have no
    // row, and block 70's row is short (only a damaged store has one).
    const block = (p: number) => { const b = Buffer.alloc(BS); for (let i = 0; i < BS; i += 4) b.writeUInt32LE(p * 100_000 + i, i); return b; };
    store.txn(() => {
      for (let p = 1; p <= 100; p++) if ((p < 20 || p > 29) && p !== 50) store.blocks.writeData(p, p === 70 ? block(p).subarray(0, 100) : block(p));
    });
    const pool = new ReaderPool(file, 2, store.blocks, BS);
    try {
      const asks = [
        Array.from({ length: 64 }, (_, i) => i + 1), // one run through a gap
        [90, 3, 45, 46, 47, 50, 7, 7, 99, 98, 21, 1, 2, 100], // singles, short runs, a repeat, no rows
        Array.from({ length: 30 }, (_, i) => 100 - i * 3),
        Array.from({ length: 19 }, (_, i) => 80 - i), // descending singles
        Array.from({ length: 12 }, (_, i) => 65 + i), // a run through the short row
        Array.from({ length: 19 }, (_, i) => 1 + i), // a run of whole rows
      ];
      const got = await Promise.all(asks.map((a) => pool.read(a)));
      expect(pool.stats.reads).toBe(asks.length); // all went to the threads
      for (let k = 0; k < asks.length; k++) {
        expect(got[k].length).toBe(asks[k].length);
        asks[k].forEach((p, i) => {
          const want = store.blocks.readData(p);
          if (want === undefined) expect(got[k][i], `block ${p}`).toBeUndefined();
          else expect(got[k][i]!.equals(want), `block ${p}`).toBe(true);
        });
      }
    } finally {
      await pool.close();
      store.db.close();
    }
  }, 30_000);

  it('keeps a read\'s staged bytes until it is released; reads beyond the bays, or larger than one, come back as buffers', async () => {
    const { file, store } = newStore('readers', BS, 128 << 20);
    const big = BAY_BYTES / BS + 1;
    store.txn(() => { for (let p = 1; p <= 1100; p++) store.blocks.writeData(p, Buffer.alloc(BS, p % 256)); });
    const pool = new ReaderPool(file, 1, store.blocks, BS);
    const run = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i);
    const check = (got: (Buffer | undefined)[], pblocks: number[]) => {
      expect(got.length).toBe(pblocks.length);
      pblocks.forEach((p, i) => expect(got[i]!.equals(Buffer.alloc(BS, p % 256)), `block ${p}`).toBe(true));
    };
    try {
      const idle = pool.idleBays;
      expect(idle).toBe(4);
      const asks = [run(1, 64), run(100, 64), run(200, 64), run(300, 64), run(400, 64), run(500, 64)];
      // Six at once: four in the bays, two as buffers.
      const held = await Promise.all(asks.map((a) => pool.read(a)));
      expect(pool.stats.stagedReads).toBe(4);
      expect(held.filter((d) => d.release).length).toBe(4);
      expect(pool.idleBays).toBe(0);
      // Every bay is still held: more reads come as buffers and overwrite nothing.
      check(await pool.read(run(600, 64)), run(600, 64));
      expect(pool.stats.stagedReads).toBe(4);
      held.forEach((d, k) => check(d, asks[k]));
      // Released, the bays are written again, and what was read into them before is gone.
      const first = held.find((d) => d.release)!;
      const firstAsk = asks[held.indexOf(first)];
      for (const d of held) d.release?.();
      expect(pool.idleBays).toBe(idle);
      const later = await Promise.all([run(700, 64), run(800, 64), run(900, 64), run(1000, 64)].map((a) => pool.read(a)));
      expect(pool.stats.stagedReads).toBe(8);
      expect(first.some((b, i) => !b!.equals(Buffer.alloc(BS, firstAsk[i] % 256)))).toBe(true);
      for (const d of later) d.release?.();
      // Larger than a bay: buffers, with a bay free.
      const whole = await pool.read(run(1, big));
      expect(whole.release).toBeUndefined();
      check(whole, run(1, big));
      expect(pool.stats.stagedReads).toBe(8);
      // Released twice, a bay is given back once.
      const once = await pool.read(run(1, 64));
      once.release!();
      once.release!();
      expect(pool.idleBays).toBe(idle);
    } finally {
      await pool.close();
      store.db.close();
    }
  }, 30_000);

  it('sends again the reads of threads that die (here: they cannot open the store), and names why', async () => {
    const { file, store } = newStore('readers', BS);
    const n = (SYNC_MAX_BYTES / BS) * 4; // large enough to go to a thread
    const pblocks = Array.from({ length: n }, (_, i) => i + 1);
    store.txn(() => { for (const p of pblocks) store.blocks.writeData(p, Buffer.alloc(BS, p)); });
    const lines: string[] = [];
    // The threads are given a path with no store, as when the store is removed before a
    // thread of a loaded machine gets to open it; the caller's own connection still reads.
    const pool = new ReaderPool(path.join(path.dirname(file), 'gone.db'), 2, store.blocks, BS, (m) => lines.push(m));
    try {
      const reads = await Promise.all([pool.read(pblocks), pool.read(pblocks.slice(1)), pool.read(pblocks)]);
      for (const got of reads) {
        for (const b of got) expect(b!.equals(Buffer.alloc(BS, b![0]))).toBe(true);
      }
      expect(reads[0].map((b) => b![0])).toEqual(pblocks);
      expect(reads[1].map((b) => b![0])).toEqual(pblocks.slice(1));
      expect(pool.threads).toBe(0);
      expect(pool.stats.outstanding).toBe(0);
      expect(lines.length).toBeGreaterThanOrEqual(2);
      for (const l of lines) {
        expect(l).toMatch(/^block reader thread stopped \(cannot open .*gone\.db: .*\(SQLITE_CANTOPEN\)\); \d left/);
      }
      // With no thread left, reads go on on the caller's connection.
      expect((await pool.read(pblocks)).map((b) => b![0])).toEqual(pblocks);
    } finally {
      await pool.close();
      store.db.close();
    }
  }, 30_000);
});
