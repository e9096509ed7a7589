/**
 * The store: one SQLite connection that writes (the daemon's), its tables, transactions
 * and the mount ownership record. This is the narrow interface the rest of pagefs sees
 * (tables, txn, durably); a different backend would implement the same.
 *
 * Transactions are synchronous (better-sqlite3): a txn body never awaits, so no other
 * request can observe a half-done change, and a throw rolls back both SQLite and the
 * allocator's in-memory counters.
 *
 * Between write transactions the connection stays in one read transaction (a deferred
 * BEGIN: its snapshot is taken by the first read after it). Each statement outside a
 * transaction would otherwise begin and end one of its own, taking and dropping SQLite's
 * WAL read lock with fcntl(2) calls each time: measured on a 64 MiB store, a block-map
 * lookup cost 7.5 us on its own and 1.3 us inside a transaction, and a cold 4 KiB read
 * makes two such lookups. Every write transaction ends the read transaction first and
 * begins a new one after it, so reads always see every commit of this connection, the
 * only writer; the reader threads' connections (readers.ts) do not keep one.
 */
import fs from 'node:fs';
import type { DB, Superblock } from './open.js';
import { openStoreFile } from './open.js';
import { FORMAT_VERSION, RETIRED_INDEXES } from './schema.js';
import { InodeTable } from './inodes.js';
import { DentryTable } from './dentries.js';
import { BlockTable } from './blocks.js';
import { XattrTable } from './xattrs.js';
import { UserError } from '../util/errors.js';
import { processStartTicks } from '../util/process.js';
import { StoreHealth, StoreGoneError } from './faults.js';

/** Inode numbers an opening of the store reserves at a time (Store.newIno). */
export const INO_RESERVE = 1024;

export interface Owner {
  pid: number;
  start: string;
  boot: string;
}

export class Store {
  readonly inodes: InodeTable;
  readonly dentries: DentryTable;
  readonly blocks: BlockTable;
  readonly xattrs: XattrTable;
  private readonly nextGenStmt;
  private readonly bumpGenStmt;
  private readonly setHwmStmt;
  private depth = 0;
  /** A commit since the last durable one: the WAL may hold frames not yet synced. */
  private unsynced = true;
  readonly health = new StoreHealth();
  /** Our own descriptor of the store's file, to see it unlinked (SQLite does not, in WAL mode). */
  private readonly watchFd: number;
  private readonly totalChangesStmt;
  /**
   * One better-sqlite3 transaction function (its IMMEDIATE form) for every txn: making a
   * new one per call (db.transaction(fn)) cost 4% of the daemon's CPU in a punch-rate
   * profile, more than the block-map changes of the punch.
   */
  private readonly runTxn: (fn: () => unknown) => unknown;
  private readonly beginReadStmt;
  private readonly endReadStmt;
  /** The read transaction between write transactions is open. */
  private reading = false;
  /** The generation new inodes get (newGeneration); null until the first. */
  private generation: number | null = null;
  /** The inode numbers this opening reserved (newIno): the next to hand out, and the last. */
  private inoNext = 1;
  private inoLast = 0;
  private readonly inoReserveStmt;
  /** Write transactions committed since the store was opened (each is one WAL commit when it changed anything). */
  commits = 0;
  /** The daemon's background checkpoints (checkpointer.ts), told of each commit. */
  checkpoints: { committed(): void; readonly busy: boolean; idle(): Promise<void>; unhurried<T>(fn: () => T): T } | null = null;

  constructor(readonly db: DB, readonly sb: Superblock, readonly path: string, mapCacheGroups?: number) {
    this.inodes = new InodeTable(db);
    this.dentries = new DentryTable(db);
    this.blocks = new BlockTable(db, sb.capacityBlocks, mapCacheGroups, (what) => this.assertInTxn(what));
    this.xattrs = new XattrTable(db);
    this.nextGenStmt = db.prepare('SELECT next_generation FROM superblock WHERE id = 1').pluck();
    this.bumpGenStmt = db.prepare('UPDATE superblock SET next_generation = next_generation + 1 WHERE id = 1');
    this.setHwmStmt = db.prepare('UPDATE superblock SET next_pblock = ? WHERE id = 1');
    this.totalChangesStmt = db.prepare('SELECT total_changes()').pluck();
    this.inoReserveStmt = db.prepare("UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'inodes' RETURNING seq").pluck();
    this.watchFd = fs.openSync(path, 'r');
    this.runTxn = db.transaction((fn: () => unknown) => fn()).immediate;
    this.beginReadStmt = db.prepare('BEGIN DEFERRED');
    this.endReadStmt = db.prepare('COMMIT');
    this.beginRead();
  }

  private beginRead(): void {
    if (this.reading || !this.db.open || this.db.inTransaction) return;
    this.beginReadStmt.run();
    this.reading = true;
  }

  /** Ends the read transaction; it wrote nothing, so its COMMIT cannot fail on a faulty store. */
  private endRead(): void {
    if (!this.reading) return;
    this.reading = false;
    if (this.db.inTransaction) this.endReadStmt.run();
  }

  /** `mapCacheGroups`: the bound of the fills' block-map cache (mapcache.ts), smaller in tests. */
  static open(path: string, opts: { readonly: boolean; cmd: string; mapCacheGroups?: number }): Store {
    const { db, sb } = openStoreFile(path, opts);
    return new Store(db, sb, path, opts.mapCacheGroups);
  }

  /**
   * Runs `fn` as one transaction (nested calls join the outer one). IMMEDIATE: the write
   * lock is taken at BEGIN, where SQLite's busy handler waits out another process's lock
   * (busy_timeout); a deferred transaction that read first could instead fail at once
   * with SQLITE_BUSY_SNAPSHOT when it tries to write. The daemon is the only writer, so
   * taking the lock early costs nothing.
   */
  txn<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.endRead();
    try {
      return this.writeTxn(fn);
    } finally {
      this.beginRead();
    }
  }

  /** Throws unless a write transaction (txn or durably) is running: `what` must not commit by itself. */
  assertInTxn(what: string): void {
    if (this.depth === 0) throw new Error(`${what} must run inside a store transaction`);
  }

  /** txn's body, with the read transaction already ended. */
  private writeTxn<T>(fn: () => T): T {
    // An unlinked store would take every commit and lose it all when we close it.
    if (fs.fstatSync(this.watchFd).nlink === 0) throw new StoreGoneError(`the store ${this.path} was removed (unlinked) under the running daemon`);
    const saved = this.blocks.snapshot();
    const before = this.health.faulty ? this.totalChangesStmt.get() as number : 0;
    this.depth++;
    let r: T;
    try {
      r = this.runTxn(() => {
        const r = fn();
        this.blocks.flushCounts();
        if (this.blocks.hwm !== saved.hwm) this.setHwmStmt.run(this.blocks.hwm);
        return r;
      }) as T;
    } catch (e) {
      this.blocks.restore(saved);
      throw e;
    } finally {
      this.depth--;
    }
    // Committed: from here nothing may put the allocator's counters back (a high-water
    // mark put back would hand out blocks in use again), whatever throws.
    // Only a commit that wrote something shows the fault is over (a read-only one would commit on a read-only file too).
    if (this.health.faulty && this.totalChangesStmt.get() !== before) this.health.ok();
    this.unsynced = true;
    this.commits++;
    this.checkpoints?.committed();
    return r;
  }

  /**
   * Runs `fn` as one transaction committed with synchronous=FULL, so that what fsync(2)
   * promised survives power loss and not only a daemon crash. When earlier commits
   * (synchronous=NORMAL) may still be unsynced in the WAL, the transaction surely writes
   * (a generation number is used up): SQLite commits no frame for an update that changes
   * nothing, and a commit without a frame syncs nothing. (SQLite refuses to change
   * synchronous inside a transaction, the read transaction included.)
   */
  durably<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    this.endRead();
    this.db.pragma('synchronous = FULL');
    try {
      const txn = () => this.writeTxn(() => {
        const r = fn();
        if (this.unsynced) this.bumpGenStmt.run();
        return r;
      });
      const r = this.checkpoints ? this.checkpoints.unhurried(txn) : txn();
      this.unsynced = false;
      return r;
    } finally {
      this.db.pragma('synchronous = NORMAL');
      this.beginRead();
    }
  }

  /**
   * The generation of a new inode: one number per opening of the store, taken from the
   * superblock by the first inode that needs it. FUSE asks only that (ino, generation)
   * never repeat, and inode numbers never do (newIno); a number per inode cost
   * every create a second superblock statement and one more page in its WAL commit.
   * If the transaction that took it rolls back, the number stays ours and is taken from
   * the superblock again by a later opening: two inodes may share a generation, never an
   * inode number.
   */
  newGeneration(): number {
    if (this.generation === null) {
      this.generation = this.nextGenStmt.get() as number;
      this.bumpGenStmt.run();
    }
    return this.generation;
  }

  /**
   * The number of a new inode, from a range of INO_RESERVE that this opening reserves in
   * sqlite_sequence (AUTOINCREMENT's record of the largest number ever given) when it needs
   * one. An insert with a number at or below that record leaves it alone, where an
   * AUTOINCREMENT insert rewrote it each time: one 16 KiB page more in every create's
   * commit (io.create through the VFS, 8 alternating runs of 10,000 on /dev/shm: 66.0 ->
   * 63.8 us, medians). Numbers are never reused: a later opening starts above the record, and
   * numbers a rolled-back reservation handed out bump the record themselves when an insert
   * of one commits (AUTOINCREMENT keeps the record at least the largest number inserted).
   * An opening that does not use its whole range leaves a gap in the numbers, nothing
   * else. undefined for a store whose sequence has no row yet (the insert then numbers
   * the inode itself).
   */
  newIno(): number | undefined {
    this.assertInTxn('newIno');
    if (this.inoNext > this.inoLast) {
      const last = this.inoReserveStmt.get(INO_RESERVE) as number | undefined;
      if (last === undefined) return undefined;
      this.inoNext = last - INO_RESERVE + 1;
      this.inoLast = last;
    }
    return this.inoNext++;
  }

  close(): void {
    if (this.db.open) {
      this.endRead();
      this.db.close();
    }
    try {
      fs.closeSync(this.watchFd);
    } catch { /* closed already */ }
  }

  // ---- mount ownership: one daemon per store ----

  /**
   * Records this process as the store's daemon, atomically with the check that no live
   * daemon holds it. A record left by a daemon that died (SIGKILL, power loss) is taken
   * over: the pid is gone, or it now names another process (start time or boot differ).
   */
  claim(me: Owner): void {
    const row = this.db.prepare('SELECT owner_pid AS pid, owner_start AS start, owner_boot AS boot FROM superblock WHERE id = 1');
    const set = this.db.prepare('UPDATE superblock SET owner_pid = ?, owner_start = ?, owner_boot = ? WHERE id = 1');
    this.txn(() => {
      const cur = row.get() as { pid: number | null; start: string | null; boot: string | null };
      if (cur.pid !== null && cur.pid !== me.pid && ownerAlive(cur as Owner)) {
        throw new UserError(`pagefs mount: ${this.path} is already mounted by pagefs daemon pid ${cur.pid}; unmount it first`);
      }
      set.run(me.pid, me.start, me.boot);
    });
  }

  /**
   * Brings a store made by an earlier build up to this one's format; the mount calls it
   * once it owns the store, so that no daemon of an older build is changing it. Drops
   * RETIRED_INDEXES; a version 1 store gets inodes.blocks, every file's map counted once
   * (one pass over the bmap rows), and becomes version 2 in the same transaction.
   */
  upgrade(): void {
    this.txn(() => {
      for (const name of RETIRED_INDEXES) this.db.exec(`DROP INDEX IF EXISTS ${name}`);
      if (this.sb.formatVersion === 1) {
        this.db.exec(`ALTER TABLE inodes ADD COLUMN blocks INTEGER NOT NULL DEFAULT 0;
          UPDATE inodes SET blocks = c.n FROM (SELECT ino, count(*) AS n FROM bmap GROUP BY ino) AS c WHERE inodes.ino = c.ino;
          UPDATE superblock SET format_version = ${FORMAT_VERSION} WHERE id = 1;`);
      }
    });
    this.sb.formatVersion = FORMAT_VERSION;
  }

  release(): void {
    const stmt = this.db.prepare('UPDATE superblock SET owner_pid = NULL, owner_start = NULL, owner_boot = NULL WHERE id = 1');
    this.txn(() => stmt.run());
  }

  owner(): Owner | null {
    const cur = this.db.prepare('SELECT owner_pid AS pid, owner_start AS start, owner_boot AS boot FROM superblock WHERE id = 1').get() as any;
    if (cur.pid === null) return null;
    return ownerAlive(cur) ? cur : null;
  }
}

export function currentOwner(): Owner {
  return { pid: process.pid, start: processStartTicks(process.pid) ?? '', boot: bootId() };
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

function ownerAlive(o: Owner): boolean {
  if (o.boot !== bootId()) return false;
  return processStartTicks(o.pid) === o.start;
}
