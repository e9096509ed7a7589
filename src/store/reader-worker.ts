/**
 * A block-reader thread: its own read-only SQLite connection, so that block reads of
 * one request overlap the event loop's work on others (and the window between a fill's
 * block-map lookup and its block read is real, which is what the invalidate_lock
 * guards). Each message asks for blocks by physical number; the reply hands the bytes
 * back without copying (transferred ArrayBuffers).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const db = new Database(workerData.path as string, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
// No mmap and a small cache: see applyPragmas (open.ts); the data blocks read here are
// cached above, in the page cache, so SQLite's cache only needs the b-tree's inner pages.
db.pragma('mmap_size = 0');
db.pragma('cache_size = -4096');
const stmt = db.prepare('SELECT bytes FROM data WHERE pblock = ?').pluck();

parentPort!.on('message', (msg: { id: number; pblocks: number[] }) => {
  try {
    const out: (ArrayBuffer | null)[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const p of msg.pblocks) {
      const b = stmt.get(p) as Buffer | undefined;
      if (!b) { out.push(null); continue; }
      let ab = b.buffer as ArrayBuffer;
      if (b.byteOffset !== 0 || b.byteLength !== ab.byteLength || transfer.includes(ab)) {
        ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      }
      out.push(ab);
      transfer.push(ab);
    }
    parentPort!.postMessage({ id: msg.id, bufs: out }, transfer);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error).message });
  }
});
