/**
 * The checkpoint thread: its own connection to the store, which copies committed WAL
 * frames into the store's file when the daemon asks (checkpointer.ts says why here and
 * not on the writer's thread). It never writes a table, only checkpoints.
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { openWorkerDb } from './worker-db.js';

export interface CheckpointReply {
  /** Another connection's checkpoint held the lock: this one did nothing, and log and checkpointed are -1. */
  busy: boolean;
  /** Frames in the WAL, and how many of them are in the store's file now. */
  log: number;
  checkpointed: number;
  /**
   * The WAL's checkpoint sequence number, which the writer bumps each time it restarts
   * the WAL from its beginning (bytes 12-15 of the WAL header, big-endian: SQLite's file
   * format, https://www.sqlite.org/fileformat2.html#walformat); -1 when unknown.
   */
  seq: number;
  ns: number;
  error?: string;
}

const db = openWorkerDb(workerData.path as string, { readonly: false, cacheKiB: 1024 });
// A checkpoint syncs the WAL before it copies and the store's file after (NORMAL, as the
// writer): a frame is never dropped from the WAL before its copy is durable.
db.pragma('synchronous = NORMAL');

const walPath = `${workerData.path as string}-wal`;
const header = Buffer.alloc(16);
function walSeq(): number {
  let fd = -1;
  try {
    fd = fs.openSync(walPath, 'r');
    return fs.readSync(fd, header, 0, 16, 0) === 16 ? header.readUInt32BE(12) : -1;
  } catch {
    return -1;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

parentPort!.on('message', (msg: 'checkpoint' | 'close') => {
  if (msg === 'close') {
    db.close();
    parentPort!.close();
    return;
  }
  const t0 = process.hrtime.bigint();
  try {
    // PASSIVE: copies what no reader still needs and waits for nobody, so the writer is
    // never held up by it (a frame a reader needs is copied by a later checkpoint).
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    const reply: CheckpointReply = { busy: r.busy !== 0, log: r.log, checkpointed: r.checkpointed, seq: walSeq(), ns: Number(process.hrtime.bigint() - t0) };
    parentPort!.postMessage(reply);
  } catch (e) {
    const code = (e as { code?: string }).code;
    parentPort!.postMessage({ busy: false, log: 0, checkpointed: 0, seq: -1, ns: Number(process.hrtime.bigint() - t0), error: `${code ?? 'error'}: ${(e as Error).message}` } satisfies CheckpointReply);
  }
});
