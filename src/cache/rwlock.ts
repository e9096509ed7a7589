/**
 * An asynchronous reader/writer lock, FIFO-fair: once a writer waits, later readers
 * queue behind it, so a stream of reads (page faults, readahead) cannot starve a punch.
 * Held across awaits; never inside a SQLite transaction body (those do not await).
 */
import { checkAcquire, type LockClass, type Lockable, type LockMode, type OpCtx } from './lockcheck.js';
import { tick } from './clock.js';

export interface LockStats {
  waits: number;
  waitNs: bigint;
}

interface Waiter {
  mode: LockMode;
  ctx: OpCtx;
  resolve: () => void;
}

export class RwLock implements Lockable {
  /** Guards: sharedGrants, writer, queue. */
  private writer = false;
  private readonly queue: Waiter[] = [];
  /** When each current shared holder was granted (clock.ts), ascending: grants come in clock order. One per holder. */
  private readonly sharedGrants: number[] = [];

  constructor(readonly cls: LockClass, readonly ino: number, private readonly stats: LockStats) {}

  /** True while some operation holds it shared (a fill is in flight). */
  get heldShared(): boolean {
    return this.sharedGrants.length > 0;
  }

  get heldExclusive(): boolean {
    return this.writer;
  }

  /** The grant of the longest-standing shared holder (clock.ts); Infinity when none holds it shared. */
  get oldestSharedGrant(): number {
    return this.sharedGrants.length > 0 ? this.sharedGrants[0] : Infinity;
  }

  acquire(ctx: OpCtx, mode: LockMode): Promise<void> | void {
    checkAcquire(ctx, this, mode);
    if (this.queue.length === 0 && this.grantable(mode)) {
      this.grant(ctx, mode);
      return;
    }
    this.stats.waits++;
    const t0 = process.hrtime.bigint();
    return new Promise<void>((resolve) => {
      this.queue.push({
        mode, ctx, resolve: () => {
          this.stats.waitNs += process.hrtime.bigint() - t0;
          resolve();
        },
      });
    });
  }

  release(ctx: OpCtx, mode: LockMode): void {
    const i = ctx.held.findIndex((h) => h.lock === this && h.mode === mode);
    if (i < 0) throw new Error(`${ctx.op}: releasing ${this.cls.name}(ino ${this.ino}) ${mode} which it does not hold`);
    const [h] = ctx.held.splice(i, 1);
    if (mode === 'exclusive') this.writer = false;
    else this.sharedGrants.splice(this.sharedGrants.indexOf(h.at!), 1);
    this.wake();
  }

  private grantable(mode: LockMode): boolean {
    return mode === 'shared' ? !this.writer : !this.writer && this.sharedGrants.length === 0;
  }

  private grant(ctx: OpCtx, mode: LockMode): void {
    if (mode === 'exclusive') {
      this.writer = true;
      ctx.held.push({ lock: this, mode });
      return;
    }
    const at = tick();
    this.sharedGrants.push(at);
    ctx.held.push({ lock: this, mode, at });
  }

  private wake(): void {
    while (this.queue.length > 0 && this.grantable(this.queue[0].mode)) {
      const w = this.queue.shift()!;
      this.grant(w.ctx, w.mode);
      w.resolve();
      if (w.mode === 'exclusive') break;
    }
  }
}

/** Runs fn with `lock` held in `mode`, releasing it however fn ends. */
export async function withLock<T>(ctx: OpCtx, lock: RwLock, mode: LockMode, fn: () => T | Promise<T>): Promise<T> {
  await lock.acquire(ctx, mode);
  try {
    return await fn();
  } finally {
    lock.release(ctx, mode);
  }
}

/** Sorts locks of one class by ascending inode number, dropping duplicates (the same file twice). */
export function lockOrder(locks: RwLock[]): RwLock[] {
  const uniq = [...new Set(locks)];
  return uniq.sort((a, b) => a.ino - b.ino);
}
