/**
 * The connection a store thread opens (reader-worker.ts, checkpoint-worker.ts): the store
 * must already exist; a failure is rethrown as a plain Error, whose message (unlike a
 * SqliteError's) survives the trip to the parent thread, which logs it; the writer's busy
 * timeout; no mmap and a small cache (applyPragmas in open.ts says why), `cacheKiB`.
 */
import Database from 'better-sqlite3';
import { BUSY_TIMEOUT_MS } from './faults.js';

export function openWorkerDb(file: string, opts: { readonly: boolean; cacheKiB: number }): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: opts.readonly, fileMustExist: true });
  } catch (e) {
    throw new Error(`cannot open ${file}: ${(e as Error).message} (${(e as { code?: string }).code ?? 'no code'})`);
  }
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('mmap_size = 0');
  db.pragma(`cache_size = -${opts.cacheKiB}`);
  return db;
}
