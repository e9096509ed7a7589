/**
 * Faults of the store's file, as opposed to faults of pagefs: the filesystem under the
 * store is full or read-only, the file was made immutable or removed, or another process
 * holds SQLite's write lock past busy_timeout. Each is named here once, with the errno the
 * request gets, and `StoreHealth` logs one line when a fault starts and one when the store
 * takes writes again, however many requests fail in between (a flood of identical lines
 * hides the first one, which is the one that says what happened).
 *
 * The errno:
 * - full: ENOSPC, the writer's problem (it can delete and go on).
 * - everything else: EIO. Not EROFS, although ext4 with errors=remount-ro answers EROFS
 *   once it has turned itself read-only: there the mount really is read-only (mount(8)
 *   says so, and only an unmount and fsck undo it). Here the pagefs mount stays
 *   read-write, keeps serving reads of what was committed, and takes writes again by
 *   itself once the store can be written; EROFS would tell the user "this mount is
 *   read-only", which it is not. EIO says "the storage under this file failed this
 *   request", which is what happened, and it is what fsync(2) reports on any filesystem
 *   whose disk failed the writeback.
 * - busy: EIO, not EAGAIN. EAGAIN from write(2), fsync(2) or mkdir(2) on a blocking
 *   descriptor is outside their contract (programs read it as "non-blocking, poll and
 *   retry" or do not expect it at all); the retrying already happened, for busy_timeout.
 *
 * A failed transaction changed nothing in the store (SQLite rolled it back) and a failed
 * writeback leaves its pages dirty in the cache, so the next fsync after the fault ends
 * writes them.
 */
import type { ErrnoName } from '../util/errors.js';

export type StoreFaultKind = 'full' | 'readonly' | 'ioerr' | 'busy' | 'gone';

export interface StoreFault {
  kind: StoreFaultKind;
  errno: ErrnoName;
  /** One line for the log: what is wrong and what the user can do. */
  message: string;
}

/** Thrown by the store when its file has been unlinked (see Store.txn). */
export class StoreGoneError extends Error {
  readonly code = 'PAGEFS_STORE_GONE';
}

/** How long a writer waits for another process's lock on the store (PRAGMA busy_timeout). */
export const BUSY_TIMEOUT_MS = 5000;

/** The fault an error from the store stands for, or null when it is not one (a bug: EIO and a stack). */
export function storeFault(e: unknown): StoreFault | null {
  if (e instanceof StoreGoneError) {
    return { kind: 'gone', errno: 'EIO', message: `${e.message}: writes fail with EIO until unmount (what was committed before is in the removed file only while pagefs holds it open)` };
  }
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return null;
  const detail = `${code}: ${(e as Error).message}`;
  if (code === 'SQLITE_FULL') return { kind: 'full', errno: 'ENOSPC', message: `the store's filesystem is full (${detail})` };
  if (code.startsWith('SQLITE_READONLY')) return { kind: 'readonly', errno: 'EIO', message: `the store cannot be written (${detail}); writes fail with EIO until it can` };
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return { kind: 'busy', errno: 'EIO', message: `another process held the store's write lock for more than ${BUSY_TIMEOUT_MS / 1000} s (${detail}); the request failed with EIO` };
  }
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) {
    return { kind: 'ioerr', errno: 'EIO', message: `the store's file cannot be written (${detail}): is its filesystem read-only or failing, or the file immutable? writes fail with EIO until it can` };
  }
  return null;
}

/** One log line per fault, one when it ends. */
export class StoreHealth {
  private current: StoreFaultKind | null = null;
  private failed = 0;
  log: (msg: string) => void = (m) => process.stderr.write(`pagefs: ${m}\n`);

  get faulty(): boolean {
    return this.current !== null;
  }

  /** Notes a failed request; logs when this fault is new. */
  fault(f: StoreFault): void {
    this.failed++;
    if (this.current === f.kind) return;
    this.current = f.kind;
    this.log(`store fault: ${f.message}`);
  }

  /** A transaction that changed the store committed: the fault, if any, is over. */
  ok(): void {
    if (this.current === null) return;
    this.log(`store fault over: the store takes writes again (${this.failed} request(s) failed meanwhile)`);
    this.current = null;
    this.failed = 0;
  }
}
