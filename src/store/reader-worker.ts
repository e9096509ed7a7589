/**
 * A block-reader thread: its own read-only SQLite connection, so that block reads of
 * one request overlap the event loop's work on others (and the window between a fill's
 * block-map lookup and its block read is real, which is what the invalidate_lock
 * guards). Each message asks for blocks by physical number; the thread writes their bytes
 * into the bay of the staging area the message names (readers.ts), or, without one,
 * hands them back as transferred ArrayBuffers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openWorkerDb } from './worker-db.js';

// Read-only, with a small cache: the data blocks read here are cached above, in the page
// cache, so SQLite's cache only needs the b-tree's inner pages.
const db = openWorkerDb(workerData.path as string, { readonly: true, cacheKiB: 4096 });
const one = db.prepare('SELECT bytes FROM data WHERE pblock = ?').pluck();
// A sequentially written file has consecutive physical blocks: one range scan walks the
// b-tree's leaves instead of descending from the root for each block (half the cost per
// block, measured on a 256 MiB store). The scan takes the bytes alone, all at once: when
// every block of the range has a row (the usual case), the i-th row is the i-th block.
// Rows of [pblock, bytes] from an iterator cost a row array and an iterator result per
// block: reading a 1 GiB store's blocks 320 at a time (scripts outside the daemon,
// /dev/shm), 942-1,001 ms as such rows against 732-831 ms as bytes alone.
const rangeBytes = db.prepare('SELECT bytes FROM data WHERE pblock >= ? AND pblock <= ? ORDER BY pblock').pluck();
// Only for a range with a block that has no row (allocated by fallocate, never written).
const rangeRows = db.prepare('SELECT pblock, bytes FROM data WHERE pblock >= ? AND pblock <= ?').raw();

/** The bytes of each block in `pblocks`, in order (undefined for a block with no row). */
function readAll(pblocks: number[]): (Buffer | undefined)[] {
  const out: (Buffer | undefined)[] = new Array(pblocks.length);
  for (let i = 0; i < pblocks.length;) {
    let j = i + 1;
    while (j < pblocks.length && pblocks[j] === pblocks[j - 1] + 1) j++;
    if (j - i === 1) {
      out[i] = one.get(pblocks[i]) as Buffer | undefined;
    } else {
      const bytes = rangeBytes.all(pblocks[i], pblocks[j - 1]) as Buffer[];
      if (bytes.length === j - i) {
        for (let k = 0; k < bytes.length; k++) out[i + k] = bytes[k];
      } else {
        for (const [p, b] of rangeRows.all(pblocks[i], pblocks[j - 1]) as [number, Buffer][]) out[i + p - pblocks[i]] = b;
      }
    }
    i = j;
  }
  return out;
}

/** The staging area shared with the parent (readers.ts): bay b starts at b * bayBytes, block i of a read at i * blockSize in its bay. */
const stage = new Uint8Array(workerData.stage as SharedArrayBuffer);
const bayBytes = workerData.bayBytes as number;
const blockSize = workerData.blockSize as number;

parentPort!.on('message', (msg: { id: number; pblocks: number[]; bay: number }) => {
  try {
    if (msg.bay >= 0) {
      const base = msg.bay * bayBytes;
      const lens = new Int32Array(msg.pblocks.length);
      const bufs = readAll(msg.pblocks);
      // A loop, not forEach: blocks with no row are holes in the array, which forEach skips.
      for (let i = 0; i < bufs.length; i++) {
        const b = bufs[i];
        if (!b) {
          lens[i] = -1;
          continue;
        }
        if (b.length > blockSize) throw new Error(`block ${msg.pblocks[i]} holds ${b.length} bytes, more than a block`);
        stage.set(b, base + i * blockSize);
        lens[i] = b.length;
      }
      parentPort!.postMessage({ id: msg.id, lens });
      return;
    }
    const bufs: (ArrayBuffer | null)[] = [];
    const transfer = new Set<ArrayBuffer>();
    for (const b of readAll(msg.pblocks)) {
      if (!b) { bufs.push(null); continue; }
      let ab = b.buffer as ArrayBuffer;
      if (b.byteOffset !== 0 || b.byteLength !== ab.byteLength || transfer.has(ab)) {
        ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      }
      bufs.push(ab);
      transfer.add(ab);
    }
    parentPort!.postMessage({ id: msg.id, bufs }, [...transfer]);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error).message });
  }
});
