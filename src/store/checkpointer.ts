/**
 * Checkpoints on a thread of their own (checkpoint-worker.ts).
 *
 * Every committed page goes to the WAL first and is copied into the store's file by a
 * checkpoint later. SQLite runs that checkpoint on the committing connection, after the
 * commit that takes the WAL past 1,000 frames (wal_autocheckpoint): on the daemon's event
 * loop, where every request waits behind it. In a 1 GiB sequential write it was 23% of
 * that thread's perf samples (walCheckpoint under sqlite3WalDefaultHook), and an fsync
 * after random writes waited for the copy of everything it committed.
 *
 * Here a thread with its own connection copies, PASSIVE (it waits for no one, and the
 * writer never waits for it: a backstop checkpoint of the writer's that finds it copying
 * is skipped until the next commit), one checkpoint at a time, each started by a commit
 * and spaced so that it copies about TARGET_FRAMES, SQLite's own amount: a checkpoint
 * has a fixed cost (two syncs, the WAL's locks) that tiny ones would pay over and over,
 * on a core that the daemon and the program calling it need.
 *
 * A WAL is restarted from its beginning only by a write transaction that begins when
 * every frame is in the store's file and no reader holds an older snapshot. A stream of
 * commits can keep the thread from ever getting there first, so the writer keeps
 * SQLite's own checkpoint as a backstop, at BACKSTOP_FRAMES (it then copies only what the
 * thread has not; not a hard bound, since a backstop that collides with the thread's
 * checkpoint waits for the next commit), and a streaming write waits for the due or
 * running checkpoint before its next write-behind (io.ts, idle() here): without that,
 * the next 32 MiB transaction began while the thread was still copying the last, the WAL
 * never restarted, and the backstop did half the copying on the event loop again. fsync's
 * commit skips the backstop (unhurried) while the thread last saw the WAL below it: the
 * caller waits for durability, which the commit gave, not for the copy.
 *
 * If the thread cannot run (its connection does not open, it dies), the writer goes back
 * to SQLite's default and checkpoints everything itself, as before; a checkpoint that
 * fails (the store's file cannot be written) is logged once, and the WAL keeps the frames
 * meanwhile, as it would for the writer's own checkpoint.
 *
 * Measured against the writer's own checkpoints (tmpfs store, 3 GiB of churn before each
 * run, alternating runs, medians): 1 GiB sequential write (scripts/fio/seqwrite.fio),
 * 4 pairs, 261 -> 291 MiB/s, faster in all four; fsync after 6 s of 4 KiB random writes
 * to a 256 MiB file, 6 pairs, 391 -> 194 ms; 4 KiB punches (scripts/fio/punch.fio), 3
 * pairs, 12,044 -> 12,588 punches/s; creates of 10,000 files, 7 pairs, no difference
 * beyond the noise (ratios 0.84-1.21, median 0.98): their checkpoints copy few distinct
 * pages (1,200 frames of a create stream took 0.2-0.3 ms).
 */
import { Worker } from 'node:worker_threads';
import { distFile } from '../util/paths.js';
import type { DB } from './open.js';
import type { CheckpointReply } from './checkpoint-worker.js';

/** The writer's own checkpoint threshold while the thread runs (16 KiB pages: 64 MiB of WAL). */
export const BACKSTOP_FRAMES = 4096;
/** SQLite's default, which the writer goes back to without the thread. */
const SQLITE_DEFAULT_FRAMES = 1000;
/** About how many frames one checkpoint should copy (SQLite's wal_autocheckpoint default). */
const TARGET_FRAMES = 1000;
/** The time between the starts of two checkpoints adapts to the WAL's growth between these bounds. */
export const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 1000;

export interface CheckpointStats {
  checkpoints: number;
  /** Time the thread spent in them. */
  ms: number;
  /** The most frames the WAL held at the end of a checkpoint. */
  maxWalFrames: number;
  /** Frames the last checkpoint had to leave in the WAL only (a reader still needed them). */
  behind: number;
  failures: number;
  /** The thread runs (false: the writer checkpoints by itself). */
  running: boolean;
}

export class Checkpointer {
  readonly stats: CheckpointStats = { checkpoints: 0, ms: 0, maxWalFrames: 0, behind: 0, failures: 0, running: true };
  private worker: Worker | null;
  private inFlight = false;
  /** A commit since the last checkpoint began. */
  private pending = false;
  private lastStart = -Infinity;
  private interval = MIN_INTERVAL_MS;
  /** Frames in the WAL at the end of the last checkpoint. */
  private lastLog = 0;
  private lastSeq = -1;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private exited: Promise<void>;
  /** Checkpoints started; the waiters of idle() wait for the end of a numbered one. */
  private starts = 0;
  private readonly idlers: { after: number; resolve: () => void }[] = [];

  constructor(storePath: string, private readonly db: DB, private readonly log: (msg: string) => void) {
    const worker = new Worker(distFile('store/checkpoint-worker.js'), { workerData: { path: storePath } });
    this.worker = worker;
    db.pragma(`wal_autocheckpoint = ${BACKSTOP_FRAMES}`);
    worker.on('message', (r: CheckpointReply) => this.done(r));
    // A worker's uncaught throw arrives as a copy of whatever was thrown, not always an Error.
    worker.on('error', (e: unknown) => this.lost(e instanceof Error ? e.message : JSON.stringify(e)));
    this.exited = new Promise((resolve) => worker.on('exit', (code) => {
      this.lost(`exit ${code}`);
      resolve();
    }));
    worker.unref();
  }

  /**
   * A checkpoint is running, or a commit has asked for one that waits for its interval
   * (never once the thread is gone: nothing would end it).
   */
  get busy(): boolean {
    return (this.inFlight || this.pending) && this.worker !== null;
  }

  /**
   * Resolves once what is committed now has been through a checkpoint: at once when no
   * checkpoint is running or due; else at the end of the running one, or of the next when
   * a commit came after the running one began. A due checkpoint starts without waiting
   * for its interval while anyone waits. Not "until no checkpoint is busy": commits of
   * other files can keep one busy for as long as they come.
   */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    const after = this.starts + (this.pending ? 1 : 0);
    const done = new Promise<void>((resolve) => this.idlers.push({ after, resolve }));
    if (!this.inFlight) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.start();
    }
    return done;
  }

  /** Resolves the waiters that the checkpoints started so far cover (all, when `all`). */
  private settle(all: boolean): void {
    for (let i = this.idlers.length - 1; i >= 0; i--) {
      const w = this.idlers[i];
      if (all || w.after <= this.starts) {
        this.idlers.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * Runs `fn` (a commit someone waits for: fsync) without the writer's own checkpoint
   * after it; the thread copies its frames afterwards instead. Not once the thread has
   * seen the WAL at the backstop: a program that fsyncs after every write commits only
   * through here, and the backstop is then all that restarts a WAL the thread lags behind.
   */
  unhurried<T>(fn: () => T): T {
    if (!this.worker || this.lastLog >= BACKSTOP_FRAMES) return fn();
    this.db.pragma('wal_autocheckpoint = 0');
    try {
      return fn();
    } finally {
      if (this.worker) this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_FRAMES}`);
    }
  }

  /** Called after each commit. */
  committed(): void {
    this.pending = true;
    this.start();
  }

  private start(): void {
    if (!this.worker || this.inFlight || !this.pending) return;
    const wait = this.idlers.length > 0 ? 0 : this.lastStart + this.interval - performance.now();
    if (wait > 0) {
      if (!this.timer) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.start();
        }, wait);
        this.timer.unref();
      }
      return;
    }
    this.pending = false;
    this.inFlight = true;
    this.lastStart = performance.now();
    this.starts++;
    this.worker.postMessage('checkpoint');
  }

  private done(r: CheckpointReply): void {
    this.inFlight = false;
    this.stats.checkpoints++;
    this.stats.ms += r.ns / 1e6;
    if (r.busy) {
      // The writer's backstop held the checkpoint lock: nothing was learnt of the WAL
      // (SQLite reports -1 frames); try again after the interval.
      this.pending = true;
    } else if (r.error !== undefined) {
      this.stats.failures++;
      if (!this.failing) this.log(`background checkpoint failed (${r.error}); the WAL keeps the frames until one succeeds`);
      this.failing = true;
    } else {
      if (this.failing) this.log('background checkpoints succeed again');
      this.failing = false;
      this.stats.maxWalFrames = Math.max(this.stats.maxWalFrames, r.log);
      this.stats.behind = r.log - r.checkpointed;
      // Frames appended since the last checkpoint: all of them if the writer restarted the
      // WAL meanwhile (a new sequence number, or a shorter log).
      const restarted = r.seq !== this.lastSeq || r.log < this.lastLog;
      const grew = restarted ? r.log : r.log - this.lastLog;
      this.lastLog = r.log;
      this.lastSeq = r.seq;
      if (grew < TARGET_FRAMES / 2) this.interval = Math.min(MAX_INTERVAL_MS, this.interval * 2);
      else if (grew > TARGET_FRAMES * 2) this.interval = Math.max(MIN_INTERVAL_MS, this.interval / 2);
    }
    this.settle(false);
    this.start();
  }

  /** The thread is gone: the writer checkpoints by itself again. */
  private lost(why: string): void {
    if (!this.worker) return;
    this.worker = null;
    this.inFlight = false;
    this.stats.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.settle(true);
    this.log(`checkpoint thread stopped (${why}); the writer checkpoints by itself`);
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_FRAMES}`);
  }

  /**
   * Closes the thread's connection and waits for it to exit, so that the writer's close
   * can be the store's last and fold the whole WAL into the store's file.
   */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.settle(true);
    // A thread that failed may not have exited yet: its connection may still be open.
    if (!w) return this.exited;
    w.postMessage('close');
    const killed = setTimeout(() => void w.terminate(), 5000);
    await this.exited;
    clearTimeout(killed);
  }
}
