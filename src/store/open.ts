/**
 * Creating and opening store files. Every way a path can fail to be a usable store ends
 * in a UserError with one line that names the path and what is wrong with it.
 */
import fs from 'node:fs';
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import { DDL, FORMAT_VERSION, MAGIC, OLDEST_FORMAT_VERSION, ROOT_INO, SQLITE_PAGE_SIZE } from './schema.js';
import { UserError } from '../util/errors.js';
import { BUSY_TIMEOUT_MS } from './faults.js';

export type DB = Database.Database;

export interface Superblock {
  formatVersion: number;
  blockSize: number;
  capacityBlocks: number;
  uuid: string;
  createdS: number;
}

export const MIN_BLOCK_SIZE = 1024;
export const MAX_BLOCK_SIZE = 65536;

export function validBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_BLOCK_SIZE && n <= MAX_BLOCK_SIZE && (n & (n - 1)) === 0;
}

/** SQLite's page cache of a read-only opening (fsck, stat), in KiB: the b-tree's inner pages. (The daemon's reader threads: reader-worker.ts.) */
const CACHE_KIB = 16384;
/**
 * The writer's: room for the 43 MiB of 16 KiB pages that a 32 MiB write-behind dirties
 * (a 16 MiB cache writes them to the WAL in the middle of the transaction to make room;
 * the frames written in all were as many either way, counted outside the daemon). A 1
 * GiB sequential write through the mount (8 alternating pairs, tmpfs store): 256 -> 280
 * MiB/s (medians), daemon CPU 4.30 -> 3.95 s. Raised only for the length of each large
 * transaction instead, the writes ran at 298 against 334 MiB/s (4 alternating pairs, both
 * with BlockTable.writeNewRun): the pages SQLite frees after each and allocates again are
 * memory touched anew. The daemon's peak RSS in those runs was the same (VmHWM 314-342 MiB
 * at --cache-size 256M); between large transactions a full cache holds 48 MiB more.
 */
const WRITER_CACHE_KIB = 65536;

/**
 * Pragmas for every connection. WAL lets readers run beside the one writer.
 * synchronous=NORMAL: a commit is durable against a daemon crash (the WAL is in the OS
 * cache) and consistent after power loss; fsync(2) through the mount asks for FULL for
 * its own commit (see Store.durably). cache_size keeps the b-tree interior pages hot
 * (and the writer's holds a write-behind's pages); data blocks are cached above SQLite,
 * in the page cache. No mmap: every page of the store a connection touched through its
 * mapping counted in the daemon's RSS (the writer's and each reader thread's mapping
 * separately), 0.3 to 0.6 GiB under scripts/load.mjs, beyond any --cache-size.
 */
export function applyPragmas(db: DB, readonly: boolean): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  }
  db.pragma(`cache_size = -${readonly ? CACHE_KIB : WRITER_CACHE_KIB}`);
  db.pragma('mmap_size = 0');
  db.pragma('temp_store = MEMORY');
}

export function createStoreFile(path: string, blockSize: number, capacityBytes: number): Superblock {
  if (!validBlockSize(blockSize)) {
    throw new UserError(`pagefs mkfs: block size ${blockSize} is not a power of two between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE}`);
  }
  const capacityBlocks = Math.floor(capacityBytes / blockSize);
  if (capacityBlocks < 16) {
    throw new UserError(`pagefs mkfs: capacity ${capacityBytes} bytes is too small (at least 16 blocks of ${blockSize} bytes)`);
  }
  if (fs.existsSync(path)) {
    throw new UserError(`pagefs mkfs: ${path} already exists; remove it first`);
  }
  let db: DB;
  try {
    db = new Database(path);
  } catch (e) {
    throw new UserError(`pagefs mkfs: cannot create ${path}: ${(e as Error).message}`);
  }
  try {
    db.pragma(`page_size = ${SQLITE_PAGE_SIZE}`);
    applyPragmas(db, false);
    const nowS = Math.floor(Date.now() / 1000);
    const uuid = crypto.randomUUID();
    db.transaction(() => {
      db.exec(DDL);
      db.prepare(`INSERT INTO superblock (id, magic, format_version, block_size, capacity_blocks, uuid, created_s, next_pblock, next_generation)
                  VALUES (1, ?, ?, ?, ?, ?, ?, 1, 2)`).run(MAGIC, FORMAT_VERSION, blockSize, capacityBlocks, uuid, nowS);
      const [s, ns] = nowParts();
      // The root directory, owned by whoever made the store, 0755, nlink 2 ("." and its entry in the mount's parent).
      db.prepare(`INSERT INTO inodes (ino, generation, mode, nlink, uid, gid, atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, btime_s, btime_ns)
                  VALUES (?, 1, ?, 2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(ROOT_INO, 0o040755, process.getuid?.() ?? 0, process.getgid?.() ?? 0, s, ns, s, ns, s, ns, s, ns);
    })();
    return { formatVersion: FORMAT_VERSION, blockSize, capacityBlocks, uuid, createdS: nowS };
  } finally {
    db.close();
  }
}

/** Wall clock as [seconds, nanoseconds], with the nanoseconds the platform offers. */
export function nowParts(): [number, number] {
  const ns = process.hrtime.bigint() - hrBase + wallBaseNs;
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}
const wallBaseNs = BigInt(Date.now()) * 1_000_000n;
const hrBase = process.hrtime.bigint();

/**
 * Opens an existing store. `cmd` prefixes the messages ("pagefs mount", "pagefs fsck").
 * Checks, in order: the path exists and is a regular file, SQLite can read it, it has a
 * pagefs superblock, and its format version is one this build understands (an older one
 * is upgraded by the mount, Store.upgrade).
 */
export function openStoreFile(path: string, opts: { readonly: boolean; cmd: string }): { db: DB; sb: Superblock } {
  const { cmd } = opts;
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    throw new UserError(`${cmd}: ${path}: no such store (create one with: pagefs mkfs ${path})`);
  }
  if (!st.isFile()) throw new UserError(`${cmd}: ${path}: not a pagefs store (not a regular file)`);
  let db: DB;
  try {
    db = new Database(path, { readonly: opts.readonly, fileMustExist: true });
  } catch (e) {
    throw new UserError(`${cmd}: ${path}: cannot open: ${(e as Error).message}`);
  }
  try {
    let row: any;
    try {
      row = db.prepare('SELECT * FROM superblock WHERE id = 1').get();
    } catch {
      throw new UserError(`${cmd}: ${path}: not a pagefs store`);
    }
    if (!row || row.magic !== MAGIC) throw new UserError(`${cmd}: ${path}: not a pagefs store`);
    const v = row.format_version;
    if (!Number.isInteger(v) || v < OLDEST_FORMAT_VERSION || v > FORMAT_VERSION) {
      const reads = OLDEST_FORMAT_VERSION === FORMAT_VERSION ? `version ${FORMAT_VERSION}` : `versions ${OLDEST_FORMAT_VERSION} to ${FORMAT_VERSION}`;
      throw new UserError(`${cmd}: ${path}: store format version ${v} is not supported by this pagefs (it reads ${reads})`);
    }
    applyPragmas(db, opts.readonly);
    return {
      db,
      sb: {
        formatVersion: row.format_version,
        blockSize: row.block_size,
        capacityBlocks: row.capacity_blocks,
        uuid: row.uuid,
        createdS: row.created_s,
      },
    };
  } catch (e) {
    db.close();
    throw e;
  }
}
